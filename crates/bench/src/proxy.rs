//! `mesh-bench proxy`: mesh's sidecar pair against an HAProxy pair and no proxy at all, on
//! loopback, interleaved round by round (direct, mesh, haproxy, direct, mesh, haproxy, ...).
//!
//! Every system carries HTTP/1.1 between the load generator and the backend, both in this
//! process on one single-threaded runtime (127.0.6.20 is the backend):
//!
//! - **direct**: the generator connects to the backend;
//! - **mesh**: the generator connects to `load`'s sidecar, which connects with mTLS to `echo`'s
//!   sidecar, which connects to the backend (see [`sidecar`]);
//! - **haproxy**: the same through HAProxy A (plain TCP in, TLS 1.3 with a client certificate
//!   out) and HAProxy B (TLS in with `verify required`, plain TCP out), see [`haproxy`].
//!
//! Each round starts every pair fresh and measures, in order:
//!
//! 1. RSS of each proxy idle (after one request), then with `--open` idle connections through
//!    the pair (each used for one request), from `/proc/<pid>/status`;
//! 2. `--rate` requests per second of 1 KiB answers over `--conns` keep-alive connections for
//!    `--secs`: both proxies' CPU per request and the latency;
//! 3. the same connections in a closed loop (full load);
//! 4. `--bulk-streams` connections streaming from the backend for `--bulk-secs`: MB/s and MB per
//!    CPU-second of both proxies;
//! 5. a new connection per request from `--connect-concurrency` workers for `--connect-secs`:
//!    through a pair, each is a TLS handshake; CPU per connection.
//!
//! CPU is each proxy's time on a CPU over the cell (per-thread schedstat, else utime+stime),
//! summed over the pair; the generator's own and (for mesh) the configuring agent's are
//! recorded beside it. Processes are killed by PID when a pair is done, also on error or Ctrl-C.

mod backend;
mod haproxy;
mod pair;
mod pki;
mod sidecar;
mod summary;
mod traffic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;

use self::backend::Backend;
pub use self::pair::System;
use self::pair::{Pair, BACKEND};
use self::summary::{Cell, LoadRun, LoadSummary, MemRun, MemSummary, Usage};
use self::traffic::{BulkStreams, IdleConns, KeepAlive};
use crate::machine::{self, MachineFacts};
use crate::proc;
use crate::procfs::CpuMark;
use crate::report::fmt_num;

const DEFAULT_ROUNDS: usize = 3;
const DEFAULT_SECS: u64 = 8;
const DEFAULT_BULK_SECS: u64 = 5;
const DEFAULT_CONNECT_SECS: u64 = 5;
const QUICK_SECS: u64 = 2;
/// File descriptors a process needs besides its connections (listeners, epoll, logs, ...).
const FD_SLACK: u64 = 100;
/// Between two cells, so that one cell's stragglers are not in the next one's CPU.
const PAUSE: Duration = Duration::from_millis(500);
/// How long a pair may take to close every connection to the backend after the generator
/// closed its own.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Args, Serialize)]
pub struct ProxyArgs {
    /// Rounds; each starts every pair fresh, and the tables show medians over rounds
    /// [default: 3; with --quick: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seconds of each request cell, fixed rate and full load [default: 8; with --quick: 2].
    #[arg(long)]
    pub secs: Option<u64>,
    /// Seconds of the bulk cell [default: 5; with --quick: 2].
    #[arg(long)]
    pub bulk_secs: Option<u64>,
    /// Seconds of the new-connection cell [default: 5; with --quick: 2].
    #[arg(long)]
    pub connect_secs: Option<u64>,
    /// Requests per second of the fixed-rate cell.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Keep-alive connections of the request cells.
    #[arg(long, default_value_t = 32)]
    pub conns: usize,
    /// Connections of the bulk cell.
    #[arg(long, default_value_t = 4)]
    pub bulk_streams: usize,
    /// New connections in flight at once in the new-connection cell.
    #[arg(long, default_value_t = 16)]
    pub connect_concurrency: usize,
    /// Idle connections held open through each pair while its RSS is read, comma-separated,
    /// ascending (capped by RLIMIT_NOFILE: each proxy holds two descriptors per connection)
    /// [default: 1000,10000; with --quick: 1000].
    #[arg(long, value_delimiter = ',')]
    pub open: Option<Vec<usize>>,
    /// Connections being opened at once for the RSS readings.
    #[arg(long, default_value_t = 64)]
    pub open_concurrency: usize,
    /// HAProxy's `nbthread` [default: the number of cores, as the sidecar's runtime has].
    #[arg(long)]
    pub haproxy_threads: Option<usize>,
    /// A small smoke run: 1 round, 2 s cells, 1,000 open connections (explicit options win).
    #[arg(long)]
    pub quick: bool,
    /// Measure `direct` and one pair only (`direct`: no pair).
    #[arg(long, value_enum)]
    pub only: Option<System>,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// The mesh-sidecar binary (`cargo xtask bench proxy` passes the release build).
    #[arg(long)]
    pub mesh_sidecar: Option<PathBuf>,
    /// The haproxy binary [default: /usr/sbin/haproxy, installed with apt-get when missing].
    #[arg(long)]
    pub haproxy: Option<PathBuf>,
    /// Where to write the raw per-round numbers [default: $CARGO_TARGET_DIR/bench/proxy.json,
    /// else target/bench/proxy.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// The options with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub rounds: usize,
    pub secs: u64,
    pub bulk_secs: u64,
    pub connect_secs: u64,
    pub rate: u64,
    pub conns: usize,
    pub bulk_streams: usize,
    pub connect_concurrency: usize,
    pub open: Vec<usize>,
    pub open_concurrency: usize,
}

