//! Mesh's built-in Connect certificate authority (Consul's `consul` CA provider), as pure logic:
//! the replicated CA state (roots with their keys, the signing intermediate, the serial counter),
//! bootstrap, leaf signing from CSRs, root rotation with cross-signing, pruning of rotated-out
//! roots, the CA configuration and its validation, chain verification for sidecars and tests,
//! and the CSR rate limiter.
//!
//! The JSON shapes served by `/v1/connect/ca/roots`, `/v1/connect/ca/configuration` and
//! `/v1/agent/connect/ca/leaf/:service` are in [`wire`] with Consul's field names.
//!
//! This crate never depends on raft, HTTP, RocksDB, tokio, files or the clock: every operation
//! that needs the time takes it as an argument. Key generation and ECDSA signatures use ring's
//! system randomness, so operations that create keys or certificates are *not* deterministic:
//! run them once (on the leader) and replicate their result, never re-run them on every replica.
//! [`CaState::reserve_leaf`] and [`CaState::note_issued`] are the deterministic halves that may be
//! applied on every replica.
//!
//! The private keys in [`CaState`] are PEM or, once a data key is configured, sealed with
//! AES-256-GCM ([`seal`]): the operations that compute a new CA work on opened keys
//! ([`CaState::unseal_keys`]), and the caller seals the result ([`CaState::seal_keys`]) before it
//! is stored; leaf signing opens the intermediate's key itself.

mod certs;
mod config;
mod duration;
mod error;
pub mod keys;
mod limiter;
pub mod seal;
mod spiffe;
mod state;
mod verify;
pub mod wire;

pub use certs::{generate_key_and_csr, hex_string};
pub use config::{CaConfig, ProviderConfig, PROVIDER_CONSUL};
pub use duration::{format_go_duration, parse_go_duration};
pub use error::{CaError, VerifyError};
pub use limiter::{CsrLimiter, RetryAfter, CSR_LIMIT_WAIT, DEFAULT_CSR_MAX_PER_SECOND};
pub use spiffe::{SpiffeError, SpiffeId};
pub use state::{
    trust_domain_for, CaState, CheckedCsr, CrossSigned, Leaf, LeafReservation, Root, RotationNote,
    CERT_DRIFT_BUFFER, ROOT_NAME,
};
pub use verify::verify_leaf;
