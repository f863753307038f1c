//! One measured cell per (round, operation, concurrency), one burst per round against the
//! default CSR limit, their medians over rounds, and the Markdown tables of `mesh-bench ca`.

use serde::Serialize;

use crate::report::{fmt_num, markdown_table, Align};
use crate::stats::{median, percentile};

use super::requests::{Drain, Outcome};

/// What a cell sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// First-time leaf requests through the client agent: one signing each.
    Sign,
    /// Authorize decisions from the client agent's cached intentions.
    Authorize,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Sign => "leaf signing",
            Op::Authorize => "authorize",
        })
    }
}

/// CPU time of both processes over one cell, and their VmRSS after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub server_cpu_ns: Option<u64>,
    pub client_cpu_ns: Option<u64>,
    /// `schedstat` (per-thread ns) or `ticks` (utime+stime), the coarser of the two readings.
    pub cpu_source: Option<&'static str>,
    pub server_rss_mib: Option<f64>,
    pub client_rss_mib: Option<f64>,
}

/// One cell of one round.
#[derive(Debug, Clone, Serialize)]
pub struct CaRun {
    pub round: usize,
    pub op: Op,
    pub concurrency: usize,
    pub outcome: Option<Outcome>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub usage: Usage,
    pub error: Option<String>,
}

fn per_op_us(ns: Option<u64>, ops: u64) -> Option<f64> {
    let ns = ns?;
    (ops > 0).then(|| ns as f64 / 1e3 / ops as f64)
}

impl CaRun {
    pub fn new(round: usize, op: Op, concurrency: usize) -> Self {
        CaRun {
            round,
            op,
            concurrency,
            outcome: None,
            p50_ms: None,
            p99_ms: None,
            usage: Usage::default(),
            error: None,
        }
    }

    /// Records the requests' outcome and its latency percentiles.
    pub fn set_outcome(&mut self, outcome: Outcome) {
        let ms = |p| percentile(&outcome.latencies_us, p).map(|us| us as f64 / 1e3);
        self.p50_ms = ms(50.0);
        self.p99_ms = ms(99.0);
        self.outcome = Some(outcome);
    }

    fn ok(&self) -> u64 {
        self.outcome.as_ref().map_or(0, |o| o.ok)
    }

    pub fn ops_per_sec(&self) -> Option<f64> {
        let o = self.outcome.as_ref()?;
        (o.elapsed_secs > 0.0).then(|| o.ok as f64 / o.elapsed_secs)
    }

    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        per_op_us(self.usage.server_cpu_ns, self.ok())
    }

    pub fn client_cpu_us_per_op(&self) -> Option<f64> {
        per_op_us(self.usage.client_cpu_ns, self.ok())
    }
}

/// Medians over the rounds of one (operation, concurrency); counts summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaSummary {
    pub op: Op,
    pub concurrency: usize,
    pub rounds: usize,
    pub server_cpu_us_per_op: Option<f64>,
    pub client_cpu_us_per_op: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub client_rss_mib: Option<f64>,
    pub ops_per_sec: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Successful operations, summed over rounds.
    pub ok: u64,
    /// 429s and failures, summed over rounds.
    pub rate_limited: u64,
    pub errors: u64,
    pub failed_rounds: usize,
}

pub fn summarize(runs: &[CaRun]) -> Vec<CaSummary> {
    let mut keys: Vec<(Op, usize)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.op, r.concurrency)) {
            keys.push((r.op, r.concurrency));
        }
    }
    keys.sort_by_key(|&(op, c)| (op == Op::Authorize, c));
    keys.into_iter()
        .map(|(op, concurrency)| {
            let cell: Vec<&CaRun> = runs
                .iter()
                .filter(|r| r.op == op && r.concurrency == concurrency)
                .collect();
            let med = |f: &dyn Fn(&CaRun) -> Option<f64>| {
                median(&cell.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let sum = |f: &dyn Fn(&Outcome) -> u64| {
                cell.iter()
                    .filter_map(|r| r.outcome.as_ref())
                    .map(f)
                    .sum::<u64>()
            };
            CaSummary {
                op,
                concurrency,
                rounds: cell.len(),
                server_cpu_us_per_op: med(&|r| r.server_cpu_us_per_op()),
                client_cpu_us_per_op: med(&|r| r.client_cpu_us_per_op()),
                server_rss_mib: med(&|r| r.usage.server_rss_mib),
                client_rss_mib: med(&|r| r.usage.client_rss_mib),
                ops_per_sec: med(&|r| r.ops_per_sec()),
                p50_ms: med(&|r| r.p50_ms),
                p99_ms: med(&|r| r.p99_ms),
                ok: sum(&|o| o.ok),
                rate_limited: sum(&|o| o.rate_limited),
                errors: sum(&|o| o.errors),
                failed_rounds: cell
                    .iter()
                    .filter(|r| r.error.is_some() || r.outcome.is_none())
                    .count(),
            }
        })
        .collect()
}

/// Both processes' RSS in one round after the warm-up, before the first cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Baseline {
    pub round: usize,
    pub server_rss_mib: f64,
    pub client_rss_mib: f64,
}

