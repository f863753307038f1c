//! The running agent: local state behind a lock, one runner per check, TTL timers, the
//! critical-service reaper, persistence, and the anti-entropy loop that keeps the catalog in
//! line with the local state.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use catalog::{CatalogOp, HealthCheck, Node, NodeState, Service, ServiceHealth, Status};
use futures::future::BoxFuture;
use rand::Rng;
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::checks::{self, Damping, Outcome, Probe};
use crate::definition::{CheckBody, CheckDefinition, CheckKind, Invalid, ServiceBody};
use crate::local::{LocalError, LocalState};
use crate::persist::{Persisted, TtlState};

/// How long one blocking read of an aliased node waits (Consul's alias checks block a minute).
const ALIAS_WAIT: Duration = Duration::from_secs(60);
/// Back-off between failed reads of an aliased node.
const ALIAS_RETRY_MIN: Duration = Duration::from_secs(1);
const ALIAS_RETRY_MAX: Duration = Duration::from_secs(30);

/// How the agent reaches the catalog: directly on a server, over server RPC on a client.
pub trait CatalogClient: Send + Sync + 'static {
    /// Applies one registration or deregistration through raft.
    fn apply(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), String>>;
    /// What the catalog holds for `node` (read linearizably).
    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>>;
    /// What the catalog holds for another `node`, once its index differs from `index` (or
    /// after `wait`), with that index: a blocking query, possibly stale.
    fn watch_node(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(NodeState, u64), String>>;
    /// The instances of service `name` with their health (its proxies and mesh-native
    /// instances with `connect`), once their index differs from `index` (or after `wait`),
    /// with that index: a blocking query, possibly stale.
    fn watch_service(
        &self,
        name: &str,
        connect: bool,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Vec<ServiceHealth>, u64), String>>;
    /// The node whose address is `addr`, else the name of a service with an instance there
    /// (DNS PTR), possibly stale.
    fn by_address(&self, addr: std::net::IpAddr) -> BoxFuture<'_, Result<AddressOwner, String>>;
}

/// What has an address: the node there, else the name of a service with an instance there.
pub type AddressOwner = (Option<Node>, Option<String>);

/// Tunables, with Consul's defaults in [`AgentConfig::new`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: Node,
    /// Where registrations made through the API survive restarts.
    pub data_dir: Option<PathBuf>,
    /// Full sync period before scaling (`ae_interval`, 1m).
    pub ae_interval: Duration,
    /// Output-only changes sync at most this often (`check_update_interval`, 5m).
    pub check_update_interval: Duration,
    /// How often critical services are reaped (`check_reap_interval`, 30s).
    pub check_reap_interval: Duration,
    /// Retry after a failed sync (15s in Consul).
    pub sync_retry: Duration,
    pub enable_script_checks: bool,
    pub enable_local_script_checks: bool,
    /// Where the agent's configuration was read from, for [`Agent::reload`].
    pub config_sources: Option<config::Sources>,
}

impl AgentConfig {
    pub fn new(node: Node) -> Self {
        AgentConfig {
            node,
            data_dir: None,
            ae_interval: Duration::from_secs(60),
            check_update_interval: Duration::from_secs(300),
            check_reap_interval: Duration::from_secs(30),
            sync_retry: Duration::from_secs(15),
            enable_script_checks: false,
            enable_local_script_checks: false,
            config_sources: None,
        }
    }
}

/// Why an agent operation was refused, with the HTTP status Consul gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// 400.
    #[error("{0}")]
    Invalid(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 500 (e.g. the TTL text clients match on).
    #[error("{0}")]
    Internal(String),
}

impl From<Invalid> for AgentError {
    fn from(err: Invalid) -> Self {
        AgentError::Invalid(err.0)
    }
}

/// Where a registration came from: config files are not persisted (they are read again at
/// start), API registrations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config,
    Api,
}

/// A handle to the running agent; cheap to clone.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.inner.config.node.name)
            .finish()
    }
}

