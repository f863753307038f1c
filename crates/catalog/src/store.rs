//! The catalog store: registrations, deregistrations, queries and their indexes.
//!
//! Every write bumps only the indexes of what it changed, and records their names as topics
//! for blocking queries: `service.<name>` (an instance of the service, its checks, or its node
//! changed), `connect.<name>` (a proxy for, or a native instance of, the service changed),
//! `node.<name>`, and the tables `nodes`, `services` and `checks`. A write that changes nothing
//! (an agent re-syncing what is already there) bumps nothing and wakes nobody.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{HealthCheck, Node, Service, ServiceHealth};
use crate::Status;
use by_id::ById;

mod by_id;

/// Why a registration was refused; the text is Consul's, shown to clients as a 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("Must provide node and address")]
    MissingNodeOrAddress,
    #[error("Must provide service name with ID")]
    MissingServiceName,
    #[error("Invalid service address")]
    InvalidServiceAddress,
    #[error("Missing node registration")]
    MissingNode,
    #[error("Missing service registration")]
    MissingService,
    #[error("Missing check ID")]
    MissingCheckId,
    #[error("Invalid check status: '{0}'")]
    BadCheckStatus(String),
    /// Checked before a registration is proposed, never when one applies (older log
    /// entries must apply as they did).
    #[error("Invalid service meta {0}")]
    InvalidServiceMeta(String),
}

/// A write to the catalog (`/v1/catalog/register` and `/deregister`, and agent syncs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOp {
    Register(Box<Registration>),
    /// Only `node`: the node with everything on it. With `service_id`: that instance and its
    /// checks. With `check_id`: that check.
    Deregister {
        node: String,
        service_id: Option<String>,
        check_id: Option<String>,
    },
}

/// A node, optionally with one service instance and checks, registered in one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub node: Node,
    /// Leave an existing node's record as it is (its services and checks still register).
    pub skip_node_update: bool,
    pub service: Option<Service>,
    pub checks: Vec<HealthCheck>,
}

/// What a write did that other parts of the state must react to: sessions tied to a node that
/// is gone, or to a check that is gone or critical, are invalidated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    pub nodes_removed: Vec<String>,
    /// `(node, check_id)` of checks that were removed or became critical.
    pub checks_failed: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct NodeEntry {
    node: Node,
    services: ById<Service>,
    checks: ById<HealthCheck>,
}

/// The whole catalog of one datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Boxed: a map's leaf holds eleven entries inline, most of them empty room.
    nodes: BTreeMap<String, Box<NodeEntry>>,
    /// Service name -> instances as `(node, service id)`.
    by_service: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Service name -> proxies for it and its native instances, as `(node, service id)`.
    by_connect: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Topic -> the index of its last change. Entries outlive what they index, so a query on
    /// a deregistered service still sees its index move forward.
    indexes: BTreeMap<String, u64>,
    /// Topics touched since the last drain (not replicated: derived from applying).
    #[serde(skip)]
    changed: BTreeSet<String>,
}

/// Topic names, shared with the HTTP layer that subscribes to them.
pub mod topic {
    pub const NODES: &str = "nodes";
    pub const SERVICES: &str = "services";
    pub const CHECKS: &str = "checks";

    pub fn service(name: &str) -> String {
        format!("service.{name}")
    }

    pub fn connect(name: &str) -> String {
        format!("connect.{name}")
    }

