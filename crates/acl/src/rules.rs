//! Consul's rule language (CE): the resources a policy names and the access it grants them.
//!
//! Rule text is HCL (version 1, which Consul's decoder reads) or JSON. Parsing follows Consul's
//! `acl/policy.go`: keys match case-insensitively, unknown keys are ignored, an attribute set
//! twice in one HCL object is an error, and values are validated in Consul's order with its
//! error texts.

mod syntax;
#[cfg(test)]
mod tests;

use std::fmt;

use go_text::quote as go_quote;
use syntax::Node;

/// An access level in a rule; ordering by precedence is NOT the derive order, see
/// [`Access::precedence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Explicitly denies; grants nothing.
    Deny,
    /// Grants reading.
    Read,
    /// Grants listing and reading (keys only).
    List,
    /// Grants writing, listing and reading.
    Write,
}

impl Access {
    /// The level as written in rules: `"deny"`, `"read"`, `"list"` or `"write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Deny => "deny",
            Access::Read => "read",
            Access::List => "list",
            Access::Write => "write",
        }
    }

    /// Parses a level as Consul's `AccessLevelFromString` does: case-insensitively.
    pub(crate) fn from_policy(policy: &str) -> Option<Access> {
        match policy.to_lowercase().as_str() {
            "deny" => Some(Access::Deny),
            "read" => Some(Access::Read),
            "list" => Some(Access::List),
            "write" => Some(Access::Write),
            _ => None,
        }
    }

    /// The rank used when merging policies: deny > write > list > read.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::List => 2,
            Access::Write => 3,
            Access::Deny => 4,
        }
    }

    /// Whether a rule of this level satisfies a request for `requested`.
    pub(crate) fn grants(self, requested: Access) -> bool {
        match self {
            Access::Write => requested != Access::Deny,
            Access::List => matches!(requested, Access::List | Access::Read),
            Access::Read => requested == Access::Read,
            Access::Deny => false,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resources of Consul CE's rule language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// ACL management (`acl = "..."`).
    Acl,
    /// Agent endpoints, per node name.
    Agent,
    /// User events, per event name.
    Event,
    /// Intentions, per destination service name (from `service` rules).
    Intention,
    /// KV entries, per key.
    Key,
    /// The gossip keyring (`keyring = "..."`).
    Keyring,
    /// Mesh configuration (`mesh = "..."`, falling back to `operator`).
    Mesh,
    /// Catalog nodes, per node name.
    Node,
    /// Cluster operations (`operator = "..."`).
    Operator,
    /// Cluster peering (`peering = "..."`, falling back to `operator`).
    Peering,
    /// Prepared queries, per query name.
    Query,
    /// Catalog services, per service name.
    Service,
    /// Sessions, per node name.
    Session,
}

impl Resource {
    /// The resource's name in rules and in Consul's permission-denied messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Acl => "acl",
            Resource::Agent => "agent",
            Resource::Event => "event",
            Resource::Intention => "intention",
            Resource::Key => "key",
            Resource::Keyring => "keyring",
            Resource::Mesh => "mesh",
            Resource::Node => "node",
            Resource::Operator => "operator",
            Resource::Peering => "peering",
            Resource::Query => "query",
            Resource::Service => "service",
            Resource::Session => "session",
        }
    }

    /// Whether rules for this resource name segments (exact and prefix forms).
    pub fn is_segmented(self) -> bool {
        !matches!(
            self,
            Resource::Acl
                | Resource::Keyring
                | Resource::Mesh
                | Resource::Operator
                | Resource::Peering
        )
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule for a segmented resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentRule {
    /// The resource; never [`Resource::Intention`] (intentions live on service rules).
    pub(crate) resource: Resource,
    /// The exact name, or the prefix.
    pub(crate) name: String,
    /// Whether `name` is a prefix (`*_prefix` form).
    pub(crate) prefix: bool,
    /// The granted level.
    pub(crate) access: Access,
    /// The explicit `intentions` level (service rules only).
    pub(crate) intentions: Option<Access>,
}

impl SegmentRule {
    /// A rule without an explicit `intentions` level, as the synthesized identity rules are.
    fn new(resource: Resource, name: String, prefix: bool, access: Access) -> SegmentRule {
        SegmentRule {
            resource,
            name,
            prefix,
            access,
            intentions: None,
        }
    }
}

/// A parsed policy: what its rules grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The segmented rules in the order written (duplicates are merged by the authorizer).
    pub(crate) segments: Vec<SegmentRule>,
    /// `acl = "..."`.
    pub(crate) acl: Option<Access>,
    /// `keyring = "..."`.
    pub(crate) keyring: Option<Access>,
    /// `operator = "..."`.
    pub(crate) operator: Option<Access>,
    /// `mesh = "..."`.
    pub(crate) mesh: Option<Access>,
    /// `peering = "..."`.
    pub(crate) peering: Option<Access>,
}

