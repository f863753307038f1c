//! Real network faults: `mesh-server` processes in their own Linux network namespaces, joined by
//! a bridge in another namespace, so a test can cut one server off the network.
//!
//! Layout for hosts `0..n` (all of it created by the test, deleted when the [`Lab`] drops):
//!
//! ```text
//!   namespace <prefix>-br:   bridge br0, with ports vb0 .. vb<n-1>
//!   namespace <prefix>-h<i>: eth0 (the peer of vb<i>) = 192.0.2.<10+i>/24, and lo
//! ```
//!
//! ([`Lab::with_hosts`] names the host namespaces `<prefix>-<name>` instead.) [`NsServer`] runs
//! a `mesh-server` or a `mesh-client agent` in a host namespace, [`NsSidecar`] a
//! `mesh-sidecar`; `crate::in_netns` reaches into the namespaces from the test process.
//!
//! Only TEST-NET-1 addresses (RFC 5737) are used, and only inside these namespaces: no address,
//! route or interface of the host's own namespace is touched, and no packet leaves them.
//! Each server's HTTP API listens on 127.0.0.1 inside its namespace, so the test reaches it with
//! `ip netns exec <ns> curl` whatever the state of the partition.
//!
//! Requires root, `ip` (iproute2) and (for [`Lab::create`] and [`NsHttp`]) `curl`; the lab
//! reports [`Unavailable`] otherwise so that a test can skip with a clear message.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;

use crate::in_netns::{Netns, NetnsHttp};
use crate::{binary, wait_until, Reply};

/// The server RPC port inside every host namespace (each namespace has its own port space).
pub const RPC_PORT: u16 = 8300;
/// The HTTP port on 127.0.0.1 inside every host namespace.
pub const HTTP_PORT: u16 = 8500;
/// The gossip (serf LAN) port on each host namespace's address.
pub const SERF_PORT: u16 = 8301;
/// The DNS port (UDP and TCP) on 127.0.0.1 inside every host namespace.
pub const DNS_PORT: u16 = 8600;

/// Why network namespaces cannot be used here (not root, no `ip`, no `curl`, ...).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Runs `ip args...`, failing with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A bridge namespace and one namespace per host, deleted (by their exact names) on drop.
#[derive(Debug)]
pub struct Lab {
    bridge: String,
    hosts: Vec<String>,
    /// Every namespace created so far, in creation order.
    created: Vec<String>,
}

impl Lab {
    /// Creates the bridge and `n` host namespaces (`<prefix>-h<i>`), checking that `curl` is
    /// there for [`NsHttp`]. Fails with [`Unavailable`] as [`Lab::with_hosts`] does.
    pub fn create(n: usize) -> anyhow::Result<Self> {
        let found = Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(found, Ok(s) if s.success()) {
            return Err(Unavailable("`curl` is not installed".to_owned()).into());
        }
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        Self::with_hosts(&names)
    }

    /// Creates the bridge and one host namespace per name (`<prefix>-<name>`, host `i` being
    /// `names[i]`). Names carry this process's id and a counter, so concurrent tests and runs
    /// never collide. Fails with [`Unavailable`] when `ip` is missing or the first namespace
    /// cannot be created (not root, no CAP_SYS_ADMIN); any later failure is a real error.
    pub fn with_hosts<S: AsRef<str>>(names: &[S]) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let found = Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(found, Ok(s) if s.success()) {
            return Err(Unavailable("`ip` (iproute2) is not installed".to_owned()).into());
        }
        let prefix = format!(
            "meshtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            bridge: format!("{prefix}-br"),
            hosts: names
                .iter()
                .map(|name| format!("{prefix}-{}", name.as_ref()))
                .collect(),
            created: Vec::new(),
        };
        if let Err(err) = lab.add_namespace(lab.bridge.clone()) {
            return Err(Unavailable(format!("{err:#}")).into());
        }
        let br = lab.bridge.clone();
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..names.len() {
            let host = lab.hosts[i].clone();
            lab.add_namespace(host.clone())?;
            let port = format!("vb{i}");
            // Both ends are created inside our namespaces: the veth never exists in the host's.
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &host,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", Self::host_ip(i));
            ip(&["-n", &host, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn add_namespace(&mut self, name: String) -> anyhow::Result<()> {
        ip(&["netns", "add", &name])?;
        self.created.push(name);
        Ok(())
    }

    /// The namespace of host `i`.
    pub fn host(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// Host `i`'s address on the bridge (TEST-NET-1).
    pub fn host_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10 + i as u8)
    }

    /// Cuts host `i` off the bridge (its bridge port goes down, so its eth0 loses carrier): no
    /// packet passes either way. The host keeps its address and its loopback.
    pub fn isolate(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.bridge, "link", "set", &format!("vb{i}"), "down"])
    }

