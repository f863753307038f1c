//! A mesh server's raft member as the rest of the server sees it: the commands and their
//! application to the pure domain crates (kv, catalog, ca, intentions, config-entries, acl), the
//! replicated state and its snapshot archive, openraft's type configuration, and [`RaftNode`],
//! the handle that proposes writes, confirms reads and runs the leader's housekeeping.
//!
//! This crate never depends on RocksDB or on the disk layout: the log and snapshot storage
//! live in `raft-store`, so that a client agent, which links this crate for its wire types and
//! archive inspection, carries none of the server's storage. It never depends on HTTP either.

mod applied;
mod archive;
mod as_json;
mod catalog_acl;
mod command;
mod connect;
mod legacy;
mod network;
mod node;
mod notify;
mod state;
mod stats;
mod types;

pub use applied::{Applied, AppliedState, LogPosition, LogTail, StateGuard, StoreReader};
pub use archive::{pack, unpack, ArchiveError, ArchiveMeta, ARCHIVE_VERSION};
pub use catalog_acl::{vet_catalog_op, Missing};
pub use command::{CaBase, Command, Op, Response};
pub use connect::{CaUpdateError, SignError};
pub use legacy::{StateV1, StateV2};
pub use network::NoPeers;
pub use node::{
    BoxFuture, ConsensusError, Forward, LeaderView, RaftNode, RaftServer, Written, HOLD_TIMEOUT,
    TOMBSTONE_TTL,
};
pub use notify::{Notifier, Subscription, Topic};
pub use state::{
    AutopilotConfig, State, TABLE_ACL, TABLE_CA, TABLE_CONFIG_ENTRIES, TABLE_INTENTIONS,
};
pub use stats::{LatencyStats, RaftStats};
pub use types::{NodeId, Raft, ServerNode, TypeConfig};