/// Why rule text was rejected; the texts are Consul's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    /// The text is neither valid HCL nor valid JSON, or a value has the wrong type.
    #[error("Failed to parse ACL rules: {0}")]
    Syntax(String),
    /// A rule's `policy` is not a valid level; `rule` is Consul's rendering of the rule.
    #[error("Invalid {field} policy: {rule}")]
    InvalidPolicy {
        /// The rule's key, e.g. `key_prefix`.
        field: &'static str,
        /// The offending rule as Consul prints it (`%#v`).
        rule: String,
    },
    /// A service rule's `intentions` is not a valid level.
    #[error("Invalid {field} intentions policy: {rule}")]
    InvalidIntentions {
        /// `service` or `service_prefix`.
        field: &'static str,
        /// The offending rule as Consul prints it (`%#v`).
        rule: String,
    },
}

impl Rules {
    /// Parses Consul's rule text, HCL or JSON (Consul accepts both in a policy's `Rules`).
    /// Empty text → no rules.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        if text.is_empty() {
            return Ok(Rules::default());
        }
        let root = syntax::parse(text).map_err(RulesError::Syntax)?;
        let raw = RawPolicy::decode(&root)?;
        raw.validate()?;
        Ok(raw.into_rules())
    }

    /// The rules Consul synthesizes for a service identity (`ServiceIdentities: [{ServiceName}]`):
    /// service NAME write, service NAME-sidecar-proxy write, service_prefix "" read, node_prefix "" read.
    pub fn service_identity(name: &str) -> Rules {
        Rules {
            segments: vec![
                SegmentRule::new(Resource::Service, name.to_owned(), false, Access::Write),
                SegmentRule::new(
                    Resource::Service,
                    format!("{name}-sidecar-proxy"),
                    false,
                    Access::Write,
                ),
                SegmentRule::new(Resource::Service, String::new(), true, Access::Read),
                SegmentRule::new(Resource::Node, String::new(), true, Access::Read),
            ],
            ..Rules::default()
        }
    }

    /// The rules Consul synthesizes for a node identity: node NAME write, service_prefix "" read.
    pub fn node_identity(name: &str) -> Rules {
        Rules {
            segments: vec![
                SegmentRule::new(Resource::Node, name.to_owned(), false, Access::Write),
                SegmentRule::new(Resource::Service, String::new(), true, Access::Read),
            ],
            ..Rules::default()
        }
    }

    /// Whether the policy grants or denies nothing.
    pub fn is_empty(&self) -> bool {
        *self == Rules::default()
    }
}

/// A segmented rule kind of Consul's `PolicyRules`, in its field order.
#[derive(Debug, Clone, Copy)]
struct Field {
    /// The key in rule text.
    key: &'static str,
    resource: Resource,
    prefix: bool,
    /// Consul's Go type, for error texts.
    go_type: &'static str,
    /// The Go name of the label field.
    label_field: &'static str,
    /// Whether the rule has `intentions` (service rules).
    intentions: bool,
    /// Whether the Go type embeds `EnterpriseRule`.
    enterprise: bool,
    /// Whether `list` is a valid level (keys).
    allows_list: bool,
}

