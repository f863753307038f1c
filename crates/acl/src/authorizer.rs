//! A token's compiled decisions, following Consul's `acl/policy_authorizer.go` (rules of several
//! policies merged as `acl/policy_merger.go` does) chained to the static default authorizer of
//! `acl/static_authorizer.go`.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::rules::{Access, Resource, Rules};

/// What an ACL-enabled datacenter decides when no rule matches (`acl.default_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Everything not denied by a rule is allowed, except ACL management.
    #[default]
    Allow,
    /// Everything not granted by a rule is denied.
    Deny,
}

impl DefaultPolicy {
    /// The policy as configured: `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultPolicy::Allow => "allow",
            DefaultPolicy::Deny => "deny",
        }
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`DefaultPolicy`] that is neither `allow` nor `deny`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ACL default policy {0:?}: must be \"allow\" or \"deny\"")]
pub struct InvalidDefaultPolicy(pub String);

impl FromStr for DefaultPolicy {
    type Err = InvalidDefaultPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(DefaultPolicy::Allow),
            "deny" => Ok(DefaultPolicy::Deny),
            other => Err(InvalidDefaultPolicy(other.to_owned())),
        }
    }
}

/// The outcome of one authorizer in Consul's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
    /// No rule applies; the next authorizer (the default policy) decides.
    Default,
}

/// Consul's `enforce`: what a rule of level `rule` decides for a request of `requested`.
fn enforce(rule: Access, requested: Access) -> Decision {
    if rule.grants(requested) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// The exact and prefix rule at one name.
#[derive(Debug, Clone, Copy, Default)]
struct Leaf {
    exact: Option<Access>,
    prefix: Option<Access>,
}

impl Leaf {
    fn is_empty(&self) -> bool {
        self.exact.is_none() && self.prefix.is_none()
    }
}

/// One node of a byte trie.
#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Children by next byte, sorted.
    children: Vec<(u8, u32)>,
    leaf: Leaf,
}

/// The rules of one segmented resource, as a byte trie (Consul uses a radix tree; matching is
/// by bytes in both).
#[derive(Debug, Clone)]
struct RuleTree {
    nodes: Vec<TrieNode>,
}

impl Default for RuleTree {
    fn default() -> Self {
        RuleTree {
            nodes: vec![TrieNode::default()],
        }
    }
}

/// Keeps the stronger of two levels by merge precedence.
fn stronger(existing: Option<Access>, new: Access) -> Access {
    match existing {
        Some(old) if old.precedence() >= new.precedence() => old,
        _ => new,
    }
}

impl RuleTree {
    fn child(&self, node: usize, byte: u8) -> Option<usize> {
        let children = &self.nodes[node].children;
        children
            .binary_search_by_key(&byte, |&(b, _)| b)
            .ok()
            .map(|i| children[i].1 as usize)
    }

