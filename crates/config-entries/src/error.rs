//! Why a config entry write or lookup was refused. The texts are Consul's; the HTTP layer
//! picks the status, which for an unknown kind depends on where Consul refuses it.

/// An error from the config entries store, with Consul's text as its `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ConfigEntryError {
    /// Consul's `MakeConfigEntry` refusal. Consul answers it with a 400 where its HTTP handler
    /// builds the entry (a delete, a request body) and a 500 where the RPC does (a read).
    #[error("invalid config entry kind: {0}")]
    UnknownKind(String),
    /// Refused by the entry's normalization or validation on the server: Consul answers 500.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigEntryError {
    /// The status Consul's HTTP API answers a write refused with this error with.
    pub fn write_status(&self) -> u16 {
        match self {
            ConfigEntryError::UnknownKind(_) => 400,
            ConfigEntryError::Invalid(_) => 500,
        }
    }
}
