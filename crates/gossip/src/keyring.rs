//! Gossip encryption keys and AES-GCM sealing, with Consul's keyring semantics. Keys are 16, 24
//! or 32 bytes (AES-128, -192 or -256), as memberlist accepts; `keygen` makes 32.
//!
//! A sealed message is `version (1) | nonce (12 bytes) | ciphertext and tag`. Messages are sealed with the
//! primary key and opened with whichever installed key works, which is what makes rotation (install the new
//! key everywhere, make it primary everywhere, remove the old one) possible without a partition.
//!
//! Pure: the nonce comes from the caller, and persistence is a string in Consul's `local.keyring` format.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Length in bytes of the keys `keygen` makes (AES-256).
pub const KEY_LEN: usize = 32;

/// Key lengths in bytes that are accepted: AES-128, AES-192 and AES-256.
pub const KEY_LENS: [usize; 3] = [16, 24, 32];

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;

/// Version byte of a sealed message.
pub const VERSION: u8 = 1;

const TAG_LEN: usize = 16;

/// Bytes a sealed message adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Keyring failures. Display texts are the ones Consul users know, where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The key is not valid base64.
    #[error("invalid gossip encryption key: not valid base64 ({reason})")]
    InvalidBase64 {
        /// What the decoder found.
        reason: String,
    },
    /// The key decodes to the wrong number of bytes.
    #[error("invalid gossip encryption key: it must decode to 16, 24 or 32 bytes, got {len}")]
    InvalidKeyLength {
        /// Decoded length.
        len: usize,
    },
    /// `use_key` or `remove` named a key that is not installed.
    #[error("Requested key is not in the keyring")]
    KeyNotInstalled,
    /// `remove` named the primary key.
    #[error("Removing the primary key is not allowed")]
    RemovePrimary,
    /// A keyring file holds no keys.
    #[error("keyring file contains no keys")]
    EmptyKeyring,
    /// A keyring file is not a JSON array of strings.
    #[error("invalid keyring file: {reason}")]
    InvalidFile {
        /// What the parser found.
        reason: String,
    },
    /// No installed key opens the message (memberlist's text).
    #[error("No installed keys could decrypt the message")]
    NoKeyDecrypts,
}

/// Installed keys, one of them primary.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<Vec<u8>>,
    primary: usize,
}

/// AES-GCM under a key of one of [`KEY_LENS`].
enum Cipher {
    Aes128(Aes128Gcm),
    Aes192(AesGcm<Aes192, U12>),
    Aes256(Aes256Gcm),
}

impl Cipher {
    /// `key` is one of [`KEY_LENS`] long (checked when it was decoded).
    fn new(key: &[u8]) -> Cipher {
        let invalid = "key lengths are checked when keys are decoded";
        match key.len() {
            16 => Cipher::Aes128(Aes128Gcm::new_from_slice(key).expect(invalid)),
            24 => Cipher::Aes192(AesGcm::new_from_slice(key).expect(invalid)),
            _ => Cipher::Aes256(Aes256Gcm::new_from_slice(key).expect(invalid)),
        }
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        let nonce = Nonce::from_slice(nonce);
        match self {
            Cipher::Aes128(c) => c.encrypt(nonce, plaintext),
            Cipher::Aes192(c) => c.encrypt(nonce, plaintext),
            Cipher::Aes256(c) => c.encrypt(nonce, plaintext),
        }
        .expect("AES-GCM encryption only fails for messages of gigabytes")
    }