/// How much each process's RSS grew per leaf signed: from the baseline to after a round's
/// last signing cell, over that round's signings; medians over rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RssPerLeaf {
    pub client_kib: Option<f64>,
    pub server_kib: Option<f64>,
    pub client_baseline_mib: Option<f64>,
    pub server_baseline_mib: Option<f64>,
}

pub fn rss_per_leaf(baselines: &[Baseline], runs: &[CaRun]) -> RssPerLeaf {
    let mut client = Vec::new();
    let mut server = Vec::new();
    for b in baselines {
        let signs: Vec<&CaRun> = runs
            .iter()
            .filter(|r| r.round == b.round && r.op == Op::Sign)
            .collect();
        let leaves: u64 = signs.iter().map(|r| r.ok()).sum();
        let Some(last) = signs.last().filter(|_| leaves > 0) else {
            continue;
        };
        let growth =
            |after: Option<f64>, base: f64| after.map(|a| (a - base) * 1024.0 / leaves as f64);
        client.extend(growth(last.usage.client_rss_mib, b.client_rss_mib));
        server.extend(growth(last.usage.server_rss_mib, b.server_rss_mib));
    }
    let base = |f: fn(&Baseline) -> f64| median(&baselines.iter().map(f).collect::<Vec<_>>());
    RssPerLeaf {
        client_kib: median(&client),
        server_kib: median(&server),
        client_baseline_mib: base(|b| b.client_rss_mib),
        server_baseline_mib: base(|b| b.server_rss_mib),
    }
}

/// One round's burst of first-time leaf requests against the server's default CSR limit.
#[derive(Debug, Clone, Serialize)]
pub struct LimitRun {
    pub round: usize,
    /// `CSRMaxPerSecond` as the server reported it.
    pub csr_max_per_second: Option<f64>,
    pub requests: u64,
    pub concurrency: usize,
    /// The first answer to each request: 200, 429 or another failure.
    pub burst: Option<Outcome>,
    /// Until the refused services had their leaves too (the agent retries by itself).
    pub drain: Option<Drain>,
    /// The server's CPU from the burst's start until every service had its leaf.
    pub server_cpu_ns: Option<u64>,
    pub error: Option<String>,
}

impl LimitRun {
    /// Leaves issued per second from the burst's start until the last one.
    pub fn signings_per_sec(&self) -> Option<f64> {
        let secs = self.drain.as_ref()?.all_signed_secs?;
        (secs > 0.0).then(|| self.requests as f64 / secs)
    }

    pub fn server_cpu_us_per_signing(&self) -> Option<f64> {
        self.drain.as_ref()?.all_signed_secs?;
        per_op_us(self.server_cpu_ns, self.requests)
    }
}

/// Medians over the rounds of the bursts; counts summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitSummary {
    pub csr_max_per_second: Option<f64>,
    pub rounds: usize,
    pub requests: u64,
    pub concurrency: usize,
    /// Summed over rounds.
    pub ok_at_once: u64,
    pub rate_limited_at_once: u64,
    pub errors: u64,
    pub unsigned: u64,
    pub all_signed_secs: Option<f64>,
    pub signings_per_sec: Option<f64>,
    pub server_cpu_us_per_signing: Option<f64>,
}

