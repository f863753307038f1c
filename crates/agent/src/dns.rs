//! The agent's DNS interface: the `dns` crate's server, answering from the agent's own
//! [`HealthView`] of the catalog. A name asked for once is watched with a blocking query from
//! then on, so answers come from memory; the first question for a name waits for one server
//! round trip. Answers are as fresh as the server the watch reads from (replication lag) plus
//! the time to push a change, and while no server answers the last known instances are served.
//!
//! The DNS server answers UDP on threads of its own; every wait and server round trip of a
//! lookup (watches, PTR questions) runs on the agent's runtime, the one the lookup was made on.
//!
//! With ACLs on, answers keep what the DNS token may read ([`DnsAcl`]): a service's instances
//! need `service:read` on the service and `node:read` on their node, a node `node:read`; what
//! the token may not see is answered as if it did not exist.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use catalog::{Node, Status};
use dns::{DnsConfig, Lookup, LookupError, LookupFuture};

use crate::view::HealthView;
use crate::CatalogClient;

/// The name of the servers' service in the catalog.
const SERVERS: &str = "consul";

/// The decisions of the token DNS answers with, kept current by the agent (it re-resolves the
/// token as its cache expires). `None` inside: ACLs are off and nothing is filtered.
#[derive(Debug, Clone, Default)]
pub struct DnsAcl(Arc<std::sync::RwLock<Option<Arc<acl::Authorizer>>>>);

impl DnsAcl {
    /// Replaces the decisions (`None`: ACLs off).
    pub fn set(&self, authorizer: Option<Arc<acl::Authorizer>>) {
        *self.0.write().expect("DNS ACL lock") = authorizer;
    }

    /// The decisions when they restrict what DNS may show; `None` when everything is visible.
    fn restricting(&self) -> Option<Arc<acl::Authorizer>> {
        let authorizer = self.0.read().expect("DNS ACL lock").clone()?;
        let sees_all = authorizer.allows_all(acl::Resource::Service, acl::Access::Read)
            && authorizer.allows_all(acl::Resource::Node, acl::Access::Read);
        (!sees_all).then_some(authorizer)
    }

    /// `instances` without what the token may not read; the same `Arc` when nothing is
    /// dropped, so DNS keeps reusing the records built from it.
    fn filter(&self, service: &str, instances: dns::Instances) -> dns::Instances {
        let Some(authorizer) = self.restricting() else {
            return instances;
        };
        if !authorizer.allows(acl::Resource::Service, service, acl::Access::Read) {
            return Arc::new(Vec::new());
        }
        let readable = |row: &dns::Instance| {
            authorizer.allows(acl::Resource::Node, &row.node.name, acl::Access::Read)
        };
        if instances.iter().all(readable) {
            return instances;
        }
        Arc::new(
            instances
                .iter()
                .filter(|row| readable(row))
                .cloned()
                .collect(),
        )
    }

    fn node_visible(&self, node: &str) -> bool {
        self.restricting().is_none_or(|authorizer| {
            authorizer.allows(acl::Resource::Node, node, acl::Access::Read)
        })
    }
}

/// The [`dns::Lookup`] of an agent: one datacenter, its own view.
#[derive(Clone)]
pub struct AgentLookup {
    view: HealthView,
    client: Arc<dyn CatalogClient>,
    datacenter: String,
    /// The agent's runtime, where server round trips run.
    runtime: tokio::runtime::Handle,
    acl: DnsAcl,
}

impl std::fmt::Debug for AgentLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLookup")
            .field("view", &self.view)
            .field("datacenter", &self.datacenter)
            .finish()
    }
}

impl AgentLookup {
    /// A lookup whose watches and server round trips run on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(client: Arc<dyn CatalogClient>, datacenter: &str) -> Self {
        AgentLookup {
            view: HealthView::new(client.clone()),
            client,
            datacenter: datacenter.to_owned(),
            runtime: tokio::runtime::Handle::current(),
            acl: DnsAcl::default(),
        }
    }

    /// Answers only what `acl`'s token may read.
    pub fn with_acl(mut self, acl: DnsAcl) -> Self {
        self.acl = acl;
        self
    }

    /// Only the local datacenter is known (there is no WAN federation).
    fn local(&self, dc: &str) -> bool {
        dc.eq_ignore_ascii_case(&self.datacenter)
    }

    /// The node and the service name with an instance at `addr`, asked of a server on the
    /// agent's runtime.
    async fn by_address(
        &self,
        addr: IpAddr,
    ) -> Result<(Option<Node>, Option<String>), LookupError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.by_address(addr).await })
            .await
            .map_err(|e| LookupError::Failed(e.to_string()))?
            .map_err(unavailable)
    }
}

fn unavailable(err: String) -> LookupError {
    LookupError::Unavailable(err)
}

