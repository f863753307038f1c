//! `mesh-bench kv`: Consul KV on mesh against etcd's KV, interleaved round by round.
//!
//! Both systems are started once and populated once; then every round runs every cell
//! (concurrency × PUT, GET) on each system in turn (mesh, etcd, mesh, etcd, ...), so machine
//! noise lands on both. Per cell the server's CPU time per operation, its RSS, throughput and
//! latency are recorded; the tables show medians over rounds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::load::{self, HttpClient, Op, Phase, Workload};
use crate::machine::{self, MachineFacts};
use crate::proc;
use crate::report::{self, CellRun, NodeRun, RatioRow, SummaryRow};
use crate::stats::percentile;
use crate::target::{self, Deployment, NodeSample, System, Topology};

/// Concurrency used to pre-populate the key space (not measured).
const POPULATE_CONCURRENCY: usize = 64;

#[derive(Debug, Clone, Args, Serialize)]
pub struct KvArgs {
    /// Seconds each measured phase lasts.
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// Rounds; the tables show the median over rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Concurrent workers (closed loop, one request in flight each), comma-separated
    /// [default: 1,16,64; with --cluster: 1,16,64,256].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Size of the key space, written once before measuring.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// The mesh-server binary (`cargo xtask bench` passes the release build).
    #[arg(long)]
    pub mesh_server: Option<PathBuf>,
    /// Where to write the raw per-round numbers [default: $CARGO_TARGET_DIR/bench/kv.json,
    /// else target/bench/kv.json].
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Measure only one system.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Run N servers of each system (mesh on 127.0.0.41.., etcd on 127.0.0.51..) instead of
    /// one, and send load to the leader.
    #[arg(long, value_name = "N")]
    pub cluster: Option<usize>,
    /// With --cluster: where GETs go. `leader` sends them to the leader like PUTs; `spread`
    /// spreads the workers over every node (a single worker reads from a follower).
    #[arg(long, value_enum, default_value_t = Reads::Leader)]
    pub reads: Reads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    Leader,
    Spread,
}

