//! Service and check definitions as users write them (agent API bodies and config files),
//! validated with Consul's error texts and turned into catalog records.

use std::collections::BTreeMap;
use std::time::Duration;

use catalog::wire::{self as cw, ProxyBody, WeightsBody};
use catalog::{validate_meta, HealthCheck, Service, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Checks run no more often than this (Consul's `checks.MinInterval`).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Consul's default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Consul's default cap on captured check output.
pub const DEFAULT_OUTPUT_MAX: usize = 4096;
/// `DeregisterCriticalServiceAfter` below this is raised to it.
pub const MIN_DEREGISTER_AFTER: Duration = Duration::from_secs(60);
/// Ports handed to sidecars registered without one (Consul's defaults).
pub const SIDECAR_PORTS: std::ops::RangeInclusive<u16> = 21000..=21255;

/// A definition refused; the text is what Consul answers with a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(text: impl Into<String>) -> Invalid {
    Invalid(text.into())
}

// ---- checks ------------------------------------------------------------------------------

/// A check as written by a user.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckBody {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub notes: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub status: String,
    pub token: String,
    pub interval: Option<Value>,
    pub timeout: Option<Value>,
    #[serde(rename = "TTL")]
    pub ttl: Option<Value>,
    #[serde(rename = "HTTP")]
    pub http: String,
    pub method: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub body: String,
    pub disable_redirects: bool,
    #[serde(rename = "TLSServerName")]
    pub tls_server_name: String,
    #[serde(rename = "TLSSkipVerify")]
    pub tls_skip_verify: bool,
    #[serde(rename = "TCP")]
    pub tcp: String,
    #[serde(rename = "UDP")]
    pub udp: String,
    #[serde(rename = "GRPC")]
    pub grpc: String,
    #[serde(rename = "GRPCUseTLS")]
    pub grpc_use_tls: bool,
    #[serde(rename = "H2PING")]
    pub h2ping: String,
    #[serde(rename = "H2PingUseTLS")]
    pub h2ping_use_tls: Option<bool>,
    pub args: Vec<String>,
    pub script_args: Vec<String>,
    #[serde(rename = "DockerContainerID")]
    pub docker_container_id: String,
    pub shell: String,
    pub alias_node: String,
    pub alias_service: String,
    #[serde(rename = "OSService")]
    pub os_service: String,
    pub deregister_critical_service_after: Option<Value>,
    pub success_before_passing: u32,
    pub failures_before_warning: Option<u32>,
    pub failures_before_critical: u32,
    pub output_max_size: i64,
}

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Ttl(Duration),
    Http {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        body: String,
        disable_redirects: bool,
        tls_server_name: String,
        tls_skip_verify: bool,
    },
    Tcp(String),
    Udp(String),
    Grpc {
        target: String,
        use_tls: bool,
        tls_server_name: String,
        tls_skip_verify: bool,
    },
    H2Ping {
        addr: String,
        use_tls: bool,
        tls_server_name: String,
        tls_skip_verify: bool,
    },
    Script {
        args: Vec<String>,
    },
    Alias {
        node: String,
        service: String,
    },
}

impl CheckKind {
    /// Consul's `Type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Ttl(_) => "ttl",
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp(_) => "tcp",
            CheckKind::Udp(_) => "udp",
            CheckKind::Grpc { .. } => "grpc",
            CheckKind::H2Ping { .. } => "h2ping",
            CheckKind::Script { .. } => "script",
            CheckKind::Alias { .. } => "alias",
        }
    }
}

/// A validated check definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDefinition {
    pub id: String,
    pub name: String,
    pub notes: String,
    pub service_id: String,
    pub status: Status,
    pub kind: CheckKind,
    /// Zero for TTL and alias checks.
    pub interval: Duration,
    pub timeout: Duration,
    pub deregister_after: Option<Duration>,
    pub success_before_passing: u32,
    pub failures_before_warning: u32,
    pub failures_before_critical: u32,
    pub output_max: usize,
    /// The `Definition` object the catalog shows.
    pub definition: Value,
}

