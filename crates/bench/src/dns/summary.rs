//! One measured cell per (round, system, question type, rate), medians over rounds, the
//! mesh/Knot ratios, and the Markdown tables of `mesh-bench dns`.

use serde::Serialize;

use super::dnsperf::Outcome;
use super::records::QType;
use super::Rate;
use crate::report::{fmt_num, markdown_table, Align};
use crate::stats::median;

/// One dnsperf run against one system.
#[derive(Debug, Clone, Serialize)]
pub struct DnsRun {
    pub round: usize,
    pub system: String,
    pub qtype: QType,
    pub rate: Rate,
    pub outcome: Option<Outcome>,
    /// CPU time of the answering process over the run, and how it was read.
    pub cpu_ns: Option<u64>,
    pub cpu_source: Option<&'static str>,
    /// That process's VmRSS after the run.
    pub rss_mib: Option<f64>,
    /// For the client agent: the mesh-server's CPU over the same run (its watches).
    pub server_cpu_ns: Option<u64>,
    pub error: Option<String>,
}

impl DnsRun {
    /// CPU µs per answered question.
    pub fn cpu_us_per_query(&self) -> Option<f64> {
        per_query(self.cpu_ns, self.outcome.as_ref())
    }

    pub fn server_cpu_us_per_query(&self) -> Option<f64> {
        per_query(self.server_cpu_ns, self.outcome.as_ref())
    }
}

fn per_query(ns: Option<u64>, outcome: Option<&Outcome>) -> Option<f64> {
    let completed = outcome?.completed;
    let ns = ns?;
    (completed > 0).then(|| ns as f64 / 1e3 / completed as f64)
}

/// Medians over the rounds of one (question type, rate, system); counts summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsSummary {
    pub qtype: QType,
    pub rate: Rate,
    pub system: String,
    pub rounds: usize,
    pub cpu_us_per_query: Option<f64>,
    pub qps: Option<f64>,
    pub avg_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_mib: Option<f64>,
    pub server_cpu_us_per_query: Option<f64>,
    /// Summed over rounds.
    pub lost: u64,
    /// Answers other than NOERROR, summed over rounds.
    pub not_noerror: u64,
    pub failed_rounds: usize,
}

