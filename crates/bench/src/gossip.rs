//! `mesh-bench gossip`: mesh's gossip membership against HashiCorp serf 0.9, interleaved round
//! by round (round 1 mesh, round 1 serf, round 2 mesh, ...), at each pool size N.
//!
//! A mesh pool is one `mesh-server` (its own datacenter) and N-1 `mesh-client agent` processes
//! on 127.0.1.1..N; a serf pool is N `serf agent` processes with LAN defaults (what Consul
//! uses) on 127.0.2.1..N. Each round starts a fresh pool and measures, in order:
//!
//! 1. **join**: N-1 agents form a pool; then the N-th starts, and the time until every agent
//!    lists it alive is taken (mesh: `GET /v1/agent/members` on each agent, serf: the RPC
//!    `members` command, every 50 ms);
//! 2. **steady state**: after a settle, a quiet window in which nothing asks the agents
//!    anything: each agent's CPU (per-thread schedstat, else utime+stime) and VmRSS, and the
//!    pool's UDP bytes (and TCP bytes on the gossip port: serf's push-pull) from iptables
//!    counters in a chain of our own, removed at the end;
//! 3. **failure detection**: `kill -9` of one agent (neither agent 0 nor the newcomer) and the
//!    time until every other agent lists it failed;
//!
//! and, throughout, false failures: any member other than the killed one reported failed, in a
//! members answer or in an agent's log. A last table runs the deterministic simulator
//! (`gossip::sim::run_scenario`) at a thousand nodes, which one machine cannot run as processes.
//!
//! Every process is killed (SIGKILL, reaped) at the end of its round, also on error or Ctrl-C.

mod accounting;
mod members;
mod msgpack;
mod pool;
mod round;
mod serf_rpc;
mod summary;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use serde::Serialize;

use self::accounting::Accounting;
use self::pool::{Flavor, MAX_AGENTS};
use self::round::{GossipRun, RoundPlan};
use self::summary::{GossipRatio, GossipSummary, SimRow};
use crate::load;
use crate::machine::{self, MachineFacts};
use crate::proc;
use crate::report::fmt_num;

const DEFAULT_SIZES: [usize; 2] = [20, 50];
const QUICK_SIZES: [usize; 1] = [5];
const DEFAULT_ROUNDS: usize = 2;
const DEFAULT_STEADY_SECS: u64 = 60;
const QUICK_STEADY_SECS: u64 = 5;
const DEFAULT_SETTLE_SECS: u64 = 5;
const QUICK_SETTLE_SECS: u64 = 2;
/// serf's first push-pull comes 30-60 s after an agent starts (60-90 s above 32 agents), then
/// every 30 s (60 s above 32 agents); mesh announces every 30 s. A window that starts earlier
/// misses that work entirely.
const DEFAULT_WARMUP_SECS: u64 = 90;
const DEFAULT_SIM_NODES: usize = 1000;
const QUICK_SIM_NODES: usize = 100;

#[derive(Debug, Clone, Args, Serialize)]
pub struct GossipArgs {
    /// Pool sizes N (agents per pool; mesh's include its one mesh-server), comma-separated
    /// [default: 20,50; with --quick: 5].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Rounds; the tables show the median over rounds [default: 2; with --quick: 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Seconds of the quiet window CPU, RSS and traffic are measured over [default: 60; with
    /// --quick: 5].
    #[arg(long)]
    pub steady_secs: Option<u64>,
    /// The quiet window starts no earlier than this many seconds after a pool's first agent
    /// started, so that periodic work that starts late (serf's push-pull) is in it
    /// [default: 90; with --quick: 0].
    #[arg(long)]
    pub warmup_secs: Option<u64>,
    /// Seconds waited after the pool forms and after the join, before the next measurement
    /// [default: 5; with --quick: 2].
    #[arg(long)]
    pub settle_secs: Option<u64>,
    /// A small smoke run: N=5, 1 round, 5 s steady window without warm-up, a 100-node
    /// simulation (explicit options win).
    #[arg(long)]
    pub quick: bool,
    /// Nodes of the simulated pool (0: no simulation) [default: 1000; with --quick: 100].
    #[arg(long)]
    pub sim_nodes: Option<usize>,
    /// Packet loss rates of the simulation, comma-separated fractions.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1")]
    pub sim_loss: Vec<f64>,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub sim_seed: u64,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// The mesh-client binary (`cargo xtask bench gossip` passes the release build).
    #[arg(long)]
    pub mesh_client: Option<PathBuf>,
    /// The serf binary [default: /usr/bin/serf, installed with apt-get when missing].
    #[arg(long)]
    pub serf: Option<PathBuf>,
    /// Where to write the raw per-round numbers [default: $CARGO_TARGET_DIR/bench/gossip.json,
    /// else target/bench/gossip.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Copy every agent's log here, one directory per system, N and round.
    #[arg(long)]
    pub keep_logs: Option<PathBuf>,
    /// Measure only one system.
    #[arg(long, value_enum)]
    pub only: Option<GossipSystem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GossipSystem {
    Mesh,
    Serf,
}

/// The options with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub steady_secs: u64,
    pub settle_secs: u64,
    pub warmup_secs: u64,
    pub sim_nodes: usize,
    pub sim_loss: Vec<f64>,
    pub sim_seed: u64,
}

