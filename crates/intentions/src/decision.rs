//! Deciding whether a source may reach a destination: the first intention (by precedence)
//! whose source and destination both match decides.
//!
//! An L4 intention answers with its action. An L7 intention cannot answer for a connection
//! (`/v1/agent/connect/authorize` and `/v1/connect/intentions/check` report it as a deny);
//! for a request, its permissions are tried top-down and the first that matches decides. A
//! request that matches none of them gets the default policy, and lower-precedence
//! intentions are not consulted: the matched intention's source shadows them, as in the
//! RBAC rules Consul generates for Envoy.

use std::borrow::Cow;

use crate::model::{Action, HeaderMatch, HeaderMatchKind, HttpMatch, Intention, PathMatch};
use crate::model::{DEFAULT_NAMESPACE, WILDCARD};
use crate::precedence::precedence_order;

/// Which side of the intentions `/v1/connect/intentions/match` matches `name` against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    Source,
    Destination,
}

impl MatchBy {
    /// Consul's `by` parameter values.
    pub fn parse(text: &str) -> Option<MatchBy> {
        match text {
            "source" => Some(MatchBy::Source),
            "destination" => Some(MatchBy::Destination),
            _ => None,
        }
    }
}

/// What applies when no intention matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPolicy {
    /// No `default_intention_policy` configured: the ACL default policy decides (allow when
    /// ACLs are disabled). Reason: `Default behavior configured by ACLs`.
    Acl { allow: bool },
    /// `default_intention_policy` is configured. Reason: `Default intention policy`.
    Intention { allow: bool },
}

impl DefaultPolicy {
    pub fn allows(self) -> bool {
        match self {
            DefaultPolicy::Acl { allow } | DefaultPolicy::Intention { allow } => allow,
        }
    }

    /// Consul's reason text for a decision by default.
    pub fn reason(self) -> &'static str {
        match self {
            DefaultPolicy::Acl { .. } => "Default behavior configured by ACLs",
            DefaultPolicy::Intention { .. } => "Default intention policy",
        }
    }
}

/// An HTTP request as the L7 rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// As sent (`GET`); methods compare exactly.
    pub method: &'a str,
    /// The request target's path, possibly with `?query`; rules see it without the query.
    pub path: &'a str,
    /// Every header line; names compare case-insensitively and repeated headers are joined
    /// with `,`. Put the host in as `:authority` for rules on it.
    pub headers: Vec<(&'a str, &'a str)>,
}

/// The outcome of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Consul's reason text (`Matched L4 intention: …`, `Default behavior configured by ACLs`).
    pub reason: String,
    /// The intention that decided, if one matched.
    pub matched: Option<MatchedIntention>,
}

/// Which intention (and which of its permissions) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedIntention {
    pub source: String,
    pub destination: String,
    /// The legacy ID; empty for intentions written by name.
    pub id: String,
    pub precedence: u32,
    /// For an L7 intention evaluated against a request: the index of the permission that
    /// matched, `None` if none did (the default policy then decided).
    pub permission: Option<usize>,
}

/// Decides whether `source` may call `destination` from `intentions` (any superset of the
/// intentions towards `destination`, in any order, e.g. a cached
/// `/v1/connect/intentions/match?by=destination` answer). Both names are in the default
/// namespace. `request: None` authorizes a connection; `Some` a request on it.
pub fn authorize<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source: &str,
    destination: &str,
    request: Option<&HttpRequest<'_>>,
    default: DefaultPolicy,
) -> Decision {
    authorize_in(
        intentions,
        DEFAULT_NAMESPACE,
        source,
        destination,
        request,
        default,
    )
}

