//! What a sidecar is told by its agent, read from Consul's JSON: its own proxy registration
//! (`/v1/agent/service/:id`), the instances of an upstream (`/v1/health/connect/:service`), the
//! CA roots and the leaf. Pure: values in, values out, no IO.
//!
//! A listener's protocol is the one its registration states (`Proxy.Config.protocol` for the
//! public listener, the upstream's `Config.protocol` for an upstream) and otherwise comes from
//! the datacenter's config entries ([`Central`]): the service's `service-defaults` `Protocol`,
//! else `proxy-defaults` `global`'s `Config.protocol`, else `tcp`. Local registration wins, as
//! when Consul's agents merge central configuration into a proxy's registration.
//!
//! Addresses follow Consul's built-in proxy with one difference, kept because several agents
//! often share one host in tests and small deployments: the public listener binds to
//! `Proxy.Config.bind_address` if set, else to the proxy service's `Address`, and only then to
//! `0.0.0.0` (Consul's proxy always defaults to `0.0.0.0`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proxy::{Endpoint, Protocol};
use serde_json::Value;

/// Why the agent's answer cannot configure a sidecar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("service {0:?} is not a connect proxy (its Kind is {1:?})")]
    NotAProxy(String, String),
    #[error("the proxy registration has no {0}")]
    Missing(&'static str),
    #[error("{what} {value:?} is not an IP address")]
    BadAddress { what: &'static str, value: String },
    #[error("{what} {value} is not a port")]
    BadPort { what: &'static str, value: i64 },
    #[error("unknown protocol {0:?} (expected tcp, http, http2 or grpc)")]
    Protocol(String),
    #[error("upstream {0:?} has no LocalBindPort")]
    UpstreamPort(String),
    #[error("upstreams {0:?} and {1:?} both bind {2}")]
    DuplicateBind(String, String, SocketAddr),
    #[error("no connect proxy is registered on this agent for service {0:?}")]
    NoSidecar(String),
    #[error(
        "several connect proxies are registered for service {0:?} ({1}); name one with -proxy-id"
    )]
    ManySidecars(String, String),
    #[error("-upstream {0:?}: expected NAME:PORT")]
    AdHocUpstream(String),
    #[error("-listen needs -service-addr: where the application listens")]
    AdHocApp,
    #[error("the agent's answer is not what a Consul agent sends: {0}")]
    Shape(String),
}

/// Everything one sidecar serves, as its registration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy's own service ID (empty in ad-hoc mode, where nothing is registered).
    pub proxy_id: String,
    /// The service whose identity the sidecar carries (`Proxy.DestinationServiceName`).
    pub service: String,
    /// The public mTLS listener and where it forwards; `None` when the sidecar only serves
    /// upstreams (ad-hoc mode without `-listen`).
    pub inbound: Option<InboundSpec>,
    pub upstreams: Vec<UpstreamSpec>,
    /// Where to serve Prometheus metrics (`Proxy.Config.prometheus_bind_addr`, or Envoy's
    /// `envoy_prometheus_bind_addr`), unless a flag says otherwise.
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSpec {
    pub bind: SocketAddr,
    pub app: SocketAddr,
    /// As registered; `None` leaves it to the config entries.
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The upstream service (`DestinationName`).
    pub destination: String,
    /// Its datacenter; empty for the agent's own.
    pub datacenter: String,
    /// The local listener the application connects to.
    pub bind: SocketAddr,
    /// As registered; `None` leaves it to the config entries.
    pub protocol: Option<Protocol>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn ip(what: &'static str, text: &str, default: IpAddr) -> Result<IpAddr, ConfigError> {
    if text.is_empty() {
        return Ok(default);
    }
    text.parse().map_err(|_| ConfigError::BadAddress {
        what,
        value: text.to_owned(),
    })
}

fn port(what: &'static str, v: Option<&Value>) -> Result<Option<u16>, ConfigError> {
    match v.and_then(Value::as_i64) {
        None | Some(0) => Ok(None),
        Some(n) => u16::try_from(n)
            .map(Some)
            .map_err(|_| ConfigError::BadPort { what, value: n }),
    }
}

/// A protocol as configured: `None` when empty.
fn protocol(text: &str) -> Result<Option<Protocol>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    Protocol::parse(text)
        .map(Some)
        .ok_or_else(|| ConfigError::Protocol(text.to_owned()))
}

/// `host:port` (or a bare port) from proxy `Config` values such as `prometheus_bind_addr`.
pub fn socket_addr(what: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    Err(ConfigError::BadAddress {
        what,
        value: text.to_owned(),
    })
}

