//! The agent that runs on every node (inside `mesh-client`, and inside `mesh-server` for the
//! server's own node): the node's local services and checks, the check runners, and
//! anti-entropy with the catalog.
//!
//! The agent is the source of truth for its node. It never touches raft, RocksDB or HTTP: it
//! reaches the catalog through the [`CatalogClient`] boundary that the binaries provide, and
//! the HTTP layer (`api`) calls into it.

pub mod checks;
pub mod connect;
pub mod definition;
pub mod dns;
pub mod events;
pub mod identity;
pub mod local;
pub mod membership;
mod persist;
mod runtime;
pub mod signals;
#[cfg(test)]
mod testing;
pub mod view;

pub use runtime::{
    scale_factor, AddressOwner, Agent, AgentConfig, AgentError, CatalogClient, Source,
};
