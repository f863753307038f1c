//! `mesh-bench ca`: the Connect CA as a client agent's users see it (issue 7's benchmark):
//! leaf signings per second with the server's CPU per signing, and authorize decisions per
//! second from the agent's cache. No peer comparison: this area reports mesh's own numbers.
//!
//! Each round starts, in a fresh temporary directory, one `mesh-server -bootstrap` on
//! 127.0.4.1 with `connect.ca_config.csr_max_per_second = 0` (no limit) and one
//! `mesh-client agent` on 127.0.4.2 joined to it, and measures, per `--concurrency`:
//!
//! - **leaf signing**: closed-loop workers send `--signings` first-time
//!   `GET /v1/agent/connect/ca/leaf/<service>` for distinct services: the agent generates a
//!   P-256 key, has the server sign a CSR over server RPC (a raft write reserves the serial)
//!   and caches the leaf, so every request is one signing;
//! - **authorize**: closed-loop `POST /v1/agent/connect/authorize` for `--secs`, alternating a
//!   client denied by an intention (`web → db`, written first through
//!   `PUT /v1/connect/intentions/exact`) and one allowed (`api → db`); decided by the agent
//!   from its cached intentions, so the server should do nothing.
//!
//! For each: the server's and the client agent's CPU time over the cell (per-thread schedstat,
//! else utime+stime) divided by the successful requests, both processes' VmRSS after it, and
//! requests per second with p50/p99 latency. The agent keeps every leaf it fetched, so its RSS
//! grows over the signing cells; the growth per leaf is reported from an RSS baseline taken
//! after the warm-up. Then, on a second fresh pair with the server's
//! default limit (50 CSRs per second per server), a burst of `--burst` first-time leaf
//! requests shows the limit at work: how many are answered 429 at once, and how long until the
//! agent's own retries got every service its leaf.
//!
//! The load generator is this process's single-threaded runtime on the same 2 cores.

mod requests;
mod summary;
mod systems;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::Request;
use serde::Serialize;

use self::requests::{AuthorizeCase, Drain, Work};
use self::summary::{Baseline, CaRun, CaSummary, LimitRun, LimitSummary, Op, RssPerLeaf, Usage};
use self::systems::{CsrLimit, Mesh, CLIENT_IP, SERVER_IP};
use crate::load::{self, HttpClient};
use crate::machine::MachineFacts;
use crate::proc;
use crate::procfs::CpuMark;
use crate::report::fmt_num;
use crate::target::fetch;

const DEFAULT_ROUNDS: usize = 2;
const DEFAULT_SECS: u64 = 10;
const QUICK_SECS: u64 = 3;
const DEFAULT_SIGNINGS: u64 = 20_000;
const QUICK_SIGNINGS: u64 = 3_000;
/// The longest a signing cell may run before it stops short of `--signings`.
const SIGNING_CELL_CAP: Duration = Duration::from_secs(300);
const DEFAULT_BURST: u64 = 200;
const QUICK_BURST: u64 = 100;
/// Between two cells, so that one cell's stragglers are not in the next one's CPU.
const PAUSE: Duration = Duration::from_secs(1);
/// How often the refused services of a burst are asked for their leaves again.
const DRAIN_POLL: Duration = Duration::from_millis(250);
/// How long a burst may take until every service has its leaf.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to see the intentions just written.
const INTENTIONS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Args, Serialize)]
pub struct CaArgs {
    /// Concurrent requests in flight, comma-separated; each is one signing cell and one
    /// authorize cell.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Rounds (each with fresh processes); the tables show the median over rounds
    /// [default: 2; with --quick: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Signings (first-time leaf requests for distinct services) per signing cell
    /// [default: 20000; with --quick: 3000].
    #[arg(long)]
    pub signings: Option<u64>,
    /// Seconds of each authorize cell [default: 10; with --quick: 3].
    #[arg(long)]
    pub secs: Option<u64>,
    /// First-time leaf requests in the burst against the default CSR limit; 0 leaves the burst
    /// out [default: 200; with --quick: 100].
    #[arg(long)]
    pub burst: Option<u64>,
    /// Requests in flight during the burst.
    #[arg(long, default_value_t = 64)]
    pub burst_concurrency: usize,
    /// A small smoke run: 1 round, 3,000 signings and 3 s per cell, a burst of 100 (explicit
    /// options win).
    #[arg(long)]
    pub quick: bool,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// The mesh-client binary (`cargo xtask bench ca` passes the release build).
    #[arg(long)]
    pub mesh_client: Option<PathBuf>,
    /// Where to write the raw per-round numbers [default: $CARGO_TARGET_DIR/bench/ca.json,
    /// else target/bench/ca.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// The options with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub concurrency: Vec<usize>,
    pub rounds: usize,
    pub signings: u64,
    pub secs: u64,
    pub burst: u64,
    pub burst_concurrency: usize,
}