    pub fn node(name: &str) -> String {
        format!("node.{name}")
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    // ---- writes ------------------------------------------------------------------------

    /// Applies a write at raft `index`.
    pub fn apply(&mut self, op: CatalogOp, index: u64) -> Result<Effects, CatalogError> {
        match op {
            CatalogOp::Register(reg) => self.register(*reg, index),
            CatalogOp::Deregister {
                node,
                service_id: Some(service_id),
                ..
            } => Ok(self.deregister_service(&node, &service_id, index)),
            CatalogOp::Deregister {
                node,
                check_id: Some(check_id),
                ..
            } => Ok(self.deregister_check(&node, &check_id, index)),
            CatalogOp::Deregister { node, .. } => Ok(self.deregister_node(&node, index)),
        }
    }

    /// Validates a registration without applying it, so a bad request changes nothing.
    pub fn validate(&self, reg: &Registration) -> Result<(), CatalogError> {
        if reg.node.name.is_empty() || reg.node.address.is_empty() {
            return Err(CatalogError::MissingNodeOrAddress);
        }
        if let Some(svc) = &reg.service {
            if svc.service.is_empty() {
                return Err(CatalogError::MissingServiceName);
            }
            if is_any_address(&svc.address) {
                return Err(CatalogError::InvalidServiceAddress);
            }
        }
        let entry = self.nodes.get(&reg.node.name);
        for check in &reg.checks {
            if check.check_id.is_empty() {
                return Err(CatalogError::MissingCheckId);
            }
            if check.service_id.is_empty() {
                continue;
            }
            let registered_now = reg
                .service
                .as_ref()
                .is_some_and(|s| s.id == check.service_id);
            let registered_before =
                entry.is_some_and(|e| e.services.contains_key(&check.service_id));
            if !registered_now && !registered_before {
                return Err(CatalogError::MissingService);
            }
        }
        Ok(())
    }

    fn register(&mut self, reg: Registration, index: u64) -> Result<Effects, CatalogError> {
        self.validate(&reg)?;
        let mut effects = Effects::default();
        let name = reg.node.name.clone();
        let exists = self.nodes.contains_key(&name);
        if !exists || !reg.skip_node_update {
            self.ensure_node(reg.node, index);
        }
        if let Some(service) = reg.service {
            self.ensure_service(&name, service, index);
        }
        for check in reg.checks {
            self.ensure_check(&name, check, index, &mut effects);
        }
        Ok(effects)
    }

    fn ensure_node(&mut self, mut node: Node, index: u64) {
        let name = node.name.clone();
        let entry = self.nodes.entry(name.clone()).or_default();
        let created = entry.node.name.is_empty();
        if !created && entry.node.same_as(&node) {
            return;
        }
        node.create_index = if created {
            index
        } else {
            entry.node.create_index
        };
        node.modify_index = index;
        entry.node = node;
        let topics: Vec<String> = entry.services.values().flat_map(read_topics).collect();
        self.touch(topic::NODES, index);
        self.touch(&topic::node(&name), index);
        for topic in topics {
            self.touch(&topic, index);
        }
    }

    fn ensure_service(&mut self, node: &str, mut service: Service, index: u64) {
        if service.id.is_empty() {
            service.id = service.service.clone();
        }
        let Some(entry) = self.nodes.get_mut(node) else {
            return;
        };
        let previous = entry.services.get(&service.id).cloned();
        if let Some(prev) = &previous {
            if prev.same_as(&service) {
                return;
            }
            service.create_index = prev.create_index;
        } else {
            service.create_index = index;
        }
        service.modify_index = index;
        // Checks carry their service's name and tags.
        for check in entry.checks.values_mut() {
            if check.service_id == service.id
                && (check.service_name != service.service || check.service_tags != service.tags)
            {
                check.service_name = service.service.clone();
                check.service_tags = service.tags.clone();
                check.modify_index = index;
            }
        }
        entry.services.insert(service.clone());
        if let Some(prev) = &previous {
            self.unindex_service(node, prev, index);
        }
        self.index_service(node, &service, index);
        self.touch(topic::SERVICES, index);
        self.touch(&topic::node(node), index);
    }

    fn ensure_check(
        &mut self,
        node: &str,
        mut check: HealthCheck,
        index: u64,
        effects: &mut Effects,
    ) {
        check.node = node.to_owned();
        let Some(entry) = self.nodes.get_mut(node) else {
            return;
        };
        if let Some(service) = entry.services.get(&check.service_id) {
            check.service_name = service.service.clone();
            check.service_tags = service.tags.clone();
        } else {
            check.service_id.clear();
            check.service_name.clear();
            check.service_tags.clear();
        }
        let previous = entry.checks.get(&check.check_id);
        if let Some(prev) = previous {
            if prev.same_as(&check) {
                return;
            }
            check.create_index = prev.create_index;
        } else {
            check.create_index = index;
        }
        check.modify_index = index;
        let became_critical = check.status == Status::Critical
            && previous.is_none_or(|p| p.status != Status::Critical);
        if became_critical {
            effects
                .checks_failed
                .push((node.to_owned(), check.check_id.clone()));
        }
        let affected = Self::topics_affected_by(entry, &check);
        entry.checks.insert(check);
        self.touch(topic::CHECKS, index);
        self.touch(&topic::node(node), index);
        for topic in affected {
            self.touch(&topic, index);
        }
    }

    fn deregister_node(&mut self, node: &str, index: u64) -> Effects {
        let mut effects = Effects::default();
        let Some(entry) = self.nodes.remove(node) else {
            return effects;
        };
        for service in entry.services.values() {
            self.unindex_service(node, service, index);
        }
        for check in entry.checks.values() {
            effects
                .checks_failed
                .push((node.to_owned(), check.check_id.clone()));
        }
        if !entry.services.is_empty() {
            self.touch(topic::SERVICES, index);
        }
        if !entry.checks.is_empty() {
            self.touch(topic::CHECKS, index);
        }
        self.touch(topic::NODES, index);
        self.touch(&topic::node(node), index);
        effects.nodes_removed.push(node.to_owned());
        effects
    }

    fn deregister_service(&mut self, node: &str, service_id: &str, index: u64) -> Effects {
        let mut effects = Effects::default();
        let Some(entry) = self.nodes.get_mut(node) else {
            return effects;
        };
        let Some(service) = entry.services.remove(service_id) else {
            return effects;
        };
        let before = entry.checks.len();
        entry.checks.retain(|check| {
            let keep = check.service_id != service_id;
            if !keep {
                effects
                    .checks_failed
                    .push((node.to_owned(), check.check_id.clone()));
            }
            keep
        });
        let removed_checks = before != entry.checks.len();
        self.unindex_service(node, &service, index);
        self.touch(topic::SERVICES, index);
        self.touch(&topic::node(node), index);
        if removed_checks {
            self.touch(topic::CHECKS, index);
        }
        effects
    }

    fn deregister_check(&mut self, node: &str, check_id: &str, index: u64) -> Effects {
        let mut effects = Effects::default();
        let Some(entry) = self.nodes.get_mut(node) else {
            return effects;
        };
        let Some(check) = entry.checks.remove(check_id) else {
            return effects;
        };
        let affected = Self::topics_affected_by(entry, &check);
        effects
            .checks_failed
            .push((node.to_owned(), check.check_id));
        self.touch(topic::CHECKS, index);
        self.touch(&topic::node(node), index);
        for topic in affected {
            self.touch(&topic, index);
        }
        effects
    }

    /// The read topics of the services whose health a check bears on: its own service, or
    /// every service on the node for a node-level check.
    fn topics_affected_by(entry: &NodeEntry, check: &HealthCheck) -> Vec<String> {
        if check.service_id.is_empty() {
            entry.services.values().flat_map(read_topics).collect()
        } else {
            entry
                .services
                .get(&check.service_id)
                .into_iter()
                .flat_map(read_topics)
                .collect()
        }
    }

    fn index_service(&mut self, node: &str, service: &Service, index: u64) {
        let key = (node.to_owned(), service.id.clone());
        self.by_service
            .entry(service.service.clone())
            .or_default()
            .insert(key.clone());
        self.touch(&topic::service(&service.service), index);
        if let Some(target) = service.connect_target() {
            self.by_connect
                .entry(target.to_owned())
                .or_default()
                .insert(key);
            self.touch(&topic::connect(target), index);
        }
    }

    fn unindex_service(&mut self, node: &str, service: &Service, index: u64) {
        let key = (node.to_owned(), service.id.clone());
        remove_from(&mut self.by_service, &service.service, &key);
        self.touch(&topic::service(&service.service), index);
        if let Some(target) = service.connect_target() {
            remove_from(&mut self.by_connect, target, &key);
            self.touch(&topic::connect(target), index);
        }
    }

    fn touch(&mut self, topic: &str, index: u64) {
        self.indexes.insert(topic.to_owned(), index);
        self.changed.insert(topic.to_owned());
    }

    /// The topics changed since the last call.
    pub fn drain_changes(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    // ---- reads -------------------------------------------------------------------------

    /// The index of a topic's last change. A topic that never changed reports the index of
    /// its table, so an unknown service's index is the services table's.
    pub fn index(&self, topic: &str) -> u64 {
        if let Some(index) = self.indexes.get(topic) {
            return *index;
        }
        let table = if topic.starts_with("node.") {
            topic::NODES
        } else {
            topic::SERVICES
        };
        self.indexes.get(table).copied().unwrap_or(0)
    }

    /// The highest index of any catalog change.
    pub fn max_index(&self) -> u64 {
        self.indexes.values().copied().max().unwrap_or(0)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name).map(|e| &e.node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().map(|e| &e.node)
    }

    /// A node's services, by ID.
    pub fn node_services(&self, name: &str) -> Option<(&Node, Vec<&Service>)> {
        self.nodes
            .get(name)
            .map(|e| (&e.node, e.services.values().collect()))
    }

    /// Everything on one node, for an agent's anti-entropy.
    pub fn node_state(&self, name: &str) -> crate::NodeState {
        let entry = self.nodes.get(name);
        crate::NodeState {
            node: entry.map(|e| e.node.clone()),
            services: entry
                .map(|e| e.services.values().cloned().collect())
                .unwrap_or_default(),
            checks: entry
                .map(|e| e.checks.values().cloned().collect())
                .unwrap_or_default(),
            nodes: self.nodes.len(),
        }
    }

    /// A node's checks: node-level and service-level.
    pub fn node_checks(&self, name: &str) -> Vec<&HealthCheck> {
        self.nodes
            .get(name)
            .map(|e| e.checks.values().collect())
            .unwrap_or_default()
    }

    /// Every service name with the union of its instances' tags, sorted.
    pub fn services(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for entry in self.nodes.values() {
            for service in entry.services.values() {
                out.entry(&service.service)
                    .or_default()
                    .extend(service.tags.iter().map(String::as_str));
            }
        }
        out
    }

    /// Every service name with the node of each instance, for node-meta filtering.
    pub fn service_instances(&self) -> impl Iterator<Item = (&Node, &Service)> {
        self.nodes
            .values()
            .flat_map(|e| e.services.values().map(move |s| (&e.node, s)))
    }

    /// The node whose address is `addr`, else the name of a service with an instance whose
    /// own address it is (DNS PTR questions). A scan: such questions are rare.
    pub fn by_address(&self, addr: std::net::IpAddr) -> (Option<&Node>, Option<&str>) {
        let is_addr = |text: &str| text.parse::<std::net::IpAddr>().is_ok_and(|a| a == addr);
        if let Some(node) = self.nodes().find(|n| is_addr(&n.address)) {
            return (Some(node), None);
        }
        let service = self
            .service_instances()
            .find(|(_, s)| is_addr(&s.address))
            .map(|(_, s)| s.service.as_str());
        (None, service)
    }

    /// The name a service is registered under that equals `name` ignoring ASCII case (the
    /// exact name first; with `connect`, among the services that have proxies or mesh-native
    /// instances), for DNS, whose names are case-insensitive. `None` when there is none.
    pub fn service_name_like(&self, name: &str, connect: bool) -> Option<&str> {
        let index = if connect {
            &self.by_connect
        } else {
            &self.by_service
        };
        if let Some((exact, _)) = index.get_key_value(name) {
            return Some(exact);
        }
        index
            .keys()
            .find(|known| known.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// The instances of a service, each with its node.
    pub fn service_nodes(&self, name: &str) -> Vec<(&Node, &Service)> {
        self.lookup(self.by_service.get(name))
    }

    /// Proxies for a service and its mesh-native instances, each with its node.
    pub fn connect_nodes(&self, name: &str) -> Vec<(&Node, &Service)> {
        self.lookup(self.by_connect.get(name))
    }

    fn lookup(&self, keys: Option<&BTreeSet<(String, String)>>) -> Vec<(&Node, &Service)> {
        keys.into_iter()
            .flatten()
            .filter_map(|(node, id)| {
                let entry = self.nodes.get(node)?;
                Some((&entry.node, entry.services.get(id)?))
            })
            .collect()
    }

    /// Health of each instance: node, service, and the node's and the instance's checks.
    pub fn health(&self, instances: Vec<(&Node, &Service)>) -> Vec<ServiceHealth> {
        instances
            .into_iter()
            .map(|(node, service)| {
                let checks = self.nodes[&node.name]
                    .checks
                    .values()
                    .filter(|c| c.service_id.is_empty() || c.service_id == service.id)
                    .cloned()
                    .collect();
                ServiceHealth {
                    node: node.clone(),
                    service: service.clone(),
                    checks,
                }
            })
            .collect()
    }

    /// The checks of every instance of a service.
    pub fn service_checks(&self, name: &str) -> Vec<&HealthCheck> {
        self.by_service
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|(node, id)| self.nodes.get(node).map(|e| (e, id)))
            .flat_map(|(entry, id)| entry.checks.values().filter(move |c| &c.service_id == id))
            .collect()
    }

    /// Every check in a state (`None` = any).
    pub fn checks_in_state(&self, status: Option<Status>) -> Vec<&HealthCheck> {
        self.nodes
            .values()
            .flat_map(|e| e.checks.values())
            .filter(|c| status.is_none_or(|s| c.status == s))
            .collect()
    }

    pub fn check(&self, node: &str, check_id: &str) -> Option<&HealthCheck> {
        self.nodes.get(node)?.checks.get(check_id)
    }
}

/// The topics whose reads show `service`: its own service index, and for a proxy or a
/// mesh-native instance the connect index of the service it fronts.
fn read_topics(service: &Service) -> impl Iterator<Item = String> + '_ {
    std::iter::once(topic::service(&service.service))
        .chain(service.connect_target().map(topic::connect))
}

fn remove_from(
    map: &mut BTreeMap<String, BTreeSet<(String, String)>>,
    name: &str,
    key: &(String, String),
) {
    if let Some(set) = map.get_mut(name) {
        set.remove(key);
        if set.is_empty() {
            map.remove(name);
        }
    }
}

/// `0.0.0.0` or `::` (and their spellings): not an address anyone can reach.
fn is_any_address(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
        || addr == "[::]"
}

#[cfg(test)]
mod tests;
