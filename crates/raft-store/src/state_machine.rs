//! openraft's state machine: applies committed entries to the in-memory [`State`] and keeps
//! the latest snapshot in a file next to RocksDB's (see [`crate::snapshot_file`]).
//!
//! The state lives in memory (like Consul's memdb) and is made durable by the raft log plus
//! snapshots: on boot the state machine loads the last snapshot and openraft re-applies the
//! committed log after it. An acknowledged write is therefore on disk in the log before the
//! client hears about it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use consensus::{
    Applied, AppliedState, LogPosition, LogTail, NodeId, Response, ServerNode, StateV1, StateV2,
    TypeConfig,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::snapshot_file::{LegacySnapshot, Meta, SnapshotFile, SnapshotState, Stored};
use crate::{cf, StoreError};

/// Where the snapshot was kept before it moved to [`SnapshotFile`]: read while no file exists,
/// deleted once one does.
const LEGACY_SNAPSHOT: &[u8] = b"current";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, ServerNode>;

/// [`Applied`] with the state in the layout before ACLs (`MESHSNP3` files).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct AppliedV2 {
    pub(crate) state: StateV2,
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) membership: Membership,
}

/// [`Applied`] with the state in its first layout (`MESHSNP2` files and the first file
/// layout's data).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct AppliedV1 {
    pub(crate) state: StateV1,
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) membership: Membership,
}

impl From<AppliedV2> for Applied {
    fn from(old: AppliedV2) -> Applied {
        Applied {
            state: old.state.into(),
            last_applied: old.last_applied,
            membership: old.membership,
        }
    }
}

impl From<AppliedV1> for AppliedV2 {
    fn from(old: AppliedV1) -> AppliedV2 {
        AppliedV2 {
            state: old.state.into(),
            last_applied: old.last_applied,
            membership: old.membership,
        }
    }
}

impl SnapshotState for Applied {
    type Previous = AppliedV2;
}

impl SnapshotState for AppliedV2 {
    type Previous = AppliedV1;
}

impl SnapshotState for AppliedV1 {
    type Previous = AppliedV1;
}

/// `applied` as the previous version held it (without the ACLs).
#[cfg(test)]
pub(crate) fn to_previous(applied: &Applied) -> AppliedV2 {
    let state = &applied.state;
    AppliedV2 {
        state: StateV2 {
            kv: state.kv.clone(),
            catalog: state.catalog.clone(),
            autopilot: state.autopilot.clone(),
            ca: state.ca.clone(),
            intentions: state.intentions.clone(),
            config_entries: state.config_entries.clone(),
        },
        last_applied: applied.last_applied,
        membership: applied.membership.clone(),
    }
}

/// `applied` as the first layout held it (without config entries and ACLs).
#[cfg(test)]
pub(crate) fn to_first(applied: &Applied) -> AppliedV1 {
    let state = &applied.state;
    AppliedV1 {
        state: StateV1 {
            kv: state.kv.clone(),
            catalog: state.catalog.clone(),
            autopilot: state.autopilot.clone(),
            ca: state.ca.clone(),
            intentions: state.intentions.clone(),
        },
        last_applied: applied.last_applied,
        membership: applied.membership.clone(),
    }
}

/// The end of the log in RocksDB, for [`consensus::StoreReader::log_position`].
#[derive(Debug)]
struct RocksTail(Arc<DB>);

impl LogTail for RocksTail {
    fn last_position(&self) -> std::io::Result<LogPosition> {
        crate::recovery::last_position(&self.0).map_err(std::io::Error::other)
    }
}

#[derive(Debug)]
struct Shared {
    db: Arc<DB>,
    snapshot_file: SnapshotFile,
    applied: Arc<AppliedState>,
    snapshot_seq: AtomicU64,
}

/// openraft's state machine half. Clones share the state.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

