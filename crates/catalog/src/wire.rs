//! Consul's JSON shapes for the catalog: what `/v1/catalog/*` and `/v1/health/*` return, and
//! how request bodies are read.
//!
//! Output is built as [`serde_json::Value`] in Go's field order, because the `?filter`
//! language evaluates against exactly these shapes. Input follows Go's `encoding/json`: field
//! names match case-insensitively, and (like Consul's agent endpoints) snake_case is accepted
//! too; see [`normalize_keys`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::model::{HealthCheck, Node, Proxy, Service, ServiceAddress, ServiceHealth, Upstream};

// ---- output ------------------------------------------------------------------------------

/// A catalog `Node`.
pub fn node(n: &Node) -> Value {
    json!({
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": n.tagged_addresses,
        "Meta": n.meta,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    })
}

/// A `NodeService`: a service instance as `/v1/catalog/node/:node` and `/v1/health/service`
/// show it.
pub fn node_service(s: &Service) -> Value {
    let mut out = Map::new();
    if !s.kind.is_empty() {
        out.insert("Kind".into(), json!(s.kind));
    }
    out.insert("ID".into(), json!(s.id));
    out.insert("Service".into(), json!(s.service));
    out.insert("Tags".into(), json!(s.tags));
    out.insert("Address".into(), json!(s.address));
    if !s.tagged_addresses.is_empty() {
        out.insert("TaggedAddresses".into(), tagged(&s.tagged_addresses));
    }
    out.insert("Meta".into(), json!(s.meta));
    out.insert("Port".into(), json!(s.port));
    if !s.socket_path.is_empty() {
        out.insert("SocketPath".into(), json!(s.socket_path));
    }
    out.insert("Weights".into(), weights(s));
    out.insert("EnableTagOverride".into(), json!(s.enable_tag_override));
    out.insert("Proxy".into(), proxy(s.proxy.as_ref()));
    out.insert("Connect".into(), connect(s));
    out.insert("PeerName".into(), json!(""));
    out.insert("CreateIndex".into(), json!(s.create_index));
    out.insert("ModifyIndex".into(), json!(s.modify_index));
    Value::Object(out)
}

/// A `ServiceNode`: one instance flattened with its node (`/v1/catalog/service/:name`).
pub fn service_node(n: &Node, s: &Service) -> Value {
    let mut out = Map::new();
    out.insert("ID".into(), json!(n.id));
    out.insert("Node".into(), json!(n.name));
    out.insert("Address".into(), json!(n.address));
    out.insert("Datacenter".into(), json!(n.datacenter));
    out.insert("TaggedAddresses".into(), json!(n.tagged_addresses));
    out.insert("NodeMeta".into(), json!(n.meta));
    out.insert("ServiceKind".into(), json!(s.kind));
    out.insert("ServiceID".into(), json!(s.id));
    out.insert("ServiceName".into(), json!(s.service));
    out.insert("ServiceTags".into(), json!(s.tags));
    out.insert("ServiceAddress".into(), json!(s.address));
    if !s.tagged_addresses.is_empty() {
        out.insert("ServiceTaggedAddresses".into(), tagged(&s.tagged_addresses));
    }
    out.insert("ServiceWeights".into(), weights(s));
    out.insert("ServiceMeta".into(), json!(s.meta));
    out.insert("ServicePort".into(), json!(s.port));
    out.insert("ServiceSocketPath".into(), json!(s.socket_path));
    out.insert(
        "ServiceEnableTagOverride".into(),
        json!(s.enable_tag_override),
    );
    out.insert("ServiceProxy".into(), proxy(s.proxy.as_ref()));
    out.insert("ServiceConnect".into(), connect(s));
    out.insert("CreateIndex".into(), json!(s.create_index));
    out.insert("ModifyIndex".into(), json!(s.modify_index));
    Value::Object(out)
}

/// A `HealthCheck`.
pub fn check(c: &HealthCheck) -> Value {
    json!({
        "Node": c.node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status.as_str(),
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": c.service_name,
        "ServiceTags": c.service_tags,
        "Type": c.check_type,
        "Interval": c.interval,
        "Timeout": c.timeout,
        "ExposedPort": c.exposed_port,
        "Definition": opaque(&c.definition),
        "CreateIndex": c.create_index,
        "ModifyIndex": c.modify_index,
    })
}

