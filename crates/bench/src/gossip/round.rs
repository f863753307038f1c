//! One round of one system at one pool size: form a pool of N-1 agents, time the N-th agent's
//! join, measure a quiet steady window (CPU, RSS, traffic), then `kill -9` one agent and time
//! its detection; false failures are watched for throughout, in the answers and in the logs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::accounting::Accounting;
use super::members::{all_alive, status_of, Status};
use super::pool::{Flavor, Observation, Pool};
use crate::load::HttpClient;
use crate::procfs::CpuMark;
use crate::stats::median;

/// How often the harness asks every agent while timing a join or a detection.
pub const POLL: Duration = Duration::from_millis(50);
/// How often it asks while waiting for the first N-1 agents to form a pool.
const FORMATION_POLL: Duration = Duration::from_millis(250);
/// How long agent 0 may take to answer its first members request.
const FIRST_AGENT_DEADLINE: Duration = Duration::from_secs(30);
/// How long forming the pool of N-1 may take.
const FORMATION_DEADLINE: Duration = Duration::from_secs(180);
/// How long a join or a detection may take.
const MEASURE_DEADLINE: Duration = Duration::from_secs(120);

/// What a round is asked to do.
#[derive(Debug, Clone)]
pub struct RoundPlan {
    pub round: usize,
    pub n: usize,
    pub settle: Duration,
    /// The steady window starts no earlier than this long after agent 0 started.
    pub warmup: Duration,
    pub steady: Duration,
    pub ticks_per_sec: u64,
}

/// One agent's usage over the steady window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentUsage {
    pub name: String,
    pub rss_mib: f64,
    /// CPU seconds per minute (utime + stime, or schedstat), over the steady window.
    pub cpu_s_per_min: f64,
}

/// An agent reporting a member failed that the harness did not kill (or before it did).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FalseFailure {
    pub observer: String,
    pub member: String,
    /// `poll` (a members answer said `failed`) or `log` (the agent logged the failure).
    pub source: &'static str,
}

/// Everything one round measured; `None` where the round did not get that far or a wait hit
/// its deadline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GossipRun {
    pub round: usize,
    pub system: String,
    pub n: usize,
    /// From starting agents 2..N-1 until all N-1 agents list each other alive.
    pub formation_secs: Option<f64>,
    /// From starting the N-th agent until every agent (itself included) lists it alive.
    pub join_secs: Option<f64>,
    /// From starting the N-th agent until every agent lists all N alive.
    pub join_full_secs: Option<f64>,
    /// From starting the N-th agent until it first answered a members request (its start-up,
    /// part of `join_secs`).
    pub newcomer_up_secs: Option<f64>,
    /// Median over agents of CPU seconds per minute over the steady window.
    pub cpu_s_per_min: Option<f64>,
    /// Sum over agents divided by N.
    pub cpu_s_per_min_mean: Option<f64>,
    /// Median over agents of VmRSS at the end of the steady window.
    pub rss_mib: Option<f64>,
    pub rss_mib_max: Option<f64>,
    /// `schedstat` when every agent was read per thread, else `ticks` for some.
    pub cpu_source: Option<&'static str>,
    pub agents: Vec<AgentUsage>,
    /// Age of the pool (since agent 0 started) when the steady window began.
    pub steady_from_secs: Option<f64>,
    pub steady_secs: f64,
    /// UDP bytes sent by the pool's addresses per agent per second over the steady window.
    pub udp_bytes_per_agent_sec: Option<f64>,
    /// UDP datagrams per agent per second over the steady window.
    pub udp_packets_per_agent_sec: Option<f64>,
    /// TCP bytes to or from the gossip port per agent per second (serf's push-pull).
    pub tcp_bytes_per_agent_sec: Option<f64>,
    pub victim: Option<String>,
    /// From the `kill -9` until every other agent lists the victim failed.
    pub detect_secs: Option<f64>,
    /// From the `kill -9` until the first agent lists the victim failed.
    pub first_detect_secs: Option<f64>,
    /// Distinct (observer, member) pairs where a live member was reported failed.
    pub false_failures: usize,
    pub false_failure_detail: Vec<FalseFailure>,
    /// serf only (mesh logs suspicions at DEBUG): suspicions of members other than the victim.
    pub false_suspicions: Option<usize>,
    /// Times an agent refuted its own suspicion or death (serf `Refuting a ...`, mesh
    /// `declared down by the pool; rejoined`).
    pub refutations: usize,
    /// Members requests that failed (the new agent's before it first answered excluded).
    pub poll_errors: usize,
    pub first_poll_error: Option<String>,
    /// Why the round stopped early, if it did.
    pub error: Option<String>,
}

