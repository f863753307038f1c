//! Reading a process's CPU time and resident memory from `/proc/<pid>/{stat,status}`.
//!
//! Parsing is separate from reading so it is tested without a process.

use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context as _};

#[cfg(test)]
mod tests;

/// One reading of a process's resource usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// utime + stime of all the process's threads, in clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32) -> anyhow::Result<ProcessSample> {
    let base = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(base.join("stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(base.join("status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(ProcessSample {
        cpu_ticks: parse_stat_cpu_ticks(&stat)
            .with_context(|| format!("parsing /proc/{pid}/stat"))?,
        rss_kib: parse_vm_rss_kib(&status)
            .with_context(|| format!("parsing /proc/{pid}/status"))?,
    })
}

/// utime + stime (fields 14 and 15, see proc(5)) of a `/proc/<pid>/stat` line.
///
/// Field 2, the command name, is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the *last* `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let close = stat
        .rfind(')')
        .ok_or_else(|| anyhow!("no ')' closing the command name"))?;
    // After the name come field 3 (state), 4, ...; field N is at index N - 3.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        let raw = fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("only {} fields after the command name", fields.len()))?;
        raw.parse::<u64>()
            .with_context(|| format!("field {n} is {raw:?}, not a tick count"))
    };
    Ok(field(14)? + field(15)?)
}

/// VmRSS in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss_kib(status: &str) -> anyhow::Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line (is the process a zombie?)"))?;
    let mut parts = line.split_whitespace();
    let value = parts.next().ok_or_else(|| anyhow!("empty VmRSS line"))?;
    match parts.next() {
        Some("kB") => {}
        other => bail!("VmRSS unit is {other:?}, expected kB"),
    }
    value
        .parse::<u64>()
        .with_context(|| format!("VmRSS value {value:?}"))
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat` CPU times.
pub fn clock_ticks_per_sec() -> anyhow::Result<u64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running `getconf CLK_TCK`")?;
    if !out.status.success() {
        bail!("`getconf CLK_TCK` failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ticks: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("`getconf CLK_TCK` printed {text:?}"))?;
    if ticks == 0 {
        bail!("`getconf CLK_TCK` printed 0");
    }
    Ok(ticks)
}