/// A `CheckServiceNode` (`/v1/health/service/:name`).
pub fn service_health(h: &ServiceHealth) -> Value {
    json!({
        "Node": node(&h.node),
        "Service": node_service(&h.service),
        "Checks": h.checks.iter().map(check).collect::<Vec<_>>(),
    })
}

fn weights(s: &Service) -> Value {
    json!({"Passing": s.weights.passing, "Warning": s.weights.warning})
}

fn tagged(addrs: &BTreeMap<String, ServiceAddress>) -> Value {
    addrs
        .iter()
        .map(|(k, a)| (k.clone(), json!({"Address": a.address, "Port": a.port})))
        .collect::<Map<_, _>>()
        .into()
}

fn connect(s: &Service) -> Value {
    if s.connect_native {
        json!({"Native": true})
    } else {
        json!({})
    }
}

/// JSON text kept verbatim, as a value (`{}` when empty or unreadable).
fn opaque(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({}))
}

/// `ConnectProxyConfig`: present (mostly empty) on every instance, as in Consul.
pub fn proxy(p: Option<&Proxy>) -> Value {
    let mut out = Map::new();
    let Some(p) = p else {
        out.insert("Mode".into(), json!(""));
        out.insert("MeshGateway".into(), json!({}));
        out.insert("Expose".into(), json!({}));
        return Value::Object(out);
    };
    let mut put_str = |key: &str, v: &str| {
        if !v.is_empty() {
            out.insert(key.into(), json!(v));
        }
    };
    put_str("DestinationServiceName", &p.destination_service_name);
    put_str("DestinationServiceID", &p.destination_service_id);
    put_str("LocalServiceAddress", &p.local_service_address);
    if p.local_service_port != 0 {
        out.insert("LocalServicePort".into(), json!(p.local_service_port));
    }
    if !p.local_service_socket_path.is_empty() {
        out.insert(
            "LocalServiceSocketPath".into(),
            json!(p.local_service_socket_path),
        );
    }
    out.insert("Mode".into(), json!(p.mode));
    if !p.config.is_empty() {
        out.insert("Config".into(), opaque(&p.config));
    }
    if !p.upstreams.is_empty() {
        out.insert(
            "Upstreams".into(),
            p.upstreams.iter().map(upstream).collect::<Vec<_>>().into(),
        );
    }
    out.insert("MeshGateway".into(), mesh_gateway(&p.mesh_gateway_mode));
    out.insert("Expose".into(), opaque(&p.expose));
    Value::Object(out)
}

fn mesh_gateway(mode: &str) -> Value {
    if mode.is_empty() {
        json!({})
    } else {
        json!({"Mode": mode})
    }
}

fn upstream(u: &Upstream) -> Value {
    let mut out = Map::new();
    let mut put_str = |key: &str, v: &str, always: bool| {
        if always || !v.is_empty() {
            out.insert(key.into(), json!(v));
        }
    };
    put_str("DestinationType", &u.destination_type, false);
    put_str("DestinationNamespace", &u.destination_namespace, false);
    put_str("DestinationPartition", &u.destination_partition, false);
    put_str("DestinationPeer", &u.destination_peer, false);
    put_str("DestinationName", &u.destination_name, true);
    put_str("Datacenter", &u.datacenter, true);
    put_str("LocalBindAddress", &u.local_bind_address, false);
    if u.local_bind_port != 0 {
        out.insert("LocalBindPort".into(), json!(u.local_bind_port));
    }
    if !u.local_bind_socket_path.is_empty() {
        out.insert(
            "LocalBindSocketPath".into(),
            json!(u.local_bind_socket_path),
        );
    }
    if !u.local_bind_socket_mode.is_empty() {
        out.insert(
            "LocalBindSocketMode".into(),
            json!(u.local_bind_socket_mode),
        );
    }
    if !u.config.is_empty() {
        out.insert("Config".into(), opaque(&u.config));
    }
    out.insert("MeshGateway".into(), mesh_gateway(&u.mesh_gateway_mode));
    if u.centrally_configured {
        out.insert("CentrallyConfigured".into(), json!(true));
    }
    Value::Object(out)
}

// ---- input -------------------------------------------------------------------------------

