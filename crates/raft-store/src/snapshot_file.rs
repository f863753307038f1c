//! The current state-machine snapshot, as a file next to RocksDB's, and the file a snapshot
//! sent by the leader is received into.
//!
//! The file is exactly what is sent to a follower that needs a snapshot, so it is streamed from
//! disk in chunks by the sender and written to disk chunk by chunk by the receiver: neither side
//! holds the encoded snapshot in memory, and the receiver installs it by checking and renaming
//! the file it received, then decoding the state from it as a stream.
//!
//! Layout: `MESHSNP4`, the length of the metadata (u32, little endian), openraft's snapshot
//! metadata and the state (both postcard), then the SHA-256 of everything before it. It is
//! written to a temporary name, synced, renamed over the previous one and the directory synced,
//! so a crash leaves either snapshot whole.
//!
//! `MESHSNP3` and `MESHSNP2` files are the same but hold the state in the previous layouts
//! ([`SnapshotState::Previous`], see `consensus::StateV2` and `StateV1`): they are read (and
//! received from a leader of an earlier version) and converted. Older layouts are read once and
//! rewritten in the current one when the store opens: a file holding postcard `{meta, data}`
//! followed by its SHA-256, and before that a RocksDB value.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use openraft::SnapshotMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use consensus::{NodeId, ServerNode};

/// The file's name in the store's directory.
const NAME: &str = "snapshot.bin";
/// Where it is written before it replaces the previous one.
const TEMPORARY: &str = "snapshot.bin.tmp";
/// Where a snapshot from the leader is received.
const RECEIVING: &str = "snapshot.bin.recv";
const MAGIC: &[u8; 8] = b"MESHSNP4";
/// The magics of files holding the state in earlier layouts, the latest first: the layout of
/// `PREVIOUS_MAGICS[n]` is `n + 1` steps of [`SnapshotState::Previous`] back.
const PREVIOUS_MAGICS: [&[u8; 8]; 2] = [b"MESHSNP3", b"MESHSNP2"];
const DIGEST_LEN: u64 = 32;
/// Room for the largest single string or byte string in the state while decoding from the
/// file (a KV value, a CA's JSON). Allocated zeroed, so only what is used becomes resident; a
/// state with a larger item is decoded from memory instead.
const SCRATCH: usize = 64 << 20;

pub(crate) type Meta = SnapshotMeta<NodeId, ServerNode>;

/// The snapshot file of the store in `dir`.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
}

/// A state that snapshot files hold, and the layout the files of the previous magic hold it
/// in; the oldest layout is its own previous.
pub(crate) trait SnapshotState: DeserializeOwned {
    type Previous: SnapshotState + Into<Self>;
}

/// A snapshot of the first file layout, and of the RocksDB value before it.
#[derive(Serialize, Deserialize)]
pub(crate) struct LegacySnapshot {
    pub(crate) meta: Meta,
    pub(crate) data: Vec<u8>,
}

