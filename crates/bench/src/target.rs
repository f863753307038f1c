//! The systems under test: how to start each one as child processes, when it is ready, and how
//! its KV API is spoken.
//!
//! Every system is a variant of [`System`]; every way of deploying it is a [`Topology`]. The
//! harness only ever sees a [`Deployment`]: the processes to measure and the HTTP endpoint to
//! load. Processes are killed by PID through their `Child` handle when the deployment drops,
//! also on error or panic, before the temporary data directory is removed.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;

use crate::load::HttpClient;
use crate::proc::{self, ProcessSample};

#[cfg(test)]
mod tests;

/// How long a freshly started system may take to answer its readiness probe.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The KV prefix every benchmark key lives under, in every system.
const KEY_PREFIX: &str = "bench/";

/// Judges an HTTP answer: `Ok` when it is what the probe or operation expects.
type AnswerCheck = fn(StatusCode, &[u8]) -> Result<(), String>;

/// A system under test.
#[derive(Debug, Clone)]
pub enum System {
    /// Our `mesh-server`, spoken to through the Consul `/v1/kv` API.
    Mesh { server_bin: PathBuf },
    /// etcd 3.4, spoken to through its v3 JSON gateway (`/v3/kv/*`).
    Etcd { etcd_bin: PathBuf },
}

/// How a system is deployed.
///
/// Only `Single` exists today. `--cluster 3` adds `Cluster(n)`: start `n` processes on
/// 127.0.0.x with each system's peer flags (`--retry-join`/`--bootstrap-expect` for mesh,
/// `--initial-cluster a=..,b=..,c=..` for etcd), wait until every node answers and one leader
/// is known, and send load to the leader. [`Deployment::sample`] already sums every node, so
/// CPU per operation then counts the whole cluster's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Single,
}

