//! `mesh-bench catalog`: catalog registrations and blocking-query fan-out, mesh against etcd 3.4.
//!
//! Two sections, each interleaved system by system within every round (mesh, etcd, mesh, ...):
//!
//! 1. **Registration**: closed-loop clients `PUT /v1/catalog/register`, every registration a
//!    new node with one service instance and one passing check. etcd has no catalog; its row
//!    is a reference: a `PUT` of the same JSON document under `catalog/<node>/<id>`. Every
//!    cell starts a fresh server, so every cell registers into an empty catalog.
//! 2. **Fan-out**: for each watcher count, a fresh server (so RSS deltas start from the same
//!    state in every cell) with two `web` instances; `N` watchers, each on its own HTTP/1.1
//!    connection from its own loopback source address, connected 64 at a time (the next 64 once
//!    the server's accept queue is empty), park on `web`
//!    (mesh: `GET /v1/health/service/web?index=<current>&wait=5m`; etcd: a `POST /v3/watch`
//!    stream on key `web`). Parked means: mesh — every request written and every server-side
//!    socket's receive queue empty in `/proc/net/tcp`, i.e. the server has read every request;
//!    etcd — every stream's `created` message received. Then a fixed settle (`--settle-ms`),
//!    RSS, a batch of unrelated writes (other services, a service named `web-admin`, KV keys;
//!    for etcd other keys and `web-admin`), the settle again, and one write that changes `web`
//!    (mesh: a new `web` instance; etcd: a put on `web`). Latency is each watcher's answer time
//!    minus the write's acknowledgement time; a watcher answered before the write was sent is a
//!    spurious wake-up.
//!
//! Server CPU comes from per-thread `schedstat` (ns) where no thread exited in the window, else
//! from `/proc/<pid>/stat` ticks; RSS from `/proc/<pid>/status`.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request};
use serde::Serialize;

use crate::kv::Only;
use crate::load::{self, HttpClient};
use crate::machine::{self, MachineFacts};
use crate::proc;
use crate::procfs;
use crate::report::{fmt_num, markdown_table, Align};
use crate::stats::{median, percentile};
use crate::target::{Deployment, System, Topology};
use crate::watch;

/// Watcher counts without `--watchers`.
const DEFAULT_WATCHERS: [usize; 2] = [1_000, 10_000];
/// Watcher count with `--quick`.
const QUICK_WATCHERS: usize = 200;
const DEFAULT_ROUNDS: usize = 3;
const DEFAULT_CONCURRENCY: [usize; 3] = [1, 16, 64];
const DEFAULT_DURATION_SECS: u64 = 5;
const QUICK_DURATION_SECS: u64 = 1;
/// File descriptors this process needs beyond one per watcher.
const FD_SLACK: u64 = 512;
/// Watchers connected at once; the next batch starts when the server's accept queue is empty.
const CONNECTS_IN_FLIGHT: usize = 64;
/// How long parking every watcher may take.
const PARK_DEADLINE: Duration = Duration::from_secs(180);
/// How long after the write's acknowledgement every watcher must have been answered.
const FANOUT_DEADLINE: Duration = Duration::from_secs(30);
/// The blocking queries' `wait`: far longer than a cell.
const MESH_WAIT: &str = "5m";
/// Per-request deadline of the harness's own writes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `web` instances present before the measured write.
const BASE_WEB_INSTANCES: usize = 2;

#[derive(Debug, Clone, Args, Serialize)]
pub struct CatalogArgs {
    /// Watchers per fan-out cell, comma-separated [default: 1000,10000; with --quick: 200].
    #[arg(long, value_delimiter = ',')]
    pub watchers: Vec<usize>,
    /// Rounds; the tables show the median over rounds [default: 3; with --quick: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Concurrent registering clients (closed loop), comma-separated [default: 1,16,64].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Seconds each registration phase lasts [default: 5; with --quick: 1].
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// A small smoke run: 200 watchers, 1 round, 1 s registration phases (explicit options win).
    #[arg(long)]
    pub quick: bool,
    /// Milliseconds waited once the watchers are parked, and again after the unrelated writes.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Batches of unrelated writes done with the watchers parked (5 writes per batch).
    #[arg(long, default_value_t = 10)]
    pub unrelated_batches: usize,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// Where to write the raw per-round numbers [default: $CARGO_TARGET_DIR/bench/catalog.json,
    /// else target/bench/catalog.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Measure only one system.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
}

/// The options with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub watchers: Vec<usize>,
    pub rounds: usize,
    pub concurrency: Vec<usize>,
    pub duration_secs: u64,
    pub settle_ms: u64,
    pub unrelated_batches: usize,
}

impl CatalogArgs {
    /// Defaults (those of `--quick` when given) for every option left out, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let watchers = match (self.watchers.is_empty(), self.quick) {
            (false, _) => self.watchers.clone(),
            (true, true) => vec![QUICK_WATCHERS],
            (true, false) => DEFAULT_WATCHERS.to_vec(),
        };
        let concurrency = if self.concurrency.is_empty() {
            DEFAULT_CONCURRENCY.to_vec()
        } else {
            self.concurrency.clone()
        };
        let plan = Plan {
            watchers,
            rounds: self
                .rounds
                .unwrap_or(if self.quick { 1 } else { DEFAULT_ROUNDS }),
            concurrency,
            duration_secs: self.duration_secs.unwrap_or(if self.quick {
                QUICK_DURATION_SECS
            } else {
                DEFAULT_DURATION_SECS
            }),
            settle_ms: self.settle_ms,
            unrelated_batches: self.unrelated_batches,
        };
        if plan.rounds == 0 || plan.duration_secs == 0 || plan.unrelated_batches == 0 {
            bail!("--rounds, --duration-secs and --unrelated-batches must be at least 1");
        }
        if plan.watchers.contains(&0) || plan.concurrency.contains(&0) {
            bail!("every --watchers and --concurrency must be at least 1");
        }
        Ok(plan)
    }
}

/// One registration cell of one round.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationRun {
    pub round: usize,
    pub system: String,
    pub concurrency: usize,
    pub ok: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    pub regs_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub cpu_ticks: u64,
    /// Server CPU per successful registration, in microseconds.
    pub cpu_us_per_reg: Option<f64>,
    /// Server RSS at the end of the phase.
    pub rss_mib: f64,
    pub first_error: Option<String>,
}

