//! The nemesis: every few seconds, kill -9 a server and restart it, or SIGSTOP one (often the
//! leader) for longer than an election timeout and SIGCONT it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.was_leader { " (leader)" } else { "" };
        let what = match self.kind {
            FaultKind::Kill => "kill -9, restarted after",
            FaultKind::Pause => "SIGSTOP, SIGCONT after",
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

/// Injects faults until `until`, then leaves every server running and resumed.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    clients: Vec<KvClient>,
    rpc_addrs: Vec<String>,
    interval: Duration,
    seed: u64,
    start: Instant,
    until: Instant,
) -> anyhow::Result<Vec<Fault>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    loop {
        let jitter = rng.random_range(0.5..1.5);
        let wait = interval.mul_f64(jitter);
        if Instant::now() + wait >= until {
            break;
        }
        tokio::time::sleep(wait).await;

        let leader = leader_index(&clients, &rpc_addrs).await;
        let kind = if rng.random_bool(0.5) {
            FaultKind::Kill
        } else {
            FaultKind::Pause
        };
        let prefer_leader = rng.random_bool(if kind == FaultKind::Pause { 0.7 } else { 0.5 });
        let server = match leader {
            Some(l) if prefer_leader => l,
            _ => rng.random_range(0..rpc_addrs.len()),
        };
        let lasted = match kind {
            FaultKind::Kill => Duration::from_millis(rng.random_range(200..2000)),
            // Election timeouts are 300-600 ms at `-raft-multiplier 1`.
            FaultKind::Pause => Duration::from_millis(rng.random_range(1000..3000)),
        };
        let at = start.elapsed();
        {
            let mut cluster = cluster.lock().expect("the nemesis alone locks the cluster");
            match kind {
                FaultKind::Kill => cluster.servers[server].kill9()?,
                FaultKind::Pause => cluster.servers[server].pause()?,
            }
        }
        tokio::time::sleep(lasted).await;
        {
            let mut cluster = cluster.lock().expect("the nemesis alone locks the cluster");
            match kind {
                FaultKind::Kill => cluster.restart(server)?,
                FaultKind::Pause => cluster.servers[server].resume()?,
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
