//! Cluster-wide messages that ride on foca's custom broadcasts: user events, queries, leave intents and
//! suspicion confirmations.
//!
//! foca hands every received item to [`BroadcastFilter`], which decides whether it is new (foca then keeps
//! re-gossiping it `max_transmissions` times) and passes new items to the engine through a channel, since
//! foca owns the handler and offers no way back to it.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::event::{QueryId, UserEvent};
use crate::identity::NodeIdentity;

/// User events older than the newest one seen by this many Lamport ticks are dropped (serf's event buffer).
pub(crate) const EVENT_WINDOW: u64 = 512;

/// How many broadcast keys the filter remembers for deduplication.
const SEEN_CAPACITY: usize = 4096;

/// One custom broadcast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum BroadcastItem {
    UserEvent(UserEvent),
    Query(QueryMessage),
    Leave(LeaveIntent),
    Suspicion(SuspicionConfirmation),
}

/// "`from` suspects `member` (life `incarnation`, foca incarnation `foca_incarnation`)": Lifeguard's
/// independent confirmation, which shortens the suspicion timeout of the others who suspect it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct SuspicionConfirmation {
    pub(crate) member: String,
    pub(crate) incarnation: u64,
    pub(crate) foca_incarnation: u16,
    pub(crate) from: String,
}

/// A query as it travels: the request plus where to send answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueryMessage {
    pub(crate) id: QueryId,
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) origin: String,
    pub(crate) origin_addr: SocketAddr,
    pub(crate) timeout_ms: u64,
}

/// "Node `name` in life `incarnation` is leaving": its own goodbye, or an operator's force-leave.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct LeaveIntent {
    pub(crate) name: String,
    pub(crate) incarnation: u64,
    pub(crate) kind: LeaveKind,
}

/// Who says the node is leaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum LeaveKind {
    /// The node itself, before going down.
    Graceful,
    /// An operator, about a failed node; `prune` removes it from tables at once.
    Forced { prune: bool },
}

impl BroadcastItem {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("broadcast items always serialize")
    }

    fn key(&self) -> BroadcastKey {
        match self {
            BroadcastItem::UserEvent(event) => BroadcastKey::Event {
                id: event.id.clone(),
                ltime: event.ltime,
            },
            BroadcastItem::Query(query) => BroadcastKey::Query {
                origin: query.origin.clone(),
                id: query.id,
            },
            BroadcastItem::Leave(intent) => BroadcastKey::Leave(intent.clone()),
            BroadcastItem::Suspicion(confirmation) => BroadcastKey::Suspicion(confirmation.clone()),
        }
    }
}

/// Identifies a broadcast for deduplication and for foca's replacement of queued broadcasts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BroadcastKey {
    Event { id: String, ltime: u64 },
    Query { origin: String, id: QueryId },
    Leave(LeaveIntent),
    Suspicion(SuspicionConfirmation),
}

impl foca::Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            // An event far older than a new one would be dropped on arrival anyway: stop sending it.
            (
                BroadcastKey::Event { id, ltime },
                BroadcastKey::Event {
                    id: old_id,
                    ltime: old_ltime,
                },
            ) => id == old_id || old_ltime.saturating_add(EVENT_WINDOW) < *ltime,
            (BroadcastKey::Query { .. }, BroadcastKey::Query { .. }) => self == other,
            // A newer life's intent, or a prune after a plain force-leave, supersedes the older intent.
            (BroadcastKey::Leave(new), BroadcastKey::Leave(old)) => {
                new.name == old.name
                    && (new.incarnation > old.incarnation
                        || (new.incarnation == old.incarnation
                            && (new.kind == old.kind
                                || new.kind == LeaveKind::Forced { prune: true })))
            }
            // A confirmation about a newer incarnation means the member refuted the older suspicion.
            (BroadcastKey::Suspicion(new), BroadcastKey::Suspicion(old)) => {
                new.member == old.member
                    && (new == old
                        || (new.incarnation, new.foca_incarnation)
                            > (old.incarnation, old.foca_incarnation))
            }
            _ => false,
        }
    }
}

/// Why foca's handler rejected a broadcast.
#[derive(Debug, thiserror::Error)]
#[error("undecodable broadcast: {0}")]
pub(crate) struct BroadcastError(#[from] postcard::Error);

/// foca's broadcast handler: decodes, deduplicates, and forwards new items to the engine.
pub(crate) struct BroadcastFilter {
    seen: RecentSet<BroadcastKey>,
    newest_event_ltime: u64,
    inbox: mpsc::Sender<BroadcastItem>,
}

impl BroadcastFilter {
    pub(crate) fn new() -> (Self, mpsc::Receiver<BroadcastItem>) {
        let (inbox, receiver) = mpsc::channel();
        let filter = BroadcastFilter {
            seen: RecentSet::new(SEEN_CAPACITY),
            newest_event_ltime: 0,
            inbox,
        };
        (filter, receiver)
    }

    fn is_stale(&self, item: &BroadcastItem) -> bool {
        match item {
            BroadcastItem::UserEvent(event) => {
                event.ltime.saturating_add(EVENT_WINDOW) < self.newest_event_ltime
            }
            BroadcastItem::Query(_) | BroadcastItem::Leave(_) | BroadcastItem::Suspicion(_) => {
                false
            }
        }
    }
}

impl foca::BroadcastHandler<NodeIdentity> for BroadcastFilter {
    type Key = BroadcastKey;
    type Error = BroadcastError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeIdentity>,
    ) -> Result<Option<BroadcastKey>, BroadcastError> {
        let item: BroadcastItem = postcard::from_bytes(data)?;
        if self.is_stale(&item) {
            return Ok(None);
        }
        let key = item.key();
        if !self.seen.insert(key.clone()) {
            return Ok(None);
        }
        if let BroadcastItem::UserEvent(event) = &item {
            self.newest_event_ltime = self.newest_event_ltime.max(event.ltime);
        }
        // The receiver lives in the engine next to foca, so it outlives every call into this handler.
        let _ = self.inbox.send(item);
        Ok(Some(key))
    }
}

/// A set that forgets its oldest entries beyond a capacity.
#[derive(Debug)]
pub(crate) struct RecentSet<K> {
    members: HashSet<K>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Clone + Eq + Hash> RecentSet<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentSet {
            members: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Inserts `key`; false when it was already present.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if !self.members.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