/// Field names we read, in Go's spelling. A request key matches one of these when it is
/// equal ignoring case and underscores (`service_id`, `ServiceId` and `ServiceID` all mean
/// `ServiceID`).
const FIELDS: &[&str] = &[
    "ID",
    "Node",
    "Address",
    "Datacenter",
    "TaggedAddresses",
    "NodeMeta",
    "Meta",
    "Service",
    "Check",
    "Checks",
    "SkipNodeUpdate",
    "Kind",
    "Name",
    "Tags",
    "Port",
    "SocketPath",
    "Weights",
    "Passing",
    "Warning",
    "EnableTagOverride",
    "Proxy",
    "Connect",
    "Native",
    "SidecarService",
    "DestinationServiceName",
    "DestinationServiceID",
    "LocalServiceAddress",
    "LocalServicePort",
    "LocalServiceSocketPath",
    "Mode",
    "Config",
    "Upstreams",
    "MeshGateway",
    "Expose",
    "DestinationType",
    "DestinationNamespace",
    "DestinationPartition",
    "DestinationPeer",
    "DestinationName",
    "LocalBindAddress",
    "LocalBindPort",
    "LocalBindSocketPath",
    "LocalBindSocketMode",
    "CentrallyConfigured",
    "CheckID",
    "Status",
    "Notes",
    "Output",
    "ServiceID",
    "ServiceName",
    "ServiceTags",
    "Type",
    "Interval",
    "Timeout",
    "TTL",
    "HTTP",
    "Method",
    "Header",
    "Body",
    "DisableRedirects",
    "TLSServerName",
    "TLSSkipVerify",
    "TCP",
    "UDP",
    "GRPC",
    "GRPCUseTLS",
    "H2PING",
    "H2PingUseTLS",
    "Args",
    "ScriptArgs",
    "DockerContainerID",
    "Shell",
    "AliasNode",
    "AliasService",
    "OSService",
    "DeregisterCriticalServiceAfter",
    "SuccessBeforePassing",
    "FailuresBeforeWarning",
    "FailuresBeforeCritical",
    "OutputMaxSize",
    "Token",
    "Definition",
    "ExposedPort",
    "Locality",
    "Region",
    "Zone",
    "Paths",
    "ListenerPort",
    "Path",
    "LocalPathPort",
    "Protocol",
    "TransparentProxy",
    "OutboundListenerPort",
    "DialedDirectly",
    "Namespace",
    "Partition",
    "EnableScriptChecks",
    "Enable",
    "Reason",
];

/// Fields whose object keys are user data and must be kept verbatim.
const OPAQUE: &[&str] = &["Meta", "NodeMeta", "Header", "Config"];

/// Rewrites every known field name of a request body to Go's spelling, leaving user data
/// (metadata keys, headers, proxy config) untouched. Unknown fields keep their name (and
/// are then ignored, as Go ignores them).
pub fn normalize_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = canonical(&key).map_or(key, str::to_owned);
                    let value = if OPAQUE.contains(&key.as_str()) {
                        value
                    } else if key == "TaggedAddresses" {
                        keep_keys(value)
                    } else {
                        normalize_keys(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

/// Keeps an object's own keys but normalizes inside its values.
fn keep_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize_keys(v)))
                .collect(),
        ),
        other => other,
    }
}

fn canonical(key: &str) -> Option<&'static str> {
    let folded: String = key
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    FIELDS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(&folded))
        .copied()
}

/// Reads a request body the way Go's `encoding/json` would into a PascalCase struct.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())?
    };
    serde_json::from_value(normalize_keys(value)).map_err(|e| e.to_string())
}

/// Opaque JSON kept as text in the catalog (`""` for null or absent).
pub fn opaque_text(value: &Option<Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(v) => v.to_string(),
    }
}

/// `PUT /v1/catalog/register`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterBody {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub node_meta: BTreeMap<String, String>,
    pub service: Option<ServiceBody>,
    pub check: Option<CheckBody>,
    pub checks: Vec<CheckBody>,
    pub skip_node_update: bool,
}

