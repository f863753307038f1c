//! The agent's local state: the services and checks of its own node, what the catalog has
//! been told about them, and the plan that brings the catalog in line (anti-entropy).
//!
//! Pure and synchronous: time is passed in as Unix milliseconds. The runtime owns the clock,
//! the check runners and the connection to the servers.

use std::collections::{BTreeMap, BTreeSet};

use catalog::{CatalogOp, HealthCheck, Node, NodeState, Registration, Service, Status};

use crate::definition::{CheckDefinition, CheckKind, ServiceDefinition};

/// The node-level maintenance check (Consul's ID, name and default note).
pub const NODE_MAINTENANCE: &str = "_node_maintenance";
const NODE_MAINTENANCE_NAME: &str = "Node Maintenance Mode";
const NODE_MAINTENANCE_NOTE: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";
const SERVICE_MAINTENANCE_NAME: &str = "Service Maintenance Mode";
const SERVICE_MAINTENANCE_NOTE: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
/// The check the leader owns for every node; agents never sync or delete it.
pub const SERF_HEALTH: &str = "serfHealth";
/// The service servers are registered under; managed by the leader, not by agents.
pub const CONSUL_SERVICE: &str = "consul";

/// The ID of a service's maintenance check.
pub fn service_maintenance_id(service_id: &str) -> String {
    format!("{SERVICE_MAINTENANCE_PREFIX}{service_id}")
}

/// A service the agent manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    pub service: Service,
    pub token: String,
    /// For a sidecar registered through `sidecar_service`: its parent's ID.
    pub sidecar_of: Option<String>,
    in_sync: bool,
    /// Bumped on every local change, so a sync that raced with a change does not mark the
    /// newer version as synced.
    generation: u64,
}

/// A check the agent manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCheck {
    /// The current record: status and output as last observed.
    pub check: HealthCheck,
    /// `None` for maintenance checks, which nothing runs.
    pub definition: Option<CheckDefinition>,
    in_sync: bool,
    /// The status the catalog last accepted; an output-only change is deferred.
    synced_status: Option<Status>,
    /// When the catalog last accepted this check (ms), for deferring output-only syncs.
    synced_at_ms: u64,
    /// Since when the check has been critical (ms), for `DeregisterCriticalServiceAfter`.
    pub critical_since_ms: Option<u64>,
    generation: u64,
}

/// Why a local operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// Clients string-match this text (with a 500) to re-register.
    #[error("CheckID \"{0}\" does not have associated TTL")]
    NoTtl(String),
    #[error("ServiceID \"{0}\" does not exist")]
    UnknownService(String),
    #[error("Unknown check ID \"{0}\". Ensure that the check ID is passed, not the check name.")]
    UnknownCheck(String),
}

/// One write the plan wants, tagged with what to mark synced when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStep {
    pub op: CatalogOp,
    pub marks: Vec<Mark>,
}

/// What a successful step brings in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Node,
    Service {
        id: String,
        generation: u64,
    },
    Check {
        id: String,
        generation: u64,
        status: Status,
    },
    Deleted,
}

#[derive(Debug, Clone)]
pub struct LocalState {
    node: Node,
    node_in_sync: bool,
    services: BTreeMap<String, LocalService>,
    checks: BTreeMap<String, LocalCheck>,
    /// Catalog entries for this node that the agent does not know, to delete.
    stale_services: BTreeSet<String>,
    stale_checks: BTreeSet<String>,
    generation: u64,
    /// Output-only changes wait this long after the check's last sync.
    check_update_interval_ms: u64,
}

