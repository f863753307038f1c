//! The durable half of a mesh server's raft member: a RocksDB log store with group commit,
//! and openraft's state machine, which applies committed commands to the in-memory state
//! (`consensus`) and keeps its snapshots in a file. Also quorum-loss recovery on a stopped store.
//!
//! This crate never depends on HTTP, axum or the Consul wire format, and nothing but the server
//! links it: what the rest of the system shares about raft lives in `consensus`. It owns every
//! byte written under `<data_dir>/raft`.

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes); our helpers
// return the same type so `?` works without conversions.
#![allow(clippy::result_large_err)]

mod log_store;
mod recovery;
mod snapshot_file;
mod state_machine;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use log_store::LogStore;
pub use recovery::{log_position, recover_as_sole_voter};
pub use state_machine::StateMachineStore;

/// Errors opening or reading the on-disk store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening RocksDB at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rocksdb::Error,
    },
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("reading the snapshot file: {0}")]
    SnapshotFile(#[source] std::io::Error),
    #[error("decoding {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
}

/// Column families of the single RocksDB instance under `<data_dir>/raft`.
pub(crate) mod cf {
    /// Raft log entries, keyed by big-endian log index.
    pub const LOG: &str = "log";
    /// Vote, committed log id, last purged log id.
    pub const META: &str = "meta";
    /// Where older versions kept the state-machine snapshot (now a file, see
    /// [`crate::snapshot_file`]).
    pub const SNAPSHOT: &str = "snapshot";
    pub const ALL: [&str; 3] = [LOG, META, SNAPSHOT];
}

/// Opens (or creates) the store at `dir` and returns its two openraft halves, which share one
/// RocksDB instance. The state machine starts from the last persisted snapshot; openraft replays
/// the committed log after it.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let db = Arc::new(open_db(dir)?);
    let log = LogStore::new(db.clone())?;
    let sm = StateMachineStore::open(db)?;
    Ok((log, sm))
}

pub(crate) fn open_db(dir: &Path) -> Result<rocksdb::DB, StoreError> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // The raft log is append-mostly and read back rarely; keep memtables modest so an idle
    // server stays small.
    opts.set_write_buffer_size(16 << 20);
    opts.set_max_write_buffer_number(2);
    opts.set_keep_log_file_num(4);
    opts.set_max_background_jobs(2);
    let cfs = cf::ALL.map(|name| rocksdb::ColumnFamilyDescriptor::new(name, opts.clone()));
    rocksdb::DB::open_cf_descriptors(&opts, dir, cfs).map_err(|source| StoreError::Open {
        path: dir.display().to_string(),
        source,
    })
}