/// A `NodeService` in a request.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceBody {
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Option<Vec<String>>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, AddressBody>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub socket_path: String,
    pub weights: Option<WeightsBody>,
    pub enable_tag_override: bool,
    pub proxy: Option<ProxyBody>,
    pub connect: Option<ConnectBody>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddressBody {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightsBody {
    pub passing: i64,
    pub warning: i64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectBody {
    pub native: bool,
    /// Only meaningful to the agent API, which expands it into a second service.
    pub sidecar_service: Option<Box<Value>>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProxyBody {
    pub destination_service_name: String,
    #[serde(rename = "DestinationServiceID")]
    pub destination_service_id: String,
    pub local_service_address: String,
    pub local_service_port: u16,
    pub local_service_socket_path: String,
    pub mode: String,
    pub config: Option<Value>,
    pub upstreams: Vec<UpstreamBody>,
    pub mesh_gateway: Option<ModeBody>,
    pub expose: Option<Value>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModeBody {
    pub mode: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpstreamBody {
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
    pub config: Option<Value>,
    pub mesh_gateway: Option<ModeBody>,
    pub centrally_configured: bool,
}

/// A `HealthCheck` in a catalog request.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckBody {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "Type")]
    pub check_type: String,
    pub interval: Option<Value>,
    pub timeout: Option<Value>,
    pub exposed_port: u16,
    pub definition: Option<Value>,
}

impl ServiceBody {
    /// The instance as the catalog stores it; `Weights` default to `{1, 1}`.
    pub fn into_service(self) -> Result<Service, String> {
        let weights = match self.weights {
            None => crate::model::Weights::default(),
            Some(w) => validate_weights(w)?,
        };
        Ok(Service {
            kind: self.kind,
            id: if self.id.is_empty() {
                self.service.clone()
            } else {
                self.id
            },
            service: self.service,
            tags: self.tags.unwrap_or_default(),
            address: self.address,
            tagged_addresses: self
                .tagged_addresses
                .into_iter()
                .map(|(k, a)| {
                    (
                        k,
                        ServiceAddress {
                            address: a.address,
                            port: a.port,
                        },
                    )
                })
                .collect(),
            meta: self.meta,
            port: self.port,
            socket_path: self.socket_path,
            weights,
            enable_tag_override: self.enable_tag_override,
            proxy: self.proxy.map(ProxyBody::into_proxy),
            connect_native: self.connect.is_some_and(|c| c.native),
            create_index: 0,
            modify_index: 0,
        })
    }
}

/// Consul's weight rules: Passing in 1..=65535, Warning in 0..=65535.
pub fn validate_weights(w: WeightsBody) -> Result<crate::model::Weights, String> {
    if !(1..=65535).contains(&w.passing) {
        return Err(format!(
            "Passing must be greater than 0 and less than 65536, got {}",
            w.passing
        ));
    }
    if !(0..=65535).contains(&w.warning) {
        return Err(format!(
            "Warning must be greater or equal than 0 and less than 65536, got {}",
            w.warning
        ));
    }
    Ok(crate::model::Weights {
        passing: w.passing as u32,
        warning: w.warning as u32,
    })
}

impl ProxyBody {
    pub fn into_proxy(self) -> Proxy {
        Proxy {
            destination_service_name: self.destination_service_name,
            destination_service_id: self.destination_service_id,
            local_service_address: self.local_service_address,
            local_service_port: self.local_service_port,
            local_service_socket_path: self.local_service_socket_path,
            mode: self.mode,
            config: opaque_text(&self.config),
            upstreams: self
                .upstreams
                .into_iter()
                .map(|u| Upstream {
                    destination_type: u.destination_type,
                    destination_namespace: u.destination_namespace,
                    destination_partition: u.destination_partition,
                    destination_peer: u.destination_peer,
                    destination_name: u.destination_name,
                    datacenter: u.datacenter,
                    local_bind_address: u.local_bind_address,
                    local_bind_port: u.local_bind_port,
                    local_bind_socket_path: u.local_bind_socket_path,
                    local_bind_socket_mode: u.local_bind_socket_mode,
                    config: opaque_text(&u.config),
                    mesh_gateway_mode: u.mesh_gateway.map(|m| m.mode).unwrap_or_default(),
                    centrally_configured: u.centrally_configured,
                })
                .collect(),
            mesh_gateway_mode: self.mesh_gateway.map(|m| m.mode).unwrap_or_default(),
            expose: opaque_text(&self.expose),
        }
    }
}

impl RegisterBody {
    /// The registration as the catalog applies it, with Consul's defaults: the agent's
    /// datacenter, service ID from its name, check ID from its name, status critical.
    pub fn into_registration(self, default_dc: &str) -> Result<crate::Registration, RegisterError> {
        let node = Node {
            id: self.id,
            name: self.node,
            address: self.address,
            datacenter: if self.datacenter.is_empty() {
                default_dc.to_owned()
            } else {
                self.datacenter
            },
            tagged_addresses: self.tagged_addresses,
            meta: self.node_meta,
            create_index: 0,
            modify_index: 0,
        };
        let service = self
            .service
            .map(ServiceBody::into_service)
            .transpose()
            .map_err(RegisterError::BadRequest)?;
        if let Some(service) = &service {
            crate::validate_meta(&service.meta).map_err(|why| {
                RegisterError::Catalog(crate::CatalogError::InvalidServiceMeta(why))
            })?;
        }
        let checks = self
            .check
            .into_iter()
            .chain(self.checks)
            .map(|c| c.into_check(&node.name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::Registration {
            node,
            skip_node_update: self.skip_node_update,
            service,
            checks,
        })
    }
}

/// Why a catalog request body cannot become a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A 400.
    #[error("{0}")]
    BadRequest(String),
    /// Refused the way the server refuses it (a 500 in Consul).
    #[error(transparent)]
    Catalog(#[from] crate::CatalogError),
}

/// `PUT /v1/catalog/deregister`'s body: a node, or one of its services or checks.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeregisterBody {
    pub node: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
}

impl DeregisterBody {
    /// The write it asks for; `None` when it names no node (Consul's 500 `Must provide node`).
    pub fn into_op(self) -> Option<crate::CatalogOp> {
        if self.node.is_empty() {
            return None;
        }
        Some(crate::CatalogOp::Deregister {
            node: self.node,
            service_id: Some(self.service_id).filter(|s| !s.is_empty()),
            check_id: Some(self.check_id).filter(|s| !s.is_empty()),
        })
    }
}

impl CheckBody {
    pub fn into_check(self, node: &str) -> Result<HealthCheck, RegisterError> {
        let status = if self.status.is_empty() {
            crate::Status::Critical
        } else {
            crate::Status::parse(&self.status)
                .ok_or(crate::CatalogError::BadCheckStatus(self.status.clone()))?
        };
        let check_id = if self.check_id.is_empty() {
            self.name.clone()
        } else {
            self.check_id
        };
        let mut check = HealthCheck::new(node, &check_id, &self.name, status);
        check.notes = self.notes;
        check.output = self.output;
        check.service_id = self.service_id;
        check.check_type = self.check_type;
        check.interval = duration_text(self.interval.as_ref());
        check.timeout = duration_text(self.timeout.as_ref());
        check.exposed_port = self.exposed_port;
        check.definition = opaque_text(&self.definition);
        Ok(check)
    }
}

/// A duration field as Consul prints it: strings as given, integers (nanoseconds) as text.
fn duration_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_case_and_snake_but_keeps_user_keys() {
        let raw = json!({
            "service_id": "a",
            "checkid": "b",
            "Meta": {"service_id": "kept", "Env": "x"},
            "tagged_addresses": {"lan": {"address": "1.2.3.4", "port": 1}},
            "proxy": {"config": {"local_connect_timeout_ms": 5}, "upstreams": [{"destination_name": "db"}]},
            "unknownField": 1,
        });
        let got = normalize_keys(raw);
        assert_eq!(
            got,
            json!({
                "ServiceID": "a",
                "CheckID": "b",
                "Meta": {"service_id": "kept", "Env": "x"},
                "TaggedAddresses": {"lan": {"Address": "1.2.3.4", "Port": 1}},
                "Proxy": {"Config": {"local_connect_timeout_ms": 5}, "Upstreams": [{"DestinationName": "db"}]},
                "unknownField": 1,
            })
        );
    }

    #[test]
    fn empty_proxy_and_connect_look_like_consul() {
        let s = Service {
            id: "web".into(),
            service: "web".into(),
            ..Service::default()
        };
        let v = node_service(&s);
        assert_eq!(
            v["Proxy"],
            json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
        );
        assert_eq!(v["Connect"], json!({}));
        assert!(v.get("Kind").is_none());
        assert_eq!(v["Tags"], json!([]));
    }
}
