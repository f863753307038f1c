//! The agent's registrations on disk, so a restarted agent keeps what the API registered.
//!
//! One JSON file in the data dir, replaced atomically (write a temporary file, fsync,
//! rename). Services and checks are kept as the definitions users sent, and validated again
//! when loaded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

const FILE: &str = "agent-local.json";

/// A TTL check's last reported state, restored on restart while still within its TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlState {
    pub status: String,
    pub output: String,
    /// Unix ms after which the state is stale.
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    pub services: BTreeMap<String, Value>,
    pub checks: BTreeMap<String, Value>,
    pub ttl_state: BTreeMap<String, TtlState>,
    pub node_maintenance: Option<String>,
    pub service_maintenance: BTreeMap<String, String>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl Persisted {
    /// Reads the file; a missing file is an empty state, an unreadable one an error.
    pub fn load(dir: &Path) -> Result<Persisted, String> {
        let path = path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("reading {}: {e}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Persisted::default()),
            Err(err) => Err(format!("reading {}: {err}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = path(dir);
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Persisted::load(dir.path()).unwrap(), Persisted::default());
        let mut p = Persisted::default();
        p.services
            .insert("web".into(), serde_json::json!({"Name": "web"}));
        p.node_maintenance = Some("upgrade".into());
        p.save(dir.path()).unwrap();
        assert_eq!(Persisted::load(dir.path()).unwrap(), p);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        assert!(Persisted::load(dir.path()).is_err());
    }
}
