//! Per-round results, their medians over rounds, and the Markdown tables printed at the end.

use serde::Serialize;

use crate::load::Op;
use crate::stats::median;

#[cfg(test)]
mod tests;

/// One cell (system × op × concurrency) of one round: the raw numbers written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct CellRun {
    pub round: usize,
    pub system: String,
    pub op: Op,
    pub concurrency: usize,
    /// Successful requests.
    pub ok_ops: u64,
    pub errors: u64,
    pub elapsed_secs: f64,
    /// Successful requests per second.
    pub ops_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Server utime + stime over the phase, in clock ticks.
    pub cpu_ticks: u64,
    /// Server CPU time per successful request, in microseconds.
    pub cpu_us_per_op: Option<f64>,
    /// Server VmRSS at the end of the phase (summed over the nodes).
    pub rss_mib: f64,
    pub first_error: Option<String>,
    /// Where the load went: the leader's URL, or every node's when reads are spread.
    pub targets: Vec<String>,
    /// Every node's share, the leader first (one entry for a single server).
    pub nodes: Vec<NodeRun>,
}

/// One node's CPU and memory over one cell of one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRun {
    pub name: String,
    pub leader: bool,
    pub cpu_ticks: u64,
    /// This node's CPU time per successful request (of the whole load), in microseconds.
    pub cpu_us_per_op: Option<f64>,
    pub rss_mib: f64,
}

/// Medians over rounds of one node position (leader first, then followers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSummary {
    pub cpu_us_per_op: Option<f64>,
    pub rss_mib: Option<f64>,
}

/// Medians over rounds of one (op, concurrency, system).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub op: Op,
    pub concurrency: usize,
    pub system: String,
    pub rounds: usize,
    pub cpu_us_per_op: Option<f64>,
    pub rss_mib: Option<f64>,
    pub ops_per_sec: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Errors summed over all rounds (any error makes the cell suspect, so none is hidden).
    pub errors: u64,
    /// Per node position (leader first): medians over the rounds that had that position.
    pub nodes: Vec<NodeSummary>,
}

/// ours / peer for one (op, concurrency).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioRow {
    pub op: Op,
    pub concurrency: usize,
    /// CPU µs per op, ours / peer: below 1 means we use less CPU per operation.
    pub cpu_per_op: Option<f64>,
    /// ops/s, ours / peer: above 1 means we are faster.
    pub throughput: Option<f64>,
}

