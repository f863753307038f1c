//! The systems under test: how to start each one as child processes, when it is ready, and how
//! its KV API is spoken.
//!
//! Every system is a variant of [`System`]; every way of deploying it is a [`Topology`]. The
//! harness only ever sees a [`Deployment`]: the processes to measure and the HTTP endpoint to
//! load. Processes are killed by PID through their `Child` handle when the deployment drops,
//! also on error or panic, before the temporary data directory is removed.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One process on 127.0.0.1, bootstrapped on its own.
    Single,
    /// `n` processes, each on its own loopback address (mesh on 127.0.0.41.., etcd on
    /// 127.0.0.51..), joined with each system's peer flags (`--retry-join` and
    /// `--bootstrap-expect n` for mesh, `--initial-cluster a=..,b=..,c=..` for etcd). The
    /// deployment is ready when every node answers and all of them name the same leader; load
    /// goes to the leader. [`Deployment::sample`] sums every node, so CPU per operation counts
    /// the whole cluster's work.
    Cluster(usize),
}

/// The largest `--cluster` size: the nodes' loopback addresses must not run into the next
/// system's block (127.0.0.41.. for mesh, 127.0.0.51.. for etcd).
pub const MAX_CLUSTER: usize = 9;

impl Topology {
    /// The topology for `--cluster N` (absent: one server).
    pub fn from_cluster_arg(cluster: Option<usize>) -> anyhow::Result<Self> {
        match cluster {
            None => Ok(Topology::Single),
            Some(n) if (2..=MAX_CLUSTER).contains(&n) => Ok(Topology::Cluster(n)),
            Some(n) => bail!("--cluster must be between 2 and {MAX_CLUSTER}, not {n}"),
        }
    }

    /// How many server processes the topology runs.
    pub fn nodes(self) -> usize {
        match self {
            Topology::Single => 1,
            Topology::Cluster(n) => n,
        }
    }

    /// How long the deployment may take to answer readiness probes and agree on a leader.
    fn ready_deadline(self) -> Duration {
        match self {
            Topology::Single => READY_DEADLINE,
            // Joining, then an election with mesh's default (production) raft timing.
            Topology::Cluster(_) => 2 * READY_DEADLINE,
        }
    }
}

/// Where one node of a deployment listens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeSpec {
    name: String,
    ip: Ipv4Addr,
    /// The load-facing port: mesh's HTTP API, etcd's client URL.
    api_port: u16,
    /// The port peers use: mesh's server RPC port, etcd's peer URL.
    peer_port: u16,
    /// mesh only: the DNS port (also checked free on UDP).
    dns_port: u16,
}

impl NodeSpec {
    fn base_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.api_port)
    }

    fn peer_addr(&self) -> String {
        format!("{}:{}", self.ip, self.peer_port)
    }
}

/// The loopback address of node `index` (from 0) of a topology: 127.0.0.1 for a single
/// server, else `first_host + index` in 127.0.0.0/8.
fn node_ip(topology: Topology, first_host: u8, index: usize) -> Ipv4Addr {
    match topology {
        Topology::Single => Ipv4Addr::LOCALHOST,
        Topology::Cluster(_) => {
            let host = usize::from(first_host) + index;
            Ipv4Addr::new(
                127,
                0,
                0,
                u8::try_from(host).expect("cluster sizes are small"),
            )
        }
    }
}

/// Command-line arguments of mesh-server node `me` of `all` (data directory excluded).
fn mesh_args(me: &NodeSpec, all: &[NodeSpec]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--node",
        me.name.as_str(),
        "--bind",
        &me.ip.to_string(),
        "--client",
        &me.ip.to_string(),
        "--http-port",
        &me.api_port.to_string(),
        "--server-port",
        &me.peer_port.to_string(),
        "--dns-port",
        &me.dns_port.to_string(),
        "--log-level",
        "warn",
    ]
    .map(str::to_owned)
    .into();
    if all.len() == 1 {
        args.push("--bootstrap".to_owned());
    } else {
        args.extend(["--bootstrap-expect".to_owned(), all.len().to_string()]);
        // Gossip on each node's own loopback address, on the default port.
        for peer in all.iter().filter(|p| p.name != me.name) {
            args.extend(["--retry-join".to_owned(), peer.ip.to_string()]);
        }
    }
    args
}

