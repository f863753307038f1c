//! The README's story, end to end, on a datacenter of real processes: `cargo xtask e2e`
//! (binary `mesh-e2e`), and its short version in the test suite (`tests/it/e2e.rs`).
//!
//! Three `mesh-server`s, three `mesh-client agent`s and two applications with their
//! `mesh-sidecar`s, with gossip encryption on, each host in its own network namespace: six
//! namespaces (`server-1`..`server-3`, `client-1`..`client-3`, on 192.0.2.10–.15, TEST-NET-1,
//! behind one bridge namespace), every agent gossiping and serving RPC on its namespace's
//! `eth0` address with its HTTP API and DNS on 127.0.0.1 there, like a machine where
//! applications talk to their local agent. db's application and sidecar run in client-1's
//! namespace, web's (and its upstream listener for db) in client-2's. Processes start with
//! `ip netns exec <namespace> <binary>` and are killed by PID; this process reaches HTTP, DNS
//! (UDP and TCP) and the sidecars' listeners through sockets opened inside the right
//! namespace, and runs every `mesh-client` command with `ip netns exec` on the agent's host,
//! against `-http-addr 127.0.0.1:8500`. Where namespaces cannot be made (not root, no `ip`),
//! and with [`Options::loopback`], the same story runs on processes on 127.0.9.0/24 of this
//! host instead (servers on `.1`–`.3`, client agents on `.11`–`.13`, applications and
//! sidecars on `.21` and up), saying so in one line. [`run`] walks the story an operator
//! would, through the `mesh-client` CLI, the HTTP API and DNS:
//!
//! 1. a gossip key from `mesh-client keygen`; three servers (`-bootstrap-expect 3`) elect a
//!    leader; three client agents join; `mesh-client members` shows six alive members, and
//!    `mesh-client keyring -list` that all six use the key;
//! 2. `db` (a TCP echo application) and `web` (an HTTP application, whose upstream is `db`)
//!    are registered on two client agents with sidecar services, both sidecars start; the third
//!    client agent resolves `db` and `web` over DNS (A, SRV over UDP and TCP, and
//!    `db.connect`);
//! 3. `mesh-client kv put` and `kv get` through client agents, and a blocking read woken by a
//!    write;
//! 4. `mesh-client intention create -deny web db`: web's connections through its sidecar are
//!    refused at db's sidecar; `intention create -replace -allow web db`: they go through;
//! 5. the leader is killed with `kill -9`: another server leads, KV writes, DNS and the sidecar
//!    path still work (web → db traffic runs all through, and no exchange may fail); the killed
//!    server restarts, rejoins and catches up, and no registration was lost on the way;
//! 6. the client agent running neither application is killed with `kill -9`: its `serfHealth`
//!    check turns critical on every server; restarted, it passes again;
//! 7. `mesh-client snapshot save`, a KV change, `mesh-client snapshot restore`: the key has its
//!    old value, and the datacenter still serves.
//!
//! Each step prints one line with its duration (`[ok] 3 servers elected a leader (2.1s)`). Every
//! wait is bounded; a failed step ends the run with an error naming the step, with the tail of
//! the logs of the processes it involves. Processes are killed by PID when their handles drop
//! (at the end, on failure, and in `mesh-e2e` on SIGINT/SIGTERM), and the namespaces are then
//! deleted by their exact names (unique per run: they carry the process id and a counter).
//! The run works in a temporary directory that it deletes; [`Options::keep_logs`] copies the
//! processes' logs and a transcript of every command out of it first.
//!
//! The namespaces hold only TEST-NET-1 addresses and touch nothing of the host's own network;
//! on loopback, nothing leaves 127.0.0.0/8.
//!
//! Test-only: talks to the product over its processes, HTTP and DNS, and depends on no mesh
//! crate.

mod checks;
mod cli;
mod dc;
mod steps;
mod story;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// How to run the story.
#[derive(Debug, Clone)]
pub struct Options {
    /// The smallest waits: every step still runs, holds and repeats are cut to a minimum
    /// (the whole run takes well under two minutes on two cores).
    pub short: bool,
    /// Copy every process's log and the transcript (`e2e.log`) here at the end, whether the run
    /// passed or not.
    pub keep_logs: Option<PathBuf>,
    /// Where `mesh-server`, `mesh-client` and `mesh-sidecar` are.
    pub bin_dir: PathBuf,
    /// Run on 127.0.9.0/24 of this host's own network, rather than in a network namespace per
    /// host (the run falls back to this by itself where namespaces cannot be made).
    pub loopback: bool,
}

/// What a passed run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub short: bool,
    pub steps: Vec<StepReport>,
    pub total: Duration,
}

/// One step of a passed run.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// What held at the end of the step, as printed.
    pub title: String,
    pub duration: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.short { "short" } else { "full" };
        write!(
            f,
            "e2e ({kind}): {} steps passed in {:.1}s",
            self.steps.len(),
            self.total.as_secs_f64()
        )
    }
}

/// The binaries the story runs.
const BINARIES: [&str; 3] = ["mesh-server", "mesh-client", "mesh-sidecar"];

/// Runs the whole story on a new datacenter and tears it down.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    check_binaries(&opts.bin_dir)?;
    let work = tempfile::Builder::new()
        .prefix("mesh-e2e-")
        .tempdir()
        .context("creating the working directory")?;
    // Made before any process and dropped after all of them: deletes the namespaces it made.
    let layout = dc::Layout::choose(opts.loopback)?;
    let mut steps = steps::Steps::new(work.path(), opts.short);
    println!(
        "mesh e2e ({}): {}, binaries from {}, working in {}",
        if opts.short { "short" } else { "full" },
        layout.describe(),
        opts.bin_dir.display(),
        work.path().display()
    );
    let outcome = story::run(
        &mut steps,
        &layout,
        &opts.bin_dir.join("mesh-client"),
        story::Pace::new(opts.short),
    )
    .await;
    drop(layout);
    // Every process is gone by now (the story owned them): the logs are complete.
    if let Some(dir) = &opts.keep_logs {
        match keep_logs(work.path(), dir) {
            Ok(n) => println!("kept {n} logs in {}", dir.display()),
            Err(err) => eprintln!("keeping the logs in {}: {err:#}", dir.display()),
        }
    }
    outcome?;
    Ok(steps.report())
}

/// `test_support` starts servers, agents and sidecars from `$MESH_BIN_DIR` (else from next to
/// the test executable): that must be `bin_dir`, and hold every binary.
fn check_binaries(bin_dir: &Path) -> anyhow::Result<()> {
    for name in BINARIES {
        let wanted = bin_dir.join(name);
        let wanted = wanted.canonicalize().with_context(|| {
            format!(
                "{} not found: build it first (`cargo build -p {name}`)",
                wanted.display()
            )
        })?;
        let found = test_support::binary(name)
            .and_then(|p| Ok(p.canonicalize()?))
            .ok();
        anyhow::ensure!(
            found.as_deref() == Some(wanted.as_path()),
            "processes would start from {} rather than {}: set MESH_BIN_DIR={}",
            found.map_or_else(|| "nowhere".to_owned(), |p| p.display().to_string()),
            wanted.display(),
            bin_dir.display()
        );
    }
    Ok(())
}

/// Copies the `*.log` files of `work` into `dir`; how many.
fn keep_logs(work: &Path, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut kept = 0;
    for entry in std::fs::read_dir(work)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.join(name))?;
                kept += 1;
            }
        }
    }
    Ok(kept)
}