impl GossipArgs {
    /// Defaults (those of `--quick` when given) for every option left out, validated.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let pick = |given: Option<u64>, quick: u64, default: u64| {
            given.unwrap_or(if self.quick { quick } else { default })
        };
        let plan = Plan {
            sizes: match (self.sizes.is_empty(), self.quick) {
                (false, _) => self.sizes.clone(),
                (true, true) => QUICK_SIZES.to_vec(),
                (true, false) => DEFAULT_SIZES.to_vec(),
            },
            rounds: self
                .rounds
                .unwrap_or(if self.quick { 1 } else { DEFAULT_ROUNDS }),
            steady_secs: pick(self.steady_secs, QUICK_STEADY_SECS, DEFAULT_STEADY_SECS),
            settle_secs: pick(self.settle_secs, QUICK_SETTLE_SECS, DEFAULT_SETTLE_SECS),
            warmup_secs: pick(self.warmup_secs, 0, DEFAULT_WARMUP_SECS),
            sim_nodes: self.sim_nodes.unwrap_or(if self.quick {
                QUICK_SIM_NODES
            } else {
                DEFAULT_SIM_NODES
            }),
            sim_loss: self.sim_loss.clone(),
            sim_seed: self.sim_seed,
        };
        if plan.rounds == 0 || plan.steady_secs == 0 {
            bail!("--rounds and --steady-secs must be at least 1");
        }
        if let Some(&n) = plan.sizes.iter().find(|&&n| !(3..=MAX_AGENTS).contains(&n)) {
            bail!("every --sizes must be between 3 and {MAX_AGENTS}, not {n}");
        }
        if plan.sim_nodes != 0 && plan.sim_nodes < 3 {
            bail!("--sim-nodes must be 0 (no simulation) or at least 3");
        }
        if let Some(loss) = plan.sim_loss.iter().find(|l| !(0.0..1.0).contains(*l)) {
            bail!("every --sim-loss must be a fraction in [0, 1), not {loss}");
        }
        Ok(plan)
    }
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct GossipReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    serf_version: Option<&'a str>,
    config: &'a GossipArgs,
    plan: &'a Plan,
    udp_accounting: bool,
    runs: &'a [GossipRun],
    summary: &'a [GossipSummary],
    ratios: &'a [GossipRatio],
    simulation: &'a [SimRow],
}

