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
