//! `mesh-e2e`: the README's story on a datacenter of real processes, a network namespace per
//! host (or, with `--loopback` or where namespaces cannot be made, on 127.0.9.0/24; see the
//! `e2e` library). `cargo xtask e2e [--short] [--loopback]` builds the binaries and runs it.
//!
//! Thin: parses the command line and hands over to [`e2e::run`]. Exit status 0 when every step
//! passed, 1 when one failed (the error names it, with the logs of the processes involved),
//! 130 on SIGINT or SIGTERM; every process it started is killed on the way out, and every
//! network namespace it made deleted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// Runs the README's story end to end: 3 servers, 3 client agents, two applications with
/// sidecars; DNS, KV, intentions, kill -9 of the leader and of a client agent, snapshots.
#[derive(Debug, Parser)]
#[command(name = "mesh-e2e")]
struct Args {
    /// The smallest waits and repeats (what the test suite runs).
    #[arg(long)]
    short: bool,
    /// Copy every process's log and the transcript of the run (e2e.log) into DIR at the end.
    #[arg(long = "keep-logs", value_name = "DIR")]
    keep_logs: Option<PathBuf>,
    /// Where mesh-server, mesh-client and mesh-sidecar are (default: next to mesh-e2e).
    #[arg(long = "bin-dir", value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Run every process on 127.0.9.0/24 of this host rather than each host in its own network
    /// namespace (the default, which needs root and iproute2; without them the run falls back
    /// to loopback by itself).
    #[arg(long)]
    loopback: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let bin_dir = match args.bin_dir.map_or_else(own_dir, Ok) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("mesh-e2e: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // test_support starts the processes from $MESH_BIN_DIR; set while this is the only thread.
    std::env::set_var("MESH_BIN_DIR", &bin_dir);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mesh-e2e: building the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let opts = e2e::Options {
        short: args.short,
        keep_logs: args.keep_logs,
        bin_dir,
        loopback: args.loopback,
    };
    runtime.block_on(async {
        tokio::select! {
            outcome = e2e::run(opts) => match outcome {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("mesh-e2e: {err:#}");
                    ExitCode::FAILURE
                }
            },
            // Dropping the run kills every process it started and deletes its namespaces.
            signal = interrupted() => {
                eprintln!("mesh-e2e: {signal}: stopping every process");
                ExitCode::from(130)
            }
        }
    })
}

/// The directory this executable is in.
fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding mesh-e2e's own path")?;
    exe.parent()
        .map(PathBuf::from)
        .context("mesh-e2e's path has no directory")
}

/// Resolves on SIGINT or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