impl LocalState {
    pub fn new(node: Node, check_update_interval_ms: u64) -> Self {
        LocalState {
            node,
            node_in_sync: false,
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            stale_services: BTreeSet::new(),
            stale_checks: BTreeSet::new(),
            generation: 0,
            check_update_interval_ms,
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    // ---- services ----------------------------------------------------------------------

    pub fn services(&self) -> impl Iterator<Item = &LocalService> {
        self.services.values()
    }

    pub fn service(&self, id: &str) -> Option<&LocalService> {
        self.services.get(id)
    }

    /// Adds or replaces a service with its checks (and its sidecar). With
    /// `replace_existing_checks`, the service's checks not in the definition are removed.
    /// Returns the IDs of the checks added, whose runners must (re)start.
    pub fn add_service(
        &mut self,
        def: ServiceDefinition,
        token: &str,
        replace_existing_checks: bool,
    ) -> Vec<String> {
        self.add_service_as(def, token, replace_existing_checks, None)
    }

    fn add_service_as(
        &mut self,
        def: ServiceDefinition,
        token: &str,
        replace_existing_checks: bool,
        sidecar_of: Option<String>,
    ) -> Vec<String> {
        let ServiceDefinition {
            mut service,
            checks,
            sidecar,
        } = def;
        let id = service.id.clone();
        // Tags the catalog overrode stay, when the service allows it.
        if let Some(existing) = self.services.get(&id) {
            if existing.service.enable_tag_override && service.enable_tag_override {
                service.tags = existing.service.tags.clone();
            }
        }
        let generation = self.next_generation();
        self.stale_services.remove(&id);
        self.services.insert(
            id.clone(),
            LocalService {
                service,
                token: token.to_owned(),
                sidecar_of,
                in_sync: false,
                generation,
            },
        );
        if replace_existing_checks {
            let keep: BTreeSet<&str> = checks.iter().map(|c| c.id.as_str()).collect();
            let drop: Vec<String> = self
                .checks
                .values()
                .filter(|c| c.check.service_id == id && !keep.contains(c.check.check_id.as_str()))
                .filter(|c| c.definition.is_some())
                .map(|c| c.check.check_id.clone())
                .collect();
            for check in drop {
                self.remove_check(&check);
            }
        }
        let mut started = Vec::new();
        for check in checks {
            started.push(check.id.clone());
            self.add_check(check);
        }
        if let Some(sidecar) = sidecar {
            started.extend(self.add_service_as(*sidecar, token, replace_existing_checks, Some(id)));
        }
        started
    }

    /// Removes a service, its checks and its sidecar. Returns the removed check IDs (whose
    /// runners must stop), or `None` when the service was unknown.
    pub fn remove_service(&mut self, id: &str) -> Option<Vec<String>> {
        self.services.remove(id)?;
        self.stale_services.insert(id.to_owned());
        let checks: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.check.service_id == id)
            .map(|c| c.check.check_id.clone())
            .collect();
        let mut removed = Vec::new();
        for check in checks {
            self.checks.remove(&check);
            removed.push(check);
        }
        let sidecars: Vec<String> = self
            .services
            .values()
            .filter(|s| s.sidecar_of.as_deref() == Some(id))
            .map(|s| s.service.id.clone())
            .collect();
        for sidecar in sidecars {
            removed.extend(self.remove_service(&sidecar).unwrap_or_default());
        }
        Some(removed)
    }

    /// Whether a local sidecar already uses `port`.
    pub fn port_taken(&self, port: u16) -> bool {
        self.services
            .values()
            .any(|s| s.service.kind == "connect-proxy" && s.service.port == port)
    }

    // ---- checks ------------------------------------------------------------------------

    pub fn checks(&self) -> impl Iterator<Item = &LocalCheck> {
        self.checks.values()
    }

    pub fn check(&self, id: &str) -> Option<&LocalCheck> {
        self.checks.get(id)
    }

    /// Adds or replaces a check. The caller validated that its service exists.
    pub fn add_check(&mut self, def: CheckDefinition) {
        let service = self
            .services
            .get(&def.service_id)
            .map(|s| s.service.clone());
        let mut check = def.health_check(&self.node.name, service.as_ref());
        // Re-registering keeps the status a running check already has (Consul keeps the
        // state of TTL checks across re-registration of the same definition).
        if let Some(existing) = self.checks.get(&def.id) {
            if existing.definition.as_ref() == Some(&def) {
                check.status = existing.check.status;
                check.output = existing.check.output.clone();
            }
        }
        let generation = self.next_generation();
        self.stale_checks.remove(&def.id);
        self.checks.insert(
            def.id.clone(),
            LocalCheck {
                critical_since_ms: None,
                check,
                definition: Some(def),
                in_sync: false,
                synced_status: None,
                synced_at_ms: 0,
                generation,
            },
        );
    }

    pub fn remove_check(&mut self, id: &str) -> bool {
        let removed = self.checks.remove(id).is_some();
        if removed {
            self.stale_checks.insert(id.to_owned());
        }
        removed
    }

    /// Records a check result. A status change syncs at once; an output-only change waits
    /// for the check's next sync window.
    pub fn update_check(&mut self, id: &str, status: Status, output: &str, now_ms: u64) -> bool {
        let generation = self.next_generation();
        let Some(local) = self.checks.get_mut(id) else {
            return false;
        };
        if local.check.status == status && local.check.output == output {
            return true;
        }
        match (status, local.critical_since_ms) {
            (Status::Critical, None) => local.critical_since_ms = Some(now_ms),
            (Status::Critical, Some(_)) => {}
            _ => local.critical_since_ms = None,
        }
        local.check.status = status;
        local.check.output = output.to_owned();
        local.in_sync = false;
        local.generation = generation;
        true
    }

    /// `PUT /v1/agent/check/pass|warn|fail|update`: only for TTL checks.
    pub fn ttl_update(
        &mut self,
        id: &str,
        status: Status,
        output: &str,
        now_ms: u64,
    ) -> Result<(), LocalError> {
        match self.checks.get(id).and_then(|c| c.definition.as_ref()) {
            Some(def) if matches!(def.kind, CheckKind::Ttl(_)) => {}
            _ => return Err(LocalError::NoTtl(id.to_owned())),
        }
        self.update_check(id, status, output, now_ms);
        Ok(())
    }

    // ---- maintenance ---------------------------------------------------------------------

    /// Puts the node in (or takes it out of) maintenance.
    pub fn set_node_maintenance(&mut self, enable: bool, reason: &str) {
        if !enable {
            self.remove_check(NODE_MAINTENANCE);
            return;
        }
        let mut check = HealthCheck::new(
            &self.node.name,
            NODE_MAINTENANCE,
            NODE_MAINTENANCE_NAME,
            Status::Critical,
        );
        check.notes = if reason.is_empty() {
            NODE_MAINTENANCE_NOTE.into()
        } else {
            reason.into()
        };
        check.check_type = "maintenance".into();
        self.insert_plain_check(check);
    }

    /// Puts a service in (or takes it out of) maintenance.
    pub fn set_service_maintenance(
        &mut self,
        service_id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), LocalError> {
        let service = self
            .services
            .get(service_id)
            .ok_or_else(|| LocalError::UnknownService(service_id.to_owned()))?
            .service
            .clone();
        let id = service_maintenance_id(service_id);
        if !enable {
            self.remove_check(&id);
            return Ok(());
        }
        let mut check = HealthCheck::new(
            &self.node.name,
            &id,
            SERVICE_MAINTENANCE_NAME,
            Status::Critical,
        );
        check.notes = if reason.is_empty() {
            SERVICE_MAINTENANCE_NOTE.into()
        } else {
            reason.into()
        };
        check.check_type = "maintenance".into();
        check.service_id = service.id.clone();
        check.service_name = service.service.clone();
        check.service_tags = service.tags.clone();
        self.insert_plain_check(check);
        Ok(())
    }

    pub fn node_in_maintenance(&self) -> bool {
        self.checks.contains_key(NODE_MAINTENANCE)
    }

    pub fn service_in_maintenance(&self, service_id: &str) -> bool {
        self.checks
            .contains_key(&service_maintenance_id(service_id))
    }

    fn insert_plain_check(&mut self, check: HealthCheck) {
        let generation = self.next_generation();
        self.stale_checks.remove(&check.check_id);
        self.checks.insert(
            check.check_id.clone(),
            LocalCheck {
                check,
                definition: None,
                in_sync: false,
                synced_status: None,
                synced_at_ms: 0,
                critical_since_ms: None,
                generation,
            },
        );
    }

    // ---- anti-entropy --------------------------------------------------------------------

    /// Compares the local state with what the catalog holds for this node (a full sync):
    /// differences become out of sync, catalog entries the agent does not know become stale.
    /// The catalog's tags win for services with `EnableTagOverride`.
    pub fn reconcile(&mut self, remote: &NodeState) {
        self.node_in_sync = remote.node.as_ref().is_some_and(|n| {
            n.id == self.node.id
                && n.address == self.node.address
                && n.tagged_addresses == self.node.tagged_addresses
                && n.meta == self.node.meta
                && n.datacenter == self.node.datacenter
        });
        let remote_services: BTreeMap<&str, &Service> =
            remote.services.iter().map(|s| (s.id.as_str(), s)).collect();
        for (id, local) in &mut self.services {
            match remote_services.get(id.as_str()) {
                Some(theirs) => {
                    if local.service.enable_tag_override {
                        local.service.tags = theirs.tags.clone();
                    }
                    local.in_sync = theirs.same_as(&local.service);
                }
                None => local.in_sync = false,
            }
        }
        self.stale_services = remote_services
            .keys()
            .filter(|id| !self.services.contains_key(**id) && **id != CONSUL_SERVICE)
            .map(|id| id.to_string())
            .collect();
        let remote_checks: BTreeMap<&str, &HealthCheck> = remote
            .checks
            .iter()
            .map(|c| (c.check_id.as_str(), c))
            .collect();
        for (id, local) in &mut self.checks {
            local.in_sync = match remote_checks.get(id.as_str()) {
                Some(theirs) => {
                    local.synced_status = Some(theirs.status);
                    // An output-only difference is not worth a write outside its window.
                    theirs.same_as(&HealthCheck {
                        output: theirs.output.clone(),
                        ..local.check.clone()
                    })
                }
                None => {
                    local.synced_status = None;
                    false
                }
            };
        }
        self.stale_checks = remote_checks
            .keys()
            .filter(|id| !self.checks.contains_key(**id) && **id != SERF_HEALTH)
            .map(|id| id.to_string())
            .collect();
    }

    /// The writes that bring the catalog in line, and when the next deferred output sync is
    /// due (ms), if any.
    pub fn plan(&self, now_ms: u64) -> (Vec<SyncStep>, Option<u64>) {
        let mut steps = Vec::new();
        let mut next_due: Option<u64> = None;
        let node_only = |service: Option<Service>, checks: Vec<HealthCheck>| {
            CatalogOp::Register(Box::new(Registration {
                node: self.node.clone(),
                skip_node_update: false,
                service,
                checks,
            }))
        };
        if !self.node_in_sync {
            steps.push(SyncStep {
                op: node_only(None, Vec::new()),
                marks: vec![Mark::Node],
            });
        }
        for id in &self.stale_services {
            steps.push(SyncStep {
                op: CatalogOp::Deregister {
                    node: self.node.name.clone(),
                    service_id: Some(id.clone()),
                    check_id: None,
                },
                marks: vec![Mark::Deleted],
            });
        }
        for id in &self.stale_checks {
            steps.push(SyncStep {
                op: CatalogOp::Deregister {
                    node: self.node.name.clone(),
                    service_id: None,
                    check_id: Some(id.clone()),
                },
                marks: vec![Mark::Deleted],
            });
        }
        let mut synced_with_service: BTreeSet<&str> = BTreeSet::new();
        for local in self.services.values().filter(|s| !s.in_sync) {
            // A service goes with all its checks, so they never reference a missing service.
            let checks: Vec<&LocalCheck> = self
                .checks
                .values()
                .filter(|c| c.check.service_id == local.service.id)
                .collect();
            let mut marks = vec![Mark::Service {
                id: local.service.id.clone(),
                generation: local.generation,
            }];
            marks.extend(checks.iter().map(|c| Mark::Check {
                id: c.check.check_id.clone(),
                generation: c.generation,
                status: c.check.status,
            }));
            synced_with_service.extend(checks.iter().map(|c| c.check.check_id.as_str()));
            steps.push(SyncStep {
                op: node_only(
                    Some(local.service.clone()),
                    checks.iter().map(|c| c.check.clone()).collect(),
                ),
                marks,
            });
        }
        for local in self.checks.values().filter(|c| !c.in_sync) {
            if synced_with_service.contains(local.check.check_id.as_str()) {
                continue;
            }
            if local.synced_status == Some(local.check.status) {
                let due = local.synced_at_ms + self.check_update_interval_ms;
                if now_ms < due {
                    next_due = Some(next_due.map_or(due, |d: u64| d.min(due)));
                    continue;
                }
            }
            steps.push(SyncStep {
                op: node_only(None, vec![local.check.clone()]),
                marks: vec![Mark::Check {
                    id: local.check.check_id.clone(),
                    generation: local.generation,
                    status: local.check.status,
                }],
            });
        }
        (steps, next_due)
    }

    /// Records that a step was applied.
    pub fn mark_synced(&mut self, step: &SyncStep, now_ms: u64) {
        for mark in &step.marks {
            match mark {
                Mark::Node => self.node_in_sync = true,
                Mark::Service { id, generation } => {
                    if let Some(s) = self.services.get_mut(id) {
                        if s.generation == *generation {
                            s.in_sync = true;
                        }
                    }
                }
                Mark::Check {
                    id,
                    generation,
                    status,
                } => {
                    if let Some(c) = self.checks.get_mut(id) {
                        c.synced_status = Some(*status);
                        c.synced_at_ms = now_ms;
                        if c.generation == *generation {
                            c.in_sync = true;
                        }
                    }
                }
                Mark::Deleted => {}
            }
        }
        if let CatalogOp::Deregister {
            service_id,
            check_id,
            ..
        } = &step.op
        {
            if let Some(id) = service_id {
                self.stale_services.remove(id);
            }
            if let Some(id) = check_id {
                self.stale_checks.remove(id);
            }
        }
    }

    /// Services with a check that has been critical for longer than its
    /// `DeregisterCriticalServiceAfter`.
    pub fn services_to_reap(&self, now_ms: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .checks
            .values()
            .filter_map(|c| {
                let after = c.definition.as_ref()?.deregister_after?;
                let since = c.critical_since_ms?;
                (now_ms.saturating_sub(since) >= after.as_millis() as u64
                    && !c.check.service_id.is_empty())
                .then(|| c.check.service_id.clone())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether everything is in sync (for tests and `/v1/agent/self`).
    pub fn in_sync(&self) -> bool {
        self.plan(u64::MAX).0.is_empty()
    }
}

#[cfg(test)]
mod tests;