/// The concurrencies measured when `--concurrency` is not given.
pub fn default_concurrency(topology: Topology) -> Vec<usize> {
    match topology {
        Topology::Single => vec![1, 16, 64],
        Topology::Cluster(_) => vec![1, 16, 64, 256],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Only {
    Mesh,
    Etcd,
}

/// Everything a run writes to `--json-out`.
#[derive(Debug, Serialize)]
struct KvReport<'a> {
    command: &'a str,
    machine: &'a MachineFacts,
    config: &'a KvArgs,
    runs: &'a [CellRun],
    summary: &'a [SummaryRow],
    ratios: &'a [RatioRow],
}

pub fn run(mut args: KvArgs, command: &str) -> anyhow::Result<()> {
    let topology = Topology::from_cluster_arg(args.cluster)?;
    if args.reads == Reads::Spread && topology == Topology::Single {
        bail!("--reads spread needs --cluster N");
    }
    if args.concurrency.is_empty() {
        args.concurrency = default_concurrency(topology);
    }
    if args.rounds == 0 || args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--rounds and every --concurrency must be at least 1");
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
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
        "# mesh-bench kv\n\n```\n{command}\n```\n\n{}",
        facts.to_markdown()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let runs = runtime.block_on(measure(&args, topology, systems, ticks))?;

    let summary = report::summarize(&runs);
    let ratios = report::ratios(&summary, "mesh", "etcd");
    println!(
        "\n## Medians over {} round(s), {} s per phase, {}\n",
        args.rounds,
        args.duration_secs,
        describe(topology, args.reads)
    );
    println!("{}", report::summary_table(&summary));
    println!(
        "errors are summed over all rounds; CPU is the server's utime+stime per successful op{}.\n",
        if topology == Topology::Single {
            ""
        } else {
            ", summed over every node; RSS is summed over every node"
        }
    );
    if let Some(table) = report::node_table(&summary) {
        println!("## Per node (medians; leader first, then followers in start order)\n");
        println!("{table}");
    }
    if ratios.is_empty() {
        println!("(no ratio table: only one system was measured)");
    } else {
        println!("## Ratios of the medians\n");
        println!("{}", report::ratio_table(&ratios, "mesh", "etcd"));
    }
    for r in runs.iter().filter(|r| r.first_error.is_some()) {
        println!(
            "round {} {} {} c={}: {} errors, first: {}",
            r.round,
            r.system,
            r.op,
            r.concurrency,
            r.errors,
            r.first_error.as_deref().unwrap_or_default()
        );
    }

    let report = KvReport {
        command,
        machine: &facts,
        config: &args,
        runs: &runs,
        summary: &summary,
        ratios: &ratios,
    };
    crate::report::write_json(args.json_out.clone(), "kv", &report)?;
    Ok(())
}

/// The deployment and load placement, for the heading of the tables.
fn describe(topology: Topology, reads: Reads) -> String {
    match (topology, reads) {
        (Topology::Single, _) => "one server each".to_owned(),
        (Topology::Cluster(n), Reads::Leader) => {
            format!("{n} servers each, PUT and GET sent to the leader")
        }
        (Topology::Cluster(n), Reads::Spread) => {
            format!("{n} servers each, PUT sent to the leader, GET spread over all nodes")
        }
    }
}

/// Starts and populates every system, then runs the interleaved rounds.
async fn measure(
    args: &KvArgs,
    topology: Topology,
    systems: Vec<System>,
    ticks: u64,
) -> anyhow::Result<Vec<CellRun>> {
    let client = load::http_client();
    let workload = Arc::new(Workload::new(args.keys, args.value_size));
    let mut deployed: Vec<(Arc<System>, Deployment)> = Vec::new();
    for system in systems {
        let deployment = system
            .start(topology, &client)
            .await
            .with_context(|| format!("starting {}", system.name()))?;
        eprintln!(
            "{} ready at {} (pid {:?})",
            system.name(),
            deployment.base_url(),
            deployment.pids()
        );
        let system = Arc::new(system);
        load::populate(
            &client,
            &system,
            deployment.base_url(),
            &workload,
            POPULATE_CONCURRENCY,
        )
        .await?;
        deployed.push((system, deployment));
    }

    let duration = Duration::from_secs(args.duration_secs);
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        for &concurrency in &args.concurrency {
            for op in [Op::Put, Op::Get] {
                // The same seed for every system of a cell: both see the same key sequence.
                let seed = (round as u64) << 40 | (concurrency as u64) << 8 | op as u64;
                let phase = Phase {
                    op,
                    concurrency,
                    duration,
                    seed,
                };
                for (system, deployment) in &mut deployed {
                    if let Some((old, new)) = deployment.refresh_leader(&client).await? {
                        eprintln!(
                            "note: {} leadership moved from {old} to {new}; load now goes to {new}",
                            system.name()
                        );
                    }
                    let spread = op == Op::Get && args.reads == Reads::Spread;
                    let run = measure_cell(
                        &client, system, deployment, &workload, phase, round, ticks, spread,
                    )
                    .await?;
                    eprintln!(
                        "round {round}/{} {:<4} {op} c={concurrency:<3} {:>8.0} ops/s {:>8} µs/op CPU {:>3} errors",
                        args.rounds,
                        run.system,
                        run.ops_per_sec,
                        report::fmt_num(run.cpu_us_per_op, 1),
                        run.errors,
                    );
                    runs.push(run);
                }
            }
        }
    }
    Ok(runs)
}

