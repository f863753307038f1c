//! The crate's error type: what a caller of [`crate::Gossip`] or the driver can get back.

use crate::event::QueryId;
use crate::keyring;
use crate::wire::WireError;

/// Everything that can go wrong in gossip, from a bad datagram to an oversized user event.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A keyring operation failed, or no installed key decrypts a datagram
    /// ([`keyring::Error::NoKeyDecrypts`]).
    #[error(transparent)]
    Keyring(#[from] keyring::Error),

    /// A plaintext datagram arrived while encryption is enabled.
    #[error("received an unencrypted message but gossip encryption is enabled")]
    Unencrypted,

    /// An encrypted datagram arrived while this node has no keyring.
    #[error("received an encrypted message but gossip encryption is not enabled")]
    UnexpectedEncryption,

    /// A keyring operation was requested but encryption is not enabled.
    #[error("gossip encryption is not enabled")]
    EncryptionDisabled,

    /// A configuration value is out of range.
    #[error("invalid gossip configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },

    /// A datagram that is not one of ours.
    #[error("malformed gossip message: {0}")]
    Malformed(#[from] WireError),

    /// foca rejected a message or failed to produce one.
    #[error("gossip protocol: {0}")]
    Protocol(#[from] foca::Error),

    /// The named member is not in the member table.
    #[error("no member named {0:?}")]
    UnknownMember(String),

    /// `force_leave` was asked to remove the local node.
    #[error("cannot force-leave the local node")]
    ForceLeaveSelf,

    /// The node name is empty or too long.
    #[error("node name {name:?} is invalid: it must be 1 to {limit} bytes long")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// The largest accepted length in bytes.
        limit: usize,
    },

    /// Name, address and tags do not fit the per-message identity budget.
    #[error("node name and tags take {size} bytes on the wire, the limit is {limit}")]
    IdentityTooLarge {
        /// Encoded size of the identity.
        size: usize,
        /// The largest accepted size.
        limit: usize,
    },

    /// A user event's name plus payload exceeds [`crate::USER_EVENT_SIZE_LIMIT`].
    #[error("user event exceeds the limit of {limit} bytes (name and payload are {size} bytes)")]
    EventTooLarge {
        /// Name plus payload, in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// A user event's id and filters exceed what one datagram can carry next to the event.
    #[error("user event id and filters take {size} bytes, the limit is {limit}")]
    EventFiltersTooLarge {
        /// Id plus filters, in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// A query's name plus payload exceeds [`crate::QUERY_SIZE_LIMIT`].
    #[error("query exceeds the limit of {limit} bytes (name and payload are {size} bytes)")]
    QueryTooLarge {
        /// Name plus payload, in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// A query response exceeds [`crate::QUERY_RESPONSE_SIZE_LIMIT`].
    #[error("query response exceeds the limit of {limit} bytes ({size} bytes)")]
    ResponseTooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// `respond` named a query this node never received, already answered, or that has timed out.
    #[error("unknown or expired query {0}")]
    UnknownQuery(QueryId),

    /// The local node has left the cluster; membership operations are over.
    #[error("the local node has left the gossip pool")]
    Left,

    /// A socket operation of the driver failed.
    #[error("gossip socket: {0}")]
    Io(#[from] std::io::Error),

    /// The driver task is no longer running.
    #[error("the gossip task has stopped")]
    Stopped,
}

impl Error {
    /// True when a datagram was rejected by encryption: wrong key, or encrypted on one side only.
    pub fn is_encryption_mismatch(&self) -> bool {
        matches!(
            self,
            Error::Keyring(keyring::Error::NoKeyDecrypts)
                | Error::Unencrypted
                | Error::UnexpectedEncryption
        )
    }
}
