//! The KV table, its tombstones and per-key lock-delays, plus the single-key writes of the
//! HTTP KV endpoint. Sessions (`session.rs`) and transactions (`txn.rs`) extend [`KvStore`].
//!
//! All mutation goes through three primitives (`put`, `remove`, `insert_tombstone`) that record
//! before-images in an undo log, so a failed transaction can be rolled back without cloning the
//! store, and that record touched keys in [`Changes`] for blocking queries.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::entry::DirEntry;
use crate::error::KvError;
use crate::session::Session;

/// One write of the HTTP KV endpoint (`PUT`/`DELETE /v1/kv/:key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    Set {
        key: String,
        value: Vec<u8>,
        flags: u64,
    },
    /// `index` 0 creates only if absent; otherwise the key's ModifyIndex must equal `index`.
    Cas {
        key: String,
        value: Vec<u8>,
        flags: u64,
        index: u64,
    },
    Acquire {
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    },
    Release {
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    },
    Delete {
        key: String,
    },
    /// Deletes only if the key's ModifyIndex equals `index` (so 0 never deletes an existing key).
    DeleteCas {
        key: String,
        index: u64,
    },
    DeleteTree {
        prefix: String,
    },
}

/// What writes touched since the last [`KvStore::drain_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Every key created, modified, released or deleted.
    pub keys: BTreeSet<String>,
    /// Whether the sessions table changed (create, destroy, invalidation).
    pub sessions: bool,
}

/// Consul's KV store and sessions, as replicated state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvStore {
    pub(crate) entries: BTreeMap<String, DirEntry>,
    /// Deleted key -> index of the delete, so prefix indexes never go backwards on delete.
    pub(crate) tombstones: BTreeMap<String, u64>,
    /// Highest index of any reaped tombstone: the index a key or prefix can fall back to once
    /// its tombstones are gone.
    pub(crate) reap_floor: u64,
    /// Key -> Unix ms until which it cannot be acquired. Survives the key being deleted.
    pub(crate) lock_delays: BTreeMap<String, u64>,
    pub(crate) sessions: BTreeMap<String, Session>,
    pub(crate) sessions_index: u64,
    /// Wake-ups for the local server only: not replicated, not part of equality.
    #[serde(skip)]
    pub(crate) changes: Changes,
}

/// Equality of replicated state; pending [`Changes`] are local and ignored.
impl PartialEq for KvStore {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
            && self.tombstones == other.tombstones
            && self.reap_floor == other.reap_floor
            && self.lock_delays == other.lock_delays
            && self.sessions == other.sessions
            && self.sessions_index == other.sessions_index
    }
}

/// A before-image, restored in reverse order on rollback.
#[derive(Debug)]
pub(crate) enum Undo {
    Entry {
        key: String,
        before: Option<DirEntry>,
    },
    Tombstone {
        key: String,
        before: Option<u64>,
    },
}

impl KvStore {
    pub fn get(&self, key: &str) -> Option<&DirEntry> {
        self.entries.get(key)
    }

    /// Entries whose key starts with `prefix`, sorted by key.
    pub fn list(&self, prefix: &str) -> Vec<&DirEntry> {
        under(&self.entries, prefix).map(|(_, e)| e).collect()
    }

    /// Keys under `prefix`. With a non-empty separator, each key is cut just after the first
    /// separator following the prefix (Consul's `?keys&separator=`), duplicates removed.
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let keys = under(&self.entries, prefix).map(|(key, _)| match separator {
            Some(sep) if !sep.is_empty() => match key[prefix.len()..].find(sep) {
                Some(at) => key[..prefix.len() + at + sep.len()].to_owned(),
                None => key.clone(),
            },
            _ => key.clone(),
        });
        keys.collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// The blocking index of one key: its ModifyIndex, else its tombstone's, else the reap floor.
    pub fn key_index(&self, key: &str) -> u64 {
        match (self.entries.get(key), self.tombstones.get(key)) {
            (Some(entry), _) => entry.modify_index,
            (None, Some(&deleted)) => deleted,
            (None, None) => self.reap_floor,
        }
    }

