//! What the core reports to its owner: member changes, user events and queries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::member::Member;

/// Something the agent should react to. Drained with [`crate::Gossip::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member became alive: first seen, or back after failing or leaving.
    MemberJoin(Member),
    /// A live member changed its address or tags.
    MemberUpdate(Member),
    /// A member stopped answering probes.
    MemberFailed(Member),
    /// A member left gracefully or was force-left.
    MemberLeft(Member),
    /// A failed or left member was removed from the table (timeout or `force_leave` with prune).
    MemberReaped(Member),
    /// A user event, delivered once per node, the sender included.
    User(UserEvent),
    /// A query this node should answer with [`crate::Gossip::respond`].
    Query(QueryRequest),
    /// One member's answer to a query this node started.
    QueryResponse {
        /// The query answered.
        id: QueryId,
        /// Name of the answering node.
        from: String,
        /// The answer.
        payload: Vec<u8>,
    },
    /// A query this node started has timed out; no more responses will be reported.
    QueryDone {
        /// The finished query.
        id: QueryId,
    },
}

/// A user event (Consul's `PUT /v1/event/fire/:name`). Filters are carried, not applied: the agent does it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    /// UUID chosen by the caller; events are deduplicated by it.
    pub id: String,
    /// Event name.
    pub name: String,
    /// Opaque payload.
    pub payload: Vec<u8>,
    /// Regular expression on node names, or empty.
    pub node_filter: String,
    /// Regular expression on service names, or empty.
    pub service_filter: String,
    /// Regular expression on service tags, or empty.
    pub tag_filter: String,
    /// Lamport time assigned by the core when the event is fired.
    pub ltime: u64,
}

/// Identifies one query cluster-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueryId(pub u64);

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A query delivered to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRequest {
    /// Pass it to [`crate::Gossip::respond`].
    pub id: QueryId,
    /// Query name, e.g. `_keyring-install`.
    pub name: String,
    /// Opaque payload.
    pub payload: Vec<u8>,
    /// Name of the node that asked.
    pub from: String,
}
