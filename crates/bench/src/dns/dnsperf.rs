//! Running dnsperf and reading what it prints. Parsing is pure and tested on captured output.
//!
//! dnsperf 2.10 prints no latency percentiles; with `-v` it prints one line per answered
//! question, `> NOERROR svc-1.service.mesh A 0.000123` (latency in seconds), from which the
//! percentiles are computed. `-v` costs dnsperf time, so runs without a rate limit leave it out
//! (their p50/p99 are then n/a).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{anyhow, Context as _};
use serde::Serialize;

use crate::stats::percentile;

/// One dnsperf run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation<'a> {
    pub server: Ipv4Addr,
    pub port: u16,
    pub data: &'a Path,
    pub secs: u64,
    /// dnsperf's `-c`: client sockets.
    pub clients: usize,
    /// `-Q`: the most queries per second; `None`: as fast as answers come back.
    pub qps: Option<u64>,
    /// `-n`: pass through the data file this many times (then `secs` is left out).
    pub passes: Option<u64>,
    /// `-v`: one line per answer, for latency percentiles.
    pub verbose: bool,
}

impl Invocation<'_> {
    /// dnsperf's arguments: one sending thread (`-T 1`), so it competes for one core at most.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-s".into(),
            self.server.to_string(),
            "-p".into(),
            self.port.to_string(),
            "-d".into(),
            self.data.display().to_string(),
            "-c".into(),
            self.clients.to_string(),
            "-T".into(),
            "1".into(),
        ];
        match self.passes {
            Some(n) => a.extend(["-n".into(), n.to_string()]),
            None => a.extend(["-l".into(), self.secs.to_string()]),
        }
        if let Some(q) = self.qps {
            a.extend(["-Q".into(), q.to_string()]);
        }
        if self.verbose {
            a.push("-v".into());
        }
        a
    }
}

/// What one dnsperf run reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    /// Answers whose code was NOERROR.
    pub noerror: u64,
    /// The `Response codes:` line as printed.
    pub rcodes: String,
    pub run_secs: f64,
    pub qps: f64,
    pub avg_latency_ms: f64,
    pub max_latency_ms: f64,
    /// From the `-v` lines; `None` without `-v`.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Average request and response sizes in bytes.
    pub request_bytes: Option<f64>,
    pub response_bytes: Option<f64>,
}

/// The value after `label` on the line that starts with it (after indentation).
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
}

/// The first number of a field (`200000 (100.00%)` is 200000).
fn first_number<T: std::str::FromStr>(text: &str, label: &str) -> anyhow::Result<T> {
    let value = field(text, label).ok_or_else(|| anyhow!("no `{label}` line"))?;
    let first = value.split_whitespace().next().unwrap_or_default();
    first
        .parse()
        .map_err(|_| anyhow!("`{label}` is {value:?}, not a number"))
}

