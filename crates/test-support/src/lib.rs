//! Helpers for mesh's integration tests: bounded waiting, a small HTTP(S) client, test
//! certificates (`tls`), and real `mesh-server` processes on loopback that tests can kill -9
//! and restart.
//!
//! Test-only: no product crate depends on this. Processes are tracked by PID and killed when
//! their handle drops, so a failing test leaves nothing running.

pub mod dns;
pub mod faults;
pub mod in_netns;
pub mod netns;
pub mod sidecar;
pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Polls `condition` until it holds or `timeout` passes; the error names what was awaited.
pub async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    mut condition: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    free_port_on(std::net::Ipv4Addr::LOCALHOST)
}

/// A response, reduced to what tests compare.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// A keep-alive HTTP/1.1 client for one base address.
#[derive(Debug, Clone)]
pub struct Http<C = HttpConnector> {
    base: String,
    client: Client<C, Full<Bytes>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Self {
        Http {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl<C> Http<C>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    /// Requests to `addr` through `connector` (e.g. one that connects inside a namespace).
    pub fn with_connector(addr: SocketAddr, connector: C) -> Self {
        Http {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Full::new(body.into()))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("requesting {path}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// A GET whose body is binary (a snapshot archive); fails on a non-200 answer.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let req = hyper::Request::builder()
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("requesting {path}"))?;
        anyhow::ensure!(resp.status() == 200, "{path}: status {}", resp.status());
        Ok(resp.into_body().collect().await?.to_bytes().to_vec())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::GET, path, Bytes::new()).await
    }

    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> anyhow::Result<Reply> {
        self.request(Method::PUT, path, body).await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, body).await
    }
}

/// Waits (up to `timeout`) until `path` on `http` answers JSON for which `holds` is true, and
/// returns that answer; on timeout the error shows the last answer seen.
pub async fn wait_json(
    http: &Http,
    path: &str,
    what: &str,
    timeout: Duration,
    holds: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let last = std::sync::Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
    let found = wait_until(what, timeout, || {
        let reply = http.get(path);
        let holds = &holds;
        let last = last.clone();
        async move {
            let Some(v) = reply.await.ok().and_then(|r| r.json().ok()) else {
                return false;
            };
            let ok = holds(&v);
            *last.lock().expect("last answer") = v;
            ok
        }
    })
    .await;
    let last = last.lock().expect("last answer").clone();
    found.map_err(|e| anyhow::anyhow!("{e}; last answer: {last}"))?;
    Ok(last)
}

/// Where cargo put the workspace's binaries: next to the test executable's `deps/` folder.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MESH_BIN_DIR") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (`cargo build -p {name}`; `cargo xtask test` does this)",
            path.display()
        );
    }
    Ok(path)
}

/// A `mesh-server` (or, built with [`ServerProcess::client`], a `mesh-client agent`) process
/// on its own loopback address with its own data directory.
#[derive(Debug)]
pub struct ServerProcess {
    /// Runs `mesh-client agent` instead of `mesh-server`.
    client: bool,
    child: Option<Child>,
    ip: std::net::Ipv4Addr,
    data_dir: PathBuf,
    http_port: u16,
    rpc_port: u16,
    /// The gossip port (UDP).
    serf_port: u16,
    /// The DNS port (UDP and TCP).
    dns_port: u16,
    log: PathBuf,
    args: Vec<String>,
    /// Overrides the default `node-<last octet>` name.
    node: Option<String>,
}

impl ServerProcess {
    /// Starts a durable single server bootstrapping its own datacenter in `data_dir`, and waits
    /// until it leads.
    pub async fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<Self> {
        let mut args = vec!["-bootstrap".to_owned()];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut server = Self::new(std::net::Ipv4Addr::LOCALHOST, data_dir, args)?;
        server.spawn()?;
        server.wait_for_leader().await?;
        Ok(server)
    }

    /// A server on `ip` with free ports, not started yet.
    pub fn new(ip: std::net::Ipv4Addr, data_dir: &Path, args: Vec<String>) -> anyhow::Result<Self> {
        // TCP and UDP ephemeral ports are handed out independently, so a port picked for
        // gossip (UDP) may come back for DNS (TCP, then UDP): pick until all four differ.
        let mut ports = None;
        for _ in 0..100 {
            let picked = [
                free_port_on(ip)?,
                free_port_on(ip)?,
                free_udp_port_on(ip)?,
                free_dual_port_on(ip)?,
            ];
            let mut sorted = picked;
            sorted.sort_unstable();
            if sorted.windows(2).all(|w| w[0] != w[1]) {
                ports = Some(picked);
                break;
            }
        }
        let [http_port, rpc_port, serf_port, dns_port] =
            ports.with_context(|| format!("no four distinct free ports on {ip}"))?;
        Ok(ServerProcess {
            client: false,
            child: None,
            ip,
            data_dir: data_dir.to_path_buf(),
            http_port,
            rpc_port,
            serf_port,
            dns_port,
            log: data_dir.with_extension("log"),
            args,
            node: None,
        })
    }