/// Reads a duration field: a Go duration string, or integer nanoseconds.
fn duration(field: &str, v: &Option<Value>) -> Result<Duration, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(Value::String(s)) if s.is_empty() => Ok(Duration::ZERO),
        Some(Value::String(s)) => config::parse_go_duration(s)
            .map_err(|e| invalid(format!("Request decode failed: {field}: {e}"))),
        Some(Value::Number(n)) => Ok(n
            .as_u64()
            .map(Duration::from_nanos)
            .unwrap_or(Duration::ZERO)),
        Some(other) => Err(invalid(format!(
            "Request decode failed: {field}: invalid duration {other}"
        ))),
    }
}

impl CheckBody {
    /// The definition as JSON (Go's field names), for persisting it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Validates the check. `default_id`/`default_name` apply to checks embedded in a
    /// service definition.
    pub fn validate(
        self,
        default_id: &str,
        default_name: &str,
    ) -> Result<CheckDefinition, Invalid> {
        let interval = duration("Interval", &self.interval)?;
        let timeout = duration("Timeout", &self.timeout)?;
        let ttl = duration("TTL", &self.ttl)?;
        let deregister = duration(
            "DeregisterCriticalServiceAfter",
            &self.deregister_critical_service_after,
        )?;
        let status = match self.status.as_str() {
            "" => Status::Critical,
            s => Status::parse(s).ok_or_else(|| {
                invalid("Status for checks must 'passing', 'warning', 'critical'")
            })?,
        };
        let args = if self.script_args.is_empty() {
            self.args.clone()
        } else {
            self.script_args.clone()
        };
        if !self.docker_container_id.is_empty() || !self.os_service.is_empty() {
            return Err(invalid(
                "Invalid check: Docker and OSService checks are not supported by mesh agents",
            ));
        }
        let interval_check = !args.is_empty()
            || !self.http.is_empty()
            || !self.tcp.is_empty()
            || !self.udp.is_empty()
            || !self.grpc.is_empty()
            || !self.h2ping.is_empty();
        let alias = !self.alias_node.is_empty() || !self.alias_service.is_empty();
        let failures_before_warning = self
            .failures_before_warning
            .unwrap_or(self.failures_before_critical);
        let rule = if !interval.is_zero() && !ttl.is_zero() {
            Some("Interval and TTL cannot both be specified")
        } else if interval_check && interval.is_zero() {
            Some("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks")
        } else if interval_check && alias {
            Some("Interval cannot be set for Alias checks")
        } else if alias && !ttl.is_zero() {
            Some("TTL must be not be set for Alias checks")
        } else if !interval_check && !alias && ttl.is_zero() {
            Some("TTL must be > 0 for TTL checks")
        } else if self.output_max_size < 0 {
            Some("MaxOutputMaxSize must be positive")
        } else if failures_before_warning > self.failures_before_critical {
            Some("FailuresBeforeWarning can't be higher than FailuresBeforeCritical")
        } else {
            None
        };
        if let Some(rule) = rule {
            return Err(invalid(format!("Invalid check: {rule}")));
        }
        let kind = if !args.is_empty() {
            CheckKind::Script { args }
        } else if !self.http.is_empty() {
            CheckKind::Http {
                url: self.http.clone(),
                method: if self.method.is_empty() {
                    "GET".into()
                } else {
                    self.method.clone()
                },
                headers: self
                    .header
                    .iter()
                    .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
                    .collect(),
                body: self.body.clone(),
                disable_redirects: self.disable_redirects,
                tls_server_name: self.tls_server_name.clone(),
                tls_skip_verify: self.tls_skip_verify,
            }
        } else if !self.tcp.is_empty() {
            CheckKind::Tcp(self.tcp.clone())
        } else if !self.udp.is_empty() {
            CheckKind::Udp(self.udp.clone())
        } else if !self.grpc.is_empty() {
            CheckKind::Grpc {
                target: self.grpc.clone(),
                use_tls: self.grpc_use_tls,
                tls_server_name: self.tls_server_name.clone(),
                tls_skip_verify: self.tls_skip_verify,
            }
        } else if !self.h2ping.is_empty() {
            CheckKind::H2Ping {
                addr: self.h2ping.clone(),
                use_tls: self.h2ping_use_tls.unwrap_or(true),
                tls_server_name: self.tls_server_name.clone(),
                tls_skip_verify: self.tls_skip_verify,
            }
        } else if alias {
            CheckKind::Alias {
                node: self.alias_node.clone(),
                service: self.alias_service.clone(),
            }
        } else {
            CheckKind::Ttl(ttl)
        };
        let is_script = matches!(kind, CheckKind::Script { .. });
        let timeout = match timeout {
            t if !t.is_zero() => t,
            _ if is_script => Duration::from_secs(30),
            _ => DEFAULT_TIMEOUT,
        };
        let interval = if interval_check {
            interval.max(MIN_INTERVAL)
        } else {
            Duration::ZERO
        };
        let id = [&self.check_id, &self.id, &default_id.to_owned(), &self.name]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_default();
        let name = if self.name.is_empty() {
            default_name.to_owned()
        } else {
            self.name.clone()
        };
        if name.is_empty() {
            return Err(invalid("Missing check name"));
        }
        let definition = self.definition_json(interval, timeout, ttl, deregister);
        Ok(CheckDefinition {
            id,
            name,
            notes: self.notes,
            service_id: self.service_id,
            status,
            kind,
            interval,
            timeout,
            deregister_after: (!deregister.is_zero()).then(|| deregister.max(MIN_DEREGISTER_AFTER)),
            success_before_passing: self.success_before_passing,
            failures_before_warning,
            failures_before_critical: self.failures_before_critical,
            output_max: match self.output_max_size {
                0 => DEFAULT_OUTPUT_MAX,
                n => n as usize,
            },
            definition,
        })
    }

