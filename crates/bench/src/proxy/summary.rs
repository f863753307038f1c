//! One measured cell per (round, system, cell) and one memory reading per (round, system,
//! open connections), their medians over rounds, and the Markdown tables of `mesh-bench proxy`.

use serde::Serialize;

use super::pair::System;
use super::traffic::Outcome;
use crate::report::{fmt_num, markdown_table, Align};
use crate::stats::{median, percentile};

/// What a cell sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// 1 KiB requests at the fixed rate over the keep-alive connections.
    Rate,
    /// 1 KiB requests over the keep-alive connections, each sent when the last is answered.
    Full,
    /// Bytes streamed from the backend.
    Bulk,
    /// A new connection (a TLS handshake through a pair) per request.
    Connect,
}

impl Cell {
    pub const ALL: [Cell; 4] = [Cell::Rate, Cell::Full, Cell::Bulk, Cell::Connect];
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cell::Rate => "1 KiB requests, fixed rate",
            Cell::Full => "1 KiB requests, full load",
            Cell::Bulk => "bulk stream",
            Cell::Connect => "new connection per request",
        })
    }
}

/// CPU time over one cell, each process read from `/proc` (per-thread schedstat).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// The client-side proxy, then the server-side one; empty for `direct`.
    pub proxy_cpu_ns: Vec<u64>,
    /// The mesh-server the sidecars are configured by.
    pub agent_cpu_ns: Option<u64>,
    /// This process: the load generator and the backend.
    pub generator_cpu_ns: Option<u64>,
    /// `schedstat`, or `ticks` if any reading fell back to utime+stime.
    pub cpu_source: Option<&'static str>,
}

/// One cell of one round.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    pub round: usize,
    pub system: System,
    pub cell: Cell,
    pub outcome: Option<Outcome>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub usage: Usage,
    pub error: Option<String>,
}

impl LoadRun {
    pub fn new(round: usize, system: System, cell: Cell) -> LoadRun {
        LoadRun {
            round,
            system,
            cell,
            outcome: None,
            p50_us: None,
            p99_us: None,
            usage: Usage::default(),
            error: None,
        }
    }

    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.p50_us = percentile(&outcome.latencies_us, 50.0);
        self.p99_us = percentile(&outcome.latencies_us, 99.0);
        self.outcome = Some(outcome);
    }

    fn ok(&self) -> u64 {
        self.outcome.as_ref().map_or(0, |o| o.ok)
    }

    fn elapsed(&self) -> Option<f64> {
        self.outcome
            .as_ref()
            .map(|o| o.elapsed_secs)
            .filter(|&s| s > 0.0)
    }

    fn proxy_ns(&self) -> Option<u64> {
        (!self.usage.proxy_cpu_ns.is_empty()).then(|| self.usage.proxy_cpu_ns.iter().sum())
    }

    /// What CPU is divided by: requests, connections for [`Cell::Connect`], megabytes
    /// (10^6 bytes) for [`Cell::Bulk`].
    fn ops(&self) -> f64 {
        match (self.cell, &self.outcome) {
            (Cell::Bulk, Some(o)) => o.bytes as f64 / 1e6,
            (_, Some(o)) => o.ok as f64,
            (_, None) => 0.0,
        }
    }

    fn per_op_us(&self, ns: u64) -> Option<f64> {
        let ops = self.ops();
        (ops > 0.0).then(|| ns as f64 / 1e3 / ops)
    }

    /// Both proxies' CPU µs per operation ([`LoadRun::ops`]); `None` for `direct`.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        self.per_op_us(self.proxy_ns()?)
    }

    /// One proxy's share (0: client side, 1: server side).
    pub fn side_cpu_us_per_op(&self, side: usize) -> Option<f64> {
        self.per_op_us(*self.usage.proxy_cpu_ns.get(side)?)
    }

    pub fn agent_cpu_us_per_op(&self) -> Option<f64> {
        self.per_op_us(self.usage.agent_cpu_ns?)
    }

    pub fn ops_per_sec(&self) -> Option<f64> {
        Some(self.ok() as f64 / self.elapsed()?)
    }

    pub fn mb_per_sec(&self) -> Option<f64> {
        let bytes = self.outcome.as_ref()?.bytes;
        (self.cell == Cell::Bulk).then_some(bytes as f64 / 1e6 / self.elapsed()?)
    }

    /// Bulk megabytes (10^6 bytes) per CPU-second of both proxies.
    pub fn mb_per_cpu_sec(&self) -> Option<f64> {
        let bytes = self.outcome.as_ref()?.bytes;
        let ns = self.proxy_ns().filter(|&ns| ns > 0)?;
        (self.cell == Cell::Bulk).then(|| bytes as f64 / 1e6 / (ns as f64 / 1e9))
    }

    /// Cores this process (generator and backend) kept busy.
    pub fn generator_cores(&self) -> Option<f64> {
        Some(self.usage.generator_cpu_ns? as f64 / 1e9 / self.elapsed()?)
    }

    /// Cores both proxies kept busy.
    pub fn proxy_cores(&self) -> Option<f64> {
        Some(self.proxy_ns()? as f64 / 1e9 / self.elapsed()?)
    }
}