impl ProxyArgs {
    /// Defaults (those of `--quick` when given) for every option left out, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let quick_or = |quick: u64, default: u64| if self.quick { quick } else { default };
        let plan = Plan {
            rounds: self
                .rounds
                .unwrap_or(if self.quick { 1 } else { DEFAULT_ROUNDS }),
            secs: self.secs.unwrap_or(quick_or(QUICK_SECS, DEFAULT_SECS)),
            bulk_secs: self
                .bulk_secs
                .unwrap_or(quick_or(QUICK_SECS, DEFAULT_BULK_SECS)),
            connect_secs: self
                .connect_secs
                .unwrap_or(quick_or(QUICK_SECS, DEFAULT_CONNECT_SECS)),
            rate: self.rate,
            conns: self.conns,
            bulk_streams: self.bulk_streams,
            connect_concurrency: self.connect_concurrency,
            open: self.open.clone().unwrap_or_else(|| {
                if self.quick {
                    vec![1000]
                } else {
                    vec![1000, 10_000]
                }
            }),
            open_concurrency: self.open_concurrency,
        };
        let counts = [
            plan.rounds,
            plan.conns,
            plan.bulk_streams,
            plan.connect_concurrency,
            plan.open_concurrency,
        ];
        if counts.contains(&0)
            || plan.secs == 0
            || plan.bulk_secs == 0
            || plan.connect_secs == 0
            || plan.rate == 0
        {
            bail!("every count, rate and duration must be at least 1");
        }
        if plan.open.contains(&0) || !plan.open.windows(2).all(|w| w[0] < w[1]) {
            bail!("--open needs ascending connection counts of at least 1");
        }
        Ok(plan)
    }
}

/// The most idle connections each proxy (and this process, which holds the generator's end
/// and the backend's) can hold: two descriptors per connection.
pub fn max_open(nofile: u64) -> usize {
    (nofile.saturating_sub(FD_SLACK) / 2) as usize
}

/// `--open` capped at what the descriptor limit allows, without duplicates.
pub fn capped_open(open: &[usize], max: usize) -> Vec<usize> {
    let mut out: Vec<usize> = open.iter().map(|&n| n.min(max)).collect();
    out.dedup();
    out
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct ProxyReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    mesh_sidecar: Option<String>,
    haproxy_version: Option<&'a str>,
    haproxy_threads: usize,
    nofile: u64,
    loadavg_before: &'a str,
    loadavg_after: &'a str,
    config: &'a ProxyArgs,
    plan: &'a Plan,
    load_runs: &'a [LoadRun],
    memory_runs: &'a [MemRun],
    load_summary: &'a [LoadSummary],
    memory_summary: &'a [MemSummary],
    failures: &'a [String],
}

