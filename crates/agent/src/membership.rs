//! The agent's place in its datacenter's gossip pool: it advertises who it is (server or client,
//! datacenter, RPC port), joins through `retry_join` and `/v1/agent/join`, reports the members
//! (`/v1/agent/members`), finds the servers, and leaves gracefully.
//!
//! Gossip itself (SWIM, encryption, events) lives in the `gossip` crate; this module maps the
//! agent's configuration onto it and keeps the keyring in the data directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use gossip::driver::GossipHandle;
use gossip::{Event, Keyring, Member, MemberStatus, QueryRequest, Tags, UserEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// Tag naming an agent's role: [`ROLE_SERVER`] or [`ROLE_CLIENT`] (serf's `role`).
pub const TAG_ROLE: &str = "role";
/// The role of servers (Consul's value).
pub const ROLE_SERVER: &str = "consul";
/// The role of client agents.
pub const ROLE_CLIENT: &str = "node";
/// A server's RPC port.
pub const TAG_PORT: &str = "port";
/// The node ID.
pub const TAG_ID: &str = "id";
/// The datacenter.
pub const TAG_DC: &str = "dc";
/// A server's `bootstrap_expect`.
pub const TAG_EXPECT: &str = "expect";
/// The agent's version.
pub const TAG_BUILD: &str = "build";

/// Where the keyring is kept, like Consul's `serf/local.keyring`.
const KEYRING_FILE: &str = "serf/local.keyring";
/// How long to wait between rounds of `retry_join` (Consul's `retry_interval` is 30s; a
/// shorter one forms a datacenter faster and costs one datagram per address).
const RETRY_JOIN_INTERVAL: Duration = Duration::from_secs(2);
/// How long after an answered join another live member must show up.
const JOIN_SETTLE: Duration = Duration::from_secs(5);
/// How long an agent may see no other live member before `retry_join` joins again.
const ISOLATION_GRACE: Duration = Duration::from_secs(15);

/// What the agent's configuration says about its gossip.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub node_id: String,
    pub datacenter: String,
    /// Where the gossip socket binds.
    pub bind: SocketAddr,
    /// Where other agents reach it.
    pub advertise: SocketAddr,
    /// `Some(rpc port)` for a server.
    pub server_port: Option<u16>,
    pub bootstrap_expect: u32,
    /// `encrypt`, base64.
    pub encrypt: Option<String>,
    pub reconnect_timeout: Duration,
    pub retry_join: Vec<String>,
    pub data_dir: PathBuf,
    pub version: String,
}

impl Settings {
    /// The gossip settings of an agent configured by `config`, advertising `advertise`.
    pub fn from_config(
        config: &config::Config,
        node_id: &str,
        advertise: std::net::IpAddr,
        server_port: Option<u16>,
        data_dir: &Path,
        version: &str,
    ) -> Settings {
        let port = match config.ports.serf_lan {
            p if p > 0 => p as u16,
            _ => DEFAULT_PORT,
        };
        Settings {
            node_name: config.node_name.clone(),
            node_id: node_id.to_owned(),
            datacenter: config.datacenter.clone(),
            bind: SocketAddr::new(config.bind_addr, port),
            advertise: SocketAddr::new(advertise, port),
            server_port,
            bootstrap_expect: config.bootstrap_expect,
            encrypt: config.encrypt.clone(),
            reconnect_timeout: config.reconnect_timeout,
            retry_join: config.retry_join.clone(),
            data_dir: data_dir.to_path_buf(),
            version: version.to_owned(),
        }
    }

    fn tags(&self) -> Tags {
        let mut tags = Tags::new();
        tags.insert(TAG_DC.into(), self.datacenter.clone());
        tags.insert(TAG_ID.into(), self.node_id.clone());
        tags.insert(TAG_BUILD.into(), self.version.clone());
        match self.server_port {
            Some(port) => {
                tags.insert(TAG_ROLE.into(), ROLE_SERVER.into());
                tags.insert(TAG_PORT.into(), port.to_string());
                if self.bootstrap_expect > 0 {
                    tags.insert(TAG_EXPECT.into(), self.bootstrap_expect.to_string());
                }
            }
            None => {
                tags.insert(TAG_ROLE.into(), ROLE_CLIENT.into());
            }
        }
        tags
    }
}