impl CaArgs {
    /// Defaults (those of `--quick` when given) for every option left out, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let plan = Plan {
            concurrency: self.concurrency.clone(),
            rounds: self
                .rounds
                .unwrap_or(if self.quick { 1 } else { DEFAULT_ROUNDS }),
            signings: self.signings.unwrap_or(if self.quick {
                QUICK_SIGNINGS
            } else {
                DEFAULT_SIGNINGS
            }),
            secs: self
                .secs
                .unwrap_or(if self.quick { QUICK_SECS } else { DEFAULT_SECS }),
            burst: self.burst.unwrap_or(if self.quick {
                QUICK_BURST
            } else {
                DEFAULT_BURST
            }),
            burst_concurrency: self.burst_concurrency,
        };
        if plan.rounds == 0 || plan.signings == 0 || plan.secs == 0 || plan.burst_concurrency == 0 {
            bail!("--rounds, --signings, --secs and --burst-concurrency must be at least 1");
        }
        if plan.concurrency.is_empty() || plan.concurrency.contains(&0) {
            bail!("--concurrency needs one or more counts of at least 1");
        }
        Ok(plan)
    }
}

/// What decided the authorize requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentionsSetup {
    /// `web → db` deny and `api → db` allow were written.
    Written,
    /// The intentions endpoint is missing (HTTP status): the default policy decided.
    Absent { status: u16 },
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct CaReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    mesh_client: String,
    loadavg_before: &'a str,
    loadavg_after: &'a str,
    config: &'a CaArgs,
    plan: &'a Plan,
    intentions: &'a [IntentionsSetup],
    baselines: &'a [Baseline],
    rss_per_leaf: &'a RssPerLeaf,
    runs: &'a [CaRun],
    limit_runs: &'a [LimitRun],
    summary: &'a [CaSummary],
    limit_summary: Option<&'a LimitSummary>,
}

