//! A mesh server agent, assembled: the replicated store, the raft member, the leader's
//! housekeeping and the HTTP API, started from a resolved [`config::Config`] and stopped
//! gracefully.
//!
//! This is the composition root that the `mesh-server` binary and the integration tests share;
//! it owns sockets, the data directory and tasks, and no protocol or domain logic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use consensus::{Raft, RaftNode, ServerNode};
use openraft::ServerState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod acl_init;
mod autopilot;
mod ca_seal;
mod catalog_sync;
mod connect_ca;
mod formation;
mod membership_sync;
mod recover;

pub use ca_seal::{load_data_keys, DataKeyError, DATA_KEY_ENV};

/// Quorum-loss recovery on a stopped server (`mesh-server -recover`), asking `survivors` over
/// server RPC (TLS as the configuration says) how far their logs reach.
pub async fn recover(
    config: &config::Config,
    survivors: &[String],
    force: bool,
) -> Result<String, ServerError> {
    let rpc_tls = rpc::RpcTls::from_config(config)?;
    rpc::install_dialer(rpc_tls.map(|tls| tls.dialer));
    recover::recover(config, survivors, force).await
}

/// The mesh release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the raft store: {0}")]
    Store(#[from] raft_store::StoreError),
    #[error("starting raft: {0}")]
    Raft(String),
    #[error("binding the HTTP API on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("no leader was elected within {0:?}")]
    NoLeader(Duration),
    #[error("starting the agent: {0}")]
    Agent(String),
    #[error("{0}")]
    Gossip(String),
    #[error("starting DNS: {0}")]
    Dns(String),
    #[error("{0}")]
    Connect(String),
    #[error("recovery refused: {0}")]
    RecoveryRefused(String),
    #[error(transparent)]
    DataKey(#[from] DataKeyError),
    #[error("TLS: {0}")]
    Tls(#[from] rpc::TlsError),
}

/// A running server. Dropping it without [`Server::shutdown`] aborts its tasks.
#[derive(Debug)]
pub struct Server {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    node: RaftNode,
    agent: agent::Agent,
    membership: agent::membership::Membership,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Dev mode's throwaway data directory, removed when the server is dropped.
    _dev_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Opens the store, joins or bootstraps raft, waits for a leader and serves HTTP.
    pub async fn start(config: config::Config) -> Result<Server, ServerError> {
        let env_key = std::env::var(DATA_KEY_ENV).ok();
        let data_keys = load_data_keys(config.data_key_file.as_deref(), env_key.as_deref())?;
        if let Some(keys) = &data_keys {
            tracing::info!(
                active = %keys.active_id(),
                keys = keys.ids().len(),
                "the CA's private keys are encrypted at rest"
            );
        }
        let (data_dir, dev_dir) = agent::identity::data_dir(&config, "mesh-dev-")
            .map_err(|source| ServerError::DataDir {
                path: std::env::temp_dir(),
                source,
            })?
            .ok_or_else(|| {
                ServerError::Unsupported("data_dir is required outside -dev mode".into())
            })?;
        let node_id =
            agent::identity::node_id(config.node_id.as_deref(), &data_dir).map_err(|source| {
                ServerError::DataDir {
                    path: data_dir.clone(),
                    source,
                }
            })?;
        let raft_dir = data_dir.join("raft");
        std::fs::create_dir_all(&raft_dir).map_err(|source| ServerError::DataDir {
            path: raft_dir.clone(),
            source,
        })?;
        let (log, sm) = raft_store::open(&raft_dir)?;
        let reader = sm.reader();

        // TLS first: a bad certificate stops the server before it listens or dials.
        let rpc_tls = rpc::RpcTls::from_config(&config)?;
        let https_tls = api::https_config(&config)?;
        rpc::install_dialer(rpc_tls.as_ref().map(|tls| tls.dialer.clone()));
        if rpc_tls.is_some() {
            tracing::info!(
                verify_incoming = config.tls.rpc_verify_incoming,
                verify_server_hostname = config.tls.verify_server_hostname,
                "server RPC is TLS"
            );
        }

        let raft_id = raft_id(&node_id);
        // One pool of server RPC connections for raft and for forwarding to the leader.
        let pool = rpc::ConnectionPool::new();
        let autopilot = rpc::Autopilot::new(pool.clone());
        let raft = Raft::new(
            raft_id,
            Arc::new(raft_config(&config)?),
            rpc::RaftTransport::new(pool.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;
        let advertise = advertise_addr(&config);
        let server_port = port(config.ports.server, 8300);
        let bootstrap = config.dev || config.bootstrap || config.bootstrap_expect == 1;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ServerError::Raft(e.to_string()))?;
        if bootstrap && !initialized {
            let members = BTreeMap::from([(
                raft_id,
                ServerNode::new(
                    format!("{advertise}:{server_port}"),
                    config.node_name.clone(),
                    node_id.clone(),
                ),
            )]);
            raft.initialize(members)
                .await
                .map_err(|e| ServerError::Raft(e.to_string()))?;
            tracing::info!(node = %config.node_name, "bootstrapped a new single-server datacenter");
        }
        let initial_ca =
            connect_ca::initial_config(&config.connect.ca_config).map_err(ServerError::Connect)?;
        let node = RaftNode::new(raft.clone(), reader)
            .with_forwarder(Arc::new(rpc::Forwarder::new(pool)))
            .with_data_keys(data_keys);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(
            node.clone().run_leader_duties(shutdown_rx.clone()),
        )];
        if config.connect.enabled {
            tasks.push(tokio::spawn(connect_ca::run(
                node.clone(),
                initial_ca,
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(ca_seal::run(
            node.clone(),
            shutdown_rx.clone(),
        )));

        // Server RPC: raft between servers and forwarding to the leader.
        let rpc_addr = SocketAddr::new(config.bind_addr, server_port);
        let rpc_listener = tokio::net::TcpListener::bind(rpc_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: rpc_addr,
                source,
            })?;
        let me = rpc::Identity {
            raft_id,
            node_name: config.node_name.clone(),
            node_id: node_id.clone(),
            rpc_addr: format!("{advertise}:{server_port}"),
            initialized: false,
            log: None,
        };
        let me_for_api = me.clone();
        let identity = {
            let node = node.clone();
            let me = me.clone();
            Arc::new(move || rpc::Identity {
                initialized: node.is_initialized(),
                ..me.clone()
            })
        };
        let http_port = port(config.ports.http, 8500);
        let telemetry = api::Telemetry::new();
        telemetry.attach_raft(node.clone());
        if let Some(logs) = config::cli::log_stream() {
            telemetry.attach_logs(logs);
        }
        // One set of ACL settings: the API, the agent endpoints and DNS share its tokens.
        let acl_settings = api::AclSettings::from_config(&config);
        let ctx = api::ApiContext {
            node: node.clone(),
            agent: api::AgentInfo {
                node_name: config.node_name.clone(),
                node_id: node_id.clone(),
                datacenter: config.datacenter.clone(),
                server: true,
                dev: config.dev,
                version: VERSION.into(),
                revision: String::new(),
                advertise_addr: advertise.to_string(),
                http_port,
                server_port,
                intention_default: agent::connect::default_policy(&config),
            },
            kv_max_value_size: usize::try_from(config.limits.kv_max_value_size)
                .unwrap_or(usize::MAX),
            txn_max_req_len: usize::try_from(config.limits.txn_max_req_len).unwrap_or(usize::MAX),
            session_ttl_min: config.session_ttl_min,
            identity: me_for_api,
            autopilot: autopilot.clone(),
            telemetry: telemetry.clone(),
            acl: acl_settings.clone(),
            data_dir: Some(data_dir.clone()),
        };
        // Client agents forward API calls here; they are answered by the server's own routes.
        let forwarded = api::forward_handler(api::forwarded_router(ctx.clone()));
        let mut rpc_acceptor = rpc_tls.and_then(|tls| tls.acceptor);
        if let Some(acceptor) = rpc_acceptor.as_mut() {
            if config.tls.auto_encrypt.allow_tls {
                acceptor.signer = Some(Arc::new(agent_signer(&config, node.clone())?));
                tracing::info!("auto_encrypt: signing client agents' certificates");
            }
        }
        // Client agents' catalog writes are checked against their tokens when ACLs are on.
        let guards = rpc::Guards {
            tls: rpc_acceptor,
            acl: config.acl.enabled.then_some(acl_settings.default_policy),
        };
        tasks.push(tokio::spawn(rpc::serve(
            rpc_listener,
            guards,
            node.clone(),
            autopilot.clone(),
            identity,
            Some(forwarded),
            shutdown_rx.clone(),
        )));

        if bootstrap {
            let election_wait = Duration::from_secs(30);
            raft.wait(Some(election_wait))
                .state(ServerState::Leader, "single server elects itself")
                .await
                .map_err(|_| ServerError::NoLeader(election_wait))?;
            tracing::info!(node = %config.node_name, "raft leader elected");
        }

        // Gossip: the pool every agent of the datacenter is in. Servers find each other here.
        let membership =
            agent::membership::Membership::start(agent::membership::Settings::from_config(
                &config,
                &node_id,
                advertise,
                Some(server_port),
                &data_dir,
                VERSION,
            ))
            .await
            .map_err(|e| ServerError::Gossip(e.to_string()))?;
        if !bootstrap {
            // Until raft is initialized: bootstrap with the servers gossip shows (once
            // `bootstrap_expect` of them meet), or join the datacenter one of them is in.
            tasks.push(tokio::spawn(formation::form_or_join(
                node.clone(),
                me,
                config.bootstrap_expect,
                membership.clone(),
                shutdown_rx.clone(),
            )));
        }

        // This server's own agent: its node in the catalog, local services and checks.
        let catalog = Arc::new(catalog_sync::LocalCatalog { node: node.clone() });
        let local_agent = agent::Agent::from_config(
            &config,
            &node_id,
            &advertise.to_string(),
            &data_dir,
            catalog.clone(),
        )
        .map_err(|e| ServerError::Agent(e.to_string()))?;
        let dns_acl = agent::dns::DnsAcl::default();
        tasks.push(tokio::spawn(api::follow_dns_token(
            acl_settings.clone(),
            Arc::new(api::LocalTables {
                reader: node.reader().clone(),
                datacenter: config.datacenter.clone(),
                default_policy: acl_settings.default_policy,
            }),
            dns_acl.clone(),
            shutdown_rx.clone(),
        )));
        if let Some(dns) = agent::dns::start(&config, catalog.clone(), dns_acl, shutdown_rx.clone())
            .await
            .map_err(ServerError::Dns)?
        {
            telemetry.attach_dns(dns.stats);
            tasks.push(dns.task);
        }
        tasks.push(tokio::spawn(membership_sync::run(
            node.clone(),
            membership.clone(),
            config.datacenter.clone(),
            config.node_name.clone(),
            shutdown_rx.clone(),
        )));
        if config.acl.enabled {
            tasks.push(tokio::spawn(acl_init::run(
                node.clone(),
                config.acl.initial_management.clone(),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(autopilot::run(
            node.clone(),
            membership.clone(),
            autopilot::initial_config(&config.autopilot),
            raft_id,
            config.datacenter.clone(),
            shutdown_rx.clone(),
        )));
        let local = api::LocalContext {
            events: agent::events::UserEvents::start(&membership, &local_agent),
            agent: local_agent.clone(),
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
            telemetry,
            acl: acl_settings,
        };
        let app = api::router(ctx, local);
        let (http_addr, https_addr) =
            api::serve_api(&config, app, https_tls, &shutdown_rx, &mut tasks)
                .map_err(|(addr, source)| ServerError::Bind { addr, source })?;
        tracing::info!(http = %http_addr, https = ?https_addr, node = %config.node_name, dc = %config.datacenter, "mesh server ready");
        Ok(Server {
            http_addr,
            https_addr,
            node,
            agent: local_agent,
            membership,
            shutdown,
            tasks,
            _dev_dir: dev_dir,
        })
    }

    /// Where the HTTP API listens (useful when the configured port was 0); the HTTPS address
    /// when plain HTTP is off (`ports.http = -1`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the HTTPS API listens, when `ports.https` is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Leaves the datacenter gracefully, as `PUT /v1/agent/leave` does; [`Server::left`] then
    /// takes it out of raft.
    pub async fn leave(&self) -> Result<(), agent::AgentError> {
        self.membership.leave_datacenter(&self.agent).await
    }

    /// Completes when this server has left the datacenter (`PUT /v1/agent/leave`): its agent
    /// left, and the server is out of the raft configuration (unless it was the only voter)
    /// and out of the catalog.
    pub async fn left(&self) {
        self.agent.left().await;
        let me = self.node.raft().metrics().borrow().id;
        let (servers, _) = self.node.configuration();
        if servers.iter().any(|s| s.voter && s.raft_id != me) {
            match self.node.remove_voter(me).await {
                Ok(()) => tracing::info!("left the raft configuration"),
                Err(err) => tracing::warn!(%err, "leaving the raft configuration failed"),
            }
            // The leader may have registered this server again before it left raft.
            let op = catalog::CatalogOp::Deregister {
                node: self.agent.node().name,
                service_id: None,
                check_id: None,
            };
            if let Err(err) = catalog_sync::apply(&self.node, op).await {
                tracing::warn!(%err, "removing this server from the catalog failed");
            }
        }
    }

    pub fn node(&self) -> &RaftNode {
        &self.node
    }

    /// The server's own agent (its local services and checks).
    pub fn agent(&self) -> &agent::Agent {
        &self.agent
    }

    /// Stops accepting requests, lets in-flight ones finish, then stops raft so the log is
    /// flushed and RocksDB closes cleanly.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Err(err) = self.node.raft().shutdown().await {
            tracing::warn!(%err, "raft did not stop cleanly");
        }
        tracing::info!("mesh server stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// auto_encrypt's signer: the agent CA and its key, and, with ACLs on, a check that the
/// client's token has `node:write` on the node it asks a certificate for.
fn agent_signer(
    config: &config::Config,
    node: RaftNode,
) -> Result<rpc::tls::AgentSigner, ServerError> {
    let tls = &config.tls;
    let (Some(ca_file), Some(ca_key_file)) = (&tls.ca_file, &tls.auto_encrypt.ca_key_file) else {
        return Err(ServerError::Unsupported(
            "auto_encrypt.allow_tls needs tls.defaults.ca_file and auto_encrypt.ca_key_file".into(),
        ));
    };
    let acl = config.acl.clone();
    let datacenter = config.datacenter.clone();
    let authorize: rpc::tls::Authorize = Box::new(move |token: &str, name: &str| {
        if !acl.enabled {
            return Ok(());
        }
        let default = if acl.default_deny {
            ::acl::DefaultPolicy::Deny
        } else {
            ::acl::DefaultPolicy::Allow
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let resolved = node
            .reader()
            .state()
            .acl
            .resolve(token, now_ms, &datacenter, default)
            .map_err(|e| e.to_string())?;
        if resolved
            .authorizer
            .allows(::acl::Resource::Node, name, ::acl::Access::Write)
        {
            Ok(())
        } else {
            Err(format!(
                "Permission denied: token with AccessorID '{}' lacks permission 'node:write' on \"{name}\"",
                resolved.accessor_id
            ))
        }
    });
    Ok(rpc::tls::AgentSigner::from_files(
        ca_file,
        ca_key_file,
        &config.datacenter,
        &config.dns.domain,
        authorize,
    )?)
}

/// The address other servers reach this one at.
fn advertise_addr(config: &config::Config) -> std::net::IpAddr {
    config
        .advertise_addr
        .unwrap_or(if config.bind_addr.is_unspecified() {
            config.client_addr
        } else {
            config.bind_addr
        })
}

fn port(configured: i32, default: u16) -> u16 {
    u16::try_from(configured).unwrap_or(default)
}

/// Raft wants a u64 id; derive it from the node UUID so it is stable and, in practice, unique.
fn raft_id(node_id: &str) -> u64 {
    let uuid = uuid::Uuid::parse_str(node_id).unwrap_or_default();
    let bytes = uuid.as_bytes();
    u64::from_be_bytes(bytes[..8].try_into().expect("uuid has 16 bytes")).max(1)
}

/// Raft timing scaled like Consul's `raft_multiplier`, and the snapshot policy.
fn raft_config(config: &config::Config) -> Result<openraft::Config, ServerError> {
    let m = u64::from(config.performance.raft_multiplier.max(1));
    openraft::Config {
        cluster_name: config.datacenter.clone(),
        heartbeat_interval: 100 * m,
        election_timeout_min: 300 * m,
        election_timeout_max: 600 * m,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.raft_snapshot_threshold),
        max_in_snapshot_log_to_keep: config.raft_trailing_logs,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ServerError::Raft(e.to_string()))
}
