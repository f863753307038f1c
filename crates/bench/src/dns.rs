//! `mesh-bench dns`: mesh's DNS interface against Knot DNS serving the same records from a
//! static zone, loaded by dnsperf, interleaved round by round (round 1 mesh, round 1 Knot,
//! round 2 mesh, ...).
//!
//! mesh: one `mesh-server -bootstrap` on 127.0.3.1 whose catalog holds `--services` services
//! (`svc-0`, `svc-1`, ...) of three instances each, every instance on its own node with a
//! passing check, registered through `PUT /v1/catalog/register`; with the client agent (the
//! default) also one `mesh-client agent` on 127.0.3.2 joined to it, which is what users query.
//! Knot: one `knotd -c <conf>` on 127.0.3.3 whose zone `mesh.` has the same names and records
//! (`records::zone_file`). Every DNS interface listens on port 8600.
//!
//! Before measuring, every question is asked once (dnsperf `-n 1`) until all are answered
//! NOERROR: mesh's first question for a service starts a watch, later ones are answered from
//! memory (by design), and Knot loads its zone in the background. Then, per question type (A:
//! `svc-N.service.mesh`, SRV: `_svc-N._tcp.service.mesh`, 1 question per service in a seeded
//! random order, looped) and per `--qps` rate (a fixed rate, or `max`: as fast as answers come
//! back), one dnsperf run of `--secs` seconds: the answering process's CPU time over the run
//! (per-thread schedstat, else utime+stime) divided by the questions answered, dnsperf's QPS,
//! average latency and lost questions, the p99 latency from dnsperf's per-answer `-v` lines
//! (fixed rates only: `-v` slows dnsperf), and the process's VmRSS afterwards.
//!
//! dnsperf runs one thread (`-T 1`) on the same machine, so it competes with the server for the
//! cores; at `max` the QPS may be dnsperf's limit rather than the server's. The CPU per query
//! at a fixed rate that both sustain is the comparison that does not depend on that.

mod dnsperf;
mod records;
mod summary;
mod systems;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use serde::Serialize;

use self::dnsperf::Invocation;
use self::records::{QType, MAX_SERVICES};
use self::summary::{DnsRatio, DnsRun, DnsSummary};
use self::systems::{Knot, Mesh, DNS_PORT, KNOT_IP, MESH_CLIENT_IP, MESH_SERVER_IP};
use crate::load;
use crate::machine::{self, MachineFacts};
use crate::proc;
use crate::procfs::CpuMark;
use crate::report::fmt_num;

const DEFAULT_SERVICES: usize = 1000;
const QUICK_SERVICES: usize = 100;
const DEFAULT_ROUNDS: usize = 2;
const DEFAULT_SECS: u64 = 20;
const QUICK_SECS: u64 = 5;
/// The warm-up pass's rate, and how often it is tried before the system counts as broken.
const WARM_QPS: u64 = 2000;
const WARM_ATTEMPTS: usize = 30;
/// Between two runs, so that one run's stragglers are not in the next one's CPU.
const PAUSE: Duration = Duration::from_secs(1);
/// The peer's name in the tables.
const PEER: &str = "knot";