    /// A client agent on `ip` that joins the pool through `join` (gossip addresses), not
    /// started yet.
    pub fn client(
        ip: std::net::Ipv4Addr,
        data_dir: &Path,
        join: &[String],
    ) -> anyhow::Result<Self> {
        let args = join
            .iter()
            .flat_map(|s| ["-retry-join".to_owned(), s.clone()])
            .collect();
        let mut process = Self::new(ip, data_dir, args)?;
        process.client = true;
        Ok(process)
    }

    /// Appends flags (e.g. `-encrypt KEY`) to those it starts with, from the next start on.
    pub fn push_args<I, S>(&mut self, extra: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(extra.into_iter().map(Into::into));
    }

    /// The server RPC address other servers reach it at.
    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.ip, self.rpc_port)
    }

    /// The gossip address other agents join it at (`-retry-join`, `/v1/agent/join`).
    pub fn gossip_addr(&self) -> String {
        format!("{}:{}", self.ip, self.serf_port)
    }

    /// The node name it runs as.
    pub fn node_name(&self) -> String {
        match &self.node {
            Some(name) => name.clone(),
            None => format!("node-{}", self.ip.octets()[3]),
        }
    }

    /// Runs as `name` instead of `node-<last octet>` from the next start on, so that several
    /// agents (each on its own ports) can share one loopback address.
    pub fn set_node_name(&mut self, name: &str) {
        self.node = Some(name.to_owned());
    }

    /// `mesh-server` with this server's identity, addresses and data directory.
    pub fn command(&self) -> anyhow::Result<Command> {
        let ip = self.ip.to_string();
        let node = self.node_name();
        let mut cmd = if self.client {
            let mut cmd = Command::new(binary("mesh-client")?);
            cmd.arg("agent");
            cmd
        } else {
            Command::new(binary("mesh-server")?)
        };
        cmd.args(["-node", &node, "-bind", &ip, "-client", &ip])
            .arg("-data-dir")
            .arg(&self.data_dir)
            .args(["-http-port", &self.http_port.to_string()])
            .args(["-serf-lan-port", &self.serf_port.to_string()])
            .args(["-dns-port", &self.dns_port.to_string()]);
        if !self.client {
            cmd.args(["-server-port", &self.rpc_port.to_string()])
                .args(["-raft-multiplier", "1"]);
        }
        cmd.args(&self.args);
        Ok(cmd)
    }

    /// Runs `mesh-server` with this server's flags plus `extra` to completion (bounded), e.g.
    /// `-recover`; returns the exit code and everything it printed.
    pub fn run_to_exit(&self, extra: &[&str], timeout: Duration) -> anyhow::Result<(i32, String)> {
        let mut cmd = self.command()?;
        cmd.args(extra);
        run_command_to_exit(cmd, timeout)
    }

    /// Starts the process without waiting for it to be ready.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .command()?
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning mesh-server")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until this server knows a leader (for a client: until a server it forwards to
    /// does).
    ///
    /// The answer only counts once this process listens on its HTTP port: a port picked free
    /// may have been taken by another test's agent before this one bound it, and that agent
    /// would otherwise answer for it.
    pub async fn wait_for_leader(&self) -> anyhow::Result<()> {
        let http = self.http();
        let pid = self.pid();
        let addr = std::net::SocketAddrV4::new(self.ip, self.http_port);
        let ready = wait_until("mesh-server to know a leader", Duration::from_secs(30), || {
            let http = http.clone();
            async move {
                pid.is_none_or(|pid| listens_on(pid, addr))
                    && matches!(http.get("/v1/status/leader?stale").await, Ok(r) if r.status == 200 && r.body.len() > 2)
            }
        })
        .await;
        ready.map_err(|err| anyhow::anyhow!("{err}; server log:\n{}", self.log_text()))
    }

    /// The server's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the agent answers DNS (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.dns_port))
    }

    /// The HTTP API's `ip:port`, for `-http-addr`.
    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.ip, self.http_port)
    }

    pub fn http(&self) -> Http {
        Http::new(SocketAddr::from((self.ip, self.http_port)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited on its own (it is then reaped).
    pub fn has_exited(&mut self) -> anyhow::Result<bool> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?.is_some()),
            None => Ok(false),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no shutdown code runs, as in a crash or power loss of the process.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status.
    pub async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("server is not running")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                bail!("mesh-server did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data directory and ports, and waits for a leader.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.spawn()?;
        self.wait_for_leader().await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Whether process `pid` holds a TCP socket listening on `addr`: the listener's inode in the
/// process's own network namespace (`/proc/<pid>/net/tcp`) among its open descriptors.
pub fn listens_on(pid: u32, addr: std::net::SocketAddrV4) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // The kernel prints the address as the in-memory (network order) word in hex.
    let wanted = |ip: std::net::Ipv4Addr| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(ip.octets()),
            addr.port()
        )
    };
    let (exact, any) = (wanted(*addr.ip()), wanted(std::net::Ipv4Addr::UNSPECIFIED));
    const LISTEN: &str = "0A";
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            ((*local == exact || *local == any) && *state == LISTEN).then_some(*inode)
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

/// A port free on `ip` for both TCP and UDP a moment ago (DNS listens on both).
pub fn free_dual_port_on(ip: std::net::Ipv4Addr) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind((ip, 0))?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free for both TCP and UDP on {ip}")
}