/// Runs one round; a failure inside the round is recorded in `error`, not returned, so the
/// other rounds still run. Agent logs are copied to `keep_logs` when given.
pub async fn run_round(
    flavor: &Flavor,
    plan: &RoundPlan,
    client: &HttpClient,
    accounting: Option<&Accounting>,
    keep_logs: Option<&Path>,
) -> anyhow::Result<GossipRun> {
    let mut run = GossipRun {
        round: plan.round,
        system: flavor.name().to_owned(),
        n: plan.n,
        steady_secs: plan.steady.as_secs_f64(),
        ..GossipRun::default()
    };
    let mut pool = Pool::new(flavor.clone())?;
    let mut watch = Watch::default();
    if let Err(e) = phases(
        flavor, plan, client, accounting, &mut pool, &mut run, &mut watch,
    )
    .await
    {
        run.error = Some(format!("{e:#}"));
    }
    // Give the logs a moment to be flushed by agents still running before reading them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    read_logs(&pool, &mut run, &mut watch);
    run.false_failure_detail = watch.false_failures.iter().cloned().collect();
    let pairs: BTreeSet<(&str, &str)> = watch
        .false_failures
        .iter()
        .map(|f| (f.observer.as_str(), f.member.as_str()))
        .collect();
    run.false_failures = pairs.len();
    run.poll_errors = watch.poll_errors;
    run.first_poll_error = watch.first_poll_error;
    if let Some(dir) = keep_logs {
        copy_logs(
            &pool,
            &dir.join(format!("{}-n{}-round{}", run.system, run.n, run.round)),
        )?;
    }
    Ok(run)
}

/// Watches every answer for failures of live members and counts failed requests.
#[derive(Debug, Default)]
struct Watch {
    /// The member the harness killed, once it did.
    victim: Option<String>,
    false_failures: BTreeSet<FalseFailure>,
    poll_errors: usize,
    first_poll_error: Option<String>,
    /// Whether failed requests count (not while the first N-1 agents start).
    counting_errors: bool,
    /// An agent whose errors are not counted (the new agent before its first answer).
    starting: Option<usize>,
    /// When the new agent first answered.
    started_answering: Option<Instant>,
}

impl Watch {
    fn note(&mut self, names: &[String], sweep: &[Option<Observation>]) {
        for (i, obs) in sweep.iter().enumerate() {
            let Some(obs) = obs else { continue };
            match &obs.members {
                Ok(view) => {
                    if self.starting == Some(i) {
                        self.starting = None;
                        self.started_answering = Some(obs.at);
                    }
                    for m in view.iter().filter(|m| m.status == Status::Failed) {
                        if self.victim.as_deref() != Some(m.name.as_str()) {
                            self.false_failures.insert(FalseFailure {
                                observer: names[i].clone(),
                                member: m.name.clone(),
                                source: "poll",
                            });
                        }
                    }
                }
                Err(e) if self.counting_errors && self.starting != Some(i) => {
                    self.poll_errors += 1;
                    if self.first_poll_error.is_none() {
                        self.first_poll_error = Some(format!("{}: {e:#}", names[i]));
                    }
                }
                Err(_) => {}
            }
        }
    }
}

/// One sweep: every live agent asked once, the answers watched.
async fn sweep(
    pool: &mut Pool,
    client: &HttpClient,
    watch: &mut Watch,
) -> anyhow::Result<Vec<Option<Observation>>> {
    pool.ensure_running()?;
    let sweep = pool.observe(client).await;
    let names: Vec<String> = pool.agents().iter().map(|a| a.name.clone()).collect();
    watch.note(&names, &sweep);
    Ok(sweep)
}

/// Sleeps what is left of `period` since `started`.
async fn pace(started: Instant, period: Duration) {
    if let Some(left) = period.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
}

/// The earliest time each agent's answer satisfied `ok`, kept across sweeps.
fn note_first(
    firsts: &mut [Option<Instant>],
    sweep: &[Option<Observation>],
    ok: impl Fn(&[super::members::MemberView]) -> bool,
) {
    for (first, obs) in firsts.iter_mut().zip(sweep) {
        if first.is_some() {
            continue;
        }
        if let Some(Observation {
            at,
            members: Ok(view),
        }) = obs
        {
            if ok(view) {
                *first = Some(*at);
            }
        }
    }
}

/// Seconds from `start` to the latest of `firsts` over the agents in `who`, when all have one.
fn last_of(firsts: &[Option<Instant>], who: &[usize], start: Instant) -> Option<f64> {
    who.iter()
        .map(|&i| firsts[i].map(|t| t.saturating_duration_since(start).as_secs_f64()))
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::max))
}

