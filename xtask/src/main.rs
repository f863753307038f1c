//! `cargo xtask`: the project's one task runner.
//!
//! - `cargo xtask dev`   : install what a fresh machine lacks, then run `mesh-server --dev`.
//! - `cargo xtask test`  : install what a fresh machine lacks, then build and run every test.
//! - `cargo xtask bench <area>` : benchmarks against the peer users would pick (see docs/benchmarks.md).
//! - `cargo xtask jepsen` : concurrent clients and a nemesis against a real three-server
//!   datacenter; the history is checked for linearizability.
//! - `cargo xtask e2e [--short]` : the README's story on a datacenter of real processes (three
//!   servers, three client agents, two applications with sidecars), kill -9 included.
//! - `cargo xtask fuzz [--seconds N] [--target NAME]` : each fuzz target of `fuzz/` for a bounded
//!   time (cargo-fuzz, nightly), with a table of executions and results.
//!
//! Builds share one target directory outside the clone (`$CARGO_TARGET_DIR`, else
//! `~/.cache/mesh/target`), so RocksDB compiles once per machine rather than once per clone.

mod bench;
mod e2e;
mod fuzz;
mod jepsen;
mod prereqs;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!("usage: cargo xtask <dev|test|bench|jepsen|e2e|fuzz> [args]");
    };
    match task.as_str() {
        "dev" => dev(&args[1..]),
        "test" => test(&args[1..]),
        "bench" => bench::run(&args[1..]),
        "jepsen" => jepsen::run(&args[1..]),
        "e2e" => e2e::run(&args[1..]),
        "fuzz" => fuzz::run(&args[1..]),
        other => bail!("unknown task {other:?}; tasks: dev, test, bench, jepsen, e2e, fuzz"),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the running process; prefer it to the value baked in
    // at compile time, which names whichever checkout last built xtask into a shared target dir.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The shared target directory for everything but xtask itself.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        // cargo runs from the workspace root, so a relative directory is taken from here.
        let dir = PathBuf::from(dir);
        return std::env::current_dir().map_or(dir.clone(), |cwd| cwd.join(&dir));
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/mesh/target"),
        None => workspace_root().join("target"),
    }
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    // CI builds a fresh clone at a new path each time; incremental caches, kept per path in the
    // shared target directory, would only pile up (28 GB once). Developers keep theirs.
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

/// Builds `package` and the product binaries `products` (each a package with a binary of the
/// same name, e.g. `mesh-server`) in release mode into the shared target directory, then
/// replaces this process with `binary args`, adding `--<product> <release>/<product>` for each
/// product the caller did not name. Returns only on failure.
pub(crate) fn build_release_and_exec(
    package: &str,
    binary: &str,
    args: &[String],
    products: &[&str],
) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    if !products.is_empty() {
        // Every product binary links RocksDB.
        prereqs::ensure()?;
    }
    let target_dir = target_dir();
    let mut build = cargo();
    build.args(["build", "--release", "-p", package]);
    for product in products {
        build.args(["-p", product]);
    }
    eprintln!("building release binaries into {}", target_dir.display());
    run(&mut build)?;
    let release = target_dir.join("release");
    let mut tool = Command::new(release.join(binary));
    tool.env("CARGO_TARGET_DIR", &target_dir).args(args);
    for product in products {
        if !names_flag(args, product) {
            tool.arg(format!("--{product}")).arg(release.join(product));
        }
    }
    let err = tool.exec();
    Err(err).with_context(|| format!("running {}", release.join(binary).display()))
}

/// Whether `args` already pass `--<flag>` (as `--flag VALUE` or `--flag=VALUE`).
fn names_flag(args: &[String], flag: &str) -> bool {
    let long = format!("--{flag}");
    args.iter().any(|a| {
        a.strip_prefix(long.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
}

/// `--help`, `-h` or a leading `help`: nothing but the tool itself needs building.
pub(crate) fn is_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h") || args.first().is_some_and(|a| a == "help")
}

pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn dev(extra: &[String]) -> anyhow::Result<()> {
    prereqs::ensure()?;
    run(cargo()
        .args(["run", "--quiet", "-p", "mesh-server", "--", "-dev"])
        .args(extra))
}

/// Binaries that must never link RocksDB (see docs/architecture.md: only `mesh-server` links
/// `raft-store`): a client agent on every VM should carry none of the server's storage.
const WITHOUT_ROCKSDB: &[&str] = &["mesh-client", "mesh-sidecar"];

/// Fails when one of [`WITHOUT_ROCKSDB`] depends on RocksDB, naming the path to it.
fn check_no_rocksdb() -> anyhow::Result<()> {
    for package in WITHOUT_ROCKSDB {
        let output = cargo()
            .args(["tree", "--quiet", "-e", "normal", "-p", package])
            .args(["--invert", "librocksdb-sys"])
            .output()
            .with_context(|| format!("cargo tree -p {package}"))?;
        if output.status.success() {
            bail!(
                "{package} links RocksDB, which only mesh-server may:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.contains("did not match any packages") {
            bail!("cargo tree -p {package} failed: {stderr}");
        }
    }
    Ok(())
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    prereqs::ensure()?;
    check_no_rocksdb()?;
    // Integration tests run the real binaries, which `cargo test` alone does not build.
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]).args(extra);
    let totals = run_counting_tests(&mut cmd)?;
    // One closing line for the whole workspace: cargo's own last line is only its last crate's.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds one libtest summary line: `test result: ok. 12 passed; 0 failed; ...`.
    fn add_summary(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}

/// Runs `cmd`, echoing its output, and sums the libtest summaries it prints.
fn run_counting_tests(cmd: &mut Command) -> anyhow::Result<Totals> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let stdout = child.stdout.take().context("capturing cargo test output")?;
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        totals.add_summary(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        println!(
            "tests: {} passed, {} failed",
            totals.passed,
            totals.failed.max(1)
        );
        bail!("{cmd:?} failed with {status}");
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::{names_flag, Totals};

    #[test]
    fn named_products_are_not_passed_twice() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(names_flag(&args("kv --mesh-server /x"), "mesh-server"));
        assert!(names_flag(&args("kv --mesh-server=/x"), "mesh-server"));
        assert!(!names_flag(&args("gossip --mesh-server /x"), "mesh-client"));
        assert!(!names_flag(&args("kv --mesh-server-log /x"), "mesh-server"));
    }

    #[test]
    fn sums_libtest_summaries() {
        let mut totals = Totals::default();
        totals.add_summary("test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s");
        totals.add_summary(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        totals.add_summary("running 5 tests");
        assert_eq!(
            totals,
            Totals {
                passed: 15,
                failed: 2
            }
        );
    }
}
