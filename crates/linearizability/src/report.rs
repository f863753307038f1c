//! The anomaly report: which key, the shortest unlinearizable prefix, the ops around the op that
//! could not be placed, and how far the search got.

use std::fmt;

use crate::history::{Operation, Value};

/// How many ops completed before the culprit's invocation the report shows.
const EARLIER_OPS_SHOWN: usize = 8;
/// How many steps of the longest linearization the report shows.
const STEPS_SHOWN: usize = 12;

/// One step of a partial linearization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index of the op in the checked history.
    pub index: usize,
    /// The register after it.
    pub state_after: Option<Value>,
}

/// A key whose sub-history has no linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub key: String,
    /// Ops on this key in the whole history.
    pub key_ops: usize,
    /// Indexes (into the history) of the ops in the shortest unlinearizable prefix found; the
    /// prefix is cut at the culprit's completion, and ops still running then count as pending.
    pub prefix: Vec<usize>,
    /// Whether `prefix` is the shortest (`false`: the budget ran out while narrowing, and the
    /// prefix is the whole sub-history).
    pub prefix_is_shortest: bool,
    /// The op whose completion makes the prefix unlinearizable.
    pub culprit: usize,
    /// The ops a human should look at: the culprit, every op concurrent with it, and the last
    /// few that completed before it was invoked, in invocation order.
    pub involved: Vec<(usize, Operation)>,
    /// The longest partial linearization of the prefix the search found.
    pub longest_linearization: Vec<Step>,
    /// The ops of the longest linearization's steps, for display.
    steps_ops: Vec<Operation>,
}

impl Anomaly {
    pub(crate) fn new(
        history: &[Operation],
        key_indexes: &[usize],
        culprit: usize,
        prefix: Vec<usize>,
        prefix_is_shortest: bool,
        longest_linearization: Vec<Step>,
    ) -> Self {
        let c = &history[culprit];
        let c_end = c.complete_time().unwrap_or(u64::MAX);
        let members: std::collections::HashSet<usize> = prefix.iter().copied().collect();
        let in_prefix = |i: &usize| members.contains(i);
        let concurrent = |op: &Operation| {
            op.invoke_time <= c_end && op.complete_time().is_none_or(|t| t >= c.invoke_time)
        };
        let mut earlier: Vec<usize> = key_indexes
            .iter()
            .copied()
            .filter(in_prefix)
            .filter(|&i| {
                history[i]
                    .complete_time()
                    .is_some_and(|t| t < c.invoke_time)
            })
            .collect();
        earlier.sort_by_key(|&i| history[i].complete_time());
        let earlier = &earlier[earlier.len().saturating_sub(EARLIER_OPS_SHOWN)..];
        let mut involved: Vec<usize> = key_indexes
            .iter()
            .copied()
            .filter(|i| in_prefix(i) && (*i == culprit || concurrent(&history[*i])))
            .chain(earlier.iter().copied())
            .collect();
        involved.sort_by_key(|&i| (history[i].invoke_time, i));
        involved.dedup();
        Anomaly {
            key: c.call.key().to_owned(),
            key_ops: key_indexes.len(),
            prefix,
            prefix_is_shortest,
            culprit,
            involved: involved.iter().map(|&i| (i, history[i].clone())).collect(),
            steps_ops: longest_linearization
                .iter()
                .map(|s| history[s.index].clone())
                .collect(),
            longest_linearization,
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shortest = if self.prefix_is_shortest {
            "shortest unlinearizable prefix"
        } else {
            "unlinearizable history (search budget ran out before the shortest prefix was found)"
        };
        writeln!(f, "key {:?} is not linearizable", self.key)?;
        writeln!(
            f,
            "  {shortest}: {} of {} ops on this key, cut where op #{} completes",
            self.prefix.len(),
            self.key_ops,
            self.culprit
        )?;
        writeln!(
            f,
            "  ops involved (concurrent with #{}, and the last {EARLIER_OPS_SHOWN} completed before it):",
            self.culprit
        )?;
        for (i, op) in &self.involved {
            let mark = if *i == self.culprit { "=>" } else { "  " };
            writeln!(f, "  {mark} #{i:<6} {op}")?;
        }
        let n = self.longest_linearization.len();
        writeln!(
            f,
            "  longest linearization found: {n} ops{}",
            if n > STEPS_SHOWN {
                format!(", the last {STEPS_SHOWN}:")
            } else {
                ":".to_owned()
            }
        )?;
        let from = n.saturating_sub(STEPS_SHOWN);
        for (step, op) in self.longest_linearization[from..]
            .iter()
            .zip(&self.steps_ops[from..])
        {
            let state = step
                .state_after
                .map_or_else(|| "absent".to_owned(), |v| v.to_string());
            writeln!(f, "     #{:<6} {op}  -> register {state}", step.index)?;
        }
        write!(
            f,
            "  no ordering of the prefix's ops within their real-time bounds explains #{}",
            self.culprit
        )
    }
}
