//! A mesh client agent, assembled: the local agent (services, checks, anti-entropy), the
//! connection to the servers over server RPC with failover, and the HTTP API that answers
//! agent endpoints locally and forwards the rest to a server.
//!
//! This is the composition root that the `mesh-client` binary and the integration tests
//! share; it owns sockets, the data directory and tasks, and no protocol or domain logic.

mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catalog::{CatalogOp, NodeState};
use consensus::{Op, Response as Applied};
use futures::future::BoxFuture;
use rpc::{Request, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The mesh release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A catalog write or read waits at most this long for the servers (a write may be held
/// while the servers elect a leader).
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data_dir is required outside -dev mode")]
    NoDataDir,
    #[error("starting the agent: {0}")]
    Agent(String),
    #[error("{0}")]
    Gossip(String),
    #[error("starting DNS: {0}")]
    Dns(String),
    #[error("binding the HTTP API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] rpc::TlsError),
    #[error("auto_encrypt: {0}")]
    AutoEncrypt(String),
}

/// How long a client agent with `auto_encrypt.tls` waits at start for a server to sign its
/// certificate.
const AUTO_ENCRYPT_WAIT: Duration = Duration::from_secs(120);

/// auto_encrypt: a new key, signed by a server gossip shows, kept in
/// `<data_dir>/auto-encrypt/` (the key readable by this user only); the configuration with
/// that certificate as the agent's.
async fn auto_encrypt(
    config: &config::Config,
    data_dir: &std::path::Path,
    membership: &agent::membership::Membership,
) -> Result<config::Config, ClientError> {
    let failed = |what: &str, err: &dyn std::fmt::Display| {
        ClientError::AutoEncrypt(format!("{what}: {err}"))
    };
    let (csr_pem, key_pem) =
        rpc::tls::csr(&config.node_name, &config.datacenter, &config.dns.domain)
            .map_err(|e| failed("making a key and CSR", &e))?;
    let request = rpc::tls::AgentCertRequest {
        node: config.node_name.clone(),
        // Consul's agent token, else the default one (the token file is not read yet here:
        // the certificate comes before the API that sets tokens).
        token: config
            .acl
            .agent_token
            .clone()
            .or_else(|| config.acl.default_token.clone())
            .unwrap_or_default(),
        csr_pem,
        dns_san: config.tls.auto_encrypt.dns_san.clone(),
        ip_san: config.tls.auto_encrypt.ip_san.clone(),
    };
    let deadline = tokio::time::Instant::now() + AUTO_ENCRYPT_WAIT;
    let mut attempts = 0u32;
    let cert = loop {
        match rpc::tls::request_agent_cert(&membership.servers(), &request).await {
            Ok(cert) => break cert,
            Err(err) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ClientError::AutoEncrypt(format!(
                        "no server signed this agent's certificate within {AUTO_ENCRYPT_WAIT:?}: {err}"
                    )));
                }
                if attempts.is_multiple_of(10) {
                    tracing::warn!(%err, "auto_encrypt: no certificate from the servers yet; retrying");
                }
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let dir = data_dir.join("auto-encrypt");
    std::fs::create_dir_all(&dir).map_err(|e| failed(&dir.display().to_string(), &e))?;
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &cert.cert_pem)
        .map_err(|e| failed(&cert_file.display().to_string(), &e))?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_file)
            .map_err(|e| failed(&key_file.display().to_string(), &e))?;
        file.write_all(key_pem.as_bytes())
            .map_err(|e| failed(&key_file.display().to_string(), &e))?;
    }
    tracing::info!(cert = %cert_file.display(), "auto_encrypt: a server signed this agent's certificate");
    let mut config = config.clone();
    config.tls.cert_file = Some(cert_file);
    config.tls.key_file = Some(key_file);
    Ok(config)
}

/// The catalog as a client agent reaches it: through whichever server answers.
#[derive(Debug, Clone)]
struct RemoteCatalog {
    servers: rpc::Servers,
    /// Counts the calls (`consul.client.rpc`).
    telemetry: api::Telemetry,
    /// With ACLs on, the agent's tokens: its catalog writes carry its agent token.
    tokens: Option<api::AgentTokens>,
}

