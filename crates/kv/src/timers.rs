//! Session TTL deadlines. Leader-local and not replicated: the server arms them when a session
//! is created or renewed (and re-arms all of them after winning an election), polls
//! [`SessionTimers::expired`] with its own clock, and proposes a destroy for each expired ID.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Consul waits this many TTLs before invalidating, as a grace period for renewals in flight
/// (`SessionTTLMultiplier`).
pub const SESSION_TTL_MULTIPLIER: u32 = 2;

/// Deadlines (Unix ms) of sessions with a TTL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTimers {
    by_id: BTreeMap<String, u64>,
    /// The same deadlines ordered by time, so expiry and the next wake-up are cheap.
    by_deadline: BTreeSet<(u64, String)>,
}

impl SessionTimers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or resets) the deadline of `id` to `now_ms + 2 * ttl`.
    pub fn arm(&mut self, id: &str, ttl: Duration, now_ms: u64) {
        self.remove(id);
        let grace = ttl.saturating_mul(SESSION_TTL_MULTIPLIER);
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let deadline = now_ms.saturating_add(grace_ms);
        self.by_id.insert(id.to_owned(), deadline);
        self.by_deadline.insert((deadline, id.to_owned()));
    }

    /// A renewal pushes the deadline out exactly like arming (Consul's `ResetOrCreate`).
    pub fn renew(&mut self, id: &str, ttl: Duration, now_ms: u64) {
        self.arm(id, ttl, now_ms);
    }

    pub fn remove(&mut self, id: &str) {
        if let Some(deadline) = self.by_id.remove(id) {
            self.by_deadline.remove(&(deadline, id.to_owned()));
        }
    }

    /// Removes and returns the sessions whose deadline is at or before `now_ms`, earliest first.
    pub fn expired(&mut self, now_ms: u64) -> Vec<String> {
        let mut ids = Vec::new();
        while self
            .next_deadline()
            .is_some_and(|deadline| deadline <= now_ms)
        {
            if let Some((_, id)) = self.by_deadline.pop_first() {
                self.by_id.remove(&id);
                ids.push(id);
            }
        }
        ids
    }

    /// The earliest deadline, for sleeping until it.
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests;