    /// Reconnects host `i` to the bridge.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        ip(&["-n", &self.bridge, "link", "set", &format!("vb{i}"), "up"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth ends in it, and with them their peers.
        for name in self.created.drain(..).rev() {
            if let Err(err) = ip(&["netns", "del", &name]) {
                eprintln!("warning: could not delete network namespace {name}: {err:#}");
            }
        }
    }
}

/// HTTP to a server's API on 127.0.0.1 inside its namespace, through `ip netns exec ... curl`.
#[derive(Debug, Clone)]
pub struct NsHttp {
    namespace: String,
    port: u16,
}

impl NsHttp {
    /// One request; `limit` bounds the whole exchange (curl's `--max-time`).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: &str,
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace, "curl", "-sS", "-i"])
            .args(["--noproxy", "*", "-X", method.as_str()])
            .args(["--max-time", &format!("{:.1}", limit.as_secs_f64())])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if method == Method::PUT || method == Method::POST {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(&url);
        let mut child = cmd.spawn().context("spawning ip netns exec curl")?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(body.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "{method} {path} in {}: curl {}: {}",
                self.namespace,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        parse_response(&String::from_utf8_lossy(&out.stdout))
    }

    pub async fn get(&self, path: &str, limit: Duration) -> anyhow::Result<Reply> {
        self.request(Method::GET, path, "", limit).await
    }

    pub async fn put(&self, path: &str, body: &str, limit: Duration) -> anyhow::Result<Reply> {
        self.request(Method::PUT, path, body, limit).await
    }
}

