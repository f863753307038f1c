//! Composing a running sidecar: read the proxy's registration, identity and intentions from the
//! agent, open the listeners the registration names, then follow every one of those resources
//! and apply each change as it comes, without restarting anything:
//!
//! - a new leaf or new roots go into the shared [`Identity`], used by the next handshake;
//! - new intentions go into the [`IntentionsAuthorizer`], used by the next connection or
//!   request;
//! - a new instance list of an upstream replaces its [`proxy::Endpoints`] at once;
//! - a changed registration, or a changed protocol in the config entries (`service-defaults`,
//!   `proxy-defaults`), opens, closes (draining) or reopens exactly the listeners that
//!   changed; the others and their connections are untouched.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use intentions::{wire::parse_intention, DefaultPolicy, Intention};
use proxy::drain::{self, Trigger};
use proxy::{
    Drained, Identity, Inbound, InboundConfig, LeafCert, Outbound, OutboundConfig, TrustedRoots,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::agent_api::{AgentApi, AgentError, Answer, Version};
use crate::authorize::IntentionsAuthorizer;
use crate::config::{self, Central, ConfigError, InboundSpec, ProxyConfig, UpstreamSpec};
use crate::follow::follow;
use crate::prometheus::{self, Stats};

/// Which proxy this sidecar is.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `-sidecar-for ID`: the one connect proxy registered for the service with this ID.
    SidecarFor(String),
    /// `-proxy-id ID`: the connect proxy registered with this ID.
    ProxyId(String),
    /// `-service NAME` with `-upstream`/`-listen` flags: nothing registered, the flags say it all.
    AdHoc(ProxyConfig),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub agent: AgentApi,
    pub mode: Mode,
    /// Overrides the registration's `prometheus_bind_addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// How long connections may run on after a shutdown or a listener's removal.
    pub drain_grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the agent's {what} cannot be used: {reason}")]
    Material { what: &'static str, reason: String },
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running sidecar. Dropping it stops following the agent; [`Sidecar::shutdown`] also drains.
pub struct Sidecar {
    shared: Arc<Shared>,
    followers: Vec<JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
}

struct Shared {
    agent: AgentApi,
    /// The service whose identity this sidecar carries.
    service: String,
    identity: Identity,
    authz: IntentionsAuthorizer,
    stats: Arc<Stats>,
    drain_grace: Duration,
    listeners: tokio::sync::Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    inbound: Option<Running<InboundSpec>>,
    upstreams: Vec<Running<UpstreamSpec>>,
}

/// What the listeners should be: the registration, and the config entries that complete it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desired {
    config: ProxyConfig,
    central: Central,
}

/// One open listener: what it was opened for, and how to stop it.
struct Running<S> {
    spec: S,
    /// The protocol it was opened with (the spec's, or the config entries').
    protocol: proxy::Protocol,
    trigger: Trigger,
    serving: JoinHandle<Drained>,
    /// The upstream's instance-list follower.
    follower: Option<JoinHandle<()>>,
}

impl<S> Running<S> {
    /// Stops accepting at once; established connections drain in the background.
    fn stop(self) -> JoinHandle<Drained> {
        if let Some(follower) = self.follower {
            follower.abort();
        }
        self.trigger.drain();
        self.serving
    }
}

impl Sidecar {
    /// Reads what the sidecar needs from the agent, opens its listeners and starts following
    /// the agent. Fails on what a user has to fix (no such proxy, an unusable registration, a
    /// port in use, an unreachable agent).
    pub async fn start(options: Options) -> Result<Sidecar, SidecarError> {
        let agent = options.agent;
        let (config, registration_version) = match options.mode {
            Mode::AdHoc(config) => (config, None),
            Mode::SidecarFor(service_id) => {
                let services = agent.get("/v1/agent/services").await?;
                let id = config::sidecar_for(&services.body, &service_id)?;
                read_registration(&agent, &id).await?
            }
            Mode::ProxyId(id) => read_registration(&agent, &id).await?,
        };
        let service = config.service.clone();
        info!(%service, proxy = %config.proxy_id, agent = %agent.base(), "starting");

        let default_policy = match agent.get("/v1/agent/self").await {
            Ok(answer) => default_policy(&answer.body),
            // A token with only its service's identity may not read the agent (`agent:read`):
            // without the agent's setting, the secure default.
            Err(err) if err.is_forbidden() => {
                tracing::warn!(%err, "the token may not read the agent's configuration; intentions deny by default");
                DefaultPolicy::Intention { allow: false }
            }
            Err(err) => return Err(err.into()),
        };
        let roots = agent.get("/v1/agent/connect/ca/roots").await?;
        let leaf = agent.get(&leaf_path(&service)).await?;
        let identity = Identity::new(parse_leaf(&leaf.body)?, parse_roots(&roots.body)?);
        info!(identity = %identity.id(), "identity loaded");

        let authz = IntentionsAuthorizer::new(&service);
        let intentions = agent.get(&intentions_path(&service)).await?;
        authz.update(
            parse_intentions(&intentions.body, &service)?,
            default_policy,
        );

        let central = read_central(&agent).await;

        let stats = Arc::new(Stats::new(&service, authz.clone()));
        let shared = Arc::new(Shared {
            agent: agent.clone(),
            service: service.clone(),
            identity,
            authz,
            stats,
            drain_grace: options.drain_grace,
            listeners: tokio::sync::Mutex::default(),
        });
        let desired = Desired {
            config: config.clone(),
            central: central.value,
        };
        shared.reconcile(&desired).await?;
        let (desired, changes) = tokio::sync::watch::channel(desired);

        let mut followers = vec![
            shared.follow_roots(roots.version),
            shared.follow_leaf(leaf.version),
            shared.follow_intentions(intentions.version, default_policy),
            shared.follow_central(&desired, "service-defaults", central.services),
            shared.follow_central(&desired, "proxy-defaults", central.proxies),
            shared.apply_changes(changes),
        ];
        if let Some(version) = registration_version {
            followers.push(shared.follow_registration(&desired, config.proxy_id.clone(), version));
        }
        let metrics_addr = match options.metrics_addr.or(config.metrics_addr) {
            Some(addr) => {
                let listener = bind("the metrics endpoint", addr).await?;
                let addr = listener.local_addr().unwrap_or(addr);
                info!(%addr, "serving Prometheus metrics on /metrics");
                followers.push(tokio::spawn(prometheus::serve(
                    listener,
                    shared.stats.clone(),
                )));
                Some(addr)
            }
            None => None,
        };
        Ok(Sidecar {
            shared,
            followers,
            metrics_addr,
        })
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The Prometheus exposition, as `/metrics` serves it.
    pub fn render_metrics(&self) -> String {
        self.shared.stats.render()
    }

    /// Stops following the agent and accepting connections, and waits for established
    /// connections to finish (at most the drain grace, after which they are cut).
    pub async fn shutdown(self) {
        for follower in &self.followers {
            follower.abort();
        }
        let mut listeners = self.shared.listeners.lock().await;
        let mut draining: Vec<JoinHandle<Drained>> = Vec::new();
        draining.extend(listeners.inbound.take().map(Running::stop));
        draining.extend(listeners.upstreams.drain(..).map(Running::stop));
        for serving in draining {
            if let Ok(drained) = serving.await {
                if drained.cut > 0 {
                    warn!(cut = drained.cut, "connections cut at shutdown");
                }
            }
        }
        info!(service = %self.shared.service, "stopped");
    }
}

impl fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sidecar")
            .field("service", &self.shared.service)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        for follower in &self.followers {
            follower.abort();
        }
    }
}