impl StateMachineStore {
    pub(crate) fn open(db: Arc<DB>) -> std::result::Result<Self, StoreError> {
        let snapshot_file = SnapshotFile::new(db.path());
        let legacy = match snapshot_file
            .read::<Applied>()
            .map_err(StoreError::SnapshotFile)?
        {
            Some(Stored::Current(applied)) => Ok(applied),
            // The previous layout, converted: rewritten in the current one, so that what a
            // follower is sent is what this version writes.
            Some(Stored::Previous(meta, applied)) => {
                write_snapshot(&db, &snapshot_file, &meta, &applied)
                    .map_err(StoreError::SnapshotFile)?;
                Ok(applied)
            }
            Some(Stored::Legacy(legacy)) => Err(Some(legacy)),
            None => match db.get_cf(snapshot_cf(&db), LEGACY_SNAPSHOT)? {
                Some(bytes) => Err(Some(
                    postcard::from_bytes::<LegacySnapshot>(&bytes).map_err(|source| {
                        StoreError::Decode {
                            what: "snapshot",
                            source,
                        }
                    })?,
                )),
                None => Err(None),
            },
        };
        let applied = match legacy {
            Ok(applied) => applied,
            Err(None) => Applied::default(),
            // An older layout: decoded, then rewritten in the current one, which is what a
            // follower that needs a snapshot is sent.
            Err(Some(legacy)) => {
                let applied: Applied =
                    AppliedV2::from(postcard::from_bytes::<AppliedV1>(&legacy.data).map_err(
                        |source| StoreError::Decode {
                            what: "snapshot state",
                            source,
                        },
                    )?)
                    .into();
                write_snapshot(&db, &snapshot_file, &legacy.meta, &applied)
                    .map_err(StoreError::SnapshotFile)?;
                applied
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                applied: AppliedState::new(applied, Box::new(RocksTail(db.clone()))),
                db,
                snapshot_file,
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    pub fn reader(&self) -> consensus::StoreReader {
        consensus::StoreReader::new(self.shared.applied.clone())
    }
}

/// Makes sure the receiving file holds what `snapshot` holds.
async fn receive_into(
    file: &SnapshotFile,
    mut snapshot: Box<tokio::fs::File>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let given = snapshot.metadata().await?;
    let path = file.receiving_path();
    let receiving = tokio::fs::metadata(&path).await.ok();
    if receiving.is_some_and(|r| r.dev() == given.dev() && r.ino() == given.ino()) {
        return Ok(());
    }
    let mut out = tokio::fs::File::create(&path).await?;
    tokio::io::AsyncSeekExt::seek(&mut *snapshot, std::io::SeekFrom::Start(0)).await?;
    tokio::io::copy(&mut *snapshot, &mut out).await?;
    out.flush().await
}

/// Makes `applied` the snapshot described by `meta`, durably, and drops a snapshot an older
/// version kept in RocksDB (a no-op once it is gone).
fn write_snapshot(
    db: &DB,
    file: &SnapshotFile,
    meta: &Meta,
    applied: &Applied,
) -> std::io::Result<()> {
    file.write(meta, |out| encode_state(applied, out))?
        .finish()?;
    delete_legacy(db)
}

fn encode_state(applied: &Applied, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    postcard::to_io(applied, out)
        .map(|_| ())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

fn delete_legacy(db: &DB) -> std::io::Result<()> {
    db.delete_cf(snapshot_cf(db), LEGACY_SNAPSHOT)
        .map_err(std::io::Error::other)
}

fn snapshot_cf(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf::SNAPSHOT)
        .expect("column family created at open")
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        // Encoded into the file under the read lock, which holds up writes (not reads)
        // meanwhile: cloning the state to encode it outside the lock would take longer than
        // encoding it and, for the while, twice the state's memory. Made durable after.
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let (meta, pending) = {
            let applied = self.shared.applied.read();
            let snapshot_id = match applied.last_applied {
                Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
                None => format!("empty-{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            let pending = self
                .shared
                .snapshot_file
                .write(&meta, |out| encode_state(&applied, out))
                .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
            (meta, pending)
        };
        let signature = Some(meta.signature());
        pending
            .finish()
            .and_then(|()| delete_legacy(&self.shared.db))
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let file = tokio::fs::File::open(self.shared.snapshot_file.path())
            .await
            .map_err(|e| StorageIOError::read_snapshot(signature, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership)> {
        let applied = self.shared.applied.read();
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
            let mut applied = self.shared.applied.write();
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
                self.shared.applied.notifier().begin_replace();
            }
            restored
        };
        // Published after the lock is released: a blocking query that subscribed before reading
        // either saw this write or is woken by it.
        if restored {
            self.shared.applied.notifier().publish_all();
        } else {
            self.shared.applied.notifier().publish(&topics);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>> {
        // Chunks from the leader go straight to disk.
        let path = self
            .shared
            .snapshot_file
            .receiving()
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ServerNode>,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<()> {
        let signature = Some(meta.signature());
        // tokio buffers file writes: flush what openraft wrote before the file is read.
        snapshot
            .flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let file = self.shared.snapshot_file.clone();
        // openraft hands back the file it was given by `begin_receiving_snapshot`; a snapshot
        // object from elsewhere (the storage test suite does that) is copied there first.
        receive_into(&file, snapshot)
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        let (_, mut applied) =
            tokio::task::spawn_blocking(move || file.install_received::<Applied>())
                .await
                .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?
                .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
        delete_legacy(&self.shared.db)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        // Everything may have changed: discard pending change records and wake every query.
        let _ = applied.state.drain_topics(&mut Vec::new());
        {
            let mut current = self.shared.applied.write();
            self.shared.applied.notifier().begin_replace();
            *current = applied;
        }
        self.shared.applied.notifier().publish_all();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let file = self.shared.snapshot_file.clone();
        let Some(meta) = file
            .read_meta()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let data = tokio::fs::File::open(file.path())
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}