/// Command-line arguments of etcd member `me` of `all` (data directory excluded).
fn etcd_args(me: &NodeSpec, all: &[NodeSpec]) -> Vec<String> {
    let client_url = me.base_url();
    let peer_url = format!("http://{}", me.peer_addr());
    let initial_cluster = all
        .iter()
        .map(|n| format!("{}=http://{}", n.name, n.peer_addr()))
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<String> = [
        "--name",
        me.name.as_str(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &initial_cluster,
        // etcd 3.4 only honours --log-level with the zap logger.
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]
    .map(str::to_owned)
    .into();
    if all.len() > 1 {
        args.extend(
            [
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "mesh-bench",
            ]
            .map(str::to_owned),
        );
    }
    args
}

impl System {
    /// Short lowercase name used in tables, JSON and `--only`.
    pub fn name(&self) -> &'static str {
        match self {
            System::Mesh { .. } => "mesh",
            System::Etcd { .. } => "etcd",
        }
    }

    /// The first loopback host byte of this system's cluster nodes (127.0.0.41.. or ..51..).
    fn first_host(&self) -> u8 {
        match self {
            System::Mesh { .. } => 41,
            System::Etcd { .. } => 51,
        }
    }

    /// Where every node of `topology` will listen, with ports free right now.
    fn node_specs(&self, topology: Topology) -> anyhow::Result<Vec<NodeSpec>> {
        (0..topology.nodes())
            .map(|i| {
                let ip = node_ip(topology, self.first_host(), i);
                let [api_port, peer_port, dns_port] = free_ports_on::<3>(ip)?;
                let name = match topology {
                    Topology::Single => "bench".to_owned(),
                    Topology::Cluster(_) => format!("bench-{}", i + 1),
                };
                Ok(NodeSpec {
                    name,
                    ip,
                    api_port,
                    peer_port,
                    dns_port,
                })
            })
            .collect()
    }

    /// Starts the system in a fresh temporary data directory and waits until it is ready (and,
    /// for a cluster, until every node names the same leader).
    pub async fn start(
        &self,
        topology: Topology,
        client: &HttpClient,
    ) -> anyhow::Result<Deployment> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mesh-bench-{}-", self.name()))
            .tempdir()
            .context("creating a temporary data directory")?;
        let specs = self.node_specs(topology)?;
        let mut nodes = Vec::with_capacity(specs.len());
        for spec in &specs {
            let data_dir = dir.path().join(&spec.name);
            std::fs::create_dir(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let log = dir.path().join(format!("{}.log", spec.name));
            let mut command = match self {
                System::Mesh { server_bin } => {
                    let mut cmd = Command::new(server_bin);
                    cmd.args(mesh_args(spec, &specs));
                    cmd
                }
                System::Etcd { etcd_bin } => {
                    let mut cmd = Command::new(etcd_bin);
                    cmd.args(etcd_args(spec, &specs));
                    cmd
                }
            };
            command.arg("--data-dir").arg(&data_dir);
            let name = format!("{} {}", self.name(), spec.name);
            nodes.push(Node {
                process: ServerProcess::spawn(&name, command, log)?,
                name: spec.name.clone(),
                base_url: spec.base_url(),
                peer_addr: spec.peer_addr(),
            });
        }
        let mut deployment = Deployment {
            system: self.clone(),
            topology,
            nodes,
            leader: 0,
            _dir: dir,
        };
        self.wait_ready(&mut deployment, client).await?;
        Ok(deployment)
    }

    async fn wait_ready(
        &self,
        deployment: &mut Deployment,
        client: &HttpClient,
    ) -> anyhow::Result<()> {
        let (path, check): (&str, AnswerCheck) = match self {
            System::Mesh { .. } => ("/v1/status/leader?stale", check_mesh_leader),
            System::Etcd { .. } => ("/health", check_etcd_health),
        };
        let deadline = deployment.topology.ready_deadline();
        let started = Instant::now();
        for node in &deployment.nodes {
            let uri = format!("{}{path}", node.base_url);
            let mut last = String::from("no answer yet");
            loop {
                deployment.ensure_running()?;
                if started.elapsed() > deadline {
                    bail!(
                        "{} not ready after {deadline:?} (GET {uri}: {last}); log tail:\n{}",
                        node.name,
                        node.process.log_tail()
                    );
                }
                match probe(client, get(&uri)).await {
                    Ok((status, body)) => match check(status, &body) {
                        Ok(()) => break,
                        Err(e) => last = e,
                    },
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if deployment.topology == Topology::Single {
            return Ok(());
        }
        let mut last = String::from("no answer yet");
        while started.elapsed() < deadline {
            deployment.ensure_running()?;
            match self.find_leader(deployment, client).await {
                Ok(leader) => {
                    deployment.leader = leader;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "{} nodes agree on no leader after {deadline:?}: {last}",
            self.name()
        )
    }

    /// The index of the node every node names as leader; `Err` while they disagree or some
    /// node knows no leader.
    async fn find_leader(
        &self,
        deployment: &Deployment,
        client: &HttpClient,
    ) -> Result<usize, String> {
        match self {
            System::Mesh { .. } => {
                let mut answers = Vec::with_capacity(deployment.nodes.len());
                for node in &deployment.nodes {
                    let uri = format!("{}/v1/status/leader?stale", node.base_url);
                    let (status, body) = probe(client, get(&uri)).await?;
                    check_status(status, &body)?;
                    let leader: String = serde_json::from_slice(&body)
                        .map_err(|e| format!("{uri}: not a JSON string: {e}"))?;
                    answers.push(leader);
                }
                let peers: Vec<&str> = deployment
                    .nodes
                    .iter()
                    .map(|n| n.peer_addr.as_str())
                    .collect();
                mesh_leader_index(&answers, &peers)
            }
            System::Etcd { .. } => {
                let mut statuses = Vec::with_capacity(deployment.nodes.len());
                for node in &deployment.nodes {
                    let uri = format!("{}/v3/maintenance/status", node.base_url);
                    let req = Request::post(&uri)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .expect("method, URI and header are built from valid parts");
                    let (status, body) = probe(client, req).await?;
                    check_status(status, &body)?;
                    statuses.push(parse_etcd_status(&body)?);
                }
                etcd_leader_index(&statuses)
            }
        }
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

/// A GET without a body.
fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .body(Full::new(Bytes::new()))
        .expect("a GET is built from valid parts")
}

/// [`fetch`] with a short deadline, for readiness and leader probes.
async fn probe(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let uri = req.uri().to_string();
    match tokio::time::timeout(Duration::from_secs(2), fetch(client, req)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("{uri}: {e:#}")),
        Err(_) => Err(format!("{uri}: no answer within 2 s")),
    }
}

/// Which of the nodes (by server RPC address, `IP:PORT`) every `/v1/status/leader` answer
/// names.
fn mesh_leader_index(answers: &[String], peer_addrs: &[&str]) -> Result<usize, String> {
    let Some(first) = answers.first() else {
        return Err("no answers".to_owned());
    };
    if first.is_empty() {
        return Err("no leader yet".to_owned());
    }
    if let Some(other) = answers.iter().find(|a| *a != first) {
        return Err(format!(
            "nodes disagree on the leader: {first:?} and {other:?}"
        ));
    }
    peer_addrs
        .iter()
        .position(|a| a == first)
        .ok_or_else(|| format!("leader {first:?} is none of the nodes {peer_addrs:?}"))
}

/// What etcd's `/v3/maintenance/status` says about who answers and who leads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EtcdStatus {
    member_id: u64,
    /// 0 while the member knows no leader.
    leader: u64,
}

fn parse_etcd_status(body: &[u8]) -> Result<EtcdStatus, String> {
    #[derive(Deserialize)]
    struct Status {
        header: Header,
        // The gateway omits zero values, and encodes uint64 as strings.
        #[serde(default)]
        leader: Option<String>,
    }
    #[derive(Deserialize)]
    struct Header {
        member_id: String,
    }
    let s: Status =
        serde_json::from_slice(body).map_err(|e| format!("status answer is not JSON: {e}"))?;
    let id = |v: &str| {
        v.parse::<u64>()
            .map_err(|e| format!("status id {v:?} is not a u64: {e}"))
    };
    Ok(EtcdStatus {
        member_id: id(&s.header.member_id)?,
        leader: s.leader.as_deref().map_or(Ok(0), id)?,
    })
}

/// Which member every status answer names as leader.
fn etcd_leader_index(statuses: &[EtcdStatus]) -> Result<usize, String> {
    let Some(first) = statuses.first() else {
        return Err("no answers".to_owned());
    };
    if first.leader == 0 {
        return Err("no leader yet".to_owned());
    }
    if let Some(other) = statuses.iter().find(|s| s.leader != first.leader) {
        return Err(format!(
            "members disagree on the leader: {:x} and {:x}",
            first.leader, other.leader
        ));
    }
    statuses
        .iter()
        .position(|s| s.member_id == first.leader)
        .ok_or_else(|| format!("leader {:x} is none of the members", first.leader))
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
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    free_ports_on(Ipv4Addr::LOCALHOST)
}

/// `N` distinct ports that are free on `ip` for both TCP and UDP right now.
///
/// All listeners are held until every port is chosen, so the ports are distinct; another
/// process may still take one before the server binds it, which then shows as a start error.
pub fn free_ports_on<const N: usize>(ip: Ipv4Addr) -> anyhow::Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    let mut found = 0;
    for _ in 0..N * 20 {
        if found == N {
            break;
        }
        let tcp =
            TcpListener::bind((ip, 0)).with_context(|| format!("binding a TCP port on {ip}"))?;
        let port = tcp.local_addr().context("reading a bound port")?.port();
        // DNS wants the same port on UDP; skip ports whose UDP twin is taken.
        let Ok(udp) = UdpSocket::bind((ip, port)) else {
            held.push((tcp, None));
            continue;
        };
        held.push((tcp, Some(udp)));
        ports[found] = port;
        found += 1;
    }
    if found < N {
        bail!("found only {found} of {N} free ports on {ip}");
    }
    Ok(ports)
}

/// One running server process.
#[derive(Debug)]
pub struct Node {
    process: ServerProcess,
    /// `bench` or `bench-N`.
    name: String,
    /// `http://IP:PORT`, the node's HTTP API (etcd: its client URL).
    pub base_url: String,
    /// `IP:PORT` of mesh's server RPC (what `/v1/status/leader` names) or etcd's peer URL.
    peer_addr: String,
}

/// One reading of every node of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSample {
    pub name: String,
    pub leader: bool,
    pub usage: ProcessSample,
}

/// A started system: its processes and where to send load. Dropping it kills the processes.
#[derive(Debug)]
pub struct Deployment {
    system: System,
    topology: Topology,
    // Dropped before `_dir`, so processes die before their data directory is removed.
    nodes: Vec<Node>,
    /// Index into `nodes` of the leader (with one node, that node).
    leader: usize,
    _dir: tempfile::TempDir,
}

impl Deployment {
    pub fn system(&self) -> &'static str {
        self.system.name()
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The endpoint load is sent to: the leader (with one node, that node).
    pub fn base_url(&self) -> &str {
        &self.nodes[self.leader].base_url
    }

    /// Every node's endpoint, starting with the node after the leader and ending with the
    /// leader, so one worker spreading reads lands on a follower.
    pub fn spread_urls(&self) -> Vec<String> {
        rotate_after(&self.nodes, self.leader)
            .map(|n| n.base_url.clone())
            .collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.process.child.id()).collect()
    }

    /// Asks the nodes who leads now and sends load there from now on. Returns the previous
    /// and new leader's names when leadership moved. A single server is always its own leader.
    pub async fn refresh_leader(
        &mut self,
        client: &HttpClient,
    ) -> anyhow::Result<Option<(String, String)>> {
        if self.topology == Topology::Single {
            return Ok(None);
        }
        let system = self.system.clone();
        let deadline = Instant::now() + self.topology.ready_deadline();
        let leader = loop {
            self.ensure_running()?;
            match system.find_leader(self, client).await {
                Ok(leader) => break leader,
                Err(e) if Instant::now() > deadline => {
                    bail!("{}: no agreed leader: {e}", system.name())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let old = std::mem::replace(&mut self.leader, leader);
        Ok((old != leader).then(|| {
            (
                self.nodes[old].name.clone(),
                self.nodes[leader].name.clone(),
            )
        }))
    }

    /// CPU ticks and RSS summed over every node of the deployment.
    pub fn sample(&mut self) -> anyhow::Result<ProcessSample> {
        Ok(sum_samples(&self.sample_nodes()?))
    }

    /// CPU ticks and RSS of every node, the leader first, then the others in start order.
    pub fn sample_nodes(&mut self) -> anyhow::Result<Vec<NodeSample>> {
        self.ensure_running()?;
        let leader = self.leader;
        std::iter::once(&self.nodes[leader])
            .chain(
                self.nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != leader)
                    .map(|(_, n)| n),
            )
            .map(|node| {
                Ok(NodeSample {
                    name: node.name.clone(),
                    leader: std::ptr::eq(node, &self.nodes[leader]),
                    usage: proc::sample(node.process.child.id())?,
                })
            })
            .collect()
    }

    /// Fails (with the log tail) if any process of the deployment has exited.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        self.nodes
            .iter()
            .try_for_each(|n| n.process.ensure_running())
    }
}

/// The items after index `first`, wrapping around, ending with `first` itself.
fn rotate_after<T>(items: &[T], first: usize) -> impl Iterator<Item = &T> {
    let n = items.len();
    (1..=n).map(move |k| &items[(first + k) % n])
}

/// The sum of the nodes' CPU ticks and RSS.
pub fn sum_samples(nodes: &[NodeSample]) -> ProcessSample {
    nodes.iter().fold(
        ProcessSample {
            cpu_ticks: 0,
            rss_kib: 0,
        },
        |total, n| ProcessSample {
            cpu_ticks: total.cpu_ticks + n.usage.cpu_ticks,
            rss_kib: total.rss_kib + n.usage.rss_kib,
        },
    )
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
        crate::child::log_tail(&self.log, 20)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already exited is fine; there is nothing else to do about a failed kill in a drop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