pub fn summarize_limit(runs: &[LimitRun]) -> Option<LimitSummary> {
    let first = runs.first()?;
    let med = |f: &dyn Fn(&LimitRun) -> Option<f64>| {
        median(&runs.iter().filter_map(f).collect::<Vec<_>>())
    };
    let bursts = || runs.iter().filter_map(|r| r.burst.as_ref());
    let drains = || runs.iter().filter_map(|r| r.drain.as_ref());
    Some(LimitSummary {
        csr_max_per_second: med(&|r| r.csr_max_per_second),
        rounds: runs.len(),
        requests: first.requests,
        concurrency: first.concurrency,
        ok_at_once: bursts().map(|b| b.ok).sum(),
        rate_limited_at_once: bursts().map(|b| b.rate_limited).sum(),
        errors: bursts().map(|b| b.errors).sum::<u64>()
            + drains().map(|d| d.poll_errors).sum::<u64>(),
        unsigned: drains().map(|d| d.unsigned).sum(),
        all_signed_secs: med(&|r| r.drain.as_ref().and_then(|d| d.all_signed_secs)),
        signings_per_sec: med(&|r| r.signings_per_sec()),
        server_cpu_us_per_signing: med(&|r| r.server_cpu_us_per_signing()),
    })
}

pub fn summary_table(summary: &[CaSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("op", Left),
        ("concurrency", Right),
        ("server CPU µs/op", Right),
        ("client CPU µs/op", Right),
        ("server RSS MiB", Right),
        ("client RSS MiB", Right),
        ("ops/s", Right),
        ("p50 ms", Right),
        ("p99 ms", Right),
        ("ops", Right),
        ("errors", Right),
    ];
    let rows: Vec<Vec<String>> = summary
        .iter()
        .map(|r| {
            vec![
                r.op.to_string(),
                r.concurrency.to_string(),
                fmt_num(r.server_cpu_us_per_op, 2),
                fmt_num(r.client_cpu_us_per_op, 2),
                fmt_num(r.server_rss_mib, 1),
                fmt_num(r.client_rss_mib, 1),
                fmt_num(r.ops_per_sec, 0),
                fmt_num(r.p50_ms, 3),
                fmt_num(r.p99_ms, 3),
                r.ok.to_string(),
                (r.errors + r.rate_limited).to_string(),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

pub fn limit_table(s: &LimitSummary) -> String {
    use Align::Right;
    let headers = [
        ("CSRMaxPerSecond", Right),
        ("leaf requests", Right),
        ("concurrency", Right),
        ("200 at once", Right),
        ("429 at once", Right),
        ("other errors", Right),
        ("s until all signed", Right),
        ("signings/s", Right),
        ("server CPU µs/signing", Right),
    ];
    let row = vec![
        fmt_num(s.csr_max_per_second, 0),
        format!("{} × {}", s.rounds, s.requests),
        s.concurrency.to_string(),
        s.ok_at_once.to_string(),
        s.rate_limited_at_once.to_string(),
        s.errors.to_string(),
        fmt_num(s.all_signed_secs, 2),
        fmt_num(s.signings_per_sec, 1),
        fmt_num(s.server_cpu_us_per_signing, 1),
    ];
    markdown_table(&headers, &[row])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, op: Op, c: usize, ok: u64, server_ns: u64, client_ns: u64) -> CaRun {
        let mut r = CaRun::new(round, op, c);
        r.set_outcome(Outcome {
            ok,
            rate_limited: 0,
            errors: 1,
            latencies_us: (1..=ok).map(|n| n * 10).collect(),
            elapsed_secs: 2.0,
            first_error: Some("x".into()),
        });
        r.usage = Usage {
            server_cpu_ns: Some(server_ns),
            client_cpu_ns: Some(client_ns),
            cpu_source: Some("schedstat"),
            server_rss_mib: Some(40.0 + round as f64),
            client_rss_mib: Some(20.0),
        };
        r
    }

    #[test]
    fn per_op_numbers() {
        let r = run(1, Op::Sign, 16, 100, 50_000_000, 10_000_000);
        assert_eq!(r.server_cpu_us_per_op(), Some(500.0));
        assert_eq!(r.client_cpu_us_per_op(), Some(100.0));
        assert_eq!(r.ops_per_sec(), Some(50.0));
        assert_eq!((r.p50_ms, r.p99_ms), (Some(0.5), Some(0.99)));
        let empty = CaRun::new(1, Op::Sign, 1);
        assert_eq!(empty.server_cpu_us_per_op(), None);
        assert_eq!(empty.ops_per_sec(), None);
    }

    #[test]
    fn medians_sums_and_order() {
        let runs = vec![
            run(1, Op::Authorize, 16, 1000, 1_000, 5_000_000),
            run(1, Op::Sign, 16, 100, 40_000_000, 10_000_000),
            run(1, Op::Sign, 1, 10, 5_000_000, 1_000_000),
            run(2, Op::Authorize, 16, 1000, 3_000, 7_000_000),
            run(2, Op::Sign, 16, 100, 60_000_000, 10_000_000),
        ];
        let s = summarize(&runs);
        let keys: Vec<(Op, usize)> = s.iter().map(|r| (r.op, r.concurrency)).collect();
        assert_eq!(keys, [(Op::Sign, 1), (Op::Sign, 16), (Op::Authorize, 16)]);
        assert_eq!(s[1].server_cpu_us_per_op, Some(500.0));
        assert_eq!(s[1].server_rss_mib, Some(41.5));
        assert_eq!((s[1].ok, s[1].errors, s[1].rounds), (200, 2, 2));
        assert_eq!(s[2].server_cpu_us_per_op, Some(0.002));
        assert_eq!(s[2].client_cpu_us_per_op, Some(6.0));
        let table = summary_table(&s);
        assert!(table.contains("| leaf signing |          16 |           500.00 |"));
        assert!(table.contains("| authorize    |          16 |             0.00 |"));
    }

    #[test]
    fn limit_bursts() {
        let burst = |ok, limited| Outcome {
            ok,
            rate_limited: limited,
            elapsed_secs: 0.6,
            ..Outcome::default()
        };
        let drain = |secs| Drain {
            all_signed_secs: Some(secs),
            polls_rate_limited: 7,
            ..Drain::default()
        };
        let runs = vec![
            LimitRun {
                round: 1,
                csr_max_per_second: Some(50.0),
                requests: 200,
                concurrency: 64,
                burst: Some(burst(30, 170)),
                drain: Some(drain(4.0)),
                server_cpu_ns: Some(200_000_000),
                error: None,
            },
            LimitRun {
                round: 2,
                csr_max_per_second: Some(50.0),
                requests: 200,
                concurrency: 64,
                burst: Some(burst(28, 172)),
                drain: Some(drain(5.0)),
                server_cpu_ns: Some(100_000_000),
                error: None,
            },
        ];
        assert_eq!(runs[0].signings_per_sec(), Some(50.0));
        assert_eq!(runs[0].server_cpu_us_per_signing(), Some(1000.0));
        let s = summarize_limit(&runs).expect("two rounds");
        assert_eq!((s.ok_at_once, s.rate_limited_at_once), (58, 342));
        assert_eq!(s.all_signed_secs, Some(4.5));
        assert_eq!(s.signings_per_sec, Some(45.0));
        assert_eq!(s.server_cpu_us_per_signing, Some(750.0));
        let table = limit_table(&s);
        assert!(table.contains(" 2 × 200 |"), "{table}");
        assert!(summarize_limit(&[]).is_none());
    }

    #[test]
    fn rss_growth_per_leaf() {
        // Round 1: 1,024 leaves grew the client from 40 to 44 MiB (4 KiB each).
        let mut a = run(1, Op::Sign, 1, 512, 1, 1);
        let mut b = run(1, Op::Sign, 16, 512, 1, 1);
        a.usage.client_rss_mib = Some(42.0);
        b.usage.client_rss_mib = Some(44.0);
        b.usage.server_rss_mib = Some(31.0);
        let auth = run(1, Op::Authorize, 16, 1000, 1, 1);
        let baselines = [Baseline {
            round: 1,
            server_rss_mib: 30.0,
            client_rss_mib: 40.0,
        }];
        let growth = rss_per_leaf(&baselines, &[a, b, auth]);
        assert_eq!(growth.client_kib, Some(4.0));
        assert_eq!(growth.server_kib, Some(1.0));
        assert_eq!(growth.client_baseline_mib, Some(40.0));
        assert_eq!(rss_per_leaf(&baselines, &[]).client_kib, None);
    }
}