pub fn run(args: ProxyArgs, command: &str) -> anyhow::Result<()> {
    let mut plan = args.plan()?;
    // Before any proxy starts: they inherit the limit (HAProxy sets its own `ulimit-n`, up to
    // the hard limit).
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let requested = plan.open.clone();
    plan.open = capped_open(&requested, max_open(nofile));
    let want = |s: System| args.only.is_none_or(|only| only == s);
    let mut mesh_bins = None;
    if want(System::Mesh) && args.only != Some(System::Direct) {
        let (Some(server), Some(sidecar)) = (args.mesh_server.clone(), args.mesh_sidecar.clone())
        else {
            bail!(
                "--mesh-server PATH and --mesh-sidecar PATH are required unless --only haproxy \
                 or --only direct (cargo xtask bench proxy passes them)"
            );
        };
        for bin in [&server, &sidecar] {
            if !bin.exists() {
                bail!("{} does not exist", bin.display());
            }
        }
        mesh_bins = Some((server, sidecar));
    }
    let haproxy_bin = if want(System::Haproxy) && args.only != Some(System::Direct) {
        Some(match args.haproxy.clone() {
            Some(bin) => bin,
            None => machine::ensure_haproxy()?,
        })
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.haproxy_threads.unwrap_or(cores);
    let haproxy_version = haproxy_bin.as_deref().map(haproxy::version);

    let ticks = proc::clock_ticks_per_sec()?;
    let facts = MachineFacts::collect(ticks, None, args.mesh_server.as_deref());
    let loadavg_before = crate::machine::loadavg();
    let mut header = format!(
        "# mesh-bench proxy\n\n```\n{command}\n```\n\n{}",
        facts.to_markdown()
    );
    if let Some((_, sidecar)) = &mesh_bins {
        header.push_str(&format!("- mesh-sidecar: {}\n", sidecar.display()));
    }
    if let Some(v) = &haproxy_version {
        header.push_str(&format!("- haproxy: {v}, nbthread {threads}\n"));
    }
    header.push_str(&format!(
        "- RLIMIT_NOFILE: {nofile}\n- load average before: {loadavg_before}\n"
    ));
    println!("{header}");
    if plan.open != requested {
        println!(
            "--open {requested:?} capped to {:?}: RLIMIT_NOFILE's hard limit is {nofile} and \
             each proxy holds two descriptors per connection.\n",
            plan.open
        );
    }

    let pki = pki::generate().context("generating the HAProxy pair's certificates")?;
    let tuning = haproxy::Tuning {
        threads,
        maxconn: max_open(nofile).max(plan.conns),
        nofile,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let bench = Bench {
        plan: &plan,
        ticks,
        mesh: mesh_bins.as_ref().map(|(s, c)| (s.as_path(), c.as_path())),
        haproxy: haproxy_bin.as_deref().map(|bin| (bin, &tuning, &pki)),
    };
    let measured = runtime.block_on(async {
        tokio::select! {
            measured = bench.measure() => measured,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; every process is killed"),
        }
    })?;
    let loadavg_after = crate::machine::loadavg();

    let load_summary = summary::summarize(&measured.load);
    let memory_summary = summary::summarize_memory(&measured.memory);
    print_tables(
        &plan,
        threads,
        &measured,
        &load_summary,
        &memory_summary,
        &loadavg_after,
    );
    let report = ProxyReport {
        command,
        machine: &facts,
        mesh_sidecar: mesh_bins.as_ref().map(|(_, c)| c.display().to_string()),
        haproxy_version: haproxy_version.as_deref(),
        haproxy_threads: threads,
        nofile,
        loadavg_before: &loadavg_before,
        loadavg_after: &loadavg_after,
        config: &args,
        plan: &plan,
        load_runs: &measured.load,
        memory_runs: &measured.memory,
        load_summary: &load_summary,
        memory_summary: &memory_summary,
        failures: &measured.failures,
    };
    crate::report::write_json(args.json_out.clone(), "proxy", &report)?;
    if measured.load.iter().all(|r| r.error.is_some()) {
        bail!("no cell completed");
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Measured {
    load: Vec<LoadRun>,
    memory: Vec<MemRun>,
    /// Pairs that did not start, and other failures outside a cell.
    failures: Vec<String>,
}

struct Bench<'a> {
    plan: &'a Plan,
    ticks: u64,
    mesh: Option<(&'a Path, &'a Path)>,
    haproxy: Option<(&'a Path, &'a haproxy::Tuning, &'a pki::Pki)>,
}

/// CPU readings of a pair's processes and this one at one moment.
struct Marks {
    proxies: Vec<CpuMark>,
    agent: Option<CpuMark>,
    generator: CpuMark,
}

impl Bench<'_> {
    async fn measure(&self) -> anyhow::Result<Measured> {
        let mut out = Measured::default();
        let backend = Backend::start(BACKEND).await?;
        let http = crate::load::http_client();
        let mut control = match self.mesh {
            Some((server_bin, _)) => match sidecar::Control::start(server_bin, &http).await {
                Ok(control) => Some(control),
                Err(e) => {
                    let e = format!("mesh: {e:#}");
                    eprintln!("  {e}");
                    out.failures.push(e);
                    None
                }
            },
            None => None,
        };
        let mut systems = vec![System::Direct];
        if control.is_some() {
            systems.push(System::Mesh);
        }
        if self.haproxy.is_some() {
            systems.push(System::Haproxy);
        }
        for round in 1..=self.plan.rounds {
            for &system in &systems {
                eprintln!("round {round}/{} {system}", self.plan.rounds);
                let started = match system {
                    System::Direct => Ok(Pair::direct()),
                    System::Mesh => {
                        let (_, sidecar_bin) = self.mesh.expect("mesh is measured");
                        let control = control.as_mut().expect("mesh is measured");
                        // The sidecars cannot start without their agent.
                        match control.server.ensure_running() {
                            Ok(()) => sidecar::start(sidecar_bin, control),
                            Err(e) => Err(e),
                        }
                    }
                    System::Haproxy => {
                        let (bin, tuning, pki) = self.haproxy.expect("haproxy is measured");
                        haproxy::start(bin, tuning, pki)
                    }
                };
                let mut pair = match started {
                    Ok(p) => p,
                    Err(e) => {
                        self.failed(round, system, &format!("{e:#}"), &mut out);
                        continue;
                    }
                };
                match pair.wait_ready().await {
                    Ok(took) => eprintln!("  ready after {:.2} s", took.as_secs_f64()),
                    Err(e) => {
                        self.failed(round, system, &format!("{e:#}"), &mut out);
                        continue;
                    }
                }
                self.slot(round, &mut pair, &backend, &mut out).await;
            }
        }
        Ok(out)
    }

    /// Records every cell of a system's round as failed with `error`.
    fn failed(&self, round: usize, system: System, error: &str, out: &mut Measured) {
        eprintln!("  {error}");
        for cell in Cell::ALL {
            let mut run = LoadRun::new(round, system, cell);
            run.error = Some(error.to_owned());
            out.load.push(run);
        }
        out.failures
            .push(format!("round {round} {system}: {error}"));
    }

    /// One system's round: memory with idle connections, then the CPU cells.
    async fn slot(&self, round: usize, pair: &mut Pair, backend: &Backend, out: &mut Measured) {
        let system = pair.system;
        if !pair.proxies.is_empty() {
            if let Err(e) = self.memory(round, pair, backend, out).await {
                let e = format!("round {round} {system} memory: {e:#}");
                eprintln!("  {e}");
                out.failures.push(e);
            }
        }
        for cell in Cell::ALL {
            tokio::time::sleep(PAUSE).await;
            let run = self.cell(round, pair, cell).await;
            match (&run.error, &run.outcome) {
                (Some(e), _) => eprintln!("  {cell}: {e}"),
                (None, Some(o)) if cell == Cell::Bulk => eprintln!(
                    "  {cell}: {} MB/s, {} MB per CPU-second of the pair, {} errors, generator \
                     {} cores",
                    fmt_num(run.mb_per_sec(), 0),
                    fmt_num(run.mb_per_cpu_sec(), 0),
                    o.errors,
                    fmt_num(run.generator_cores(), 2),
                ),
                (None, Some(o)) => eprintln!(
                    "  {cell}: {} ok, {} errors, {}/s, {} µs CPU/op over the pair, generator {} \
                     cores",
                    o.ok,
                    o.errors,
                    fmt_num(run.ops_per_sec(), 0),
                    fmt_num(run.cpu_us_per_op(), 1),
                    fmt_num(run.generator_cores(), 2),
                ),
                (None, None) => {}
            }
            out.load.push(run);
            if let Err(e) = pair.ensure_running() {
                let e = format!("round {round} {system}: {e:#}");
                eprintln!("  {e}");
                out.failures.push(e);
                return;
            }
        }
    }

    /// RSS idle, then with each `--open` count of idle connections; closes them all and waits
    /// until the pair has closed its connections to the backend.
    async fn memory(
        &self,
        round: usize,
        pair: &mut Pair,
        backend: &Backend,
        out: &mut Measured,
    ) -> anyhow::Result<()> {
        let mut idle = IdleConns::default();
        let counts = std::iter::once(0).chain(self.plan.open.iter().copied());
        for open in counts {
            let started = Instant::now();
            let (failed, first_error) = idle
                .grow_to(pair.entry, open, self.plan.open_concurrency)
                .await;
            let open_secs = started.elapsed().as_secs_f64();
            pair.ensure_running()?;
            let rss_kib = pair
                .proxies
                .iter()
                .map(|p| proc::sample(p.pid).map(|s| s.rss_kib))
                .collect::<anyhow::Result<Vec<_>>>()?;
            eprintln!(
                "  {} connections open ({failed} failed) in {open_secs:.1} s: RSS {} KiB{}",
                idle.opened(),
                rss_kib
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" / "),
                first_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" (first error: {e})"))
            );
            out.memory.push(MemRun {
                round,
                system: pair.system,
                open,
                opened: idle.opened(),
                failed,
                rss_kib,
                first_error,
                open_secs,
            });
        }
        idle.close();
        let started = Instant::now();
        while backend.open_connections() > 0 {
            if started.elapsed() > DRAIN_TIMEOUT {
                bail!(
                    "{} connections to the backend still open {DRAIN_TIMEOUT:?} after the \
                     generator closed its own",
                    backend.open_connections()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn marks(&self, pair: &Pair) -> anyhow::Result<Marks> {
        Ok(Marks {
            proxies: pair
                .proxies
                .iter()
                .map(|p| CpuMark::read(p.pid))
                .collect::<anyhow::Result<_>>()?,
            agent: pair.agent_pid.map(CpuMark::read).transpose()?,
            generator: CpuMark::read(std::process::id())?,
        })
    }

    fn usage(&self, before: &Marks, after: &Marks) -> Usage {
        let mut source = "schedstat";
        let mut ns = |a: &CpuMark, b: &CpuMark| {
            let (ns, s) = a.ns_until(b, self.ticks);
            if s != "schedstat" {
                source = s;
            }
            ns
        };
        let proxy_cpu_ns = before
            .proxies
            .iter()
            .zip(&after.proxies)
            .map(|(a, b)| ns(a, b))
            .collect();
        let agent_cpu_ns = match (&before.agent, &after.agent) {
            (Some(a), Some(b)) => Some(ns(a, b)),
            _ => None,
        };
        let generator_cpu_ns = Some(ns(&before.generator, &after.generator));
        Usage {
            proxy_cpu_ns,
            agent_cpu_ns,
            generator_cpu_ns,
            cpu_source: Some(source),
        }
    }

    /// Opens the cell's connections, then measures the traffic alone.
    async fn cell(&self, round: usize, pair: &Pair, cell: Cell) -> LoadRun {
        let mut run = LoadRun::new(round, pair.system, cell);
        let plan = self.plan;
        let result = match cell {
            Cell::Rate | Cell::Full => match KeepAlive::open(pair.entry, plan.conns).await {
                Ok(mut conns) => {
                    self.measured(pair, async {
                        if cell == Cell::Rate {
                            conns
                                .fixed_rate(plan.rate, Duration::from_secs(plan.secs))
                                .await
                        } else {
                            conns.closed_loop(Duration::from_secs(plan.secs)).await
                        }
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            Cell::Bulk => match BulkStreams::open(pair.entry, plan.bulk_streams).await {
                Ok(mut streams) => {
                    self.measured(pair, streams.read_for(Duration::from_secs(plan.bulk_secs)))
                        .await
                }
                Err(e) => Err(e),
            },
            Cell::Connect => {
                self.measured(
                    pair,
                    traffic::new_connections(
                        pair.entry,
                        plan.connect_concurrency,
                        Duration::from_secs(plan.connect_secs),
                    ),
                )
                .await
            }
        };
        match result {
            Ok((outcome, usage)) => {
                if outcome.ok == 0 && outcome.bytes == 0 {
                    run.error = Some(format!(
                        "nothing succeeded: {}",
                        outcome.first_error.as_deref().unwrap_or("nothing sent")
                    ));
                }
                run.usage = usage;
                run.set_outcome(outcome);
            }
            Err(e) => run.error = Some(format!("{e:#}")),
        }
        run
    }

    /// Runs `traffic` between two CPU readings.
    async fn measured(
        &self,
        pair: &Pair,
        traffic: impl std::future::Future<Output = traffic::Outcome>,
    ) -> anyhow::Result<(traffic::Outcome, Usage)> {
        let before = self.marks(pair).context("reading CPU")?;
        let outcome = traffic.await;
        let after = self.marks(pair).context("reading CPU")?;
        Ok((outcome, self.usage(&before, &after)))
    }
}

fn print_tables(
    plan: &Plan,
    threads: usize,
    measured: &Measured,
    load: &[LoadSummary],
    memory: &[MemSummary],
    loadavg_after: &str,
) {
    println!(
        "\n## Medians over {} round(s): CPU per operation over both proxies, and RSS of the \
         larger proxy\n",
        plan.rounds
    );
    println!("{}", summary::headline_table(load, memory, plan.rate));
    println!(
        "CPU: both proxies' time on a CPU over the cell (per-thread schedstat) / requests \
         (connections for the new-connection cell); bulk: MB (10^6 bytes) streamed per \
         CPU-second of both. RSS: VmRSS of each proxy, the larger of the two, idle (after one \
         request) and with that many idle connections through the pair (each used for one \
         request).\n"
    );
    println!("## CPU per operation by side\n");
    println!(
        "{}",
        summary::cpu_table(load, System::Mesh, System::Haproxy)
    );
    println!(
        "client side: `load`'s sidecar / HAProxy A (plain TCP in, TLS out); server side: \
         `echo`'s sidecar / HAProxy B (TLS in, plain TCP out). Bulk: µs per MB. agent: the \
         mesh-server -dev the sidecars are configured by, over the same cell (not in the \
         total). proxy cores busy: both proxies' CPU time / the cell's duration.\n"
    );
    println!("## RSS per proxy\n");
    println!("{}", summary::memory_table(memory));
    println!("## Throughput and latency\n");
    println!("{}", summary::throughput_table(load, plan.rate));
    let generator: Vec<String> = load
        .iter()
        .filter(|s| s.cell == Cell::Full)
        .map(|s| format!("{} {}", s.system, fmt_num(s.generator_cores, 2)))
        .collect();
    println!(
        "{} req/s over {} keep-alive connections for {} s (latency from send to the last body \
         byte; late: sent more than 2 ms after its time); full load: the same connections, \
         each request sent when the last is answered; bulk: {} connections streaming from the \
         backend for {} s; new connections: {} workers, each connecting, sending one request \
         and closing, for {} s. HAProxy nbthread {threads}. The generator and the backend share \
         one thread of this process on the same cores; cores it kept busy at full load: {}. \
         Load average after: {loadavg_after}.\n",
        plan.rate,
        plan.conns,
        plan.secs,
        plan.bulk_streams,
        plan.bulk_secs,
        plan.connect_concurrency,
        plan.connect_secs,
        generator.join(", "),
    );
    for f in &measured.failures {
        println!("{f}");
    }
    for r in &measured.load {
        if let Some(e) = r.outcome.as_ref().and_then(|o| o.first_error.as_ref()) {
            println!(
                "round {} {} {}: first error: {e}",
                r.round, r.system, r.cell
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    fn plan(line: &str) -> anyhow::Result<Plan> {
        let argv = std::iter::once("proxy").chain(line.split_whitespace());
        Cli::try_parse_from(argv)?.args.plan()
    }

    #[test]
    fn defaults_quick_and_explicit_options() {
        let p = plan("").unwrap();
        assert_eq!(
            (p.rounds, p.secs, p.bulk_secs, p.connect_secs),
            (3, 8, 5, 5)
        );
        assert_eq!(
            (p.rate, p.conns, p.open.clone()),
            (5000, 32, vec![1000, 10_000])
        );
        let q = plan("--quick").unwrap();
        assert_eq!((q.rounds, q.secs, q.open.clone()), (1, 2, vec![1000]));
        let e = plan("--quick --rounds 2 --open 10,20 --rate 100").unwrap();
        assert_eq!((e.rounds, e.open.clone(), e.rate), (2, vec![10, 20], 100));
        assert!(plan("--rounds 0").is_err());
        assert!(plan("--open 20,10").is_err());
        assert!(plan("--open 0").is_err());
        assert!(plan("--rate 0").is_err());
        assert!(plan("--only nginx").is_err());
        assert!(plan("--only haproxy").is_ok());
    }

    #[test]
    fn open_counts_fit_the_descriptor_limit() {
        assert_eq!(max_open(20_000), 9950);
        assert_eq!(capped_open(&[1000, 10_000], 9950), [1000, 9950]);
        assert_eq!(capped_open(&[1000, 10_000], 500), [500]);
        assert_eq!(capped_open(&[1000, 10_000], 1_000_000), [1000, 10_000]);
        assert_eq!(max_open(50), 0);
    }
}
