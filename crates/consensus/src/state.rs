//! The replicated state: what every server holds after applying the same log prefix.

use serde::{Deserialize, Serialize};

use crate::command::{CaBase, Command, Op, Response};
use crate::notify::Topic;

/// Everything a snapshot contains, besides openraft's own metadata.
///
/// Snapshots, archives and restore entries encode it with postcard, field by field without
/// names: a new field changes the layout. Keep the previous layout beside [`crate::StateV1`]
/// (the `legacy` module) and bump the snapshot magic and archive version, as it explains.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub kv: kv::KvStore,
    pub catalog: catalog::Catalog,
    pub autopilot: AutopilotConfig,
    /// The Connect CA, once a leader has bootstrapped it.
    #[serde(with = "crate::as_json")]
    pub ca: Option<ca::CaState>,
    pub intentions: intentions::Intentions,
    /// `service-defaults` and `proxy-defaults` config entries.
    pub config_entries: config_entries::ConfigEntries,
    /// ACL tokens, policies and roles.
    pub acl: acl::AclStore,
    /// Set when a restore replaced the state; cleared when topics are drained.
    #[serde(skip)]
    restored: bool,
    /// Tables written since topics were last drained.
    #[serde(skip)]
    tables_changed: Vec<&'static str>,
}

/// The topic of the Connect CA (roots and configuration).
pub const TABLE_CA: &str = "connect-ca";
/// The topic of the intentions.
pub const TABLE_INTENTIONS: &str = "intentions";
/// The topic of the config entries.
pub const TABLE_CONFIG_ENTRIES: &str = "config-entries";
/// The topic of the ACL tables.
pub const TABLE_ACL: &str = "acl";