    /// The catalog's `Definition` object: the fields that were set, durations as strings.
    fn definition_json(
        &self,
        interval: Duration,
        timeout: Duration,
        ttl: Duration,
        deregister: Duration,
    ) -> Value {
        let mut out = Map::new();
        let mut put = |key: &str, v: Value| {
            let empty = matches!(&v, Value::String(s) if s.is_empty())
                || matches!(&v, Value::Bool(false))
                || v.is_null();
            if !empty {
                out.insert(key.into(), v);
            }
        };
        put("HTTP", json!(self.http));
        put("TLSServerName", json!(self.tls_server_name));
        put("TLSSkipVerify", json!(self.tls_skip_verify));
        if !self.header.is_empty() {
            put("Header", json!(self.header));
        }
        put("Method", json!(self.method));
        put("Body", json!(self.body));
        put("DisableRedirects", json!(self.disable_redirects));
        put("TCP", json!(self.tcp));
        put("UDP", json!(self.udp));
        put("H2PING", json!(self.h2ping));
        put("GRPC", json!(self.grpc));
        put("GRPCUseTLS", json!(self.grpc_use_tls));
        put("AliasNode", json!(self.alias_node));
        put("AliasService", json!(self.alias_service));
        let show = |d: Duration| {
            if d.is_zero() {
                String::new()
            } else {
                config::format_go_duration(d)
            }
        };
        if !interval.is_zero() {
            put("Interval", json!(show(interval)));
            put("Timeout", json!(show(timeout)));
        }
        put("TTL", json!(show(ttl)));
        put("DeregisterCriticalServiceAfter", json!(show(deregister)));
        let args = if self.script_args.is_empty() {
            &self.args
        } else {
            &self.script_args
        };
        if !args.is_empty() {
            put("ScriptArgs", json!(args));
        }
        Value::Object(out)
    }
}

