//! Flap damping (Consul's `StatusHandler`): `SuccessBeforePassing`,
//! `FailuresBeforeWarning` and `FailuresBeforeCritical`.
//!
//! Consecutive results are counted. A passing or warning result counts as a success and is
//! reported once `success_before_passing` successes in a row have been seen; a critical result
//! counts as a failure and is reported as critical once `failures_before_critical` failures in
//! a row have been seen, or as warning (with the failure's output) once
//! `failures_before_warning` have. Until a threshold is reached the previous status stands.
//!
//! As in Consul, both counters start at their thresholds, so the very first result is reported
//! as is; damping applies to changes after that.

use catalog::Status;

use super::Outcome;

/// A check's damping thresholds (zero everywhere: every result is reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Damping {
    /// Consecutive successes needed before a success is reported.
    pub success_before_passing: u32,
    /// Consecutive failures needed before a failure is reported as warning. Consul defaults
    /// it to `failures_before_critical` (the check definition resolves that).
    pub failures_before_warning: u32,
    /// Consecutive failures needed before a failure is reported as critical.
    pub failures_before_critical: u32,
}

/// Applies [`Damping`] to a stream of probe outcomes.
#[derive(Debug, Clone)]
pub struct Damper {
    damping: Damping,
    successes: u32,
    failures: u32,
}

impl Damper {
    pub fn new(damping: Damping) -> Damper {
        Damper {
            damping,
            successes: damping.success_before_passing,
            failures: damping.failures_before_critical,
        }
    }

    /// Feeds one probe result; returns what to report, or `None` to keep the previous status.
    pub fn observe(&mut self, outcome: Outcome) -> Option<Outcome> {
        let d = self.damping;
        match outcome.status {
            Status::Passing | Status::Warning => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                (self.successes >= d.success_before_passing).then_some(outcome)
            }
            Status::Critical => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                if self.failures >= d.failures_before_critical {
                    Some(outcome)
                } else if self.failures >= d.failures_before_warning {
                    Some(Outcome {
                        status: Status::Warning,
                        output: outcome.output,
                    })
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damping(success: u32, warning: u32, critical: u32) -> Damping {
        Damping {
            success_before_passing: success,
            failures_before_warning: warning,
            failures_before_critical: critical,
        }
    }

    /// Feeds statuses (P/W/C) and returns what was reported for each (`-` for nothing).
    fn run(d: Damping, statuses: &str) -> String {
        let mut damper = Damper::new(d);
        statuses
            .chars()
            .map(|c| {
                let status = match c {
                    'P' => Status::Passing,
                    'W' => Status::Warning,
                    'C' => Status::Critical,
                    other => panic!("bad status {other}"),
                };
                let reported = damper.observe(Outcome {
                    status,
                    output: c.to_string(),
                });
                match reported {
                    None => '-',
                    Some(o) => {
                        // The probe's output is always kept.
                        assert_eq!(o.output, c.to_string());
                        match o.status {
                            Status::Passing => 'P',
                            Status::Warning => 'W',
                            Status::Critical => 'C',
                        }
                    }
                }
            })
            .collect()
    }

    #[test]
    fn no_damping_reports_everything() {
        let d = Damping::default();
        assert_eq!(run(d, "PCWPCCPW"), "PCWPCCPW");
    }

    #[test]
    fn first_result_is_reported_immediately() {
        let d = damping(3, 3, 3);
        assert_eq!(run(d, "P"), "P");
        assert_eq!(run(d, "C"), "C");
        assert_eq!(run(d, "W"), "W");
    }

    #[test]
    fn success_before_passing() {
        let d = damping(3, 0, 0);
        // After a failure, three successes in a row are needed.
        assert_eq!(run(d, "PCPPPP"), "PC--PP");
        // A failure resets the streak.
        assert_eq!(run(d, "CPPCPPP"), "C--C--P");
    }

    #[test]
    fn failures_before_critical() {
        let d = damping(0, 3, 3);
        assert_eq!(run(d, "PCCCC"), "P--CC");
        // A success resets the streak.
        assert_eq!(run(d, "PCCPCCC"), "P--P--C");
    }

    #[test]
    fn failures_before_warning_then_critical() {
        let d = damping(0, 1, 3);
        assert_eq!(run(d, "PCCCCP"), "PWWCCP");
        let d = damping(0, 2, 4);
        assert_eq!(run(d, "PCCCCC"), "P-WWCC");
    }

    #[test]
    fn warning_results_count_as_successes() {
        // A warning (e.g. HTTP 429) resets the failure streak and is itself subject to
        // success_before_passing.
        let d = damping(2, 2, 2);
        assert_eq!(run(d, "CCWCW"), "CC---");
        assert_eq!(run(d, "CWW"), "C-W");
        let d = damping(0, 2, 2);
        assert_eq!(run(d, "PCWC"), "P-W-");
    }

    #[test]
    fn warning_threshold_above_critical_never_warns() {
        // Definitions reject this, but the damper stays sane: critical wins.
        let d = damping(0, 5, 2);
        assert_eq!(run(d, "PCCC"), "P-CC");
    }

    #[test]
    fn combined_thresholds_flapping_target() {
        let d = damping(2, 1, 2);
        assert_eq!(run(d, "PCPCPPCCP"), "PW-W-PWC-");
    }

    #[test]
    fn counters_saturate() {
        let mut damper = Damper::new(damping(u32::MAX, u32::MAX, u32::MAX));
        for _ in 0..3 {
            assert!(damper.observe(Outcome::passing("")).is_some());
        }
        assert!(damper.observe(Outcome::critical("")).is_none());
    }
}
