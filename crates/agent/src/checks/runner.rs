//! The check runner: one tokio task per check that waits a random stagger in
//! `[0, interval)`, then probes, damps and reports, and waits `interval` after each probe
//! finishes (as Consul's check loops do). The task lives exactly as long as its
//! [`RunnerHandle`].

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;

use super::{probe, Damper, Damping, Outcome, Probe};
use crate::definition::MIN_INTERVAL;

/// A running check; dropping it stops the check (an in-flight probe is cancelled, and a
/// running script's process group is killed).
#[derive(Debug)]
pub struct RunnerHandle {
    task: JoinHandle<()>,
}

impl RunnerHandle {
    /// Whether the task has ended (only after it was aborted, or if `report` panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts running `probe` every `interval` (at least 1s) with the given `timeout` and output
/// cap (zero for the defaults), passing each result through a [`Damper`] and calling `report`
/// with those that should be reported. Must be called inside a tokio runtime.
pub fn spawn(
    probe: Probe,
    interval: Duration,
    timeout: Duration,
    output_max: usize,
    damping: Damping,
    report: Arc<dyn Fn(Outcome) + Send + Sync>,
) -> RunnerHandle {
    let interval = interval.max(MIN_INTERVAL);
    let stagger = random_stagger(interval);
    let task = tokio::spawn(async move {
        let mut damper = Damper::new(damping);
        tokio::time::sleep(stagger).await;
        loop {
            let outcome = self::probe(&probe, timeout, output_max).await;
            if let Some(outcome) = damper.observe(outcome) {
                report(outcome);
            }
            tokio::time::sleep(interval).await;
        }
    });
    RunnerHandle { task }
}

/// A uniformly random duration in `[0, interval)`.
fn random_stagger(interval: Duration) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::rng().random_range(0..nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testsupport::{alive, within};
    use catalog::Status;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn reporter() -> (
        Arc<dyn Fn(Outcome) + Send + Sync>,
        mpsc::UnboundedReceiver<Outcome>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let report = Arc::new(move |outcome: Outcome| {
            let _ = tx.send(outcome);
        });
        (report, rx)
    }

    #[test]
    fn stagger_is_below_the_interval() {
        for _ in 0..1000 {
            assert!(random_stagger(Duration::from_secs(1)) < Duration::from_secs(1));
        }
        assert_eq!(random_stagger(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn reports_each_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (report, mut rx) = reporter();
        let handle = spawn(
            Probe::Tcp { addr: addr.clone() },
            Duration::ZERO, // raised to 1s
            Duration::from_secs(5),
            0,
            Damping::default(),
            report,
        );
        for _ in 0..2 {
            let outcome = within(rx.recv()).await.unwrap();
            assert_eq!(outcome.status, Status::Passing);
            assert_eq!(outcome.output, format!("TCP connect {addr}: Success"));
        }
        assert!(!handle.is_finished());
    }

    #[tokio::test]
    async fn damping_applies_to_reports() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (report, mut rx) = reporter();
        let _handle = spawn(
            Probe::Tcp { addr: addr.clone() },
            Duration::from_secs(1),
            Duration::from_secs(5),
            0,
            Damping {
                success_before_passing: 0,
                failures_before_warning: 1,
                failures_before_critical: 2,
            },
            report,
        );
        let first = within(rx.recv()).await.unwrap();
        assert_eq!(first.status, Status::Passing);
        drop(listener);
        // One failure is reported as a warning (with the failure's output), two as critical.
        let refused = format!("dial tcp {addr}: connect: connection refused");
        let second = within(rx.recv()).await.unwrap();
        assert_eq!(second, Outcome::warning(refused.clone()));
        let third = within(rx.recv()).await.unwrap();
        assert_eq!(third, Outcome::critical(refused));
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_task() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (report, mut rx) = reporter();
        let handle = spawn(
            Probe::Tcp { addr },
            Duration::from_secs(1),
            Duration::from_secs(5),
            0,
            Damping::default(),
            report,
        );
        within(rx.recv()).await.unwrap();
        drop(handle);
        // The aborted task drops the report callback and with it the channel's sender.
        within(async { while rx.recv().await.is_some() {} }).await;
    }

    #[tokio::test]
    async fn dropping_the_handle_kills_a_running_script() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let (report, mut rx) = reporter();
        let handle = spawn(
            Probe::Script {
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 60",
                        pid_file.display()
                    ),
                ],
                shell: None,
            },
            Duration::from_secs(1),
            Duration::from_secs(120),
            0,
            Damping::default(),
            report,
        );
        let pid = within(async {
            loop {
                if let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                {
                    return pid;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(alive(pid));
        drop(handle);
        within(async {
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        within(async { while rx.recv().await.is_some() {} }).await;
    }
}