const fn field(key: &'static str, resource: Resource, prefix: bool) -> Field {
    let (go_type, label_field, enterprise) = match resource {
        Resource::Agent => ("AgentRule", "Node", false),
        Resource::Key => ("KeyRule", "Prefix", true),
        Resource::Node => ("NodeRule", "Name", true),
        Resource::Service => ("ServiceRule", "Name", true),
        Resource::Session => ("SessionRule", "Node", false),
        Resource::Event => ("EventRule", "Event", false),
        _ => ("PreparedQueryRule", "Prefix", false),
    };
    Field {
        key,
        resource,
        prefix,
        go_type,
        label_field,
        intentions: matches!(resource, Resource::Service),
        enterprise,
        allows_list: matches!(resource, Resource::Key),
    }
}

/// The segmented fields in the order Consul decodes and validates them.
const FIELDS: [Field; 14] = [
    field("agent", Resource::Agent, false),
    field("agent_prefix", Resource::Agent, true),
    field("key", Resource::Key, false),
    field("key_prefix", Resource::Key, true),
    field("node", Resource::Node, false),
    field("node_prefix", Resource::Node, true),
    field("service", Resource::Service, false),
    field("service_prefix", Resource::Service, true),
    field("session", Resource::Session, false),
    field("session_prefix", Resource::Session, true),
    field("event", Resource::Event, false),
    field("event_prefix", Resource::Event, true),
    field("query", Resource::Query, false),
    field("query_prefix", Resource::Query, true),
];

/// A rule as decoded, before validation: the strings Consul's structs hold.
#[derive(Debug, Default)]
struct RawRule {
    name: String,
    policy: String,
    intentions: String,
}

/// A policy as decoded, before validation.
#[derive(Debug, Default)]
struct RawPolicy {
    acl: String,
    /// Per entry of [`FIELDS`].
    segments: [Vec<RawRule>; 14],
    keyring: String,
    operator: String,
    mesh: String,
    peering: String,
}

/// Compares keys as Go's `strings.EqualFold` does for the ASCII names involved.
fn key_matches(key: &str, name: &str) -> bool {
    key.chars().count() == name.chars().count()
        && key.chars().zip(name.chars()).all(|(a, b)| {
            a == b || a.to_lowercase().eq(b.to_lowercase()) || a.to_uppercase().eq(b.to_uppercase())
        })
}

/// Decodes a string value as Consul's decoder does (numbers keep their text).
fn decode_string(path: &str, node: &Node) -> Result<String, RulesError> {
    match node {
        Node::Str(s) | Node::Num(s) => Ok(s.clone()),
        _ => Err(RulesError::Syntax(format!(
            "{path}: unknown type for string"
        ))),
    }
}

impl RawPolicy {
    fn decode(root: &[(String, Node)]) -> Result<RawPolicy, RulesError> {
        let mut raw = RawPolicy {
            acl: decode_scalar(root, "acl")?,
            ..RawPolicy::default()
        };
        for (field, rules) in FIELDS.iter().zip(raw.segments.iter_mut()) {
            for (_, node) in root.iter().filter(|(k, _)| key_matches(k, field.key)) {
                decode_group(field, node, rules)?;
            }
        }
        raw.keyring = decode_scalar(root, "keyring")?;
        raw.operator = decode_scalar(root, "operator")?;
        raw.mesh = decode_scalar(root, "mesh")?;
        raw.peering = decode_scalar(root, "peering")?;
        Ok(raw)
    }

    fn validate(&self) -> Result<(), RulesError> {
        let scalar =
            |field: &'static str, value: &str| match value.is_empty() || valid(value, false) {
                true => Ok(()),
                false => Err(RulesError::InvalidPolicy {
                    field,
                    rule: go_quote(value),
                }),
            };
        scalar("acl", &self.acl)?;
        for (field, rules) in FIELDS.iter().zip(&self.segments) {
            for rule in rules {
                if !valid(&rule.policy, field.allows_list) {
                    return Err(RulesError::InvalidPolicy {
                        field: field.key,
                        rule: go_rule(field, rule),
                    });
                }
                if field.intentions
                    && !rule.intentions.is_empty()
                    && !valid(&rule.intentions, false)
                {
                    return Err(RulesError::InvalidIntentions {
                        field: field.key,
                        rule: go_rule(field, rule),
                    });
                }
            }
        }
        scalar("keyring", &self.keyring)?;
        scalar("operator", &self.operator)?;
        scalar("mesh", &self.mesh)?;
        scalar("peering", &self.peering)
    }

    /// Converts validated strings to levels.
    fn into_rules(self) -> Rules {
        let level = |s: &str| Access::from_policy(s);
        let mut segments = Vec::new();
        for (field, rules) in FIELDS.iter().zip(self.segments) {
            for rule in rules {
                if let Some(access) = level(&rule.policy) {
                    segments.push(SegmentRule {
                        resource: field.resource,
                        name: rule.name,
                        prefix: field.prefix,
                        access,
                        intentions: level(&rule.intentions),
                    });
                }
            }
        }
        Rules {
            segments,
            acl: level(&self.acl),
            keyring: level(&self.keyring),
            operator: level(&self.operator),
            mesh: level(&self.mesh),
            peering: level(&self.peering),
        }
    }
}