/// A loopback port free on `ip` a moment ago.
pub fn free_port_on(ip: std::net::Ipv4Addr) -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((ip, 0)).with_context(|| format!("binding an ephemeral port on {ip}"))?;
    Ok(listener.local_addr()?.port())
}

/// A loopback UDP port free on `ip` a moment ago.
pub fn free_udp_port_on(ip: std::net::Ipv4Addr) -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind((ip, 0))
        .with_context(|| format!("binding an ephemeral UDP port on {ip}"))?;
    Ok(socket.local_addr()?.port())
}

/// N servers on 127.0.0.x forming one datacenter through `bootstrap_expect` and `retry_join`.
#[derive(Debug)]
pub struct Cluster {
    pub servers: Vec<ServerProcess>,
}

impl Cluster {
    /// Starts `n` servers on 127.0.0.`first_octet`.. and waits until every one knows a leader.
    pub async fn start(dir: &Path, n: usize, first_octet: u8) -> anyhow::Result<Self> {
        let mut servers = Vec::new();
        for i in 0..n {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, first_octet + i as u8);
            servers.push(ServerProcess::new(
                ip,
                &dir.join(format!("server-{i}")),
                Vec::new(),
            )?);
        }
        let addrs: Vec<String> = servers.iter().map(ServerProcess::gossip_addr).collect();
        for (i, server) in servers.iter_mut().enumerate() {
            server.args = vec!["-bootstrap-expect".into(), n.to_string()];
            for (j, addr) in addrs.iter().enumerate() {
                if i != j {
                    server.args.extend(["-retry-join".to_owned(), addr.clone()]);
                }
            }
            server.spawn()?;
        }
        for server in &servers {
            server.wait_for_leader().await?;
        }
        Ok(Cluster { servers })
    }

    /// The index of the server that currently leads, as the servers report it.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        for server in self.servers.iter().filter(|s| s.is_running()) {
            let reply = server.http().get("/v1/status/leader?stale").await?;
            let leader: String = serde_json::from_str(&reply.body)?;
            if let Some(i) = self.servers.iter().position(|s| s.rpc_addr() == leader) {
                return Ok(i);
            }
        }
        bail!("no running server reports a leader")
    }
}

/// Runs `mesh-server` with `args` to completion (for configuration errors), bounded in time.
pub fn run_server_to_exit(args: &[&str], timeout: Duration) -> anyhow::Result<(i32, String)> {
    let mut cmd = Command::new(binary("mesh-server")?);
    cmd.args(args);
    run_command_to_exit(cmd, timeout)
}

/// Runs `cmd` to completion (killed after `timeout`); its exit code and stderr then stdout.
pub fn run_command_to_exit(mut cmd: Command, timeout: Duration) -> anyhow::Result<(i32, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            return Ok((out.status.code().unwrap_or(-1), text));
        }
        if std::time::Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            bail!("{cmd:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

    use super::listens_on;

    #[test]
    fn a_listener_is_found_in_its_own_process_only_while_open() {
        let ip = Ipv4Addr::new(127, 0, 0, 1);
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = SocketAddrV4::new(ip, listener.local_addr().unwrap().port());
        assert!(listens_on(std::process::id(), addr));
        // pid 1 is not this process, whatever it listens on.
        assert!(!listens_on(1, addr));
        drop(listener);
        assert!(!listens_on(std::process::id(), addr));
    }
}