    fn open(&self, nonce: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::from_slice(nonce);
        match self {
            Cipher::Aes128(c) => c.decrypt(nonce, sealed),
            Cipher::Aes192(c) => c.decrypt(nonce, sealed),
            Cipher::Aes256(c) => c.decrypt(nonce, sealed),
        }
        .ok()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring holding one key (Consul's `encrypt` value), which is primary.
    pub fn new(primary: &str) -> Result<Self, Error> {
        Ok(Keyring {
            keys: vec![decode_key(primary)?],
            primary: 0,
        })
    }

    /// A keyring from several keys; the first one is primary.
    pub fn from_keys<S: AsRef<str>>(keys: &[S]) -> Result<Self, Error> {
        let (first, rest) = keys.split_first().ok_or(Error::EmptyKeyring)?;
        let mut keyring = Keyring::new(first.as_ref())?;
        for key in rest {
            keyring.install(key.as_ref())?;
        }
        Ok(keyring)
    }

    /// Adds a key (no-op when already installed). It is used for decryption at once.
    pub fn install(&mut self, key: &str) -> Result<(), Error> {
        let key = decode_key(key)?;
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
        Ok(())
    }

    /// Makes an installed key the primary one (the key that encrypts).
    pub fn use_key(&mut self, key: &str) -> Result<(), Error> {
        let key = decode_key(key)?;
        self.primary = self.position(&key)?;
        Ok(())
    }

    /// Removes an installed key other than the primary.
    pub fn remove(&mut self, key: &str) -> Result<(), Error> {
        let key = decode_key(key)?;
        let position = self.position(&key)?;
        if position == self.primary {
            return Err(Error::RemovePrimary);
        }
        self.keys.remove(position);
        if position < self.primary {
            self.primary -= 1;
        }
        Ok(())
    }

    /// Installed keys in base64, primary first.
    pub fn list(&self) -> Vec<String> {
        self.ordered().map(|key| BASE64.encode(key)).collect()
    }

    /// The primary key in base64.
    pub fn primary(&self) -> String {
        BASE64.encode(&self.keys[self.primary])
    }

    /// Consul's `local.keyring` file: a JSON array of base64 keys, primary first.
    pub fn to_file_json(&self) -> String {
        serde_json::to_string(&self.list()).expect("a list of strings always serializes")
    }

    /// Reads a `local.keyring` file; the first key is primary.
    pub fn from_file_json(json: &str) -> Result<Self, Error> {
        let keys: Vec<String> = serde_json::from_str(json).map_err(|e| Error::InvalidFile {
            reason: e.to_string(),
        })?;
        Keyring::from_keys(&keys)
    }

    /// Seals `plaintext` with the primary key.
    pub fn encrypt(&self, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let sealed = Cipher::new(&self.keys[self.primary]).seal(&nonce, plaintext);
        let mut message = Vec::with_capacity(OVERHEAD + plaintext.len());
        message.push(VERSION);
        message.extend_from_slice(&nonce);
        message.extend_from_slice(&sealed);
        message
    }

    /// Opens a sealed message with any installed key, primary first.
    pub fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if message.len() < OVERHEAD || message[0] != VERSION {
            return Err(Error::NoKeyDecrypts);
        }
        let nonce = &message[1..1 + NONCE_LEN];
        let sealed = &message[1 + NONCE_LEN..];
        self.ordered()
            .find_map(|key| Cipher::new(key).open(nonce, sealed))
            .ok_or(Error::NoKeyDecrypts)
    }

    fn ordered(&self) -> impl Iterator<Item = &Vec<u8>> {
        let primary = &self.keys[self.primary];
        std::iter::once(primary).chain(
            self.keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.primary)
                .map(|(_, k)| k),
        )
    }

    fn position(&self, key: &[u8]) -> Result<usize, Error> {
        self.keys
            .iter()
            .position(|k| k == key)
            .ok_or(Error::KeyNotInstalled)
    }
}

/// A fresh key in base64, as `consul keygen` prints it.
pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut key = [0u8; KEY_LEN];
    rng.fill_bytes(&mut key);
    encode_key(&key)
}

/// Base64 of raw key bytes.
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    BASE64.encode(key)
}

fn decode_key(key: &str) -> Result<Vec<u8>, Error> {
    let bytes = BASE64
        .decode(key.trim())
        .map_err(|e| Error::InvalidBase64 {
            reason: e.to_string(),
        })?;
    if !KEY_LENS.contains(&bytes.len()) {
        return Err(Error::InvalidKeyLength { len: bytes.len() });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
