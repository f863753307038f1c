//! `cargo xtask`: the project's one task runner.
//!
//! - `cargo xtask dev`   : install what a fresh machine lacks, then run `mesh-server --dev`.
//! - `cargo xtask test`  : install what a fresh machine lacks, then build and run every test.
//! - `cargo xtask bench <area>` : benchmarks against the peer users would pick (see docs/benchmarks.md).
//!
//! Builds share one target directory outside the clone (`$CARGO_TARGET_DIR`, else
//! `~/.cache/mesh/target`), so RocksDB compiles once per machine rather than once per clone.

mod bench;
mod prereqs;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!("usage: cargo xtask <dev|test|bench> [args]");
    };
    match task.as_str() {
        "dev" => dev(&args[1..]),
        "test" => test(&args[1..]),
        "bench" => bench::run(&args[1..]),
        other => bail!("unknown task {other:?}; tasks: dev, test, bench"),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    cmd
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

fn test(extra: &[String]) -> anyhow::Result<()> {
    prereqs::ensure()?;
    // Integration tests run the real binaries, which `cargo test` alone does not build.
    run(cargo().args(["build", "--workspace", "--bins"]))?;
    run(cargo().args(["test", "--workspace"]).args(extra))
}
