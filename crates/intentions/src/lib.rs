//! Consul's Connect intentions as pure, replicated state: the intention model, the store
//! behind `/v1/connect/intentions/*` (exact upserts, legacy ID-based writes, lookups, lists),
//! precedence, matching, `/v1/connect/intentions/check`, and the authorization decision
//! behind `POST /v1/agent/connect/authorize` and the sidecar's L7 enforcement.
//!
//! The store mirrors Consul ≥ 1.9, where the intentions towards one destination live in one
//! `service-intentions` config entry: they share its raft indexes, are validated together
//! (errors say `Sources[i]`), and an exact (name-based) write strips the legacy IDs of every
//! intention towards that destination. Only the default namespace and partition exist.
//!
//! Every write takes the raft index it is applied at, and the leader passes in what is not
//! deterministic (new IDs, timestamps), so replicas applying the same log hold identical state.
//! This crate never depends on tokio, IO, clocks, randomness, raft or HTTP.

mod authorize;
mod decision;
mod error;
mod model;
mod precedence;
mod spiffe;
mod store;
mod validate;
pub mod wire;
mod write;

pub use authorize::{AuthorizeError, AuthorizeRequest, AuthorizeResponse};
pub use decision::{
    authorize, authorize_in, Decision, DefaultPolicy, HttpRequest, MatchBy, MatchedIntention,
};
pub use error::IntentionError;
pub use model::{
    Action, HeaderMatch, HeaderMatchKind, HttpMatch, Intention, PathMatch, Pattern, Permission,
    SourceType, DEFAULT_NAMESPACE, WILDCARD,
};
pub use precedence::{precedence, precedence_order};
pub use spiffe::{CertUri, SpiffeError, SpiffeIdService};
pub use store::{Applied, IntentionOp, Intentions};
pub use write::{HeaderPermissionWrite, HttpPermissionWrite, IntentionWrite, PermissionWrite};

#[cfg(test)]
mod testing;