/// A dnsperf rate: questions per second, or `None` for as fast as answers come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate(pub Option<u64>);

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(q) => write!(f, "{q}"),
            None => f.write_str("max"),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// `20000` or `max` (also `0`, or `unlimited`).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    match text.trim() {
        "max" | "unlimited" | "0" => Ok(Rate(None)),
        n => n
            .parse::<u64>()
            .map(|q| Rate(Some(q)))
            .map_err(|_| format!("{n:?} is neither a number of queries per second nor `max`")),
    }
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct DnsArgs {
    /// Services in the catalog and the zone, 3 instances each [default: 1000; with --quick: 100].
    #[arg(long)]
    pub services: Option<usize>,
    /// Rounds; the tables show the median over rounds [default: 2; with --quick: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seconds of each dnsperf run [default: 20; with --quick: 5].
    #[arg(long)]
    pub secs: Option<u64>,
    /// dnsperf rates, comma-separated: queries per second, or `max` (no limit).
    #[arg(long, value_delimiter = ',', value_parser = parse_rate, default_value = "20000,max")]
    pub qps: Vec<Rate>,
    /// dnsperf's `-c`: client sockets.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seed of the query files' order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave out the mesh-client agent (only the mesh-server answers).
    #[arg(long)]
    pub no_client: bool,
    /// A small smoke run: 100 services, 1 round, 5 s runs (explicit options win).
    #[arg(long)]
    pub quick: bool,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// The mesh-client binary (`cargo xtask bench dns` passes the release build).
    #[arg(long)]
    pub mesh_client: Option<PathBuf>,
    /// The knotd binary [default: /usr/sbin/knotd, installed with apt-get when missing].
    #[arg(long)]
    pub knotd: Option<PathBuf>,
    /// The dnsperf binary [default: /usr/bin/dnsperf, installed with apt-get when missing].
    #[arg(long)]
    pub dnsperf: Option<PathBuf>,
    /// Where to write the raw per-run numbers [default: $CARGO_TARGET_DIR/bench/dns.json,
    /// else target/bench/dns.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Measure only one system.
    #[arg(long, value_enum)]
    pub only: Option<DnsSystem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsSystem {
    Mesh,
    Knot,
}

/// The options with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub services: usize,
    pub rounds: usize,
    pub secs: u64,
    pub rates: Vec<Rate>,
    pub clients: usize,
}

impl DnsArgs {
    /// Defaults (those of `--quick` when given) for every option left out, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let plan = Plan {
            services: self.services.unwrap_or(if self.quick {
                QUICK_SERVICES
            } else {
                DEFAULT_SERVICES
            }),
            rounds: self
                .rounds
                .unwrap_or(if self.quick { 1 } else { DEFAULT_ROUNDS }),
            secs: self
                .secs
                .unwrap_or(if self.quick { QUICK_SECS } else { DEFAULT_SECS }),
            rates: self.qps.clone(),
            clients: self.clients,
        };
        if plan.rounds == 0 || plan.secs == 0 || plan.clients == 0 {
            bail!("--rounds, --secs and --clients must be at least 1");
        }
        if !(1..=MAX_SERVICES).contains(&plan.services) {
            bail!("--services must be between 1 and {MAX_SERVICES}");
        }
        if plan.rates.is_empty() {
            bail!("--qps needs at least one rate");
        }
        Ok(plan)
    }
}

/// One system's processes, what answers, and what else is measured alongside.
#[derive(Debug, Clone, Copy)]
struct Target {
    system: &'static str,
    ip: std::net::Ipv4Addr,
    pid: u32,
    /// The mesh-server behind a client agent.
    server_pid: Option<u32>,
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct DnsReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    knot_version: Option<&'a str>,
    dnsperf_version: &'a str,
    loadavg_before: &'a str,
    loadavg_after: &'a str,
    config: &'a DnsArgs,
    plan: &'a Plan,
    runs: &'a [DnsRun],
    summary: &'a [DnsSummary],
    ratios: &'a [DnsRatio],
}