    /// The node for `name`, created if missing.
    fn node_mut(&mut self, name: &str) -> &mut Leaf {
        let mut node = 0;
        for &byte in name.as_bytes() {
            node = match self.nodes[node]
                .children
                .binary_search_by_key(&byte, |&(b, _)| b)
            {
                Ok(i) => self.nodes[node].children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    // A trie has at most one node per rule byte; names never approach u32::MAX.
                    let index = u32::try_from(next).unwrap_or(u32::MAX);
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.insert(i, (byte, index));
                    next
                }
            };
        }
        &mut self.nodes[node].leaf
    }

    /// Inserts a rule, merging with one already at the same name and form.
    fn insert(&mut self, name: &str, prefix: bool, access: Access) {
        let leaf = self.node_mut(name);
        let slot = if prefix {
            &mut leaf.prefix
        } else {
            &mut leaf.exact
        };
        *slot = Some(stronger(*slot, access));
    }

    /// The node exactly at `name`, if any.
    fn find(&self, name: &str) -> Option<usize> {
        name.as_bytes()
            .iter()
            .try_fold(0, |node, &byte| self.child(node, byte))
    }

    /// Consul's `getPolicy`: the exact rule for `segment`, else the longest prefix rule.
    fn lookup(&self, segment: &str) -> Option<Access> {
        let mut found = self.nodes[0].leaf.prefix;
        let mut node = 0;
        for &byte in segment.as_bytes() {
            match self.child(node, byte) {
                Some(next) => node = next,
                None => return found,
            }
            if let Some(prefix) = self.nodes[node].leaf.prefix {
                found = Some(prefix);
            }
        }
        self.nodes[node].leaf.exact.or(found)
    }

    fn decide(&self, segment: &str, requested: Access) -> Decision {
        self.lookup(segment)
            .map_or(Decision::Default, |rule| enforce(rule, requested))
    }

    fn leaves(&self) -> impl Iterator<Item = &Leaf> {
        self.nodes.iter().map(|n| &n.leaf).filter(|l| !l.is_empty())
    }

    /// Consul's `allAllowed`: whether every name is granted `requested`.
    fn all_allowed(&self, requested: Access) -> Decision {
        let mut decision = Decision::Default;
        if let Some(root) = self.nodes[0].leaf.prefix {
            decision = enforce(root, requested);
            if decision == Decision::Deny {
                return Decision::Deny;
            }
        }
        let denies = |leaf: &Leaf| {
            let prefix = leaf.prefix.map(|p| enforce(p, requested));
            match (prefix, leaf.exact) {
                (Some(Decision::Deny), _) => true,
                (_, Some(exact)) => enforce(exact, requested) == Decision::Deny,
                (prefix, None) => prefix == Some(Decision::Deny),
            }
        };
        if self.leaves().any(denies) {
            return Decision::Deny;
        }
        decision
    }

    /// Consul's `anyAllowed`: whether some name is granted `requested`.
    fn any_allowed(&self, requested: Access) -> Decision {
        let mut decision = Decision::Default;
        if let Some(root) = self.nodes[0].leaf.prefix {
            decision = enforce(root, requested);
            if decision == Decision::Allow {
                return Decision::Allow;
            }
        }
        let allows = |leaf: &Leaf| {
            leaf.prefix.is_some_and(|p| p.grants(requested))
                || leaf.exact.is_some_and(|e| e.grants(requested))
        };
        if self.leaves().any(allows) {
            return Decision::Allow;
        }
        decision
    }

    /// Consul's `KeyWritePrefix`.
    fn write_prefix(&self, prefix: &str) -> Decision {
        // The longest prefix rule covering `prefix` (including one at `prefix` itself).
        let mut base = Decision::Default;
        let mut node = Some(0);
        let mut bytes = prefix.as_bytes().iter();
        while let Some(current) = node {
            if let Some(rule) = self.nodes[current].leaf.prefix {
                base = enforce(rule, Access::Write);
            }
            node = bytes.next().and_then(|&byte| self.child(current, byte));
        }
        if base == Decision::Deny {
            return Decision::Deny;
        }
        // Every rule at or below `prefix` must grant write.
        if let Some(start) = self.find(prefix) {
            let mut stack = vec![start];
            while let Some(current) = stack.pop() {
                let node = &self.nodes[current];
                let leaf = node.leaf;
                if leaf.prefix.is_some_and(|p| p != Access::Write)
                    || leaf.exact.is_some_and(|e| e != Access::Write)
                {
                    return Decision::Deny;
                }
                stack.extend(node.children.iter().map(|&(_, child)| child as usize));
            }
        }
        base
    }
}

/// The compiled rules of a token (Consul's `policyAuthorizer`).
#[derive(Debug, Clone, Default)]
struct Compiled {
    agent: RuleTree,
    event: RuleTree,
    intention: RuleTree,
    key: RuleTree,
    node: RuleTree,
    query: RuleTree,
    service: RuleTree,
    session: RuleTree,
    acl: Option<Access>,
    keyring: Option<Access>,
    operator: Option<Access>,
    mesh: Option<Access>,
    peering: Option<Access>,
}

impl Compiled {
    fn tree(&self, resource: Resource) -> Option<&RuleTree> {
        Some(match resource {
            Resource::Agent => &self.agent,
            Resource::Event => &self.event,
            Resource::Intention => &self.intention,
            Resource::Key => &self.key,
            Resource::Node => &self.node,
            Resource::Query => &self.query,
            Resource::Service => &self.service,
            Resource::Session => &self.session,
            Resource::Acl
            | Resource::Keyring
            | Resource::Mesh
            | Resource::Operator
            | Resource::Peering => return None,
        })
    }

    fn tree_mut(&mut self, resource: Resource) -> Option<&mut RuleTree> {
        Some(match resource {
            Resource::Agent => &mut self.agent,
            Resource::Event => &mut self.event,
            Resource::Intention => &mut self.intention,
            Resource::Key => &mut self.key,
            Resource::Node => &mut self.node,
            Resource::Query => &mut self.query,
            Resource::Service => &mut self.service,
            Resource::Session => &mut self.session,
            Resource::Acl
            | Resource::Keyring
            | Resource::Mesh
            | Resource::Operator
            | Resource::Peering => return None,
        })
    }

    /// The decision for an unsegmented resource; mesh and peering fall back to operator.
    fn unsegmented(&self, resource: Resource, requested: Access) -> Decision {
        let rule = match resource {
            Resource::Acl => self.acl,
            Resource::Keyring => self.keyring,
            Resource::Operator => self.operator,
            Resource::Mesh => self.mesh.or(self.operator),
            Resource::Peering => self.peering.or(self.operator),
            _ => None,
        };
        rule.map_or(Decision::Default, |rule| enforce(rule, requested))
    }
}

/// A token's compiled decisions.
#[derive(Debug, Clone)]
pub struct Authorizer {
    /// `None` for the management authorizer.
    rules: Option<Box<Compiled>>,
    default: DefaultPolicy,
}

