//! Snapshot archives for `GET/PUT /v1/snapshot`: a gzipped tar holding `meta.json`,
//! `state.bin` (the encoded replicated state) and `SHA256SUMS`, like Consul's layout. Restoring
//! verifies every checksum before anything is decoded.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::legacy::{StateV1, StateV2};
use crate::state::State;

/// The archive format version this build writes. It also reads versions 1 and 2, whose states
/// have the previous layouts ([`crate::StateV1`], [`crate::StateV2`]).
pub const ARCHIVE_VERSION: u32 = 3;

/// What an archive says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveMeta {
    pub version: u32,
    /// The raft index the state was read at.
    pub index: u64,
    pub term: u64,
    pub datacenter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading the snapshot archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("the snapshot archive lacks {0}")]
    Missing(&'static str),
    #[error("checksum mismatch for {0}: the archive is corrupt")]
    Checksum(String),
    #[error("unsupported snapshot archive version {0}")]
    Version(u32),
    #[error("decoding {what}: {why}")]
    Decode { what: &'static str, why: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs `state` read at `meta.index` into a compressed archive.
pub fn pack(meta: &ArchiveMeta, state: &State) -> Result<Vec<u8>, ArchiveError> {
    let state_bin = postcard::to_stdvec(state).map_err(|e| ArchiveError::Decode {
        what: "state.bin",
        why: e.to_string(),
    })?;
    pack_encoded(meta, &state_bin)
}

/// Packs an already encoded state.
fn pack_encoded(meta: &ArchiveMeta, state_bin: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let meta_json = serde_json::to_vec_pretty(meta).map_err(|e| ArchiveError::Decode {
        what: "meta.json",
        why: e.to_string(),
    })?;
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex(&Sha256::digest(&meta_json)),
        hex(&Sha256::digest(state_bin))
    );
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in [
        ("meta.json", meta_json.as_slice()),
        ("state.bin", state_bin),
        ("SHA256SUMS", sums.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)?;
    }
    Ok(tar.into_inner()?.finish()?)
}

/// Unpacks and verifies an archive made by [`pack`].
pub fn unpack(archive: &[u8]) -> Result<(ArchiveMeta, State), ArchiveError> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let (mut meta_json, mut state_bin, mut sums) = (None, None, None);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        match name.as_str() {
            "meta.json" => meta_json = Some(bytes),
            "state.bin" => state_bin = Some(bytes),
            "SHA256SUMS" => sums = Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => {}
        }
    }
    let meta_json = meta_json.ok_or(ArchiveError::Missing("meta.json"))?;
    let state_bin = state_bin.ok_or(ArchiveError::Missing("state.bin"))?;
    let sums = sums.ok_or(ArchiveError::Missing("SHA256SUMS"))?;
    for (name, bytes) in [("meta.json", &meta_json), ("state.bin", &state_bin)] {
        let expected = sums
            .lines()
            .find_map(|line| line.strip_suffix(name).map(str::trim))
            .ok_or(ArchiveError::Missing("a checksum line"))?;
        if expected != hex(&Sha256::digest(bytes)) {
            return Err(ArchiveError::Checksum(name.to_owned()));
        }
    }
    let meta: ArchiveMeta =
        serde_json::from_slice(&meta_json).map_err(|e| ArchiveError::Decode {
            what: "meta.json",
            why: e.to_string(),
        })?;
    let decode_failed = |e: postcard::Error| ArchiveError::Decode {
        what: "state.bin",
        why: e.to_string(),
    };
    let state = match meta.version {
        ARCHIVE_VERSION => postcard::from_bytes(&state_bin).map_err(decode_failed)?,
        2 => postcard::from_bytes::<StateV2>(&state_bin)
            .map_err(decode_failed)?
            .into(),
        1 => postcard::from_bytes::<StateV1>(&state_bin)
            .map_err(decode_failed)?
            .into(),
        other => return Err(ArchiveError::Version(other)),
    };
    Ok((meta, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: u32) -> ArchiveMeta {
        ArchiveMeta {
            version,
            index: 42,
            term: 3,
            datacenter: "dc1".into(),
        }
    }

    fn kv_set(state: &mut kv::KvStore, key: &str) {
        let op = kv::KvOp::Set {
            key: key.into(),
            value: b"v".to_vec(),
            flags: 0,
        };
        state.apply(op, 7, 1_000).expect("set");
    }

    #[test]
    fn an_archive_round_trips_with_its_config_entries() {
        let mut state = State::default();
        kv_set(&mut state.kv, "a");
        let write = config_entries::wire::decode(
            br#"{"Kind":"service-defaults","Name":"web","Protocol":"http"}"#,
        )
        .expect("body");
        state.config_entries.upsert(&write, None, 8).expect("valid");
        let archive = pack(&meta(ARCHIVE_VERSION), &state).expect("pack");
        let (read_meta, read) = unpack(&archive).expect("unpack");
        assert_eq!(read_meta, meta(ARCHIVE_VERSION));
        assert_eq!(read, state);
    }

    #[test]
    fn version_1_and_2_archives_still_restore() {
        let mut old = StateV1::default();
        kv_set(&mut old.kv, "kept");
        let bytes = postcard::to_stdvec(&old).expect("encode");
        let archive = pack_encoded(&meta(1), &bytes).expect("pack");
        let (read_meta, state) = unpack(&archive).expect("a version 1 archive");
        assert_eq!(read_meta.version, 1);
        assert!(state.kv.get("kept").is_some());
        assert!(state.config_entries.is_empty());
        let mut v2 = StateV2::default();
        kv_set(&mut v2.kv, "kept");
        let bytes_v2 = postcard::to_stdvec(&v2).expect("encode");
        let archive = pack_encoded(&meta(2), &bytes_v2).expect("pack");
        let (_, state) = unpack(&archive).expect("a version 2 archive");
        assert!(state.kv.get("kept").is_some());
        assert!(!state.acl.initialized());
        let future = pack_encoded(&meta(ARCHIVE_VERSION + 1), &bytes).expect("pack");
        assert!(matches!(
            unpack(&future),
            Err(ArchiveError::Version(v)) if v == ARCHIVE_VERSION + 1
        ));
    }
}
