//! The nemesis: every few seconds, kill -9 a server and restart it, or SIGSTOP one (often the
//! leader) for longer than an election timeout and SIGCONT it, or, when the servers run in
//! network namespaces, cut one (often the leader) off from the other two for a few seconds and
//! reconnect it. One fault at a time; every fault is undone before the next.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::client::KvClient;
use crate::cluster::Cluster;

/// One fault, for the report.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Since the run's start.
    pub at: Duration,
    pub kind: FaultKind,
    pub server: usize,
    pub was_leader: bool,
    /// How long the server was down or stopped.
    pub lasted: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Kill,
    Pause,
    /// Cut off from the other servers, both ways; its clients still reach it.
    Partition,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.was_leader { " (leader)" } else { "" };
        let what = match self.kind {
            FaultKind::Kill => "kill -9, restarted after",
            FaultKind::Pause => "SIGSTOP, SIGCONT after",
            FaultKind::Partition => "partition (cut off from the others), healed after",
        };
        write!(
            f,
            "t={:>6.2}s  server {}{who}: {what} {:.2}s",
            self.at.as_secs_f64(),
            self.server,
            self.lasted.as_secs_f64()
        )
    }
}

/// When and how the nemesis strikes.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Mean time between faults (jittered ±50%).
    pub interval: Duration,
    /// Longest partition (they last from 2 s up to this).
    pub max_partition: Duration,
    pub seed: u64,
    /// The run's start, for the report.
    pub start: Instant,
    /// No fault starts after this.
    pub until: Instant,
}

/// Injects faults until `schedule.until` (partitions too if the cluster can cut servers off),
/// then leaves every server running, resumed and connected, also when it fails.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    clients: Vec<KvClient>,
    rpc_addrs: Vec<String>,
    schedule: Schedule,
) -> anyhow::Result<Vec<Fault>> {
    let faults = inject(cluster.clone(), clients, rpc_addrs, schedule).await;
    let mut cluster = cluster.lock().expect("the nemesis alone locks the cluster");
    let healed = cluster.heal_all();
    let faults = faults?;
    healed.context("healing the partitions after the faults")?;
    Ok(faults)
}

async fn inject(
    cluster: Arc<Mutex<Cluster>>,
    clients: Vec<KvClient>,
    rpc_addrs: Vec<String>,
    schedule: Schedule,
) -> anyhow::Result<Vec<Fault>> {
    let Schedule {
        interval,
        max_partition,
        seed,
        start,
        until,
    } = schedule;
    let mut rng = StdRng::seed_from_u64(seed);
    let partitions = cluster
        .lock()
        .expect("the nemesis alone locks the cluster")
        .can_partition();
    let mut faults = Vec::new();
    loop {
        let jitter = rng.random_range(0.5..1.5);
        let wait = interval.mul_f64(jitter);
        if Instant::now() + wait >= until {
            break;
        }
        tokio::time::sleep(wait).await;

        let leader = leader_index(&clients, &rpc_addrs).await;
        let kind = if partitions {
            match rng.random_range(0..3) {
                0 => FaultKind::Kill,
                1 => FaultKind::Pause,
                _ => FaultKind::Partition,
            }
        } else if rng.random_bool(0.5) {
            FaultKind::Kill
        } else {
            FaultKind::Pause
        };
        let prefer_leader = rng.random_bool(if kind == FaultKind::Kill { 0.5 } else { 0.7 });
        let server = match leader {
            Some(l) if prefer_leader => l,
            _ => rng.random_range(0..rpc_addrs.len()),
        };
        let lasted = match kind {
            FaultKind::Kill => Duration::from_millis(rng.random_range(200..2000)),
            // Election timeouts are 300-600 ms at `-raft-multiplier 1`.
            FaultKind::Pause => Duration::from_millis(rng.random_range(1000..3000)),
            // Long enough for the majority to elect a leader and serve, and for gossip to see
            // the server fail (suspicion takes a few seconds); healed by `until` when possible
            // so that clients see the reconnection.
            FaultKind::Partition => {
                Duration::from_secs_f64(rng.random_range(2.0..=max_partition.as_secs_f64()))
                    .min(until.saturating_duration_since(Instant::now()))
                    .max(Duration::from_secs(1))
            }
        };
        let at = start.elapsed();
        {
            let mut cluster = cluster.lock().expect("the nemesis alone locks the cluster");
            match kind {
                FaultKind::Kill => cluster.servers[server].kill9()?,
                FaultKind::Pause => cluster.servers[server].pause()?,
                FaultKind::Partition => cluster.isolate(server)?,
            }
        }
        tokio::time::sleep(lasted).await;
        {
            let mut cluster = cluster.lock().expect("the nemesis alone locks the cluster");
            match kind {
                FaultKind::Kill => cluster.restart(server)?,
                FaultKind::Pause => cluster.servers[server].resume()?,
                FaultKind::Partition => cluster.heal(server)?,
            }
        }
        faults.push(Fault {
            at,
            kind,
            server,
            was_leader: leader == Some(server),
            lasted,
        });
    }
    Ok(faults)
}

/// Which server leads, by asking them in turn.
async fn leader_index(clients: &[KvClient], rpc_addrs: &[String]) -> Option<usize> {
    for client in clients {
        if let Some(leader) = client.leader().await {
            return rpc_addrs.iter().position(|a| *a == leader);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_as_what_happened() {
        let fault = |kind, was_leader| Fault {
            at: Duration::from_millis(6130),
            kind,
            server: 2,
            was_leader,
            lasted: Duration::from_millis(3870),
        };
        assert_eq!(
            fault(FaultKind::Partition, true).to_string(),
            "t=  6.13s  server 2 (leader): partition (cut off from the others), healed after 3.87s"
        );
        assert_eq!(
            fault(FaultKind::Kill, false).to_string(),
            "t=  6.13s  server 2: kill -9, restarted after 3.87s"
        );
    }
}