/// VmRSS of a pair's proxies with `open` idle connections through it.
#[derive(Debug, Clone, Serialize)]
pub struct MemRun {
    pub round: usize,
    pub system: System,
    /// Connections asked for (0: idle, after one request).
    pub open: usize,
    /// Connections open through the pair when RSS was read.
    pub opened: usize,
    /// Attempts that failed.
    pub failed: u64,
    /// The client-side proxy, then the server-side one.
    pub rss_kib: Vec<u64>,
    pub first_error: Option<String>,
    /// Seconds to open the connections (from the previous count).
    pub open_secs: f64,
}

impl MemRun {
    pub fn rss_mib(&self, side: usize) -> Option<f64> {
        self.rss_kib.get(side).map(|&k| k as f64 / 1024.0)
    }
}

/// Medians over the rounds of one (system, cell); counts summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSummary {
    pub system: System,
    pub cell: Cell,
    pub rounds: usize,
    pub cpu_us_per_op: Option<f64>,
    pub client_side_us: Option<f64>,
    pub server_side_us: Option<f64>,
    pub agent_cpu_us_per_op: Option<f64>,
    pub ops_per_sec: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// p50 and p99 minus `direct`'s (fixed rate only).
    pub added_p50_us: Option<f64>,
    pub added_p99_us: Option<f64>,
    pub mb_per_sec: Option<f64>,
    pub mb_per_cpu_sec: Option<f64>,
    pub proxy_cores: Option<f64>,
    pub generator_cores: Option<f64>,
    /// Summed over rounds.
    pub ok: u64,
    pub errors: u64,
    pub late: u64,
    pub failed_rounds: usize,
}