#[allow(clippy::too_many_arguments)]
async fn measure_cell(
    client: &HttpClient,
    system: &Arc<System>,
    deployment: &mut Deployment,
    workload: &Arc<Workload>,
    phase: Phase,
    round: usize,
    ticks: u64,
    spread: bool,
) -> anyhow::Result<CellRun> {
    let targets = if spread {
        deployment.spread_urls()
    } else {
        vec![deployment.base_url().to_owned()]
    };
    let before = deployment.sample_nodes()?;
    let outcome = load::run_phase(client, system, &targets, workload, phase).await;
    let after_nodes = deployment.sample_nodes()?;
    deployment.ensure_running()?;

    let per_op = |ticks_used: u64| {
        (outcome.ok > 0).then(|| ticks_used as f64 * 1e6 / ticks as f64 / outcome.ok as f64)
    };
    let nodes = node_runs(&before, &after_nodes, per_op);
    let after = target::sum_samples(&after_nodes);
    let cpu_ticks = nodes.iter().map(|n| n.cpu_ticks).sum();
    let secs = outcome.elapsed.as_secs_f64();
    let ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
    Ok(CellRun {
        round,
        system: deployment.system().to_owned(),
        op: phase.op,
        concurrency: phase.concurrency,
        ok_ops: outcome.ok,
        errors: outcome.errors,
        elapsed_secs: secs,
        ops_per_sec: if secs > 0.0 {
            outcome.ok as f64 / secs
        } else {
            0.0
        },
        p50_ms: ms(percentile(&outcome.latencies_us, 50.0)),
        p99_ms: ms(percentile(&outcome.latencies_us, 99.0)),
        cpu_ticks,
        cpu_us_per_op: per_op(cpu_ticks),
        rss_mib: after.rss_kib as f64 / 1024.0,
        first_error: outcome.first_error,
        targets,
        nodes,
    })
}

/// Each node's CPU ticks between two samples (matched by name, since the leader, which comes
/// first, may differ) and RSS at the end, in the order of `after`.
fn node_runs(
    before: &[NodeSample],
    after: &[NodeSample],
    per_op: impl Fn(u64) -> Option<f64>,
) -> Vec<NodeRun> {
    after
        .iter()
        .map(|a| {
            let start = before
                .iter()
                .find(|b| b.name == a.name)
                .map_or(a.usage.cpu_ticks, |b| b.usage.cpu_ticks);
            let cpu_ticks = a.usage.cpu_ticks.saturating_sub(start);
            NodeRun {
                name: a.name.clone(),
                leader: a.leader,
                cpu_ticks,
                cpu_us_per_op: per_op(cpu_ticks),
                rss_mib: a.usage.rss_kib as f64 / 1024.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::ProcessSample;

    fn sample(name: &str, leader: bool, cpu_ticks: u64, rss_kib: u64) -> NodeSample {
        NodeSample {
            name: name.to_owned(),
            leader,
            usage: ProcessSample { cpu_ticks, rss_kib },
        }
    }

    #[test]
    fn cluster_runs_default_to_256_clients_too() {
        assert_eq!(default_concurrency(Topology::Single), [1, 16, 64]);
        assert_eq!(default_concurrency(Topology::Cluster(3)), [1, 16, 64, 256]);
    }

    #[test]
    fn node_deltas_match_nodes_by_name_even_when_the_leader_moved() {
        let before = [
            sample("bench-1", true, 100, 1024),
            sample("bench-2", false, 50, 1024),
            sample("bench-3", false, 10, 1024),
        ];
        let after = [
            sample("bench-2", true, 80, 2048),
            sample("bench-1", false, 110, 1024),
            sample("bench-3", false, 13, 3072),
        ];
        let runs = node_runs(&before, &after, |t| Some(t as f64));
        let got: Vec<(&str, bool, u64, Option<f64>, f64)> = runs
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.leader,
                    n.cpu_ticks,
                    n.cpu_us_per_op,
                    n.rss_mib,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("bench-2", true, 30, Some(30.0), 2.0),
                ("bench-1", false, 10, Some(10.0), 1.0),
                ("bench-3", false, 3, Some(3.0), 3.0),
            ]
        );
    }

    #[test]
    fn headings_say_where_load_went() {
        assert_eq!(describe(Topology::Single, Reads::Leader), "one server each");
        assert!(describe(Topology::Cluster(3), Reads::Spread).contains("GET spread"));
        assert!(describe(Topology::Cluster(3), Reads::Leader).contains("sent to the leader"));
    }
}