impl Lookup for AgentLookup {
    fn service<'a>(
        &'a self,
        dc: &'a str,
        service: &'a str,
        connect: bool,
    ) -> LookupFuture<'a, Option<dns::Instances>> {
        Box::pin(async move {
            if !self.local(dc) {
                return Ok(None);
            }
            let rows = self
                .view
                .service(service, connect)
                .await
                .map_err(unavailable)?;
            Ok(Some(self.acl.filter(service, rows)))
        })
    }

    fn service_now(
        &self,
        dc: &str,
        service: &str,
        connect: bool,
    ) -> Option<Option<dns::Instances>> {
        if !self.local(dc) {
            return Some(None);
        }
        self.view
            .service_now(service, connect)
            .map(|rows| Some(self.acl.filter(service, rows)))
    }

    fn node<'a>(&'a self, dc: &'a str, node: &'a str) -> LookupFuture<'a, Option<Node>> {
        Box::pin(async move {
            if !self.local(dc) {
                return Ok(None);
            }
            let state = self.view.node(node).await.map_err(unavailable)?;
            Ok(state
                .node
                .clone()
                .filter(|n| self.acl.node_visible(&n.name)))
        })
    }

    fn servers<'a>(&'a self, dc: &'a str) -> LookupFuture<'a, Vec<Node>> {
        Box::pin(async move {
            if !self.local(dc) {
                return Ok(Vec::new());
            }
            let rows = self
                .view
                .service(SERVERS, false)
                .await
                .map_err(unavailable)?;
            Ok(rows
                .iter()
                .filter(|row| row.status() != Status::Critical)
                .map(|row| row.node.clone())
                .collect())
        })
    }

    fn node_by_addr<'a>(&'a self, dc: &'a str, addr: IpAddr) -> LookupFuture<'a, Option<Node>> {
        Box::pin(async move {
            if !self.local(dc) {
                return Ok(None);
            }
            let (node, _) = self.by_address(addr).await?;
            Ok(node.filter(|n| self.acl.node_visible(&n.name)))
        })
    }

    fn service_by_addr<'a>(
        &'a self,
        dc: &'a str,
        addr: IpAddr,
    ) -> LookupFuture<'a, Option<String>> {
        Box::pin(async move {
            if !self.local(dc) {
                return Ok(None);
            }
            let (_, service) = self.by_address(addr).await?;
            Ok(service.filter(|name| {
                self.acl.restricting().is_none_or(|authorizer| {
                    authorizer.allows(acl::Resource::Service, name, acl::Access::Read)
                })
            }))
        })
    }
}

/// The DNS server's settings from the agent's configuration: `client_addr:ports.dns`, the
/// domains, TTLs, limits and recursors. `None` when DNS is disabled (`ports.dns = -1`).
pub fn settings(config: &config::Config) -> Result<Option<DnsConfig>, String> {
    let Ok(port) = u16::try_from(config.ports.dns) else {
        return Ok(None);
    };
    let dns = &config.dns;
    let recursors = dns
        .recursors
        .iter()
        .map(|r| dns::parse_recursor(r).map_err(|e| e.to_string()))
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    Ok(Some(DnsConfig {
        bind: SocketAddr::new(config.client_addr, port),
        datacenter: config.datacenter.clone(),
        domain: dns.domain.clone(),
        alt_domain: dns.alt_domain.clone(),
        node_ttl: dns.node_ttl,
        service_ttl: dns.service_ttl.clone(),
        only_passing: dns.only_passing,
        udp_answer_limit: dns.udp_answer_limit as usize,
        a_record_limit: dns.a_record_limit as usize,
        enable_truncate: dns.enable_truncate,
        recursors,
        recursor_timeout: dns.recursor_timeout,
        recursor_random: dns.recursor_strategy == config::RecursorStrategy::Random,
        soa: dns::SoaConfig {
            refresh: dns.soa.refresh,
            retry: dns.soa.retry,
            expire: dns.soa.expire,
            min_ttl: dns.soa.min_ttl,
        },
        ..DnsConfig::default()
    }))
}

/// A DNS interface being served.
#[derive(Debug)]
pub struct Serving {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    /// What it counts, for the agent's metrics.
    pub stats: Arc<dns::DnsStats>,
    /// Serves until shutdown.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds the DNS server (UDP and TCP on `client_addr:ports.dns`) when the configuration
/// enables it, and serves until `shutdown` turns true.
pub async fn start(
    config: &config::Config,
    client: Arc<dyn CatalogClient>,
    acl: DnsAcl,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Serving>, String> {
    let Some(server) = bind(config, client, acl).await? else {
        return Ok(None);
    };
    let addr = server.local_addr();
    let stats = server.stats();
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(err) = server.run(stopped).await {
            tracing::error!(%err, "DNS server failed");
        }
    });
    tracing::info!(%addr, "DNS interface ready");
    Ok(Some(Serving { addr, stats, task }))
}

/// Binds the DNS server (UDP and TCP) when the configuration enables it; the returned server
/// is run by the caller until shutdown.
pub async fn bind(
    config: &config::Config,
    client: Arc<dyn CatalogClient>,
    acl: DnsAcl,
) -> Result<Option<dns::DnsServer>, String> {
    let Some(settings) = settings(config)? else {
        return Ok(None);
    };
    let lookup = Arc::new(AgentLookup::new(client, &config.datacenter).with_acl(acl));
    dns::DnsServer::bind(settings, lookup)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