pub fn run(args: GossipArgs, command: &str) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let want = |s: GossipSystem| args.only.is_none_or(|only| only == s);
    let mut flavors = Vec::new();
    if want(GossipSystem::Mesh) {
        let (Some(server), Some(client)) = (args.mesh_server.clone(), args.mesh_client.clone())
        else {
            bail!(
                "--mesh-server PATH and --mesh-client PATH are required unless --only serf \
                 (cargo xtask bench gossip passes both)"
            );
        };
        for bin in [&server, &client] {
            if !bin.exists() {
                bail!("{} does not exist", bin.display());
            }
        }
        flavors.push(Flavor::Mesh { server, client });
    }
    let mut serf_version = None;
    if want(GossipSystem::Serf) {
        let bin = match args.serf.clone() {
            Some(bin) => bin,
            None => machine::ensure_serf()?,
        };
        serf_version = Some(machine::serf_version(&bin));
        flavors.push(Flavor::Serf { bin });
    }
    // Traffic counting is a bonus: without iptables the column says n/a.
    let accounting = match machine::ensure_iptables().and_then(|_| {
        Accounting::install(&flavors.iter().map(Flavor::accounting).collect::<Vec<_>>())
    }) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("warning: no UDP byte counts (iptables accounting unavailable): {e:#}");
            None
        }
    };

    let ticks = proc::clock_ticks_per_sec()?;
    let facts = MachineFacts::collect(ticks, None, args.mesh_server.as_deref());
    let mut header = format!(
        "# mesh-bench gossip\n\n```\n{command}\n```\n\n{}",
        facts.to_markdown()
    );
    if let Some(client) = &args.mesh_client {
        header.push_str(&format!("- mesh-client: {}\n", client.display()));
    }
    if let Some(v) = &serf_version {
        header.push_str(&format!("- serf: {v}\n"));
    }
    println!("{header}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let runs = runtime.block_on(async {
        tokio::select! {
            runs = measure(&plan, &flavors, ticks, accounting.as_ref(), args.keep_logs.as_deref()) => runs,
            _ = tokio::signal::ctrl_c() => bail!("interrupted; every agent is killed and the iptables chain removed"),
        }
    })?;
    // Counting is over: remove the chain before the (long) simulation.
    let udp_accounting = accounting.is_some();
    drop(accounting);
    let simulation = simulate(&plan);

    let summary = summary::summarize(&runs);
    let ratios = summary::ratios(&summary);
    print_tables(&plan, &runs, &summary, &ratios, &simulation);

    let report = GossipReport {
        command,
        machine: &facts,
        serf_version: serf_version.as_deref(),
        config: &args,
        plan: &plan,
        udp_accounting,
        runs: &runs,
        summary: &summary,
        ratios: &ratios,
        simulation: &simulation,
    };
    crate::report::write_json(args.json_out.clone(), "gossip", &report)?;
    if runs.iter().all(|r| r.error.is_some()) {
        bail!("no round ran to the end");
    }
    Ok(())
}

/// Every round, every size, every system in turn.
async fn measure(
    plan: &Plan,
    flavors: &[Flavor],
    ticks_per_sec: u64,
    accounting: Option<&Accounting>,
    keep_logs: Option<&std::path::Path>,
) -> anyhow::Result<Vec<GossipRun>> {
    let client = load::http_client();
    let mut runs = Vec::new();
    for round in 1..=plan.rounds {
        for &n in &plan.sizes {
            for flavor in flavors {
                eprintln!("round {round}/{} {} n={n}", plan.rounds, flavor.name());
                let round_plan = RoundPlan {
                    round,
                    n,
                    settle: Duration::from_secs(plan.settle_secs),
                    warmup: Duration::from_secs(plan.warmup_secs),
                    steady: Duration::from_secs(plan.steady_secs),
                    ticks_per_sec,
                };
                let run =
                    round::run_round(flavor, &round_plan, &client, accounting, keep_logs).await?;
                if let Some(e) = &run.error {
                    eprintln!("  {} n={n} round {round} stopped: {e}", flavor.name());
                }
                runs.push(run);
            }
        }
    }
    Ok(runs)
}

/// The simulated rows, one per loss rate.
fn simulate(plan: &Plan) -> Vec<SimRow> {
    if plan.sim_nodes == 0 {
        return Vec::new();
    }
    plan.sim_loss
        .iter()
        .map(|&loss| {
            eprintln!(
                "simulating {} nodes at {:.0}% loss (seed {})",
                plan.sim_nodes,
                loss * 100.0,
                plan.sim_seed
            );
            let started = Instant::now();
            let r = gossip::sim::run_scenario(plan.sim_nodes, loss, plan.sim_seed);
            let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
            SimRow {
                n: r.nodes,
                loss,
                seed: plan.sim_seed,
                dissemination_secs: secs(r.dissemination_time),
                first_detect_secs: secs(r.first_detection_time),
                detect_secs: secs(r.detection_time),
                false_failures: r.false_failures,
                bytes_per_node_sec: r.bytes_per_node_per_sec,
                steady_bytes_per_node_sec: r.steady_bytes_per_node_per_sec,
                wall_secs: started.elapsed().as_secs_f64(),
            }
        })
        .collect()
}

