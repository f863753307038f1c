//! The catalog's records: nodes, service instances and health checks, as replicated.
//!
//! These are domain types, serialized into raft snapshots with a compact binary format; Consul's
//! JSON shapes live in [`crate::wire`]. Opaque user data that Consul passes through without
//! interpreting it (proxy `Config`, `Expose`, a check's `Definition`) is kept as JSON text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Status;

/// A node as the catalog knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The node's UUID (may be empty for nodes registered through the catalog API).
    pub id: String,
    pub name: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Node {
    /// Whether two nodes agree on everything a client sees, indexes aside.
    pub fn same_as(&self, other: &Node) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.address == other.address
            && self.datacenter == other.datacenter
            && self.tagged_addresses == other.tagged_addresses
            && self.meta == other.meta
    }
}

/// A service's address under a name such as `lan` or `wan`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAddress {
    pub address: String,
    pub port: u16,
}

/// How a load balancer should weigh an instance by its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A service instance on a node (Consul's `NodeService`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// ``, `connect-proxy`, `mesh-gateway`, ...
    pub kind: String,
    pub id: String,
    /// The service's name.
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub socket_path: String,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub proxy: Option<Proxy>,
    /// `Connect.Native`: the service speaks mesh TLS itself.
    pub connect_native: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Service {
    /// Whether two instances agree on everything a client sees, indexes aside.
    pub fn same_as(&self, other: &Service) -> bool {
        let strip = |s: &Service| Service {
            create_index: 0,
            modify_index: 0,
            ..s.clone()
        };
        strip(self) == strip(other)
    }

    /// The service this instance serves mesh traffic for, if any: a proxy's destination, or
    /// the service itself when it is mesh-native.
    pub fn connect_target(&self) -> Option<&str> {
        if self.kind == "connect-proxy" {
            return self
                .proxy
                .as_ref()
                .map(|p| p.destination_service_name.as_str())
                .filter(|name| !name.is_empty());
        }
        self.connect_native.then_some(self.service.as_str())
    }
}

/// A sidecar proxy's configuration (Consul's `ConnectProxyConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    pub destination_service_name: String,
    pub destination_service_id: String,
    pub local_service_address: String,
    pub local_service_port: u16,
    pub local_service_socket_path: String,
    /// ``, `direct` or `transparent`.
    pub mode: String,
    /// The opaque `Config` object, as JSON text (`""` when absent).
    pub config: String,
    pub upstreams: Vec<Upstream>,
    /// `MeshGateway.Mode`.
    pub mesh_gateway_mode: String,
    /// The `Expose` object, as JSON text (`""` when absent).
    pub expose: String,
}

/// One upstream of a proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// `service` (default) or `prepared_query`.
    pub destination_type: String,
    pub destination_namespace: String,
    pub destination_partition: String,
    pub destination_peer: String,
    pub destination_name: String,
    pub datacenter: String,
    pub local_bind_address: String,
    pub local_bind_port: u16,
    pub local_bind_socket_path: String,
    pub local_bind_socket_mode: String,
    /// The opaque `Config` object, as JSON text (`""` when absent).
    pub config: String,
    pub mesh_gateway_mode: String,
    pub centrally_configured: bool,
}

/// A health check on a node, for the node itself or for one of its services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub node: String,
    pub check_id: String,
    pub name: String,
    pub status: Status,
    pub notes: String,
    pub output: String,
    /// Empty for a node-level check.
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    /// `ttl`, `http`, `tcp`, ... (Consul's `Type`).
    pub check_type: String,
    pub interval: String,
    pub timeout: String,
    pub exposed_port: u16,
    /// The `Definition` object, as JSON text (`""` when absent).
    pub definition: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl HealthCheck {
    /// A check with only its identity and status set.
    pub fn new(node: &str, check_id: &str, name: &str, status: Status) -> HealthCheck {
        HealthCheck {
            node: node.to_owned(),
            check_id: check_id.to_owned(),
            name: name.to_owned(),
            status,
            notes: String::new(),
            output: String::new(),
            service_id: String::new(),
            service_name: String::new(),
            service_tags: Vec::new(),
            check_type: String::new(),
            interval: String::new(),
            timeout: String::new(),
            exposed_port: 0,
            definition: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }

    /// Whether two checks agree on everything a client sees, indexes aside.
    pub fn same_as(&self, other: &HealthCheck) -> bool {
        let strip = |c: &HealthCheck| HealthCheck {
            create_index: 0,
            modify_index: 0,
            ..c.clone()
        };
        strip(self) == strip(other)
    }
}

/// One service instance with its node and every check that bears on its health (the node's
/// checks and the instance's own): Consul's `CheckServiceNode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub node: Node,
    pub service: Service,
    pub checks: Vec<HealthCheck>,
}

impl ServiceHealth {
    /// The worst status among the checks (passing when there are none).
    pub fn status(&self) -> Status {
        aggregate(self.checks.iter().map(|c| c.status))
    }
}

/// The worst of several statuses; passing when there are none.
pub fn aggregate(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Passing)
}

/// What the catalog holds for one node (an agent's anti-entropy read), and how many nodes the
/// catalog has (anti-entropy scales its period with it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: Option<Node>,
    pub services: Vec<Service>,
    pub checks: Vec<HealthCheck>,
    pub nodes: usize,
}
