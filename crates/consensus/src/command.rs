//! Commands replicated through raft and the responses the state machine gives back.
//!
//! A command carries the leader's wall clock (`now_ms`) so that every replica computes the same
//! lock-delay windows: the state machine itself never reads a clock.

use serde::{Deserialize, Serialize};

/// One replicated write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unix milliseconds on the proposing server.
    pub now_ms: u64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Kv(kv::KvOp),
    Txn(Vec<kv::TxnKvOp>),
    CreateSession(kv::SessionRequest),
    DestroySession {
        id: String,
    },
    /// A catalog registration or deregistration.
    Catalog(catalog::CatalogOp),
    /// Leader housekeeping: forget KV tombstones at or below this index.
    ReapTombstones {
        up_to_index: u64,
    },
    /// Set autopilot's configuration; with `cas`, only if its ModifyIndex still equals it.
    SetAutopilot {
        config: crate::state::AutopilotConfig,
        cas: Option<u64>,
    },
    /// A restore proposed before config entries existed, its state in that layout. Only read
    /// back from older logs; applied as an [`Op::Restore`] (see [`crate::StateV1`]).
    RestoreV1(Box<crate::legacy::StateV1>),
    /// Install a Connect CA computed by the proposer (bootstrap, rotation, configuration change,
    /// intermediate renewal, pruning). Applied only if the CA is still the one it was computed
    /// from: `base` is that CA's [`ca::CaState::index`] and `next_serial` (0 and 0 for "no CA
    /// yet"), so neither a concurrent change nor a leaf reservation is lost and no serial
    /// number is handed out twice. Answers `Bool(false)` when the base moved.
    SetCa {
        #[serde(with = "crate::as_json")]
        ca: Box<ca::CaState>,
        base: CaBase,
    },
    /// Set aside a serial number and a validity for one leaf certificate, signed by the proposer
    /// once this is applied. Answers [`Response::Leaf`].
    ReserveLeaf {
        ttl: Option<std::time::Duration>,
    },
    /// An intention write. Answers [`Response::Intention`].
    Intention(Box<intentions::IntentionOp>),
    /// Concurrent client writes proposed as one raft entry (group commit). Applied in order;
    /// every op in the batch gets the entry's index.
    Batch(Vec<Op>),
    // postcard numbers variants in order: new commands go below, never above.
    /// A config entry write. Answers [`Response::ConfigEntry`].
    ConfigEntry(Box<config_entries::ConfigEntryOp>),
    /// A restore proposed before ACLs existed, its state in that layout. Only read back from
    /// older logs; applied as an [`Op::Restore`] (see [`crate::StateV2`]).
    RestoreV2(Box<crate::legacy::StateV2>),
    /// An ACL write. Answers [`Response::Acl`].
    Acl(Box<acl::AclOp>),
    /// Replace the whole replicated state with a restored snapshot (`PUT /v1/snapshot`).
    Restore(Box<crate::state::State>),
}

impl Op {
    /// Roughly how many bytes the op adds to a log entry, to bound batches.
    pub fn approx_size(&self) -> usize {
        const OVERHEAD: usize = 64;
        match self {
            Op::Kv(op) => OVERHEAD + kv_op_size(op),
            Op::Txn(ops) => ops
                .iter()
                .map(|op| OVERHEAD + op.key.len() + op.value.len() + op.session.len())
                .sum(),
            Op::CreateSession(req) => OVERHEAD * 4 + req.name.len() + req.node.len(),
            Op::DestroySession { id } => OVERHEAD + id.len(),
            Op::Catalog(op) => OVERHEAD * 4 + catalog_op_size(op),
            Op::ReapTombstones { .. } | Op::SetAutopilot { .. } | Op::ReserveLeaf { .. } => {
                OVERHEAD
            }
            // Roots, intermediates and their keys.
            Op::SetCa { ca, .. } => OVERHEAD * 16 * (ca.roots.len() + 1),
            Op::Intention(_) | Op::ConfigEntry(_) | Op::Acl(_) => OVERHEAD * 8,
            // Never batched with others: it is as large as the whole state.
            Op::Restore(_) | Op::RestoreV1(_) | Op::RestoreV2(_) => usize::MAX / 2,
            Op::Batch(ops) => ops.iter().map(Op::approx_size).sum(),
        }
    }
}

fn catalog_op_size(op: &catalog::CatalogOp) -> usize {
    match op {
        catalog::CatalogOp::Register(reg) => {
            let service = reg.service.as_ref().map_or(0, |s| {
                s.id.len()
                    + s.service.len()
                    + s.tags.iter().map(String::len).sum::<usize>()
                    + s.meta.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                    + s.proxy
                        .as_ref()
                        .map_or(0, |p| p.config.len() + p.upstreams.len() * 128)
            });
            let checks: usize = reg
                .checks
                .iter()
                .map(|c| {
                    c.check_id.len()
                        + c.name.len()
                        + c.output.len()
                        + c.notes.len()
                        + c.definition.len()
                        + 64
                })
                .sum();
            reg.node.name.len() + reg.node.address.len() + service + checks
        }
        catalog::CatalogOp::Deregister { node, .. } => node.len() + 64,
    }
}

fn kv_op_size(op: &kv::KvOp) -> usize {
    use kv::KvOp::*;
    match op {
        Set { key, value, .. } | Cas { key, value, .. } => key.len() + value.len(),
        Acquire {
            key,
            value,
            session,
            ..
        }
        | Release {
            key,
            value,
            session,
            ..
        } => key.len() + value.len() + session.len(),
        Delete { key } | DeleteCas { key, .. } => key.len(),
        DeleteTree { prefix } => prefix.len(),
    }
}

/// The CA a [`Op::SetCa`] was computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaBase {
    pub index: u64,
    pub next_serial: u64,
}

impl CaBase {
    /// The base of a write computed from `current` (`None`: no CA yet).
    pub fn of(current: Option<&ca::CaState>) -> CaBase {
        current.map_or(CaBase::default(), |ca| CaBase {
            index: ca.index(),
            next_serial: ca.next_serial,
        })
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries, and commands with nothing to say.
    None,
    /// Consul's `true`/`false` outcome (KV set, cas, acquire, release, delete; session destroy).
    Bool(bool),
    Txn(Result<Vec<kv::TxnResult>, Vec<kv::TxnError>>),
    /// The command was valid to replicate but the state refused it (e.g. acquire with an unknown
    /// session). The text is the domain error, shown to the client as Consul does.
    Rejected(String),
    /// The serial number and validity reserved for a leaf.
    Leaf(ca::LeafReservation),
    /// An intention write: the ID to answer with (legacy create and update), or Consul's error.
    Intention(Result<Option<String>, intentions::IntentionError>),
    /// One response per op of an [`Op::Batch`], in order.
    Batch(Vec<Response>),
    // New responses go below, as new commands do.
    /// A config entry write: Consul's `true`/`false` (a check-and-set that did not hold), or
    /// Consul's refusal.
    ConfigEntry(Result<bool, config_entries::ConfigEntryError>),
    /// An ACL write: what it made, or Consul's refusal.
    Acl(Result<acl::AclApplied, acl::AclError>),
}
