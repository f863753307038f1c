//! KV transactions (`PUT /v1/txn`), with Consul's verbs, per-op results and error texts
//! (`agent/consul/state/txn.go`, `kvs.go`, `agent/consul/txn_endpoint.go`).
//!
//! Ops run in order and see each other's writes. Like Consul, a failing op does not stop the
//! others: every error is collected with its op index, and then the whole transaction is rolled
//! back from the undo log, leaving the store exactly as it was.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::DirEntry;
use crate::error::KvError;
use crate::store::{KvStore, Undo};

/// A KV verb of a transaction op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnVerb {
    Set,
    Cas,
    Lock,
    Unlock,
    Get,
    GetTree,
    CheckIndex,
    CheckSession,
    CheckNotExists,
    Delete,
    DeleteTree,
    DeleteCas,
    GetOrEmpty,
}

impl TxnVerb {
    const ALL: [TxnVerb; 13] = [
        TxnVerb::Set,
        TxnVerb::Cas,
        TxnVerb::Lock,
        TxnVerb::Unlock,
        TxnVerb::Get,
        TxnVerb::GetTree,
        TxnVerb::CheckIndex,
        TxnVerb::CheckSession,
        TxnVerb::CheckNotExists,
        TxnVerb::Delete,
        TxnVerb::DeleteTree,
        TxnVerb::DeleteCas,
        TxnVerb::GetOrEmpty,
    ];

    /// Consul's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnVerb::Set => "set",
            TxnVerb::Cas => "cas",
            TxnVerb::Lock => "lock",
            TxnVerb::Unlock => "unlock",
            TxnVerb::Get => "get",
            TxnVerb::GetTree => "get-tree",
            TxnVerb::CheckIndex => "check-index",
            TxnVerb::CheckSession => "check-session",
            TxnVerb::CheckNotExists => "check-not-exists",
            TxnVerb::Delete => "delete",
            TxnVerb::DeleteTree => "delete-tree",
            TxnVerb::DeleteCas => "delete-cas",
            TxnVerb::GetOrEmpty => "get-or-empty",
        }
    }

    /// Whether the verb modifies the store. A transaction of only non-write verbs can be served
    /// by [`KvStore::read_txn`] without going through raft.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            TxnVerb::Set
                | TxnVerb::Cas
                | TxnVerb::Lock
                | TxnVerb::Unlock
                | TxnVerb::Delete
                | TxnVerb::DeleteTree
                | TxnVerb::DeleteCas
        )
    }
}

impl FromStr for TxnVerb {
    type Err = KvError;

    /// Consul reports an unknown verb as the error of that op (`unknown KV verb "x"`); the HTTP
    /// layer should turn this error into a [`TxnError`] at the op's index.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TxnVerb::ALL
            .into_iter()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| KvError::UnknownVerb(s.to_owned()))
    }
}

/// One KV op of a transaction. Fields a verb does not use are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnKvOp {
    pub verb: TxnVerb,
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    /// The expected ModifyIndex of `cas`, `check-index` and `delete-cas`.
    pub index: u64,
    pub session: String,
}

/// One result of a successful transaction, in op order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    Entry(DirEntry),
}

/// Why one op failed; a failed transaction returns one per failing op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

