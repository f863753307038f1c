//! Real `mesh-server` processes: start, kill -9, restart, SIGSTOP/SIGCONT, and (in network
//! namespaces) cut off from the others and reconnect. Every process is held by its `Child` and
//! killed by PID when dropped.
//!
//! Two networks:
//! - loopback: each server on its own 127.0.0.N address of this host;
//! - namespaces: each server in its own network namespace of a [`Lab`] (a bridge joins them),
//!   its RPC and gossip on the namespace's address, its HTTP API on 127.0.0.1 inside the
//!   namespace. [`Cluster::isolate`] takes a server's bridge port down, which cuts all its
//!   traffic with the other servers both ways (raft RPC and UDP/TCP gossip alike), while clients
//!   still reach its API through sockets opened inside its namespace (see `client`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use test_support::netns::{Lab, HTTP_PORT, RPC_PORT};

use crate::client::{Endpoint, KvClient};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// Which network the servers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// 127.0.0.`first_octet`.. on this host's loopback.
    Loopback { first_octet: u8 },
    /// One network namespace per server, joined by a bridge that can be cut.
    Namespaces,
}

/// One `mesh-server` process.
#[derive(Debug)]
pub struct Server {
    pub ip: Ipv4Addr,
    pub http_port: u16,
    pub rpc_port: u16,
    /// The network namespace the server runs in, if any.
    namespace: Option<String>,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

impl Server {
    /// The HTTP API, as this process reaches it.
    pub fn endpoint(&self) -> Endpoint {
        match &self.namespace {
            None => Endpoint {
                addr: SocketAddr::from((self.ip, self.http_port)),
                netns: None,
            },
            Some(ns) => Endpoint {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.http_port)),
                netns: Some(Path::new(NETNS_DIR).join(ns)),
            },
        }
    }

    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.ip, self.rpc_port)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn spawn(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let ip = self.ip.to_string();
        let (mut command, client) = match &self.namespace {
            None => (Command::new(binary), ip.as_str()),
            Some(ns) => {
                // `ip netns exec` switches namespace and execs the server in place, so the
                // child's PID is the server's (for kill -9 and SIGSTOP).
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary);
                (command, "127.0.0.1")
            }
        };
        let child = command
            .args(["-node", &format!("node-{}", self.ip.octets()[3])])
            .args(["-bind", &ip, "-client", client])
            .arg("-data-dir")
            .arg(&self.data_dir)
            .args(["-http-port", &self.http_port.to_string()])
            .args(["-server-port", &self.rpc_port.to_string()])
            .args(["-raft-multiplier", "1"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// SIGKILL and reap: no shutdown code runs.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("kill -9")?;
            child.wait().context("reaping a killed server")?;
        }
        self.paused = false;
        Ok(())
    }

    fn signal(&mut self, signal: &str) -> anyhow::Result<()> {
        let Some(child) = &self.child else {
            bail!("server {} is not running", self.ip);
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill {signal} {} failed", child.id());
        }
        Ok(())
    }

    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal("-STOP")?;
        self.paused = true;
        Ok(())
    }

    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.paused {
            self.signal("-CONT")?;
            self.paused = false;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        let _ = self.kill9();
    }
}

/// Three (or N) servers forming one datacenter with `bootstrap_expect` and `retry_join`.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: the processes die before their namespaces are deleted.
    pub servers: Vec<Server>,
    /// The namespaces, in [`Net::Namespaces`]; deleted (by name) when dropped.
    lab: Option<Lab>,
    /// Which servers are cut off from the bridge.
    isolated: Vec<bool>,
    binary: PathBuf,
}

impl Cluster {
    /// Starts `n` servers on `net` with data under `dir`, without waiting. In
    /// [`Net::Namespaces`], fails with `test_support::netns::Unavailable` when namespaces
    /// cannot be created here.
    pub fn start(binary: &Path, dir: &Path, n: usize, net: Net) -> anyhow::Result<Self> {
        let lab = match net {
            Net::Loopback { .. } => None,
            Net::Namespaces => Some(Lab::create(n)?),
        };
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let (ip, http_port, rpc_port, namespace) = match (net, &lab) {
                (Net::Loopback { first_octet }, _) => {
                    let ip = Ipv4Addr::new(127, 0, 0, first_octet + i as u8);
                    (ip, free_port(ip)?, free_port(ip)?, None)
                }
                // Each namespace has its own port space: the same ports everywhere.
                (Net::Namespaces, Some(lab)) => {
                    let file = Path::new(NETNS_DIR).join(lab.host(i));
                    if !file.exists() {
                        bail!(
                            "network namespace {} has no {}: clients could not reach it",
                            lab.host(i),
                            file.display()
                        );
                    }
                    (
                        Lab::host_ip(i),
                        HTTP_PORT,
                        RPC_PORT,
                        Some(lab.host(i).to_owned()),
                    )
                }
                (Net::Namespaces, None) => unreachable!("the lab was created above"),
            };
            servers.push(Server {
                ip,
                http_port,
                rpc_port,
                namespace,
                data_dir: dir.join(format!("server-{i}")),
                log: dir.join(format!("server-{i}.log")),
                args: Vec::new(),
                child: None,
                paused: false,
            });
        }
        // Each server gossips on its own loopback address, on the default port.
        let gossip: Vec<String> = servers.iter().map(|s| s.ip.to_string()).collect();
        for (i, server) in servers.iter_mut().enumerate() {
            server.args = vec!["-bootstrap-expect".into(), n.to_string()];
            for (j, addr) in gossip.iter().enumerate() {
                if i != j {
                    server.args.extend(["-retry-join".to_owned(), addr.clone()]);
                }
            }
        }
        let mut cluster = Cluster {
            servers,
            lab,
            isolated: vec![false; n],
            binary: binary.to_path_buf(),
        };
        for i in 0..n {
            cluster.restart(i)?;
        }
        Ok(cluster)
    }

    /// Whether servers can be cut off ([`Net::Namespaces`]).
    pub fn can_partition(&self) -> bool {
        self.lab.is_some()
    }

    /// Cuts server `i` off from the others, both ways; its clients still reach it.
    pub fn isolate(&mut self, i: usize) -> anyhow::Result<()> {
        let Some(lab) = &self.lab else {
            bail!("partitions need the servers in network namespaces");
        };
        // Marked first: if `ip` fails half-way, healing is still attempted.
        self.isolated[i] = true;
        lab.isolate(i)
    }

    /// Reconnects server `i` (a no-op if it is not cut off).
    pub fn heal(&mut self, i: usize) -> anyhow::Result<()> {
        if let (Some(lab), true) = (&self.lab, self.isolated[i]) {
            lab.heal(i)?;
            self.isolated[i] = false;
        }
        Ok(())
    }

    /// Reconnects every server that is cut off, trying all of them before failing.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        for i in 0..self.servers.len() {
            if let Err(err) = self.heal(i) {
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Starts server `i` again on its data directory and ports (killing it first if running).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let server = &mut self.servers[i];
        server.kill9()?;
        server.spawn(&self.binary)
    }
}

/// Waits until every server in `endpoints` names a leader (`GET /v1/status/leader?stale`).
pub async fn wait_for_leaders(endpoints: &[Endpoint], timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let clients: Vec<KvClient> = endpoints.iter().map(KvClient::new).collect();
    loop {
        let mut all = true;
        for client in &clients {
            all &= client.leader().await.is_some();
        }
        if all {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("not every server knew a leader within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((ip, 0)).with_context(|| format!("binding an ephemeral port on {ip}"))?;
    Ok(listener.local_addr()?.port())
}
