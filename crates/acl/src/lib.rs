//! Consul's ACL system as pure state: the rule language of policies, the decisions an
//! authorizer makes from a token's policies, and the replicated tokens, policies and roles.
//! *Knows nothing about tokio, IO, raft or HTTP; time is an argument.*

pub mod authorizer;
pub mod rules;
pub mod store;
pub mod wire;

pub use authorizer::{Authorizer, DefaultPolicy};
pub use rules::{Access, Resource, Rules, RulesError};
pub use store::{AclApplied, AclError, AclOp, AclStore, Resolved, TokenGrant};

/// Consul's `PermissionDeniedError` text: `Permission denied: token with AccessorID '…' lacks
/// permission 'service:write' on "web"` (without `on …` for resources that have no names).
pub fn permission_denied(
    accessor_id: &str,
    resource: Resource,
    segment: Option<&str>,
    access: Access,
) -> String {
    let mut text = format!(
        "Permission denied: token with AccessorID '{accessor_id}' lacks permission '{}:{}'",
        resource.as_str(),
        access.as_str()
    );
    if let Some(segment) = segment.filter(|s| !s.is_empty()) {
        text.push_str(&format!(" on {segment:?}"));
    }
    text
}