pub fn summarize(runs: &[DnsRun]) -> Vec<DnsSummary> {
    let mut keys: Vec<(QType, Rate, &str)> = Vec::new();
    for r in runs {
        let key = (r.qtype, r.rate, r.system.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    // Grouped by question and rate, systems in order of appearance.
    let order = |k: &(QType, Rate, &str)| {
        keys.iter()
            .position(|o| o.0 == k.0 && o.1 == k.1)
            .unwrap_or(0)
    };
    let mut sorted = keys.clone();
    sorted.sort_by_key(|k| order(k));
    sorted
        .into_iter()
        .map(|(qtype, rate, system)| {
            let cell: Vec<&DnsRun> = runs
                .iter()
                .filter(|r| r.qtype == qtype && r.rate == rate && r.system == system)
                .collect();
            let med = |f: &dyn Fn(&DnsRun) -> Option<f64>| {
                median(&cell.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let outcomes = || cell.iter().filter_map(|r| r.outcome.as_ref());
            DnsSummary {
                qtype,
                rate,
                system: system.to_owned(),
                rounds: cell.len(),
                cpu_us_per_query: med(&|r| r.cpu_us_per_query()),
                qps: med(&|r| r.outcome.as_ref().map(|o| o.qps)),
                avg_ms: med(&|r| r.outcome.as_ref().map(|o| o.avg_latency_ms)),
                p99_ms: med(&|r| r.outcome.as_ref().and_then(|o| o.p99_ms)),
                rss_mib: med(&|r| r.rss_mib),
                server_cpu_us_per_query: med(&|r| r.server_cpu_us_per_query()),
                lost: outcomes().map(|o| o.lost).sum(),
                not_noerror: outcomes()
                    .map(|o| o.completed - o.noerror.min(o.completed))
                    .sum(),
                failed_rounds: cell
                    .iter()
                    .filter(|r| r.error.is_some() || r.outcome.is_none())
                    .count(),
            }
        })
        .collect()
}

/// `system / peer` of the medians for one (question type, rate).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRatio {
    pub qtype: QType,
    pub rate: Rate,
    pub system: String,
    /// CPU per query: below 1, the system uses less than the peer.
    pub cpu_per_query: Option<f64>,
    /// QPS: above 1, the system answered more.
    pub qps: Option<f64>,
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Every non-peer system against `peer`, per (question type, rate) that has both.
pub fn ratios(summary: &[DnsSummary], peer: &str) -> Vec<DnsRatio> {
    summary
        .iter()
        .filter(|r| r.system != peer)
        .filter_map(|r| {
            let p = summary
                .iter()
                .find(|p| p.system == peer && p.qtype == r.qtype && p.rate == r.rate)?;
            Some(DnsRatio {
                qtype: r.qtype,
                rate: r.rate,
                system: r.system.clone(),
                cpu_per_query: ratio(r.cpu_us_per_query, p.cpu_us_per_query),
                qps: ratio(r.qps, p.qps),
            })
        })
        .collect()
}

pub fn summary_table(summary: &[DnsSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("question", Left),
        ("rate q/s", Right),
        ("system", Left),
        ("CPU µs/query", Right),
        ("QPS", Right),
        ("avg ms", Right),
        ("p99 ms", Right),
        ("lost", Right),
        ("not NOERROR", Right),
        ("RSS MiB", Right),
    ];
    let rows: Vec<Vec<String>> = summary
        .iter()
        .map(|r| {
            vec![
                r.qtype.to_string(),
                r.rate.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_us_per_query, 2),
                fmt_num(r.qps, 0),
                fmt_num(r.avg_ms, 3),
                fmt_num(r.p99_ms, 3),
                r.lost.to_string(),
                r.not_noerror.to_string(),
                fmt_num(r.rss_mib, 1),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

pub fn ratio_table(ratios: &[DnsRatio], peer: &str) -> String {
    use Align::{Left, Right};
    let cpu = format!("CPU/query ÷ {peer}");
    let qps = format!("QPS ÷ {peer}");
    let headers = [
        ("question", Left),
        ("rate q/s", Right),
        ("system", Left),
        (cpu.as_str(), Right),
        (qps.as_str(), Right),
    ];
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|r| {
            vec![
                r.qtype.to_string(),
                r.rate.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_per_query, 2),
                fmt_num(r.qps, 2),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, system: &str, qtype: QType, cpu_ns: u64, completed: u64) -> DnsRun {
        DnsRun {
            round,
            system: system.to_owned(),
            qtype,
            rate: Rate(Some(20_000)),
            outcome: Some(Outcome {
                sent: completed + 1,
                completed,
                lost: 1,
                noerror: completed - 2,
                qps: completed as f64 / 10.0,
                avg_latency_ms: 0.5,
                p99_ms: Some(1.0),
                ..Outcome::default()
            }),
            cpu_ns: Some(cpu_ns),
            cpu_source: Some("schedstat"),
            rss_mib: Some(10.0),
            server_cpu_ns: None,
            error: None,
        }
    }

    #[test]
    fn cpu_per_query_is_ns_over_answered_questions() {
        let r = run(1, "mesh", QType::A, 4_000_000, 1_000);
        assert_eq!(r.cpu_us_per_query(), Some(4.0));
        assert_eq!(r.server_cpu_us_per_query(), None);
        let mut none = r.clone();
        none.outcome.as_mut().unwrap().completed = 0;
        assert_eq!(none.cpu_us_per_query(), None);
    }

    #[test]
    fn medians_sums_and_ratios() {
        let runs = vec![
            run(1, "mesh", QType::A, 4_000_000, 1_000),
            run(1, "knot", QType::A, 1_000_000, 1_000),
            run(1, "mesh", QType::Srv, 9_000_000, 1_000),
            run(2, "mesh", QType::A, 6_000_000, 1_000),
            run(2, "knot", QType::A, 3_000_000, 1_000),
        ];
        let s = summarize(&runs);
        let keys: Vec<(QType, &str)> = s.iter().map(|r| (r.qtype, r.system.as_str())).collect();
        assert_eq!(
            keys,
            [(QType::A, "mesh"), (QType::A, "knot"), (QType::Srv, "mesh")]
        );
        assert_eq!(s[0].cpu_us_per_query, Some(5.0));
        assert_eq!(s[1].cpu_us_per_query, Some(2.0));
        assert_eq!((s[0].lost, s[0].not_noerror, s[0].rounds), (2, 4, 2));
        let r = ratios(&s, "knot");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].cpu_per_query, Some(2.5));
        assert_eq!(r[0].qps, Some(1.0));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        let table = summary_table(&s);
        assert!(table.contains("| A        |    20000 | mesh   |         5.00 |"));
        assert!(ratio_table(&r, "knot").contains("2.50"));
    }
}
