//! Bookkeeping for queries: those this node asked, and those it was asked and may still answer.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::event::QueryId;

/// Longest query timeout; longer ones (including those received) are cut to this.
pub(crate) const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(3600);

/// Most queries this node remembers having been asked; the oldest are forgotten first.
const MAX_INCOMING: usize = 256;

/// Where to send the answer to a query this node received.
#[derive(Clone, Debug)]
pub(crate) struct Asker {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    deadline: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Queries {
    /// Started here: who has answered so far, until the deadline.
    outgoing: HashMap<QueryId, HashSet<String>>,
    /// Received here and not answered yet.
    incoming: BTreeMap<QueryId, Asker>,
    incoming_order: VecDeque<QueryId>,
}

impl Queries {
    pub(crate) fn start(&mut self, id: QueryId) {
        self.outgoing.insert(id, HashSet::new());
    }

    /// True when `from`'s answer to our query `id` should be reported (first answer, before the deadline).
    pub(crate) fn accept_response(&mut self, id: QueryId, from: &str) -> bool {
        self.outgoing
            .get_mut(&id)
            .is_some_and(|responders| responders.insert(from.to_owned()))
    }

    /// True when the query was still open.
    pub(crate) fn finish(&mut self, id: QueryId) -> bool {
        self.outgoing.remove(&id).is_some()
    }

    pub(crate) fn received(
        &mut self,
        id: QueryId,
        name: String,
        addr: SocketAddr,
        timeout: Duration,
        now: Instant,
    ) {
        let asker = Asker {
            name,
            addr,
            deadline: now + timeout.min(MAX_QUERY_TIMEOUT),
        };
        if self.incoming.insert(id, asker).is_none() {
            self.incoming_order.push_back(id);
        }
        while self.incoming_order.len() > MAX_INCOMING {
            if let Some(oldest) = self.incoming_order.pop_front() {
                self.incoming.remove(&oldest);
            }
        }
    }

    /// Takes the asker of a query we may still answer; each query is answered at most once.
    pub(crate) fn take_asker(&mut self, id: QueryId, now: Instant) -> Option<Asker> {
        let asker = self.incoming.remove(&id)?;
        self.incoming_order.retain(|queued| *queued != id);
        (now <= asker.deadline).then_some(asker)
    }
}

#[cfg(test)]
mod tests;
