//! The stored KV record (Consul's `DirEntry`), in internal field names.

use serde::{Deserialize, Serialize};

/// One key and its value, with the raft indexes and lock state Consul reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    /// How many times the key has been acquired; kept across releases.
    pub lock_index: u64,
    /// The session holding the lock, if any.
    pub session: Option<String>,
}

impl DirEntry {
    /// Whether a write of `other` would change nothing a client can observe. Consul skips such
    /// writes (no new ModifyIndex) so idempotent PUTs do not wake blocking queries.
    pub(crate) fn same_content(&self, other: &DirEntry) -> bool {
        self.key == other.key
            && self.value == other.value
            && self.flags == other.flags
            && self.lock_index == other.lock_index
            && self.session == other.session
    }

    /// The copy Consul returns for write verbs in a transaction: everything but the value.
    pub(crate) fn without_value(&self) -> DirEntry {
        DirEntry {
            key: self.key.clone(),
            value: Vec::new(),
            flags: self.flags,
            create_index: self.create_index,
            modify_index: self.modify_index,
            lock_index: self.lock_index,
            session: self.session.clone(),
        }
    }
}
