//! The current state-machine snapshot, as a file next to RocksDB's.
//!
//! Snapshots used to be one RocksDB value. A value of many megabytes goes through the WAL, a
//! memtable and a flush, each in one glibc allocation of its size; freeing those raises glibc's
//! mmap threshold to that size, after which RocksDB's memtable blocks come from heap arenas
//! that are never given back: ~70 MiB of a server's memory at 100,000 catalog nodes. A file
//! costs one write, and old snapshots do not linger in SSTs until a compaction.
//!
//! The file is written to a temporary name, synced, renamed over the previous one and the
//! directory synced, so a crash leaves either snapshot whole. Its contents are the encoded
//! snapshot followed by their SHA-256, which reading checks. A store whose snapshot is still
//! the RocksDB value reads that until it takes its first snapshot here, which then deletes it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The file's name in the store's directory.
const NAME: &str = "snapshot.bin";
/// Where it is written before it replaces the previous one.
const TEMPORARY: &str = "snapshot.bin.tmp";
const DIGEST_LEN: usize = 32;

/// The snapshot file of the store in `dir`.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The encoded snapshot, or `None` when none was written here.
    pub(crate) fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let mut bytes = match fs::read(self.dir.join(NAME)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let Some(body_len) = bytes.len().checked_sub(DIGEST_LEN) else {
            return Err(corrupt("shorter than its checksum"));
        };
        if Sha256::digest(&bytes[..body_len])[..] != bytes[body_len..] {
            return Err(corrupt("checksum mismatch"));
        }
        bytes.truncate(body_len);
        Ok(Some(bytes))
    }

    /// Replaces the snapshot with `encoded`, durably, before returning.
    pub(crate) fn write(&self, encoded: &[u8]) -> io::Result<()> {
        let temporary = self.dir.join(TEMPORARY);
        let mut file = File::create(&temporary)?;
        file.write_all(encoded)?;
        file.write_all(&Sha256::digest(encoded))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, self.dir.join(NAME))?;
        File::open(&self.dir)?.sync_all()
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the snapshot file is corrupt: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_wrote_and_the_last_write_wins() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = SnapshotFile::new(dir.path());
        assert_eq!(file.read().unwrap(), None);
        file.write(b"first").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b"first"[..]));
        file.write(b"").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b""[..]));
        file.write(b"second").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b"second"[..]));
        assert!(!dir.path().join(TEMPORARY).exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_snapshot() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = SnapshotFile::new(dir.path());
        file.write(b"some state").unwrap();
        let path = dir.path().join(NAME);
        let mut bytes = fs::read(&path).unwrap();
        bytes[2] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = file.read().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        fs::write(&path, b"short").unwrap();
        assert_eq!(file.read().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_leftover_temporary_file_is_ignored_and_replaced() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = SnapshotFile::new(dir.path());
        file.write(b"whole").unwrap();
        // A crash while writing the next one.
        fs::write(dir.path().join(TEMPORARY), b"half a snap").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b"whole"[..]));
        file.write(b"next").unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(&b"next"[..]));
    }
}
