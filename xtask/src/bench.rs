//! `cargo xtask bench <area> [args]`: builds the release binaries and runs `mesh-bench`.
//!
//! The measuring itself lives in `crates/bench` (binary `mesh-bench`); this module only builds
//! `mesh-server` and `mesh-bench` in release mode and replaces itself with
//! `mesh-bench <area> [args] --mesh-server <target>/release/mesh-server`.
//! Example: `cargo xtask bench kv --rounds 3 --concurrency 1,16,64`.
//!
//! Target directory: `$CARGO_TARGET_DIR`, else `$HOME/.cache/mesh/target`, so the long RocksDB
//! build is shared with other clones and survives `cargo clean` in this one.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{bail, Context as _};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(area) = args.first() else {
        bail!(
            "usage: cargo xtask bench <area> [args]; areas: kv (see `cargo xtask bench kv --help`)"
        );
    };
    // `--only etcd` measures no mesh-server, so it need not be built (nor RocksDB with it).
    let needs_server = !wants_only_peer(args) && !is_help(args);
    if needs_server {
        crate::prereqs::ensure()?;
    }
    let target_dir = crate::target_dir();
    let mut build = crate::cargo();
    build.args(["build", "--release", "-p", "bench"]);
    if needs_server {
        build.args(["-p", "mesh-server"]);
    }
    eprintln!("building release binaries into {}", target_dir.display());
    crate::run(&mut build)?;

    let release = target_dir.join("release");
    let mut bench = Command::new(release.join("mesh-bench"));
    bench
        .env("CARGO_TARGET_DIR", &target_dir)
        .arg(area)
        .args(&args[1..]);
    let has_server_arg = args
        .iter()
        .any(|a| a == "--mesh-server" || a.starts_with("--mesh-server="));
    if needs_server && !has_server_arg {
        bench.arg("--mesh-server").arg(release.join("mesh-server"));
    }
    // `exec` returns only on failure; on success mesh-bench's exit status is ours.
    let err = bench.exec();
    Err(err).with_context(|| format!("running {}", release.join("mesh-bench").display()))
}

fn wants_only_peer(args: &[String]) -> bool {
    args.windows(2).any(|w| w[0] == "--only" && w[1] != "mesh")
        || args
            .iter()
            .any(|a| a.strip_prefix("--only=").is_some_and(|v| v != "mesh"))
}

fn is_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h") || args.first().is_some_and(|a| a == "help")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn only_peer_skips_the_server_build() {
        assert!(wants_only_peer(&args("kv --only etcd")));
        assert!(wants_only_peer(&args("kv --rounds 1 --only=etcd")));
        assert!(!wants_only_peer(&args("kv --only mesh")));
        assert!(!wants_only_peer(&args("kv --rounds 3")));
        assert!(is_help(&args("kv --help")));
        assert!(!is_help(&args("kv --rounds 3")));
    }
}
