//! The raft log in RocksDB, with group commit.
//!
//! `append` writes entries to RocksDB without waiting for the disk, so they are readable at once,
//! and hands openraft's flush callback to one syncer thread. The syncer fsyncs the write-ahead
//! log once for every callback queued while the previous fsync ran, so concurrent writes share
//! one fsync. RocksDB's WAL is ordered, so a sync covers every write issued before it.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};

use crate::{cf, StoreError};
use consensus::{NodeId, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// openraft's log storage over the shared RocksDB instance. Cheap to clone; clones share the
/// database and the syncer.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    syncer: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> std::result::Result<Self, StoreError> {
        let (syncer, queue) = mpsc::channel::<LogFlushed<TypeConfig>>();
        // A weak reference: the syncer must never be the one closing RocksDB, which would race
        // with process exit. The database closes when the stores and readers are dropped.
        let sync_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(&sync_db, &queue))
            .expect("spawning the log syncer thread");
        Ok(Self { db, syncer })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let bytes = self
            .db
            .get_cf(self.cf(cf::META), key)
            .map_err(|e| StorageIOError::read(&e))?;
        bytes
            .map(|b| postcard::from_bytes(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T, sync: bool) -> Result<()> {
        let bytes = postcard::to_stdvec(value).map_err(|e| StorageIOError::write(&e))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db
            .put_cf_opt(self.cf(cf::META), key, bytes, &opts)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>> {
        let mut iter = self.db.iterator_cf(self.cf(cf::LOG), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                decode_entry(&value).map(Some)
            }
        }
    }
}

fn run_syncer(db: &std::sync::Weak<DB>, queue: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        let result = match db.upgrade() {
            Some(db) => db
                .flush_wal(true)
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => Err(std::io::Error::other("the raft log store is closed")),
        };
        for callback in waiting {
            let outcome = result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
            callback.log_io_completed(outcome);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>> {
    postcard::from_bytes(bytes).map_err(|e| StorageIOError::read_logs(&e).into())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let from = index_key(start);
        let iter = self.db.iterator_cf(
            self.cf(cf::LOG),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(&std::io::Error::other("malformed log key"))
            })?);
            if !range.contains(&index) {
                break;
            }
            entries.push(decode_entry(&value)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(LAST_PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(entry) => Some(entry.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        // A vote must be on disk before it is acted on.
        self.put_meta(VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        // A hint for faster restart; losing it only means replaying less on boot.
        self.put_meta(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        let log = self.cf(cf::LOG);
        for entry in entries {
            let bytes = postcard::to_stdvec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.put_cf(log, index_key(entry.log_id.index), bytes);
        }
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        if let Err(mpsc::SendError(callback)) = self.syncer.send(callback) {
            // The syncer only exits when every sender is gone; we hold one.
            callback.log_io_completed(Err(std::io::Error::other("log syncer stopped")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(cf::LOG),
            index_key(log_id.index),
            index_key(u64::MAX),
        );
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut batch = WriteBatch::default();
        let bytes = postcard::to_stdvec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        batch.put_cf(self.cf(cf::META), LAST_PURGED, bytes);
        batch.delete_range_cf(self.cf(cf::LOG), index_key(0), index_key(log_id.index + 1));
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