/// Parses `curl -i` output: a status line, headers, a blank line, the body.
fn parse_response(text: &str) -> anyhow::Result<Reply> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no header end in curl output: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line: {status_line:?}"))?;
    let mut headers = hyper::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) {
                headers.append(name, value);
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// A `mesh-server` (or, built with [`NsServer::client`], a `mesh-client agent`) process inside
/// host `i`'s namespace, like an agent on its own machine: gossip and server RPC on the host's
/// address, HTTP and DNS on 127.0.0.1. Killed by PID when dropped.
#[derive(Debug)]
pub struct NsServer {
    /// Runs `mesh-client agent` instead of `mesh-server`.
    client: bool,
    child: Option<Child>,
    namespace: String,
    ip: Ipv4Addr,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    /// Overrides the default `node-<last octet>` name.
    node: Option<String>,
}

impl NsServer {
    /// Server `i` of `lab`, not started yet.
    pub fn new(lab: &Lab, i: usize, data_dir: &Path, args: Vec<String>) -> Self {
        NsServer {
            client: false,
            child: None,
            namespace: lab.host(i).to_owned(),
            ip: Lab::host_ip(i),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            args,
            node: None,
        }
    }

    /// A client agent on host `i` of `lab` that joins the pool through `join` (gossip
    /// addresses), not started yet.
    pub fn client(lab: &Lab, i: usize, data_dir: &Path, join: &[String]) -> Self {
        let args = join
            .iter()
            .flat_map(|s| ["-retry-join".to_owned(), s.clone()])
            .collect();
        let mut process = Self::new(lab, i, data_dir, args);
        process.client = true;
        process
    }

    /// Appends flags (e.g. `-encrypt KEY`) to those it starts with, from the next start on.
    pub fn push_args<I, S>(&mut self, extra: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(extra.into_iter().map(Into::into));
    }

    /// Runs as `name` instead of `node-<last octet>` from the next start on.
    pub fn set_node_name(&mut self, name: &str) {
        self.node = Some(name.to_owned());
    }

    pub fn rpc_addr(&self) -> String {
        format!("{}:{RPC_PORT}", self.ip)
    }

    /// The gossip address other agents join it at.
    pub fn gossip_addr(&self) -> String {
        format!("{}:{SERF_PORT}", self.ip)
    }

    /// The namespace it runs in.
    pub fn netns(&self) -> Netns {
        Netns::named(&self.namespace)
    }

    /// The HTTP API's `ip:port` inside its namespace, for `-http-addr` there.
    pub fn http_addr(&self) -> String {
        format!("{}:{HTTP_PORT}", Ipv4Addr::LOCALHOST)
    }

    /// Where it answers DNS (UDP and TCP) inside its namespace.
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, DNS_PORT))
    }

    /// Its HTTP API through sockets opened inside its namespace (no `curl`).
    pub fn api(&self) -> NetnsHttp {
        NetnsHttp::in_netns(
            &self.netns(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, HTTP_PORT)),
        )
    }

    /// Starts the process: `ip netns exec` switches namespace and execs `mesh-server` (or
    /// `mesh-client`) in place, so the child's PID is the agent's.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let ip = self.ip.to_string();
        let node = self
            .node
            .clone()
            .unwrap_or_else(|| format!("node-{}", self.ip.octets()[3]));
        let netns = self.netns();
        let mut cmd = if self.client {
            let mut cmd = netns.command(&binary("mesh-client")?);
            cmd.arg("agent");
            cmd
        } else {
            netns.command(&binary("mesh-server")?)
        };
        cmd.args(["-node", &node, "-bind", &ip, "-client", "127.0.0.1"])
            .arg("-data-dir")
            .arg(&self.data_dir)
            .args(["-http-port", &HTTP_PORT.to_string()])
            .args(["-serf-lan-port", &SERF_PORT.to_string()])
            .args(["-dns-port", &DNS_PORT.to_string()]);
        if !self.client {
            cmd.args(["-server-port", &RPC_PORT.to_string()])
                .args(["-raft-multiplier", "1"]);
        }
        let child = cmd
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning an agent in a network namespace")?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process has exited on its own (it is then reaped).
    pub fn has_exited(&mut self) -> anyhow::Result<bool> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?.is_some()),
            None => Ok(false),
        }
    }

    pub fn http(&self) -> NsHttp {
        NsHttp {
            namespace: self.namespace.clone(),
            port: HTTP_PORT,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The leader's RPC address as this server reports it (`?stale`: local view), if any.
    pub async fn leader_seen(&self) -> Option<String> {
        let reply = self
            .http()
            .get("/v1/status/leader?stale", Duration::from_secs(2))
            .await
            .ok()?;
        let leader: String = serde_json::from_str(&reply.body).ok()?;
        (reply.status == 200 && !leader.is_empty()).then_some(leader)
    }

    pub async fn wait_for_leader(&self) -> anyhow::Result<()> {
        wait_until(
            "mesh-server in its namespace to know a leader",
            Duration::from_secs(30),
            || async move { self.leader_seen().await.is_some() },
        )
        .await
        .map_err(|err| anyhow::anyhow!("{err}; server log:\n{}", self.log_text()))
    }

    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// `n` servers, one per host namespace of a [`Lab`], forming one datacenter. Dropping it kills
/// the servers first, then deletes the namespaces.
#[derive(Debug)]
pub struct NsCluster {
    // Field order is drop order: processes before the namespaces they live in.
    pub servers: Vec<NsServer>,
    pub lab: Lab,
}

impl NsCluster {
    /// Creates the namespaces and starts the servers; [`Unavailable`] if namespaces cannot be
    /// used here.
    pub async fn start(dir: &Path, n: usize) -> anyhow::Result<Self> {
        let lab = Lab::create(n)?;
        let mut cluster = NsCluster {
            servers: Vec::new(),
            lab,
        };
        // Gossip addresses (port 8301 by default): servers find each other in the pool.
        let addrs: Vec<String> = (0..n).map(|i| Lab::host_ip(i).to_string()).collect();
        for i in 0..n {
            let mut args = vec!["-bootstrap-expect".to_owned(), n.to_string()];
            for (j, addr) in addrs.iter().enumerate() {
                if i != j {
                    args.extend(["-retry-join".to_owned(), addr.clone()]);
                }
            }
            let mut server = NsServer::new(&cluster.lab, i, &dir.join(format!("server-{i}")), args);
            server.spawn()?;
            cluster.servers.push(server);
        }
        for server in &cluster.servers {
            server.wait_for_leader().await?;
        }
        Ok(cluster)
    }

    /// The index of the server at `addr`.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.rpc_addr() == addr)
    }
}