/// Reads a proxy registration (`/v1/agent/service/:id` of a `connect-proxy` service).
pub fn proxy_config(service: &Value) -> Result<ProxyConfig, ConfigError> {
    let id = str_field(service, "ID");
    let kind = str_field(service, "Kind");
    if kind != "connect-proxy" {
        return Err(ConfigError::NotAProxy(id.to_owned(), kind.to_owned()));
    }
    let proxy = service.get("Proxy").ok_or(ConfigError::Missing("Proxy"))?;
    let destination = str_field(proxy, "DestinationServiceName");
    if destination.is_empty() {
        return Err(ConfigError::Missing("Proxy.DestinationServiceName"));
    }
    let config = proxy.get("Config").unwrap_or(&Value::Null);
    let service_protocol = protocol(str_field(config, "protocol"))?;

    let bind_ip = match str_field(config, "bind_address") {
        "" => ip(
            "Address",
            str_field(service, "Address"),
            Ipv4Addr::UNSPECIFIED.into(),
        )?,
        text => ip(
            "Proxy.Config.bind_address",
            text,
            Ipv4Addr::UNSPECIFIED.into(),
        )?,
    };
    let bind_port = match port("Proxy.Config.bind_port", config.get("bind_port"))? {
        Some(p) => p,
        None => port("Port", service.get("Port"))?.ok_or(ConfigError::Missing("Port"))?,
    };
    let app_ip = ip(
        "Proxy.LocalServiceAddress",
        str_field(proxy, "LocalServiceAddress"),
        Ipv4Addr::LOCALHOST.into(),
    )?;
    let app_port = port("Proxy.LocalServicePort", proxy.get("LocalServicePort"))?
        .ok_or(ConfigError::Missing("Proxy.LocalServicePort"))?;

    let mut upstreams: Vec<UpstreamSpec> = Vec::new();
    for upstream in proxy
        .get("Upstreams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let destination = str_field(upstream, "DestinationName").to_owned();
        let bind_ip = ip(
            "LocalBindAddress",
            str_field(upstream, "LocalBindAddress"),
            Ipv4Addr::LOCALHOST.into(),
        )?;
        let bind_port = port("LocalBindPort", upstream.get("LocalBindPort"))?
            .ok_or_else(|| ConfigError::UpstreamPort(destination.clone()))?;
        let upstream_config = upstream.get("Config").unwrap_or(&Value::Null);
        let protocol = protocol(str_field(upstream_config, "protocol"))?;
        let spec = UpstreamSpec {
            destination,
            datacenter: str_field(upstream, "Datacenter").to_owned(),
            bind: SocketAddr::new(bind_ip, bind_port),
            protocol,
        };
        if let Some(other) = upstreams.iter().find(|u| u.bind == spec.bind) {
            return Err(ConfigError::DuplicateBind(
                other.destination.clone(),
                spec.destination,
                spec.bind,
            ));
        }
        upstreams.push(spec);
    }

    let metrics_addr = match (
        str_field(config, "prometheus_bind_addr"),
        str_field(config, "envoy_prometheus_bind_addr"),
    ) {
        ("", "") => None,
        ("", text) | (text, _) => Some(socket_addr("prometheus_bind_addr", text)?),
    };

    Ok(ProxyConfig {
        proxy_id: id.to_owned(),
        service: destination.to_owned(),
        inbound: Some(InboundSpec {
            bind: SocketAddr::new(bind_ip, bind_port),
            app: SocketAddr::new(app_ip, app_port),
            protocol: service_protocol,
        }),
        upstreams,
        metrics_addr,
    })
}

/// The configuration of an ad-hoc proxy (`-service NAME [-listen ADDR -service-addr ADDR]
/// [-upstream NAME:PORT]...`), where nothing is registered: each upstream listens on
/// 127.0.0.1:PORT, and the public listener exists only with `-listen`.
pub fn ad_hoc(
    service: &str,
    listen: Option<SocketAddr>,
    service_addr: Option<SocketAddr>,
    upstreams: &[String],
    protocol: Option<Protocol>,
) -> Result<ProxyConfig, ConfigError> {
    let inbound = match (listen, service_addr) {
        (Some(bind), Some(app)) => Some(InboundSpec {
            bind,
            app,
            protocol,
        }),
        (Some(_), None) => return Err(ConfigError::AdHocApp),
        (None, _) => None,
    };
    let mut specs: Vec<UpstreamSpec> = Vec::new();
    for text in upstreams {
        let bad = || ConfigError::AdHocUpstream(text.clone());
        let (name, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if name.is_empty() || port == 0 {
            return Err(bad());
        }
        let bind = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        if let Some(other) = specs.iter().find(|u| u.bind == bind) {
            return Err(ConfigError::DuplicateBind(
                other.destination.clone(),
                name.to_owned(),
                bind,
            ));
        }
        specs.push(UpstreamSpec {
            destination: name.to_owned(),
            datacenter: String::new(),
            bind,
            protocol,
        });
    }
    Ok(ProxyConfig {
        proxy_id: String::new(),
        service: service.to_owned(),
        inbound,
        upstreams: specs,
        metrics_addr: None,
    })
}

/// The ID of the one connect proxy registered for `service_id` in an agent's
/// `/v1/agent/services` answer, as `consul connect proxy -sidecar-for` finds it.
pub fn sidecar_for(services: &Value, service_id: &str) -> Result<String, ConfigError> {
    let services = services
        .as_object()
        .ok_or_else(|| ConfigError::Shape("/v1/agent/services is not an object".into()))?;
    let mut found: Vec<&str> = services
        .values()
        .filter(|s| str_field(s, "Kind") == "connect-proxy")
        .filter(|s| {
            s.get("Proxy")
                .is_some_and(|p| str_field(p, "DestinationServiceID") == service_id)
        })
        .map(|s| str_field(s, "ID"))
        .collect();
    found.sort_unstable();
    match found.as_slice() {
        [] => Err(ConfigError::NoSidecar(service_id.to_owned())),
        [one] => Ok((*one).to_owned()),
        many => Err(ConfigError::ManySidecars(
            service_id.to_owned(),
            many.join(", "),
        )),
    }
}

/// The instances in a `/v1/health/connect/:service` answer: each proxy's (or Connect-native
/// service's) address, with the identity it must prove and its datacenter.
pub fn instances(entries: &Value) -> Result<Vec<Endpoint>, ConfigError> {
    let entries = entries
        .as_array()
        .ok_or_else(|| ConfigError::Shape("the health answer is not a list".into()))?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let node = entry.get("Node").unwrap_or(&Value::Null);
        let service = entry.get("Service").unwrap_or(&Value::Null);
        let address = match str_field(service, "Address") {
            "" => str_field(node, "Address"),
            a => a,
        };
        let Ok(ip) = address.parse::<IpAddr>() else {
            // A node registered with a host name: the data plane dials addresses only.
            tracing::debug!(address, "skipping an instance without an IP address");
            continue;
        };
        let Some(port) = port("Service.Port", service.get("Port"))? else {
            continue;
        };
        let identity = match service
            .get("Proxy")
            .map(|p| str_field(p, "DestinationServiceName"))
        {
            Some(name) if !name.is_empty() => name,
            _ => str_field(service, "Service"),
        };
        out.push(Endpoint::new(
            SocketAddr::new(ip, port),
            identity,
            str_field(node, "Datacenter"),
        ));
    }
    Ok(out)
}