impl CheckDefinition {
    /// The check's catalog record, before its status is first set by a run.
    pub fn health_check(&self, node: &str, service: Option<&Service>) -> HealthCheck {
        let mut check = HealthCheck::new(node, &self.id, &self.name, self.status);
        check.notes = self.notes.clone();
        check.check_type = self.kind.type_name().to_owned();
        if !self.interval.is_zero() {
            check.interval = config::format_go_duration(self.interval);
            check.timeout = config::format_go_duration(self.timeout);
        }
        check.definition = self.definition.to_string();
        if let Some(service) = service {
            check.service_id = service.id.clone();
            check.service_name = service.service.clone();
            check.service_tags = service.tags.clone();
        }
        check
    }
}

// ---- services ----------------------------------------------------------------------------

/// A service as written by a user (agent API body, config file).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceBody {
    pub kind: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub tags: Option<Vec<String>>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, cw::AddressBody>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub socket_path: String,
    pub weights: Option<WeightsBody>,
    pub enable_tag_override: bool,
    pub proxy: Option<ProxyBody>,
    pub connect: Option<ConnectBody>,
    pub check: Option<CheckBody>,
    pub checks: Vec<CheckBody>,
    pub token: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectBody {
    pub native: bool,
    pub sidecar_service: Option<Box<ServiceBody>>,
}

/// A validated service with its checks, and the sidecar it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefinition {
    pub service: Service,
    pub checks: Vec<CheckDefinition>,
    pub sidecar: Option<Box<ServiceDefinition>>,
}

