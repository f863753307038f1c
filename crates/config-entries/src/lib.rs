//! Consul's config entries of kinds `service-defaults` and `proxy-defaults` as pure,
//! replicated state: the entry model, the store behind `/v1/config` (upserts and deletes with
//! optional check-and-set, lookups, lists, the table's index), Consul's normalization and
//! validation with Consul's error texts, and Consul's JSON in both directions.
//!
//! What mesh acts on is modelled: the name, the protocol (a service-defaults `Protocol`, or
//! `Config.protocol` of the global proxy-defaults), the proxy `Mode` and `Meta`. Every other
//! field Consul defines for the two kinds is kept as the client sent it and written back in
//! Consul's shape, so entries round-trip; a field Consul does not define is refused, as Consul
//! refuses it. Names are case-insensitive keys, as in Consul's state store. Any other kind is
//! refused with Consul's `invalid config entry kind` error.
//!
//! Every write takes the raft index it is applied at, so replicas applying the same log hold
//! identical state. This crate never depends on tokio, IO, clocks, randomness, raft or HTTP.

mod error;
mod fields;
mod go;
mod model;
mod store;
mod validate;
pub mod wire;

pub use error::ConfigEntryError;
/// Go's `%q`, as Consul's error texts quote names (shared with the API's other errors).
pub use model::{ConfigEntry, ConfigEntryWrite, JsonObject, Kind, Mode, Protocol, PROXY_GLOBAL};
pub use store::{Applied, ConfigEntries, ConfigEntryOp};