impl Shared {
    /// Makes the open listeners match `desired`: the ones whose spec and protocol are
    /// unchanged keep running.
    async fn reconcile(self: &Arc<Self>, desired: &Desired) -> Result<(), SidecarError> {
        let Desired { config, central } = desired;
        if config.service != self.service {
            // The identity, leaf and intentions all belong to the service: a new destination
            // is a new sidecar.
            error!(
                old = %self.service,
                new = %config.service,
                "the proxy now fronts another service; restart the sidecar to follow it"
            );
            return Ok(());
        }
        let mut listeners = self.listeners.lock().await;
        let inbound = config
            .inbound
            .as_ref()
            .map(|spec| (spec, central.protocol(&config.service, spec.protocol)));
        if listeners.inbound.as_ref().map(|r| (&r.spec, r.protocol)) != inbound {
            if let Some(old) = listeners.inbound.take() {
                info!(bind = %old.spec.bind, "closing the public listener");
                drop(old.stop());
            }
            if let Some((spec, protocol)) = inbound {
                listeners.inbound = Some(self.open_inbound(spec, protocol).await?);
            }
        }
        let wanted: Vec<(&UpstreamSpec, proxy::Protocol)> = config
            .upstreams
            .iter()
            .map(|spec| (spec, central.protocol(&spec.destination, spec.protocol)))
            .collect();
        let (keep, stop): (Vec<_>, Vec<_>) = std::mem::take(&mut listeners.upstreams)
            .into_iter()
            .partition(|running| wanted.contains(&(&running.spec, running.protocol)));
        for old in stop {
            info!(upstream = %old.spec.destination, bind = %old.spec.bind, "closing an upstream listener");
            self.stats.remove_upstream(&old.spec.bind);
            drop(old.stop());
        }
        listeners.upstreams = keep;
        for (spec, protocol) in wanted {
            let open = listeners
                .upstreams
                .iter()
                .any(|r| &r.spec == spec && r.protocol == protocol);
            if !open {
                let running = self.open_upstream(spec, protocol).await?;
                listeners.upstreams.push(running);
            }
        }
        Ok(())
    }

