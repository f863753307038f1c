//! Script checks (Consul's `CheckMonitor`): run a command in its own process group with
//! stdout and stderr captured together (the last `output_max` bytes, prefixed with
//! `Captured N of M bytes` when more was written). Exit 0 is passing, 1 warning, anything
//! else critical. On timeout the whole process group is killed and the check is critical
//! with `Timed out (<timeout>) running check`.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::io::{error_text, Tail};
use super::Outcome;

/// Runs a script check. `args` run directly; when empty, `shell` is a command line for
/// `$SHELL -c` (or `/bin/sh -c`).
pub(crate) async fn check(
    args: &[String],
    shell: Option<&str>,
    timeout: Duration,
    output_max: usize,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut command = match command_for(args, shell) {
        Some(command) => command,
        None => return Outcome::critical("need an executable to run"),
    };
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();

    // One pipe for both streams keeps their interleaving, like Go's shared writer.
    let (sender, mut receiver) = match pipe::pipe() {
        Ok(pair) => pair,
        Err(e) => return Outcome::critical(format!("failed to create pipe: {}", error_text(&e))),
    };
    let stdio = sender
        .into_blocking_fd()
        .and_then(|out| Ok((out.try_clone()?, out)));
    let (stdout, stderr) = match stdio {
        Ok(pair) => pair,
        Err(e) => return Outcome::critical(format!("failed to create pipe: {}", error_text(&e))),
    };
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let spawned = command.spawn();
    // Close our copies of the pipe's write end, so reading ends when the script's do.
    drop(command);
    let child = match spawned {
        Ok(child) => child,
        Err(e) => return Outcome::critical(spawn_error(&program, &e)),
    };
    let mut running = Running::new(child);

    let mut output = Tail::new(output_max);
    let finished = tokio::time::timeout_at(deadline, async {
        let mut buf = vec![0u8; 8192];
        loop {
            match receiver.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => output.push(&buf[..n]),
            }
        }
        running.child.wait().await
    })
    .await;

    match finished {
        Ok(Ok(status)) => {
            running.reaped();
            outcome_for(status, output.text_with_summary())
        }
        Ok(Err(e)) => Outcome::critical(error_text(&e)),
        Err(_) => {
            running.kill().await;
            let mut message = format!(
                "Timed out ({}) running check",
                config::format_go_duration(timeout)
            );
            let output = output.text_with_summary();
            if !output.is_empty() {
                message.push_str("\n\n");
                message.push_str(&output);
            }
            Outcome::critical(message)
        }
    }
}

fn command_for(args: &[String], shell: Option<&str>) -> Option<Command> {
    if let Some((program, rest)) = args.split_first() {
        let mut command = Command::new(program);
        command.args(rest);
        return Some(command);
    }
    let script = shell.filter(|s| !s.is_empty())?;
    let interpreter = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".to_owned());
    let mut command = Command::new(interpreter);
    command.arg("-c").arg(script);
    Some(command)
}

/// Go's texts for a command that could not start.
fn spawn_error(program: &str, e: &std::io::Error) -> String {
    if !program.contains('/') && e.kind() == std::io::ErrorKind::NotFound {
        format!("exec: {program:?}: executable file not found in $PATH")
    } else {
        format!("fork/exec {program}: {}", error_text(e))
    }
}

fn outcome_for(status: ExitStatus, output: String) -> Outcome {
    match status.code() {
        Some(0) => Outcome::passing(output),
        Some(1) => Outcome::warning(output),
        _ => Outcome::critical(output),
    }
}

/// A started script. Until it has been reaped, dropping this (e.g. when the runner is
/// aborted mid-check) kills its whole process group; the child itself is `kill_on_drop`.
#[derive(Debug)]
struct Running {
    child: Child,
    /// The process group (the child's pid), while the child is unreaped.
    group: Option<Pid>,
}

impl Running {
    fn new(child: Child) -> Running {
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        Running { child, group }
    }

    /// The child has been waited for: its pid may be reused, so never signal it again.
    fn reaped(&mut self) {
        self.group = None;
    }

    /// Kills the process group and reaps the child (giving up on reaping after a second; the
    /// runtime reaps it later).
    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
            self.reaped();
        }
    }

    fn kill_group(&self) {
        if let Some(group) = self.group {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testsupport::{alive, within};
    use catalog::Status;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    async fn run(args: Vec<String>) -> Outcome {
        within(check(&args, None, Duration::from_secs(20), 4096)).await
    }

    #[tokio::test]
    async fn exit_codes_map_to_statuses() {
        assert_eq!(run(sh("echo ok")).await, Outcome::passing("ok\n"));
        assert_eq!(
            run(sh("echo slow; exit 1")).await,
            Outcome::warning("slow\n")
        );
        assert_eq!(
            run(sh("echo down; exit 2")).await,
            Outcome::critical("down\n")
        );
        assert_eq!(run(sh("kill -9 $$")).await, Outcome::critical(""));
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_combined_in_order() {
        let out = run(sh("echo one; echo two >&2; echo three")).await;
        assert_eq!(out, Outcome::passing("one\ntwo\nthree\n"));
    }

    #[tokio::test]
    async fn long_output_keeps_the_tail() {
        let args = sh("printf 'abcdefghij'; printf '0123456789'");
        let out = within(check(&args, None, Duration::from_secs(20), 8)).await;
        assert_eq!(
            out,
            Outcome::passing("Captured 8 of 20 bytes\n...\n23456789")
        );
    }

    #[tokio::test]
    async fn shell_command_line_runs_when_no_args() {
        let out = within(check(
            &[],
            Some("echo via shell; exit 1"),
            Duration::from_secs(20),
            4096,
        ))
        .await;
        assert_eq!(out, Outcome::warning("via shell\n"));
    }

    #[tokio::test]
    async fn nothing_to_run_is_critical() {
        let out = within(check(&[], None, Duration::from_secs(20), 4096)).await;
        assert_eq!(out, Outcome::critical("need an executable to run"));
    }

    #[tokio::test]
    async fn missing_program_is_critical() {
        let out = run(vec!["mesh-no-such-program".into()]).await;
        assert_eq!(
            out,
            Outcome::critical("exec: \"mesh-no-such-program\": executable file not found in $PATH")
        );
        let out = run(vec!["/nonexistent/mesh-check".into()]).await;
        assert_eq!(
            out,
            Outcome::critical("fork/exec /nonexistent/mesh-check: no such file or directory")
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        // The background sleeper holds the output pipe open; it must die with the script.
        let out = within(check(
            &sh("sleep 30 & echo $!; sleep 30"),
            None,
            Duration::from_millis(500),
            4096,
        ))
        .await;
        assert_eq!(out.status, Status::Critical);
        let pid = out
            .output
            .strip_prefix("Timed out (500ms) running check\n\n")
            .and_then(|rest| rest.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("unexpected output {:?}", out.output));
        within(async {
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}