impl RemoteCatalog {
    /// One call to whichever server answers, counted.
    async fn call(
        &self,
        req: &Request,
        timeout: Duration,
        idempotent: bool,
    ) -> Result<Response, rpc::RpcError> {
        let answered = self.servers.request(req, timeout, idempotent).await;
        self.telemetry.count_client_rpc(answered.is_ok());
        answered
    }

    /// A blocking read on whichever server answers: the request carries its own wait, the
    /// exchange is allowed that long plus the usual timeout. `pick` takes the expected answer.
    async fn watch<T>(
        &self,
        req: Request,
        wait: Duration,
        what: &str,
        pick: impl FnOnce(Response) -> Option<T>,
    ) -> Result<T, String> {
        match self.call(&req, wait + SERVER_TIMEOUT, true).await {
            Ok(resp) => pick(resp).ok_or_else(|| format!("unexpected answer to a {what}")),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// The wait a watch asks the server for, and its `wait_ms`.
fn watch_wait(wait: Duration) -> (Duration, u64) {
    let wait = wait.min(rpc::MAX_WATCH);
    (wait, wait.as_millis() as u64)
}

impl agent::CatalogClient for RemoteCatalog {
    fn apply(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let op = Op::Catalog(op);
            let req = match &self.tokens {
                Some(tokens) => Request::ClientWriteAs {
                    token: tokens.agent_token().unwrap_or_default(),
                    op,
                },
                None => Request::ClientWrite(op),
            };
            match self.call(&req, SERVER_TIMEOUT, false).await {
                Ok(Response::ClientWrite(Ok(written))) => match written.response {
                    Applied::Rejected(reason) => Err(reason),
                    _ => Ok(()),
                },
                Ok(Response::ClientWrite(Err(err))) => Err(err.to_string()),
                Ok(_) => Err("unexpected answer to a catalog write".into()),
                Err(err) => Err(err.to_string()),
            }
        })
    }

    fn watch_node(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(NodeState, u64), String>> {
        let (wait, wait_ms) = watch_wait(wait);
        let req = Request::WatchNode {
            name: node.to_owned(),
            index,
            wait_ms,
        };
        Box::pin(self.watch(req, wait, "node watch", |resp| match resp {
            Response::WatchNode(state, index) => Some((state, index)),
            _ => None,
        }))
    }

    fn watch_service(
        &self,
        name: &str,
        connect: bool,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Vec<catalog::ServiceHealth>, u64), String>> {
        let (wait, wait_ms) = watch_wait(wait);
        let req = Request::WatchService {
            name: name.to_owned(),
            connect,
            index,
            wait_ms,
        };
        Box::pin(self.watch(req, wait, "service watch", |resp| match resp {
            Response::WatchService(rows, index) => Some((rows, index)),
            _ => None,
        }))
    }

    fn by_address(
        &self,
        addr: std::net::IpAddr,
    ) -> BoxFuture<'_, Result<agent::AddressOwner, String>> {
        Box::pin(async move {
            match self
                .call(&Request::ByAddress(addr), SERVER_TIMEOUT, true)
                .await
            {
                Ok(Response::ByAddress(node, service)) => Ok((node, service)),
                Ok(_) => Err("unexpected answer to an address lookup".into()),
                Err(err) => Err(err.to_string()),
            }
        })
    }

    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>> {
        let req = Request::NodeState(node.to_owned());
        Box::pin(async move {
            match self.call(&req, SERVER_TIMEOUT, true).await {
                Ok(Response::NodeState(Ok(state))) => Ok(state),
                Ok(Response::NodeState(Err(err))) => Err(err.to_string()),
                Ok(_) => Err("unexpected answer to a catalog read".into()),
                Err(err) => Err(err.to_string()),
            }
        })
    }
}

impl agent::connect::ConnectClient for RemoteCatalog {
    fn watch_roots(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Option<ca::wire::IndexedCaRoots>, u64), String>> {
        let (wait, wait_ms) = watch_wait(wait);
        let req = Request::WatchRoots { index, wait_ms };
        Box::pin(self.watch(req, wait, "roots watch", |resp| match resp {
            Response::WatchRoots(roots, index) => Some((roots, index)),
            _ => None,
        }))
    }

