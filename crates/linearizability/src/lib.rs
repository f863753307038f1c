//! A linearizability checker for histories of concurrent operations on independent registers
//! (KV keys), in the style of Knossos and Porcupine.
//!
//! The history is partitioned by key (linearizability is compositional, so a history is
//! linearizable iff every key's sub-history is), and each key is searched for a linearization
//! with the Wing & Gong backtracking algorithm, Lowe's just-in-time variant, memoizing the
//! `(linearized ops, register state)` pairs already explored. The search is bounded by a step
//! budget: a key that needs more returns [`Verdict::Unknown`] instead of hanging.
//!
//! # The register model and why compare-and-set is on values
//!
//! The register holds `Option<Value>` (`None` = absent, a 404). Consul's CAS compares the
//! key's `ModifyIndex`, not its value; the harness turns it into a CAS on *values* by (1) writing
//! every value at most once (values are unique across the run) and (2) sending
//! `PUT ?cas=<ModifyIndex>` with the index it read together with value `v`, recorded here as
//! `Cas { expected: Some(v) }` (`?cas=0`, "only if absent", is `expected: None`). That is sound
//! because in a correct store the pair `(v, index)` is fixed for the whole interval in which `v`
//! is the current value: `v` is written once, a write gives the key a new, larger index, and ops
//! batched into one raft entry (sharing an index) are never observable in between. So "current
//! index == i" holds exactly when "current value == v", and a verdict in the value model is a
//! verdict in Consul's index model. Values are never reused, so there is no ABA.
//!
//! # Unknown outcomes
//!
//! An operation whose outcome is unknown (timeout, 5xx) may have taken effect at any instant
//! after its invocation, or never. Reads with unknown outcome constrain nothing and are dropped;
//! writes and CAS become *pending*: the search may linearize them anywhere after their invocation
//! and need not linearize them at all. A pending CAS only ever needs linearizing where it would
//! succeed (failing and not happening are indistinguishable).
//!
//! Times are `u64` in any unit that is monotonic across all processes of the history (the
//! harness uses microseconds since its start). An op whose invocation is at the same instant as
//! another's completion counts as concurrent with it, which can only accept more histories.
//!
//! Pure: no IO, no clock, no threads, no randomness. Must never depend on tokio or on mesh crates.

mod history;
mod report;
mod search;

pub use history::{Call, HistoryError, Operation, Outcome, Return, Value};
pub use report::{Anomaly, Step};

use std::collections::BTreeMap;

/// How hard to look before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Search steps allowed per key (each step tries one candidate or backtracks once). Narrowing
    /// a failing key down to its shortest unlinearizable prefix gets the same budget again.
    pub steps_per_key: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            steps_per_key: 5_000_000,
        }
    }
}

/// The checker's answer for a whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// At least one key has none. `undecided` lists keys whose search ran out of budget.
    NotLinearizable {
        anomalies: Vec<Anomaly>,
        undecided: Vec<String>,
    },
    /// No anomaly found, but these keys ran out of budget before a linearization was found.
    Unknown { undecided: Vec<String> },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks `history` against a set of independent registers, all initially absent.
///
/// Errors only on malformed input (a return of the wrong kind, a completion before its
/// invocation); a history that merely is not linearizable is a [`Verdict`].
pub fn check(history: &[Operation], limits: Limits) -> Result<Verdict, HistoryError> {
    for (index, op) in history.iter().enumerate() {
        op.validate(index)?;
    }
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_key.entry(op.call.key()).or_default().push(index);
    }
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    for (key, indexes) in by_key {
        match search::check_key(history, &indexes, limits) {
            search::KeyVerdict::Linearizable => {}
            search::KeyVerdict::Undecided => undecided.push(key.to_owned()),
            search::KeyVerdict::NotLinearizable(anomaly) => anomalies.push(*anomaly),
        }
    }
    Ok(if !anomalies.is_empty() {
        Verdict::NotLinearizable {
            anomalies,
            undecided,
        }
    } else if !undecided.is_empty() {
        Verdict::Unknown { undecided }
    } else {
        Verdict::Linearizable
    })
}

#[cfg(test)]
mod tests;
