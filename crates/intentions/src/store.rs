//! The intentions of one datacenter and the writes that change them.
//!
//! Intentions are grouped per destination like Consul's `service-intentions` config entries:
//! an entry's sources are kept in Consul's order (precedence, then the order they were added),
//! which is what `Sources[i]` in error texts counts; the entry's create and modify indexes
//! are reported by every intention in it.
//!
//! Each write is checked as Consul checks it, in the same order, so the first problem found
//! is the one Consul would report. [`Intentions::validate`] runs those checks without
//! writing, for a leader that wants to refuse a request before proposing it to raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decision::{self, Decision, DefaultPolicy, HttpRequest, MatchBy};
use crate::error::IntentionError;
use crate::model::{Intention, DEFAULT_NAMESPACE, WILDCARD};
use crate::precedence::precedence_order;
use crate::validate::{
    go_quote, normalize_entry, uuid_error, validate_entry, validate_legacy_write, SourceDraft,
};
use crate::write::IntentionWrite;

/// A write to the intentions, as replicated through raft. What is not deterministic (a new
/// intention's UUID, the current time) is chosen by the leader and carried here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentionOp {
    /// `PUT /v1/connect/intentions/exact?source=&destination=` (names from the query,
    /// already stripped of a `default/` namespace): create or replace, by name.
    Upsert {
        source: String,
        destination: String,
        write: IntentionWrite,
    },
    /// `POST /v1/connect/intentions`: a legacy intention with a new UUID `id`; `now` is an
    /// RFC 3339 timestamp for `CreatedAt`/`UpdatedAt`.
    Create {
        id: String,
        now: String,
        write: IntentionWrite,
    },
    /// `PUT /v1/connect/intentions/:id`.
    Update {
        id: String,
        now: String,
        write: IntentionWrite,
    },
    /// `DELETE /v1/connect/intentions/:id`.
    Delete { id: String },
    /// `DELETE /v1/connect/intentions/exact?source=&destination=`; deleting what does not
    /// exist succeeds and changes nothing.
    DeleteExact { source: String, destination: String },
}

/// What a successful write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// For `Create` and `Update`: the ID to answer `{"ID": …}` with.
    pub id: Option<String>,
    /// False when nothing changed (an exact delete of a missing intention); no index moved.
    pub changed: bool,
}

/// One destination's intentions: Consul's `service-intentions` config entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    create_index: u64,
    modify_index: u64,
    /// In Consul's order: by precedence, then the order the sources were added.
    sources: Vec<Intention>,
}

/// All intentions of a datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intentions {
    /// By destination name.
    entries: BTreeMap<String, Entry>,
    /// Legacy ID → destination name.
    ids: BTreeMap<String, String>,
    /// The raft index of the last write that changed anything.
    index: u64,
}

/// What a write will do once validated.
enum Plan {
    Put {
        destination: String,
        sources: Vec<Intention>,
        reply_id: Option<String>,
    },
    Remove {
        destination: String,
    },
    Nothing,
}