impl ServiceBody {
    /// The definition as JSON (Go's field names), for persisting it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Validates the definition and expands its embedded checks and `sidecar_service`.
    /// `taken_port` says whether a sidecar port is already used by another local sidecar.
    pub fn validate(self, taken_port: &dyn Fn(u16) -> bool) -> Result<ServiceDefinition, Invalid> {
        if self.name.is_empty() {
            return Err(invalid("Missing service name"));
        }
        if self
            .address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
        {
            return Err(invalid("Invalid service address"));
        }
        let weights = match self.weights {
            None => catalog::Weights::default(),
            Some(w) => {
                cw::validate_weights(w).map_err(|e| invalid(format!("Invalid Weights: {e}")))?
            }
        };
        validate_meta(&self.meta).map_err(|e| invalid(format!("Invalid Service Meta: {e}")))?;
        let proxy = self.proxy.map(ProxyBody::into_proxy);
        if self.kind == "connect-proxy" {
            if proxy
                .as_ref()
                .is_none_or(|p| p.destination_service_name.is_empty())
            {
                return Err(invalid("Validation failed: Proxy.DestinationServiceName must be non-empty for Connect proxy services"));
            }
            if self.port == 0 && self.socket_path.is_empty() {
                return Err(invalid(
                    "Validation failed: Port or SocketPath must be set for a Connect proxy",
                ));
            }
        }
        let (native, sidecar_body) = match self.connect {
            Some(c) => (c.native, c.sidecar_service),
            None => (false, None),
        };
        let id = if self.id.is_empty() {
            self.name.clone()
        } else {
            self.id
        };
        let service = Service {
            kind: self.kind,
            id,
            service: self.name,
            tags: self.tags.unwrap_or_default(),
            address: self.address,
            tagged_addresses: self
                .tagged_addresses
                .into_iter()
                .map(|(k, a)| {
                    (
                        k,
                        catalog::ServiceAddress {
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
            proxy,
            connect_native: native,
            create_index: 0,
            modify_index: 0,
        };
        let bodies: Vec<CheckBody> = self.check.into_iter().chain(self.checks).collect();
        let single = bodies.len() == 1;
        let default_name = format!("Service '{}' check", service.service);
        let checks = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                let default_id = if single {
                    format!("service:{}", service.id)
                } else {
                    format!("service:{}:{}", service.id, i + 1)
                };
                let mut check = body.validate(&default_id, &default_name)?;
                check.service_id = service.id.clone();
                Ok(check)
            })
            .collect::<Result<Vec<_>, Invalid>>()?;
        let sidecar = sidecar_body
            .map(|body| sidecar(&service, *body, taken_port))
            .transpose()?
            .map(Box::new);
        Ok(ServiceDefinition {
            service,
            checks,
            sidecar,
        })
    }
}

/// Expands `sidecar_service` with Consul's defaults: ID and name `<parent>-sidecar-proxy`,
/// kind `connect-proxy`, destination the parent, a port from 21000-21255, and (unless checks
/// are given) a TCP check on the listener plus an alias of the parent.
fn sidecar(
    parent: &Service,
    mut body: ServiceBody,
    taken_port: &dyn Fn(u16) -> bool,
) -> Result<ServiceDefinition, Invalid> {
    let wrap = |e: Invalid| invalid(format!("Invalid SidecarService: {}", e.0));
    if body
        .connect
        .as_ref()
        .is_some_and(|c| c.sidecar_service.is_some())
    {
        return Err(invalid(
            "Invalid SidecarService: SidecarService can't have a nested SidecarService",
        ));
    }
    if body.id.is_empty() {
        body.id = format!("{}-sidecar-proxy", parent.id);
    }
    if body.name.is_empty() {
        body.name = format!("{}-sidecar-proxy", parent.service);
    }
    body.kind = "connect-proxy".into();
    let mut proxy = body.proxy.take().unwrap_or_default();
    proxy.destination_service_name = parent.service.clone();
    proxy.destination_service_id = parent.id.clone();
    if proxy.local_service_address.is_empty() {
        proxy.local_service_address = "127.0.0.1".into();
    }
    if proxy.local_service_port == 0 {
        proxy.local_service_port = parent.port;
    }
    body.proxy = Some(proxy);
    if body.port == 0 {
        body.port = SIDECAR_PORTS
            .clone()
            .find(|p| !taken_port(*p))
            .ok_or_else(|| invalid("Invalid SidecarService: no free port in the sidecar range"))?;
    }
    if body.check.is_none() && body.checks.is_empty() {
        let address = if body.address.is_empty() {
            "127.0.0.1"
        } else {
            body.address.as_str()
        };
        body.checks = vec![
            CheckBody {
                name: "Connect Sidecar Listening".into(),
                tcp: format!("{address}:{}", body.port),
                interval: Some(json!("10s")),
                ..CheckBody::default()
            },
            CheckBody {
                name: format!("Connect Sidecar Aliasing {}", parent.id),
                alias_service: parent.id.clone(),
                ..CheckBody::default()
            },
        ];
    }
    body.validate(&|_| false).map_err(wrap)
}

/// Service and check definitions from config files (their JSON form, snake_case or Go's
/// spelling), read the way the agent API reads a body.
pub fn from_config(
    services: &[Value],
    checks: &[Value],
) -> Result<(Vec<ServiceBody>, Vec<CheckBody>), Invalid> {
    fn read<T: for<'de> Deserialize<'de>>(what: &str, i: usize, v: &Value) -> Result<T, Invalid> {
        serde_json::from_value(cw::normalize_keys(v.clone()))
            .map_err(|e| invalid(format!("{what} definition {}: {e}", i + 1)))
    }
    let services = services
        .iter()
        .enumerate()
        .map(|(i, v)| read("service", i, v))
        .collect::<Result<_, _>>()?;
    let checks = checks
        .iter()
        .enumerate()
        .map(|(i, v)| read("check", i, v))
        .collect::<Result<_, _>>()?;
    Ok((services, checks))
}

#[cfg(test)]
mod tests;