/// The gossip (LAN) port when none is configured or given in a join address.
pub const DEFAULT_PORT: u16 = 8301;

/// Why the agent could not take part in gossip.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("reading the gossip keyring {path}: {message}")]
    Keyring { path: PathBuf, message: String },
    #[error("starting gossip on {addr}: {message}")]
    Start { addr: SocketAddr, message: String },
    /// `/v1/agent/join` (500 with this text).
    #[error("{0}")]
    Join(String),
    /// `/v1/agent/force-leave` of a member gossip does not know, and other refusals.
    #[error("{0}")]
    Refused(String),
}

/// A handle on the agent's gossip membership; cheap to clone.
#[derive(Debug, Clone)]
pub struct Membership {
    handle: GossipHandle,
    keyring_path: PathBuf,
    /// Gossip events seen, for the agent's metrics.
    counters: Arc<EventCounters>,
}

impl Membership {
    /// Joins the pool: binds the gossip socket, loads the keyring (the data directory's wins
    /// over `encrypt`, as in Consul, so a rotated key survives restarts), and keeps trying
    /// `retry_join` in the background until one address answers.
    pub async fn start(settings: Settings) -> Result<Membership, MembershipError> {
        let keyring_path = settings.data_dir.join(KEYRING_FILE);
        let keyring = load_keyring(&keyring_path, settings.encrypt.as_deref())?;
        let mut config = gossip::Config::new(&settings.node_name, settings.advertise);
        config.tags = settings.tags();
        config.reconnect_timeout = settings.reconnect_timeout;
        config.keyring = keyring;
        let handle = gossip::driver::spawn(config, settings.bind)
            .await
            .map_err(|err| MembershipError::Start {
                addr: settings.bind,
                message: err.to_string(),
            })?;
        let counters = Arc::new(EventCounters::default());
        tokio::spawn(count_events(counters.clone(), handle.subscribe()));
        let membership = Membership {
            handle,
            keyring_path,
            counters,
        };
        if let Some(keyring) = membership.handle.keyring() {
            membership.save_keyring(&keyring);
        }
        tokio::spawn(answer_keyring_queries(
            membership.clone(),
            membership.subscribe(),
        ));
        if !settings.retry_join.is_empty() {
            tokio::spawn(retry_join(membership.clone(), settings.retry_join));
        }
        Ok(membership)
    }

    /// Every member this agent knows, itself included.
    pub fn members(&self) -> Vec<Member> {
        self.handle.members()
    }

    /// The gossip events this agent has seen since it started.
    pub fn stats(&self) -> GossipStats {
        self.counters.read()
    }

