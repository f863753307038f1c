//! Runs `mesh-client` commands as an operator would, bounded in time, into the transcript:
//! on the agent's host (`ip netns exec <its namespace> mesh-client ...` in the namespace
//! layout), against its HTTP API there.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use test_support::in_netns::Netns;

use crate::dc::CliAddr;
use crate::steps::Transcript;

/// How long one command may run.
const COMMAND_BOUND: Duration = Duration::from_secs(30);

/// What one run printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Cli {
    binary: PathBuf,
    transcript: Transcript,
}

impl Cli {
    pub(crate) fn new(binary: PathBuf, transcript: Transcript) -> Cli {
        Cli { binary, transcript }
    }

    /// `mesh-client <command> [-http-addr <http>] <args>`, in the agent's namespace (without
    /// an agent, in this process's).
    pub(crate) async fn run(
        &self,
        command: &str,
        agent: Option<&CliAddr>,
        args: &[&str],
    ) -> anyhow::Result<Run> {
        let mut words: Vec<&str> = command.split_whitespace().collect();
        let netns = agent.map_or_else(Netns::own, |a| a.netns.clone());
        if let Some(agent) = agent {
            words.extend(["-http-addr", agent.http.as_str()]);
        }
        words.extend(args);
        let shown = match netns.name() {
            Some(ns) => format!("$ ip netns exec {ns} mesh-client {}", words.join(" ")),
            None => format!("$ mesh-client {}", words.join(" ")),
        };
        let child = tokio::process::Command::from(netns.command(&self.binary))
            .args(&words)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) => {
                self.transcript
                    .note(&format!("{shown}\n(not started: {err})"));
                anyhow::bail!("starting {}: {err}", self.binary.display());
            }
        };
        let output = match tokio::time::timeout(COMMAND_BOUND, child.wait_with_output()).await {
            Ok(output) => output?,
            Err(_) => {
                self.transcript
                    .note(&format!("{shown}\n(killed after {COMMAND_BOUND:?})"));
                anyhow::bail!("`{shown}` ran over {COMMAND_BOUND:?}");
            }
        };
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        self.transcript.note(&format!(
            "{shown}\n{}{}(exit {})",
            run.stdout, run.stderr, run.code
        ));
        Ok(run)
    }

    /// [`Cli::run`], which must exit 0; its stdout.
    pub(crate) async fn ok(
        &self,
        command: &str,
        agent: Option<&CliAddr>,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let run = self.run(command, agent, args).await?;
        anyhow::ensure!(
            run.code == 0,
            "`mesh-client {command} {}` exited {}: {}{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        Ok(run.stdout)
    }
}
