//! The intention as it is stored and replicated: typed, validated, with its precedence computed.
//!
//! The serde derives here are for the replicated state (raft log, snapshots), not for HTTP:
//! Consul's JSON shapes live in [`crate::wire`]. No field is skipped or flattened so that
//! non-self-describing formats (postcard) round-trip.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::write::{HeaderPermissionWrite, HttpPermissionWrite, PermissionWrite};

/// Matches any name (only as the whole value: `we*` is invalid).
pub const WILDCARD: &str = "*";
/// The only namespace (and partition) this implementation has, as in Consul CE.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Allow or deny, for an L4 intention or one L7 permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// Consul's spelling; matching is exact (`ALLOW` is not an action).
    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

/// What kind of identity the source is; Consul knows only its own services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SourceType {
    #[default]
    Consul,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        "consul"
    }
}

/// One intention: may `source_name` talk to `destination_name`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intention {
    /// The legacy UUID; empty for intentions written by name (Consul ≥ 1.9 has none for them).
    pub id: String,
    pub description: String,
    pub source_ns: String,
    pub source_name: String,
    pub destination_ns: String,
    pub destination_name: String,
    pub source_type: SourceType,
    /// `None` exactly when `permissions` is not empty (an L7 intention).
    pub action: Option<Action>,
    /// L7 rules, evaluated top-down; the first that matches a request decides.
    pub permissions: Vec<Permission>,
    /// Legacy intentions' metadata (always a map, maybe empty); empty for the others.
    pub meta: BTreeMap<String, String>,
    pub precedence: u32,
    /// RFC 3339, as passed in by the leader; set only on legacy intentions.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The indexes of the destination's `service-intentions` entry, shared by all
    /// intentions towards the same destination (as Consul reports them).
    pub create_index: u64,
    pub modify_index: u64,
}

impl Intention {
    /// Whether the intention carries L7 permissions (and so no action of its own).
    pub fn is_l7(&self) -> bool {
        !self.permissions.is_empty()
    }
}

/// Consul's `Intention.String()`, used in authorization reasons and duplicate errors, e.g.
/// `default/web => default/db (ID: 5e1c…, Precedence: 9, Action: ALLOW)`.
impl fmt::Display for Intention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} => {}/{} (",
            self.source_ns, self.source_name, self.destination_ns, self.destination_name
        )?;
        if !self.id.is_empty() {
            write!(f, "ID: {}, ", self.id)?;
        }
        write!(f, "Precedence: {}, ", self.precedence)?;
        if self.is_l7() {
            write!(f, "Permissions: {})", self.permissions.len())
        } else {
            let action = self.action.map_or("", Action::as_str);
            write!(f, "Action: {})", action.to_uppercase())
        }
    }
}

/// One L7 rule of an intention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub action: Action,
    /// Consul requires `HTTP` on every permission, so it is not optional here.
    pub http: HttpMatch,
}

/// What a request must look like for a permission to apply; all parts must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpMatch {
    pub path: Option<PathMatch>,
    /// Every header rule must match.
    pub header: Vec<HeaderMatch>,
    /// Upper case; any of them matches. Empty: any method.
    pub methods: Vec<String>,
}

/// Matched against the request path without its query string or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// Must match the whole path.
    Regex(Pattern),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Compared case-insensitively; `:method`, `:path` and `:authority` are pseudo-headers.
    pub name: String,
    pub kind: HeaderMatchKind,
    /// Negates the result when the header is present. A missing header never matches a
    /// value rule, inverted or not; an inverted `Present` matches a missing header (Envoy).
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderMatchKind {
    Present,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Must match the whole value.
    Regex(Pattern),
}

/// A regular expression that must match a whole string, as Envoy's `safe_regex` does.
/// It is stored (and replicated) as the text the user wrote.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    anchored: regex::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let anchored = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Pattern {
            source: source.to_owned(),
            anchored,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_full_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}