    /// Bumped whenever the member list changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.handle.changes()
    }

    /// Everything gossip reports from now on: member changes, user events, queries.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.handle.subscribe()
    }

    /// Gossips a user event to the pool; returns it with its Lamport time.
    pub async fn fire_event(&self, event: UserEvent) -> Result<UserEvent, MembershipError> {
        self.handle
            .fire_event(event)
            .await
            .map_err(|err| MembershipError::Refused(err.to_string()))
    }

    /// The RPC addresses of the live servers, as their gossip tags advertise them.
    pub fn servers(&self) -> Vec<String> {
        self.members().iter().filter_map(server_rpc_addr).collect()
    }

    /// Joins through `addrs` (`host` or `host:port`, port 8301 by default); how many answered.
    /// Consul's error when none did.
    pub async fn join(&self, addrs: &[String]) -> Result<usize, MembershipError> {
        let mut resolved = Vec::new();
        let mut errors = Vec::new();
        for addr in addrs {
            match resolve(addr).await {
                Ok(found) => resolved.extend(found),
                Err(err) => errors.push(format!("{addr}: {err}")),
            }
        }
        let joined = if resolved.is_empty() {
            0
        } else {
            self.handle
                .join(resolved)
                .await
                .map_err(|err| MembershipError::Join(err.to_string()))?
        };
        if joined == 0 {
            let detail = if errors.is_empty() {
                "no agent answered".to_owned()
            } else {
                errors.join("; ")
            };
            return Err(MembershipError::Join(format!(
                "1 error occurred:\n\t* Failed to join {}: {detail}\n\n",
                addrs.join(", ")
            )));
        }
        Ok(joined)
    }

    /// Leaves the pool gracefully: the others record this agent as left, not failed.
    pub async fn leave(&self) {
        if let Err(err) = self.handle.leave().await {
            tracing::warn!(%err, "leaving the gossip pool");
        }
    }

    /// Leaves the datacenter as `PUT /v1/agent/leave` does, and as a stopping agent does when
    /// configured to: gossip first, so the pool records this agent as left rather than failed
    /// once it exits, then the agent's own leave (out of the catalog, checks stopped).
    pub async fn leave_datacenter(&self, agent: &crate::Agent) -> Result<(), crate::AgentError> {
        self.leave().await;
        agent.leave().await
    }

    /// `/v1/agent/force-leave/:node`: a failed member is marked left (with `prune`, forgotten).
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError> {
        self.handle
            .force_leave(node, prune)
            .await
            .map_err(|err| MembershipError::Refused(err.to_string()))
    }

    /// Lists or changes the gossip keyring on every live member (each persists its own),
    /// and reports what they answered, like Consul's `/v1/operator/keyring`.
    pub async fn keyring(&self, request: KeyringRequest) -> Result<KeyringReport, MembershipError> {
        let live = self
            .members()
            .iter()
            .filter(|m| m.status == MemberStatus::Alive)
            .count()
            .max(1);
        let payload = serde_json::to_vec(&request).expect("a keyring request serializes");
        let answers = self
            .handle
            .query_until(KEYRING_QUERY, payload, keyring_query_timeout(live), live)
            .await
            .map_err(|err| MembershipError::Refused(err.to_string()))?;
        let answers = answers.into_iter().map(|response| {
            let answer = serde_json::from_slice(&response.payload).unwrap_or_else(|err| {
                KeyringAnswer::failed(format!("unreadable keyring answer: {err}"))
            });
            (response.from, answer)
        });
        Ok(KeyringReport::summarize(answers, live))
    }

    /// This agent's keys alone (`?local-only`), as a report of one member.
    pub async fn keyring_local(&self) -> KeyringReport {
        let answer = self.apply_keyring(KeyringRequest::List).await;
        KeyringReport::summarize([(self.handle.name().to_owned(), answer)], 1)
    }

    /// Applies a keyring request from the pool to this agent's keyring, and saves a change.
    async fn apply_keyring(&self, request: KeyringRequest) -> KeyringAnswer {
        let result = match &request {
            KeyringRequest::List => self.handle.keyring_list().await,
            KeyringRequest::Install(key) => self.handle.keyring_install(key).await,
            KeyringRequest::Use(key) => self.handle.keyring_use(key).await,
            KeyringRequest::Remove(key) => self.handle.keyring_remove(key).await,
        };
        match result {
            Ok(keys) => {
                if request != KeyringRequest::List {
                    if let Some(keyring) = self.handle.keyring() {
                        self.save_keyring(&keyring);
                    }
                    tracing::info!(?request, "gossip keyring changed");
                }
                KeyringAnswer { keys, error: None }
            }
            Err(err) => KeyringAnswer::failed(err.to_string()),
        }
    }

    fn save_keyring(&self, keyring: &Keyring) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.keyring_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.keyring_path.with_extension("tmp");
            std::fs::write(&tmp, keyring.to_file_json())?;
            std::fs::rename(&tmp, &self.keyring_path)
        };
        if let Err(err) = write() {
            tracing::error!(path = %self.keyring_path.display(), %err, "saving the gossip keyring failed");
        }
    }
}

/// The internal query that carries keyring requests (serf's are `_serf_install-key` etc.).
const KEYRING_QUERY: &str = "_mesh_keyring";

/// How long a keyring request waits for members that do not answer: serf's query timeout
/// (gossip interval x 16 x log10 of the pool size).
fn keyring_query_timeout(members: usize) -> Duration {
    let scale = ((members + 1) as f64).log10().ceil().max(1.0);
    Duration::from_millis((3_200.0 * scale) as u64)
}

/// A keyring operation, carried to every member as a gossip query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyringRequest {
    List,
    Install(String),
    Use(String),
    Remove(String),
}

/// One member's answer: its keys (primary first), or why it could not comply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeyringAnswer {
    keys: Vec<String>,
    error: Option<String>,
}

impl KeyringAnswer {
    fn failed(error: String) -> Self {
        KeyringAnswer {
            keys: Vec::new(),
            error: Some(error),
        }
    }
}

