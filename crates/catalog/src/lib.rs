//! Consul's service catalog as pure, replicated state: nodes, services, health checks, health
//! aggregation, per-service and per-node indexes for blocking queries, and the `?filter`
//! expression language that catalog and health endpoints accept.
//!
//! Every write takes the raft log index it is applied at, so every replica that applies the
//! same log holds identical state. This crate never depends on tokio, IO, clocks, raft or HTTP.

pub mod filter;
mod meta;
mod model;
mod status;
mod store;
pub mod wire;

pub use meta::validate_meta;
pub use model::{
    aggregate, HealthCheck, Node, NodeState, Proxy, Service, ServiceAddress, ServiceHealth,
    Upstream, Weights,
};
pub use status::Status;
pub use store::{topic, Catalog, CatalogError, CatalogOp, Effects, Registration};