// ---- conversions to and from the raw (as written) form ----------------------------------

impl Permission {
    /// The typed form of a permission that passed validation; the error names what is wrong
    /// for input that did not (for instance JSON read back from another agent).
    pub fn from_write(raw: &PermissionWrite) -> Result<Permission, String> {
        let action = Action::parse(&raw.action)
            .ok_or_else(|| format!("invalid permission action {:?}", raw.action))?;
        let http = raw
            .http
            .as_ref()
            .ok_or_else(|| "permission without HTTP".to_owned())?;
        let mut paths = Vec::new();
        if !http.path_exact.is_empty() {
            paths.push(PathMatch::Exact(http.path_exact.clone()));
        }
        if !http.path_prefix.is_empty() {
            paths.push(PathMatch::Prefix(http.path_prefix.clone()));
        }
        if !http.path_regex.is_empty() {
            let pattern = Pattern::new(&http.path_regex).map_err(|e| e.to_string())?;
            paths.push(PathMatch::Regex(pattern));
        }
        if paths.len() > 1 {
            return Err("more than one path rule".to_owned());
        }
        let header = http
            .header
            .iter()
            .map(HeaderMatch::from_write)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Permission {
            action,
            http: HttpMatch {
                path: paths.pop(),
                header,
                methods: http.methods.clone(),
            },
        })
    }

    pub fn to_write(&self) -> PermissionWrite {
        let mut http = HttpPermissionWrite {
            methods: self.http.methods.clone(),
            header: self.http.header.iter().map(HeaderMatch::to_write).collect(),
            ..HttpPermissionWrite::default()
        };
        match &self.http.path {
            Some(PathMatch::Exact(p)) => http.path_exact = p.clone(),
            Some(PathMatch::Prefix(p)) => http.path_prefix = p.clone(),
            Some(PathMatch::Regex(p)) => http.path_regex = p.as_str().to_owned(),
            None => {}
        }
        PermissionWrite {
            action: self.action.as_str().to_owned(),
            http: Some(http),
        }
    }
}

impl HeaderMatch {
    fn from_write(raw: &HeaderPermissionWrite) -> Result<HeaderMatch, String> {
        if raw.name.is_empty() {
            return Err("header rule without a name".to_owned());
        }
        let mut kinds = Vec::new();
        if raw.present {
            kinds.push(HeaderMatchKind::Present);
        }
        if !raw.exact.is_empty() {
            kinds.push(HeaderMatchKind::Exact(raw.exact.clone()));
        }
        if !raw.prefix.is_empty() {
            kinds.push(HeaderMatchKind::Prefix(raw.prefix.clone()));
        }
        if !raw.suffix.is_empty() {
            kinds.push(HeaderMatchKind::Suffix(raw.suffix.clone()));
        }
        if !raw.regex.is_empty() {
            let pattern = Pattern::new(&raw.regex).map_err(|e| e.to_string())?;
            kinds.push(HeaderMatchKind::Regex(pattern));
        }
        match (kinds.pop(), kinds.is_empty()) {
            (Some(kind), true) => Ok(HeaderMatch {
                name: raw.name.clone(),
                kind,
                invert: raw.invert,
            }),
            _ => Err(format!(
                "header rule {:?} needs exactly one match",
                raw.name
            )),
        }
    }

    fn to_write(&self) -> HeaderPermissionWrite {
        let mut raw = HeaderPermissionWrite {
            name: self.name.clone(),
            invert: self.invert,
            ..HeaderPermissionWrite::default()
        };
        match &self.kind {
            HeaderMatchKind::Present => raw.present = true,
            HeaderMatchKind::Exact(v) => raw.exact = v.clone(),
            HeaderMatchKind::Prefix(v) => raw.prefix = v.clone(),
            HeaderMatchKind::Suffix(v) => raw.suffix = v.clone(),
            HeaderMatchKind::Regex(p) => raw.regex = p.as_str().to_owned(),
        }
        raw
    }
}