impl System {
    /// Short lowercase name used in tables, JSON and `--only`.
    pub fn name(&self) -> &'static str {
        match self {
            System::Mesh { .. } => "mesh",
            System::Etcd { .. } => "etcd",
        }
    }

    /// Starts the system in a fresh temporary data directory and waits until it is ready.
    pub async fn start(
        &self,
        topology: Topology,
        client: &HttpClient,
    ) -> anyhow::Result<Deployment> {
        match topology {
            Topology::Single => {}
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("mesh-bench-{}-", self.name()))
            .tempdir()
            .context("creating a temporary data directory")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log = dir.path().join("server.log");
        let (command, http) = match self {
            System::Mesh { server_bin } => {
                let [http, server, dns] = free_ports::<3>()?;
                let mut cmd = Command::new(server_bin);
                cmd.arg("--server")
                    .arg("--bootstrap")
                    .arg("--data-dir")
                    .arg(&data_dir)
                    .args([
                        "--node",
                        "bench",
                        "--bind",
                        "127.0.0.1",
                        "--client",
                        "127.0.0.1",
                    ])
                    .args(["--http-port", &http.to_string()])
                    .args(["--server-port", &server.to_string()])
                    .args(["--dns-port", &dns.to_string()])
                    .args(["--log-level", "warn"]);
                (cmd, http)
            }
            System::Etcd { etcd_bin } => {
                let [client_port, peer_port] = free_ports::<2>()?;
                let client_url = format!("http://127.0.0.1:{client_port}");
                let peer_url = format!("http://127.0.0.1:{peer_port}");
                let mut cmd = Command::new(etcd_bin);
                cmd.args(["--name", "bench", "--data-dir"])
                    .arg(&data_dir)
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url])
                    .args(["--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &format!("bench={peer_url}")])
                    // etcd 3.4 only honours --log-level with the zap logger.
                    .args(["--logger", "zap", "--log-level", "warn"]);
                (cmd, client_port)
            }
        };
        let process = ServerProcess::spawn(self.name(), command, log)?;
        let node = Node {
            process,
            base_url: format!("http://127.0.0.1:{http}"),
        };
        self.wait_ready(&node, client).await?;
        Ok(Deployment {
            system: self.name(),
            nodes: vec![node],
            _dir: dir,
        })
    }

    async fn wait_ready(&self, node: &Node, client: &HttpClient) -> anyhow::Result<()> {
        let (path, check): (&str, AnswerCheck) = match self {
            System::Mesh { .. } => ("/v1/status/leader", check_mesh_leader),
            System::Etcd { .. } => ("/health", check_etcd_health),
        };
        let uri = format!("{}{path}", node.base_url);
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_DEADLINE {
            node.process.ensure_running()?;
            let req = Request::get(&uri)
                .body(Full::new(Bytes::new()))
                .context("building the readiness request")?;
            match tokio::time::timeout(Duration::from_secs(2), fetch(client, req)).await {
                Ok(Ok((status, body))) => match check(status, &body) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                },
                Ok(Err(e)) => last = format!("{e:#}"),
                Err(_) => last = "readiness probe timed out".to_owned(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} not ready after {:?} (GET {uri}: {last}); log tail:\n{}",
            self.name(),
            READY_DEADLINE,
            node.process.log_tail()
        )
    }

    /// A request writing `value` under `key` (without the benchmark prefix).
    pub fn put_request(&self, base_url: &str, key: &str, value: &Bytes) -> Request<Full<Bytes>> {
        let req = match self {
            System::Mesh { .. } => Request::builder()
                .method(Method::PUT)
                .uri(format!("{base_url}/v1/kv/{KEY_PREFIX}{key}"))
                .body(Full::new(value.clone())),
            System::Etcd { .. } => {
                let body = serde_json::json!({
                    "key": BASE64.encode(format!("{KEY_PREFIX}{key}")),
                    "value": BASE64.encode(value),
                });
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base_url}/v3/kv/put"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
            }
        };
        req.expect("method, URI and header are built from valid parts")
    }

    /// Whether a write answer means the write succeeded.
    pub fn check_put(&self, status: StatusCode, body: &[u8]) -> Result<(), String> {
        check_status(status, body)?;
        match self {
            System::Mesh { .. } => match body.trim_ascii() {
                b"true" => Ok(()),
                other => Err(format!("PUT answered {}", String::from_utf8_lossy(other))),
            },
            System::Etcd { .. } => {
                let v: serde_json::Value = serde_json::from_slice(body)
                    .map_err(|e| format!("PUT answer is not JSON: {e}"))?;
                if v.get("header").is_some() {
                    Ok(())
                } else {
                    Err(format!("PUT answer has no header: {v}"))
                }
            }
        }
    }

    /// A (linearizable, the default of both systems) read of `key`.
    pub fn get_request(&self, base_url: &str, key: &str) -> Request<Full<Bytes>> {
        let req = match self {
            System::Mesh { .. } => Request::builder()
                .method(Method::GET)
                .uri(format!("{base_url}/v1/kv/{KEY_PREFIX}{key}"))
                .body(Full::new(Bytes::new())),
            System::Etcd { .. } => {
                let body =
                    serde_json::json!({ "key": BASE64.encode(format!("{KEY_PREFIX}{key}")) });
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base_url}/v3/kv/range"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
            }
        };
        req.expect("method, URI and header are built from valid parts")
    }

    /// Whether a read answer holds exactly `key` with a value of `value_len` bytes.
    ///
    /// The exact bytes are not checked: concurrent writers make the last value of a key
    /// ambiguous, and the key plus length already catch wrong, missing and truncated answers.
    pub fn check_get(
        &self,
        status: StatusCode,
        body: &[u8],
        key: &str,
        value_len: usize,
    ) -> Result<(), String> {
        check_status(status, body)?;
        let full_key = format!("{KEY_PREFIX}{key}");
        let (got_key, value) = match self {
            System::Mesh { .. } => {
                let entries: Vec<ConsulKvEntry> = serde_json::from_slice(body)
                    .map_err(|e| format!("GET answer is not a Consul KV list: {e}"))?;
                let [entry] = entries.as_slice() else {
                    return Err(format!(
                        "GET answered {} entries, expected 1",
                        entries.len()
                    ));
                };
                let value = BASE64
                    .decode(entry.value.as_deref().unwrap_or_default())
                    .map_err(|e| format!("GET Value is not base64: {e}"))?;
                (entry.key.clone(), value)
            }
            System::Etcd { .. } => {
                let range: EtcdRange = serde_json::from_slice(body)
                    .map_err(|e| format!("range answer is not JSON: {e}"))?;
                let [kv] = range.kvs.as_slice() else {
                    return Err(format!(
                        "range answered {} kvs, expected 1",
                        range.kvs.len()
                    ));
                };
                let k = BASE64
                    .decode(&kv.key)
                    .map_err(|e| format!("range key is not base64: {e}"))?;
                let value = BASE64
                    .decode(kv.value.as_deref().unwrap_or_default())
                    .map_err(|e| format!("range value is not base64: {e}"))?;
                (String::from_utf8_lossy(&k).into_owned(), value)
            }
        };
        if got_key != full_key {
            return Err(format!("GET {full_key} answered key {got_key}"));
        }
        if value.len() != value_len {
            return Err(format!(
                "GET {full_key} answered {} bytes, expected {value_len}",
                value.len()
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ConsulKvEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value")]
    value: Option<String>,
}

#[derive(Deserialize)]
struct EtcdRange {
    #[serde(default)]
    kvs: Vec<EtcdKv>,
}

#[derive(Deserialize)]
struct EtcdKv {
    key: String,
    // etcd's JSON gateway omits empty values.
    value: Option<String>,
}

fn check_status(status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Err(format!("HTTP {status}: {}", text.trim()))
}

fn check_mesh_leader(status: StatusCode, body: &[u8]) -> Result<(), String> {
    check_status(status, body)?;
    match serde_json::from_slice::<String>(body) {
        Ok(leader) if !leader.is_empty() => Ok(()),
        Ok(_) => Err("no leader yet".to_owned()),
        Err(e) => Err(format!("leader answer is not a JSON string: {e}")),
    }
}

fn check_etcd_health(status: StatusCode, body: &[u8]) -> Result<(), String> {
    check_status(status, body)?;
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("health answer is not JSON: {e}"))?;
    // etcd 3.4 answers {"health":"true"}; accept a JSON bool as well.
    match v.get("health") {
        Some(serde_json::Value::String(s)) if s == "true" => Ok(()),
        Some(serde_json::Value::Bool(true)) => Ok(()),
        _ => Err(format!("not healthy: {v}")),
    }
}

/// Sends a request and collects the whole answer.
pub async fn fetch(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// `N` distinct ports that are free on 127.0.0.1 for both TCP and UDP right now.
///
/// All listeners are held until every port is chosen, so the ports are distinct; another
/// process may still take one before the server binds it, which then shows as a start error.
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    let mut found = 0;
    for _ in 0..N * 20 {
        if found == N {
            break;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a TCP port")?;
        let port = tcp.local_addr().context("reading a bound port")?.port();
        // DNS wants the same port on UDP; skip ports whose UDP twin is taken.
        let Ok(udp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) else {
            held.push((tcp, None));
            continue;
        };
        held.push((tcp, Some(udp)));
        ports[found] = port;
        found += 1;
    }
    if found < N {
        bail!("found only {found} of {N} free ports");
    }
    Ok(ports)
}

/// One running server process.
#[derive(Debug)]
pub struct Node {
    process: ServerProcess,
    /// `http://127.0.0.1:PORT`, the node's HTTP API.
    pub base_url: String,
}

/// A started system: its processes and where to send load. Dropping it kills the processes.
#[derive(Debug)]
pub struct Deployment {
    system: &'static str,
    // Dropped before `_dir`, so processes die before their data directory is removed.
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// The endpoint load is sent to (the leader; with one node, that node).
    pub fn base_url(&self) -> &str {
        &self.nodes[0].base_url
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.process.child.id()).collect()
    }

    /// CPU ticks and RSS summed over every node of the deployment.
    pub fn sample(&mut self) -> anyhow::Result<ProcessSample> {
        let mut total = ProcessSample {
            cpu_ticks: 0,
            rss_kib: 0,
        };
        for node in &mut self.nodes {
            node.process.ensure_running()?;
            let s = proc::sample(node.process.child.id())?;
            total.cpu_ticks += s.cpu_ticks;
            total.rss_kib += s.rss_kib;
        }
        Ok(total)
    }

    /// Fails (with the log tail) if any process of the deployment has exited.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        self.nodes
            .iter()
            .try_for_each(|n| n.process.ensure_running())
    }
}

/// A child process that is killed, by PID through its handle, and reaped when dropped.
#[derive(Debug)]
struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    fn ensure_running(&self) -> anyhow::Result<()> {
        // `try_wait` needs `&mut`; reading /proc keeps this callable from shared borrows and
        // also catches a zombie, whose status has no VmRSS.
        let pid = self.child.id();
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rfind(')')
                    .map(|i| stat[i + 1..].trim_start().to_owned())
            })
            .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'));
        if alive {
            Ok(())
        } else {
            Err(anyhow!(
                "{} (pid {pid}) exited; log tail:\n{}",
                self.name,
                self.log_tail()
            ))
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already exited is fine; there is nothing else to do about a failed kill in a drop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
