//! Process faults for multi-process tests: SIGSTOP with a guard that always resumes the process,
//! and a bound on any request so that a test against a frozen or partitioned server cannot hang.

use std::future::Future;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

/// Sends `signal` (a name such as `STOP`, `CONT`) to `pid` with `kill(1)`.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .with_context(|| format!("running kill -{signal} {pid}"))?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed: {status}");
    }
    Ok(())
}

/// A process frozen with SIGSTOP. It is sent SIGCONT by [`Stopped::resume`] or, if the test
/// fails first, when the guard drops, so a failing test never leaves a frozen process behind.
/// Declare the guard after the process's handle, so it drops (and resumes) before the handle
/// kills the process.
#[derive(Debug)]
pub struct Stopped {
    pid: Option<u32>,
}

impl Stopped {
    /// SIGSTOPs `pid`.
    pub fn stop(pid: u32) -> anyhow::Result<Self> {
        signal(pid, "STOP")?;
        Ok(Stopped { pid: Some(pid) })
    }

    /// SIGCONTs the process now.
    pub fn resume(mut self) -> anyhow::Result<()> {
        match self.pid.take() {
            Some(pid) => signal(pid, "CONT"),
            None => Ok(()),
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = signal(pid, "CONT");
        }
    }
}

/// Runs `fut`, failing with a message naming `what` if it takes longer than `limit`.
pub async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => bail!("{what}: no answer within {limit:?}"),
    }
}
