//! An in-memory [`Lookup`] for tests: datacenters of nodes, instances and servers, and a switch
//! that makes every lookup fail. Like the agent's view, it hands out the same instances (the
//! same `Arc`) until something changes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use catalog::{Node, Service, ServiceHealth};

use crate::lookup::{Instance, Instances, Lookup, LookupError, LookupFuture};

/// A node named `name` at `address` in datacenter `dc`, everything else default.
pub fn node(name: &str, address: &str, dc: &str) -> Node {
    Node {
        name: name.into(),
        address: address.into(),
        datacenter: dc.into(),
        ..Node::default()
    }
}

/// An instance of `service` (its ID the same as its name) on `node` at `port`, with no checks.
pub fn instance(node: Node, service: &str, port: u16) -> Instance {
    ServiceHealth {
        node,
        service: Service {
            id: service.into(),
            service: service.into(),
            port,
            ..Service::default()
        },
        checks: Vec::new(),
    }
}

/// An in-memory catalog view. Every method takes `&self`, so a test can change what it holds
/// while a server answers from it.
#[derive(Debug, Default)]
pub struct MemoryLookup {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    datacenters: BTreeMap<String, Datacenter>,
    failing: bool,
    /// The instances handed out per (datacenter, service, connect), until the next change.
    handed_out: HashMap<(String, String, bool), Instances>,
}

#[derive(Debug, Default)]
struct Datacenter {
    nodes: BTreeMap<String, Node>,
    instances: Vec<Instance>,
    servers: Vec<String>,
}

impl MemoryLookup {
    /// An empty view that knows no datacenter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `dc` known, even with nothing in it.
    pub fn add_datacenter(&self, dc: &str) {
        self.state().datacenters.entry(dc.to_owned()).or_default();
    }

    /// Adds or replaces a node (in `node.datacenter`).
    pub fn add_node(&self, node: Node) {
        let mut state = self.state();
        let dc = state
            .datacenters
            .entry(node.datacenter.clone())
            .or_default();
        dc.nodes.insert(node.name.to_lowercase(), node);
    }

    /// Adds an instance, and its node unless that node is already known.
    pub fn add_instance(&self, instance: Instance) {
        let mut state = self.state();
        let dc = state
            .datacenters
            .entry(instance.node.datacenter.clone())
            .or_default();
        dc.nodes
            .entry(instance.node.name.to_lowercase())
            .or_insert_with(|| instance.node.clone());
        dc.instances.push(instance);
    }

    /// Adds a node and marks it as a server of its datacenter.
    pub fn add_server(&self, node: Node) {
        let name = node.name.clone();
        let dc = node.datacenter.clone();
        self.add_node(node);
        self.state()
            .datacenters
            .entry(dc)
            .or_default()
            .servers
            .push(name.to_lowercase());
    }

    /// Changes the instances of `dc` (which must be known) in place.
    pub fn edit_instances(&self, dc: &str, f: impl FnOnce(&mut Vec<Instance>)) {
        let mut state = self.state();
        f(&mut state
            .datacenters
            .get_mut(dc)
            .expect("a known datacenter")
            .instances);
    }

    /// While `failing`, every lookup returns [`LookupError::Unavailable`].
    pub fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }

    /// The state, for a change: what was handed out is forgotten.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.read_state();
        state.handed_out.clear();
        state
    }

    fn read_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no test panics while holding the lock")
    }

    /// The instances of `service` in `dc`: those handed out before, unless something changed.
    fn instances(&self, dc: &str, service: &str, connect: bool) -> Option<Option<Instances>> {
        let mut state = self.read_state();
        if state.failing {
            return None;
        }
        let key = (dc.to_owned(), service.to_lowercase(), connect);
        if let Some(instances) = state.handed_out.get(&key) {
            return Some(Some(instances.clone()));
        }
        let Some(dc) = state.datacenters.get(dc) else {
            return Some(None);
        };
        let matches = |i: &&Instance| {
            let name = if connect {
                i.service.connect_target()
            } else {
                Some(i.service.service.as_str())
            };
            name.is_some_and(|n| n.eq_ignore_ascii_case(service))
        };
        let instances: Instances =
            std::sync::Arc::new(dc.instances.iter().filter(matches).cloned().collect());
        state.handed_out.insert(key, instances.clone());
        Some(Some(instances))
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, LookupError> {
        let state = self.read_state();
        if state.failing {
            return Err(LookupError::Unavailable("memory lookup set to fail".into()));
        }
        Ok(f(&state))
    }
}

impl Lookup for MemoryLookup {
    fn service<'a>(
        &'a self,
        dc: &'a str,
        service: &'a str,
        connect: bool,
    ) -> LookupFuture<'a, Option<Instances>> {
        // `None` only while failing.
        let result = self
            .instances(dc, service, connect)
            .ok_or_else(|| LookupError::Unavailable("memory lookup set to fail".into()));
        Box::pin(async move { result })
    }

    fn service_now(&self, dc: &str, service: &str, connect: bool) -> Option<Option<Instances>> {
        self.instances(dc, service, connect)
    }

    fn node<'a>(&'a self, dc: &'a str, node: &'a str) -> LookupFuture<'a, Option<Node>> {
        let result = self.read(|state| {
            state
                .datacenters
                .get(dc)
                .and_then(|dc| dc.nodes.get(&node.to_lowercase()).cloned())
        });
        Box::pin(async move { result })
    }

    fn servers<'a>(&'a self, dc: &'a str) -> LookupFuture<'a, Vec<Node>> {
        let result = self.read(|state| {
            state
                .datacenters
                .get(dc)
                .map(|dc| {
                    dc.servers
                        .iter()
                        .filter_map(|name| dc.nodes.get(name).cloned())
                        .collect()
                })
                .unwrap_or_default()
        });
        Box::pin(async move { result })
    }

    fn node_by_addr<'a>(&'a self, dc: &'a str, addr: IpAddr) -> LookupFuture<'a, Option<Node>> {
        let result = self.read(|state| {
            let dc = state.datacenters.get(dc)?;
            dc.nodes
                .values()
                .find(|n| n.address.parse::<IpAddr>().ok() == Some(addr))
                .cloned()
        });
        Box::pin(async move { result })
    }

    fn service_by_addr<'a>(
        &'a self,
        dc: &'a str,
        addr: IpAddr,
    ) -> LookupFuture<'a, Option<String>> {
        let result = self.read(|state| {
            let dc = state.datacenters.get(dc)?;
            dc.instances
                .iter()
                .find(|i| i.service.address.parse::<IpAddr>().ok() == Some(addr))
                .map(|i| i.service.service.clone())
        });
        Box::pin(async move { result })
    }
}