pub fn summarize(runs: &[LoadRun]) -> Vec<LoadSummary> {
    let mut keys: Vec<(Cell, System)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.cell, r.system)) {
            keys.push((r.cell, r.system));
        }
    }
    keys.sort_by_key(|&(cell, system)| (Cell::ALL.iter().position(|&c| c == cell), system as u8));
    let mut out: Vec<LoadSummary> = keys
        .into_iter()
        .map(|(cell, system)| {
            let rows: Vec<&LoadRun> = runs
                .iter()
                .filter(|r| r.cell == cell && r.system == system)
                .collect();
            let med = |f: &dyn Fn(&LoadRun) -> Option<f64>| {
                median(&rows.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let sum = |f: &dyn Fn(&Outcome) -> u64| {
                rows.iter()
                    .filter_map(|r| r.outcome.as_ref())
                    .map(f)
                    .sum::<u64>()
            };
            LoadSummary {
                system,
                cell,
                rounds: rows.len(),
                cpu_us_per_op: med(&|r| r.cpu_us_per_op()),
                client_side_us: med(&|r| r.side_cpu_us_per_op(0)),
                server_side_us: med(&|r| r.side_cpu_us_per_op(1)),
                agent_cpu_us_per_op: med(&|r| r.agent_cpu_us_per_op()),
                ops_per_sec: med(&|r| r.ops_per_sec()),
                p50_us: med(&|r| r.p50_us.map(|v| v as f64)),
                p99_us: med(&|r| r.p99_us.map(|v| v as f64)),
                added_p50_us: None,
                added_p99_us: None,
                mb_per_sec: med(&|r| r.mb_per_sec()),
                mb_per_cpu_sec: med(&|r| r.mb_per_cpu_sec()),
                proxy_cores: med(&|r| r.proxy_cores()),
                generator_cores: med(&|r| r.generator_cores()),
                ok: sum(&|o| o.ok),
                errors: sum(&|o| o.errors),
                late: sum(&|o| o.late),
                failed_rounds: rows
                    .iter()
                    .filter(|r| r.error.is_some() || r.outcome.is_none())
                    .count(),
            }
        })
        .collect();
    let direct: Option<(Option<f64>, Option<f64>)> = out
        .iter()
        .find(|s| s.cell == Cell::Rate && s.system == System::Direct)
        .map(|s| (s.p50_us, s.p99_us));
    if let Some((p50, p99)) = direct {
        for s in out
            .iter_mut()
            .filter(|s| s.cell == Cell::Rate && s.system != System::Direct)
        {
            s.added_p50_us = difference(s.p50_us, p50);
            s.added_p99_us = difference(s.p99_us, p99);
        }
    }
    out
}

fn difference(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

/// `a / b` when both are there and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// Medians over the rounds of one (system, open connections).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemSummary {
    pub system: System,
    pub open: usize,
    pub rounds: usize,
    pub client_side_mib: Option<f64>,
    pub server_side_mib: Option<f64>,
    /// The larger of the two, per round, then the median.
    pub max_mib: Option<f64>,
    /// The fewest connections any round had open.
    pub min_opened: Option<usize>,
    /// Summed over rounds.
    pub failed: u64,
}

pub fn summarize_memory(runs: &[MemRun]) -> Vec<MemSummary> {
    let mut keys: Vec<(System, usize)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.system, r.open)) {
            keys.push((r.system, r.open));
        }
    }
    keys.sort_by_key(|&(system, open)| (system as u8, open));
    keys.into_iter()
        .map(|(system, open)| {
            let rows: Vec<&MemRun> = runs
                .iter()
                .filter(|r| r.system == system && r.open == open)
                .collect();
            let med = |f: &dyn Fn(&MemRun) -> Option<f64>| {
                median(&rows.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            MemSummary {
                system,
                open,
                rounds: rows.len(),
                client_side_mib: med(&|r| r.rss_mib(0)),
                server_side_mib: med(&|r| r.rss_mib(1)),
                max_mib: med(&|r| match (r.rss_mib(0), r.rss_mib(1)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                }),
                min_opened: rows.iter().map(|r| r.opened).min(),
                failed: rows.iter().map(|r| r.failed).sum(),
            }
        })
        .collect()
}

/// The headline: both proxies' CPU per operation and the largest proxy's RSS, per system.
pub fn headline_table(load: &[LoadSummary], memory: &[MemSummary], rate: u64) -> String {
    use Align::{Left, Right};
    let mut systems: Vec<System> = load
        .iter()
        .map(|s| s.system)
        .chain(memory.iter().map(|m| m.system))
        .filter(|&s| s != System::Direct)
        .collect();
    systems.sort_by_key(|&s| s as u8);
    systems.dedup();
    let mut opens: Vec<usize> = memory.iter().map(|m| m.open).collect();
    opens.sort_unstable();
    opens.dedup();
    let mut headers: Vec<(String, Align)> = vec![
        ("system".into(), Left),
        (format!("CPU µs/request at {rate}/s"), Right),
        ("CPU µs/request, full load".into(), Right),
        ("CPU µs/new connection".into(), Right),
        ("bulk MB per CPU-second".into(), Right),
    ];
    for &open in &opens {
        headers.push((
            if open == 0 {
                "RSS MiB idle".into()
            } else {
                format!("RSS MiB, {open} conns")
            },
            Right,
        ));
    }
    let find = |system, cell| load.iter().find(|s| s.system == system && s.cell == cell);
    let rows: Vec<Vec<String>> = systems
        .iter()
        .map(|&system| {
            let mut row = vec![
                system.to_string(),
                fmt_num(find(system, Cell::Rate).and_then(|s| s.cpu_us_per_op), 1),
                fmt_num(find(system, Cell::Full).and_then(|s| s.cpu_us_per_op), 1),
                fmt_num(find(system, Cell::Connect).and_then(|s| s.cpu_us_per_op), 1),
                fmt_num(find(system, Cell::Bulk).and_then(|s| s.mb_per_cpu_sec), 0),
            ];
            for &open in &opens {
                let m = memory.iter().find(|m| m.system == system && m.open == open);
                row.push(fmt_num(m.and_then(|m| m.max_mib), 1));
            }
            row
        })
        .collect();
    let headers: Vec<(&str, Align)> = headers.iter().map(|(h, a)| (h.as_str(), *a)).collect();
    markdown_table(&headers, &rows)
}

/// CPU per operation split by side, and the ratio to a peer.
pub fn cpu_table(load: &[LoadSummary], ours: System, peer: System) -> String {
    use Align::{Left, Right};
    let ratio_header = format!("total ÷ {peer}");
    let headers = [
        ("cell", Left),
        ("system", Left),
        ("CPU µs/op, both", Right),
        ("client side", Right),
        ("server side", Right),
        (ratio_header.as_str(), Right),
        ("agent CPU µs/op", Right),
        ("proxy cores busy", Right),
    ];
    let rows: Vec<Vec<String>> = load
        .iter()
        .filter(|s| s.system != System::Direct)
        .map(|s| {
            let peer_cpu = load
                .iter()
                .find(|p| p.system == peer && p.cell == s.cell)
                .and_then(|p| p.cpu_us_per_op);
            vec![
                if s.cell == Cell::Bulk {
                    "bulk stream, per MB".to_owned()
                } else {
                    s.cell.to_string()
                },
                s.system.to_string(),
                fmt_num(s.cpu_us_per_op, 1),
                fmt_num(s.client_side_us, 1),
                fmt_num(s.server_side_us, 1),
                if s.system == ours {
                    fmt_num(ratio(s.cpu_us_per_op, peer_cpu), 2)
                } else {
                    String::new()
                },
                fmt_num(s.agent_cpu_us_per_op, 2),
                fmt_num(s.proxy_cores, 2),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

/// RSS per proxy and connection count.
pub fn memory_table(memory: &[MemSummary]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("system", Left),
        ("open connections", Right),
        ("client side MiB", Right),
        ("server side MiB", Right),
        ("max MiB", Right),
        ("opened (min)", Right),
        ("failed", Right),
    ];
    let rows: Vec<Vec<String>> = memory
        .iter()
        .map(|m| {
            vec![
                m.system.to_string(),
                if m.open == 0 {
                    "idle".to_owned()
                } else {
                    m.open.to_string()
                },
                fmt_num(m.client_side_mib, 1),
                fmt_num(m.server_side_mib, 1),
                fmt_num(m.max_mib, 1),
                m.min_opened.map_or("n/a".to_owned(), |n| n.to_string()),
                m.failed.to_string(),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

/// Throughput and latency per system, `direct` included.
pub fn throughput_table(load: &[LoadSummary], rate: u64) -> String {
    use Align::{Left, Right};
    let p50 = format!("p50 µs at {rate}/s");
    let p99 = format!("p99 µs at {rate}/s");
    let headers = [
        ("system", Left),
        ("requests/s, full load", Right),
        (p50.as_str(), Right),
        (p99.as_str(), Right),
        ("added p50 µs", Right),
        ("added p99 µs", Right),
        ("bulk MB/s", Right),
        ("new connections/s", Right),
        ("late", Right),
        ("errors", Right),
    ];
    let mut systems: Vec<System> = load.iter().map(|s| s.system).collect();
    systems.sort_by_key(|&s| s as u8);
    systems.dedup();
    let find = |system, cell| load.iter().find(|s| s.system == system && s.cell == cell);
    let rows: Vec<Vec<String>> = systems
        .iter()
        .map(|&system| {
            let rate_cell = find(system, Cell::Rate);
            let errors: u64 = load
                .iter()
                .filter(|s| s.system == system)
                .map(|s| s.errors)
                .sum();
            vec![
                system.to_string(),
                fmt_num(find(system, Cell::Full).and_then(|s| s.ops_per_sec), 0),
                fmt_num(rate_cell.and_then(|s| s.p50_us), 0),
                fmt_num(rate_cell.and_then(|s| s.p99_us), 0),
                fmt_num(rate_cell.and_then(|s| s.added_p50_us), 0),
                fmt_num(rate_cell.and_then(|s| s.added_p99_us), 0),
                fmt_num(find(system, Cell::Bulk).and_then(|s| s.mb_per_sec), 0),
                fmt_num(find(system, Cell::Connect).and_then(|s| s.ops_per_sec), 0),
                rate_cell.map_or(0, |s| s.late).to_string(),
                errors.to_string(),
            ]
        })
        .collect();
    markdown_table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, system: System, cell: Cell, ok: u64, cpu: &[u64]) -> LoadRun {
        let mut r = LoadRun::new(round, system, cell);
        r.set_outcome(Outcome {
            ok,
            errors: 0,
            bytes: if cell == Cell::Bulk { 2_000_000_000 } else { 0 },
            latencies_us: (1..=100).map(|n| n * 10 + round as u64).collect(),
            late: 1,
            elapsed_secs: 2.0,
            first_error: None,
        });
        r.usage = Usage {
            proxy_cpu_ns: cpu.to_vec(),
            agent_cpu_ns: None,
            generator_cpu_ns: Some(1_000_000_000),
            cpu_source: Some("schedstat"),
        };
        r
    }

    #[test]
    fn per_op_numbers() {
        let r = run(1, System::Mesh, Cell::Rate, 1000, &[30_000_000, 10_000_000]);
        assert_eq!(r.cpu_us_per_op(), Some(40.0));
        assert_eq!(r.side_cpu_us_per_op(0), Some(30.0));
        assert_eq!(r.side_cpu_us_per_op(1), Some(10.0));
        assert_eq!(r.ops_per_sec(), Some(500.0));
        assert_eq!((r.p50_us, r.p99_us), (Some(501), Some(991)));
        assert_eq!(r.generator_cores(), Some(0.5));
        assert_eq!(r.proxy_cores(), Some(0.02));
        assert_eq!(r.mb_per_sec(), None);
        let direct = run(1, System::Direct, Cell::Rate, 1000, &[]);
        assert_eq!(direct.cpu_us_per_op(), None);
        // 2 GB in 2 s over 4 CPU-seconds.
        let bulk = run(
            1,
            System::Haproxy,
            Cell::Bulk,
            0,
            &[2_000_000_000, 2_000_000_000],
        );
        assert_eq!(bulk.mb_per_sec(), Some(1000.0));
        assert_eq!(bulk.mb_per_cpu_sec(), Some(500.0));
        assert_eq!(bulk.cpu_us_per_op(), Some(2000.0));
        assert_eq!(bulk.side_cpu_us_per_op(1), Some(1000.0));
    }

    #[test]
    fn medians_and_added_latency() {
        let runs = vec![
            run(1, System::Direct, Cell::Rate, 1000, &[]),
            run(1, System::Mesh, Cell::Rate, 1000, &[30_000_000, 10_000_000]),
            run(
                1,
                System::Haproxy,
                Cell::Rate,
                1000,
                &[40_000_000, 20_000_000],
            ),
            run(
                1,
                System::Mesh,
                Cell::Connect,
                100,
                &[50_000_000, 50_000_000],
            ),
            run(2, System::Direct, Cell::Rate, 1000, &[]),
            run(2, System::Mesh, Cell::Rate, 1000, &[50_000_000, 10_000_000]),
            run(
                2,
                System::Haproxy,
                Cell::Rate,
                1000,
                &[40_000_000, 20_000_000],
            ),
        ];
        let s = summarize(&runs);
        let keys: Vec<(Cell, System)> = s.iter().map(|r| (r.cell, r.system)).collect();
        assert_eq!(
            keys,
            [
                (Cell::Rate, System::Direct),
                (Cell::Rate, System::Mesh),
                (Cell::Rate, System::Haproxy),
                (Cell::Connect, System::Mesh)
            ]
        );
        assert_eq!(s[1].cpu_us_per_op, Some(50.0));
        assert_eq!(s[1].client_side_us, Some(40.0));
        assert_eq!((s[1].ok, s[1].late, s[1].rounds), (2000, 2, 2));
        // Every system's latencies here are the same, so nothing is added.
        assert_eq!(s[1].added_p50_us, Some(0.0));
        assert_eq!(s[0].added_p50_us, None);
        assert_eq!(s[3].cpu_us_per_op, Some(1000.0));
        assert_eq!(
            ratio(s[1].cpu_us_per_op, s[2].cpu_us_per_op),
            Some(50.0 / 60.0)
        );
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        let cpu = cpu_table(&s, System::Mesh, System::Haproxy);
        assert!(
            cpu.contains("| 1 KiB requests, fixed rate | mesh    |"),
            "{cpu}"
        );
        assert!(cpu.contains("0.83"), "{cpu}");
        let tput = throughput_table(&s, 5000);
        assert!(tput.contains("| direct "), "{tput}");
    }

    #[test]
    fn memory_medians_and_maxima() {
        let mem = |round, system, open, a: u64, b: u64, opened| MemRun {
            round,
            system,
            open,
            opened,
            failed: 1,
            rss_kib: vec![a * 1024, b * 1024],
            first_error: None,
            open_secs: 1.0,
        };
        let runs = vec![
            mem(1, System::Mesh, 0, 8, 9, 0),
            mem(1, System::Mesh, 1000, 20, 30, 1000),
            mem(2, System::Mesh, 0, 10, 7, 0),
            mem(2, System::Mesh, 1000, 22, 28, 999),
            mem(1, System::Haproxy, 0, 12, 12, 0),
        ];
        let m = summarize_memory(&runs);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].client_side_mib, Some(9.0));
        assert_eq!(m[0].server_side_mib, Some(8.0));
        assert_eq!(m[0].max_mib, Some(9.5));
        assert_eq!((m[1].min_opened, m[1].failed), (Some(999), 2));
        let table = memory_table(&m);
        assert!(table.contains("| mesh    |             idle |"), "{table}");
        let load = summarize(&[run(1, System::Mesh, Cell::Rate, 1000, &[1_000_000, 0])]);
        let head = headline_table(&load, &m, 5000);
        assert!(head.contains("RSS MiB, 1000 conns"), "{head}");
        assert!(head.contains("| mesh    |"), "{head}");
    }
}
