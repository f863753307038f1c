//! The applied state that the state machine writes and everything else on a server reads: the
//! replicated [`State`], the last applied log id and membership, and the change notifier that
//! blocking queries wait on.

use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::notify::Notifier;
use crate::state::State;
use crate::types::{NodeId, ServerNode};

/// What the state machine has applied; the unit a snapshot holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub state: State,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, ServerNode>,
}

/// Where this server's raft log ends (term first, so positions order the way raft compares
/// logs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

/// Reads the end of the log from wherever the log is kept (RocksDB, in `raft-store`).
pub trait LogTail: Send + Sync + Debug {
    fn last_position(&self) -> std::io::Result<LogPosition>;
}

/// The applied state shared by the state machine and its readers.
#[derive(Debug)]
pub struct AppliedState {
    applied: RwLock<Applied>,
    notifier: Notifier,
    log: Box<dyn LogTail>,
}

impl AppliedState {
    pub fn new(applied: Applied, log: Box<dyn LogTail>) -> Arc<Self> {
        Arc::new(AppliedState {
            applied: RwLock::new(applied),
            notifier: Notifier::new(),
            log,
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read().expect("state lock poisoned")
    }

    /// For the state machine only: readers wait while the guard lives.
    pub fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write().expect("state lock poisoned")
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

/// Read access to the applied state, for the API layer.
#[derive(Debug, Clone)]
pub struct StoreReader {
    shared: Arc<AppliedState>,
}

/// A read lock on the applied state. Hold it briefly: it blocks the state machine.
#[derive(Debug)]
pub struct StateGuard<'a>(RwLockReadGuard<'a, Applied>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0.state
    }
}

impl StoreReader {
    pub fn new(shared: Arc<AppliedState>) -> Self {
        StoreReader { shared }
    }

    pub fn state(&self) -> StateGuard<'_> {
        StateGuard(self.shared.read())
    }

    /// Index of the last applied log entry (0 before the first).
    pub fn last_applied_index(&self) -> u64 {
        self.shared.read().last_applied.map_or(0, |id| id.index)
    }

    pub fn notifier(&self) -> &Notifier {
        self.shared.notifier()
    }

    /// The last position in this server's raft log.
    pub fn log_position(&self) -> std::io::Result<LogPosition> {
        self.shared.log.last_position()
    }
}