/// One fan-out cell of one round.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutRun {
    pub round: usize,
    pub system: String,
    pub watchers: usize,
    /// From the first connect until every watcher was parked (not a measurement).
    pub park_secs: f64,
    /// Server CPU while the watchers connected and parked, per 1,000 watchers.
    pub park_cpu_ms_per_1k: f64,
    pub rss_before_mib: f64,
    pub rss_parked_mib: f64,
    /// (parked − before) per 1,000 watchers.
    pub rss_mib_per_1k: f64,
    pub unrelated_writes: usize,
    pub cpu_us_per_unrelated_write: Option<f64>,
    /// Watchers answered before the `web` write was sent.
    pub spurious: usize,
    /// From sending the `web` write to its acknowledgement.
    pub write_ack_ms: f64,
    /// Watchers answered after the write was sent.
    pub answered: usize,
    /// Watchers neither answered nor failed within the deadline.
    pub missed: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Answer time minus acknowledgement time over the answered watchers (negative: the
    /// watcher heard of the write before its writer did).
    pub min_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// From sending the write until the last watcher was answered.
    pub last_from_send_ms: Option<f64>,
    /// Server CPU from just before the write until the last watcher was answered.
    pub cpu_ms: f64,
    pub cpu_ms_per_1k: f64,
    /// `schedstat` (ns per thread) or `ticks` (when a thread exited in the window).
    pub cpu_source: &'static str,
}

/// Medians over rounds of one (concurrency, system).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationSummary {
    pub concurrency: usize,
    pub system: String,
    pub rounds: usize,
    pub cpu_us_per_reg: Option<f64>,
    pub rss_mib: Option<f64>,
    pub regs_per_sec: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: u64,
}

/// Medians over rounds of one (watchers, system); counts are summed over rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FanoutSummary {
    pub watchers: usize,
    pub system: String,
    pub rounds: usize,
    pub cpu_ms_per_1k: Option<f64>,
    pub rss_mib_per_1k: Option<f64>,
    pub rss_parked_mib: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub write_ack_ms: Option<f64>,
    pub last_from_send_ms: Option<f64>,
    pub cpu_us_per_unrelated_write: Option<f64>,
    pub spurious: usize,
    pub missed: usize,
    pub errors: usize,
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct CatalogReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    config: &'a CatalogArgs,
    plan: &'a Plan,
    registrations: &'a [RegistrationRun],
    fanouts: &'a [FanoutRun],
    registration_summary: &'a [RegistrationSummary],
    fanout_summary: &'a [FanoutSummary],
}

pub fn run(args: CatalogArgs, command: &str) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let max_watchers = plan.watchers.iter().copied().max().unwrap_or(0) as u64;
    // Before any server starts: they inherit the limit, and need one fd per watcher too.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    if nofile < max_watchers + FD_SLACK {
        bail!(
            "{max_watchers} watchers need about {} file descriptors, but RLIMIT_NOFILE allows \
             {nofile} (the hard limit); raise it (ulimit -Hn) or pass fewer --watchers",
            max_watchers + FD_SLACK
        );
    }
    let want = |o: Only| args.only.is_none_or(|only| only == o);
    let mut systems = Vec::new();
    let mut mesh_bin = None;
    let mut etcd_bin = None;
    if want(Only::Mesh) {
        let Some(server_bin) = args.mesh_server.clone() else {
            bail!(
                "--mesh-server PATH is required unless --only etcd (cargo xtask bench passes it)"
            );
        };
        if !server_bin.exists() {
            bail!("mesh-server binary {} does not exist", server_bin.display());
        }
        mesh_bin = Some(server_bin.clone());
        systems.push(System::Mesh { server_bin });
    }
    if want(Only::Etcd) {
        let bin = machine::ensure_etcd()?;
        etcd_bin = Some(bin.clone());
        systems.push(System::Etcd { etcd_bin: bin });
    }

    let ticks = proc::clock_ticks_per_sec()?;
    let facts = MachineFacts::collect(ticks, etcd_bin.as_deref(), mesh_bin.as_deref());
    println!(
        "# mesh-bench catalog\n\n```\n{command}\n```\n\n{}- RLIMIT_NOFILE: {nofile}\n",
        facts.to_markdown()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let client = load::http_client();
    let registrations = runtime.block_on(measure_registrations(&client, &plan, &systems, ticks))?;
    let fanouts = runtime.block_on(measure_fanouts(&client, &plan, &systems, ticks))?;

    let reg_summary = summarize_registrations(&registrations);
    let fan_summary = summarize_fanouts(&fanouts);
    print_tables(&plan, &reg_summary, &fan_summary);
    for r in registrations.iter().filter(|r| r.first_error.is_some()) {
        println!(
            "round {} {} registration c={}: {} errors, first: {}",
            r.round,
            r.system,
            r.concurrency,
            r.errors,
            r.first_error.as_deref().unwrap_or_default()
        );
    }
    for r in fanouts.iter().filter(|r| r.first_error.is_some()) {
        println!(
            "round {} {} fan-out {} watchers: {} errors, first: {}",
            r.round,
            r.system,
            r.watchers,
            r.errors,
            r.first_error.as_deref().unwrap_or_default()
        );
    }

    let report = CatalogReport {
        command,
        machine: &facts,
        config: &args,
        plan: &plan,
        registrations: &registrations,
        fanouts: &fanouts,
        registration_summary: &reg_summary,
        fanout_summary: &fan_summary,
    };
    crate::report::write_json(args.json_out.clone(), "catalog", &report)?;

    // The property the benchmark exists for: no watcher of `web` wakes for other changes, and
    // every one wakes for a change of `web`.
    let (spurious, missed) = fanouts
        .iter()
        .filter(|r| r.system == "mesh")
        .fold((0, 0), |(s, m), r| (s + r.spurious, m + r.missed));
    if spurious > 0 || missed > 0 {
        bail!(
            "mesh fan-out: {spurious} spurious wake-up(s) and {missed} watcher(s) never answered \
             (both must be 0)"
        );
    }
    Ok(())
}

