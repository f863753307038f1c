//! Facts about the machine a run happened on, and installing a missing peer.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::Serialize;

/// Printed at the top of every run and stored in its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct MachineFacts {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub clock_ticks_per_sec: u64,
    pub etcd_version: Option<String>,
    pub mesh_server: Option<String>,
}

impl MachineFacts {
    pub fn collect(
        clock_ticks_per_sec: u64,
        etcd: Option<&Path>,
        mesh_server: Option<&Path>,
    ) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            clock_ticks_per_sec,
            etcd_version: etcd.map(etcd_version),
            mesh_server: mesh_server.map(|p| p.display().to_string()),
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "- nproc: {}\n- cpu: {}\n- kernel: {}\n- CLK_TCK: {}\n",
            self.nproc, self.cpu_model, self.kernel, self.clock_ticks_per_sec
        );
        if let Some(v) = &self.etcd_version {
            s.push_str(&format!("- etcd: {v}\n"));
        }
        if let Some(p) = &self.mesh_server {
            s.push_str(&format!("- mesh-server: {p}\n"));
        }
        s
    }
}

/// The first line of `etcd --version` (`etcd Version: 3.4.23`), or why it is unknown.
fn etcd_version(etcd: &Path) -> String {
    match Command::new(etcd).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(|l| l.trim_start_matches("etcd Version:").trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The Debian package and binary of the etcd peer.
pub const ETCD_PACKAGE: &str = "etcd-server";
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// Returns the etcd binary, installing `etcd-server` with apt-get when it is missing.
pub fn ensure_etcd() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(ETCD_PACKAGE, ETCD_BIN, "install etcd 3.4")
}

/// The Debian package and binary of the serf peer (`bench gossip`).
pub const SERF_PACKAGE: &str = "serf";
pub const SERF_BIN: &str = "/usr/bin/serf";

/// Returns the serf binary, installing the Debian package `serf` (0.9) when it is missing.
pub fn ensure_serf() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(SERF_PACKAGE, SERF_BIN, "install serf 0.9")
}

/// The iptables binary `bench gossip` counts traffic with.
pub const IPTABLES_PACKAGE: &str = "iptables";
pub const IPTABLES_BIN: &str = "/usr/sbin/iptables";

/// Returns the iptables binary, installing the Debian package when it is missing.
pub fn ensure_iptables() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(IPTABLES_PACKAGE, IPTABLES_BIN, "install iptables")
}

/// The Debian package and binary of the DNS peer (`bench dns`): Knot DNS.
pub const KNOT_PACKAGE: &str = "knot";
pub const KNOT_BIN: &str = "/usr/sbin/knotd";

/// Returns the knotd binary, installing the Debian package `knot` when it is missing.
pub fn ensure_knot() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(KNOT_PACKAGE, KNOT_BIN, "install Knot DNS")
}

/// The DNS load generator (`bench dns`).
pub const DNSPERF_PACKAGE: &str = "dnsperf";
pub const DNSPERF_BIN: &str = "/usr/bin/dnsperf";

/// Returns the dnsperf binary, installing the Debian package when it is missing.
pub fn ensure_dnsperf() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(DNSPERF_PACKAGE, DNSPERF_BIN, "install dnsperf")
}

/// The Debian package and binary of the TLS proxy peer (`bench proxy`): HAProxy.
pub const HAPROXY_PACKAGE: &str = "haproxy";
pub const HAPROXY_BIN: &str = "/usr/sbin/haproxy";

/// Returns the haproxy binary, installing the Debian package `haproxy` when it is missing.
pub fn ensure_haproxy() -> anyhow::Result<PathBuf> {
    ensure_apt_binary(HAPROXY_PACKAGE, HAPROXY_BIN, "install HAProxy")
}

/// The installed version of a Debian package, `None` when it is not installed.
pub fn package_version(package: &str) -> Option<String> {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The Debian package's version and the first line of `serf version` (Debian's build reports
/// `0.8.2-dev` for 0.9.4), or why they are unknown.
pub fn serf_version(serf: &Path) -> String {
    let package = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", SERF_PACKAGE])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let reported = match Command::new(serf).arg("version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        Err(e) => format!("unknown ({e})"),
    };
    match package {
        Some(v) if serf == Path::new(SERF_BIN) => {
            format!("Debian package {SERF_PACKAGE} {v} (`serf version`: {reported})")
        }
        _ => reported,
    }
}

/// Returns `bin`, installing `package` with apt-get when it is missing (the machines this runs
/// on are Debian, as root); `hint` says what to do by hand when that fails.
fn ensure_apt_binary(package: &str, bin: &str, hint: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(bin);
    if path.exists() {
        return Ok(path);
    }
    eprintln!("{bin} is missing; installing the Debian package {package}");
    if !apt_get(&["install", "-y", package])? {
        // A fresh machine may have no package lists yet.
        if !apt_get(&["update"])? || !apt_get(&["install", "-y", package])? {
            bail!("`apt-get install -y {package}` failed; {hint} as {bin}");
        }
    }
    if !path.exists() {
        bail!("{package} is installed but {bin} does not exist");
    }
    Ok(path)
}

fn apt_get(args: &[&str]) -> anyhow::Result<bool> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

/// `/proc/loadavg`'s first three fields, to say how busy the machine was around a run.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The command line, quoted so it can be pasted back into a shell.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn quotes_only_what_needs_it() {
        let args = [
            "mesh-bench",
            "kv",
            "--concurrency",
            "1,16",
            "--json-out",
            "a b",
            "it's",
            "",
        ];
        assert_eq!(
            command_line(args.map(String::from)),
            r"mesh-bench kv --concurrency 1,16 --json-out 'a b' 'it'\''s' ''"
        );
    }
}