impl SnapshotFile {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The current snapshot's path (it may not exist).
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(NAME)
    }

    /// Where a snapshot from the leader is received; emptied.
    pub(crate) fn receiving(&self) -> io::Result<PathBuf> {
        let path = self.receiving_path();
        File::create(&path)?;
        Ok(path)
    }

    pub(crate) fn receiving_path(&self) -> PathBuf {
        self.dir.join(RECEIVING)
    }

    /// Writes `meta` and the state `encode` produces as the new snapshot. `encode` runs first
    /// and alone on the caller's thread (under the caller's locks); [`Pending::finish`] makes
    /// the file durable and replaces the current one, and may run after those are released.
    pub(crate) fn write(
        &self,
        meta: &Meta,
        encode: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Pending> {
        let temporary = self.dir.join(TEMPORARY);
        let mut out = Hashing::new(BufWriter::new(File::create(&temporary)?));
        let meta_bytes = postcard::to_stdvec(meta).map_err(invalid)?;
        out.write_all(MAGIC)?;
        out.write_all(
            &u32::try_from(meta_bytes.len())
                .map_err(invalid)?
                .to_le_bytes(),
        )?;
        out.write_all(&meta_bytes)?;
        encode(&mut out)?;
        let (mut writer, digest) = out.finish();
        writer.write_all(&digest)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        Ok(Pending {
            file,
            temporary,
            target: self.path(),
            dir: self.dir.clone(),
        })
    }

    /// Checks a received snapshot, makes it the current one, and returns its metadata and
    /// state.
    pub(crate) fn install_received<T: SnapshotState>(&self) -> io::Result<(Meta, T)> {
        let received = self.dir.join(RECEIVING);
        File::open(&received)?.sync_all()?;
        let (meta, state, _) = decode(&received)?;
        fs::rename(&received, self.path())?;
        File::open(&self.dir)?.sync_all()?;
        Ok((meta, state))
    }

    /// The current snapshot's metadata and state, checked against its digest; `None` when
    /// there is no file. A file of the first layout is returned as a [`LegacySnapshot`].
    pub(crate) fn read<T: SnapshotState>(&self) -> io::Result<Option<Stored<T>>> {
        let path = self.path();
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut magic = [0u8; MAGIC.len()];
        let has_magic = file.read_exact(&mut magic).is_ok()
            && (&magic == MAGIC || PREVIOUS_MAGICS.contains(&&magic));
        drop(file);
        if has_magic {
            let (meta, state, layout) = decode(&path)?;
            return Ok(Some(match layout {
                Layout::Current => Stored::Current(state),
                Layout::Previous(_) => Stored::Previous(meta, state),
            }));
        }
        let bytes = fs::read(&path)?;
        let body = check_digest(&bytes)?;
        let legacy: LegacySnapshot = postcard::from_bytes(body).map_err(invalid)?;
        Ok(Some(Stored::Legacy(legacy)))
    }
}

impl SnapshotFile {
    /// The current snapshot's metadata alone (its header), without checking its digest: for
    /// sending the file, which the receiver checks.
    pub(crate) fn read_meta(&self) -> io::Result<Option<Meta>> {
        let mut file = match File::open(self.path()) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut header = [0u8; MAGIC.len() + 4];
        file.read_exact(&mut header)?;
        layout_of(&header)?;
        let meta_len = u32::from_le_bytes(header[MAGIC.len()..].try_into().expect("4 bytes"));
        let mut meta_bytes = vec![0u8; meta_len as usize];
        file.read_exact(&mut meta_bytes)?;
        postcard::from_bytes(&meta_bytes).map(Some).map_err(invalid)
    }
}

/// Which layout of the state a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Current,
    /// This many layouts back.
    Previous(usize),
}

/// The layout a file's header announces.
fn layout_of(header: &[u8]) -> io::Result<Layout> {
    let magic = header
        .get(..MAGIC.len())
        .ok_or_else(|| corrupt("not a snapshot file"))?;
    if magic == MAGIC {
        return Ok(Layout::Current);
    }
    PREVIOUS_MAGICS
        .iter()
        .position(|previous| magic == previous.as_slice())
        .map(|n| Layout::Previous(n + 1))
        .ok_or_else(|| corrupt("not a snapshot file"))
}

/// A snapshot written but not yet durable nor current.
#[must_use = "the snapshot replaces the current one only once finished"]
pub(crate) struct Pending {
    file: File,
    temporary: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

impl Pending {
    /// Syncs the file, renames it over the current snapshot and syncs the directory.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.file.sync_all()?;
        drop(self.file);
        fs::rename(&self.temporary, &self.target)?;
        File::open(&self.dir)?.sync_all()
    }
}

/// What [`SnapshotFile::read`] found.
pub(crate) enum Stored<T> {
    Current(T),
    /// A `MESHSNP2` file, its state converted; the file should be rewritten.
    Previous(Meta, T),
    Legacy(LegacySnapshot),
}

