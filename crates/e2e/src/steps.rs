//! Steps of the story: each runs bounded, prints one line with its duration, and on failure
//! becomes an error naming the step, with the tails of the logs of the processes it involves.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Report, StepReport};

/// How many lines of each log a failure shows.
const TAIL_LINES: usize = 40;

/// The transcript of a run (`e2e.log` in the working directory): every step and every command
/// with what it printed.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    path: PathBuf,
}

impl Transcript {
    pub(crate) fn note(&self, text: &str) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{text}");
        }
    }
}

#[derive(Debug)]
pub(crate) struct Steps {
    work: PathBuf,
    short: bool,
    started: Instant,
    done: Vec<StepReport>,
    transcript: Transcript,
}

impl Steps {
    pub(crate) fn new(work: &Path, short: bool) -> Steps {
        Steps {
            work: work.to_path_buf(),
            short,
            started: Instant::now(),
            done: Vec::new(),
            transcript: Transcript {
                path: work.join("e2e.log"),
            },
        }
    }

    pub(crate) fn work(&self) -> &Path {
        &self.work
    }

    pub(crate) fn transcript(&self) -> Transcript {
        self.transcript.clone()
    }

    /// Runs one step: `step` must finish within `bound`. `logs` name the processes whose logs
    /// (`<name>.log` in the working directory) a failure shows.
    pub(crate) async fn run<T>(
        &mut self,
        title: &str,
        logs: &[&str],
        bound: Duration,
        step: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.run_noted(title, logs, bound, async {
            step.await.map(|value| (value, String::new()))
        })
        .await
    }

    /// [`Steps::run`] for a step that also says what it found (appended to its line).
    pub(crate) async fn run_noted<T>(
        &mut self,
        title: &str,
        logs: &[&str],
        bound: Duration,
        step: impl Future<Output = anyhow::Result<(T, String)>>,
    ) -> anyhow::Result<T> {
        let number = self.done.len() + 1;
        self.transcript
            .note(&format!("\n=== step {number}: {title}"));
        let started = Instant::now();
        let outcome = match tokio::time::timeout(bound, step).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!("the step ran over its bound of {bound:?}")),
        };
        let took = started.elapsed();
        match outcome {
            Ok((value, note)) => {
                let title = if note.is_empty() {
                    title.to_owned()
                } else {
                    format!("{title}: {note}")
                };
                let line = format!("[ok] {title} ({:.1}s)", took.as_secs_f64());
                println!("{line}");
                self.transcript.note(&line);
                self.done.push(StepReport {
                    title,
                    duration: took,
                });
                Ok(value)
            }
            Err(err) => {
                let line = format!("[FAILED] {title} ({:.1}s)", took.as_secs_f64());
                println!("{line}");
                let mut message = format!(
                    "e2e step {number} failed after {:.1}s, not done: \"{title}\"\ncause: {err:#}",
                    took.as_secs_f64()
                );
                for name in logs {
                    let path = self.work.join(format!("{name}.log"));
                    let _ = write!(
                        message,
                        "\n--- last {TAIL_LINES} lines of {name}'s log ({}) ---\n{}",
                        path.display(),
                        tail(&path, TAIL_LINES)
                    );
                }
                self.transcript.note(&format!("{line}\n{message}"));
                Err(anyhow::anyhow!(message))
            }
        }
    }

    pub(crate) fn report(&self) -> Report {
        Report {
            short: self.short,
            steps: self.done.clone(),
            total: self.started.elapsed(),
        }
    }
}

/// The last `lines` lines of the file at `path` (or why there are none).
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(no log: {err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.log");
        std::fs::write(&path, "1\n2\n3\n4\n").expect("write");
        assert_eq!(tail(&path, 2), "3\n4");
        assert_eq!(tail(&path, 10), "1\n2\n3\n4");
        assert!(tail(&dir.path().join("none.log"), 2).starts_with("(no log:"));
    }

    #[tokio::test]
    async fn a_failed_step_names_itself_and_shows_the_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("server-1.log"), "booting\nboom\n").expect("write");
        let mut steps = Steps::new(dir.path(), true);
        steps
            .run("the first step held", &[], Duration::from_secs(5), async {
                Ok(())
            })
            .await
            .expect("the first step");
        let err = steps
            .run(
                "the leader answered",
                &["server-1"],
                Duration::from_secs(5),
                async { anyhow::Result::<()>::Err(anyhow::anyhow!("no leader")) },
            )
            .await
            .expect_err("the second step fails");
        let text = format!("{err:#}");
        assert!(text.contains("step 2"), "{text}");
        assert!(text.contains("\"the leader answered\""), "{text}");
        assert!(text.contains("cause: no leader"), "{text}");
        assert!(text.contains("booting\nboom"), "{text}");
        let slow = steps
            .run("a slow step", &[], Duration::from_millis(10), async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await
            .expect_err("over its bound");
        assert!(format!("{slow:#}").contains("ran over its bound"));
        let report = steps.report();
        assert_eq!(report.steps.len(), 1);
        assert_eq!(report.steps[0].title, "the first step held");
        let transcript =
            std::fs::read_to_string(dir.path().join("e2e.log")).expect("the transcript");
        assert!(transcript.contains("[FAILED] the leader answered"));
    }
}