    /// The blocking index of a prefix: the highest ModifyIndex or tombstone under it, and at
    /// least the reap floor so reaping never moves it backwards.
    pub fn prefix_index(&self, prefix: &str) -> u64 {
        let live = under(&self.entries, prefix).map(|(_, e)| e.modify_index);
        let dead = under(&self.tombstones, prefix).map(|(_, &i)| i);
        live.chain(dead).fold(self.reap_floor, u64::max)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Unix ms until which `key` cannot be acquired, if a lock-delay was ever set on it.
    pub fn lock_delay_until(&self, key: &str) -> Option<u64> {
        self.lock_delays.get(key).copied()
    }

    /// Applies one HTTP KV write at raft `index`. Returns Consul's boolean answer.
    pub fn apply(&mut self, op: KvOp, index: u64, now_ms: u64) -> Result<bool, KvError> {
        // The undo log is only needed by transactions; here it is simply dropped.
        let undo = &mut Vec::new();
        match op {
            KvOp::DeleteTree { prefix } => {
                self.delete_tree(&prefix, index, undo);
                Ok(true)
            }
            KvOp::Set { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Acquire { key, .. }
            | KvOp::Release { key, .. }
            | KvOp::Delete { key }
            | KvOp::DeleteCas { key, .. }
                if key.is_empty() =>
            {
                Err(KvError::MissingKey)
            }
            KvOp::Set { key, value, flags } => {
                self.set(key, value, flags, index, undo);
                Ok(true)
            }
            KvOp::Cas {
                key,
                value,
                flags,
                index: expected,
            } => Ok(self.cas(key, value, flags, expected, index, undo)),
            KvOp::Acquire {
                key,
                value,
                flags,
                session,
            } => {
                // Consul checks the lock-delay before the session (the leader's pre-apply step).
                if self.in_lock_delay(&key, now_ms) {
                    return Ok(false);
                }
                self.lock(key, value, flags, session, index, undo)
            }
            KvOp::Release {
                key,
                value,
                flags,
                session,
            } => self.unlock(key, value, flags, session, index, undo),
            KvOp::Delete { key } => {
                self.remove(&key, index, undo);
                Ok(true)
            }
            KvOp::DeleteCas {
                key,
                index: expected,
            } => Ok(self.delete_cas(&key, expected, index, undo)),
        }
    }

    /// Returns and resets what changed since the last call.
    pub fn drain_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Forgets tombstones at or below `up_to_index`, raising the reap floor to the highest one
    /// forgotten so no key or prefix index goes backwards.
    pub fn reap_tombstones(&mut self, up_to_index: u64) {
        let floor = &mut self.reap_floor;
        self.tombstones.retain(|_, &mut deleted| {
            let reap = deleted <= up_to_index;
            if reap {
                *floor = (*floor).max(deleted);
            }
            !reap
        });
    }

    pub(crate) fn in_lock_delay(&self, key: &str, now_ms: u64) -> bool {
        self.lock_delays
            .get(key)
            .is_some_and(|&until| until > now_ms)
    }

    // --- Consul's state-store operations (kvs.go), shared by `apply`, `txn` and sessions ---

    /// A plain write: keeps CreateIndex, LockIndex and the lock holder of an existing entry.
    pub(crate) fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        flags: u64,
        index: u64,
        undo: &mut Vec<Undo>,
    ) {
        let (create_index, lock_index, session) = match self.entries.get(&key) {
            Some(e) => (e.create_index, e.lock_index, e.session.clone()),
            None => (index, 0, None),
        };
        self.put(
            DirEntry {
                key,
                value,
                flags,
                create_index,
                modify_index: index,
                lock_index,
                session,
            },
            undo,
        );
    }

    pub(crate) fn cas(
        &mut self,
        key: String,
        value: Vec<u8>,
        flags: u64,
        expected: u64,
        index: u64,
        undo: &mut Vec<Undo>,
    ) -> bool {
        let current = self.entries.get(&key).map(|e| e.modify_index);
        let matches = match (expected, current) {
            (0, None) => true,
            (0, Some(_)) | (_, None) => false,
            (expected, Some(current)) => expected == current,
        };
        if matches {
            self.set(key, value, flags, index, undo);
        }
        matches
    }

    /// Acquires `key` for `session` (no lock-delay check: that is the caller's pre-check).
    /// `Ok(false)` if another session holds it.
    pub(crate) fn lock(
        &mut self,
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
        index: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<bool, KvError> {
        if session.is_empty() {
            return Err(KvError::MissingSession);
        }
        if !self.sessions.contains_key(&session) {
            return Err(KvError::SessionNotFound(session));
        }
        let (create_index, lock_index) = match self.entries.get(&key) {
            None => (index, 1),
            Some(e) => match &e.session {
                Some(holder) if *holder == session => (e.create_index, e.lock_index),
                Some(_) => return Ok(false),
                None => (e.create_index, e.lock_index + 1),
            },
        };
        self.put(
            DirEntry {
                key,
                value,
                flags,
                create_index,
                modify_index: index,
                lock_index,
                session: Some(session),
            },
            undo,
        );
        Ok(true)
    }

    /// Releases `key` if `session` holds it, writing value and flags. `Ok(false)` otherwise.
    pub(crate) fn unlock(
        &mut self,
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
        index: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<bool, KvError> {
        if session.is_empty() {
            return Err(KvError::MissingSession);
        }
        let Some(existing) = self.entries.get(&key) else {
            return Ok(false);
        };
        if existing.session.as_deref() != Some(session.as_str()) {
            return Ok(false);
        }
        let (create_index, lock_index) = (existing.create_index, existing.lock_index);
        self.put(
            DirEntry {
                key,
                value,
                flags,
                create_index,
                modify_index: index,
                lock_index,
                session: None,
            },
            undo,
        );
        Ok(true)
    }

    /// Consul answers `true` for a missing key (nothing to delete) and `false` on a mismatch.
    pub(crate) fn delete_cas(
        &mut self,
        key: &str,
        expected: u64,
        index: u64,
        undo: &mut Vec<Undo>,
    ) -> bool {
        match self.entries.get(key) {
            None => true,
            Some(e) if e.modify_index != expected => false,
            Some(_) => {
                self.remove(key, index, undo);
                true
            }
        }
    }

    /// Deletes every key under `prefix`, each leaving its own tombstone (Consul leaves one at
    /// the prefix; per-key tombstones also keep `key_index` of each deleted key monotonic).
    pub(crate) fn delete_tree(&mut self, prefix: &str, index: u64, undo: &mut Vec<Undo>) {
        let doomed: Vec<String> = under(&self.entries, prefix)
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.remove(&key, index, undo);
        }
    }

    // --- primitives: the only code that mutates `entries` and `tombstones` ---

    /// Stores `entry`, unless it would change nothing (then the existing ModifyIndex stays, as
    /// in Consul, so idempotent writes do not wake watchers).
    pub(crate) fn put(&mut self, entry: DirEntry, undo: &mut Vec<Undo>) {
        if self
            .entries
            .get(&entry.key)
            .is_some_and(|old| old.same_content(&entry))
        {
            return;
        }
        let key = entry.key.clone();
        self.changes.keys.insert(key.clone());
        let before = self.entries.insert(key.clone(), entry);
        undo.push(Undo::Entry { key, before });
    }

    /// Deletes `key` leaving a tombstone at `index`. A missing key leaves no tombstone, so
    /// deleting nothing changes no index.
    pub(crate) fn remove(&mut self, key: &str, index: u64, undo: &mut Vec<Undo>) {
        let Some(before) = self.entries.remove(key) else {
            return;
        };
        undo.push(Undo::Entry {
            key: key.to_owned(),
            before: Some(before),
        });
        let before = self.tombstones.insert(key.to_owned(), index);
        undo.push(Undo::Tombstone {
            key: key.to_owned(),
            before,
        });
        self.changes.keys.insert(key.to_owned());
    }

    /// Restores the before-images in `undo`, newest first.
    pub(crate) fn rollback(&mut self, undo: Vec<Undo>) {
        for record in undo.into_iter().rev() {
            match record {
                Undo::Entry {
                    key,
                    before: Some(e),
                } => {
                    self.entries.insert(key, e);
                }
                Undo::Entry { key, before: None } => {
                    self.entries.remove(&key);
                }
                Undo::Tombstone {
                    key,
                    before: Some(i),
                } => {
                    self.tombstones.insert(key, i);
                }
                Undo::Tombstone { key, before: None } => {
                    self.tombstones.remove(&key);
                }
            }
        }
    }
}

/// The `(key, value)` pairs of a key-ordered map whose key starts with `prefix`.
pub(crate) fn under<'m, 'p, V>(
    map: &'m BTreeMap<String, V>,
    prefix: &'p str,
) -> impl Iterator<Item = (&'m String, &'m V)> + use<'m, 'p, V> {
    map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(key, _)| key.starts_with(prefix))
}

#[cfg(test)]
mod tests;