/// [`authorize`] for a source in namespace `source_ns` (from a client certificate).
pub fn authorize_in<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source_ns: &str,
    source: &str,
    destination: &str,
    request: Option<&HttpRequest<'_>>,
    default: DefaultPolicy,
) -> Decision {
    let Some(ixn) = first_match(intentions, source_ns, source, destination) else {
        return Decision {
            allowed: default.allows(),
            reason: default.reason().to_owned(),
            matched: None,
        };
    };
    let matched = |permission| {
        Some(MatchedIntention {
            source: ixn.source_name.clone(),
            destination: ixn.destination_name.clone(),
            id: ixn.id.clone(),
            precedence: ixn.precedence,
            permission,
        })
    };
    if !ixn.is_l7() {
        return Decision {
            allowed: ixn.action == Some(Action::Allow),
            reason: format!("Matched L4 intention: {ixn}"),
            matched: matched(None),
        };
    }
    let Some(request) = request else {
        return Decision {
            allowed: false,
            reason: format!("Matched L7 intention: {ixn}"),
            matched: matched(None),
        };
    };
    match ixn
        .permissions
        .iter()
        .position(|p| request_matches(&p.http, request))
    {
        Some(i) => {
            let action = ixn.permissions[i].action;
            Decision {
                allowed: action == Action::Allow,
                reason: format!(
                    "Matched L7 intention: {ixn}, permission {i}: {}",
                    action.as_str().to_uppercase()
                ),
                matched: matched(Some(i)),
            }
        }
        None => Decision {
            allowed: default.allows(),
            reason: default.reason().to_owned(),
            matched: matched(None),
        },
    }
}

/// `Intention.Check`: an L7 intention is a deny, no match is the default.
pub(crate) fn check<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source: &str,
    destination: &str,
    default_allow: bool,
) -> bool {
    match first_match(intentions, DEFAULT_NAMESPACE, source, destination) {
        Some(ixn) => !ixn.is_l7() && ixn.action == Some(Action::Allow),
        None => default_allow,
    }
}

/// The highest-precedence intention covering `source_ns/source` → `destination`.
fn first_match<'a>(
    intentions: impl IntoIterator<Item = &'a Intention>,
    source_ns: &str,
    source: &str,
    destination: &str,
) -> Option<&'a Intention> {
    intentions
        .into_iter()
        .filter(|i| {
            covers(&i.source_ns, &i.source_name, source_ns, source)
                && covers(
                    &i.destination_ns,
                    &i.destination_name,
                    DEFAULT_NAMESPACE,
                    destination,
                )
        })
        .min_by(|a, b| precedence_order(a, b))
}

/// Whether an intention's `ns/name` side covers a concrete service.
fn covers(ixn_ns: &str, ixn_name: &str, ns: &str, name: &str) -> bool {
    (ixn_ns == WILDCARD || ixn_ns == ns) && (ixn_name == WILDCARD || ixn_name == name)
}

/// Whether a request satisfies every part of a permission's HTTP rule.
fn request_matches(rule: &HttpMatch, request: &HttpRequest<'_>) -> bool {
    let path_ok = match &rule.path {
        None => true,
        Some(m) => {
            let path = url_path(request.path);
            match m {
                PathMatch::Exact(p) => path == p,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::Regex(p) => p.is_full_match(path),
            }
        }
    };
    path_ok
        && rule.header.iter().all(|h| header_matches(h, request))
        && (rule.methods.is_empty() || rule.methods.iter().any(|m| m == request.method))
}

/// The path Envoy's `url_path` matcher sees: without query string and fragment.
fn url_path(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// Envoy's `HeaderUtility::matchHeaders` for one rule.
fn header_matches(rule: &HeaderMatch, request: &HttpRequest<'_>) -> bool {
    let Some(value) = header_value(request, &rule.name) else {
        return rule.invert && rule.kind == HeaderMatchKind::Present;
    };
    let matched = match &rule.kind {
        HeaderMatchKind::Present => true,
        HeaderMatchKind::Exact(v) => value == v.as_str(),
        HeaderMatchKind::Prefix(v) => value.starts_with(v.as_str()),
        HeaderMatchKind::Suffix(v) => value.ends_with(v.as_str()),
        HeaderMatchKind::Regex(p) => p.is_full_match(&value),
    };
    matched != rule.invert
}

fn header_value<'r>(request: &HttpRequest<'r>, name: &str) -> Option<Cow<'r, str>> {
    if name.eq_ignore_ascii_case(":method") {
        return Some(Cow::Borrowed(request.method));
    }
    if name.eq_ignore_ascii_case(":path") {
        return Some(Cow::Borrowed(request.path));
    }
    let mut values = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v);
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first},{second}");
            for v in values {
                joined.push(',');
                joined.push_str(v);
            }
            Some(Cow::Owned(joined))
        }
    }
}

#[cfg(test)]
mod tests;
