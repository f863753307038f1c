//! A gossip pool under test: agent processes, each on its own loopback address, and how to ask
//! each of them who it sees.
//!
//! mesh: agent 0 is a `mesh-server` bootstrapping its own datacenter, the others are
//! `mesh-client agent` processes joining it with `-retry-join`, on 127.0.1.1, .2, ... serf:
//! `serf agent` processes on 127.0.2.1, .2, ..., each joining agent 0 with `-join`. Every
//! process logs to a file in the pool's temporary directory; every process is killed (SIGKILL,
//! then reaped) when the pool drops, also on error or panic, before the directory is removed.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use super::accounting;
use super::members::{self, LogFindings, MemberView};
use super::serf_rpc::SerfRpc;
use crate::load::HttpClient;
use crate::target::fetch;

/// mesh's default ports, the same on every agent (each has its own address).
pub const MESH_HTTP_PORT: u16 = 8500;
pub const MESH_SERF_LAN_PORT: u16 = 8301;
const MESH_SERVER_PORT: u16 = 8300;
/// serf's default ports.
pub const SERF_BIND_PORT: u16 = 7946;
const SERF_RPC_PORT: u16 = 7373;
/// The largest pool: agents are hosts 1..=N of one /24.
pub const MAX_AGENTS: usize = 250;
/// Deadline of one members request.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The system a pool runs.
#[derive(Debug, Clone)]
pub enum Flavor {
    Mesh { server: PathBuf, client: PathBuf },
    Serf { bin: PathBuf },
}

impl Flavor {
    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Mesh { .. } => "mesh",
            Flavor::Serf { .. } => "serf",
        }
    }

    /// The /24 the pool's agents live in (127.0.1.0 or 127.0.2.0).
    pub fn subnet(&self) -> Ipv4Addr {
        match self {
            Flavor::Mesh { .. } => Ipv4Addr::new(127, 0, 1, 0),
            Flavor::Serf { .. } => Ipv4Addr::new(127, 0, 2, 0),
        }
    }

    /// What the iptables accounting counts for this pool.
    pub fn accounting(&self) -> accounting::Pool {
        accounting::Pool {
            subnet: self.subnet(),
            prefix: 24,
            gossip_port: match self {
                Flavor::Mesh { .. } => MESH_SERF_LAN_PORT,
                Flavor::Serf { .. } => SERF_BIND_PORT,
            },
        }
    }

    /// The address of agent `index` (from 0): host `index + 1` of the subnet.
    pub fn ip(&self, index: usize) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet().octets();
        let host = u8::try_from(index + 1).expect("pools are smaller than MAX_AGENTS");
        Ipv4Addr::new(a, b, c, host)
    }

    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{}", self.name(), index + 1)
    }

    /// The command line of agent `index`, with data (mesh) under `data_dir`.
    pub fn command(&self, index: usize, data_dir: &Path) -> Command {
        let ip = self.ip(index).to_string();
        let name = self.node_name(index);
        match self {
            Flavor::Mesh { server, client } => {
                let mut cmd = if index == 0 {
                    Command::new(server)
                } else {
                    let mut cmd = Command::new(client);
                    cmd.arg("agent");
                    cmd
                };
                cmd.args(["-node", &name, "-bind", &ip, "-client", &ip])
                    .arg("-data-dir")
                    .arg(data_dir)
                    .args(["-http-port", &MESH_HTTP_PORT.to_string()])
                    .args(["-serf-lan-port", &MESH_SERF_LAN_PORT.to_string()]);
                if index == 0 {
                    cmd.args(["-server-port", &MESH_SERVER_PORT.to_string()])
                        .args(["-raft-multiplier", "1", "-bootstrap"]);
                } else {
                    let seed = format!("{}:{MESH_SERF_LAN_PORT}", self.ip(0));
                    cmd.args(["-retry-join", &seed]);
                }
                cmd
            }
            Flavor::Serf { bin } => {
                let mut cmd = Command::new(bin);
                cmd.arg("agent")
                    .args(["-node", &name])
                    .args(["-bind", &format!("{ip}:{SERF_BIND_PORT}")])
                    .args(["-rpc-addr", &format!("{ip}:{SERF_RPC_PORT}")]);
                if index > 0 {
                    cmd.args(["-join", &format!("{}:{SERF_BIND_PORT}", self.ip(0))]);
                }
                cmd
            }
        }
    }
}

/// How the harness asks an agent for its members.
#[derive(Debug)]
enum Probe {
    /// mesh: `GET /v1/agent/members` over the shared keep-alive client.
    Http { uri: String },
    /// serf: the RPC `members` command on a kept-open connection (reopened after an error).
    Serf {
        addr: SocketAddr,
        conn: Option<SerfRpc>,
    },
}

/// One agent process.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub pid: u32,
    /// `None` once killed.
    child: Option<Child>,
    log: PathBuf,
    probe: Probe,
}

