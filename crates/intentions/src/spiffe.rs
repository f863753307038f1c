//! Parsing Connect certificate URIs (Consul's `connect.ParseCertURIFromString`), enough to
//! tell which service a client certificate speaks for.
//!
//! Kept minimal and self-contained: the `ca` crate owns SPIFFE IDs for issuing; this only
//! reads them. Paths are matched in their escaped form and each part is then unescaped,
//! as Consul does with Go's `url.URL.RawPath`.

/// A Connect certificate URI, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertUri {
    /// `spiffe://<trust-domain>[/ap/<partition>]/ns/<ns>/dc/<dc>/svc/<service>`
    Service(SpiffeIdService),
    /// `spiffe://<trust-domain>[/ap/<partition>]/agent/client/dc/<dc>/id/<node-id>`
    Agent {
        host: String,
        partition: String,
        datacenter: String,
        agent: String,
    },
    /// `spiffe://<trust-domain>/agent/server/dc/<dc>`
    Server { host: String, datacenter: String },
    /// `spiffe://<trust-domain>[/ap/<partition>]/gateway/mesh/dc/<dc>`
    MeshGateway {
        host: String,
        partition: String,
        datacenter: String,
    },
    /// `spiffe://<cluster-id>.<domain>`: the CA's own signing identity.
    Signing { cluster_id: String, domain: String },
}

/// A service identity from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeIdService {
    /// The trust domain (`<cluster-id>.consul`).
    pub host: String,
    /// `default` when the URI has no `/ap/` part.
    pub partition: String,
    pub namespace: String,
    pub datacenter: String,
    pub service: String,
}

/// Why a string is not a Connect certificate URI; texts are Go's and Consul's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("SPIFFE ID must have 'spiffe' scheme")]
    Scheme,
    #[error("invalid URL escape {0:?}")]
    Escape(String),
    #[error("SPIFFE ID is not in the expected format: {0}")]
    Format(String),
}

impl CertUri {
    pub fn parse(input: &str) -> Result<CertUri, SpiffeError> {
        let (scheme, rest) = match input.split_once(':') {
            Some((s, rest)) if is_scheme(s) => (s, rest),
            _ => ("", input),
        };
        if !scheme.eq_ignore_ascii_case("spiffe") {
            return Err(SpiffeError::Scheme);
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (host, path) = match rest.strip_prefix("//") {
            Some(hier) => match hier.find('/') {
                Some(i) => (&hier[..i], &hier[i..]),
                None => (hier, ""),
            },
            None => ("", ""),
        };
        let host = host.rsplit('@').next().unwrap_or_default().to_owned();
        let parts: Vec<&str> = path.split('/').collect();
        // `parts[0]` is the empty string before the leading slash.
        let parsed = match parts.as_slice() {
            ["", rest @ ..] if !rest.is_empty() => parse_path(&host, rest)?,
            [""] if path.is_empty() => None,
            _ => None,
        };
        if let Some(uri) = parsed {
            return Ok(uri);
        }
        if path.is_empty() {
            if let Some(idx) = host.find('.').filter(|i| *i > 0) {
                return Ok(CertUri::Signing {
                    cluster_id: host[..idx].to_owned(),
                    domain: host[idx + 1..].to_owned(),
                });
            }
        }
        Err(SpiffeError::Format(input.to_owned()))
    }
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The known path shapes, each part non-empty; `None` if none fits.
fn parse_path(host: &str, parts: &[&str]) -> Result<Option<CertUri>, SpiffeError> {
    if parts.iter().any(|p| p.is_empty()) {
        return Ok(None);
    }
    let (ap, tail) = match parts {
        ["ap", ap, tail @ ..] => (Some(*ap), tail),
        tail => (None, tail),
    };
    let partition = || -> Result<String, SpiffeError> {
        Ok(ap
            .map(unescape)
            .transpose()?
            .unwrap_or_else(|| "default".to_owned()))
    };
    let uri = match tail {
        ["ns", ns, "dc", dc, "svc", svc] => CertUri::Service(SpiffeIdService {
            host: host.to_owned(),
            partition: partition()?,
            namespace: unescape(ns)?,
            datacenter: unescape(dc)?,
            service: unescape(svc)?,
        }),
        ["agent", "client", "dc", dc, "id", id] => CertUri::Agent {
            host: host.to_owned(),
            partition: partition()?,
            datacenter: unescape(dc)?,
            agent: unescape(id)?,
        },
        ["gateway", "mesh", "dc", dc] => CertUri::MeshGateway {
            host: host.to_owned(),
            partition: partition()?,
            datacenter: unescape(dc)?,
        },
        ["agent", "server", "dc", dc] if ap.is_none() => CertUri::Server {
            host: host.to_owned(),
            datacenter: unescape(dc)?,
        },
        _ => return Ok(None),
    };
    Ok(Some(uri))
}

/// Go's `url.PathUnescape`.
fn unescape(part: &str) -> Result<String, SpiffeError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    let end = (i + 3).min(bytes.len());
                    let bad = String::from_utf8_lossy(&bytes[i..end]).into_owned();
                    return Err(SpiffeError::Escape(bad));
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests;