/// Autopilot's settings (Consul's defaults), replicated so every server reports the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotConfig {
    pub cleanup_dead_servers: bool,
    pub last_contact_threshold: std::time::Duration,
    pub max_trailing_logs: u64,
    pub min_quorum: u32,
    pub server_stabilization_time: std::time::Duration,
    pub redundancy_zone_tag: String,
    pub disable_upgrade_migration: bool,
    pub upgrade_version_tag: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold: std::time::Duration::from_millis(200),
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time: std::time::Duration::from_secs(10),
            redundancy_zone_tag: String::new(),
            disable_upgrade_migration: false,
            upgrade_version_tag: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl State {
    /// Applies one committed command at `index`. Deterministic: same state, index and command
    /// give the same result on every replica.
    pub fn apply(&mut self, index: u64, cmd: Command) -> Response {
        self.apply_op(index, cmd.now_ms, cmd.op)
    }

    fn apply_op(&mut self, index: u64, now: u64, op: Op) -> Response {
        match op {
            Op::Kv(op) => match self.kv.apply(op, index, now) {
                Ok(done) => Response::Bool(done),
                Err(err) => Response::Rejected(err.to_string()),
            },
            Op::Txn(ops) => Response::Txn(self.kv.txn(&ops, index, now)),
            Op::CreateSession(req) => match self.kv.create_session(req, index, now) {
                Ok(()) => Response::None,
                Err(err) => Response::Rejected(err.to_string()),
            },
            Op::DestroySession { id } => Response::Bool(self.kv.destroy_session(&id, index, now)),
            Op::Catalog(op) => match self.catalog.apply(op, index) {
                Ok(effects) => {
                    self.invalidate_sessions(&effects, index, now);
                    Response::Bool(true)
                }
                Err(err) => Response::Rejected(err.to_string()),
            },
            Op::ReapTombstones { up_to_index } => {
                self.kv.reap_tombstones(up_to_index);
                Response::None
            }
            Op::SetAutopilot { config, cas } => {
                if cas.is_some_and(|cas| cas != self.autopilot.modify_index) {
                    return Response::Bool(false);
                }
                let create_index = match self.autopilot.create_index {
                    0 => index,
                    existing => existing,
                };
                self.autopilot = AutopilotConfig {
                    create_index,
                    modify_index: index,
                    ..config
                };
                Response::Bool(true)
            }
            Op::SetCa { ca, base } => {
                if CaBase::of(self.ca.as_ref()) != base {
                    return Response::Bool(false);
                }
                let mut ca = *ca;
                ca.stamp_index(index);
                self.ca = Some(ca);
                self.tables_changed.push(TABLE_CA);
                Response::Bool(true)
            }
            Op::ReserveLeaf { ttl } => {
                let Some(ca) = self.ca.as_mut() else {
                    return Response::Rejected("CA is not initialized yet".into());
                };
                let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now);
                match ca.reserve_leaf(now, ttl) {
                    Ok(reservation) => Response::Leaf(reservation),
                    Err(err) => Response::Rejected(err.to_string()),
                }
            }
            Op::Intention(op) => match self.intentions.apply(&op, index) {
                Ok(applied) => {
                    if applied.changed {
                        self.tables_changed.push(TABLE_INTENTIONS);
                    }
                    Response::Intention(Ok(applied.id))
                }
                Err(err) => Response::Intention(Err(err)),
            },
            Op::ConfigEntry(op) => match self.config_entries.apply(&op, index) {
                Ok(applied) => {
                    if applied.changed {
                        self.tables_changed.push(TABLE_CONFIG_ENTRIES);
                    }
                    Response::ConfigEntry(Ok(applied.done))
                }
                Err(err) => Response::ConfigEntry(Err(err)),
            },
            Op::RestoreV1(restored) => {
                let restored = crate::legacy::StateV2::from(*restored);
                self.apply_op(index, now, Op::Restore(Box::new(State::from(restored))))
            }
            Op::RestoreV2(restored) => {
                self.apply_op(index, now, Op::Restore(Box::new(State::from(*restored))))
            }
            Op::Acl(op) => {
                let applied = self.acl.apply(*op, index, now);
                if applied.is_ok() {
                    self.tables_changed.push(TABLE_ACL);
                }
                Response::Acl(applied)
            }
            Op::Restore(restored) => {
                // Discard pending change records: the whole state is new, and the state machine
                // wakes every blocking query after a restore.
                let _ = self.kv.drain_changes();
                let _ = self.catalog.drain_changes();
                self.tables_changed.clear();
                *self = *restored;
                self.restored = true;
                Response::None
            }
            Op::Batch(ops) => Response::Batch(
                ops.into_iter()
                    .map(|op| self.apply_op(index, now, op))
                    .collect(),
            ),
        }
    }

    /// Sessions die with their node, and with any check they name that is removed or turns
    /// critical (Consul's session invalidation).
    fn invalidate_sessions(&mut self, effects: &catalog::Effects, index: u64, now: u64) {
        for node in &effects.nodes_removed {
            self.kv.invalidate_node_sessions(node, index, now);
        }
        for (node, check) in &effects.checks_failed {
            self.kv.invalidate_check_sessions(node, check, index, now);
        }
    }

    /// The topics touched since the last call, for waking blocking queries. Returns true when
    /// the whole state was replaced, so every query must wake.
    pub fn drain_topics(&mut self, into: &mut Vec<Topic>) -> bool {
        let changes = self.kv.drain_changes();
        into.extend(changes.keys.into_iter().map(Topic::Key));
        if changes.sessions {
            into.push(Topic::Sessions);
        }
        into.extend(self.catalog.drain_changes().into_iter().map(Topic::Catalog));
        into.extend(self.tables_changed.drain(..).map(Topic::Table));
        std::mem::take(&mut self.restored)
    }
}

impl From<crate::legacy::StateV2> for State {
    fn from(old: crate::legacy::StateV2) -> State {
        State {
            kv: old.kv,
            catalog: old.catalog,
            autopilot: old.autopilot,
            ca: old.ca,
            intentions: old.intentions,
            config_entries: old.config_entries,
            ..State::default()
        }
    }
}

impl From<crate::legacy::StateV1> for State {
    fn from(old: crate::legacy::StateV1) -> State {
        crate::legacy::StateV2::from(old).into()
    }
}