/// Verifies the digest of the file at `path` (streaming), then decodes its metadata and state
/// (converted from the previous layout if the file holds that).
fn decode<T: SnapshotState>(path: &Path) -> io::Result<(Meta, T, Layout)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let body_len = len
        .checked_sub(DIGEST_LEN)
        .ok_or_else(|| corrupt("shorter than its checksum"))?;
    let mut hasher = Sha256::new();
    io::copy(&mut (&mut file).take(body_len), &mut HashSink(&mut hasher))?;
    let mut expected = [0u8; DIGEST_LEN as usize];
    file.read_exact(&mut expected)?;
    if hasher.finalize()[..] != expected {
        return Err(corrupt("checksum mismatch"));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; MAGIC.len() + 4];
    file.read_exact(&mut header)?;
    let layout = layout_of(&header)?;
    let meta_len = u32::from_le_bytes(header[MAGIC.len()..].try_into().expect("4 bytes"));
    let mut meta_bytes = vec![0u8; meta_len as usize];
    file.read_exact(&mut meta_bytes)?;
    let meta: Meta = postcard::from_bytes(&meta_bytes).map_err(invalid)?;
    let state_start = header.len() as u64 + u64::from(meta_len);
    let state_len = body_len
        .checked_sub(state_start)
        .ok_or_else(|| corrupt("shorter than its header"))?;
    let age = match layout {
        Layout::Current => 0,
        Layout::Previous(age) => age,
    };
    let state = decode_layout::<T>(&mut file, state_start, state_len, age)?;
    Ok((meta, state, layout))
}

/// Decodes a state written `age` layouts back and converts it, one layout at a time.
fn decode_layout<T: SnapshotState>(
    file: &mut File,
    state_start: u64,
    state_len: u64,
    age: usize,
) -> io::Result<T> {
    match age {
        0 => decode_state::<T>(file, state_start, state_len),
        _ => decode_layout::<T::Previous>(file, state_start, state_len, age - 1).map(Into::into),
    }
}

/// Decodes the `state_len` bytes of state at `state_start` as a stream.
fn decode_state<T: DeserializeOwned>(
    file: &mut File,
    state_start: u64,
    state_len: u64,
) -> io::Result<T> {
    file.seek(SeekFrom::Start(state_start))?;
    let reader = BufReader::with_capacity(1 << 20, (&mut *file).take(state_len));
    let mut scratch = vec![0u8; SCRATCH];
    match postcard::from_io::<T, _>((reader, &mut scratch)) {
        Ok((state, _)) => Ok(state),
        // An item larger than the scratch space: decode from memory.
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            drop(scratch);
            file.seek(SeekFrom::Start(state_start))?;
            let mut bytes = Vec::with_capacity(state_len as usize);
            (&mut *file).take(state_len).read_to_end(&mut bytes)?;
            postcard::from_bytes(&bytes).map_err(invalid)
        }
        Err(err) => Err(invalid(err)),
    }
}

/// Rewrites the file at `path`, written by this version around a state encoded in the layout
/// `age` layouts back, as that version wrote it: its magic and digest.
#[cfg(test)]
pub(crate) fn mark_as_previous(path: &Path, age: usize) -> io::Result<()> {
    let mut bytes = fs::read(path)?;
    let body_len = bytes.len() - DIGEST_LEN as usize;
    bytes[..MAGIC.len()].copy_from_slice(PREVIOUS_MAGICS[age - 1]);
    let digest = Sha256::digest(&bytes[..body_len]);
    bytes[body_len..].copy_from_slice(&digest);
    fs::write(path, bytes)
}

/// The body of a first-layout file whose trailing digest matches.
fn check_digest(bytes: &[u8]) -> io::Result<&[u8]> {
    let body_len = bytes
        .len()
        .checked_sub(DIGEST_LEN as usize)
        .ok_or_else(|| corrupt("shorter than its checksum"))?;
    if Sha256::digest(&bytes[..body_len])[..] != bytes[body_len..] {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(&bytes[..body_len])
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (W, [u8; DIGEST_LEN as usize]) {
        (self.inner, self.hasher.finalize().into())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashSink<'a>(&'a mut Sha256);

impl Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn invalid(err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the snapshot file is corrupt: {what}"),
    )
}

#[cfg(test)]
mod tests;
