//! The control side of `mesh-sidecar`: everything a sidecar learns, it learns from its local
//! agent's HTTP API, and this crate turns those answers into a running [`proxy`] data plane.
//!
//! - [`config`] (pure): the proxy registration, upstream instances, roots and leaf, read from
//!   Consul's JSON.
//! - [`agent_api`]: the agent's HTTP API with blocking reads (`?index=`, `?hash=`).
//! - [`authorize`]: inbound decisions from cached intentions and the agent's default policy.
//! - [`run`]: composition: open the listeners, follow every resource, apply changes live.
//! - [`prometheus`]: the `/metrics` endpoint.
//!
//! It never depends on the agent, server, raft, RocksDB or catalog crates: a sidecar talks to
//! its agent only over HTTP, as Consul's built-in proxy does, so it links none of them.

pub mod agent_api;
pub mod authorize;
pub mod config;
mod follow;
pub mod prometheus;
pub mod run;

pub use agent_api::{AgentApi, AgentError};
pub use config::{ConfigError, InboundSpec, ProxyConfig, UpstreamSpec};
pub use run::{Mode, Options, Sidecar, SidecarError};
