//! Consul's KV store, sessions and KV transactions as pure, replicated state.
//!
//! Every write takes the raft log index it is applied at (it becomes `CreateIndex` /
//! `ModifyIndex`) and the proposer's wall clock `now_ms`, so every replica that applies the same
//! log computes byte-identical state. The whole [`KvStore`] is serialized into raft snapshots.
//!
//! This crate never depends on tokio, IO (sockets, files, clocks, randomness), raft or HTTP:
//! the raft state machine drives it, and the HTTP layer owns Consul's wire casing and status
//! codes. Session TTL timers ([`SessionTimers`]) are leader-local bookkeeping driven by the
//! server with its own clock; they are not part of the replicated state.

mod entry;
mod error;
mod session;
mod store;
mod timers;
mod txn;

#[cfg(test)]
mod testing;

pub use entry::DirEntry;
pub use error::KvError;
pub use session::{
    normalize_lock_delay, validate_session_ttl, Behavior, ServiceCheck, Session, SessionRequest,
    DEFAULT_LOCK_DELAY, MAX_LOCK_DELAY, SESSION_TTL_MAX,
};
pub use store::{Changes, KvOp, KvStore};
pub use timers::{SessionTimers, SESSION_TTL_MULTIPLIER};
pub use txn::{TxnError, TxnKvOp, TxnResult, TxnVerb};
