//! SPIFFE IDs of mesh services, in Consul's layout (agent/connect/uri_service.go):
//! `spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<service>`, with an optional
//! `/ap/<partition>` before `/ns` for non-default admin partitions.

use std::fmt;

#[cfg(test)]
mod tests;

/// The identity a leaf certificate carries in its URI SAN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    /// `None` for the default partition (the segment is then absent from the URI).
    pub partition: Option<String>,
    pub namespace: String,
    pub datacenter: String,
    pub service: String,
}

/// Why a URI is not a service SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error("{0:?} is not a spiffe:// URI")]
    NotSpiffe(String),
    #[error("{0:?} has no trust domain")]
    NoTrustDomain(String),
    #[error("{0:?} is not a service identity (expected /ns/<ns>/dc/<dc>/svc/<service>)")]
    NotService(String),
}

impl SpiffeId {
    /// The identity of `service` in the default namespace and partition.
    pub fn service(trust_domain: &str, datacenter: &str, service: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            partition: None,
            namespace: "default".to_owned(),
            datacenter: datacenter.to_owned(),
            service: service.to_owned(),
        }
    }

    /// Parses a service SPIFFE ID. The trust domain is compared case-insensitively by SPIFFE, so
    /// it is lowercased; path segments are kept verbatim.
    pub fn parse(uri: &str) -> Result<SpiffeId, SpiffeError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| SpiffeError::NotSpiffe(uri.to_owned()))?;
        let (trust_domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        if trust_domain.is_empty() {
            return Err(SpiffeError::NoTrustDomain(uri.to_owned()));
        }
        let not_service = || SpiffeError::NotService(uri.to_owned());
        let segments: Vec<&str> = path.split('/').collect();
        let (partition, rest) = match segments.as_slice() {
            ["ap", partition, rest @ ..] => (Some(*partition), rest),
            rest => (None, rest),
        };
        let ["ns", namespace, "dc", datacenter, "svc", service] = rest else {
            return Err(not_service());
        };
        let all = [partition.unwrap_or("x"), namespace, datacenter, service];
        if all.iter().any(|s| s.is_empty() || s.contains(['?', '#'])) {
            return Err(not_service());
        }
        Ok(SpiffeId {
            trust_domain: trust_domain.to_ascii_lowercase(),
            partition: partition.map(str::to_owned),
            namespace: (*namespace).to_owned(),
            datacenter: (*datacenter).to_owned(),
            service: (*service).to_owned(),
        })
    }

    /// The URI form, as written into certificates.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.trust_domain)?;
        if let Some(partition) = &self.partition {
            write!(f, "/ap/{partition}")?;
        }
        write!(
            f,
            "/ns/{}/dc/{}/svc/{}",
            self.namespace, self.datacenter, self.service
        )
    }
}