/// Medians over rounds, one row per (op, concurrency, system) in order of first appearance.
pub fn summarize(runs: &[CellRun]) -> Vec<SummaryRow> {
    let mut keys: Vec<(Op, usize, &str)> = Vec::new();
    for r in runs {
        let key = (r.op, r.concurrency, r.system.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(op, concurrency, system)| {
            let cell: Vec<&CellRun> = runs
                .iter()
                .filter(|r| r.op == op && r.concurrency == concurrency && r.system == system)
                .collect();
            let med = |f: &dyn Fn(&CellRun) -> Option<f64>| {
                median(&cell.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            SummaryRow {
                op,
                concurrency,
                system: system.to_owned(),
                rounds: cell.len(),
                cpu_us_per_op: med(&|r| r.cpu_us_per_op),
                rss_mib: med(&|r| Some(r.rss_mib)),
                ops_per_sec: med(&|r| Some(r.ops_per_sec)),
                p50_ms: med(&|r| r.p50_ms),
                p99_ms: med(&|r| r.p99_ms),
                errors: cell.iter().map(|r| r.errors).sum(),
                nodes: node_summaries(&cell),
            }
        })
        .collect()
}

/// Medians per node position over the rounds of one cell; as many positions as the run with
/// the most nodes.
fn node_summaries(cell: &[&CellRun]) -> Vec<NodeSummary> {
    let positions = cell.iter().map(|r| r.nodes.len()).max().unwrap_or(0);
    (0..positions)
        .map(|i| {
            let at: Vec<&NodeRun> = cell.iter().filter_map(|r| r.nodes.get(i)).collect();
            NodeSummary {
                cpu_us_per_op: median(
                    &at.iter()
                        .filter_map(|n| n.cpu_us_per_op)
                        .collect::<Vec<_>>(),
                ),
                rss_mib: median(&at.iter().map(|n| n.rss_mib).collect::<Vec<_>>()),
            }
        })
        .collect()
}

/// `ours / peer` of the medians, for every (op, concurrency) that has both.
pub fn ratios(summary: &[SummaryRow], ours: &str, peer: &str) -> Vec<RatioRow> {
    let find = |op, c, system: &str| {
        summary
            .iter()
            .find(|r| r.op == op && r.concurrency == c && r.system == system)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let mut out: Vec<RatioRow> = Vec::new();
    for row in summary {
        if out
            .iter()
            .any(|r| r.op == row.op && r.concurrency == row.concurrency)
        {
            continue;
        }
        if let (Some(a), Some(b)) = (
            find(row.op, row.concurrency, ours),
            find(row.op, row.concurrency, peer),
        ) {
            out.push(RatioRow {
                op: row.op,
                concurrency: row.concurrency,
                cpu_per_op: ratio(a.cpu_us_per_op, b.cpu_us_per_op),
                throughput: ratio(a.ops_per_sec, b.ops_per_sec),
            });
        }
    }
    out
}

/// Column alignment in a Markdown table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A Markdown table padded so it also reads well as plain text.
pub fn markdown_table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .chain([headers[i].0.chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(headers)
            .zip(&widths)
            .map(|((c, (_, align)), &w)| match align {
                Align::Left => format!("{c:<w$}"),
                Align::Right => format!("{c:>w$}"),
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(headers.iter().map(|(h, _)| *h).collect());
    let rule: Vec<String> = headers
        .iter()
        .zip(&widths)
        .map(|((_, align), &w)| match align {
            Align::Left => format!(":{}", "-".repeat(w + 1)),
            Align::Right => format!("{}:", "-".repeat(w + 1)),
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in rows {
        let mut cells: Vec<&str> = row.iter().map(String::as_str).collect();
        cells.resize(headers.len(), "");
        out.push_str(&line(cells));
    }
    out
}

/// A number with `decimals` decimals, or `n/a`.
pub fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "n/a".to_owned(),
    }
}

pub fn summary_table(summary: &[SummaryRow]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("op", Left),
        ("concurrency", Right),
        ("system", Left),
        ("CPU µs/op", Right),
        ("RSS MiB", Right),
        ("ops/s", Right),
        ("p50 ms", Right),
        ("p99 ms", Right),
        ("errors", Right),
    ];
    let rows: Vec<Vec<String>> = summary
        .iter()
        .map(|r| {
            vec![
                r.op.to_string(),
                r.concurrency.to_string(),
                r.system.clone(),
                fmt_num(r.cpu_us_per_op, 1),
                fmt_num(r.rss_mib, 1),
                fmt_num(r.ops_per_sec, 0),
                fmt_num(r.p50_ms, 3),
                fmt_num(r.p99_ms, 3),
                r.errors.to_string(),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

pub fn ratio_table(ratios: &[RatioRow], ours: &str, peer: &str) -> String {
    use Align::{Left, Right};
    let cpu = format!("CPU/op {ours}/{peer}");
    let tput = format!("ops/s {ours}/{peer}");
    let headers = [
        ("op", Left),
        ("concurrency", Right),
        (cpu.as_str(), Right),
        (tput.as_str(), Right),
    ];
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|r| {
            vec![
                r.op.to_string(),
                r.concurrency.to_string(),
                fmt_num(r.cpu_per_op, 2),
                fmt_num(r.throughput, 2),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

/// Per node (leader first) CPU µs/op and RSS, for rows with more than one node; `None` when
/// every row is a single server.
pub fn node_table(summary: &[SummaryRow]) -> Option<String> {
    use Align::{Left, Right};
    let joined = |values: Vec<Option<f64>>, decimals: usize| {
        values
            .into_iter()
            .map(|v| fmt_num(v, decimals))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let rows: Vec<Vec<String>> = summary
        .iter()
        .filter(|r| r.nodes.len() > 1)
        .map(|r| {
            vec![
                r.op.to_string(),
                r.concurrency.to_string(),
                r.system.clone(),
                joined(r.nodes.iter().map(|n| n.cpu_us_per_op).collect(), 1),
                joined(r.nodes.iter().map(|n| n.rss_mib).collect(), 1),
            ]
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let headers = [
        ("op", Left),
        ("concurrency", Right),
        ("system", Left),
        ("CPU µs/op leader / followers", Right),
        ("RSS MiB leader / followers", Right),
    ];
    Some(markdown_table(&headers, &rows))
}

/// Writes a run's raw numbers as pretty JSON to `path`, else to
/// `$CARGO_TARGET_DIR/bench/<area>.json` (`target/` without one), and says where.
pub fn write_json<T: Serialize>(
    path: Option<std::path::PathBuf>,
    area: &str,
    report: &T,
) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let path = path.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| "target".into(), std::path::PathBuf::from)
            .join("bench")
            .join(format!("{area}.json"))
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report).context("serializing the report")?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    println!("\nraw numbers: {}", path.display());
    Ok(path)
}
