//! A product process started by a benchmark: its `Child`, its log file, a liveness check that
//! shows the log's end, and a kill by PID (then reap) when it is dropped, also on error.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context as _};

/// One child process with its log file.
#[derive(Debug)]
pub struct Proc {
    pub name: &'static str,
    pub pid: u32,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name,
            pid: child.id(),
            child: Some(child),
            log,
        })
    }

    /// Fails, with the end of the log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else {
            bail!("{} was killed", self.name);
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(anyhow!(
                "{} (pid {}) exited with {status}; log tail:\n{}",
                self.name,
                self.pid,
                self.log_tail(20)
            )),
            Err(e) => Err(anyhow!("checking on {} (pid {}): {e}", self.name, self.pid)),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: either way the process is gone once reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