pub fn run(args: DnsArgs, command: &str) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let want = |s: DnsSystem| args.only.is_none_or(|only| only == s);
    let mut mesh_bins = None;
    if want(DnsSystem::Mesh) {
        let Some(server) = args.mesh_server.clone() else {
            bail!(
                "--mesh-server PATH is required unless --only knot (cargo xtask bench dns \
                 passes it)"
            );
        };
        let client = if args.no_client {
            None
        } else {
            let Some(client) = args.mesh_client.clone() else {
                bail!("--mesh-client PATH is required unless --no-client or --only knot");
            };
            Some(client)
        };
        for bin in std::iter::once(&server).chain(client.as_ref()) {
            if !bin.exists() {
                bail!("{} does not exist", bin.display());
            }
        }
        mesh_bins = Some((server, client));
    }
    let knotd = if want(DnsSystem::Knot) {
        Some(match args.knotd.clone() {
            Some(bin) => bin,
            None => machine::ensure_knot()?,
        })
    } else {
        None
    };
    let dnsperf_bin = match args.dnsperf.clone() {
        Some(bin) => bin,
        None => machine::ensure_dnsperf()?,
    };
    let knot_version = knotd.as_deref().map(systems::knot_version);
    let dnsperf_version = dnsperf::version(&dnsperf_bin);

    let ticks = proc::clock_ticks_per_sec()?;
    let facts = MachineFacts::collect(ticks, None, args.mesh_server.as_deref());
    let loadavg_before = crate::machine::loadavg();
    let mut header = format!(
        "# mesh-bench dns\n\n```\n{command}\n```\n\n{}",
        facts.to_markdown()
    );
    if let Some(Some(client)) = mesh_bins.as_ref().map(|(_, c)| c) {
        header.push_str(&format!("- mesh-client: {}\n", client.display()));
    }
    if let Some(v) = &knot_version {
        header.push_str(&format!("- knot: {v}\n"));
    }
    header.push_str(&format!(
        "- dnsperf: {dnsperf_version}\n- load average before: {loadavg_before}\n"
    ));
    println!("{header}");

    let files = tempfile::Builder::new()
        .prefix("mesh-bench-dns-queries-")
        .tempdir()
        .context("creating a temporary directory")?;
    for qtype in QType::ALL {
        let path = query_path(files.path(), qtype);
        std::fs::write(&path, records::query_file(plan.services, qtype, args.seed))
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let bench = Bench {
        plan: &plan,
        dnsperf: &dnsperf_bin,
        files: files.path(),
        ticks,
    };
    let runs = runtime.block_on(async {
        tokio::select! {
            runs = bench.measure(mesh_bins.as_ref(), knotd.as_deref()) => runs,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; every process is killed"),
        }
    })?;
    let loadavg_after = crate::machine::loadavg();

    let summary = summary::summarize(&runs);
    let ratios = summary::ratios(&summary, PEER);
    print_tables(&plan, &runs, &summary, &ratios, &loadavg_after);

    let report = DnsReport {
        command,
        machine: &facts,
        knot_version: knot_version.as_deref(),
        dnsperf_version: &dnsperf_version,
        loadavg_before: &loadavg_before,
        loadavg_after: &loadavg_after,
        config: &args,
        plan: &plan,
        runs: &runs,
        summary: &summary,
        ratios: &ratios,
    };
    crate::report::write_json(args.json_out.clone(), "dns", &report)?;
    if runs.iter().all(|r| r.error.is_some()) {
        bail!("no run completed");
    }
    Ok(())
}

fn query_path(dir: &Path, qtype: QType) -> PathBuf {
    dir.join(format!("queries-{qtype}.txt"))
}

struct Bench<'a> {
    plan: &'a Plan,
    dnsperf: &'a Path,
    files: &'a Path,
    ticks: u64,
}