/// The protocols the datacenter's config entries give services: `service-defaults` entries'
/// `Protocol`, and `proxy-defaults` `global`'s `Config.protocol` for the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Central {
    services: std::collections::BTreeMap<String, Protocol>,
    default: Option<Protocol>,
}

impl Central {
    /// Replaces the services' protocols from a `/v1/config/service-defaults` answer. Entries
    /// with an unknown protocol are skipped (and logged): the servers validate what they
    /// store, so one can only come from a newer server.
    pub fn set_service_defaults(&mut self, entries: &Value) -> Result<(), ConfigError> {
        let entries = entries
            .as_array()
            .ok_or_else(|| ConfigError::Shape("the config entries are not a list".into()))?;
        self.services.clear();
        for entry in entries {
            let name = str_field(entry, "Name");
            match protocol(str_field(entry, "Protocol")) {
                Ok(Some(p)) => {
                    self.services.insert(name.to_owned(), p);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = name, error = %e, "ignoring a service-defaults protocol")
                }
            }
        }
        Ok(())
    }

    /// Sets the default protocol from a `/v1/config/proxy-defaults` answer.
    pub fn set_proxy_defaults(&mut self, entries: &Value) -> Result<(), ConfigError> {
        let entries = entries
            .as_array()
            .ok_or_else(|| ConfigError::Shape("the config entries are not a list".into()))?;
        let global = entries.iter().find(|e| str_field(e, "Name") == "global");
        let text = global
            .and_then(|e| e.get("Config"))
            .map(|c| str_field(c, "protocol"))
            .unwrap_or_default();
        self.default = protocol(text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the proxy-defaults protocol");
            None
        });
        Ok(())
    }

    /// The protocol of a listener for `service`, registered as `registered`.
    pub fn protocol(&self, service: &str, registered: Option<Protocol>) -> Protocol {
        registered
            .or_else(|| self.services.get(service).copied())
            .or(self.default)
            .unwrap_or(Protocol::Tcp)
    }
}

/// The trust domain and root PEMs of a `/v1/agent/connect/ca/roots` answer.
pub fn roots(body: &Value) -> Result<(String, Vec<String>), ConfigError> {
    let trust_domain = str_field(body, "TrustDomain");
    if trust_domain.is_empty() {
        return Err(ConfigError::Shape("the roots have no TrustDomain".into()));
    }
    let pems = body
        .get("Roots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| str_field(r, "RootCert").to_owned())
        .filter(|pem| !pem.is_empty())
        .collect();
    Ok((trust_domain.to_owned(), pems))
}

/// `CertPEM` and `PrivateKeyPEM` of a `/v1/agent/connect/ca/leaf/:service` answer.
pub fn leaf(body: &Value) -> Result<(&str, &str), ConfigError> {
    match (str_field(body, "CertPEM"), str_field(body, "PrivateKeyPEM")) {
        ("", _) => Err(ConfigError::Shape("the leaf has no CertPEM".into())),
        (_, "") => Err(ConfigError::Shape("the leaf has no PrivateKeyPEM".into())),
        pair => Ok(pair),
    }
}

#[cfg(test)]
mod tests;