    /// Applies every change of what the listeners should be, the latest first: one that
    /// arrives while another is applied replaces any still waiting.
    fn apply_changes(self: &Arc<Self>, mut changes: watch::Receiver<Desired>) -> JoinHandle<()> {
        let shared = self.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let desired = changes.borrow_and_update().clone();
                if let Err(e) = shared.reconcile(&desired).await {
                    error!(error = %e, "cannot apply the new configuration; keeping what runs");
                }
            }
        })
    }

    async fn open_inbound(
        &self,
        spec: &InboundSpec,
        protocol: proxy::Protocol,
    ) -> Result<Running<InboundSpec>, SidecarError> {
        let listener = bind("the public listener", spec.bind).await?;
        let mut config = InboundConfig::new(spec.app);
        config.protocol = protocol;
        config.drain_grace = self.drain_grace;
        let inbound = Inbound::new(config, &self.identity, self.authz.clone());
        self.stats.set_inbound(inbound.metrics());
        let (trigger, watch) = drain::channel();
        info!(bind = %spec.bind, app = %spec.app, %protocol, "public listener open");
        Ok(Running {
            spec: spec.clone(),
            protocol,
            trigger,
            serving: tokio::spawn(inbound.serve(listener, watch)),
            follower: None,
        })
    }

    async fn open_upstream(
        &self,
        spec: &UpstreamSpec,
        protocol: proxy::Protocol,
    ) -> Result<Running<UpstreamSpec>, SidecarError> {
        let listener = bind(&format!("upstream {}", spec.destination), spec.bind).await?;
        let config = OutboundConfig {
            protocol,
            drain_grace: self.drain_grace,
            ..OutboundConfig::default()
        };
        let outbound = Outbound::new(&spec.destination, config, self.identity.clone());
        let endpoints = outbound.endpoints();
        self.stats.add_upstream(spec, outbound.metrics());

        // The first instance list before the first connection, when the agent has it.
        let path = health_path(spec);
        let mut since = Version::None;
        match self.agent.get(&path).await {
            Ok(answer) => match config::instances(&answer.body) {
                Ok(list) => {
                    endpoints.replace(list);
                    since = answer.version;
                }
                Err(e) => warn!(upstream = %spec.destination, error = %e, "unusable instance list"),
            },
            Err(e) => {
                warn!(upstream = %spec.destination, error = %e, "cannot read the instances yet")
            }
        }
        let destination = spec.destination.clone();
        let follower = tokio::spawn(follow(self.agent.clone(), path, since, move |answer| {
            let list = config::instances(&answer.body).map_err(|e| e.to_string())?;
            info!(upstream = %destination, instances = list.len(), "instances updated");
            endpoints.replace(list);
            Ok(())
        }));
        let (trigger, watch) = drain::channel();
        info!(upstream = %spec.destination, bind = %spec.bind, %protocol, "upstream listener open");
        Ok(Running {
            spec: spec.clone(),
            protocol,
            trigger,
            serving: tokio::spawn(outbound.serve(listener, watch)),
            follower: Some(follower),
        })
    }

    fn follow_roots(&self, since: Version) -> JoinHandle<()> {
        let identity = self.identity.clone();
        tokio::spawn(follow(
            self.agent.clone(),
            "/v1/agent/connect/ca/roots".into(),
            since,
            move |answer| {
                let roots = parse_roots(&answer.body).map_err(|e| e.to_string())?;
                info!(roots = roots.len(), "trusted roots updated");
                identity.set_roots(roots);
                Ok(())
            },
        ))
    }

    fn follow_leaf(&self, since: Version) -> JoinHandle<()> {
        let identity = self.identity.clone();
        tokio::spawn(follow(
            self.agent.clone(),
            leaf_path(&self.service),
            since,
            move |answer| {
                let leaf = parse_leaf(&answer.body).map_err(|e| e.to_string())?;
                info!("leaf certificate updated");
                identity.set_leaf(leaf);
                Ok(())
            },
        ))
    }

    fn follow_intentions(&self, since: Version, default: DefaultPolicy) -> JoinHandle<()> {
        let authz = self.authz.clone();
        let service = self.service.clone();
        tokio::spawn(follow(
            self.agent.clone(),
            intentions_path(&self.service),
            since,
            move |answer| {
                let list = parse_intentions(&answer.body, &service).map_err(|e| e.to_string())?;
                info!(intentions = list.len(), "intentions updated");
                authz.update(list, default);
                Ok(())
            },
        ))
    }

    fn follow_registration(
        &self,
        desired: &watch::Sender<Desired>,
        proxy_id: String,
        since: Version,
    ) -> JoinHandle<()> {
        let desired = desired.clone();
        let path = format!("/v1/agent/service/{proxy_id}");
        tokio::spawn(follow(self.agent.clone(), path, since, move |answer| {
            let config = config::proxy_config(&answer.body).map_err(|e| e.to_string())?;
            desired.send_if_modified(|d| std::mem::replace(&mut d.config, config) != d.config);
            Ok(())
        }))
    }

    /// Follows the config entries of one kind (`service-defaults` or `proxy-defaults`).
    fn follow_central(
        &self,
        desired: &watch::Sender<Desired>,
        kind: &'static str,
        since: Version,
    ) -> JoinHandle<()> {
        let desired = desired.clone();
        let path = format!("/v1/config/{kind}");
        tokio::spawn(follow(self.agent.clone(), path, since, move |answer| {
            let mut central = desired.borrow().central.clone();
            match kind {
                "service-defaults" => central.set_service_defaults(&answer.body),
                _ => central.set_proxy_defaults(&answer.body),
            }
            .map_err(|e| e.to_string())?;
            desired.send_if_modified(|d| std::mem::replace(&mut d.central, central) != d.central);
            Ok(())
        }))
    }
}

