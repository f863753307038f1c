//! Real `mesh-server` processes on their own loopback addresses: start, kill -9, restart,
//! SIGSTOP/SIGCONT. Every process is held by its `Child` and killed by PID when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::client::KvClient;

/// One `mesh-server` process.
#[derive(Debug)]
pub struct Server {
    pub ip: Ipv4Addr,
    pub http_port: u16,
    pub rpc_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    paused: bool,
}

impl Server {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.http_port))
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
        let child = Command::new(binary)
            .args(["-node", &format!("node-{}", self.ip.octets()[3])])
            .args(["-bind", &ip, "-client", &ip])
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
    pub servers: Vec<Server>,
    binary: PathBuf,
}

impl Cluster {
    /// Starts `n` servers on 127.0.0.`first_octet`.. with data under `dir`, without waiting.
    pub fn start(binary: &Path, dir: &Path, n: usize, first_octet: u8) -> anyhow::Result<Self> {
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, first_octet + i as u8);
            servers.push(Server {
                ip,
                http_port: free_port(ip)?,
                rpc_port: free_port(ip)?,
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
            binary: binary.to_path_buf(),
        };
        for i in 0..n {
            cluster.restart(i)?;
        }
        Ok(cluster)
    }

    /// Starts server `i` again on its data directory and ports (killing it first if running).
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let server = &mut self.servers[i];
        server.kill9()?;
        server.spawn(&self.binary)
    }
}

/// Waits until every server in `addrs` names a leader (`GET /v1/status/leader?stale`).
pub async fn wait_for_leaders(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let clients: Vec<KvClient> = addrs.iter().map(|a| KvClient::new(*a)).collect();
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
