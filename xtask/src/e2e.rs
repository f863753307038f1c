//! `cargo xtask e2e [--short] [--keep-logs DIR] [--loopback]`: builds the binaries and runs
//! `mesh-e2e`.
//!
//! The story itself lives in `crates/e2e` (binary `mesh-e2e`): three servers, three client
//! agents and two applications with sidecars, each host in its own network namespace (or,
//! with `--loopback` or where namespaces cannot be created, on 127.0.9.0/24), walked through
//! the README (DNS, KV, intentions, kill -9 of the leader and of a client agent, snapshots).
//! This module only builds `mesh-server`, `mesh-client`, `mesh-sidecar` and `mesh-e2e` into
//! the shared target directory and replaces itself with `mesh-e2e [args] --bin-dir
//! <target>/debug`.
//!
//! Debug builds, not release: the story checks behaviour, not speed, and these are the
//! binaries `cargo xtask test` builds anyway, so no second RocksDB build is needed. Exit status
//! is mesh-e2e's: 0 when every step passed, 1 when one failed, 130 when interrupted.

use std::os::unix::process::CommandExt as _;

use anyhow::Context;

/// The product binaries the story runs, each a package with a binary of the same name.
const PRODUCTS: [&str; 3] = ["mesh-server", "mesh-client", "mesh-sidecar"];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let help = crate::is_help(args);
    if !help {
        // Every product binary links RocksDB.
        crate::prereqs::ensure()?;
    }
    let target_dir = crate::target_dir();
    eprintln!("building debug binaries into {}", target_dir.display());
    crate::run(crate::cargo().args(build_args(help)))?;
    let debug = target_dir.join("debug");
    let binary = debug.join("mesh-e2e");
    let mut e2e = std::process::Command::new(&binary);
    e2e.env("CARGO_TARGET_DIR", &target_dir).args(args);
    if !help && !crate::names_flag(args, "bin-dir") {
        e2e.arg("--bin-dir").arg(&debug);
    }
    let err = e2e.exec();
    Err(err).with_context(|| format!("running {}", binary.display()))
}

/// `cargo build` of mesh-e2e, and of the products unless only help was asked for.
fn build_args(help: bool) -> Vec<&'static str> {
    let mut args = vec!["build", "-p", "e2e"];
    if !help {
        for product in PRODUCTS {
            args.extend(["-p", product]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::build_args;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn help_builds_nothing_else() {
        assert!(crate::is_help(&args("--help")));
        assert!(!crate::is_help(&args("--short")));
        assert_eq!(build_args(true), ["build", "-p", "e2e"]);
    }

    #[test]
    fn builds_every_product_in_debug() {
        let built = build_args(false);
        assert!(!built.contains(&"--release"));
        for product in ["e2e", "mesh-server", "mesh-client", "mesh-sidecar"] {
            assert!(built.windows(2).any(|w| w == ["-p", product]), "{built:?}");
        }
    }

    #[test]
    fn a_given_bin_dir_is_not_passed_twice() {
        assert!(crate::names_flag(&args("--short --bin-dir /x"), "bin-dir"));
        assert!(!crate::names_flag(&args("--short"), "bin-dir"));
    }
}