fn print_tables(plan: &Plan, reg: &[RegistrationSummary], fan: &[FanoutSummary]) {
    println!(
        "## Registration: medians over {} round(s), {} s per phase, one server each\n",
        plan.rounds, plan.duration_secs
    );
    println!("{}", registration_table(reg));
    println!(
        "mesh: `PUT /v1/catalog/register`, a new node with one service instance and a passing \
         check each time; etcd (reference, no catalog): `PUT` of the same JSON under \
         `catalog/<node>/<id>`. CPU is the server's utime+stime per successful registration; \
         RSS at the end of the phase; errors summed over rounds. A fresh server per cell: each \
         phase starts from an empty catalog and ends with regs/s × {} registrations.\n",
        plan.duration_secs
    );
    let reg_ratios = registration_ratios(reg);
    if !reg_ratios.is_empty() {
        println!(
            "{}",
            markdown_table(
                &[
                    ("concurrency", Align::Right),
                    ("CPU/reg mesh/etcd", Align::Right),
                    ("regs/s mesh/etcd", Align::Right),
                ],
                &reg_ratios,
            )
        );
    }
    println!(
        "## Blocking-query fan-out: medians over {} round(s), a fresh server per cell\n",
        plan.rounds
    );
    println!("{}", fanout_table(fan));
    println!(
        "Each watcher is one HTTP/1.1 connection (mesh: `GET /v1/health/service/web?index=<current>&wait={MESH_WAIT}`; \
         etcd: a `POST /v3/watch` stream on key `web`). Parked = every request written and read by \
         the server (empty receive queues in /proc/net/tcp; etcd: every `created` message \
         received), then {} ms settle. CPU ms/1k: server CPU from just before the `web` write \
         until the last watcher's answer, per 1,000 watchers (includes the write itself). RSS \
         MiB/1k: RSS parked minus RSS before connecting, per 1,000 watchers. p50/p99/max: \
         answer time minus the write's acknowledgement time (negative: answered before the \
         writer). Write ack: the write's own latency, sent to acknowledged. Last answer: from \
         sending the write to the last watcher's answer. Spurious: watchers answered before \
         the `web` write, after {} unrelated writes (other services and a `web-admin` service, \
         KV keys; etcd: other keys and `web-admin`) and another {} ms; must be 0. CPU µs/unrelated \
         write: server CPU per unrelated write with the watchers parked. Counts are summed over \
         rounds.\n",
        plan.settle_ms,
        plan.unrelated_batches * 5,
        plan.settle_ms
    );
    let fan_ratios = fanout_ratios(fan);
    if !fan_ratios.is_empty() {
        println!(
            "{}",
            markdown_table(
                &[
                    ("watchers", Align::Right),
                    ("CPU/1k mesh/etcd", Align::Right),
                    ("RSS/1k mesh/etcd", Align::Right),
                    ("p50 mesh/etcd", Align::Right),
                    ("p99 mesh/etcd", Align::Right),
                    ("max mesh/etcd", Align::Right),
                    ("last answer mesh/etcd", Align::Right),
                ],
                &fan_ratios,
            )
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

/// A write the harness sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    /// mesh: `PUT /v1/catalog/register` of one node with one service instance and a passing
    /// check.
    Register {
        node: String,
        address: String,
        service: String,
        id: String,
    },
    /// mesh: `PUT /v1/catalog/deregister` of one service instance.
    Deregister { node: String, id: String },
    /// mesh: `PUT /v1/kv/<key>`.
    KvPut { key: String, value: String },
    /// etcd: `POST /v3/kv/put`.
    EtcdPut { key: String, value: String },
    /// etcd: `POST /v3/kv/deleterange` of one key.
    EtcdDelete { key: String },
}

impl Write {
    fn register(node: String, host: u32, service: &str, id: String) -> Self {
        let [_, b, c, d] = host.to_be_bytes();
        Write::Register {
            node,
            address: format!("10.{b}.{c}.{d}"),
            service: service.to_owned(),
            id,
        }
    }

    /// The catalog registration document (also the value etcd stores for the same instance).
    fn registration_json(node: &str, address: &str, service: &str, id: &str) -> String {
        serde_json::json!({
            "Node": node,
            "Address": address,
            "Service": {"Service": service, "ID": id, "Port": 8080},
            "Check": {"Name": "alive", "ServiceID": id, "Status": "passing"},
        })
        .to_string()
    }

    /// The etcd counterpart of a mesh registration: the same document under its own key.
    fn as_etcd_put(&self, key: String) -> Self {
        match self {
            Write::Register {
                node,
                address,
                service,
                id,
            } => Write::EtcdPut {
                key,
                value: Self::registration_json(node, address, service, id),
            },
            other => other.clone(),
        }
    }

    fn request(&self, base_url: &str) -> Request<Full<Bytes>> {
        let (method, path, body) = self.parts();
        Request::builder()
            .method(method)
            .uri(format!("{base_url}{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("method, URI and header are built from valid parts")
    }

    /// The write as the bytes of one HTTP/1.1 request to `server`.
    fn raw_request(&self, server: SocketAddrV4) -> Vec<u8> {
        let (method, path, body) = self.parts();
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: mesh-bench\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Method, path and body.
    fn parts(&self) -> (Method, String, String) {
        match self {
            Write::Register {
                node,
                address,
                service,
                id,
            } => (
                Method::PUT,
                "/v1/catalog/register".to_owned(),
                Self::registration_json(node, address, service, id),
            ),
            Write::Deregister { node, id } => (
                Method::PUT,
                "/v1/catalog/deregister".to_owned(),
                serde_json::json!({"Node": node, "ServiceID": id}).to_string(),
            ),
            Write::KvPut { key, value } => (Method::PUT, format!("/v1/kv/{key}"), value.clone()),
            Write::EtcdPut { key, value } => (
                Method::POST,
                "/v3/kv/put".to_owned(),
                serde_json::json!({"key": BASE64.encode(key), "value": BASE64.encode(value)})
                    .to_string(),
            ),
            Write::EtcdDelete { key } => (
                Method::POST,
                "/v3/kv/deleterange".to_owned(),
                serde_json::json!({"key": BASE64.encode(key)}).to_string(),
            ),
        }
    }
}

/// Sends a write and checks its answer (mesh: `true`; etcd: a JSON answer with a header).
async fn send_write(
    client: &HttpClient,
    system: &System,
    base_url: &str,
    write: &Write,
) -> Result<(), String> {
    let req = write.request(base_url);
    match tokio::time::timeout(WRITE_TIMEOUT, crate::target::fetch(client, req)).await {
        Ok(Ok((status, body))) => system.check_put(status, &body),
        Ok(Err(e)) => Err(format!("{write:?}: {e:#}")),
        Err(_) => Err(format!("{write:?}: no answer within {WRITE_TIMEOUT:?}")),
    }
}

/// Registration `n` of the registration section: node `reg-n`, service `svc-{n % 256}`.
fn registration_write(system: &System, n: u64) -> Write {
    let service = format!("svc-{}", n % 256);
    let id = format!("{service}-{n}");
    let node = format!("reg-{n}");
    let reg = Write::register(node.clone(), n as u32, &service, id.clone());
    match system {
        System::Mesh { .. } => reg,
        System::Etcd { .. } => reg.as_etcd_put(format!("catalog/{node}/{id}")),
    }
}

/// The `web` instance number `i` (`i` below [`BASE_WEB_INSTANCES`] are there from the start).
fn web_instance(i: usize) -> Write {
    Write::register(
        format!("web-node-{i}"),
        0x0001_0000 + i as u32,
        watch::WATCHED,
        format!("{}-{i}", watch::WATCHED),
    )
}

/// The writes that set up the watched service (mesh) or key (etcd) before a fan-out.
fn seed_writes(system: &System) -> Vec<Write> {
    let instances: Vec<Write> = (0..BASE_WEB_INSTANCES).map(web_instance).collect();
    match system {
        System::Mesh { .. } => instances,
        System::Etcd { .. } => {
            let docs: Vec<String> = instances
                .iter()
                .map(|w| match w.as_etcd_put(String::new()) {
                    Write::EtcdPut { value, .. } => value,
                    _ => unreachable!("a registration becomes a put"),
                })
                .collect();
            vec![Write::EtcdPut {
                key: watch::WATCHED.to_owned(),
                value: format!("[{}]", docs.join(",")),
            }]
        }
    }
}

/// The measured write: a new `web` instance (etcd: a put of its document on key `web`).
fn web_write(system: &System) -> Write {
    let new = web_instance(BASE_WEB_INSTANCES);
    match system {
        System::Mesh { .. } => new,
        System::Etcd { .. } => new.as_etcd_put(watch::WATCHED.to_owned()),
    }
}

/// `batches` × 5 writes that must wake no watcher of `web`.
fn unrelated_writes(system: &System, batches: usize) -> Vec<Write> {
    let mut writes = Vec::with_capacity(batches * 5);
    for i in 0..batches {
        let db = Write::register(
            format!("db-node-{i}"),
            0x0002_0000 + i as u32,
            "db",
            format!("db-{i}"),
        );
        // Shares the prefix `web`: a watch keyed by prefix would wake.
        let admin = Write::register(
            format!("admin-node-{i}"),
            0x0003_0000 + i as u32,
            "web-admin",
            format!("web-admin-{i}"),
        );
        let kv_key = format!("bench/unrelated-{i}");
        match system {
            System::Mesh { .. } => writes.extend([
                db,
                admin,
                Write::KvPut {
                    key: kv_key,
                    value: format!("value {i}"),
                },
                Write::Deregister {
                    node: format!("db-node-{i}"),
                    id: format!("db-{i}"),
                },
                Write::Deregister {
                    node: format!("admin-node-{i}"),
                    id: format!("web-admin-{i}"),
                },
            ]),
            System::Etcd { .. } => writes.extend([
                db.as_etcd_put(format!("db/db-{i}")),
                admin.as_etcd_put("web-admin".to_owned()),
                Write::EtcdPut {
                    key: kv_key,
                    value: format!("value {i}"),
                },
                Write::EtcdDelete {
                    key: format!("db/db-{i}"),
                },
                Write::EtcdDelete {
                    key: "web-admin".to_owned(),
                },
            ]),
        }
    }
    writes
}

/// `X-Consul-Index` of `GET /v1/health/service/web`.
async fn mesh_web_index(client: &HttpClient, base_url: &str) -> anyhow::Result<u64> {
    let uri = format!("{base_url}/v1/health/service/{}", watch::WATCHED);
    let req = Request::get(&uri)
        .body(Full::new(Bytes::new()))
        .expect("a GET is built from valid parts");
    let resp = tokio::time::timeout(WRITE_TIMEOUT, client.request(req))
        .await
        .with_context(|| format!("GET {uri}: no answer"))?
        .with_context(|| format!("GET {uri}"))?;
    let status = resp.status();
    let index = resp
        .headers()
        .get("x-consul-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = resp.into_body().collect().await?.to_bytes();
    match index {
        Some(index) if status.is_success() => Ok(index),
        _ => bail!(
            "GET {uri}: HTTP {status}, no X-Consul-Index: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Registration section

async fn measure_registrations(
    client: &HttpClient,
    plan: &Plan,
    systems: &[System],
    ticks: u64,
) -> anyhow::Result<Vec<RegistrationRun>> {
    let duration = Duration::from_secs(plan.duration_secs);
    let mut runs = Vec::new();
    for round in 1..=plan.rounds {
        for &concurrency in &plan.concurrency {
            for system in systems {
                // A fresh server per cell: every cell registers into an empty catalog, so the
                // rounds repeat the same measurement (a catalog that grows over the cells makes
                // later cells pay for more state, raft snapshots above all).
                let mut deployment = system
                    .start(Topology::Single, client)
                    .await
                    .with_context(|| format!("starting {}", system.name()))?;
                let run = registration_cell(
                    client,
                    &Arc::new(system.clone()),
                    &mut deployment,
                    concurrency,
                    duration,
                    &Arc::new(AtomicU64::new(0)),
                    round,
                    ticks,
                )
                .await?;
                drop(deployment);
                eprintln!(
                    "round {round}/{} {:<4} register c={concurrency:<3} {:>8.0} regs/s {:>8} µs/reg CPU {:>3} errors",
                    plan.rounds,
                    run.system,
                    run.regs_per_sec,
                    fmt_num(run.cpu_us_per_reg, 1),
                    run.errors,
                );
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

#[allow(clippy::too_many_arguments)]
async fn registration_cell(
    client: &HttpClient,
    system: &Arc<System>,
    deployment: &mut Deployment,
    concurrency: usize,
    duration: Duration,
    next: &Arc<AtomicU64>,
    round: usize,
    ticks: u64,
) -> anyhow::Result<RegistrationRun> {
    let base_url = deployment.base_url().to_owned();
    let before = deployment.sample()?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, system, next) = (client.clone(), system.clone(), next.clone());
        let base_url = base_url.clone();
        workers.spawn(async move {
            let (mut ok, mut errors, mut latencies, mut first_error) =
                (0u64, 0u64, Vec::new(), None);
            while Instant::now() < deadline {
                let write = registration_write(&system, next.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                match send_write(&client, &system, &base_url, &write).await {
                    Ok(()) => {
                        ok += 1;
                        latencies.push(sent.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        // A dead server refuses at once; do not spin a core on refusals.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, errors, latencies, first_error)
        });
    }
    let (mut ok, mut errors, mut latencies, mut first_error) = (0, 0, Vec::new(), None);
    while let Some(joined) = workers.join_next().await {
        let (o, e, l, f) = joined.expect("registration workers do not panic");
        ok += o;
        errors += e;
        latencies.extend(l);
        if first_error.is_none() {
            first_error = f;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = deployment.sample()?;
    deployment.ensure_running()?;
    latencies.sort_unstable();
    let cpu_ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
    let ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
    Ok(RegistrationRun {
        round,
        system: system.name().to_owned(),
        concurrency,
        ok,
        errors,
        elapsed_secs: elapsed,
        regs_per_sec: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        cpu_ticks,
        cpu_us_per_reg: (ok > 0).then(|| cpu_ticks as f64 * 1e6 / ticks as f64 / ok as f64),
        rss_mib: after.rss_kib as f64 / 1024.0,
        first_error,
    })
}

// ---------------------------------------------------------------------------------------------
// Fan-out section

async fn measure_fanouts(
    client: &HttpClient,
    plan: &Plan,
    systems: &[System],
    ticks: u64,
) -> anyhow::Result<Vec<FanoutRun>> {
    let mut runs = Vec::new();
    for round in 1..=plan.rounds {
        for &watchers in &plan.watchers {
            for system in systems {
                let run = fanout_cell(client, system, watchers, round, plan, ticks)
                    .await
                    .with_context(|| {
                        format!(
                            "round {round} {} fan-out to {watchers} watchers",
                            system.name()
                        )
                    })?;
                eprintln!(
                    "round {round}/{} {:<4} fan-out {watchers:>6} watchers: p50 {} p99 {} max {} ms, \
                     {} ms CPU/1k, {} MiB/1k, {} spurious, {} missed, {} errors (parked in {:.1} s, {} ms CPU/1k)",
                    plan.rounds,
                    run.system,
                    fmt_num(run.p50_ms, 1),
                    fmt_num(run.p99_ms, 1),
                    fmt_num(run.max_ms, 1),
                    fmt_num(Some(run.cpu_ms_per_1k), 1),
                    fmt_num(Some(run.rss_mib_per_1k), 2),
                    run.spurious,
                    run.missed,
                    run.errors,
                    run.park_secs,
                    fmt_num(Some(run.park_cpu_ms_per_1k), 1),
                );
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

/// Waits until the first `written` watchers have written their requests and the server's
/// accept queue is empty, so the next batch of connects cannot overflow it. (mesh-server's
/// HTTP listener has a backlog of 128; an overflow drops the handshake and costs the client a
/// 1 s SYN retransmit, which made parking 10,000 watchers take 15–20 s.)
async fn wait_accepted(
    deployment: &Deployment,
    shared: &watch::Shared,
    written: usize,
    server: SocketAddrV4,
    park_start: Instant,
) -> anyhow::Result<()> {
    loop {
        deployment.ensure_running()?;
        let failed = shared.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} watchers failed while connecting; first: {}",
                shared.first_error().unwrap_or_default()
            );
        }
        if shared.written.load(Ordering::Relaxed) >= written
            && procfs::read_accept_queue(server)? == Some(0)
        {
            return Ok(());
        }
        if park_start.elapsed() > PARK_DEADLINE {
            bail!(
                "only {} of the first {written} watchers connected and written after {PARK_DEADLINE:?}",
                shared.written.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every watcher is parked (see the module documentation).
async fn wait_parked(
    system: &System,
    deployment: &Deployment,
    shared: &watch::Shared,
    watchers: usize,
    server: SocketAddrV4,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        deployment.ensure_running()?;
        let failed = shared.failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!(
                "{failed} of {watchers} watchers failed while parking; first: {}",
                shared.first_error().unwrap_or_default()
            );
        }
        let written = shared.written.load(Ordering::Relaxed);
        let progress = match system {
            System::Mesh { .. } => {
                let side = if written == watchers {
                    procfs::read_server_side(server, watch::is_watcher_source)?
                } else {
                    procfs::ServerSide::default()
                };
                if side.established == watchers && side.unread == 0 {
                    return Ok(());
                }
                format!(
                    "{written} requests written, {} server-side sockets, {} with unread bytes",
                    side.established, side.unread
                )
            }
            System::Etcd { .. } => {
                let created = shared.created.load(Ordering::Relaxed);
                if created == watchers {
                    return Ok(());
                }
                format!("{written} requests written, {created} watches created")
            }
        };
        if started.elapsed() > PARK_DEADLINE {
            bail!("{watchers} watchers not parked after {PARK_DEADLINE:?}: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signed microseconds from `from` to `to`.
fn signed_us(from: Instant, to: Instant) -> i64 {
    if to >= from {
        (to - from).as_micros() as i64
    } else {
        -((from - to).as_micros() as i64)
    }
}

async fn fanout_cell(
    client: &HttpClient,
    system: &System,
    watchers: usize,
    round: usize,
    plan: &Plan,
    ticks: u64,
) -> anyhow::Result<FanoutRun> {
    let settle = Duration::from_millis(plan.settle_ms);
    let mut deployment = system
        .start(Topology::Single, client)
        .await
        .with_context(|| format!("starting {}", system.name()))?;
    let base_url = deployment.base_url().to_owned();
    let server: SocketAddrV4 = base_url
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("{base_url} is not http://IPv4:PORT"))?;
    let pid = deployment.pids()[0];
    for write in seed_writes(system) {
        send_write(client, system, &base_url, &write)
            .await
            .map_err(|e| anyhow!("seeding `web`: {e}"))?;
    }
    // mesh: the index the watchers block on.
    let start_index = match system {
        System::Mesh { .. } => Some(mesh_web_index(client, &base_url).await?),
        System::Etcd { .. } => None,
    };
    let request = match (system, start_index) {
        (System::Mesh { .. }, Some(index)) => watch::mesh_request(server, index, MESH_WAIT),
        _ => watch::etcd_request(server),
    };
    tokio::time::sleep(settle).await;
    let before = deployment.sample()?;

    // Park the watchers.
    let shared = watch::Shared::new(CONNECTS_IN_FLIGHT);
    let request = Arc::new(request);
    let mut set = tokio::task::JoinSet::new();
    let park_start = Instant::now();
    let p0 = procfs::CpuMark::read(pid)?;
    for first in (0..watchers).step_by(CONNECTS_IN_FLIGHT) {
        let end = (first + CONNECTS_IN_FLIGHT).min(watchers);
        for i in first..end {
            let (shared, request) = (shared.clone(), request.clone());
            let source = watch::watcher_source(i);
            match system {
                System::Mesh { .. } => {
                    set.spawn(watch::mesh_watcher(shared, source, server, request))
                }
                System::Etcd { .. } => {
                    set.spawn(watch::etcd_watcher(shared, source, server, request))
                }
            };
        }
        wait_accepted(&deployment, &shared, end, server, park_start).await?;
    }
    wait_parked(system, &deployment, &shared, watchers, server).await?;
    let park_secs = park_start.elapsed().as_secs_f64();
    let p1 = procfs::CpuMark::read(pid)?;
    tokio::time::sleep(settle).await;
    let parked = deployment.sample()?;

    // Writes that must wake nobody.
    let unrelated = unrelated_writes(system, plan.unrelated_batches);
    let u0 = procfs::CpuMark::read(pid)?;
    for write in &unrelated {
        send_write(client, system, &base_url, write)
            .await
            .map_err(|e| anyhow!("unrelated write: {e}"))?;
    }
    let u1 = procfs::CpuMark::read(pid)?;
    tokio::time::sleep(settle).await;

    // The change every watcher waits for, sent and timed on a thread of its own, so its
    // acknowledgement is not stamped late behind the watchers' answers on this runtime.
    let request = web_write(system).raw_request(server);
    let stream = std::net::TcpStream::connect(server).context("connecting for the `web` write")?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(WRITE_TIMEOUT))?;
    let c0 = procfs::CpuMark::read(pid)?;
    let (sent, ack, status, body) =
        tokio::task::spawn_blocking(move || watch::timed_exchange(stream, &request))
            .await
            .context("the `web` write's thread")?
            .map_err(|e| anyhow!("the `web` write: {e}"))?;
    let status = hyper::StatusCode::from_u16(status).context("the `web` write's status")?;
    system
        .check_put(status, &body)
        .map_err(|e| anyhow!("the `web` write: {e}"))?;
    let mut outcomes = Vec::with_capacity(watchers);
    let deadline = tokio::time::Instant::from_std(ack + FANOUT_DEADLINE);
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(joined)) => outcomes.push(joined.expect("watchers do not panic")),
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                break;
            }
        }
    }
    let c1 = procfs::CpuMark::read(pid)?;
    deployment.ensure_running()?;

    let Tally {
        spurious,
        errors,
        first_error,
        latencies,
        last_from_send_ms,
    } = tally(&outcomes, sent, ack, start_index);
    let answered = latencies.len();
    let missed = watchers - answered - spurious - errors;
    drop(outcomes);
    drop(set);
    drop(deployment);

    let ms = |us: Option<i64>| us.map(|us| us as f64 / 1000.0);
    let per_1k = |v: f64| v * 1000.0 / watchers as f64;
    let (park_ns, _) = p0.ns_until(&p1, ticks);
    let (unrelated_ns, _) = u0.ns_until(&u1, ticks);
    let (cpu_ns, cpu_source) = c0.ns_until(&c1, ticks);
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(FanoutRun {
        round,
        system: system.name().to_owned(),
        watchers,
        park_secs,
        park_cpu_ms_per_1k: per_1k(park_ns as f64 / 1e6),
        rss_before_mib: mib(before.rss_kib),
        rss_parked_mib: mib(parked.rss_kib),
        rss_mib_per_1k: per_1k(parked.rss_kib as f64 - before.rss_kib as f64) / 1024.0,
        unrelated_writes: unrelated.len(),
        cpu_us_per_unrelated_write: (!unrelated.is_empty())
            .then(|| unrelated_ns as f64 / 1000.0 / unrelated.len() as f64),
        spurious,
        write_ack_ms: (ack - sent).as_secs_f64() * 1000.0,
        answered,
        missed,
        errors,
        first_error,
        min_ms: ms(latencies.first().copied()),
        p50_ms: ms(percentile_signed(&latencies, 50.0)),
        p99_ms: ms(percentile_signed(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied()),
        last_from_send_ms,
        cpu_ms: cpu_ns as f64 / 1e6,
        cpu_ms_per_1k: per_1k(cpu_ns as f64 / 1e6),
        cpu_source,
    })
}

/// The watchers' outcomes of one fan-out, counted.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Answered before the write was sent.
    spurious: usize,
    /// Failed, or (mesh) answered with an index not past the one they blocked on.
    errors: usize,
    first_error: Option<String>,
    /// Answer time minus acknowledgement time of every other answered watcher, ascending.
    latencies: Vec<i64>,
    /// From sending the write to the last of those answers.
    last_from_send_ms: Option<f64>,
}

fn tally(
    outcomes: &[watch::Outcome],
    sent: Instant,
    ack: Instant,
    start_index: Option<u64>,
) -> Tally {
    let mut t = Tally::default();
    let mut last = None;
    for o in outcomes {
        if let Some(e) = &o.error {
            t.errors += 1;
            t.first_error.get_or_insert_with(|| e.clone());
            continue;
        }
        let Some(at) = o.answered_at else { continue };
        if at < sent {
            t.spurious += 1;
            continue;
        }
        if let (Some(start), Some(index)) = (start_index, o.index) {
            if index <= start {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| {
                    format!("answered with index {index}, not past {start}")
                });
                continue;
            }
        }
        t.latencies.push(signed_us(ack, at));
        last = last.max(Some(at));
    }
    t.latencies.sort_unstable();
    t.last_from_send_ms = last.map(|at| (at - sent).as_secs_f64() * 1000.0);
    t
}

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice of signed values, as
/// [`percentile`] for unsigned ones; `None` when empty.
pub fn percentile_signed(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

// ---------------------------------------------------------------------------------------------
// Summaries and tables

/// The distinct `key`s of `items` in order of first appearance.
fn distinct<T, K: PartialEq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<K> {
    let mut keys: Vec<K> = Vec::new();
    for item in items {
        let k = key(item);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn med<T>(cell: &[&T], f: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    median(&cell.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

pub fn summarize_registrations(runs: &[RegistrationRun]) -> Vec<RegistrationSummary> {
    distinct(runs, |r| (r.concurrency, r.system.clone()))
        .into_iter()
        .map(|(concurrency, system)| {
            let cell: Vec<&RegistrationRun> = runs
                .iter()
                .filter(|r| r.concurrency == concurrency && r.system == system)
                .collect();
            RegistrationSummary {
                concurrency,
                rounds: cell.len(),
                cpu_us_per_reg: med(&cell, |r| r.cpu_us_per_reg),
                rss_mib: med(&cell, |r| Some(r.rss_mib)),
                regs_per_sec: med(&cell, |r| Some(r.regs_per_sec)),
                p50_ms: med(&cell, |r| r.p50_ms),
                p99_ms: med(&cell, |r| r.p99_ms),
                errors: cell.iter().map(|r| r.errors).sum(),
                system,
            }
        })
        .collect()
}

pub fn summarize_fanouts(runs: &[FanoutRun]) -> Vec<FanoutSummary> {
    distinct(runs, |r| (r.watchers, r.system.clone()))
        .into_iter()
        .map(|(watchers, system)| {
            let cell: Vec<&FanoutRun> = runs
                .iter()
                .filter(|r| r.watchers == watchers && r.system == system)
                .collect();
            FanoutSummary {
                watchers,
                rounds: cell.len(),
                cpu_ms_per_1k: med(&cell, |r| Some(r.cpu_ms_per_1k)),
                rss_mib_per_1k: med(&cell, |r| Some(r.rss_mib_per_1k)),
                rss_parked_mib: med(&cell, |r| Some(r.rss_parked_mib)),
                p50_ms: med(&cell, |r| r.p50_ms),
                p99_ms: med(&cell, |r| r.p99_ms),
                max_ms: med(&cell, |r| r.max_ms),
                write_ack_ms: med(&cell, |r| Some(r.write_ack_ms)),
                last_from_send_ms: med(&cell, |r| r.last_from_send_ms),
                cpu_us_per_unrelated_write: med(&cell, |r| r.cpu_us_per_unrelated_write),
                spurious: cell.iter().map(|r| r.spurious).sum(),
                missed: cell.iter().map(|r| r.missed).sum(),
                errors: cell.iter().map(|r| r.errors).sum(),
                system,
            }
        })
        .collect()
}

fn registration_table(rows: &[RegistrationSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("concurrency", Right),
        ("system", Left),
        ("CPU µs/reg", Right),
        ("RSS MiB", Right),
        ("regs/s", Right),
        ("p50 ms", Right),
        ("p99 ms", Right),
        ("errors", Right),
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.concurrency.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_us_per_reg, 1),
                fmt_num(r.rss_mib, 1),
                fmt_num(r.regs_per_sec, 0),
                fmt_num(r.p50_ms, 3),
                fmt_num(r.p99_ms, 3),
                r.errors.to_string(),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

fn fanout_table(rows: &[FanoutSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("watchers", Right),
        ("system", Left),
        ("CPU ms/1k watchers", Right),
        ("RSS MiB/1k watchers", Right),
        ("RSS MiB parked", Right),
        ("p50 ms", Right),
        ("p99 ms", Right),
        ("max ms", Right),
        ("write ack ms", Right),
        ("last answer ms", Right),
        ("spurious", Right),
        ("missed", Right),
        ("errors", Right),
        ("CPU µs/unrelated write", Right),
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.watchers.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_ms_per_1k, 1),
                fmt_num(r.rss_mib_per_1k, 2),
                fmt_num(r.rss_parked_mib, 1),
                fmt_num(r.p50_ms, 1),
                fmt_num(r.p99_ms, 1),
                fmt_num(r.max_ms, 1),
                fmt_num(r.write_ack_ms, 1),
                fmt_num(r.last_from_send_ms, 1),
                r.spurious.to_string(),
                r.missed.to_string(),
                r.errors.to_string(),
                fmt_num(r.cpu_us_per_unrelated_write, 0),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

/// `a / b` when both exist and are positive (a ratio of latencies measured from the write's
/// acknowledgement, which may be negative, means nothing).
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Rows of mesh/etcd ratios per concurrency.
fn registration_ratios(rows: &[RegistrationSummary]) -> Vec<Vec<String>> {
    let find = |c: usize, s: &str| rows.iter().find(|r| r.concurrency == c && r.system == s);
    distinct(rows, |r| r.concurrency)
        .into_iter()
        .filter_map(|c| {
            let (m, e) = (find(c, "mesh")?, find(c, "etcd")?);
            Some(vec![
                c.to_string(),
                fmt_num(ratio(m.cpu_us_per_reg, e.cpu_us_per_reg), 2),
                fmt_num(ratio(m.regs_per_sec, e.regs_per_sec), 2),
            ])
        })
        .collect()
}

/// Rows of mesh/etcd ratios per watcher count.
fn fanout_ratios(rows: &[FanoutSummary]) -> Vec<Vec<String>> {
    let find = |w: usize, s: &str| rows.iter().find(|r| r.watchers == w && r.system == s);
    distinct(rows, |r| r.watchers)
        .into_iter()
        .filter_map(|w| {
            let (m, e) = (find(w, "mesh")?, find(w, "etcd")?);
            Some(vec![
                w.to_string(),
                fmt_num(ratio(m.cpu_ms_per_1k, e.cpu_ms_per_1k), 2),
                fmt_num(ratio(m.rss_mib_per_1k, e.rss_mib_per_1k), 2),
                fmt_num(ratio(m.p50_ms, e.p50_ms), 2),
                fmt_num(ratio(m.p99_ms, e.p99_ms), 2),
                fmt_num(ratio(m.max_ms, e.max_ms), 2),
                fmt_num(ratio(m.last_from_send_ms, e.last_from_send_ms), 2),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CatalogArgs,
    }

    fn plan(line: &str) -> anyhow::Result<Plan> {
        let argv = std::iter::once("catalog").chain(line.split_whitespace());
        Cli::try_parse_from(argv)?.args.plan()
    }

    fn mesh() -> System {
        System::Mesh {
            server_bin: PathBuf::from("mesh-server"),
        }
    }

    fn etcd() -> System {
        System::Etcd {
            etcd_bin: PathBuf::from("etcd"),
        }
    }

    #[test]
    fn defaults_quick_and_explicit_options() {
        let full = plan("").unwrap();
        assert_eq!(full.watchers, [1000, 10000]);
        assert_eq!((full.rounds, full.duration_secs), (3, 5));
        assert_eq!(full.concurrency, [1, 16, 64]);
        let quick = plan("--quick").unwrap();
        assert_eq!(quick.watchers, [200]);
        assert_eq!((quick.rounds, quick.duration_secs), (1, 1));
        let mixed = plan("--quick --watchers 50,500 --rounds 2").unwrap();
        assert_eq!(mixed.watchers, [50, 500]);
        assert_eq!(mixed.rounds, 2);
        assert!(plan("--watchers 0").is_err());
        assert!(plan("--rounds 0").is_err());
        assert!(plan("--watchers x").is_err());
    }

    #[test]
    fn signed_percentiles_keep_negative_latencies() {
        assert_eq!(percentile_signed(&[], 50.0), None);
        let v = [-300, -5, 0, 12, 40, 41, 90, 100, 250, 9000];
        assert_eq!(percentile_signed(&v, 0.0), Some(-300));
        assert_eq!(percentile_signed(&v, 50.0), Some(40));
        assert_eq!(percentile_signed(&v, 99.0), Some(9000));
        assert_eq!(percentile_signed(&v, 100.0), Some(9000));
        let now = Instant::now();
        let later = now + Duration::from_micros(1500);
        assert_eq!(signed_us(now, later), 1500);
        assert_eq!(signed_us(later, now), -1500);
    }

    #[test]
    fn tally_sorts_outcomes_into_spurious_errors_and_latencies() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (sent, ack) = (at(100), at(110));
        let answered = |ms, index| watch::Outcome {
            answered_at: Some(at(ms)),
            index,
            ..Default::default()
        };
        let outcomes = [
            answered(50, Some(9)), // woke before the write: spurious
            answered(105, Some(9)),
            answered(130, Some(9)),
            answered(140, Some(5)), // not past the index it blocked on
            watch::Outcome {
                error: Some("reset".into()),
                ..Default::default()
            },
            watch::Outcome::default(), // never answered: missed, counted by the caller
        ];
        let t = tally(&outcomes, sent, ack, Some(5));
        assert_eq!((t.spurious, t.errors), (1, 2));
        assert_eq!(
            t.first_error.as_deref(),
            Some("answered with index 5, not past 5")
        );
        assert_eq!(t.latencies, [-5_000, 20_000]);
        assert_eq!(t.last_from_send_ms, Some(30.0));
        // etcd answers carry no index.
        let etcd = tally(&outcomes[..4], sent, ack, None);
        assert_eq!(
            (etcd.spurious, etcd.errors, etcd.latencies.len()),
            (1, 0, 3)
        );
    }

    /// The service (mesh) or key (etcd) a write touches, and the node (mesh).
    fn touches(w: &Write) -> (Option<&str>, Option<&str>) {
        match w {
            Write::Register { service, node, .. } => (Some(service), Some(node)),
            Write::Deregister { node, .. } => (None, Some(node)),
            Write::KvPut { key, .. } | Write::EtcdPut { key, .. } | Write::EtcdDelete { key } => {
                (Some(key), None)
            }
        }
    }

    #[test]
    fn unrelated_writes_never_touch_web_but_share_its_prefix() {
        let web_nodes: Vec<String> = (0..=BASE_WEB_INSTANCES)
            .map(|i| format!("web-node-{i}"))
            .collect();
        for system in [mesh(), etcd()] {
            let writes = unrelated_writes(&system, 3);
            assert_eq!(writes.len(), 15);
            for w in &writes {
                let (name, node) = touches(w);
                assert_ne!(name, Some(watch::WATCHED), "{w:?}");
                assert!(
                    node.is_none_or(|n| !web_nodes.iter().any(|w| w == n)),
                    "{w:?}"
                );
            }
            assert!(
                writes
                    .iter()
                    .any(|w| touches(w).0.is_some_and(|n| n.starts_with(watch::WATCHED))),
                "{}: some write shares the prefix `web`",
                system.name()
            );
        }
        // The measured write does change `web`.
        assert_eq!(touches(&web_write(&mesh())).0, Some(watch::WATCHED));
        assert_eq!(touches(&web_write(&etcd())).0, Some(watch::WATCHED));
    }

    #[test]
    fn registrations_are_distinct_and_the_same_document_for_both_systems() {
        let (a, b) = (
            registration_write(&mesh(), 7),
            registration_write(&mesh(), 263),
        );
        assert_ne!(a, b);
        let Write::Register {
            node,
            address,
            service,
            id,
        } = &a
        else {
            panic!("mesh registers: {a:?}");
        };
        assert_eq!((node.as_str(), address.as_str()), ("reg-7", "10.0.0.7"));
        assert_eq!((service.as_str(), id.as_str()), ("svc-7", "svc-7-7"));
        let doc: serde_json::Value =
            serde_json::from_str(&Write::registration_json(node, address, service, id)).unwrap();
        assert_eq!(doc["Check"]["ServiceID"], "svc-7-7");
        assert_eq!(doc["Check"]["Status"], "passing");
        assert_eq!(
            registration_write(&etcd(), 7),
            Write::EtcdPut {
                key: "catalog/reg-7/svc-7-7".into(),
                value: doc.to_string(),
            }
        );
    }

    #[test]
    fn summaries_take_medians_and_sum_counts() {
        let run = |round, system: &str, p99, spurious| FanoutRun {
            round,
            system: system.to_owned(),
            watchers: 1000,
            park_secs: 1.0,
            park_cpu_ms_per_1k: 30.0,
            rss_before_mib: 10.0,
            rss_parked_mib: 20.0,
            rss_mib_per_1k: 10.0,
            unrelated_writes: 50,
            cpu_us_per_unrelated_write: Some(100.0),
            spurious,
            write_ack_ms: 0.5,
            answered: 1000 - spurious,
            missed: 0,
            errors: 0,
            first_error: None,
            min_ms: Some(0.0),
            p50_ms: Some(1.0),
            p99_ms: Some(p99),
            max_ms: Some(p99 + 1.0),
            last_from_send_ms: Some(p99 + 2.0),
            cpu_ms: 5.0,
            cpu_ms_per_1k: 5.0,
            cpu_source: "schedstat",
        };
        let runs = [
            run(1, "mesh", 3.0, 0),
            run(1, "etcd", 8.0, 0),
            run(2, "mesh", 1.0, 2),
            run(2, "etcd", 4.0, 0),
            run(3, "mesh", 2.0, 0),
            run(3, "etcd", 6.0, 0),
        ];
        let s = summarize_fanouts(&runs);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].system.as_str(), s[0].rounds), ("mesh", 3));
        assert_eq!((s[0].p99_ms, s[0].spurious), (Some(2.0), 2));
        assert_eq!(s[1].p99_ms, Some(6.0));
        assert_eq!(ratio(Some(-21.0), Some(14.0)), None);
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        let ratios = fanout_ratios(&s);
        assert_eq!(
            ratios,
            [vec!["1000", "1.00", "1.00", "1.00", "0.33", "0.43", "0.50"]]
        );
    }
}