impl Agent {
    /// Asks the agent who it sees.
    async fn members(&mut self, client: &HttpClient) -> anyhow::Result<Vec<MemberView>> {
        match &mut self.probe {
            Probe::Http { uri } => {
                let req = Request::get(uri.as_str())
                    .body(Full::new(Bytes::new()))
                    .expect("a GET is built from valid parts");
                let (status, body) = tokio::time::timeout(OBSERVE_TIMEOUT, fetch(client, req))
                    .await
                    .map_err(|_| anyhow!("GET {uri}: no answer within {OBSERVE_TIMEOUT:?}"))?
                    .with_context(|| format!("GET {uri}"))?;
                if !status.is_success() {
                    bail!("GET {uri}: HTTP {status}");
                }
                members::mesh_members(&body)
            }
            Probe::Serf { addr, conn } => {
                let rpc = match conn {
                    Some(rpc) => rpc,
                    None => conn.insert(SerfRpc::connect(*addr, OBSERVE_TIMEOUT).await?),
                };
                let answer = rpc.members(OBSERVE_TIMEOUT).await;
                if answer.is_err() {
                    // A timed-out or failed call leaves the stream mid-message.
                    *conn = None;
                }
                answer
            }
        }
    }

    pub fn is_killed(&self) -> bool {
        self.child.is_none()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: either way the process is gone once reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails (with the log tail) if the process exited on its own.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(anyhow!(
                "{} (pid {}) exited with {status}; log tail:\n{}",
                self.name,
                self.pid,
                log_tail(&self.log, 20)
            )),
            Err(e) => Err(anyhow!("checking on {} (pid {}): {e}", self.name, self.pid)),
        }
    }
}

/// What one agent answered in one sweep, and when.
#[derive(Debug)]
pub struct Observation {
    pub at: Instant,
    pub members: anyhow::Result<Vec<MemberView>>,
}

/// A started pool; dropping it kills every agent.
#[derive(Debug)]
pub struct Pool {
    flavor: Flavor,
    // Dropped before `dir`, so processes die before their directory is removed.
    agents: Vec<Agent>,
    dir: tempfile::TempDir,
}

impl Pool {
    pub fn new(flavor: Flavor) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mesh-bench-gossip-{}-", flavor.name()))
            .tempdir()
            .context("creating a temporary directory")?;
        Ok(Pool {
            flavor,
            agents: Vec::new(),
            dir,
        })
    }

    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the next agent; returns its index.
    pub fn spawn(&mut self) -> anyhow::Result<usize> {
        let index = self.agents.len();
        if index >= MAX_AGENTS {
            bail!("a pool has at most {MAX_AGENTS} agents");
        }
        let name = self.flavor.node_name(index);
        let data_dir = self.dir.path().join(&name);
        std::fs::create_dir(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log = self.dir.path().join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut command = self.flavor.command(index, &data_dir);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        let ip = self.flavor.ip(index);
        let probe = match self.flavor {
            Flavor::Mesh { .. } => Probe::Http {
                uri: format!("http://{ip}:{MESH_HTTP_PORT}/v1/agent/members"),
            },
            Flavor::Serf { .. } => Probe::Serf {
                addr: SocketAddr::from((ip, SERF_RPC_PORT)),
                conn: None,
            },
        };
        self.agents.push(Agent {
            name,
            pid: child.id(),
            child: Some(child),
            log,
            probe,
        });
        Ok(index)
    }

    /// Waits until agent `index` answers a members request.
    pub async fn wait_answering(
        &mut self,
        index: usize,
        client: &HttpClient,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < deadline {
            self.ensure_running()?;
            match self.agents[index].members(client).await {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let agent = &self.agents[index];
        bail!(
            "{} answered no members request within {deadline:?} ({last}); log tail:\n{}",
            agent.name,
            log_tail(&agent.log, 20)
        )
    }

    /// Asks every live agent, concurrently, who it sees; one entry per agent (killed agents
    /// get `None`).
    pub async fn observe(&mut self, client: &HttpClient) -> Vec<Option<Observation>> {
        let asks = self.agents.iter_mut().map(|agent| async move {
            if agent.is_killed() {
                return None;
            }
            let members = agent.members(client).await;
            Some(Observation {
                at: Instant::now(),
                members,
            })
        });
        futures::future::join_all(asks).await
    }

    /// SIGKILLs agent `index` and reaps it.
    pub fn kill(&mut self, index: usize) {
        self.agents[index].kill();
    }

    /// Fails (with the log tail) if any agent not killed by the harness has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.agents.iter_mut().try_for_each(Agent::ensure_running)
    }

    /// What each agent's log says about other members, by agent name.
    pub fn log_findings(&self) -> Vec<(String, LogFindings)> {
        self.agents
            .iter()
            .map(|agent| {
                let text = std::fs::read_to_string(&agent.log).unwrap_or_default();
                let found = match self.flavor {
                    Flavor::Mesh { .. } => members::mesh_log_findings(&text),
                    Flavor::Serf { .. } => members::serf_log_findings(&text),
                };
                (agent.name.clone(), found)
            })
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<String> = text.lines().map(members::strip_ansi).collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