/// What the pool answered a keyring request: how many members hold each key, and as primary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringReport {
    pub keys: BTreeMap<String, usize>,
    pub primary_keys: BTreeMap<String, usize>,
    /// Live members asked.
    pub num_nodes: usize,
    /// Members that answered.
    pub responses: usize,
    /// Why members failed, by node name.
    pub messages: BTreeMap<String, String>,
}

impl KeyringReport {
    fn summarize(
        answers: impl IntoIterator<Item = (String, KeyringAnswer)>,
        num_nodes: usize,
    ) -> Self {
        let mut report = KeyringReport {
            num_nodes,
            ..KeyringReport::default()
        };
        for (node, answer) in answers {
            report.responses += 1;
            if let Some(error) = answer.error {
                report.messages.insert(node, error);
                continue;
            }
            if let Some(primary) = answer.keys.first() {
                *report.primary_keys.entry(primary.clone()).or_default() += 1;
            }
            for key in answer.keys {
                *report.keys.entry(key).or_default() += 1;
            }
        }
        report
    }

    /// Consul's error when a member failed or did not answer; `None` when all complied.
    pub fn error(&self) -> Option<String> {
        let failed = self.messages.len();
        if failed > 0 {
            let details: Vec<String> = self
                .messages
                .iter()
                .map(|(node, message)| format!("{node}: {message}"))
                .collect();
            return Some(format!(
                "{failed}/{} nodes reported failure ({})",
                self.num_nodes,
                details.join("; ")
            ));
        }
        (self.responses < self.num_nodes).then(|| {
            format!(
                "{}/{} nodes reported success",
                self.responses, self.num_nodes
            )
        })
    }
}

/// Answers the pool's keyring requests for this agent.
async fn answer_keyring_queries(membership: Membership, mut incoming: broadcast::Receiver<Event>) {
    loop {
        let query: QueryRequest = match incoming.recv().await {
            Ok(Event::Query(query)) if query.name == KEYRING_QUERY => query,
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "keyring: fell behind the gossip event stream");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let answer = match serde_json::from_slice(&query.payload) {
            Ok(request) => membership.apply_keyring(request).await,
            Err(err) => KeyringAnswer::failed(format!("unreadable keyring request: {err}")),
        };
        let payload = serde_json::to_vec(&answer).expect("a keyring answer serializes");
        if let Err(err) = membership.handle.respond(query.id, payload).await {
            tracing::warn!(from = %query.from, %err, "answering a keyring request failed");
        }
    }
}

/// Gossip events an agent saw since it started, like serf's `member.*` and `events` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Members that became alive (first seen, or back after failing or leaving).
    pub joined: u64,
    /// Live members that changed their address or tags.
    pub updated: u64,
    pub failed: u64,
    pub left: u64,
    /// Failed or left members removed from the member list.
    pub reaped: u64,
    /// User events delivered.
    pub user_events: u64,
    /// Events this counter fell too far behind to see.
    pub missed: u64,
}

#[derive(Debug, Default)]
struct EventCounters {
    joined: AtomicU64,
    updated: AtomicU64,
    failed: AtomicU64,
    left: AtomicU64,
    reaped: AtomicU64,
    user_events: AtomicU64,
    missed: AtomicU64,
}