/// The config entries at start, and the versions to follow them from.
struct CentralAtStart {
    value: Central,
    services: Version,
    proxies: Version,
}

/// Reads the config entries; a sidecar starts without them (registered protocols, else
/// `tcp`) when they cannot be read, and follows them from there.
async fn read_central(agent: &AgentApi) -> CentralAtStart {
    let mut central = CentralAtStart {
        value: Central::default(),
        services: Version::None,
        proxies: Version::None,
    };
    match agent.get("/v1/config/service-defaults").await {
        Ok(answer) => match central.value.set_service_defaults(&answer.body) {
            Ok(()) => central.services = answer.version,
            Err(e) => warn!(error = %e, "unusable service-defaults"),
        },
        Err(e) => warn!(error = %e, "cannot read service-defaults yet"),
    }
    match agent.get("/v1/config/proxy-defaults").await {
        Ok(answer) => match central.value.set_proxy_defaults(&answer.body) {
            Ok(()) => central.proxies = answer.version,
            Err(e) => warn!(error = %e, "unusable proxy-defaults"),
        },
        Err(e) => warn!(error = %e, "cannot read proxy-defaults yet"),
    }
    central
}

async fn read_registration(
    agent: &AgentApi,
    id: &str,
) -> Result<(ProxyConfig, Option<Version>), SidecarError> {
    let answer: Answer = agent.get(&format!("/v1/agent/service/{id}")).await?;
    Ok((config::proxy_config(&answer.body)?, Some(answer.version)))
}

/// Binds `addr`, retrying briefly: a listener being replaced may still hold the port.
async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, SidecarError> {
    until_bound(addr)
        .await
        .map_err(|source| SidecarError::Bind {
            what: what.to_owned(),
            addr,
            source,
        })
}

