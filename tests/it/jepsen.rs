//! A short linearizability check in CI: `mesh-jepsen` against three debug servers with the
//! kill -9 / SIGSTOP nemesis, in both linearizable read modes. `cargo xtask jepsen` runs the long
//! version against release builds.

use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::binary;

fn short_run(consistency: &str, seed: &str, first_octet: &str) -> anyhow::Result<()> {
    let jepsen = binary("mesh-jepsen")?;
    let server = binary("mesh-server")?;
    let mut child = Command::new(jepsen)
        .arg("--mesh-server")
        .arg(server)
        .args(["--duration-secs", "8", "--fault-interval-secs", "2"])
        .args([
            "--consistency",
            consistency,
            "--seed",
            seed,
            "--first-octet",
            first_octet,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Bounded: the run itself takes about 10 s, checking under a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("mesh-jepsen did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mesh-jepsen ({consistency}) failed:\n{report}"
    );
    assert!(report.contains("result: linearizable"), "{report}");
    Ok(())
}

#[test]
fn default_reads_stay_linearizable_under_kills_and_pauses() -> anyhow::Result<()> {
    short_run("default", "1013", "91")
}

#[test]
fn consistent_reads_stay_linearizable_under_kills_and_pauses() -> anyhow::Result<()> {
    short_run("consistent", "2022", "95")
}