impl EventCounters {
    fn count(&self, event: &Event) {
        let counter = match event {
            Event::MemberJoin(_) => &self.joined,
            Event::MemberUpdate(_) => &self.updated,
            Event::MemberFailed(_) => &self.failed,
            Event::MemberLeft(_) => &self.left,
            Event::MemberReaped(_) => &self.reaped,
            Event::User(_) => &self.user_events,
            Event::Query(_) | Event::QueryResponse { .. } | Event::QueryDone { .. } => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn read(&self) -> GossipStats {
        GossipStats {
            joined: self.joined.load(Relaxed),
            updated: self.updated.load(Relaxed),
            failed: self.failed.load(Relaxed),
            left: self.left.load(Relaxed),
            reaped: self.reaped.load(Relaxed),
            user_events: self.user_events.load(Relaxed),
            missed: self.missed.load(Relaxed),
        }
    }
}

/// Counts gossip events until the gossip task stops.
async fn count_events(counters: Arc<EventCounters>, mut events: broadcast::Receiver<Event>) {
    loop {
        match events.recv().await {
            Ok(event) => counters.count(&event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                counters.missed.fetch_add(missed, Relaxed);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The RPC address of a live server member, from its address and `port` tag.
pub fn server_rpc_addr(member: &Member) -> Option<String> {
    let alive = member.status == MemberStatus::Alive;
    let server = member.tags.get(TAG_ROLE).map(String::as_str) == Some(ROLE_SERVER);
    let port: u16 = member.tags.get(TAG_PORT)?.parse().ok()?;
    (alive && server).then(|| SocketAddr::new(member.addr.ip(), port).to_string())
}

/// The keyring file if there is one, else one made of `encrypt`, else none (plaintext).
fn load_keyring(path: &Path, encrypt: Option<&str>) -> Result<Option<Keyring>, MembershipError> {
    let failed = |message: String| MembershipError::Keyring {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let keyring = Keyring::from_file_json(&text).map_err(|e| failed(e.to_string()))?;
            if encrypt.is_some_and(|key| !keyring.list().iter().any(|k| k == key)) {
                tracing::warn!(
                    path = %path.display(),
                    "the keyring file does not hold the configured encrypt key; using the keyring file"
                );
            }
            Ok(Some(keyring))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => encrypt
            .map(|key| Keyring::new(key).map_err(|e| failed(e.to_string())))
            .transpose(),
        Err(err) => Err(failed(err.to_string())),
    }
}

/// `host`, `host:port`, `ip` or `ip:port`, with the gossip port by default.
async fn resolve(addr: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_owned()
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    };
    Ok(tokio::net::lookup_host(with_port).await?.collect())
}

/// Keeps this agent in the pool through `addrs`, like Consul's `retry_join` and more: it
/// joins until another live member shows up (an answered join alone does not prove the member
/// list was exchanged), and joins again whenever this agent has seen no other live member for
/// [`ISOLATION_GRACE`]. It ends when the agent leaves.
async fn retry_join(membership: Membership, addrs: Vec<String>) {
    let mut attempt = 0u64;
    let mut changes = membership.changes();
    loop {
        if membership.handle.local().status != MemberStatus::Alive {
            return;
        }
        attempt += 1;
        match membership.join(&addrs).await {
            Ok(joined) if wait_for_company(&membership, &mut changes, JOIN_SETTLE).await => {
                tracing::info!(joined, "retry_join: joined the gossip pool");
                attempt = 0;
                // Stay until this agent has been alone for a while.
                while !alone_for(&membership, &mut changes, ISOLATION_GRACE).await {}
                if membership.handle.local().status != MemberStatus::Alive {
                    return;
                }
                tracing::warn!(
                    "retry_join: no other live member for {}s; joining again",
                    ISOLATION_GRACE.as_secs()
                );
                continue;
            }
            Ok(_) if attempt % 15 == 1 => {
                tracing::info!(
                    attempt,
                    "retry_join: answered, but no member list yet; retrying"
                );
            }
            Err(err) if attempt % 15 == 1 => {
                tracing::info!(%err, attempt, "retry_join: no agent answered yet");
            }
            _ => {}
        }
        tokio::time::sleep(RETRY_JOIN_INTERVAL).await;
    }
}

/// Whether another member is alive.
fn has_company(membership: &Membership) -> bool {
    let me = membership.handle.name();
    membership
        .members()
        .iter()
        .any(|m| m.name != me && m.status == MemberStatus::Alive)
}

/// Waits up to `limit` for another live member; whether one showed up.
async fn wait_for_company(
    membership: &Membership,
    changes: &mut watch::Receiver<u64>,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        changes.borrow_and_update();
        if has_company(membership) {
            return true;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return has_company(membership),
        }
    }
}

/// Waits until this agent has had no other live member for `grace` (true), or returns false
/// after a while in company so the caller can check whether the agent left.
async fn alone_for(
    membership: &Membership,
    changes: &mut watch::Receiver<u64>,
    grace: Duration,
) -> bool {
    if membership.handle.local().status != MemberStatus::Alive {
        return true;
    }
    if has_company(membership) {
        // In company: look again after a change, or after `grace` to notice a leave.
        let _ = tokio::time::timeout(grace, changes.changed()).await;
        changes.borrow_and_update();
        return false;
    }
    !wait_for_company(membership, changes, grace).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_addresses_default_to_the_gossip_port() {
        assert_eq!(
            resolve("10.0.0.1").await.unwrap(),
            vec!["10.0.0.1:8301".parse().unwrap()]
        );
        assert_eq!(
            resolve("10.0.0.1:9000").await.unwrap(),
            vec!["10.0.0.1:9000".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:9000").await.unwrap(),
            vec!["[::1]:9000".parse().unwrap()]
        );
        let local = resolve("localhost").await.unwrap();
        assert!(local
            .iter()
            .all(|a| a.port() == 8301 && a.ip().is_loopback()));
    }

    #[test]
    fn keyring_reports_count_keys_and_failures() {
        let answer = |keys: &[&str]| KeyringAnswer {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            error: None,
        };
        let report = KeyringReport::summarize(
            [
                ("a".to_owned(), answer(&["k1", "k2"])),
                ("b".to_owned(), answer(&["k2", "k1"])),
                ("c".to_owned(), answer(&["k1"])),
            ],
            3,
        );
        assert_eq!(
            report.keys,
            BTreeMap::from([("k1".into(), 3), ("k2".into(), 2)])
        );
        assert_eq!(
            report.primary_keys,
            BTreeMap::from([("k1".into(), 2), ("k2".into(), 1)])
        );
        assert_eq!(report.error(), None);

        let silent = KeyringReport::summarize([("a".to_owned(), answer(&["k1"]))], 2);
        assert_eq!(
            silent.error().as_deref(),
            Some("1/2 nodes reported success")
        );

        let failed = KeyringReport::summarize(
            [
                ("a".to_owned(), answer(&["k1"])),
                (
                    "b".to_owned(),
                    KeyringAnswer::failed("key is not installed".into()),
                ),
            ],
            2,
        );
        assert_eq!(
            failed.error().as_deref(),
            Some("1/2 nodes reported failure (b: key is not installed)")
        );
        assert_eq!(
            failed.keys.len(),
            1,
            "a failed member's keys are not counted"
        );
    }

    #[tokio::test]
    async fn gossip_events_are_counted_by_kind() {
        let member = |status| Member {
            name: "n1".into(),
            addr: "10.0.0.1:8301".parse().unwrap(),
            tags: Tags::new(),
            status,
            incarnation: 1,
            status_since: std::time::Instant::now(),
        };
        let user = UserEvent {
            id: "e1".into(),
            name: "deploy".into(),
            payload: Vec::new(),
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            ltime: 1,
        };
        let (events, incoming) = broadcast::channel(16);
        let counters = Arc::new(EventCounters::default());
        let counting = tokio::spawn(count_events(counters.clone(), incoming));
        for event in [
            Event::MemberJoin(member(MemberStatus::Alive)),
            Event::MemberFailed(member(MemberStatus::Failed)),
            Event::MemberJoin(member(MemberStatus::Alive)),
            Event::MemberLeft(member(MemberStatus::Left)),
            Event::User(user),
            Event::QueryDone {
                id: gossip::QueryId(7),
            },
        ] {
            events.send(event).unwrap();
        }
        drop(events);
        counting.await.unwrap();
        assert_eq!(
            counters.read(),
            GossipStats {
                joined: 2,
                failed: 1,
                left: 1,
                user_events: 1,
                ..GossipStats::default()
            }
        );
    }

    #[test]
    fn keyring_queries_wait_longer_in_larger_pools() {
        assert_eq!(keyring_query_timeout(1), Duration::from_millis(3_200));
        assert_eq!(keyring_query_timeout(9), Duration::from_millis(3_200));
        assert_eq!(keyring_query_timeout(50), Duration::from_millis(6_400));
    }

    #[test]
    fn the_keyring_file_wins_over_encrypt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYRING_FILE);
        let a = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
        let b = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
        assert!(load_keyring(&path, None).unwrap().is_none());
        assert_eq!(load_keyring(&path, Some(a)).unwrap().unwrap().primary(), a);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, Keyring::new(b).unwrap().to_file_json()).unwrap();
        assert_eq!(load_keyring(&path, Some(a)).unwrap().unwrap().primary(), b);
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            load_keyring(&path, Some(a)),
            Err(MembershipError::Keyring { .. })
        ));
    }
}