impl Authorizer {
    /// Everything allowed (the global-management policy).
    pub fn management() -> Authorizer {
        Authorizer {
            rules: None,
            default: DefaultPolicy::Allow,
        }
    }

    /// Nothing but the default policy (e.g. the anonymous token with no policies).
    pub fn default_only(default: DefaultPolicy) -> Authorizer {
        Authorizer::new([], default)
    }

    /// The union of `rules` (several policies/identities of one token), merged as Consul's
    /// policy merger does, falling back to `default` where no rule matches.
    pub fn new<'a>(
        rules: impl IntoIterator<Item = &'a Rules>,
        default: DefaultPolicy,
    ) -> Authorizer {
        let mut compiled = Compiled::default();
        // Service rules merge policy and intentions separately before intentions are derived.
        let mut services: BTreeMap<(bool, &str), (Access, Option<Access>)> = BTreeMap::new();
        let merge = |slot: &mut Option<Access>, new: Option<Access>| {
            if let Some(new) = new {
                *slot = Some(stronger(*slot, new));
            }
        };
        for policy in rules {
            for rule in &policy.segments {
                if rule.resource == Resource::Service {
                    services
                        .entry((rule.prefix, &rule.name))
                        .and_modify(|(access, intentions)| {
                            *access = stronger(Some(*access), rule.access);
                            merge(intentions, rule.intentions);
                        })
                        .or_insert((rule.access, rule.intentions));
                } else if let Some(tree) = compiled.tree_mut(rule.resource) {
                    tree.insert(&rule.name, rule.prefix, rule.access);
                }
            }
            merge(&mut compiled.acl, policy.acl);
            merge(&mut compiled.keyring, policy.keyring);
            merge(&mut compiled.operator, policy.operator);
            merge(&mut compiled.mesh, policy.mesh);
            merge(&mut compiled.peering, policy.peering);
        }
        for ((prefix, name), (access, intentions)) in services {
            compiled.service.insert(name, prefix, access);
            let intentions = intentions.unwrap_or(match access {
                Access::Read | Access::Write => Access::Read,
                Access::Deny | Access::List => Access::Deny,
            });
            compiled.intention.insert(name, prefix, intentions);
        }
        Authorizer {
            rules: Some(Box::new(compiled)),
            default,
        }
    }

    /// Whether this is the management authorizer.
    pub fn is_management(&self) -> bool {
        self.rules.is_none()
    }

    /// The default policy that decides where no rule matches.
    pub fn default_policy(&self) -> DefaultPolicy {
        self.default
    }

    /// Resolves a rule decision through the default policy (Consul's static authorizer,
    /// which never grants ACL management).
    fn resolve(&self, resource: Resource, decision: Decision) -> bool {
        match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Default => self.default == DefaultPolicy::Allow && resource != Resource::Acl,
        }
    }

    /// Whether `access` on `resource` named `segment` (ignored for unsegmented resources) is granted.
    ///
    /// Asking for [`Access::Deny`] is never granted. For [`Resource::Intention`], the segment
    /// `*` asks about any intention: read needs read on some destination, write on every one.
    pub fn allows(&self, resource: Resource, segment: &str, access: Access) -> bool {
        if access == Access::Deny {
            return false;
        }
        let Some(compiled) = &self.rules else {
            return true;
        };
        let decision = match compiled.tree(resource) {
            Some(tree) if resource == Resource::Intention && segment == "*" => match access {
                Access::Write => tree.all_allowed(access),
                _ => tree.any_allowed(access),
            },
            Some(tree) => tree.decide(segment, access),
            None => compiled.unsegmented(resource, access),
        };
        self.resolve(resource, decision)
    }

    /// Consul's KeyWritePrefix: write on `prefix` and no deny (or lesser rule) below it (recursive delete).
    pub fn allows_key_write_prefix(&self, prefix: &str) -> bool {
        match &self.rules {
            None => true,
            Some(compiled) => self.resolve(Resource::Key, compiled.key.write_prefix(prefix)),
        }
    }

    /// Whether `access` is granted on every name of `resource` (Consul's ServiceReadAll, NodeReadAll...).
    pub fn allows_all(&self, resource: Resource, access: Access) -> bool {
        if access == Access::Deny {
            return false;
        }
        match &self.rules {
            None => true,
            Some(compiled) => match compiled.tree(resource) {
                Some(tree) => self.resolve(resource, tree.all_allowed(access)),
                None => self.allows(resource, "", access),
            },
        }
    }

    /// Whether `access` is granted on some name of `resource` (Consul's ServiceWriteAny).
    pub fn allows_any(&self, resource: Resource, access: Access) -> bool {
        if access == Access::Deny {
            return false;
        }
        match &self.rules {
            None => true,
            Some(compiled) => match compiled.tree(resource) {
                Some(tree) => self.resolve(resource, tree.any_allowed(access)),
                None => self.allows(resource, "", access),
            },
        }
    }
}