impl Bench<'_> {
    /// Every round, each system in turn, every question type and rate.
    async fn measure(
        &self,
        mesh: Option<&(PathBuf, Option<PathBuf>)>,
        knotd: Option<&Path>,
    ) -> anyhow::Result<Vec<DnsRun>> {
        let http = load::http_client();
        let mut runs = Vec::new();
        for round in 1..=self.plan.rounds {
            if let Some((server, client)) = mesh {
                eprintln!("round {round}/{} mesh", self.plan.rounds);
                let systems: &[&'static str] = if client.is_some() {
                    &["mesh", "mesh-client"]
                } else {
                    &["mesh"]
                };
                match Mesh::start(server, client.as_deref(), self.plan.services, &http).await {
                    Ok(mut deployment) => {
                        let server_pid = deployment.server.pid;
                        let mut targets = vec![Target {
                            system: "mesh",
                            ip: MESH_SERVER_IP,
                            pid: server_pid,
                            server_pid: None,
                        }];
                        if let Some(c) = &deployment.client {
                            targets.push(Target {
                                system: "mesh-client",
                                ip: MESH_CLIENT_IP,
                                pid: c.pid,
                                server_pid: Some(server_pid),
                            });
                        }
                        for target in targets {
                            self.system(round, target, &mut runs).await;
                            if let Err(e) = deployment.server.ensure_running() {
                                eprintln!("  {e:#}");
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        for system in systems {
                            self.failed(round, system, &format!("{e:#}"), &mut runs);
                        }
                    }
                }
            }
            if let Some(knotd) = knotd {
                eprintln!("round {round}/{} knot", self.plan.rounds);
                match Knot::start(knotd, self.plan.services) {
                    Ok(knot) => {
                        let target = Target {
                            system: PEER,
                            ip: KNOT_IP,
                            pid: knot.proc.pid,
                            server_pid: None,
                        };
                        self.system(round, target, &mut runs).await;
                    }
                    Err(e) => self.failed(round, PEER, &format!("{e:#}"), &mut runs),
                }
            }
        }
        Ok(runs)
    }

    /// Warms one answering process, then measures every question type and rate.
    async fn system(&self, round: usize, target: Target, runs: &mut Vec<DnsRun>) {
        if let Err(e) = self.warm(&target).await {
            let e = format!("warm-up: {e:#}");
            eprintln!("  {}: {e}", target.system);
            self.failed(round, target.system, &e, runs);
            return;
        }
        for qtype in QType::ALL {
            for &rate in &self.plan.rates {
                tokio::time::sleep(PAUSE).await;
                let run = self.cell(round, &target, qtype, rate).await;
                match (&run.error, &run.outcome) {
                    (Some(e), _) => eprintln!("  {} {qtype} {rate}: {e}", target.system),
                    (None, Some(o)) => eprintln!(
                        "  {} {qtype} rate {rate}: {:.0} q/s, {} µs CPU/query, lost {}",
                        target.system,
                        o.qps,
                        fmt_num(run.cpu_us_per_query(), 2),
                        o.lost
                    ),
                    (None, None) => {}
                }
                runs.push(run);
            }
        }
    }

    fn failed(&self, round: usize, system: &str, error: &str, runs: &mut Vec<DnsRun>) {
        for qtype in QType::ALL {
            for &rate in &self.plan.rates {
                runs.push(DnsRun {
                    round,
                    system: system.to_owned(),
                    qtype,
                    rate,
                    outcome: None,
                    cpu_ns: None,
                    cpu_source: None,
                    rss_mib: None,
                    server_cpu_ns: None,
                    error: Some(error.to_owned()),
                });
            }
        }
    }

    fn invocation<'a>(&self, target: &Target, data: &'a Path) -> Invocation<'a> {
        Invocation {
            server: target.ip,
            port: DNS_PORT,
            data,
            secs: self.plan.secs,
            clients: self.plan.clients,
            qps: None,
            passes: None,
            verbose: false,
        }
    }

    /// Asks every question once, until every one is answered NOERROR.
    async fn warm(&self, target: &Target) -> anyhow::Result<()> {
        for qtype in QType::ALL {
            let data = query_path(self.files, qtype);
            let inv = Invocation {
                qps: Some(WARM_QPS),
                passes: Some(1),
                ..self.invocation(target, &data)
            };
            let mut last = String::new();
            let mut ok = false;
            for attempt in 0..WARM_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                match dnsperf::run(self.dnsperf, &inv).await {
                    Ok(o) if o.noerror == o.sent && o.sent == self.plan.services as u64 => {
                        ok = true;
                        break;
                    }
                    Ok(o) => {
                        last = format!("{} sent, {} lost, answers: {}", o.sent, o.lost, o.rcodes)
                    }
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if !ok {
                bail!("{qtype}: not every question answered NOERROR after {WARM_ATTEMPTS} passes (last: {last})");
            }
        }
        Ok(())
    }

    /// One dnsperf run with the answering process's CPU and RSS.
    async fn cell(&self, round: usize, target: &Target, qtype: QType, rate: Rate) -> DnsRun {
        let mut run = DnsRun {
            round,
            system: target.system.to_owned(),
            qtype,
            rate,
            outcome: None,
            cpu_ns: None,
            cpu_source: None,
            rss_mib: None,
            server_cpu_ns: None,
            error: None,
        };
        let data = query_path(self.files, qtype);
        let inv = Invocation {
            qps: rate.0,
            verbose: rate.0.is_some(),
            ..self.invocation(target, &data)
        };
        let marks = |pid: Option<u32>| pid.map(CpuMark::read).transpose();
        let before = match (CpuMark::read(target.pid), marks(target.server_pid)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                run.error = Some(format!("reading CPU: {e:#}"));
                return run;
            }
        };
        let outcome = dnsperf::run(self.dnsperf, &inv).await;
        let after = (CpuMark::read(target.pid), marks(target.server_pid));
        match outcome {
            Ok(o) => run.outcome = Some(o),
            Err(e) => {
                run.error = Some(format!("{e:#}"));
                return run;
            }
        }
        match after {
            (Ok(a), Ok(b)) => {
                let (ns, source) = before.0.ns_until(&a, self.ticks);
                run.cpu_ns = Some(ns);
                run.cpu_source = Some(source);
                if let (Some(s0), Some(s1)) = (&before.1, &b) {
                    run.server_cpu_ns = Some(s0.ns_until(s1, self.ticks).0);
                }
            }
            (Err(e), _) | (_, Err(e)) => run.error = Some(format!("reading CPU: {e:#}")),
        }
        match proc::sample(target.pid) {
            Ok(s) => run.rss_mib = Some(s.rss_kib as f64 / 1024.0),
            Err(e) => run.error = Some(format!("reading RSS: {e:#}")),
        }
        run
    }
}