    fn watch_intentions(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(intentions::Intentions, u64), String>> {
        let (wait, wait_ms) = watch_wait(wait);
        let req = Request::WatchIntentions { index, wait_ms };
        Box::pin(
            self.watch(req, wait, "intentions watch", |resp| match resp {
                Response::WatchIntentions(ixns, index) => Some((ixns, index)),
                _ => None,
            }),
        )
    }

    fn sign(
        &self,
        csr_pem: String,
        service: String,
    ) -> BoxFuture<'_, Result<(ca::Leaf, u64), agent::connect::SignFailure>> {
        let req = Request::SignLeaf { csr_pem, service };
        Box::pin(async move {
            // Signing twice only spends a serial number: safe to retry on another server.
            match self.call(&req, SERVER_TIMEOUT, true).await {
                Ok(Response::SignLeaf(Ok(signed))) => Ok(signed),
                Ok(Response::SignLeaf(Err(consensus::SignError::RateLimited))) => {
                    Err(agent::connect::SignFailure::RateLimited)
                }
                Ok(Response::SignLeaf(Err(err))) => {
                    Err(agent::connect::SignFailure::Failed(err.to_string()))
                }
                Ok(_) => Err(agent::connect::SignFailure::Failed(
                    "unexpected answer to a signing request".into(),
                )),
                Err(err) => Err(agent::connect::SignFailure::Failed(err.to_string())),
            }
        })
    }
}

/// A running client agent. Dropping it without [`ClientAgent::shutdown`] aborts its tasks.
#[derive(Debug)]
pub struct ClientAgent {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    agent: agent::Agent,
    membership: agent::membership::Membership,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Tasks that run until aborted (following gossip's server list).
    background: Vec<JoinHandle<()>>,
    _dev_dir: Option<tempfile::TempDir>,
}

/// Keeps the client's server list what gossip shows: live members tagged as servers.
async fn follow_servers(membership: agent::membership::Membership, servers: rpc::Servers) {
    let mut changes = membership.changes();
    loop {
        servers.set(membership.servers());
        if changes.changed().await.is_err() {
            return;
        }
    }
}

impl ClientAgent {
    /// Starts the agent and serves HTTP. The servers are `retry_join`'s addresses (server
    /// RPC, port 8300 by default); the agent fails over between them.
    pub async fn start(config: config::Config) -> Result<ClientAgent, ClientError> {
        let (data_dir, dev_dir) = agent::identity::data_dir(&config, "mesh-client-dev-")
            .map_err(|source| ClientError::DataDir {
                path: std::env::temp_dir(),
                source,
            })?
            .ok_or(ClientError::NoDataDir)?;
        let node_id =
            agent::identity::node_id(config.node_id.as_deref(), &data_dir).map_err(|source| {
                ClientError::DataDir {
                    path: data_dir.clone(),
                    source,
                }
            })?;
        // TLS first: a bad certificate stops the agent before it listens or dials. With
        // auto_encrypt the certificate comes from the servers once gossip shows them.
        let rpc_tls = rpc::RpcTls::from_config(&config)?;
        let mut https_tls = if config.tls.auto_encrypt.tls {
            None
        } else {
            api::https_config(&config)?
        };
        rpc::install_dialer(rpc_tls.map(|tls| tls.dialer));
        if config.retry_join.is_empty() {
            tracing::warn!(
                "no retry_join address configured: the servers are unknown until /v1/agent/join"
            );
        }
        let advertise = config.advertise_addr.unwrap_or(config.bind_addr);
        let membership =
            agent::membership::Membership::start(agent::membership::Settings::from_config(
                &config, &node_id, advertise, None, &data_dir, VERSION,
            ))
            .await
            .map_err(|e| ClientError::Gossip(e.to_string()))?;
        if config.tls.auto_encrypt.tls {
            let with_cert = auto_encrypt(&config, &data_dir, &membership).await?;
            let rpc_tls = rpc::RpcTls::from_config(&with_cert)?;
            rpc::install_dialer(rpc_tls.map(|tls| tls.dialer));
            https_tls = api::https_config(&with_cert)?;
        }
        // The servers are whoever gossip says they are.
        let servers = rpc::Servers::new(membership.servers());
        let follow_servers = tokio::spawn(follow_servers(membership.clone(), servers.clone()));
        let telemetry = api::Telemetry::new();
        if let Some(logs) = config::cli::log_stream() {
            telemetry.attach_logs(logs);
        }
        // One set of ACL settings: the agent endpoints, the enforcer, DNS and the catalog
        // writes share its tokens.
        let acl = api::AclSettings::from_config(&config);
        let catalog = Arc::new(RemoteCatalog {
            servers: servers.clone(),
            telemetry: telemetry.clone(),
            tokens: acl.enabled.then(|| acl.tokens.clone()),
        });
        let agent = agent::Agent::from_config(
            &config,
            &node_id,
            &advertise.to_string(),
            &data_dir,
            catalog.clone(),
        )
        .map_err(|e| ClientError::Agent(e.to_string()))?;

        let http_port = match config.ports.http {
            p if p >= 0 => p as u16,
            _ => 8500,
        };
        let info = api::AgentInfo {
            node_name: config.node_name.clone(),
            node_id: node_id.clone(),
            datacenter: config.datacenter.clone(),
            server: false,
            dev: config.dev,
            version: VERSION.into(),
            revision: String::new(),
            advertise_addr: advertise.to_string(),
            http_port,
            server_port: 0,
            intention_default: agent::connect::default_policy(&config),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let local = api::LocalContext {
            events: agent::events::UserEvents::start(&membership, &agent),
            agent: agent.clone(),
            membership: membership.clone(),
            datacenter: config.datacenter.clone(),
            dev: config.dev,
            prometheus: !config.prometheus_retention_time.is_zero(),
            connect: agent::connect::Connect::new(
                catalog.clone(),
                &config.datacenter,
                agent::connect::default_policy(&config),
                shutdown_rx.clone(),
            ),
            telemetry: telemetry.clone(),
            acl: acl.clone(),
        };
        let tokens: Arc<dyn api::TokenResolver> = Arc::new(tokens::RemoteTokens::new(
            servers.clone(),
            acl.default_policy,
            config.acl.down_policy,
        ));
        let dns_acl = agent::dns::DnsAcl::default();
        let follow_dns = tokio::spawn(api::follow_dns_token(
            acl.clone(),
            tokens.clone(),
            dns_acl.clone(),
            shutdown_rx.clone(),
        ));
        let enforcer = Arc::new(api::Enforcer {
            resolver: tokens,
            settings: acl,
            node_name: config.node_name.clone(),
        });
        let app = api::client_router(local, info, servers, enforcer);
        let dns = agent::dns::start(&config, catalog, dns_acl, shutdown_rx.clone())
            .await
            .map_err(ClientError::Dns)?;
        if let Some(dns) = &dns {
            telemetry.attach_dns(dns.stats.clone());
        }
        let mut tasks = Vec::new();
        let (http_addr, https_addr) =
            api::serve_api(&config, app, https_tls, &shutdown_rx, &mut tasks)
                .map_err(|(addr, source)| ClientError::Bind { addr, source })?;
        tracing::info!(http = %http_addr, https = ?https_addr, node = %config.node_name, dc = %config.datacenter, "mesh client agent ready");
        tasks.push(follow_dns);
        tasks.extend(dns.map(|dns| dns.task));
        Ok(ClientAgent {
            http_addr,
            https_addr,
            agent,
            membership,
            shutdown,
            tasks,
            background: vec![follow_servers],
            _dev_dir: dev_dir,
        })
    }

    /// Where the HTTP API listens; the HTTPS address when plain HTTP is off.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the HTTPS API listens, when `ports.https` is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    pub fn agent(&self) -> &agent::Agent {
        &self.agent
    }

    /// Leaves the datacenter gracefully, as `PUT /v1/agent/leave` does.
    pub async fn leave(&self) -> Result<(), agent::AgentError> {
        self.membership.leave_datacenter(&self.agent).await
    }

    /// Stops accepting requests and lets in-flight ones finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.background.drain(..) {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for ClientAgent {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(&self.background) {
            task.abort();
        }
    }
}
