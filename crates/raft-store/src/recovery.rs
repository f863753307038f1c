//! Quorum-loss recovery: make a stopped server the sole voter of a new configuration, keeping
//! everything in its log.
//!
//! When a majority of servers is gone for good, no leader can be elected and no membership change
//! can commit. The operator stops one survivor (the one with the most log, which the `mesh-server
//! recover` command checks against the other survivors) and runs this on its data directory: it
//! appends a membership entry naming only this server, in a new term, and records a vote for that
//! term. Started again, the server elects itself and commits its whole log, including entries the
//! lost majority may never have acknowledged; the other survivors are wiped and join it again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};

use crate::{cf, StoreError};
use consensus::{LogPosition, NodeId, ServerNode, TypeConfig};

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|source| StoreError::Decode {
        what: "recovery entry",
        source,
    })
}

fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Decode { what, source })
}

/// The last log position in the (stopped) store at `dir`.
pub fn log_position(dir: &Path) -> Result<LogPosition, StoreError> {
    let db = crate::open_db(dir)?;
    last_position(&db)
}

pub(crate) fn last_position(db: &rocksdb::DB) -> Result<LogPosition, StoreError> {
    let log = db
        .cf_handle(cf::LOG)
        .expect("column family created at open");
    if let Some(item) = db.iterator_cf(log, IteratorMode::End).next() {
        let (_, value) = item?;
        let entry: Entry<TypeConfig> = decode(&value, "log entry")?;
        return Ok(LogPosition {
            term: entry.log_id.leader_id.term,
            index: entry.log_id.index,
        });
    }
    let meta = db
        .cf_handle(cf::META)
        .expect("column family created at open");
    let purged: Option<LogId<NodeId>> = match db.get_cf(meta, b"last_purged")? {
        Some(bytes) => Some(decode(&bytes, "last purged log id")?),
        None => None,
    };
    Ok(
        purged.map_or(LogPosition { term: 0, index: 0 }, |id| LogPosition {
            term: id.leader_id.term,
            index: id.index,
        }),
    )
}

/// Appends a configuration with `id` as the only voter, in a new term. The server must be
/// stopped. Returns the position of the new membership entry.
pub fn recover_as_sole_voter(
    dir: &Path,
    id: NodeId,
    node: ServerNode,
) -> Result<LogPosition, StoreError> {
    let db = crate::open_db(dir)?;
    let last = last_position(&db)?;
    let meta = db
        .cf_handle(cf::META)
        .expect("column family created at open");
    let vote_term = match db.get_cf(meta, b"vote")? {
        Some(bytes) => decode::<Vote<NodeId>>(&bytes, "vote")?.leader_id().term,
        None => 0,
    };
    let term = vote_term.max(last.term) + 1;
    let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, node)]));
    let entry: Entry<TypeConfig> = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, id), last.index + 1),
        payload: EntryPayload::Membership(membership),
    };
    let mut batch = WriteBatch::default();
    batch.put_cf(
        db.cf_handle(cf::LOG)
            .expect("column family created at open"),
        (last.index + 1).to_be_bytes(),
        encode(&entry)?,
    );
    batch.put_cf(meta, b"vote", encode(&Vote::new(term, id))?);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    Ok(LogPosition {
        term,
        index: last.index + 1,
    })
}
