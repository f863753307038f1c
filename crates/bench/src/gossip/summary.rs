//! Medians over rounds, mesh/serf ratios and the Markdown tables of `mesh-bench gossip`.

use serde::Serialize;

use super::round::GossipRun;
use crate::report::{fmt_num, markdown_table, Align};
use crate::stats::median;

/// Medians over the rounds of one (N, system); counts are summed over rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GossipSummary {
    pub n: usize,
    pub system: String,
    pub rounds: usize,
    /// Rounds that ran to the end.
    pub complete: usize,
    pub cpu_s_per_min: Option<f64>,
    pub rss_mib: Option<f64>,
    pub detect_secs: Option<f64>,
    pub first_detect_secs: Option<f64>,
    pub join_secs: Option<f64>,
    pub join_full_secs: Option<f64>,
    pub udp_bytes_per_agent_sec: Option<f64>,
    pub udp_packets_per_agent_sec: Option<f64>,
    pub tcp_bytes_per_agent_sec: Option<f64>,
    pub false_failures: usize,
    pub false_suspicions: Option<usize>,
    pub refutations: usize,
}

/// mesh / serf of the medians for one N: below 1 means mesh uses less, or is faster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GossipRatio {
    pub n: usize,
    pub cpu: Option<f64>,
    pub rss: Option<f64>,
    pub detect: Option<f64>,
    pub join: Option<f64>,
    pub udp: Option<f64>,
}

/// One row per (N, system), in order of first appearance.
pub fn summarize(runs: &[GossipRun]) -> Vec<GossipSummary> {
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.n, r.system.as_str())) {
            keys.push((r.n, r.system.as_str()));
        }
    }
    keys.into_iter()
        .map(|(n, system)| {
            let cell: Vec<&GossipRun> = runs
                .iter()
                .filter(|r| r.n == n && r.system == system)
                .collect();
            let med = |f: fn(&GossipRun) -> Option<f64>| {
                median(&cell.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let suspicions: Vec<usize> = cell.iter().filter_map(|r| r.false_suspicions).collect();
            GossipSummary {
                n,
                system: system.to_owned(),
                rounds: cell.len(),
                complete: cell.iter().filter(|r| r.error.is_none()).count(),
                cpu_s_per_min: med(|r| r.cpu_s_per_min),
                rss_mib: med(|r| r.rss_mib),
                detect_secs: med(|r| r.detect_secs),
                first_detect_secs: med(|r| r.first_detect_secs),
                join_secs: med(|r| r.join_secs),
                join_full_secs: med(|r| r.join_full_secs),
                udp_bytes_per_agent_sec: med(|r| r.udp_bytes_per_agent_sec),
                udp_packets_per_agent_sec: med(|r| r.udp_packets_per_agent_sec),
                tcp_bytes_per_agent_sec: med(|r| r.tcp_bytes_per_agent_sec),
                false_failures: cell.iter().map(|r| r.false_failures).sum(),
                false_suspicions: (!suspicions.is_empty()).then(|| suspicions.iter().sum()),
                refutations: cell.iter().map(|r| r.refutations).sum(),
            }
        })
        .collect()
}

/// `a / b`, when both are known and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// mesh/serf for every N that has both.
pub fn ratios(summary: &[GossipSummary]) -> Vec<GossipRatio> {
    let mut out: Vec<GossipRatio> = Vec::new();
    for row in summary {
        if out.iter().any(|r| r.n == row.n) {
            continue;
        }
        let find = |system: &str| summary.iter().find(|r| r.n == row.n && r.system == system);
        if let (Some(m), Some(s)) = (find("mesh"), find("serf")) {
            out.push(GossipRatio {
                n: row.n,
                cpu: ratio(m.cpu_s_per_min, s.cpu_s_per_min),
                rss: ratio(m.rss_mib, s.rss_mib),
                detect: ratio(m.detect_secs, s.detect_secs),
                join: ratio(m.join_secs, s.join_secs),
                udp: ratio(m.udp_bytes_per_agent_sec, s.udp_bytes_per_agent_sec),
            });
        }
    }
    out
}

pub fn summary_table(rows: &[GossipSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("N", Right),
        ("system", Left),
        ("CPU s/agent/min", Right),
        ("RSS MiB/agent", Right),
        ("detect s (all)", Right),
        ("detect s (first)", Right),
        ("join s", Right),
        ("join s (all see all)", Right),
        ("UDP B/s/agent", Right),
        ("UDP pkt/s/agent", Right),
        ("gossip TCP B/s/agent", Right),
        ("false failures", Right),
        ("rounds ok", Right),
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.n.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_s_per_min, 3),
                fmt_num(r.rss_mib, 1),
                fmt_num(r.detect_secs, 2),
                fmt_num(r.first_detect_secs, 2),
                fmt_num(r.join_secs, 2),
                fmt_num(r.join_full_secs, 2),
                fmt_num(r.udp_bytes_per_agent_sec, 0),
                fmt_num(r.udp_packets_per_agent_sec, 1),
                fmt_num(r.tcp_bytes_per_agent_sec, 0),
                r.false_failures.to_string(),
                format!("{}/{}", r.complete, r.rounds),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

pub fn ratio_table(ratios: &[GossipRatio]) -> String {
    use Align::Right;
    let headers = [
        ("N", Right),
        ("CPU mesh/serf", Right),
        ("RSS mesh/serf", Right),
        ("detect mesh/serf", Right),
        ("join mesh/serf", Right),
        ("UDP mesh/serf", Right),
    ];
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|r| {
            vec![
                r.n.to_string(),
                fmt_num(r.cpu, 2),
                fmt_num(r.rss, 2),
                fmt_num(r.detect, 2),
                fmt_num(r.join, 2),
                fmt_num(r.udp, 2),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

/// One simulated scenario (`gossip::sim::run_scenario`), in seconds of simulated time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimRow {
    pub n: usize,
    pub loss: f64,
    pub seed: u64,
    pub dissemination_secs: Option<f64>,
    pub first_detect_secs: Option<f64>,
    pub detect_secs: Option<f64>,
    pub false_failures: usize,
    pub bytes_per_node_sec: f64,
    pub steady_bytes_per_node_sec: f64,
    /// Wall-clock time the simulation took.
    pub wall_secs: f64,
}

pub fn sim_table(rows: &[SimRow]) -> String {
    use Align::Right;
    let headers = [
        ("N", Right),
        ("loss", Right),
        ("formation s", Right),
        ("detect s (first)", Right),
        ("detect s (all)", Right),
        ("false failures", Right),
        ("steady B/s/node", Right),
        ("B/s/node whole run", Right),
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.n.to_string(),
                format!("{:.0}%", r.loss * 100.0),
                fmt_num(r.dissemination_secs, 2),
                fmt_num(r.first_detect_secs, 2),
                fmt_num(r.detect_secs, 2),
                r.false_failures.to_string(),
                fmt_num(Some(r.steady_bytes_per_node_sec), 0),
                fmt_num(Some(r.bytes_per_node_sec), 0),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}
