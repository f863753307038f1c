//! The config entries of one datacenter and the writes that change them.
//!
//! Entries are keyed by kind and name; names compare without case, as in Consul's state store
//! (`Web` and `web` are one entry, shown as last written). A write is normalized and validated
//! as Consul's server does before its raft apply, then applied as Consul's state store does:
//! an upsert keeps the entry's create index and sets its modify index to the raft index; a
//! check-and-set that does not hold is not an error but a `false` answer. Every change moves
//! the table's index, which is what every read reports and blocks on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ConfigEntryError;
use crate::model::{ConfigEntry, ConfigEntryWrite, Kind, Protocol, PROXY_GLOBAL};
use crate::validate;

/// A write to the config entries, as replicated through raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigEntryOp {
    /// `PUT /v1/config[?cas=N]`: create or replace. With `cas`, only if the entry's modify
    /// index is still `N`; `Some(0)` creates only.
    Upsert {
        entry: Box<ConfigEntryWrite>,
        cas: Option<u64>,
    },
    /// `DELETE /v1/config/:kind/:name[?cas=N]`. Deleting what does not exist succeeds and
    /// changes nothing (with `cas`, it answers `false`).
    Delete {
        kind: Kind,
        name: String,
        cas: Option<u64>,
    },
}

/// What a valid write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Consul's answer: false when a check-and-set did not hold.
    pub done: bool,
    /// Whether anything changed (and the table's index moved).
    pub changed: bool,
}

impl Applied {
    const REFUSED: Applied = Applied {
        done: false,
        changed: false,
    };
}

/// All config entries of a datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntries {
    /// By kind, then by lower-cased name.
    by_kind: BTreeMap<Kind, BTreeMap<String, ConfigEntry>>,
    /// The raft index of the last write that changed anything.
    index: u64,
}

impl ConfigEntries {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a replicated write at raft index `index`. An invalid write changes nothing.
    pub fn apply(&mut self, op: &ConfigEntryOp, index: u64) -> Result<Applied, ConfigEntryError> {
        match op {
            ConfigEntryOp::Upsert { entry, cas } => self.upsert(entry, *cas, index),
            ConfigEntryOp::Delete { kind, name, cas } => self.delete(*kind, name, *cas, index),
        }
    }

    /// Checks a write without applying it: `Ok` means `apply` would not refuse it (a
    /// check-and-set may still answer `false`).
    pub fn validate(&self, op: &ConfigEntryOp) -> Result<(), ConfigEntryError> {
        match op {
            ConfigEntryOp::Upsert { entry, .. } => validate::normalize(entry).map(|_| ()),
            ConfigEntryOp::Delete { kind, name, .. } => {
                validate::delete_name(*kind, name).map(|_| ())
            }
        }
    }

    /// `PUT /v1/config`.
    pub fn upsert(
        &mut self,
        write: &ConfigEntryWrite,
        cas: Option<u64>,
        index: u64,
    ) -> Result<Applied, ConfigEntryError> {
        let mut entry = validate::normalize(write)?;
        let key = key(&entry.name);
        let existing = self.get(entry.kind, &entry.name);
        let holds = match cas {
            None => true,
            Some(0) => existing.is_none(),
            Some(cas) => existing.is_some_and(|e| e.modify_index == cas),
        };
        if !holds {
            return Ok(Applied::REFUSED);
        }
        entry.create_index = existing.map_or(index, |e| e.create_index);
        entry.modify_index = index;
        self.by_kind
            .entry(entry.kind)
            .or_default()
            .insert(key, entry);
        self.index = index;
        Ok(Applied {
            done: true,
            changed: true,
        })
    }

    /// `DELETE /v1/config/:kind/:name`.
    pub fn delete(
        &mut self,
        kind: Kind,
        name: &str,
        cas: Option<u64>,
        index: u64,
    ) -> Result<Applied, ConfigEntryError> {
        let name = validate::delete_name(kind, name)?;
        let existing = self.get(kind, &name);
        match (existing, cas) {
            (None, None) => Ok(Applied {
                done: true,
                changed: false,
            }),
            (None, Some(_)) => Ok(Applied::REFUSED),
            (Some(e), Some(cas)) if e.modify_index != cas => Ok(Applied::REFUSED),
            (Some(_), _) => {
                if let Some(entries) = self.by_kind.get_mut(&kind) {
                    entries.remove(&key(&name));
                    if entries.is_empty() {
                        self.by_kind.remove(&kind);
                    }
                }
                self.index = index;
                Ok(Applied {
                    done: true,
                    changed: true,
                })
            }
        }
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The raft index of the last change (`X-Consul-Index` of every config entry read).
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn len(&self) -> usize {
        self.by_kind.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// `GET /v1/config/:kind/:name`; the name in any case.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&ConfigEntry> {
        self.by_kind.get(&kind)?.get(&key(name))
    }

    /// `GET /v1/config/:kind` (`None`: every kind), in Consul's order: by kind, then by
    /// lower-cased name.
    pub fn list(&self, kind: Option<Kind>) -> Vec<&ConfigEntry> {
        self.by_kind
            .iter()
            .filter(|(k, _)| kind.is_none_or(|wanted| wanted == **k))
            .flat_map(|(_, entries)| entries.values())
            .collect()
    }

    /// The protocol `service` speaks: its service-defaults' protocol, else the global
    /// proxy-defaults' `Config.protocol`, else `tcp` (how Consul resolves a service's config).
    pub fn protocol_of(&self, service: &str) -> Protocol {
        [
            self.get(Kind::ServiceDefaults, service),
            self.get(Kind::ProxyDefaults, PROXY_GLOBAL),
        ]
        .into_iter()
        .flatten()
        .map(|e| e.protocol)
        .find(|p| *p != Protocol::Unset)
        .unwrap_or(Protocol::Tcp)
    }
}

/// Names compare without case (Consul's `indexFromConfigEntryKindName`).
fn key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests;