fn print_tables(
    plan: &Plan,
    runs: &[GossipRun],
    summary: &[GossipSummary],
    ratios: &[GossipRatio],
    simulation: &[SimRow],
) {
    println!(
        "\n## Medians over {} round(s), {} s steady window from {} s after a pool's first agent \
         started\n",
        plan.rounds, plan.steady_secs, plan.warmup_secs
    );
    println!("{}", summary::summary_table(summary));
    println!(
        "N agents per pool, each process on its own loopback address (mesh: one mesh-server \
         and N-1 mesh-client agents on 127.0.1.x; serf: N serf agents, LAN profile, on \
         127.0.2.x). CPU: median over agents of CPU seconds per minute in the {} s quiet \
         window (nobody polls the agents then); RSS: median over agents of VmRSS at its end. \
         detect: from `kill -9` of one agent until every other agent lists it failed (first: \
         until one does). join: from starting the N-th agent until every agent lists it alive \
         (all see all: until every agent lists all N alive). UDP B/s: bytes of every UDP \
         datagram the pool's addresses sent, per agent per second, IP headers included \
         (iptables counters); gossip TCP: TCP to or from the gossip port (serf's push-pull; \
         mesh gossips over UDP only; mesh-client's RPC to the server is not counted). Polls every {} ms. False failures: (observer, member) \
         pairs where a member that was alive was reported failed, in an answer or in the \
         observer's log, summed over rounds; must be 0.\n",
        plan.steady_secs,
        round::POLL.as_millis()
    );
    if !ratios.is_empty() {
        println!("## Ratios of the medians (below 1: mesh uses less or is faster)\n");
        println!("{}", summary::ratio_table(ratios));
    }
    // mesh's agent 0 is a server (raft, the catalog): not what the per-agent median shows.
    let servers: Vec<&GossipRun> = runs
        .iter()
        .filter(|r| r.system == "mesh" && !r.agents.is_empty())
        .collect();
    for n in &plan.sizes {
        let of_n: Vec<&&GossipRun> = servers.iter().filter(|r| r.n == *n).collect();
        if of_n.is_empty() {
            continue;
        }
        let server = |f: fn(&round::AgentUsage) -> f64| {
            crate::stats::median(&of_n.iter().map(|r| f(&r.agents[0])).collect::<Vec<_>>())
        };
        let mean = crate::stats::median(
            &of_n
                .iter()
                .filter_map(|r| r.cpu_s_per_min_mean)
                .collect::<Vec<_>>(),
        );
        println!(
            "mesh n={n}: the mesh-server itself used {} CPU s/min and {} MiB RSS; CPU summed \
             over the pool / N: {} s/min.",
            fmt_num(server(|a| a.cpu_s_per_min), 3),
            fmt_num(server(|a| a.rss_mib), 1),
            fmt_num(mean, 3)
        );
    }
    for r in runs.iter().filter(|r| r.system == "serf") {
        if let Some(s) = r.false_suspicions.filter(|s| *s > 0) {
            println!(
                "serf n={} round {}: {s} suspicion(s) of live members in the logs, {} refutation(s).",
                r.n, r.round, r.refutations
            );
        }
    }
    for r in runs
        .iter()
        .filter(|r| r.system == "mesh" && r.refutations > 0)
    {
        println!(
            "mesh n={} round {}: {} agent(s) logged `declared down by the pool; rejoined`.",
            r.n, r.round, r.refutations
        );
    }
    for r in runs {
        for f in &r.false_failure_detail {
            println!(
                "FALSE FAILURE {} n={} round {}: {} reported {} failed ({})",
                r.system, r.n, r.round, f.observer, f.member, f.source
            );
        }
        if let Some(e) = &r.error {
            println!(
                "round {} {} n={} stopped early: {e}",
                r.round, r.system, r.n
            );
        }
        if r.poll_errors > 0 {
            println!(
                "round {} {} n={}: {} members request(s) failed, first: {}",
                r.round,
                r.system,
                r.n,
                r.poll_errors,
                r.first_poll_error.as_deref().unwrap_or_default()
            );
        }
    }
    if !simulation.is_empty() {
        println!(
            "\n## Simulation: mesh's gossip engine, deterministic network, simulated seconds\n"
        );
        println!("{}", summary::sim_table(simulation));
        println!(
            "`gossip::sim::run_scenario(n, loss, seed {})`: every node joins through node 0 \
             within the first second; formation: until every node lists every node alive; \
             then 10 s quiet (steady B/s, payload bytes without IP/UDP headers), then one node \
             crashes. Wall time: {}.",
            plan.sim_seed,
            simulation
                .iter()
                .map(|r| format!("{:.0} s", r.wall_secs))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