impl Intentions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a replicated write at raft index `index`.
    pub fn apply(&mut self, op: &IntentionOp, index: u64) -> Result<Applied, IntentionError> {
        let plan = self.plan(op)?;
        Ok(self.execute(plan, index))
    }

    /// Checks a write against the current state without applying it: `Ok` means `apply`
    /// would succeed on this state.
    pub fn validate(&self, op: &IntentionOp) -> Result<(), IntentionError> {
        self.plan(op).map(|_| ())
    }

    /// `PUT /v1/connect/intentions/exact`.
    pub fn upsert(
        &mut self,
        source: &str,
        destination: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Upsert {
            source: source.to_owned(),
            destination: destination.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `POST /v1/connect/intentions`.
    pub fn create(
        &mut self,
        id: &str,
        now: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Create {
            id: id.to_owned(),
            now: now.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `PUT /v1/connect/intentions/:id`.
    pub fn update(
        &mut self,
        id: &str,
        now: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Update {
            id: id.to_owned(),
            now: now.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `DELETE /v1/connect/intentions/:id`.
    pub fn delete(&mut self, id: &str, index: u64) -> Result<Applied, IntentionError> {
        self.apply(&IntentionOp::Delete { id: id.to_owned() }, index)
    }

    /// `DELETE /v1/connect/intentions/exact`.
    pub fn delete_exact(
        &mut self,
        source: &str,
        destination: &str,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::DeleteExact {
            source: source.to_owned(),
            destination: destination.to_owned(),
        };
        self.apply(&op, index)
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The raft index of the last change (`X-Consul-Index` of every intention read).
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(|e| e.sources.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `GET /v1/connect/intentions`: every intention, highest precedence first.
    pub fn list(&self) -> Vec<&Intention> {
        let mut all: Vec<&Intention> = self.entries.values().flat_map(|e| &e.sources).collect();
        all.sort_by(|a, b| precedence_order(a, b));
        all
    }

    /// `GET /v1/connect/intentions/:id`: `MalformedId` (400) for what is not a UUID,
    /// `NotFound` (404) for an unknown one. IDs compare exactly, as Consul compares them.
    pub fn get(&self, id: &str) -> Result<&Intention, IntentionError> {
        if let Some(e) = uuid_error(id) {
            return Err(IntentionError::MalformedId(e));
        }
        self.by_id(id).ok_or(IntentionError::NotFound)
    }

    /// `GET /v1/connect/intentions/exact`: `NotFound` (404) if there is none.
    pub fn get_exact(&self, source: &str, destination: &str) -> Result<&Intention, IntentionError> {
        self.entries
            .get(destination)
            .and_then(|e| e.sources.iter().find(|s| s.source_name == source))
            .ok_or(IntentionError::NotFound)
    }

    /// Whether a legacy ID is taken (for the leader choosing a new one).
    pub fn contains_id(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    /// `GET /v1/connect/intentions/match?by=…&name=…` for one name: the intentions whose
    /// source (or destination) is `name` or `*`, highest precedence first.
    pub fn matching(&self, by: MatchBy, name: &str) -> Vec<&Intention> {
        let names: &[&str] = if name == WILDCARD {
            &[WILDCARD]
        } else {
            &[name, WILDCARD]
        };
        let mut out: Vec<&Intention> = match by {
            MatchBy::Destination => names
                .iter()
                .filter_map(|n| self.entries.get(*n))
                .flat_map(|e| &e.sources)
                .collect(),
            MatchBy::Source => self
                .entries
                .values()
                .flat_map(|e| &e.sources)
                .filter(|i| names.contains(&i.source_name.as_str()))
                .collect(),
        };
        out.sort_by(|a, b| precedence_order(a, b));
        out
    }

    /// `GET /v1/connect/intentions/check?source=&destination=`: whether a connection would
    /// be allowed. An L7 intention counts as a deny, as in Consul.
    pub fn check(&self, source: &str, destination: &str, default_allow: bool) -> bool {
        decision::check(
            self.matching(MatchBy::Source, source),
            source,
            destination,
            default_allow,
        )
    }

    /// The authorization of `source` calling `destination` (both in the default namespace).
    /// Without a request (`/v1/agent/connect/authorize`, a new TCP connection) an L7 intention
    /// denies; with one (the sidecar), its permissions are evaluated.
    pub fn authorize(
        &self,
        source: &str,
        destination: &str,
        request: Option<&HttpRequest<'_>>,
        default: DefaultPolicy,
    ) -> Decision {
        decision::authorize(
            self.matching(MatchBy::Destination, destination),
            source,
            destination,
            request,
            default,
        )
    }

    fn by_id(&self, id: &str) -> Option<&Intention> {
        let destination = self.ids.get(id)?;
        self.entries
            .get(destination)?
            .sources
            .iter()
            .find(|s| s.id == id)
    }

    // ---- writes --------------------------------------------------------------------------

    fn plan(&self, op: &IntentionOp) -> Result<Plan, IntentionError> {
        match op {
            IntentionOp::Upsert {
                source,
                destination,
                write,
            } => self.plan_upsert(source, destination, write),
            IntentionOp::Create { id, now, write } => self.plan_create(id, now, write),
            IntentionOp::Update { id, now, write } => self.plan_update(id, now, write),
            IntentionOp::Delete { id } => self.plan_delete(id),
            IntentionOp::DeleteExact {
                source,
                destination,
            } => self.plan_delete_exact(source, destination),
        }
    }

    fn plan_upsert(
        &self,
        source: &str,
        destination: &str,
        write: &IntentionWrite,
    ) -> Result<Plan, IntentionError> {
        reject_peer(write)?;
        let prev = self.entries.get(destination);
        // Meta lives on the config entry, which this API cannot write; the entries here
        // never have any, so any Meta is a change.
        if !write.meta.is_empty() {
            return Err(invalid(if prev.is_none() {
                "Meta must not be specified"
            } else {
                "Meta must not be specified, or should be unchanged during an update."
            }));
        }
        let mut drafts = drafts_of(prev);
        let draft = SourceDraft {
            name: source.to_owned(),
            action: write.action.clone(),
            permissions: write.permissions.clone(),
            source_type: write.source_type.clone(),
            description: write.description.clone(),
            ..SourceDraft::default()
        };
        match drafts.iter().position(|d| d.name == source) {
            Some(i) => drafts[i] = draft,
            None => drafts.push(draft),
        }
        put(destination, drafts, false, None)
    }

    fn plan_create(
        &self,
        id: &str,
        now: &str,
        write: &IntentionWrite,
    ) -> Result<Plan, IntentionError> {
        // Consul's HTTP handler.
        reject_partitions(write)?;
        for (field, ns) in [
            ("SourceNS", &write.source_ns),
            ("DestinationNS", &write.destination_ns),
        ] {
            if !is_default_ns(ns) {
                return Err(IntentionError::BadRequest(format!(
                    "Invalid {field}({ns}): Namespaces is a Consul Enterprise feature"
                )));
            }
        }
        // The RPC.
        reject_peer(write)?;
        if !write.id.is_empty() {
            return Err(invalid("ID must be empty when creating a new intention"));
        }
        let write = filled(write);
        let errors = validate_legacy_write(&write);
        if !errors.is_empty() {
            return Err(IntentionError::InvalidLegacy(errors));
        }
        // The leader chose the ID; a bad or taken one is its bug, not the client's.
        if let Some(e) = uuid_error(id) {
            return Err(invalid(&format!(
                "invalid intention ID {}: {e}",
                go_quote(id)
            )));
        }
        if self.contains_id(id) {
            return Err(invalid(&format!(
                "intention ID {} is already in use",
                go_quote(id)
            )));
        }
        // The state store.
        let destination = write.destination_name.as_str();
        let prev = self.entries.get(destination);
        check_legacy_allowed(destination, prev)?;
        let mut drafts = drafts_of(prev);
        drafts.push(legacy_draft(&write, id, now, now));
        put(destination, drafts, true, Some(id.to_owned()))
    }

    fn plan_update(
        &self,
        id: &str,
        now: &str,
        write: &IntentionWrite,
    ) -> Result<Plan, IntentionError> {
        reject_partitions(write)?;
        reject_peer(write)?;
        let existing = self.lookup_for_write(id, "modify")?;
        let write = filled(write);
        if existing.destination_name != write.destination_name {
            return Err(invalid(
                "Cannot modify Destination partition/namespace/name for an intention once it exists.",
            ));
        }
        for (what, ns) in [
            ("source", &write.source_ns),
            ("destination", &write.destination_ns),
        ] {
            if !is_default_ns(ns) {
                return Err(invalid(&format!(
                    "Invalid {what} namespace {}: Namespaces is a Consul Enterprise feature",
                    go_quote(ns)
                )));
            }
        }
        let errors = validate_legacy_write(&write);
        if !errors.is_empty() {
            return Err(IntentionError::InvalidLegacy(errors));
        }
        let destination = existing.destination_name.as_str();
        let prev = self.entries.get(destination);
        check_legacy_allowed(destination, prev)?;
        let mut drafts = drafts_of(prev);
        // The creation time survives updates (Consul's `UpdateOver`).
        let created = existing.created_at.as_deref().unwrap_or(now);
        let draft = legacy_draft(&write, id, created, now);
        match drafts.iter().position(|d| d.legacy_id == id) {
            Some(i) => drafts[i] = draft,
            None => return Err(non_existent("modify", id)),
        }
        put(destination, drafts, true, Some(id.to_owned()))
    }

    fn plan_delete(&self, id: &str) -> Result<Plan, IntentionError> {
        let existing = self.lookup_for_write(id, "delete")?;
        let destination = existing.destination_name.as_str();
        let prev = self.entries.get(destination);
        check_legacy_allowed(destination, prev)?;
        let mut drafts = drafts_of(prev);
        drafts.retain(|d| d.legacy_id != id);
        if drafts.is_empty() {
            return Ok(Plan::Remove {
                destination: destination.to_owned(),
            });
        }
        put(destination, drafts, true, None)
    }

    fn plan_delete_exact(&self, source: &str, destination: &str) -> Result<Plan, IntentionError> {
        let Some(prev) = self.entries.get(destination) else {
            return Ok(Plan::Nothing);
        };
        if !prev.sources.iter().any(|s| s.source_name == source) {
            return Ok(Plan::Nothing);
        }
        let mut drafts = drafts_of(Some(prev));
        drafts.retain(|d| d.name != source);
        if drafts.is_empty() {
            return Ok(Plan::Remove {
                destination: destination.to_owned(),
            });
        }
        // A by-name write turns the whole entry into a non-legacy one, as in Consul.
        put(destination, drafts, false, None)
    }

    /// The intention a legacy update or delete refers to, with Consul's errors.
    fn lookup_for_write(&self, id: &str, verb: &str) -> Result<&Intention, IntentionError> {
        if let Some(e) = uuid_error(id) {
            return Err(invalid(&format!(
                "Intention lookup failed: failed config entry lookup: {e}"
            )));
        }
        self.by_id(id).ok_or_else(|| non_existent(verb, id))
    }

    fn execute(&mut self, plan: Plan, index: u64) -> Applied {
        match plan {
            Plan::Nothing => Applied {
                id: None,
                changed: false,
            },
            Plan::Remove { destination } => {
                self.entries.remove(&destination);
                self.ids.retain(|_, d| *d != destination);
                self.index = index;
                Applied {
                    id: None,
                    changed: true,
                }
            }
            Plan::Put {
                destination,
                mut sources,
                reply_id,
            } => {
                let create_index = self
                    .entries
                    .get(&destination)
                    .map_or(index, |e| e.create_index);
                for s in &mut sources {
                    s.create_index = create_index;
                    s.modify_index = index;
                }
                self.ids.retain(|_, d| *d != destination);
                for s in sources.iter().filter(|s| !s.id.is_empty()) {
                    self.ids.insert(s.id.clone(), destination.clone());
                }
                self.entries.insert(
                    destination,
                    Entry {
                        create_index,
                        modify_index: index,
                        sources,
                    },
                );
                self.index = index;
                Applied {
                    id: reply_id,
                    changed: true,
                }
            }
        }
    }
}

/// Normalizes and validates a destination's rebuilt entry, as Consul's state store does
/// before writing it.
fn put(
    destination: &str,
    mut drafts: Vec<SourceDraft>,
    legacy: bool,
    reply_id: Option<String>,
) -> Result<Plan, IntentionError> {
    normalize_entry(destination, &mut drafts, legacy);
    validate_entry(destination, &drafts, legacy).map_err(IntentionError::Invalid)?;
    let sources = drafts
        .into_iter()
        .map(|d| d.into_intention(destination))
        .collect::<Result<Vec<_>, _>>()
        .map_err(IntentionError::Invalid)?;
    Ok(Plan::Put {
        destination: destination.to_owned(),
        sources,
        reply_id,
    })
}

fn drafts_of(entry: Option<&Entry>) -> Vec<SourceDraft> {
    entry
        .map(|e| e.sources.iter().map(SourceDraft::of).collect())
        .unwrap_or_default()
}

/// A legacy write as the source Consul stores (`ToSourceIntention(legacy=true)`: the
/// permissions are dropped, `Validate` has refused any).
fn legacy_draft(write: &IntentionWrite, id: &str, created: &str, updated: &str) -> SourceDraft {
    SourceDraft {
        name: write.source_name.clone(),
        action: write.action.clone(),
        permissions: Vec::new(),
        precedence: 0,
        legacy_id: id.to_owned(),
        source_type: write.source_type.clone(),
        description: write.description.clone(),
        legacy_meta: Some(write.meta.clone()),
        legacy_create_time: Some(created.to_owned()),
        legacy_update_time: Some(updated.to_owned()),
    }
}

/// A legacy write after Consul's `FillPartitionAndNamespace` and source type default.
fn filled(write: &IntentionWrite) -> IntentionWrite {
    let mut w = write.clone();
    for ns in [&mut w.source_ns, &mut w.destination_ns] {
        if ns.is_empty() {
            *ns = DEFAULT_NAMESPACE.to_owned();
        }
    }
    if w.source_type.is_empty() {
        w.source_type = "consul".to_owned();
    }
    w
}

fn is_default_ns(ns: &str) -> bool {
    ns.is_empty() || ns.eq_ignore_ascii_case(DEFAULT_NAMESPACE)
}

fn reject_partitions(write: &IntentionWrite) -> Result<(), IntentionError> {
    for (which, partition) in [
        ("destination", &write.destination_partition),
        ("source", &write.source_partition),
    ] {
        if !partition.is_empty() && partition != DEFAULT_NAMESPACE {
            return Err(IntentionError::BadRequest(format!(
                "Cannot specify a {which} partition with this endpoint"
            )));
        }
    }
    Ok(())
}

fn reject_peer(write: &IntentionWrite) -> Result<(), IntentionError> {
    if write.source_peer.is_empty() {
        Ok(())
    } else {
        Err(invalid(
            "SourcePeer field is not supported on this endpoint. Use config entries instead",
        ))
    }
}

/// Legacy writes are refused once any intention towards the destination was written by name.
fn check_legacy_allowed(destination: &str, entry: Option<&Entry>) -> Result<(), IntentionError> {
    match entry {
        Some(e) if e.sources.iter().any(|s| s.id.is_empty()) => Err(invalid(&format!(
            "cannot use legacy intention API to edit intentions with a destination of {} after editing them via a service-intentions config entry",
            go_quote(destination)
        ))),
        _ => Ok(()),
    }
}

fn non_existent(verb: &str, id: &str) -> IntentionError {
    invalid(&format!("Cannot {verb} non-existent intention: '{id}'"))
}

fn invalid(text: &str) -> IntentionError {
    IntentionError::Invalid(text.to_owned())
}

#[cfg(test)]
mod tests;
