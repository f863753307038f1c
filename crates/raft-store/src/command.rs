//! Commands replicated through raft and the responses the state machine gives back.
//!
//! A command carries the leader's wall clock (`now_ms`) so that every replica computes the same
//! lock-delay windows: the state machine itself never reads a clock.

use serde::{Deserialize, Serialize};

/// One replicated write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unix milliseconds on the proposing server.
    pub now_ms: u64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Kv(kv::KvOp),
    Txn(Vec<kv::TxnKvOp>),
    CreateSession(kv::SessionRequest),
    DestroySession {
        id: String,
    },
    /// Leader housekeeping: forget KV tombstones at or below this index.
    ReapTombstones {
        up_to_index: u64,
    },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries, and commands with nothing to say.
    None,
    /// Consul's `true`/`false` outcome (KV set, cas, acquire, release, delete; session destroy).
    Bool(bool),
    Txn(Result<Vec<kv::TxnResult>, Vec<kv::TxnError>>),
    /// The command was valid to replicate but the state refused it (e.g. acquire with an unknown
    /// session). The text is the domain error, shown to the client as Consul does.
    Rejected(String),
}
