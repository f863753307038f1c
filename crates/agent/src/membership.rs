//! The agent's place in its datacenter's gossip pool: it advertises who it is (server or client,
//! datacenter, RPC port), joins through `retry_join` and `/v1/agent/join`, reports the members
//! (`/v1/agent/members`), finds the servers, and leaves gracefully.
//!
//! Gossip itself (SWIM, encryption, events) lives in the `gossip` crate; this module maps the
//! agent's configuration onto it and keeps the keyring in the data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gossip::driver::GossipHandle;
use gossip::{Keyring, Member, MemberStatus, Tags};
use tokio::sync::watch;

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
        let membership = Membership {
            handle,
            keyring_path,
        };
        if let Some(keyring) = membership.handle.keyring() {
            membership.save_keyring(&keyring);
        }
        if !settings.retry_join.is_empty() {
            tokio::spawn(retry_join(membership.clone(), settings.retry_join));
        }
        Ok(membership)
    }

    /// Every member this agent knows, itself included.
    pub fn members(&self) -> Vec<Member> {
        self.handle.members()
    }

    /// Bumped whenever the member list changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.handle.changes()
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

    /// `/v1/agent/force-leave/:node`: a failed member is marked left (with `prune`, forgotten).
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError> {
        self.handle
            .force_leave(node, prune)
            .await
            .map_err(|err| MembershipError::Refused(err.to_string()))
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

/// Tries `addrs` until one join succeeds, like Consul's `retry_join` (forever, logging now and
/// then).
async fn retry_join(membership: Membership, addrs: Vec<String>) {
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match membership.join(&addrs).await {
            Ok(joined) => {
                tracing::info!(joined, "retry_join: joined the gossip pool");
                return;
            }
            Err(err) if attempt % 15 == 1 => {
                tracing::info!(%err, attempt, "retry_join: no agent answered yet");
            }
            Err(_) => {}
        }
        tokio::time::sleep(RETRY_JOIN_INTERVAL).await;
    }
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
