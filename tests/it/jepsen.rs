//! A short linearizability check in CI: `mesh-jepsen` against three debug servers with the
//! kill -9 / SIGSTOP nemesis, in both linearizable read modes, and once more with the servers
//! in network namespaces and network partitions among the faults (skipped, like
//! `partition.rs`, where namespaces cannot be used). `cargo xtask jepsen` runs the long version
//! against release builds.

use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::binary;

/// mesh-jepsen's exit status when `--partitions` cannot create network namespaces here.
const NAMESPACES_UNAVAILABLE: i32 = 4;

/// How a run ended, if it did not fail the test.
enum Ran {
    /// The history is linearizable; mesh-jepsen's whole output.
    Linearizable(String),
    /// `--partitions`, where network namespaces cannot be used; mesh-jepsen's message.
    NamespacesUnavailable(String),
}

/// Runs mesh-jepsen with `args` (after `--mesh-server`), bounded.
fn short_run(what: &str, args: &[&str]) -> anyhow::Result<Ran> {
    let jepsen = binary("mesh-jepsen")?;
    let server = binary("mesh-server")?;
    let mut child = Command::new(jepsen)
        .arg("--mesh-server")
        .arg(server)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Bounded: a run takes its duration plus a few seconds, checking under a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() >= deadline {
            // SIGTERM first: mesh-jepsen then kills its servers and deletes its namespaces.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let grace = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() && std::time::Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(50));
            }
            child.kill()?;
            child.wait()?;
            anyhow::bail!("mesh-jepsen ({what}) did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(NAMESPACES_UNAVAILABLE) {
        return Ok(Ran::NamespacesUnavailable(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    assert!(
        out.status.success(),
        "mesh-jepsen ({what}) failed:\n{report}"
    );
    assert!(report.contains("result: linearizable"), "{report}");
    Ok(Ran::Linearizable(report))
}

fn kills_and_pauses(consistency: &str, seed: &str, first_octet: &str) -> anyhow::Result<()> {
    short_run(
        consistency,
        &[
            "--duration-secs",
            "8",
            "--fault-interval-secs",
            "2",
            "--consistency",
            consistency,
            "--seed",
            seed,
            "--first-octet",
            first_octet,
        ],
    )?;
    Ok(())
}

#[test]
fn default_reads_stay_linearizable_under_kills_and_pauses() -> anyhow::Result<()> {
    kills_and_pauses("default", "1013", "91")
}

#[test]
fn consistent_reads_stay_linearizable_under_kills_and_pauses() -> anyhow::Result<()> {
    kills_and_pauses("consistent", "2022", "95")
}

#[test]
fn default_reads_stay_linearizable_under_partitions() -> anyhow::Result<()> {
    // Seed 15: the nemesis cuts the leader off at about 2 s for 3 s, then kills servers.
    let report = match short_run(
        "partitions",
        &[
            "--partitions",
            "--duration-secs",
            "12",
            "--fault-interval-secs",
            "2",
            "--consistency",
            "default",
            "--seed",
            "15",
        ],
    )? {
        Ran::Linearizable(report) => report,
        Ran::NamespacesUnavailable(why) => {
            eprintln!("skipping: network namespaces unavailable: {why}");
            return Ok(());
        }
    };
    assert!(
        report.contains("partition (cut off from the others), healed after"),
        "no partition was injected:\n{report}"
    );
    Ok(())
}
