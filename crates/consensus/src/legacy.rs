//! The replicated state as earlier versions encoded it, kept so that what they wrote still
//! loads: snapshot files, snapshot archives and restore entries in the raft log.
//!
//! postcard writes a struct as its fields in order with no names, so a field added to
//! [`State`] changes the layout and an older encoding cannot be read as the new type. Each
//! change of layout therefore keeps the previous one here, bumps the snapshot file's magic
//! (`raft-store`'s `snapshot_file`) and the archive version ([`crate::ARCHIVE_VERSION`]), and adds
//! commands only at the end of [`crate::Op`], whose variants postcard numbers in order.
//!
//! | layout | snapshot file | archive | restore entry | what it lacks |
//! |---|---|---|---|---|
//! | [`StateV1`] | `MESHSNP2`, and the first layout's data | version 1 | `Op::RestoreV1` | config entries, ACLs |
//! | [`StateV2`] | `MESHSNP3` | version 2 | `Op::RestoreV2` | ACLs |
//! | [`State`] | `MESHSNP4` | version 3 | `Op::Restore` | |

use serde::{Deserialize, Serialize};

use crate::state::AutopilotConfig;
#[cfg(doc)]
use crate::state::State;

/// The state before config entries: KV, catalog, autopilot, the CA and intentions.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV1 {
    pub kv: kv::KvStore,
    pub catalog: catalog::Catalog,
    pub autopilot: AutopilotConfig,
    #[serde(with = "crate::as_json")]
    pub ca: Option<ca::CaState>,
    pub intentions: intentions::Intentions,
}

/// The state before ACLs: [`StateV1`] and the config entries.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateV2 {
    pub kv: kv::KvStore,
    pub catalog: catalog::Catalog,
    pub autopilot: AutopilotConfig,
    #[serde(with = "crate::as_json")]
    pub ca: Option<ca::CaState>,
    pub intentions: intentions::Intentions,
    pub config_entries: config_entries::ConfigEntries,
}

impl From<StateV1> for StateV2 {
    fn from(old: StateV1) -> StateV2 {
        StateV2 {
            kv: old.kv,
            catalog: old.catalog,
            autopilot: old.autopilot,
            ca: old.ca,
            intentions: old.intentions,
            config_entries: config_entries::ConfigEntries::default(),
        }
    }
}