async fn phases(
    flavor: &Flavor,
    plan: &RoundPlan,
    client: &HttpClient,
    accounting: Option<&Accounting>,
    pool: &mut Pool,
    run: &mut GossipRun,
    watch: &mut Watch,
) -> anyhow::Result<()> {
    let n = plan.n;
    if n < 3 {
        bail!("a pool needs at least 3 agents (a seed, a victim and an observer)");
    }
    let name = |i: usize| flavor.node_name(i);

    // 1. Form a pool of N-1 through agent 0.
    let pool_started = Instant::now();
    pool.spawn()?;
    pool.wait_answering(0, client, FIRST_AGENT_DEADLINE).await?;
    let formed_from = Instant::now();
    for _ in 1..n - 1 {
        pool.spawn()?;
    }
    let first: Vec<String> = (0..n - 1).map(name).collect();
    loop {
        let started = Instant::now();
        let sweep = sweep(pool, client, watch).await?;
        let formed = sweep.iter().all(|obs| {
            matches!(obs, Some(Observation { members: Ok(view), .. })
                if all_alive(view, first.iter().map(String::as_str)))
        });
        if formed {
            run.formation_secs = Some(formed_from.elapsed().as_secs_f64());
            break;
        }
        if formed_from.elapsed() > FORMATION_DEADLINE {
            bail!("{n}-1 agents did not all see each other within {FORMATION_DEADLINE:?}");
        }
        pace(started, FORMATION_POLL).await;
    }
    eprintln!(
        "  {} n={n}: {} agents formed a pool in {:.1} s",
        flavor.name(),
        n - 1,
        run.formation_secs.unwrap_or_default()
    );
    watch.counting_errors = true;
    tokio::time::sleep(plan.settle).await;

    // 2. Join: the N-th agent.
    let everyone: Vec<String> = (0..n).map(name).collect();
    let newcomer = name(n - 1);
    let join_start = Instant::now();
    pool.spawn()?;
    watch.starting = Some(n - 1);
    let mut sees_new = vec![None; n];
    let mut sees_all = vec![None; n];
    let all: Vec<usize> = (0..n).collect();
    while join_start.elapsed() < MEASURE_DEADLINE {
        let started = Instant::now();
        let sweep = sweep(pool, client, watch).await?;
        note_first(&mut sees_new, &sweep, |v| {
            status_of(v, &newcomer) == Some(Status::Alive)
        });
        note_first(&mut sees_all, &sweep, |v| {
            all_alive(v, everyone.iter().map(String::as_str))
        });
        run.join_secs = last_of(&sees_new, &all, join_start);
        run.join_full_secs = last_of(&sees_all, &all, join_start);
        if run.join_secs.is_some() && run.join_full_secs.is_some() {
            break;
        }
        pace(started, POLL).await;
    }
    watch.starting = None;
    run.newcomer_up_secs = watch
        .started_answering
        .map(|t| t.saturating_duration_since(join_start).as_secs_f64());
    let Some(join) = run.join_secs else {
        bail!("not every agent listed {newcomer} alive within {MEASURE_DEADLINE:?}");
    };
    eprintln!(
        "  {} n={n}: every agent lists {newcomer} alive after {join:.2} s (it answered after {:.2} s)",
        flavor.name(),
        run.newcomer_up_secs.unwrap_or(f64::NAN)
    );
    tokio::time::sleep(plan.settle).await;

    // 3. The quiet window: nothing asks the agents anything. It waits for the periodic work
    //    that only starts after a while (serf's first push-pull comes 30-60 s after start).
    if let Some(left) = plan.warmup.checked_sub(pool_started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    run.steady_from_secs = Some(pool_started.elapsed().as_secs_f64());
    steady_window(pool, plan, flavor, accounting, run).await?;

    // 4. Detection: kill -9 one agent that is neither agent 0 (the server or the seed) nor
    //    the newcomer.
    let victim = n / 2;
    let victim_name = name(victim);
    run.victim = Some(victim_name.clone());
    watch.victim = Some(victim_name.clone());
    let killed_at = Instant::now();
    pool.kill(victim);
    let observers: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
    let mut sees_failed = vec![None; n];
    while killed_at.elapsed() < MEASURE_DEADLINE {
        let started = Instant::now();
        let sweep = sweep(pool, client, watch).await?;
        note_first(&mut sees_failed, &sweep, |v| {
            status_of(v, &victim_name) == Some(Status::Failed)
        });
        run.first_detect_secs = sees_failed
            .iter()
            .flatten()
            .map(|t| t.saturating_duration_since(killed_at).as_secs_f64())
            .reduce(f64::min);
        run.detect_secs = last_of(&sees_failed, &observers, killed_at);
        if run.detect_secs.is_some() {
            break;
        }
        pace(started, POLL).await;
    }
    match run.detect_secs {
        Some(d) => eprintln!(
            "  {} n={n}: every agent lists {victim_name} failed {d:.2} s after kill -9",
            flavor.name()
        ),
        None => bail!(
            "not every agent listed {victim_name} failed within {MEASURE_DEADLINE:?} \
             ({} of {} did)",
            sees_failed.iter().flatten().count(),
            observers.len()
        ),
    }
    Ok(())
}

async fn steady_window(
    pool: &mut Pool,
    plan: &RoundPlan,
    flavor: &Flavor,
    accounting: Option<&Accounting>,
    run: &mut GossipRun,
) -> anyhow::Result<()> {
    let pids: Vec<u32> = pool.agents().iter().map(|a| a.pid).collect();
    let bytes_before = accounting
        .map(|a| a.read(flavor.accounting()))
        .transpose()?;
    let cpu_before = pids
        .iter()
        .map(|&pid| CpuMark::read(pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    tokio::time::sleep(plan.steady).await;
    let cpu_after = pids
        .iter()
        .map(|&pid| CpuMark::read(pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes_after = accounting
        .map(|a| a.read(flavor.accounting()))
        .transpose()?;
    let secs = started.elapsed().as_secs_f64();
    pool.ensure_running()?;

    let mut sources = BTreeSet::new();
    run.agents = pool
        .agents()
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|(agent, (before, after))| {
            let (ns, source) = before.ns_until(after, plan.ticks_per_sec);
            sources.insert(source);
            let usage = crate::proc::sample(agent.pid)
                .with_context(|| format!("reading {}'s RSS", agent.name))?;
            Ok(AgentUsage {
                name: agent.name.clone(),
                rss_mib: usage.rss_kib as f64 / 1024.0,
                cpu_s_per_min: ns as f64 / 1e9 / secs * 60.0,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    run.steady_secs = secs;
    run.cpu_source = Some(if sources.contains("ticks") {
        "ticks"
    } else {
        "schedstat"
    });
    let cpu: Vec<f64> = run.agents.iter().map(|a| a.cpu_s_per_min).collect();
    let rss: Vec<f64> = run.agents.iter().map(|a| a.rss_mib).collect();
    run.cpu_s_per_min = median(&cpu);
    run.cpu_s_per_min_mean = Some(cpu.iter().sum::<f64>() / cpu.len().max(1) as f64);
    run.rss_mib = median(&rss);
    run.rss_mib_max = rss.iter().copied().reduce(f64::max);
    if let (Some(before), Some(after)) = (bytes_before, bytes_after) {
        let per_agent_sec = |b: u64, a: u64| a.saturating_sub(b) as f64 / plan.n as f64 / secs;
        run.udp_bytes_per_agent_sec = Some(per_agent_sec(before.udp, after.udp));
        run.udp_packets_per_agent_sec = Some(per_agent_sec(before.udp_packets, after.udp_packets));
        run.tcp_bytes_per_agent_sec = Some(per_agent_sec(before.tcp, after.tcp));
    }
    eprintln!(
        "  {} n={}: steady {secs:.0} s: median {:.3} CPU s/min, {:.1} MiB RSS per agent",
        flavor.name(),
        plan.n,
        run.cpu_s_per_min.unwrap_or_default(),
        run.rss_mib.unwrap_or_default()
    );
    Ok(())
}

/// Adds what the logs say: failures of members other than the victim, suspicions, refutations.
fn read_logs(pool: &Pool, run: &mut GossipRun, watch: &mut Watch) {
    let victim = run.victim.as_deref();
    let mut suspicions = 0;
    for (observer, found) in pool.log_findings() {
        for member in found.failed.iter().filter(|m| Some(m.as_str()) != victim) {
            watch.false_failures.insert(FalseFailure {
                observer: observer.clone(),
                member: member.clone(),
                source: "log",
            });
        }
        suspicions += found
            .suspected
            .iter()
            .filter(|m| Some(m.as_str()) != victim)
            .count();
        run.refutations += found.refuted;
    }
    run.false_suspicions = (run.system == "serf").then_some(suspicions);
}

fn copy_logs(pool: &Pool, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(pool.dir()).context("listing the pool's directory")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            let file = path.file_name().expect("a listed file has a name");
            std::fs::copy(&path, to.join(file))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}