struct Inner {
    config: AgentConfig,
    state: Mutex<LocalState>,
    persisted: Mutex<Persisted>,
    /// Check ID -> its runner or TTL timer.
    tasks: Mutex<HashMap<String, CheckTask>>,
    client: Arc<dyn CatalogClient>,
    sync_now: Arc<Notify>,
    /// Bumped on every local change (for hash-based blocking on agent endpoints).
    changes: watch::Sender<u64>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Set once the agent has left (`PUT /v1/agent/leave`); the process then exits.
    left: watch::Sender<bool>,
    /// The registrations that came from config files, which a reload replaces.
    from_config: Mutex<FromConfig>,
}

/// IDs of the services and checks defined in config files (not taken over by the API since).
#[derive(Debug, Default)]
struct FromConfig {
    services: BTreeSet<String>,
    checks: BTreeSet<String>,
}

enum CheckTask {
    Runner(#[allow(dead_code)] checks::RunnerHandle),
    /// An alias of another node: a blocking query loop.
    Alias(JoinHandle<()>),
    Ttl {
        deadline: watch::Sender<tokio::time::Instant>,
        task: JoinHandle<()>,
    },
}

impl Drop for CheckTask {
    fn drop(&mut self) {
        if let CheckTask::Ttl { task, .. } | CheckTask::Alias(task) = self {
            task.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .background
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default()
        {
            task.abort();
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Consul's anti-entropy scale factor: 1 up to 128 nodes, then one more per doubling.
pub fn scale_factor(nodes: usize) -> u32 {
    const THRESHOLD: f64 = 128.0;
    let n = nodes as f64;
    if n <= THRESHOLD {
        1
    } else {
        ((n.log2() - THRESHOLD.log2()).ceil() as u32) + 1
    }
}

impl Agent {
    /// Starts the agent: restores persisted registrations, registers `from_config`, starts
    /// the sync loop and the reaper.
    pub fn start(
        config: AgentConfig,
        client: Arc<dyn CatalogClient>,
        from_config: Vec<ServiceBody>,
        checks_from_config: Vec<CheckBody>,
    ) -> Result<Agent, AgentError> {
        let persisted = match &config.data_dir {
            Some(dir) => Persisted::load(dir).map_err(AgentError::Internal)?,
            None => Persisted::default(),
        };
        let state = LocalState::new(
            config.node.clone(),
            config.check_update_interval.as_millis() as u64,
        );
        let agent = Agent {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                persisted: Mutex::new(Persisted::default()),
                tasks: Mutex::new(HashMap::new()),
                client,
                sync_now: Arc::new(Notify::new()),
                changes: watch::channel(0).0,
                background: Mutex::new(Vec::new()),
                left: watch::channel(false).0,
                from_config: Mutex::default(),
            }),
        };
        for body in from_config {
            agent.register_service(body, false, Source::Config)?;
        }
        for body in checks_from_config {
            agent.register_check(body, Source::Config)?;
        }
        agent.restore(persisted);
        let sync = tokio::spawn(sync_loop(Arc::downgrade(&agent.inner)));
        let reaper = tokio::spawn(reap_loop(Arc::downgrade(&agent.inner)));
        agent
            .inner
            .background
            .lock()
            .expect("agent poisoned")
            .extend([sync, reaper]);
        Ok(agent)
    }

    /// Starts the agent of node `node_id` at `address` as the agent configuration says:
    /// intervals, script checks, and the services and checks of its config files.
    pub fn from_config(
        config: &config::Config,
        node_id: &str,
        address: &str,
        data_dir: &std::path::Path,
        client: Arc<dyn CatalogClient>,
    ) -> Result<Agent, AgentError> {
        let node =
            crate::identity::node_record(&config.node_name, node_id, address, &config.datacenter);
        let agent_config = AgentConfig {
            data_dir: Some(data_dir.to_path_buf()),
            ae_interval: config.ae_interval,
            check_update_interval: config.check_update_interval,
            enable_script_checks: config.enable_script_checks,
            enable_local_script_checks: config.enable_local_script_checks,
            config_sources: Some(config.sources.clone()),
            ..AgentConfig::new(node)
        };
        let (services, checks) = crate::definition::from_config(&config.services, &config.checks)?;
        Agent::start(agent_config, client, services, checks)
    }

    /// Registrations made through the API before a restart come back, with their TTL
    /// checks' last status while still within their TTL.
    fn restore(&self, persisted: Persisted) {
        for (id, body) in &persisted.services {
            match serde_json::from_value::<ServiceBody>(body.clone()) {
                Ok(service) => {
                    if let Err(err) = self.register_service(service, false, Source::Api) {
                        tracing::warn!(service = %id, %err, "dropping a persisted service");
                    }
                }
                Err(err) => tracing::warn!(service = %id, %err, "unreadable persisted service"),
            }
        }
        for (id, body) in &persisted.checks {
            match serde_json::from_value::<CheckBody>(body.clone()) {
                Ok(check) => {
                    if let Err(err) = self.register_check(check, Source::Api) {
                        tracing::warn!(check = %id, %err, "dropping a persisted check");
                    }
                }
                Err(err) => tracing::warn!(check = %id, %err, "unreadable persisted check"),
            }
        }
        if let Some(reason) = &persisted.node_maintenance {
            self.node_maintenance(true, reason);
        }
        for (id, reason) in &persisted.service_maintenance {
            let _ = self.service_maintenance(id, true, reason);
        }
        let now = now_ms();
        for (id, ttl) in &persisted.ttl_state {
            if ttl.expires_ms > now {
                if let Some(status) = Status::parse(&ttl.status) {
                    let _ = self.ttl_update(id, status, &ttl.output);
                }
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, LocalState> {
        self.inner.state.lock().expect("agent state poisoned")
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
        self.inner.sync_now.notify_one();
    }

    fn persist(&self, edit: impl FnOnce(&mut Persisted)) {
        let mut persisted = self.inner.persisted.lock().expect("agent persist poisoned");
        edit(&mut persisted);
        if let Some(dir) = &self.inner.config.data_dir {
            if let Err(err) = persisted.save(dir) {
                tracing::error!(%err, "saving the agent's local state failed");
            }
        }
    }

    pub fn node(&self) -> Node {
        self.inner.config.node.clone()
    }

    /// Subscribes to local changes.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    // ---- services ----------------------------------------------------------------------

    /// `PUT /v1/agent/service/register`.
    pub fn register_service(
        &self,
        body: ServiceBody,
        replace_existing_checks: bool,
        source: Source,
    ) -> Result<(), AgentError> {
        let raw = (source == Source::Api).then(|| body.to_json());
        let token = body.token.clone();
        let def = {
            let state = self.state();
            body.validate(&|port| state.port_taken(port))?
        };
        self.service_checks_allowed(&def, source)?;
        // Persist the sidecar's port as assigned, so a restart gives it the same one.
        let raw = raw.map(|mut raw| {
            if let Some(sidecar) = &def.sidecar {
                raw = with_sidecar_port(raw, sidecar.service.port);
            }
            raw
        });
        let id = def.service.id.clone();
        let started = self
            .state()
            .add_service(def, &token, replace_existing_checks);
        self.restart_checks(&started);
        self.prune_tasks();
        self.note_source(|f| &mut f.services, &id, source);
        if let Some(raw) = raw {
            self.persist(|p| {
                p.services.insert(id.clone(), raw);
            });
        }
        self.changed();
        Ok(())
    }

    /// `PUT /v1/agent/service/deregister/:id`: unknown IDs are a no-op.
    pub fn deregister_service(&self, id: &str) {
        self.config_sourced().services.remove(id);
        let removed = self.state().remove_service(id);
        if let Some(checks) = removed {
            self.stop_checks(&checks);
            self.persist(|p| {
                p.services.remove(id);
                p.service_maintenance.remove(id);
                for check in &checks {
                    p.ttl_state.remove(check);
                    p.checks.remove(check);
                }
            });
            // Aliases of it turn critical (it is gone); aliases of the node lose its checks.
            self.refresh_aliases();
            self.changed();
        }
    }

    pub fn services(&self) -> Vec<Service> {
        self.state().services().map(|s| s.service.clone()).collect()
    }

    pub fn service(&self, id: &str) -> Option<Service> {
        self.state().service(id).map(|s| s.service.clone())
    }

    // ---- configuration -----------------------------------------------------------------

    /// `PUT /v1/agent/reload` and SIGHUP: reads the config files again and makes the services
    /// and checks they define the agent's config-sourced ones. Those no longer defined are
    /// removed, new ones added, changed ones replaced; checks that stay keep their status.
    /// Registrations made through the API are left alone. A configuration that does not load
    /// or validate changes nothing.
    pub fn reload(&self) -> Result<(), AgentError> {
        let Some(sources) = &self.inner.config.config_sources else {
            return Ok(());
        };
        let failed = |err: String| AgentError::Internal(format!("Failed to reload configs: {err}"));
        let config = sources.load().map_err(|err| failed(err.to_string()))?;
        let (services, checks) = crate::definition::from_config(&config.services, &config.checks)
            .map_err(|err| failed(err.to_string()))?;
        self.replace_config_definitions(services, checks)
            .map_err(|err| failed(err.to_string()))
    }

    fn replace_config_definitions(
        &self,
        services: Vec<ServiceBody>,
        checks: Vec<CheckBody>,
    ) -> Result<(), AgentError> {
        // Everything is checked before anything changes.
        let mut service_ids = BTreeSet::new();
        for body in &services {
            let def = body.clone().validate(&|_| false)?;
            self.service_checks_allowed(&def, Source::Config)?;
            service_ids.insert(def.service.id);
        }
        let mut check_ids = BTreeSet::new();
        for body in &checks {
            let def = body.clone().validate("", "")?;
            self.check_allowed(&def, Source::Config)?;
            let service_known = def.service_id.is_empty()
                || service_ids.contains(&def.service_id)
                || self.state().service(&def.service_id).is_some();
            if !service_known {
                return Err(AgentError::NotFound(format!(
                    "ServiceID {:?} does not exist",
                    def.service_id
                )));
            }
            check_ids.insert(def.id);
        }
        let (gone_services, gone_checks) = {
            let from_config = self.config_sourced();
            let gone = |old: &BTreeSet<String>, new: &BTreeSet<String>| -> Vec<String> {
                old.difference(new).cloned().collect()
            };
            (
                gone(&from_config.services, &service_ids),
                gone(&from_config.checks, &check_ids),
            )
        };
        for id in gone_checks {
            self.deregister_check(&id);
        }
        for id in gone_services {
            self.deregister_service(&id);
        }
        for body in services {
            self.register_service(body, false, Source::Config)?;
        }
        for body in checks {
            self.register_check(body, Source::Config)?;
        }
        Ok(())
    }

    fn config_sourced(&self) -> MutexGuard<'_, FromConfig> {
        self.inner.from_config.lock().expect("agent poisoned")
    }

    /// Records where the registration `id` last came from: an API registration takes a
    /// config-defined one over, so a reload no longer touches it.
    fn note_source(
        &self,
        set: impl FnOnce(&mut FromConfig) -> &mut BTreeSet<String>,
        id: &str,
        source: Source,
    ) {
        let mut from_config = self.config_sourced();
        let ids = set(&mut from_config);
        match source {
            Source::Config => ids.insert(id.to_owned()),
            Source::Api => ids.remove(id),
        };
    }

    // ---- checks ------------------------------------------------------------------------

    /// `PUT /v1/agent/check/register`.
    pub fn register_check(&self, body: CheckBody, source: Source) -> Result<(), AgentError> {
        let raw = (source == Source::Api).then(|| body.to_json());
        let def = body.validate("", "")?;
        if !def.service_id.is_empty() && self.state().service(&def.service_id).is_none() {
            return Err(AgentError::NotFound(format!(
                "ServiceID {:?} does not exist",
                def.service_id
            )));
        }
        self.check_allowed(&def, source)?;
        let id = def.id.clone();
        self.state().add_check(def);
        self.restart_checks(std::slice::from_ref(&id));
        self.note_source(|f| &mut f.checks, &id, source);
        if let Some(raw) = raw {
            self.persist(|p| {
                p.checks.insert(id.clone(), raw);
            });
        }
        self.changed();
        Ok(())
    }

    /// [`Self::check_allowed`] for every check a service definition brings, its sidecar's
    /// included.
    fn service_checks_allowed(
        &self,
        def: &crate::definition::ServiceDefinition,
        source: Source,
    ) -> Result<(), AgentError> {
        def.checks
            .iter()
            .chain(def.sidecar.iter().flat_map(|s| &s.checks))
            .try_for_each(|check| self.check_allowed(check, source))
    }

    fn check_allowed(&self, def: &CheckDefinition, source: Source) -> Result<(), AgentError> {
        let config = &self.inner.config;
        let allowed = config.enable_script_checks
            || (source == Source::Config && config.enable_local_script_checks);
        if matches!(def.kind, CheckKind::Script { .. }) && !allowed {
            return Err(AgentError::Invalid(
                "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true".into(),
            ));
        }
        Ok(())
    }

    /// `PUT /v1/agent/check/deregister/:id`.
    pub fn deregister_check(&self, id: &str) {
        self.config_sourced().checks.remove(id);
        if self.state().remove_check(id) {
            self.stop_checks(&[id.to_owned()]);
            self.persist(|p| {
                p.checks.remove(id);
                p.ttl_state.remove(id);
            });
            // An alias no longer follows a check that is gone.
            self.refresh_aliases();
            self.changed();
        }
    }

    pub fn checks(&self) -> Vec<HealthCheck> {
        self.state().checks().map(|c| c.check.clone()).collect()
    }

    /// `PUT /v1/agent/check/pass|warn|fail|update/:id`: resets the TTL timer.
    pub fn ttl_update(&self, id: &str, status: Status, output: &str) -> Result<(), AgentError> {
        let ttl = {
            let mut state = self.state();
            state
                .ttl_update(id, status, output, now_ms())
                .map_err(|e: LocalError| AgentError::Internal(e.to_string()))?;
            match state
                .check(id)
                .and_then(|c| c.definition.as_ref())
                .map(|d| &d.kind)
            {
                Some(CheckKind::Ttl(ttl)) => *ttl,
                _ => Duration::ZERO,
            }
        };
        if let Some(CheckTask::Ttl { deadline, .. }) = self.tasks().get(id) {
            deadline.send_replace(tokio::time::Instant::now() + ttl);
        }
        self.refresh_aliases();
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        self.persist(|p| {
            p.ttl_state.insert(
                id.to_owned(),
                TtlState {
                    status: status.as_str().to_owned(),
                    output: output.to_owned(),
                    expires_ms,
                },
            );
        });
        self.changed();
        Ok(())
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<String, CheckTask>> {
        self.inner.tasks.lock().expect("agent tasks poisoned")
    }

    /// (Re)starts the runner or TTL timer of each check.
    fn restart_checks(&self, ids: &[String]) {
        let defs: Vec<CheckDefinition> = {
            let state = self.state();
            ids.iter()
                .filter_map(|id| state.check(id)?.definition.clone())
                .collect()
        };
        let mut tasks = self.tasks();
        for def in defs {
            let task = match &def.kind {
                CheckKind::Ttl(ttl) => Some(self.spawn_ttl(&def.id, *ttl)),
                CheckKind::Alias { node, service } if self.is_remote(node) => {
                    Some(self.spawn_remote_alias(&def.id, node, service))
                }
                CheckKind::Alias { .. } => None,
                kind => probe_for(kind).map(|probe| {
                    let weak = Arc::downgrade(&self.inner);
                    let id = def.id.clone();
                    let report = Arc::new(move |outcome: Outcome| {
                        if let Some(inner) = weak.upgrade() {
                            Agent { inner }.on_result(&id, outcome);
                        }
                    });
                    CheckTask::Runner(checks::spawn(
                        probe,
                        def.interval,
                        def.timeout,
                        def.output_max,
                        Damping {
                            success_before_passing: def.success_before_passing,
                            failures_before_warning: def.failures_before_warning,
                            failures_before_critical: def.failures_before_critical,
                        },
                        report,
                    ))
                }),
            };
            match task {
                Some(task) => {
                    tasks.insert(def.id.clone(), task);
                }
                None => {
                    tasks.remove(&def.id);
                }
            }
        }
        drop(tasks);
        self.refresh_aliases();
    }

    /// Whether an alias names another node than this one.
    fn is_remote(&self, node: &str) -> bool {
        !node.is_empty() && node != self.inner.config.node.name
    }

    /// An alias of another node (or a service on it) follows that node's checks in the catalog
    /// through a blocking query on the servers, as Consul's does.
    fn spawn_remote_alias(&self, id: &str, node: &str, service: &str) -> CheckTask {
        let weak = Arc::downgrade(&self.inner);
        let client = self.inner.client.clone();
        let (id, node, service) = (id.to_owned(), node.to_owned(), service.to_owned());
        let task = tokio::spawn(async move {
            let mut index = 0;
            let mut backoff = ALIAS_RETRY_MIN;
            loop {
                match client.watch_node(&node, index, ALIAS_WAIT).await {
                    Ok((state, new_index)) => {
                        backoff = ALIAS_RETRY_MIN;
                        index = new_index;
                        let exists = state.services.iter().any(|s| s.id == service);
                        let (status, output) =
                            checks::alias_status(&node, &service, exists, &state.checks);
                        let Some(inner) = weak.upgrade() else { return };
                        Agent { inner }.on_result(&id, Outcome { status, output });
                    }
                    Err(err) => {
                        tracing::warn!(check = %id, %node, %err, "alias check: reading the aliased node failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ALIAS_RETRY_MAX);
                    }
                }
            }
        });
        CheckTask::Alias(task)
    }

    fn spawn_ttl(&self, id: &str, ttl: Duration) -> CheckTask {
        let (deadline, mut rx) = watch::channel(tokio::time::Instant::now() + ttl);
        let weak = Arc::downgrade(&self.inner);
        let id = id.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let at = *rx.borrow_and_update();
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        let Some(inner) = weak.upgrade() else { return };
                        Agent { inner }.ttl_expired(&id);
                        // Wait for the next update before arming again.
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        CheckTask::Ttl { deadline, task }
    }

    fn ttl_expired(&self, id: &str) {
        let changed = {
            let mut state = self.state();
            let Some(check) = state.check(id) else { return };
            if check.check.status == Status::Critical
                && check.check.output.starts_with("TTL expired")
            {
                return;
            }
            let output = match check.check.output.as_str() {
                "" => "TTL expired".to_owned(),
                last => format!("TTL expired (last output before timeout follows): {last}"),
            };
            state.update_check(id, Status::Critical, &output, now_ms())
        };
        if changed {
            self.refresh_aliases();
            self.changed();
        }
    }

    fn on_result(&self, id: &str, outcome: Outcome) {
        let changed = {
            let mut state = self.state();
            let before = state
                .check(id)
                .map(|c| (c.check.status, c.check.output.clone()));
            state.update_check(id, outcome.status, &outcome.output, now_ms())
                && before != Some((outcome.status, outcome.output.clone()))
        };
        if changed {
            self.refresh_aliases();
            self.changed();
        }
    }

    /// Aliases of this node (or its services) mirror the local checks, at once.
    fn refresh_aliases(&self) {
        let mut state = self.state();
        let aliases: Vec<(String, String)> = state
            .checks()
            .filter_map(|c| match &c.definition.as_ref()?.kind {
                CheckKind::Alias { node, service } if !self.is_remote(node) => {
                    Some((c.check.check_id.clone(), service.clone()))
                }
                _ => None,
            })
            .collect();
        let now = now_ms();
        let node = state.node().name.clone();
        for (id, service) in aliases {
            let exists = state.service(&service).is_some();
            let (status, output) = checks::alias_status(
                &node,
                &service,
                exists,
                state
                    .checks()
                    .map(|c| &c.check)
                    .filter(|c| c.check_id != id),
            );
            state.update_check(&id, status, &output, now);
        }
    }

    fn stop_checks(&self, ids: &[String]) {
        let mut tasks = self.tasks();
        for id in ids {
            tasks.remove(id);
        }
    }

    /// Drops runners whose checks are gone (e.g. removed by `replace-existing-checks`).
    fn prune_tasks(&self) {
        let live: std::collections::HashSet<String> = self
            .state()
            .checks()
            .map(|c| c.check.check_id.clone())
            .collect();
        self.tasks().retain(|id, _| live.contains(id));
    }

    // ---- maintenance -------------------------------------------------------------------

    pub fn node_maintenance(&self, enable: bool, reason: &str) {
        self.state().set_node_maintenance(enable, reason);
        self.persist(|p| p.node_maintenance = enable.then(|| reason.to_owned()));
        self.changed();
    }

    pub fn service_maintenance(
        &self,
        service_id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), AgentError> {
        self.state()
            .set_service_maintenance(service_id, enable, reason)
            .map_err(|_| AgentError::NotFound(format!("Unknown service ID: {service_id}")))?;
        self.persist(|p| {
            if enable {
                p.service_maintenance
                    .insert(service_id.to_owned(), reason.to_owned());
            } else {
                p.service_maintenance.remove(service_id);
            }
        });
        self.changed();
        Ok(())
    }

    // ---- sync --------------------------------------------------------------------------

    /// Whether the catalog reflects every local change (tests wait on this).
    pub fn in_sync(&self) -> bool {
        self.state().in_sync()
    }

    /// Leaves the datacenter gracefully (`PUT /v1/agent/leave`): stops syncing and checking,
    /// removes this node from the catalog, and marks the agent as left so its process exits.
    /// The local registrations stay on disk and come back if the agent starts again.
    pub async fn leave(&self) -> Result<(), AgentError> {
        for task in std::mem::take(&mut *self.inner.background.lock().expect("agent poisoned")) {
            task.abort();
        }
        self.tasks().clear();
        let node = self.inner.config.node.name.clone();
        let result = self
            .inner
            .client
            .apply(CatalogOp::Deregister {
                node,
                service_id: None,
                check_id: None,
            })
            .await
            .map_err(AgentError::Internal);
        self.inner.left.send_replace(true);
        result
    }

    /// Completes once the agent has left.
    pub async fn left(&self) {
        let mut rx = self.inner.left.subscribe();
        let _ = rx.wait_for(|left| *left).await;
    }

    /// Asks the sync loop to run now.
    pub fn sync_now(&self) {
        self.inner.sync_now.notify_one();
    }
}

/// The probe for a check kind the runner executes.
fn probe_for(kind: &CheckKind) -> Option<Probe> {
    Some(match kind {
        CheckKind::Http {
            url,
            method,
            headers,
            body,
            disable_redirects,
            tls_server_name,
            tls_skip_verify,
        } => Probe::Http(checks::HttpProbe {
            url: url.clone(),
            method: method.clone(),
            headers: headers.clone(),
            body: body.clone(),
            disable_redirects: *disable_redirects,
            tls_server_name: tls_server_name.clone(),
            tls_skip_verify: *tls_skip_verify,
        }),
        CheckKind::Tcp(addr) => Probe::Tcp { addr: addr.clone() },
        CheckKind::Udp(addr) => Probe::Udp { addr: addr.clone() },
        CheckKind::Grpc {
            target,
            use_tls,
            tls_server_name,
            tls_skip_verify,
        } => Probe::Grpc(checks::GrpcProbe {
            target: target.clone(),
            use_tls: *use_tls,
            tls_server_name: tls_server_name.clone(),
            tls_skip_verify: *tls_skip_verify,
        }),
        CheckKind::H2Ping {
            addr,
            use_tls,
            tls_server_name,
            tls_skip_verify,
        } => Probe::H2Ping {
            addr: addr.clone(),
            use_tls: *use_tls,
            tls_server_name: tls_server_name.clone(),
            tls_skip_verify: *tls_skip_verify,
        },
        CheckKind::Script { args } => Probe::Script {
            args: args.clone(),
            shell: None,
        },
        CheckKind::Ttl(_) | CheckKind::Alias { .. } => return None,
    })
}

/// The definition with its sidecar's port as assigned (the same as given, when one was).
fn with_sidecar_port(mut raw: Value, port: u16) -> Value {
    if let Some(sidecar) = raw
        .get_mut("Connect")
        .and_then(|c| c.get_mut("SidecarService"))
        .and_then(Value::as_object_mut)
    {
        sidecar.insert("Port".into(), Value::from(port));
    }
    raw
}

/// Anti-entropy: a full sync (read the catalog's view of this node, reconcile) every
/// `ae_interval` scaled by cluster size plus a random stagger, and partial syncs at once on
/// every local change. Failures retry after `sync_retry`.
async fn sync_loop(inner: std::sync::Weak<Inner>) {
    let mut full_due = tokio::time::Instant::now();
    let mut reached_servers = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let agent = Agent { inner: strong };
        let config = agent.inner.config.clone();
        let now = tokio::time::Instant::now();
        let mut failed = false;
        if now >= full_due {
            match agent.inner.client.node_state(&config.node.name).await {
                Ok(remote) => {
                    reached_servers = true;
                    agent.state().reconcile(&remote);
                    let scaled = config.ae_interval * scale_factor(remote.nodes);
                    let stagger = rand::rng().random_range(0..=scaled.as_millis() as u64);
                    full_due = now + config.ae_interval + Duration::from_millis(stagger);
                }
                Err(err) => {
                    // Before the first success the servers may simply not be known yet (a
                    // client learns them through gossip): not worth a warning.
                    if reached_servers {
                        tracing::warn!(%err, "anti-entropy: reading the catalog failed");
                    } else {
                        tracing::info!(%err, "anti-entropy: waiting for the servers");
                    }
                    full_due = now + config.sync_retry;
                    failed = true;
                }
            }
        }
        let (steps, next_output_due) = agent.state().plan(now_ms());
        for step in &steps {
            match agent.inner.client.apply(step.op.clone()).await {
                Ok(()) => agent.state().mark_synced(step, now_ms()),
                Err(err) => {
                    if reached_servers {
                        tracing::warn!(%err, "anti-entropy: syncing a change failed");
                    } else {
                        tracing::info!(%err, "anti-entropy: waiting for the servers");
                    }
                    failed = true;
                    break;
                }
            }
        }
        let mut wake = full_due;
        if failed {
            wake = wake.min(tokio::time::Instant::now() + config.sync_retry);
        }
        if let Some(due_ms) = next_output_due {
            let wait = Duration::from_millis(due_ms.saturating_sub(now_ms()));
            wake = wake.min(tokio::time::Instant::now() + wait);
        }
        let notify = agent.inner.sync_now.clone();
        drop(agent);
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Deregisters services whose checks have been critical past their
/// `DeregisterCriticalServiceAfter`.
async fn reap_loop(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(period) = inner.upgrade().map(|i| i.config.check_reap_interval) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let agent = Agent { inner: strong };
        let doomed = agent.state().services_to_reap(now_ms());
        for id in doomed {
            tracing::info!(service = %id, "deregistering a service critical for too long");
            agent.deregister_service(&id);
        }
    }
}

#[cfg(test)]
mod tests;