async fn until_bound(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

fn leaf_path(service: &str) -> String {
    format!("/v1/agent/connect/ca/leaf/{service}")
}

fn intentions_path(service: &str) -> String {
    format!("/v1/connect/intentions/match?by=destination&name={service}")
}

fn health_path(spec: &UpstreamSpec) -> String {
    let mut path = format!("/v1/health/connect/{}?passing", spec.destination);
    if !spec.datacenter.is_empty() {
        path.push_str("&dc=");
        path.push_str(&spec.datacenter);
    }
    path
}

fn parse_roots(body: &Value) -> Result<TrustedRoots, SidecarError> {
    let (trust_domain, pems) = config::roots(body)?;
    TrustedRoots::from_pem(&trust_domain, &pems).map_err(|e| SidecarError::Material {
        what: "CA roots",
        reason: e.to_string(),
    })
}

fn parse_leaf(body: &Value) -> Result<LeafCert, SidecarError> {
    let (cert, key) = config::leaf(body)?;
    LeafCert::from_pem(cert, key).map_err(|e| SidecarError::Material {
        what: "leaf certificate",
        reason: e.to_string(),
    })
}

/// The intentions towards `service` in a `/v1/connect/intentions/match` answer.
fn parse_intentions(body: &Value, service: &str) -> Result<Vec<Intention>, SidecarError> {
    let material = |reason: String| SidecarError::Material {
        what: "intentions",
        reason,
    };
    let list = body
        .get(service)
        .and_then(Value::as_array)
        .ok_or_else(|| material(format!("the match answer has no list for {service:?}")))?;
    list.iter()
        .map(|ixn| parse_intention(ixn.clone()).map_err(|e| material(e.0)))
        .collect()
}

/// The agent's default for connections no intention matches, from `/v1/agent/self`: its
/// `default_intention_policy` if set, else the ACL default policy (`allow` while ACLs are off).
pub fn default_policy(agent_self: &Value) -> DefaultPolicy {
    let debug = &agent_self["DebugConfig"];
    match debug["DefaultIntentionPolicy"].as_str().unwrap_or_default() {
        "" => DefaultPolicy::Acl {
            allow: debug["ACLResolverSettings"]["ACLDefaultPolicy"]
                .as_str()
                .is_none_or(|p| p != "deny"),
        },
        policy => DefaultPolicy::Intention {
            allow: policy == "allow",
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_default_policy_comes_from_the_agents_config() {
        let cases = [
            (json!({}), DefaultPolicy::Acl { allow: true }),
            (
                json!({"DebugConfig": {"DefaultIntentionPolicy": "deny"}}),
                DefaultPolicy::Intention { allow: false },
            ),
            (
                json!({"DebugConfig": {"DefaultIntentionPolicy": "allow",
                       "ACLResolverSettings": {"ACLDefaultPolicy": "deny"}}}),
                DefaultPolicy::Intention { allow: true },
            ),
            (
                json!({"DebugConfig": {"DefaultIntentionPolicy": "",
                       "ACLResolverSettings": {"ACLDefaultPolicy": "deny"}}}),
                DefaultPolicy::Acl { allow: false },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(default_policy(&body), expected, "{body}");
        }
    }

    #[test]
    fn paths_name_the_upstream_and_its_datacenter() {
        let mut spec = UpstreamSpec {
            destination: "db".into(),
            datacenter: String::new(),
            bind: "127.0.0.1:9191".parse().unwrap(),
            protocol: None,
        };
        assert_eq!(health_path(&spec), "/v1/health/connect/db?passing");
        spec.datacenter = "dc2".into();
        assert_eq!(health_path(&spec), "/v1/health/connect/db?passing&dc=dc2");
        assert_eq!(
            intentions_path("web"),
            "/v1/connect/intentions/match?by=destination&name=web"
        );
    }

    #[test]
    fn intentions_are_read_from_the_match_answer() {
        let body = json!({"db": [{"SourceNS": "default", "SourceName": "web",
            "DestinationNS": "default", "DestinationName": "db", "SourceType": "consul",
            "Action": "allow", "Precedence": 9}]});
        let list = parse_intentions(&body, "db").unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].source_name, "web");
        assert!(parse_intentions(&body, "web").is_err());
    }
}
