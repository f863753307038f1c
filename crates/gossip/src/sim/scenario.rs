//! The benchmark scenario: a pool forms through one seed, then one member is killed.

use std::time::Duration;

use super::Sim;

/// What [`run_scenario`] measured, in simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    /// Pool size.
    pub nodes: usize,
    /// From the first join until every member sees every member alive; `None` if that never happened.
    pub dissemination_time: Option<Duration>,
    /// From the crash until every other member sees the crashed one failed; `None` if that never happened.
    pub detection_time: Option<Duration>,
    /// From the crash until the first member sees it failed.
    pub first_detection_time: Option<Duration>,
    /// Failures declared about members that never crashed.
    pub false_failures: usize,
    /// Bytes sent per node per simulated second, over the whole run (formation is the expensive part).
    pub bytes_per_node_per_sec: f64,
    /// Bytes sent per node per simulated second while nothing happens (a quiet window after formation).
    pub steady_bytes_per_node_per_sec: f64,
}

/// Longest the pool may take to form before the scenario gives up on it.
const FORMATION_LIMIT: Duration = Duration::from_secs(600);

/// Longest detection may take before the scenario gives up on it.
const DETECTION_LIMIT: Duration = Duration::from_secs(120);

/// The quiet window in which steady-state traffic is measured.
const QUIET_WINDOW: Duration = Duration::from_secs(10);

/// Runs `n` nodes with default configuration at `loss` packet loss: every node joins through node 0 within
/// the first second, the pool converges and stays quiet for ten seconds, then one node crashes and the
/// others detect it.
pub fn run_scenario(n: usize, loss: f64, seed: u64) -> SimReport {
    assert!(
        n >= 3,
        "the scenario needs a seed, a victim and an observer"
    );
    let mut sim = Sim::new(seed);
    sim.set_loss(loss);
    sim.add_nodes(n, |_| {});
    let stagger = Duration::from_secs(1) / u32::try_from(n).expect("pool size fits u32");
    for index in 1..n {
        sim.run_for(stagger);
        sim.join(index, 0);
    }
    let dissemination_time = sim
        .run_until(FORMATION_LIMIT, Sim::converged)
        .map(|waited| waited + stagger * u32::try_from(n - 1).expect("pool size fits u32"));

    let before_quiet = sim.bytes_sent();
    sim.run_for(QUIET_WINDOW);
    let quiet_bytes = sim.bytes_sent() - before_quiet;
    let steady_bytes_per_node_per_sec = quiet_bytes as f64 / n as f64 / QUIET_WINDOW.as_secs_f64();

    let victim = n / 2;
    let victim_name = sim.gossip(victim).name().to_owned();
    sim.crash(victim);
    let crashed_at = sim.now();
    let observers = sim.live_nodes();
    let detected_by_all = |sim: &Sim| {
        observers.iter().all(|&i| {
            sim.gossip(i)
                .member(&victim_name)
                .is_some_and(|m| m.status == crate::MemberStatus::Failed)
        })
    };
    let detection_time = sim.run_until(DETECTION_LIMIT, detected_by_all);
    let first_detection_time = sim
        .failures()
        .iter()
        .find(|failure| failure.member == victim_name && failure.at >= crashed_at)
        .map(|failure| failure.at - crashed_at);
    let false_failures = sim
        .failures()
        .iter()
        .filter(|failure| failure.member != victim_name)
        .count();
    let seconds = sim.now().as_secs_f64().max(f64::EPSILON);
    SimReport {
        nodes: n,
        dissemination_time,
        detection_time,
        first_detection_time,
        false_failures,
        bytes_per_node_per_sec: sim.bytes_sent() as f64 / n as f64 / seconds,
        steady_bytes_per_node_per_sec,
    }
}