pub fn run(args: CaArgs, command: &str) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let Some(server_bin) = args.mesh_server.clone() else {
        bail!("--mesh-server PATH is required (cargo xtask bench ca passes it)");
    };
    let Some(client_bin) = args.mesh_client.clone() else {
        bail!("--mesh-client PATH is required (cargo xtask bench ca passes it)");
    };
    for bin in [&server_bin, &client_bin] {
        if !bin.exists() {
            bail!("{} does not exist", bin.display());
        }
    }
    let ticks = proc::clock_ticks_per_sec()?;
    let facts = MachineFacts::collect(ticks, None, Some(&server_bin));
    let loadavg_before = crate::machine::loadavg();
    println!(
        "# mesh-bench ca\n\n```\n{command}\n```\n\n{}- mesh-client: {}\n\
         - load average before: {loadavg_before}\n",
        facts.to_markdown(),
        client_bin.display()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let bench = Bench {
        plan: &plan,
        server_bin: &server_bin,
        client_bin: &client_bin,
        ticks,
        http: load::http_client(),
    };
    let measured = runtime.block_on(async {
        tokio::select! {
            measured = bench.measure() => Ok(measured),
            _ = tokio::signal::ctrl_c() => bail!("interrupted; every process is killed"),
        }
    })?;
    let loadavg_after = crate::machine::loadavg();

    let summary = summary::summarize(&measured.runs);
    let limit_summary = summary::summarize_limit(&measured.limit_runs);
    let rss_per_leaf = summary::rss_per_leaf(&measured.baselines, &measured.runs);
    print_tables(
        &plan,
        &measured,
        &summary,
        &rss_per_leaf,
        limit_summary.as_ref(),
        &loadavg_after,
    );

    let report = CaReport {
        command,
        machine: &facts,
        mesh_client: client_bin.display().to_string(),
        loadavg_before: &loadavg_before,
        loadavg_after: &loadavg_after,
        config: &args,
        plan: &plan,
        intentions: &measured.intentions,
        baselines: &measured.baselines,
        rss_per_leaf: &rss_per_leaf,
        runs: &measured.runs,
        limit_runs: &measured.limit_runs,
        summary: &summary,
        limit_summary: limit_summary.as_ref(),
    };
    crate::report::write_json(args.json_out.clone(), "ca", &report)?;
    if measured.runs.iter().all(|r| r.error.is_some()) {
        bail!("no cell completed");
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Measured {
    runs: Vec<CaRun>,
    limit_runs: Vec<LimitRun>,
    /// Per round.
    intentions: Vec<IntentionsSetup>,
    /// Per round: both processes' RSS after the warm-up, before the first cell.
    baselines: Vec<Baseline>,
}

struct Bench<'a> {
    plan: &'a Plan,
    server_bin: &'a std::path::Path,
    client_bin: &'a std::path::Path,
    ticks: u64,
    http: HttpClient,
}

/// CPU readings of both processes at one moment.
struct Marks {
    server: CpuMark,
    client: CpuMark,
}

impl Bench<'_> {
    /// Every round: the unlimited pair's cells, then the limited pair's burst.
    async fn measure(&self) -> Measured {
        let mut out = Measured::default();
        for round in 1..=self.plan.rounds {
            eprintln!("round {round}/{}: no CSR limit", self.plan.rounds);
            match Mesh::start(
                self.server_bin,
                self.client_bin,
                CsrLimit(Some(0.0)),
                &self.http,
            )
            .await
            {
                Ok(mut mesh) => {
                    if mesh.csr_max_per_second != Some(0.0) {
                        eprintln!(
                            "  warning: the server reports CSRMaxPerSecond {:?}, not 0",
                            mesh.csr_max_per_second
                        );
                    }
                    self.cells(round, &mut mesh, &mut out).await
                }
                Err(e) => self.failed(round, &format!("{e:#}"), &mut out),
            }
            if self.plan.burst > 0 {
                eprintln!("round {round}/{}: the default CSR limit", self.plan.rounds);
                let run = self.limit_run(round).await;
                if let Some(e) = &run.error {
                    eprintln!("  {e}");
                }
                out.limit_runs.push(run);
            }
        }
        out
    }

    /// Records every cell of a round as failed with `error`.
    fn failed(&self, round: usize, error: &str, out: &mut Measured) {
        eprintln!("  {error}");
        for op in [Op::Sign, Op::Authorize] {
            for &c in &self.plan.concurrency {
                let mut run = CaRun::new(round, op, c);
                run.error = Some(error.to_owned());
                out.runs.push(run);
            }
        }
    }

    fn marks(&self, mesh: &Mesh) -> anyhow::Result<Marks> {
        Ok(Marks {
            server: CpuMark::read(mesh.server.pid)?,
            client: CpuMark::read(mesh.client.pid)?,
        })
    }

    /// Both processes' CPU from `before` to now and their VmRSS now.
    fn usage(&self, mesh: &Mesh, before: &Marks) -> anyhow::Result<Usage> {
        let after = self.marks(mesh)?;
        let (server_ns, s_source) = before.server.ns_until(&after.server, self.ticks);
        let (client_ns, c_source) = before.client.ns_until(&after.client, self.ticks);
        let rss = |pid| proc::sample(pid).map(|s| s.rss_kib as f64 / 1024.0);
        Ok(Usage {
            server_cpu_ns: Some(server_ns),
            client_cpu_ns: Some(client_ns),
            cpu_source: Some(if s_source == c_source {
                s_source
            } else {
                "ticks"
            }),
            server_rss_mib: Some(rss(mesh.server.pid)?),
            client_rss_mib: Some(rss(mesh.client.pid)?),
        })
    }

    async fn cells(&self, round: usize, mesh: &mut Mesh, out: &mut Measured) {
        let client = systems::base_url(CLIENT_IP);
        let (setup, cases) = match self.authorize_cases(mesh).await {
            Ok(prepared) => prepared,
            Err(e) => {
                self.failed(round, &format!("preparing: {e:#}"), out);
                return;
            }
        };
        out.intentions.push(setup);
        let rss = |pid| proc::sample(pid).map(|s| s.rss_kib as f64 / 1024.0);
        match (rss(mesh.server.pid), rss(mesh.client.pid)) {
            (Ok(server_rss_mib), Ok(client_rss_mib)) => out.baselines.push(Baseline {
                round,
                server_rss_mib,
                client_rss_mib,
            }),
            (Err(e), _) | (_, Err(e)) => eprintln!("  reading the RSS baseline: {e:#}"),
        }
        let cases = Arc::new(cases);
        for op in [Op::Sign, Op::Authorize] {
            for &c in &self.plan.concurrency {
                tokio::time::sleep(PAUSE).await;
                let work = match op {
                    Op::Sign => Work::Sign {
                        tag: format!("r{round}-c{c}"),
                    },
                    Op::Authorize => Work::Authorize {
                        cases: cases.clone(),
                    },
                };
                let run = self.cell(round, mesh, &client, op, c, work).await;
                match (&run.error, &run.outcome) {
                    (Some(e), _) => eprintln!("  {op} c={c}: {e}"),
                    (None, Some(o)) => eprintln!(
                        "  {op} c={c}: {} ok, {} 429, {} errors, {} ops/s, server {} µs/op, \
                         client {} µs/op",
                        o.ok,
                        o.rate_limited,
                        o.errors,
                        fmt_num(run.ops_per_sec(), 0),
                        fmt_num(run.server_cpu_us_per_op(), 1),
                        fmt_num(run.client_cpu_us_per_op(), 1),
                    ),
                    (None, None) => {}
                }
                out.runs.push(run);
                if let Err(e) = mesh.ensure_running() {
                    eprintln!("  {e:#}");
                    return;
                }
            }
        }
    }

    /// One cell: `--signings` signings or `--secs` of authorize requests, with both processes'
    /// CPU and RSS.
    async fn cell(
        &self,
        round: usize,
        mesh: &Mesh,
        base: &str,
        op: Op,
        concurrency: usize,
        work: Work,
    ) -> CaRun {
        let mut run = CaRun::new(round, op, concurrency);
        let before = match self.marks(mesh) {
            Ok(m) => m,
            Err(e) => {
                run.error = Some(format!("reading CPU: {e:#}"));
                return run;
            }
        };
        let (duration, limit) = match op {
            Op::Sign => (SIGNING_CELL_CAP, Some(self.plan.signings)),
            Op::Authorize => (Duration::from_secs(self.plan.secs), None),
        };
        let outcome = requests::run(&self.http, base, work, concurrency, duration, limit).await;
        match self.usage(mesh, &before) {
            Ok(usage) => run.usage = usage,
            Err(e) => run.error = Some(format!("reading CPU and RSS: {e:#}")),
        }
        if outcome.ok == 0 {
            run.error.get_or_insert_with(|| {
                format!(
                    "nothing succeeded: {}",
                    outcome.first_error.as_deref().unwrap_or("no request sent")
                )
            });
        }
        run.set_outcome(outcome);
        run
    }

    /// Writes the intentions through the server and waits until the client agent decides by
    /// them; the requests and the decisions they must get.
    async fn authorize_cases(
        &self,
        mesh: &Mesh,
    ) -> anyhow::Result<(IntentionsSetup, Vec<AuthorizeCase>)> {
        let server = systems::base_url(SERVER_IP);
        let mut setup = IntentionsSetup::Written;
        for (source, action) in [("web", "deny"), ("api", "allow")] {
            let url =
                format!("{server}/v1/connect/intentions/exact?source={source}&destination=db");
            let req = Request::put(url.as_str())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"Action":"{action}"}}"#
                ))))
                .expect("a PUT is built from valid parts");
            let (status, body) = fetch(&self.http, req).await?;
            if status == hyper::StatusCode::NOT_FOUND
                || status == hyper::StatusCode::METHOD_NOT_ALLOWED
            {
                setup = IntentionsSetup::Absent {
                    status: status.as_u16(),
                };
                break;
            }
            if !status.is_success() {
                bail!(
                    "PUT {url}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        let td = &mesh.trust_domain;
        let web_allowed = setup != IntentionsSetup::Written;
        let cases = vec![
            AuthorizeCase::new(td, "web", "db", web_allowed),
            AuthorizeCase::new(td, "api", "db", true),
        ];
        // The agent's first authorize starts its intentions watch; wait until it sees them.
        let client = systems::base_url(CLIENT_IP);
        let work = Work::Authorize {
            cases: Arc::new(cases.clone()),
        };
        let deadline = Instant::now() + INTENTIONS_TIMEOUT;
        loop {
            let check = requests::run(
                &self.http,
                &client,
                work.clone(),
                1,
                INTENTIONS_TIMEOUT,
                Some(2),
            )
            .await;
            if check.ok == 2 {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the client agent did not decide by the intentions within \
                     {INTENTIONS_TIMEOUT:?}: {}",
                    check.first_error.as_deref().unwrap_or("?")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Also open the agent's server RPC connection and roots watch before the first cell.
        let warm = requests::run(
            &self.http,
            &client,
            Work::Sign {
                tag: "warm-up".to_owned(),
            },
            1,
            INTENTIONS_TIMEOUT,
            Some(1),
        )
        .await;
        if warm.ok != 1 {
            bail!(
                "the warm-up leaf failed: {}",
                warm.first_error.as_deref().unwrap_or("?")
            );
        }
        Ok((setup, cases))
    }

    /// A fresh pair with the server's default limit and one burst of first-time leaf requests.
    async fn limit_run(&self, round: usize) -> LimitRun {
        let mut run = LimitRun {
            round,
            csr_max_per_second: None,
            requests: self.plan.burst,
            concurrency: self.plan.burst_concurrency,
            burst: None,
            drain: None,
            server_cpu_ns: None,
            error: None,
        };
        let mesh =
            match Mesh::start(self.server_bin, self.client_bin, CsrLimit(None), &self.http).await {
                Ok(m) => m,
                Err(e) => {
                    run.error = Some(format!("{e:#}"));
                    return run;
                }
            };
        run.csr_max_per_second = mesh.csr_max_per_second;
        let client = systems::base_url(CLIENT_IP);
        // Roots first, so the burst measures signings, not the agent's first roots read.
        if let Err(e) =
            systems::get(&self.http, &format!("{client}/v1/agent/connect/ca/roots")).await
        {
            run.error = Some(format!("reading the roots: {e:#}"));
            return run;
        }
        tokio::time::sleep(PAUSE).await;
        let before = match CpuMark::read(mesh.server.pid) {
            Ok(m) => m,
            Err(e) => {
                run.error = Some(format!("reading CPU: {e:#}"));
                return run;
            }
        };
        let start = Instant::now();
        let tag = format!("limit-r{round}");
        let (burst, signed) = requests::burst(
            &self.http,
            &client,
            &tag,
            self.plan.burst,
            self.plan.burst_concurrency,
        )
        .await;
        eprintln!(
            "  burst of {}: {} signed at once, {} answered 429, {} errors in {:.2} s",
            self.plan.burst, burst.ok, burst.rate_limited, burst.errors, burst.elapsed_secs
        );
        let drain = requests::drain(
            &self.http,
            &client,
            &tag,
            signed,
            start,
            DRAIN_POLL,
            DRAIN_TIMEOUT,
        )
        .await;
        match CpuMark::read(mesh.server.pid) {
            Ok(after) => run.server_cpu_ns = Some(before.ns_until(&after, self.ticks).0),
            Err(e) => run.error = Some(format!("reading CPU: {e:#}")),
        }
        report_drain(&drain);
        run.burst = Some(burst);
        run.drain = Some(drain);
        run
    }
}

fn report_drain(drain: &Drain) {
    match drain.all_signed_secs {
        Some(secs) => eprintln!(
            "  every service had its leaf after {secs:.2} s ({} polls answered 429 meanwhile)",
            drain.polls_rate_limited
        ),
        None => eprintln!(
            "  {} services still had no leaf after {DRAIN_TIMEOUT:?}: {}",
            drain.unsigned,
            drain.first_error.as_deref().unwrap_or("")
        ),
    }
}

fn print_tables(
    plan: &Plan,
    measured: &Measured,
    summary: &[CaSummary],
    rss_per_leaf: &RssPerLeaf,
    limit: Option<&LimitSummary>,
    loadavg_after: &str,
) {
    println!(
        "\n## Medians over {} round(s): {} signings per signing cell, {} s per authorize cell, \
         no CSR limit\n",
        plan.rounds, plan.signings, plan.secs
    );
    println!("{}", summary::summary_table(summary));
    let intentions = match measured.intentions.first() {
        Some(IntentionsSetup::Written) => {
            "intentions web → db deny and api → db allow (PUT /v1/connect/intentions/exact); \
             requests alternate web → db (denied) and api → db (allowed)"
                .to_owned()
        }
        Some(IntentionsSetup::Absent { status }) => format!(
            "no intentions (PUT /v1/connect/intentions/exact answered {status}); the default \
             policy (allow) decided every request"
        ),
        None => "not measured".to_owned(),
    };
    println!(
        "leaf signing: first-time GET /v1/agent/connect/ca/leaf/<service> for distinct \
         services through the client agent (127.0.4.2): it generates a P-256 key and has the \
         mesh-server (127.0.4.1) sign the CSR over server RPC; one signing per request. \
         authorize: POST /v1/agent/connect/authorize to the client agent, decided from its \
         cached intentions; {intentions}. CPU µs/op: the process's CPU time over the cell \
         (per-thread schedstat) / successful requests; RSS: VmRSS after the cell (leaves \
         accumulate in the agent's cache over the cells). Closed loop from one single-threaded \
         generator on the same cores. Load average after: {loadavg_after}.\n"
    );
    println!(
        "RSS growth from the warm-up to the last signing cell, per leaf signed: client agent \
         {} KiB, mesh-server {} KiB (RSS after the warm-up: client {} MiB, server {} MiB).\n",
        fmt_num(rss_per_leaf.client_kib, 2),
        fmt_num(rss_per_leaf.server_kib, 2),
        fmt_num(rss_per_leaf.client_baseline_mib, 1),
        fmt_num(rss_per_leaf.server_baseline_mib, 1),
    );
    if let Some(limit) = limit {
        println!("## The default CSR limit: a burst of first-time leaf requests\n");
        println!("{}", summary::limit_table(limit));
        println!(
            "A fresh server and client agent per round, the server at its default \
             CSRMaxPerSecond. 200/429 at once: the first answer to each request (429: \"Rate \
             limit reached, try again later\"); the agent retries a refused signing by itself \
             after 0.5-3 s, and the tool polls the refused services every {} ms until each has \
             its leaf. signings/s: leaf requests / seconds until the last leaf; server CPU: \
             over the same time, per leaf.\n",
            DRAIN_POLL.as_millis()
        );
    }
    for r in measured.runs.iter().filter(|r| r.error.is_some()) {
        println!(
            "round {} {} c={}: {}",
            r.round,
            r.op,
            r.concurrency,
            r.error.as_deref().unwrap_or_default()
        );
    }
    for r in measured.limit_runs.iter().filter(|r| r.error.is_some()) {
        println!(
            "round {} limit burst: {}",
            r.round,
            r.error.as_deref().unwrap_or_default()
        );
    }
    for r in &measured.runs {
        if let Some(e) = r.outcome.as_ref().and_then(|o| o.first_error.as_ref()) {
            println!(
                "round {} {} c={}: first error: {e}",
                r.round, r.op, r.concurrency
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
        args: CaArgs,
    }

    fn plan(line: &str) -> anyhow::Result<Plan> {
        let argv = std::iter::once("ca").chain(line.split_whitespace());
        Cli::try_parse_from(argv)?.args.plan()
    }

    #[test]
    fn defaults_quick_and_explicit_options() {
        let p = plan("").unwrap();
        assert_eq!(p.concurrency, [1, 16, 64]);
        assert_eq!(
            (p.rounds, p.signings, p.secs, p.burst, p.burst_concurrency),
            (2, 20_000, 10, 200, 64)
        );
        let q = plan("--quick").unwrap();
        assert_eq!((q.rounds, q.signings, q.secs, q.burst), (1, 3000, 3, 100));
        let e = plan("--quick --rounds 3 --concurrency 8 --burst 0").unwrap();
        assert_eq!((e.rounds, e.concurrency.clone(), e.burst), (3, vec![8], 0));
        assert!(plan("--rounds 0").is_err());
        assert!(plan("--concurrency 0").is_err());
        assert!(plan("--secs 0").is_err());
        assert!(plan("--signings 0").is_err());
    }
}