fn print_tables(
    plan: &Plan,
    runs: &[DnsRun],
    summary: &[DnsSummary],
    ratios: &[DnsRatio],
    loadavg_after: &str,
) {
    println!(
        "\n## Medians over {} round(s): {} services × 3 instances, {} s per dnsperf run, -c {} -T 1\n",
        plan.rounds, plan.services, plan.secs, plan.clients
    );
    println!("{}", summary::summary_table(summary));
    println!(
        "mesh: the mesh-server's DNS interface (127.0.3.1); mesh-client: a client agent's \
         (127.0.3.2), answering from its own watches on the server; knot: knotd with a static \
         zone of the same records (127.0.3.3), default workers. Question: A \
         `svc-N.service.mesh` (3 records) or SRV `_svc-N._tcp.service.mesh` (3 SRV, 3 A in \
         the additional section), every service once per pass in a seeded random order. Rate: \
         dnsperf -Q, or max (no limit). CPU µs/query: the answering process's CPU time over \
         the run (per-thread schedstat) / questions answered. QPS, avg ms, lost: as dnsperf \
         prints them; p99 ms: from dnsperf -v's per-answer latencies (fixed rates only). RSS: \
         VmRSS after the run. dnsperf runs on the same 2 cores and competes with the server. \
         Load average after: {loadavg_after}.\n"
    );
    for r in summary
        .iter()
        .filter(|r| r.server_cpu_us_per_query.is_some())
    {
        println!(
            "{} {} rate {}: the mesh-server behind it used {} µs CPU/query meanwhile.",
            r.system,
            r.qtype,
            r.rate,
            fmt_num(r.server_cpu_us_per_query, 2)
        );
    }
    if !ratios.is_empty() {
        println!("\n## Ratios of the medians (CPU below 1: less than Knot; QPS above 1: more)\n");
        println!("{}", summary::ratio_table(ratios, PEER));
    }
    for r in runs.iter().filter(|r| r.error.is_some()) {
        println!(
            "round {} {} {} rate {}: {}",
            r.round,
            r.system,
            r.qtype,
            r.rate,
            r.error.as_deref().unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DnsArgs,
    }

    fn plan(line: &str) -> anyhow::Result<Plan> {
        let argv = std::iter::once("dns").chain(line.split_whitespace());
        Cli::try_parse_from(argv)?.args.plan()
    }

    #[test]
    fn rates_parse_numbers_and_max() {
        assert_eq!(parse_rate("20000"), Ok(Rate(Some(20_000))));
        assert_eq!(parse_rate("max"), Ok(Rate(None)));
        assert_eq!(parse_rate("0"), Ok(Rate(None)));
        assert!(parse_rate("fast").is_err());
        assert_eq!(Rate(None).to_string(), "max");
        assert_eq!(Rate(Some(5)).to_string(), "5");
        assert_eq!(serde_json::to_string(&Rate(Some(5))).unwrap(), "\"5\"");
    }

    #[test]
    fn defaults_quick_and_explicit_options() {
        let p = plan("").unwrap();
        assert_eq!((p.services, p.rounds, p.secs, p.clients), (1000, 2, 20, 8));
        assert_eq!(p.rates, [Rate(Some(20_000)), Rate(None)]);
        let q = plan("--quick").unwrap();
        assert_eq!((q.services, q.rounds, q.secs), (100, 1, 5));
        let e = plan("--quick --rounds 3 --qps 5000 --services 10").unwrap();
        assert_eq!(
            (e.services, e.rounds, e.rates.clone()),
            (10, 3, vec![Rate(Some(5000))])
        );
        assert!(plan("--rounds 0").is_err());
        assert!(plan("--services 0").is_err());
        assert!(plan("--qps fast").is_err());
    }
}
