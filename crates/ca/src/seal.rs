//! Encryption at rest of the CA's private keys: AES-256-GCM under a data key that never enters
//! the replicated state. A sealed key is text, `mesh-sealed:v1:<key id>:<base64(nonce ‖
//! ciphertext ‖ tag)>`, stored where the PEM would be; the key id says which data key opens
//! it, so a keyring of several keys (the first active) lets keys be rotated.
//!
//! Pure: the data keys come from the caller (a key file or the environment, read by the
//! server); nonces come from ring's system randomness like the CA's other randomness. Errors
//! name key ids, never key bytes.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

#[cfg(test)]
mod tests;

/// What every sealed text starts with.
pub const SEALED_PREFIX: &str = "mesh-sealed:v1:";

/// The length of a data key in bytes (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// One data key and its id.
struct DataKey {
    /// The first 8 hex characters of the SHA-256 of the key.
    id: String,
    bytes: [u8; DATA_KEY_LEN],
}

/// An ordered keyring of data keys: the first seals, every one opens. Never empty. Its `Debug`
/// shows the key ids only.
pub struct DataKeys {
    keys: Vec<DataKey>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

/// Why a key file or `MESH_DATA_KEY` cannot be used. Never shows a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("no data key found: expected one base64 key of 32 bytes per line (blank lines and `#` comments are ignored)")]
    Empty,
    #[error("{place}: not valid base64")]
    NotBase64 { place: String },
    #[error("{place}: decodes to {len} bytes; a data key is the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)")]
    WrongLength { place: String, len: usize },
    #[error("{place}: key {id} is listed twice")]
    Duplicate { place: String, id: String },
}

/// Why a sealed text does not open (or a text cannot be sealed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed with data key {id}, which is not in this server's keyring (it has {known})")]
    UnknownKey { id: String, known: String },
    #[error("sealed text is corrupt: {0}")]
    Corrupt(&'static str),
    #[error(
        "sealed text does not open with data key {id}: the key is wrong or the text was altered"
    )]
    Tag { id: String },
    #[error("the text is not sealed")]
    NotSealed,
    #[error("the system random generator failed")]
    Random,
}

impl DataKeys {
    /// A keyring from raw keys, the first active.
    pub fn new(keys: Vec<[u8; DATA_KEY_LEN]>) -> Result<DataKeys, KeysError> {
        let mut ring = DataKeys { keys: Vec::new() };
        for (n, bytes) in keys.into_iter().enumerate() {
            ring.push(bytes, || format!("key {}", n + 1))?;
        }
        ring.non_empty()
    }

    /// A key file's text: one base64 key per line, the first active; blank lines and lines
    /// starting with `#` are ignored. Errors name the line.
    pub fn parse(text: &str) -> Result<DataKeys, KeysError> {
        let mut ring = DataKeys { keys: Vec::new() };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            ring.push_base64(line, || format!("line {}", n + 1))?;
        }
        ring.non_empty()
    }

    /// `MESH_DATA_KEY`'s value: base64 keys separated by commas, the first active. Errors name
    /// the entry.
    pub fn parse_list(value: &str) -> Result<DataKeys, KeysError> {
        let mut ring = DataKeys { keys: Vec::new() };
        for (n, entry) in value.split(',').enumerate() {
            let entry = entry.trim();
            if !entry.is_empty() {
                ring.push_base64(entry, || format!("entry {}", n + 1))?;
            }
        }
        ring.non_empty()
    }

    /// The id of the key that seals.
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the active one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn push_base64(&mut self, text: &str, place: impl Fn() -> String) -> Result<(), KeysError> {
        let decoded = STANDARD
            .decode(text)
            .map_err(|_| KeysError::NotBase64 { place: place() })?;
        let bytes: [u8; DATA_KEY_LEN] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeysError::WrongLength {
                    place: place(),
                    len: decoded.len(),
                })?;
        self.push(bytes, place)
    }

    fn push(
        &mut self,
        bytes: [u8; DATA_KEY_LEN],
        place: impl Fn() -> String,
    ) -> Result<(), KeysError> {
        let id = key_id(&bytes);
        if self.keys.iter().any(|k| k.id == id) {
            return Err(KeysError::Duplicate { place: place(), id });
        }
        self.keys.push(DataKey { id, bytes });
        Ok(())
    }

    fn non_empty(self) -> Result<DataKeys, KeysError> {
        if self.keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(self)
    }

    fn by_id(&self, id: &str) -> Result<&DataKey, SealError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey {
                id: id.to_owned(),
                known: self.ids().join(", "),
            })
    }
}

/// The first 8 hex characters of the SHA-256 of `key`.
fn key_id(key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key);
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cipher(key: &DataKey) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.bytes).expect("a data key is 32 bytes"))
}

/// Seals `plaintext` with the active key. The header (`mesh-sealed:v1:<id>`) is authenticated
/// too, so a text cannot be passed off as sealed by another key.
pub fn seal(keys: &DataKeys, plaintext: &str) -> Result<String, SealError> {
    let key = &keys.keys[0];
    let header = format!("{SEALED_PREFIX}{}", key.id);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    let mut body = plaintext.as_bytes().to_vec();
    cipher(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header.as_bytes()),
            &mut body,
        )
        .map_err(|_| SealError::Corrupt("the text is too long to seal"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    Ok(format!("{header}:{}", STANDARD.encode(out)))
}

/// Opens a text made by [`seal`] with whichever key of `keys` sealed it.
pub fn unseal(keys: &DataKeys, text: &str) -> Result<String, SealError> {
    let id = sealed_with(text).ok_or(SealError::NotSealed)?;
    let key = keys.by_id(id)?;
    let header = &text[..SEALED_PREFIX.len() + id.len()];
    let encoded = &text[header.len() + 1..];
    let mut body = STANDARD
        .decode(encoded.trim_end())
        .map_err(|_| SealError::Corrupt("the ciphertext is not base64"))?;
    if body.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(SealError::Corrupt("the ciphertext is too short"));
    }
    let (nonce, sealed) = body.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("split at NONCE_LEN");
    let plain = cipher(key)
        .open_in_place(nonce, Aad::from(header.as_bytes()), sealed)
        .map_err(|_| SealError::Tag { id: id.to_owned() })?;
    String::from_utf8(plain.to_vec()).map_err(|_| SealError::Corrupt("the plaintext is not UTF-8"))
}

/// Whether `text` is sealed (as opposed to a plaintext PEM).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// The id of the key that sealed `text`, if it is sealed and well-formed up to the id.
pub fn sealed_with(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(SEALED_PREFIX)?;
    let (id, _) = rest.split_once(':')?;
    (!id.is_empty()).then_some(id)
}
