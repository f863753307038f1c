//! Encryption at rest of the CA's private keys on a server: loading the data keys at start-up
//! (`data_key_file`, else `MESH_DATA_KEY`), and the leader's re-seal duty.
//!
//! The duty is what makes adding and rotating a data key work: while this server leads and has
//! data keys, a CA whose keys are plaintext (written before a key was configured, by an older
//! version, by a server without keys, or restored from an old snapshot) or sealed by a key
//! other than the active one is written again through [`RaftNode::update_ca`], which seals it
//! with the active key (conditional on the CA it read, like every CA change).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ca::seal::{DataKeys, KeysError};
use consensus::RaftNode;
use tokio::sync::watch;

/// The environment variable read when no `data_key_file` is configured: one base64 key, or
/// several separated by commas, the first active.
pub const DATA_KEY_ENV: &str = "MESH_DATA_KEY";

/// How often a server checks whether it leads and the CA needs sealing.
const INTERVAL: Duration = Duration::from_secs(10);

/// Why the data keys could not be loaded. Never shows a key.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error("reading the data key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data key file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: KeysError,
    },
    #[error("{DATA_KEY_ENV}: {0}")]
    Env(#[source] KeysError),
}

/// The data keys from `file` if one is configured, else from `env` (the value of
/// [`DATA_KEY_ENV`], if set and not blank); `None` when neither is given.
pub fn load_data_keys(
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<Arc<DataKeys>>, DataKeyError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| DataKeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        warn_if_readable_by_others(path);
        let keys = DataKeys::parse(&text).map_err(|source| DataKeyError::File {
            path: path.to_owned(),
            source,
        })?;
        return Ok(Some(Arc::new(keys)));
    }
    match env.filter(|value| !value.trim().is_empty()) {
        Some(value) => Ok(Some(Arc::new(
            DataKeys::parse_list(value).map_err(DataKeyError::Env)?,
        ))),
        None => Ok(None),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data key file can be read by other users; make it 0600"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// While this server leads and has data keys: re-seal the CA whenever any of its keys is
/// plaintext or sealed by a key other than the active one.
pub(crate) async fn run(node: RaftNode, mut shutdown: watch::Receiver<bool>) {
    let Some(keys) = node.data_keys().cloned() else {
        return;
    };
    let mut last_error = None;
    loop {
        if node.leader_view().is_leader {
            match reseal(&node, &keys).await {
                Ok(_) => last_error = None,
                Err(err) => {
                    // Once per distinct failure: it repeats every interval until fixed.
                    if last_error.as_ref() != Some(&err) {
                        tracing::warn!(%err, "sealing the CA's private keys failed; will retry");
                    }
                    last_error = Some(err);
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// One check; returns whether the CA was written.
async fn reseal(node: &RaftNode, keys: &DataKeys) -> Result<bool, String> {
    let needed = node
        .reader()
        .state()
        .ca
        .as_ref()
        .is_some_and(|ca| ca.needs_sealing(keys));
    if !needed {
        return Ok(false);
    }
    // update_ca seals what the closure returns, so returning the CA as it is re-seals it.
    let written = node.update_ca(Ok).await.map_err(|e| e.to_string())?;
    if written {
        tracing::info!(key = %keys.active_id(), "sealed the CA's private keys with the active data key");
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
