//! A Jepsen-style test of mesh's KV store: a bounded-time history recorder with a nemesis,
//! against real `mesh-server` processes, checked with the `linearizability` crate.
//!
//! Three servers run on their own loopback addresses; clients, each pinned to one server,
//! issue random reads, writes and read-then-CAS operations on a few keys over Consul's KV API
//! while the nemesis kills -9 and restarts servers, or SIGSTOPs them past an election timeout.
//! After the faults, every server is read once more with `?consistent`. The history is then
//! checked for linearizability and the run prints operations by outcome, the faults injected,
//! and any anomaly.
//!
//! With `--partitions`, the servers run instead in their own Linux network namespaces, joined
//! by a bridge (`test_support::netns::Lab`), and the nemesis also partitions the cluster: it
//! cuts one server (often the leader) off from the other two for a few seconds, both ways,
//! raft RPC and gossip alike, then heals. Clients keep talking to every server, the cut-off one
//! included (their sockets are opened inside its namespace, to its 127.0.0.1), so whatever the
//! minority side answers is in the history: it must not acknowledge writes or serve default or
//! `?consistent` reads. This needs root and iproute2's `ip` (and `curl`, which the lab checks
//! for); without them the run fails at once and says so (exit status 4). Every partition is
//! healed before the final reads; the namespaces are deleted and the servers killed by PID at
//! the end, on failure, and on SIGINT/SIGTERM.
//!
//! Never used by the product; talks to `mesh-server` over HTTP only and depends on no mesh
//! crate, so building it never rebuilds RocksDB.

mod client;
mod cluster;
mod nemesis;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use linearizability::{Call, Limits, Operation, Outcome, Verdict};

use crate::client::{Endpoint, KvClient};
use crate::cluster::{wait_for_leaders, Cluster, Net};
use crate::workload::{ClientPlan, Recorded};

/// Read consistency mode, as Consul's query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// No parameter (mesh serves linearizable reads by default).
    Default,
    /// `?consistent`.
    Consistent,
    /// `?stale`: reads are recorded but only writes and CAS are checked.
    Stale,
}

impl Consistency {
    fn query(self) -> &'static str {
        match self {
            Consistency::Default => "",
            Consistency::Consistent => "consistent",
            Consistency::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mesh-jepsen",
    about = "Records KV histories against a 3-server mesh cluster under faults and checks them for linearizability"
)]
pub struct RunArgs {
    /// The mesh-server binary (`cargo xtask jepsen` passes the release build).
    #[arg(long)]
    pub mesh_server: PathBuf,
    /// Seconds of client load; faults stop a little before the end.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Seed for the clients' and the nemesis' choices [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = Consistency::Default)]
    pub consistency: Consistency,
    /// Concurrent clients, pinned round-robin to the servers.
    #[arg(long, default_value_t = 5)]
    pub clients: u64,
    /// Keys (independent registers).
    #[arg(long, default_value_t = 3)]
    pub keys: usize,
    /// Per-request deadline; a write or CAS without an answer by then has an unknown outcome.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Mean seconds between faults (jittered ±50%).
    #[arg(long, default_value_t = 3.0)]
    pub fault_interval_secs: f64,
    /// Run without faults.
    #[arg(long)]
    pub no_nemesis: bool,
    /// Last octet of the first server's loopback address (127.0.0.N, N+1, N+2); unused with
    /// --partitions.
    #[arg(long, default_value_t = 61)]
    pub first_octet: u8,
    /// Run the servers in network namespaces and let the nemesis partition them too (needs
    /// root and `ip`).
    #[arg(long)]
    pub partitions: bool,
    /// Longest partition, in seconds (each lasts 2 s up to this, uniformly). Above autopilot's
    /// 10 s `ServerStabilizationTime` plus gossip's failure detection, the leader removes the
    /// cut-off server from raft and adds it back after the heal.
    #[arg(long, default_value_t = 6.0)]
    pub max_partition_secs: f64,
    /// Search steps per key before the checker gives up with "unknown".
    #[arg(long, default_value_t = 20_000_000)]
    pub check_budget: u64,
    /// Write the recorded history as JSON here.
    #[arg(long)]
    pub history_out: Option<PathBuf>,
}

