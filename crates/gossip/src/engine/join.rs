//! Joins in progress: an address we asked "who are you?", and the identity it answered with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::identity::NodeIdentity;

#[derive(Debug)]
struct Attempt {
    attempts_left: u32,
    seed: Option<NodeIdentity>,
}

/// What the engine should do when a join's retry timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Retry {
    /// The address has not answered: ask again.
    Probe,
    /// It answered but we are not connected yet: announce to it again.
    Announce(NodeIdentity),
    /// Connected, or out of attempts.
    Done,
}

#[derive(Debug, Default)]
pub(super) struct Joins {
    pending: BTreeMap<SocketAddr, Attempt>,
    answered: BTreeSet<SocketAddr>,
}

impl Joins {
    pub(super) fn start(&mut self, addr: SocketAddr, attempts: u32) {
        self.answered.remove(&addr);
        self.pending.insert(
            addr,
            Attempt {
                attempts_left: attempts.saturating_sub(1),
                seed: None,
            },
        );
    }

    pub(super) fn answered(&self, addr: SocketAddr) -> bool {
        self.answered.contains(&addr)
    }

    /// Records a join ack; true when it answers a join in progress (unsolicited acks are ignored).
    pub(super) fn ack(&mut self, from: SocketAddr, seed: NodeIdentity) -> bool {
        match self.pending.get_mut(&from) {
            Some(attempt) => {
                attempt.seed = Some(seed);
                self.answered.insert(from);
                true
            }
            None => false,
        }
    }

    /// Decides the next step for `addr`; `connected_to` says whether a node is an active member by now.
    pub(super) fn retry(
        &mut self,
        addr: SocketAddr,
        connected_to: impl Fn(&NodeIdentity) -> bool,
    ) -> Retry {
        let Some(attempt) = self.pending.get_mut(&addr) else {
            return Retry::Done;
        };
        let connected = attempt.seed.as_ref().is_some_and(&connected_to);
        if connected || attempt.attempts_left == 0 {
            self.pending.remove(&addr);
            return Retry::Done;
        }
        attempt.attempts_left -= 1;
        match &attempt.seed {
            Some(seed) => Retry::Announce(seed.clone()),
            None => Retry::Probe,
        }
    }
}

#[cfg(test)]
mod tests;
