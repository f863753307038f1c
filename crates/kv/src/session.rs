//! Sessions: creation, destruction and invalidation (which releases or deletes held keys and
//! puts them into lock-delay), plus the normalization rules of Consul's session endpoint.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::KvError;
use crate::store::KvStore;

/// Consul's default `LockDelay`.
pub const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
/// Consul's `MaxLockDelay`: longer delays are not honoured.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul's `SessionTTLMax`.
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(86_400);

/// Numeric lock delays below this many nanoseconds are taken as seconds: users send `15`
/// meaning 15s, which Go would read as 15ns (Consul's `lockDelayMinThreshold`).
const LOCK_DELAY_MIN_THRESHOLD_NANOS: u128 = 1000;

/// What happens to the keys a session holds when it is invalidated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behavior {
    /// Clear the lock, keep the value.
    #[default]
    Release,
    /// Delete the key.
    Delete,
}

impl Behavior {
    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

impl FromStr for Behavior {
    type Err = KvError;

    /// Consul's spellings; empty means the default, as in Consul.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "release" => Ok(Behavior::Release),
            "delete" => Ok(Behavior::Delete),
            other => Err(KvError::InvalidBehavior(other.to_owned())),
        }
    }
}

/// A service health check a session is tied to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCheck {
    pub id: String,
    pub namespace: String,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ns: u64,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
    pub node_checks: Vec<String>,
    pub service_checks: Vec<ServiceCheck>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A session to create, already validated and normalized by the caller, with its ID chosen by
/// the proposer (IDs are random, and randomness has no place in replicated apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay: Duration,
    pub behavior: Behavior,
    pub ttl: Option<Duration>,
    pub node_checks: Vec<String>,
    pub service_checks: Vec<ServiceCheck>,
}

/// Consul's reading of a `LockDelay`: below 1000ns the number is seconds; capped at 60s.
pub fn normalize_lock_delay(raw: Duration) -> Duration {
    let nanos = raw.as_nanos();
    let delay = if nanos < LOCK_DELAY_MIN_THRESHOLD_NANOS {
        // Lossless: nanos < 1000.
        Duration::from_secs(nanos as u64)
    } else {
        raw
    };
    delay.min(MAX_LOCK_DELAY)
}

/// A session TTL must be 0 (none) or within `[min, SESSION_TTL_MAX]`.
pub fn validate_session_ttl(ttl: Duration, min: Duration) -> Result<Option<Duration>, KvError> {
    if ttl.is_zero() {
        return Ok(None);
    }
    if ttl < min || ttl > SESSION_TTL_MAX {
        return Err(KvError::InvalidSessionTtl {
            ttl,
            min,
            max: SESSION_TTL_MAX,
        });
    }
    Ok(Some(ttl))
}

impl KvStore {
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// All sessions, sorted by ID.
    pub fn sessions(&self) -> Vec<&Session> {
        self.sessions.values().collect()
    }

    /// Sessions of one node, sorted by ID.
    pub fn node_sessions(&self, node: &str) -> Vec<&Session> {
        self.sessions.values().filter(|s| s.node == node).collect()
    }

    /// The highest index at which a session was created, destroyed or invalidated.
    pub fn sessions_index(&self) -> u64 {
        self.sessions_index
    }

    /// Creates a session at `index`. The node is taken as given: checking it against the
    /// catalog is the caller's job.
    pub fn create_session(
        &mut self,
        req: SessionRequest,
        index: u64,
        _now_ms: u64,
    ) -> Result<(), KvError> {
        if req.id.is_empty() {
            return Err(KvError::MissingSessionId);
        }
        if self.sessions.contains_key(&req.id) {
            return Err(KvError::SessionExists(req.id));
        }
        let session = Session {
            id: req.id.clone(),
            name: req.name,
            node: req.node,
            lock_delay_ns: u64::try_from(req.lock_delay.as_nanos()).unwrap_or(u64::MAX),
            behavior: req.behavior,
            ttl: req.ttl,
            node_checks: req.node_checks,
            service_checks: req.service_checks,
            create_index: index,
            modify_index: index,
        };
        self.sessions.insert(req.id, session);
        self.sessions_index = index;
        self.changes.sessions = true;
        Ok(())
    }

    /// Destroys (invalidates) a session: each key it holds is released or deleted per its
    /// behavior, at `index`, and enters lock-delay until `now_ms + lock_delay`. Returns whether
    /// the session existed; destroying an unknown session changes nothing.
    pub fn destroy_session(&mut self, id: &str, index: u64, now_ms: u64) -> bool {
        let Some(session) = self.sessions.remove(id) else {
            return false;
        };
        self.sessions_index = index;
        self.changes.sessions = true;

        // Expired delays are dead weight; dropping them here is deterministic because `now_ms`
        // comes from the replicated command.
        self.lock_delays.retain(|_, until| *until > now_ms);
        let max_ns = MAX_LOCK_DELAY.as_nanos() as u64;
        let delay_ms = session.lock_delay_ns.min(max_ns).div_ceil(1_000_000);

        // A full scan: invalidations are rare next to reads, and a session -> keys index would
        // be one more table to keep consistent and snapshot.
        let held: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.session.as_deref() == Some(id))
            .map(|e| e.key.clone())
            .collect();
        let undo = &mut Vec::new();
        for key in held {
            match session.behavior {
                Behavior::Release => {
                    if let Some(entry) = self.entries.get(&key) {
                        let mut released = entry.clone();
                        released.session = None;
                        released.modify_index = index;
                        self.put(released, undo);
                    }
                }
                Behavior::Delete => self.remove(&key, index, undo),
            }
            if delay_ms > 0 {
                self.lock_delays
                    .insert(key, now_ms.saturating_add(delay_ms));
            }
        }
        true
    }

    /// Destroys every session of `node` (node deregistered or its health critical). Returns the
    /// destroyed IDs, sorted.
    pub fn invalidate_node_sessions(&mut self, node: &str, index: u64, now_ms: u64) -> Vec<String> {
        let ids: Vec<String> = self
            .node_sessions(node)
            .into_iter()
            .map(|s| s.id.clone())
            .collect();
        self.destroy_all(ids, index, now_ms)
    }

    /// Destroys every session of `node` tied to the check `check_id`, as a node check or a
    /// service check (check deregistered or critical). Returns the destroyed IDs, sorted.
    pub fn invalidate_check_sessions(
        &mut self,
        node: &str,
        check_id: &str,
        index: u64,
        now_ms: u64,
    ) -> Vec<String> {
        let ids: Vec<String> = self
            .node_sessions(node)
            .into_iter()
            .filter(|s| {
                s.node_checks.iter().any(|c| c == check_id)
                    || s.service_checks.iter().any(|c| c.id == check_id)
            })
            .map(|s| s.id.clone())
            .collect();
        self.destroy_all(ids, index, now_ms)
    }

    fn destroy_all(&mut self, ids: Vec<String>, index: u64, now_ms: u64) -> Vec<String> {
        for id in &ids {
            self.destroy_session(id, index, now_ms);
        }
        ids
    }
}

#[cfg(test)]
mod tests;