/// `--partitions` was asked for, but network namespaces cannot be used here.
#[derive(Debug)]
pub struct NamespacesUnavailable(pub String);

impl std::fmt::Display for NamespacesUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--partitions runs the servers in Linux network namespaces, which cannot be used \
             here: {}. Run mesh-jepsen as root with iproute2 (`ip`) and curl installed, or \
             without --partitions",
            self.0
        )
    }
}

impl std::error::Error for NamespacesUnavailable {}

/// What the run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Linearizable,
    Anomalies,
    /// The checker ran out of budget on some key.
    Undecided,
}

const SERVERS: usize = 3;

/// Records and checks one history. Interrupted by SIGINT or SIGTERM, it stops the clients and
/// the nemesis and fails; the servers and namespaces go when the runtime drops the tasks.
pub async fn run(args: RunArgs) -> anyhow::Result<Finding> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        finding = record_and_check(args) => finding,
        _ = interrupt.recv() => bail!("interrupted (SIGINT)"),
        _ = terminate.recv() => bail!("terminated (SIGTERM)"),
    }
}

async fn record_and_check(args: RunArgs) -> anyhow::Result<Finding> {
    if !args.mesh_server.exists() {
        bail!(
            "mesh-server binary {} does not exist",
            args.mesh_server.display()
        );
    }
    if args.clients == 0 || args.keys == 0 {
        bail!("--clients and --keys must be at least 1");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let timeout = Duration::from_millis(args.request_timeout_ms);
    println!(
        "mesh-jepsen: {SERVERS} servers{}, {} clients, {} keys, consistency {:?}, {} s, seed {seed}{}",
        if args.partitions {
            " in network namespaces"
        } else {
            ""
        },
        args.clients,
        args.keys,
        args.consistency,
        args.duration_secs,
        match (args.no_nemesis, args.partitions) {
            (true, _) => ", no faults",
            (false, true) => ", faults: kill, pause, partition",
            (false, false) => "",
        }
    );

    let dir = tempfile::Builder::new()
        .prefix("mesh-jepsen-")
        .tempdir()
        .context("creating a temporary directory")?;
    let net = if args.partitions {
        Net::Namespaces
    } else {
        Net::Loopback {
            first_octet: args.first_octet,
        }
    };
    let cluster = match Cluster::start(&args.mesh_server, dir.path(), SERVERS, net) {
        Ok(cluster) => cluster,
        Err(err) => {
            return Err(
                match err.downcast_ref::<test_support::netns::Unavailable>() {
                    Some(why) => NamespacesUnavailable(why.0.clone()).into(),
                    None => err,
                },
            )
        }
    };
    let endpoints: Vec<Endpoint> = cluster.servers.iter().map(|s| s.endpoint()).collect();
    let rpc_addrs: Vec<_> = cluster.servers.iter().map(|s| s.rpc_addr()).collect();
    let logs: Vec<PathBuf> = cluster
        .servers
        .iter()
        .map(|s| s.log_path().to_path_buf())
        .collect();
    let cluster = Arc::new(Mutex::new(cluster));
    if let Err(err) = wait_for_leaders(&endpoints, Duration::from_secs(30)).await {
        let tails: String = logs.iter().map(|l| log_tail(l, 20)).collect();
        bail!("{err}; server logs:\n{tails}");
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration_secs);
    // The last stretch is fault-free, so the final reads meet a healed cluster.
    let faults_until = deadline
        .checked_sub(Duration::from_secs(2))
        .unwrap_or(deadline);
    let clients: Vec<KvClient> = endpoints.iter().map(KvClient::new).collect();
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..args.clients {
        let plan = ClientPlan {
            id,
            clients: args.clients,
            keys: args.keys,
            consistency: args.consistency.query(),
            timeout,
            seed: seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        // Each client gets its own connection pool to its server.
        let client = KvClient::new(&endpoints[id as usize % SERVERS]);
        tasks.spawn(workload::run_client(
            plan,
            client,
            values.clone(),
            start,
            deadline,
        ));
    }
    let nemesis = (!args.no_nemesis).then(|| {
        AbortOnDrop(tokio::spawn(nemesis::run(
            cluster.clone(),
            clients.clone(),
            rpc_addrs.clone(),
            nemesis::Schedule {
                interval: Duration::from_secs_f64(args.fault_interval_secs.max(0.1)),
                max_partition: Duration::from_secs_f64(args.max_partition_secs.max(2.0)),
                seed: seed.rotate_left(17),
                start,
                until: faults_until,
            },
        )))
    });

    let mut recorded = Recorded::default();
    while let Some(joined) = tasks.join_next().await {
        recorded.merge(joined.context("a client task panicked")?);
    }
    let faults = match nemesis {
        Some(mut task) => (&mut task.0).await.context("the nemesis panicked")??,
        None => Vec::new(),
    };
    // The nemesis has healed every partition and resumed every server by now.
    wait_for_leaders(&endpoints, Duration::from_secs(30))
        .await
        .context("the cluster did not recover after the faults")?;
    recorded.merge(workload::final_reads(&clients, args.keys, 1000, timeout, start).await);
    let elapsed = start.elapsed();
    drop(cluster);

    if let Some(path) = &args.history_out {
        let json = serde_json::to_vec_pretty(&recorded.history)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!("history written to {}", path.display());
    }

    print_counts(&recorded, elapsed);
    println!("\nfaults injected: {}", faults.len());
    for fault in &faults {
        println!("  {fault}");
    }

    let limits = Limits {
        steps_per_key: args.check_budget,
    };
    let checked: Vec<Operation> = if args.consistency == Consistency::Stale {
        // Stale reads may lag by design; CAS results must still be linearizable. The final
        // reads are `?consistent` and stay in.
        recorded
            .history
            .iter()
            .filter(|op| !matches!(op.call, Call::Read { .. }) || op.process >= 1000)
            .cloned()
            .collect()
    } else {
        recorded.history.clone()
    };
    let check_start = Instant::now();
    let verdict = linearizability::check(&checked, limits).context("malformed history")?;
    println!(
        "\nchecker: {} ops checked in {:.2}s",
        checked.len(),
        check_start.elapsed().as_secs_f64()
    );
    if args.consistency == Consistency::Stale {
        let all = linearizability::check(&recorded.history, limits)?;
        println!(
            "  (stale reads excluded; with them the history is {})",
            match all {
                Verdict::Linearizable => "still linearizable".to_owned(),
                Verdict::NotLinearizable { anomalies, .. } => format!(
                    "not linearizable on {} key(s), as stale mode allows",
                    anomalies.len()
                ),
                Verdict::Unknown { .. } => "undecided".to_owned(),
            }
        );
    }
    let finding = match verdict {
        Verdict::Linearizable => {
            println!("result: linearizable");
            Finding::Linearizable
        }
        Verdict::Unknown { undecided } => {
            println!("result: UNKNOWN, the search budget ran out on {undecided:?} (raise --check-budget)");
            Finding::Undecided
        }
        Verdict::NotLinearizable {
            anomalies,
            undecided,
        } => {
            println!("result: NOT LINEARIZABLE ({} key(s))\n", anomalies.len());
            for anomaly in &anomalies {
                println!("{anomaly}\n");
            }
            if !undecided.is_empty() {
                println!("undecided keys: {undecided:?}");
            }
            let kept = dir.keep();
            println!("server logs kept in {}", kept.display());
            return Ok(Finding::Anomalies);
        }
    };
    Ok(finding)
}

/// A task that is aborted if its handle is dropped unawaited (on an interrupt), so that it
/// releases the cluster it holds.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn print_counts(recorded: &Recorded, elapsed: Duration) {
    let unknown = recorded
        .history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    println!(
        "\noperations: {} recorded in {:.1}s ({} with unknown outcome)",
        recorded.history.len(),
        elapsed.as_secs_f64(),
        unknown
    );
    for ((op, outcome), n) in &recorded.counts {
        println!("  {op:<10} {outcome:<32} {n:>7}");
    }
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!(
        "--- {}\n{}\n",
        path.display(),
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}