impl KvStore {
    /// Applies `ops` atomically at raft `index`. On success returns the results in op order:
    /// `get`/`get-or-empty` give the full entry, `get-tree` one entry per key, write verbs and
    /// `check-index`/`check-session` the entry with its value emptied, deletes and
    /// `check-not-exists` nothing. On failure nothing changes and every op's error is returned.
    pub fn txn(
        &mut self,
        ops: &[TxnKvOp],
        index: u64,
        now_ms: u64,
    ) -> Result<Vec<TxnResult>, Vec<TxnError>> {
        self.pre_check(ops, |op| self.lock_delay_error(op, now_ms))?;

        // `changes` is cheap to save (drained after every apply); the tables are not, hence
        // the undo log for them.
        let changes_before = self.changes.clone();
        let mut undo = Vec::new();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            match self.txn_op(op, index, &mut undo) {
                Ok(found) => results.extend(found),
                Err(what) => errors.push(TxnError { op_index, what }),
            }
        }
        if errors.is_empty() {
            return Ok(results);
        }
        self.rollback(undo);
        self.changes = changes_before;
        Err(errors)
    }

    /// Runs a transaction of read verbs only (`get`, `get-tree`, `get-or-empty`, `check-*`)
    /// against the current state; any write verb is an error at its op index.
    pub fn read_txn(&self, ops: &[TxnKvOp]) -> Result<Vec<TxnResult>, Vec<TxnError>> {
        self.pre_check(ops, |op| {
            op.verb.is_write().then(|| read_only_error(op.verb))
        })?;
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            match self.txn_read(op) {
                Ok(found) => results.extend(found),
                Err(what) => errors.push(TxnError { op_index, what }),
            }
        }
        if errors.is_empty() {
            Ok(results)
        } else {
            Err(errors)
        }
    }

    /// Consul's pre-apply checks, run on every op before any op executes; if any fails, only
    /// these errors are reported. `extra` adds a check per op with a non-empty key.
    fn pre_check(
        &self,
        ops: &[TxnKvOp],
        extra: impl Fn(&TxnKvOp) -> Option<String>,
    ) -> Result<(), Vec<TxnError>> {
        let errors: Vec<TxnError> = ops
            .iter()
            .enumerate()
            .filter_map(|(op_index, op)| {
                let what = if op.key.is_empty() && op.verb != TxnVerb::DeleteTree {
                    Some(KvError::MissingKey.to_string())
                } else {
                    extra(op)
                };
                what.map(|what| TxnError { op_index, what })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn lock_delay_error(&self, op: &TxnKvOp, now_ms: u64) -> Option<String> {
        (op.verb == TxnVerb::Lock && self.in_lock_delay(&op.key, now_ms))
            .then(|| format!("failed to lock key {:?} due to lock delay", op.key))
    }

    fn txn_op(
        &mut self,
        op: &TxnKvOp,
        index: u64,
        undo: &mut Vec<Undo>,
    ) -> Result<Vec<TxnResult>, String> {
        let key = &op.key;
        match op.verb {
            TxnVerb::Set => {
                self.set(key.clone(), op.value.clone(), op.flags, index, undo);
                Ok(self.written(key))
            }
            TxnVerb::Cas => {
                if self.cas(
                    key.clone(),
                    op.value.clone(),
                    op.flags,
                    op.index,
                    index,
                    undo,
                ) {
                    Ok(self.written(key))
                } else {
                    Err(format!("failed to set key {key:?}, index is stale"))
                }
            }
            TxnVerb::Lock => {
                let session = op.session.clone();
                match self.lock(
                    key.clone(),
                    op.value.clone(),
                    op.flags,
                    session,
                    index,
                    undo,
                ) {
                    Ok(true) => Ok(self.written(key)),
                    Ok(false) => Err(format!("failed to lock key {key:?}, lock is already held")),
                    Err(err) => Err(err.to_string()),
                }
            }
            TxnVerb::Unlock => {
                let session = op.session.clone();
                match self.unlock(key.clone(), op.value.clone(), op.flags, session, index, undo) {
                    Ok(true) => Ok(self.written(key)),
                    Ok(false) => Err(format!(
                        "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                    )),
                    Err(err) => Err(err.to_string()),
                }
            }
            TxnVerb::Delete => {
                self.remove(key, index, undo);
                Ok(Vec::new())
            }
            TxnVerb::DeleteCas => {
                if self.delete_cas(key, op.index, index, undo) {
                    Ok(Vec::new())
                } else {
                    Err(format!("failed to delete key {key:?}, index is stale"))
                }
            }
            TxnVerb::DeleteTree => {
                self.delete_tree(key, index, undo);
                Ok(Vec::new())
            }
            TxnVerb::Get
            | TxnVerb::GetTree
            | TxnVerb::GetOrEmpty
            | TxnVerb::CheckIndex
            | TxnVerb::CheckSession
            | TxnVerb::CheckNotExists => self.txn_read(op),
        }
    }

    fn txn_read(&self, op: &TxnKvOp) -> Result<Vec<TxnResult>, String> {
        let key = &op.key;
        let entry = self.entries.get(key);
        match op.verb {
            TxnVerb::Get => match entry {
                Some(e) => Ok(vec![TxnResult::Entry(e.clone())]),
                None => Err(format!("key {key:?} doesn't exist")),
            },
            // Consul answers a missing key with the op's own fields echoed back (key, flags,
            // index as ModifyIndex, session) and no value.
            TxnVerb::GetOrEmpty => Ok(vec![TxnResult::Entry(match entry {
                Some(e) => e.clone(),
                None => DirEntry {
                    key: key.clone(),
                    value: Vec::new(),
                    flags: op.flags,
                    create_index: 0,
                    modify_index: op.index,
                    lock_index: 0,
                    session: (!op.session.is_empty()).then(|| op.session.clone()),
                },
            })]),
            TxnVerb::GetTree => Ok(self
                .list(key)
                .into_iter()
                .map(|e| TxnResult::Entry(e.clone()))
                .collect()),
            TxnVerb::CheckIndex => match entry {
                None => Err(format!("failed to check index, key {key:?} doesn't exist")),
                Some(e) if e.modify_index != op.index => Err(format!(
                    "failed index check for key {key:?}, current modify index {} != {}",
                    e.modify_index, op.index
                )),
                Some(e) => Ok(vec![TxnResult::Entry(e.without_value())]),
            },
            TxnVerb::CheckSession => match entry {
                None => Err(format!(
                    "failed to check session, key {key:?} doesn't exist"
                )),
                Some(e) if e.session.as_deref().unwrap_or("") != op.session => Err(format!(
                    "failed session check for key {key:?}, current session {:?} != {:?}",
                    e.session.as_deref().unwrap_or(""),
                    op.session
                )),
                Some(e) => Ok(vec![TxnResult::Entry(e.without_value())]),
            },
            TxnVerb::CheckNotExists => match entry {
                Some(_) => Err(format!("key {key:?} exists")),
                None => Ok(Vec::new()),
            },
            write => Err(read_only_error(write)),
        }
    }

    /// The result of a write verb: the entry as stored, value emptied.
    fn written(&self, key: &str) -> Vec<TxnResult> {
        self.entries
            .get(key)
            .map(|e| TxnResult::Entry(e.without_value()))
            .into_iter()
            .collect()
    }
}

fn read_only_error(verb: TxnVerb) -> String {
    format!(
        "verb {:?} is not allowed in a read-only transaction",
        verb.as_str()
    )
}

#[cfg(test)]
mod tests;