/// Whether `policy` is a valid level (`list` only where allowed), as Consul's `isPolicyValid`.
fn valid(policy: &str, allow_list: bool) -> bool {
    match Access::from_policy(policy) {
        Some(Access::List) => allow_list,
        Some(_) => true,
        None => false,
    }
}

/// Decodes an unsegmented field; when set more than once (JSON), the last value wins.
fn decode_scalar(root: &[(String, Node)], key: &str) -> Result<String, RulesError> {
    let mut value = String::new();
    for (_, node) in root.iter().filter(|(k, _)| key_matches(k, key)) {
        value = decode_string(&format!("root.{key}"), node)?;
    }
    Ok(value)
}

/// Decodes the value of one segmented key: an object of `label → body`, or a list of such.
fn decode_group(field: &Field, node: &Node, out: &mut Vec<RawRule>) -> Result<(), RulesError> {
    match node {
        Node::Object(items) => {
            for (label, body) in items {
                decode_rule(field, label, body, out)?;
            }
            Ok(())
        }
        Node::List(items) => items
            .iter()
            .try_for_each(|item| decode_group(field, item, out)),
        _ => Err(RulesError::Syntax(format!(
            "root.{}: not an object type",
            field.key
        ))),
    }
}

/// Decodes one labelled rule body (a list of bodies yields one rule each).
fn decode_rule(
    field: &Field,
    label: &str,
    body: &Node,
    out: &mut Vec<RawRule>,
) -> Result<(), RulesError> {
    let path = format!("root.{}", field.key);
    let mut rule = RawRule {
        name: label.to_owned(),
        ..RawRule::default()
    };
    match body {
        Node::Object(items) => {
            for (key, value) in items {
                if key_matches(key, "policy") {
                    rule.policy = decode_string(&format!("{path}.Policy"), value)?;
                } else if field.intentions && key_matches(key, "intentions") {
                    rule.intentions = decode_string(&format!("{path}.Intentions"), value)?;
                }
            }
        }
        Node::List(items) => {
            return items
                .iter()
                .try_for_each(|item| decode_rule(field, label, item, out));
        }
        // A literal where a body belongs is decoded as the one-item body `label = literal`.
        Node::Str(_) | Node::Num(_) => {
            if key_matches(label, "policy") {
                rule.policy = decode_string(&path, body)?;
            } else if field.intentions && key_matches(label, "intentions") {
                rule.intentions = decode_string(&path, body)?;
            }
        }
        Node::Bool(_) | Node::Null => {
            return Err(RulesError::Syntax(format!(
                "{path}: not an object type for struct"
            )));
        }
    }
    out.push(rule);
    Ok(())
}

/// Renders a rule as Go's `%#v` renders a pointer to Consul's rule struct.
fn go_rule(field: &Field, rule: &RawRule) -> String {
    let mut out = format!(
        "&acl.{}{{{}:{}, Policy:{}",
        field.go_type,
        field.label_field,
        go_quote(&rule.name),
        go_quote(&rule.policy)
    );
    if field.intentions {
        out.push_str(&format!(", Intentions:{}", go_quote(&rule.intentions)));
    }
    if field.enterprise {
        out.push_str(", EnterpriseRule:acl.EnterpriseRule{}");
    }
    out.push('}');
    out
}
