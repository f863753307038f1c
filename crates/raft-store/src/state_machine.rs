//! openraft's state machine: applies committed entries to the in-memory [`State`] and keeps
//! the latest snapshot in a file next to RocksDB's (see [`crate::snapshot_file`]).
//!
//! The state lives in memory (like Consul's memdb) and is made durable by the raft log plus
//! snapshots: on boot the state machine loads the last snapshot and openraft re-applies the
//! committed log after it. An acknowledged write is therefore on disk in the log before the
//! client hears about it.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use rocksdb::DB;
use serde::{Deserialize, Serialize};

use crate::command::Response;
use crate::notify::Notifier;
use crate::snapshot_file::SnapshotFile;
use crate::state::State;
use crate::types::{NodeId, ServerNode, TypeConfig};
use crate::{cf, StoreError};

/// Where the snapshot was kept before it moved to [`SnapshotFile`]: read while no file exists,
/// deleted once one does.
const LEGACY_SNAPSHOT: &[u8] = b"current";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, ServerNode>;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Applied {
    state: State,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

/// A persisted snapshot: openraft's metadata and the encoded [`Applied`] state.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, ServerNode>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    db: Arc<DB>,
    snapshot_file: SnapshotFile,
    applied: RwLock<Applied>,
    notifier: Notifier,
    snapshot_seq: AtomicU64,
}

/// openraft's state machine half. Clones share the state.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

/// Read access to the applied state, for the API layer.
#[derive(Debug, Clone)]
pub struct StoreReader {
    shared: Arc<Shared>,
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
    pub fn state(&self) -> StateGuard<'_> {
        StateGuard(self.shared.applied.read().expect("state lock poisoned"))
    }

    /// Index of the last applied log entry (0 before the first).
    pub fn last_applied_index(&self) -> u64 {
        let applied = self.shared.applied.read().expect("state lock poisoned");
        applied.last_applied.map_or(0, |id| id.index)
    }

    pub fn notifier(&self) -> &Notifier {
        &self.shared.notifier
    }

    /// The last position in this server's raft log (term first, so positions order the way
    /// raft compares logs).
    pub fn log_position(&self) -> std::result::Result<crate::LogPosition, StoreError> {
        crate::recovery::last_position(&self.shared.db)
    }
}

impl StateMachineStore {
    pub(crate) fn open(db: Arc<DB>) -> std::result::Result<Self, StoreError> {
        let snapshot_file = SnapshotFile::new(db.path());
        let applied = match stored_snapshot(&db, &snapshot_file)? {
            None => Applied::default(),
            Some(bytes) => {
                let stored: StoredSnapshot =
                    postcard::from_bytes(&bytes).map_err(|source| StoreError::Decode {
                        what: "snapshot",
                        source,
                    })?;
                postcard::from_bytes(&stored.data).map_err(|source| StoreError::Decode {
                    what: "snapshot state",
                    source,
                })?
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                snapshot_file,
                applied: RwLock::new(applied),
                notifier: Notifier::new(),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    pub fn reader(&self) -> StoreReader {
        StoreReader {
            shared: self.shared.clone(),
        }
    }

    fn save_snapshot(&self, stored: &StoredSnapshot) -> Result<()> {
        let signature = Some(stored.meta.signature());
        let bytes = postcard::to_stdvec(stored)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        self.shared
            .snapshot_file
            .write(&bytes)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        // The file is durable and read first from now on; a snapshot left in RocksDB by an
        // older version is only in the way (a no-op once it is gone).
        let db = &self.shared.db;
        db.delete_cf(snapshot_cf(db), LEGACY_SNAPSHOT)
            .map_err(|e| StorageIOError::write_snapshot(signature, &e).into())
    }
}

fn snapshot_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf::SNAPSHOT)
        .expect("column family created at open")
}

/// The encoded [`StoredSnapshot`]: the file's, else one an older version kept in RocksDB.
fn stored_snapshot(
    db: &DB,
    file: &SnapshotFile,
) -> std::result::Result<Option<Vec<u8>>, StoreError> {
    if let Some(bytes) = file.read().map_err(StoreError::SnapshotFile)? {
        return Ok(Some(bytes));
    }
    Ok(db.get_cf(snapshot_cf(db), LEGACY_SNAPSHOT)?)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        // Encoded under the read lock, which holds up writes (not reads) meanwhile. Cloning the
        // state to encode it outside the lock would take longer than encoding it (three times
        // as long for 100,000 nodes) and, for the while, twice the state's memory.
        let (data, last_applied, membership) = {
            let applied = self.shared.applied.read().expect("state lock poisoned");
            let data = postcard::to_stdvec(&*applied)
                .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            (data, applied.last_applied, applied.membership.clone())
        };
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("empty-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        self.save_snapshot(&stored)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership)> {
        let applied = self.shared.applied.read().expect("state lock poisoned");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        let mut topics = Vec::new();
        let restored = {
            let mut applied = self.shared.applied.write().expect("state lock poisoned");
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Response::None,
                    EntryPayload::Normal(cmd) => applied.state.apply(entry.log_id.index, cmd),
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::None
                    }
                };
                responses.push(response);
            }
            let restored = applied.state.drain_topics(&mut topics);
            if restored {
                self.shared.notifier.begin_replace();
            }
            restored
        };
        // Published after the lock is released: a blocking query that subscribed before reading
        // either saw this write or is woken by it.
        if restored {
            self.shared.notifier.publish_all();
        } else {
            self.shared.notifier.publish(&topics);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ServerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let mut applied: Applied = postcard::from_bytes(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })?;
        // Everything may have changed: discard pending change records and wake every query.
        let _ = applied.state.drain_topics(&mut Vec::new());
        {
            let mut current = self.shared.applied.write().expect("state lock poisoned");
            self.shared.notifier.begin_replace();
            *current = applied;
        }
        self.shared.notifier.publish_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let Some(bytes) = stored_snapshot(&self.shared.db, &self.shared.snapshot_file)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot =
            postcard::from_bytes(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}