/// Parses dnsperf's summary (and, when present, its `-v` lines).
pub fn parse(text: &str) -> anyhow::Result<Outcome> {
    let rcodes = field(text, "Response codes:")
        .unwrap_or_default()
        .to_owned();
    let noerror = rcodes
        .split(", ")
        .find_map(|c| c.strip_prefix("NOERROR "))
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // `Average Latency (s):  0.000543 (min 0.000023, max 0.003210)`
    let latency = field(text, "Average Latency (s):").unwrap_or_default();
    let max_latency = latency
        .split("max ")
        .nth(1)
        .and_then(|m| m.trim_end_matches(')').trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let sizes = field(text, "Average packet size:").unwrap_or_default();
    let size = |which: &str| {
        sizes
            .split(", ")
            .find_map(|s| s.strip_prefix(which))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let completed: u64 = first_number(text, "Queries completed:")?;
    let (p50_ms, p99_ms) = latency_percentiles(text);
    Ok(Outcome {
        sent: first_number(text, "Queries sent:")?,
        completed,
        lost: first_number(text, "Queries lost:")?,
        noerror: if completed == 0 { 0 } else { noerror },
        rcodes,
        run_secs: first_number(text, "Run time (s):")?,
        qps: first_number(text, "Queries per second:")?,
        avg_latency_ms: first_number::<f64>(text, "Average Latency (s):").unwrap_or(0.0) * 1e3,
        max_latency_ms: max_latency * 1e3,
        p50_ms,
        p99_ms,
        request_bytes: size("request "),
        response_bytes: size("response "),
    })
}

/// p50 and p99 in ms over the `-v` answer lines (`> RCODE name TYPE seconds`); `None` when
/// there are none.
pub fn latency_percentiles(text: &str) -> (Option<f64>, Option<f64>) {
    let mut ns: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        .map(|secs| (secs * 1e9).round() as u64)
        .collect();
    ns.sort_unstable();
    let ms = |p| percentile(&ns, p).map(|v| v as f64 / 1e6);
    (ms(50.0), ms(99.0))
}

/// The Debian package version of dnsperf (`2.10.0-2`), else the `Version` line it prints.
pub fn version(bin: &Path) -> String {
    if let Some(v) = crate::machine::package_version("dnsperf") {
        return format!("Debian package dnsperf {v}");
    }
    std::process::Command::new(bin)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines()
                .find_map(|l| l.strip_prefix("Version "))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// dnsperf's output, or why it failed with what it printed.
pub fn check_output(out: &std::process::Output) -> anyhow::Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(anyhow!(
            "dnsperf exited with {}: {}{}",
            out.status,
            stderr.trim(),
            stdout.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(stdout)
}

/// Runs dnsperf to completion (killed if the future is dropped) and parses its output.
pub async fn run(bin: &Path, inv: &Invocation<'_>) -> anyhow::Result<Outcome> {
    let out = tokio::process::Command::new(bin)
        .args(inv.args())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running dnsperf")?;
    let text = check_output(&out)?;
    parse(&text).with_context(|| {
        format!(
            "parsing dnsperf's output: {}",
            text.lines().rev().take(12).collect::<Vec<_>>().join(" / ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.3.3 -p 8600 -d q -l 3 -c 8
[Status] Sending queries (to 127.0.3.3:8600)
[Status] Started at: Tue Nov 24 21:56:54 2026
[Status] Stopping after 3.000000 seconds
> NOERROR svc-0.service.mesh A 0.000134
> NOERROR _svc-0._tcp.service.mesh SRV 0.000059
> SERVFAIL svc-1.service.mesh A 0.002000
> NOERROR svc-2.service.mesh A 0.000041
[Timeout] Query timed out: msg id 7
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         408410
  Queries completed:    408400 (100.00%)
  Queries lost:         10 (0.00%)

  Response codes:       NOERROR 408399 (100.00%), SERVFAIL 1 (0.00%)
  Average packet size:  request 39, response 113
  Run time (s):         3.000687
  Queries per second:   136105.498508

  Average Latency (s):  0.000339 (min 0.000009, max 0.052476)
  Latency StdDev (s):   0.000950

";

    #[test]
    fn parses_the_summary() {
        let o = parse(SUMMARY).unwrap();
        assert_eq!(
            (o.sent, o.completed, o.lost, o.noerror),
            (408_410, 408_400, 10, 408_399)
        );
        assert_eq!(o.rcodes, "NOERROR 408399 (100.00%), SERVFAIL 1 (0.00%)");
        assert!((o.run_secs - 3.000687).abs() < 1e-9);
        assert!((o.qps - 136_105.498508).abs() < 1e-6);
        assert!((o.avg_latency_ms - 0.339).abs() < 1e-9);
        assert!((o.max_latency_ms - 52.476).abs() < 1e-9);
        assert_eq!(
            (o.request_bytes, o.response_bytes),
            (Some(39.0), Some(113.0))
        );
    }

    #[test]
    fn percentiles_come_from_the_verbose_lines() {
        let (p50, p99) = latency_percentiles(SUMMARY);
        // Sorted: 41, 59, 134, 2000 µs; nearest rank p50 = 2nd, p99 = 4th.
        assert_eq!(p50, Some(0.059));
        assert_eq!(p99, Some(2.0));
        let quiet = SUMMARY
            .lines()
            .filter(|l| !l.starts_with("> "))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(latency_percentiles(&quiet), (None, None));
        assert_eq!(parse(&quiet).unwrap().p99_ms, None);
    }

    #[test]
    fn a_truncated_summary_is_an_error() {
        assert!(parse("Statistics:\n\n  Queries sent: 5\n").is_err());
        let all_lost = SUMMARY
            .replace("Queries completed:    408400", "Queries completed:    0")
            .replace(
                "  Response codes:       NOERROR 408399 (100.00%), SERVFAIL 1 (0.00%)\n",
                "",
            );
        let o = parse(&all_lost).unwrap();
        assert_eq!((o.completed, o.noerror), (0, 0));
    }

    #[test]
    fn arguments() {
        let data = Path::new("/tmp/q");
        let mut inv = Invocation {
            server: Ipv4Addr::new(127, 0, 3, 1),
            port: 8600,
            data,
            secs: 20,
            clients: 8,
            qps: Some(20_000),
            passes: None,
            verbose: true,
        };
        assert_eq!(
            inv.args().join(" "),
            "-s 127.0.3.1 -p 8600 -d /tmp/q -c 8 -T 1 -l 20 -Q 20000 -v"
        );
        inv.qps = None;
        inv.passes = Some(1);
        inv.verbose = false;
        assert_eq!(
            inv.args().join(" "),
            "-s 127.0.3.1 -p 8600 -d /tmp/q -c 8 -T 1 -n 1"
        );
    }
}
