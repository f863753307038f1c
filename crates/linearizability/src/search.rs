//! The per-key search: Wing & Gong's backtracking with Lowe's just-in-time linearization and a
//! cache of explored `(linearized set, state)` configurations, then, for a key that fails, a
//! binary search for its shortest unlinearizable prefix.

use std::collections::HashSet;

use crate::history::{Call, Operation, Outcome, Return, Value};
use crate::report::{Anomaly, Step};
use crate::Limits;

/// What the register does for one op, with its outcome folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A read that returned this.
    Read(Option<Value>),
    /// A write, acknowledged or pending.
    Write(Value),
    /// A CAS known to have been applied, or one whose outcome is unknown (linearized only
    /// where it would apply; failing and never happening look the same).
    CasApplied { expected: Option<Value>, new: Value },
    /// A CAS known to have been refused.
    CasRefused { expected: Option<Value> },
}

impl Effect {
    /// The state after this op when it is linearized in `state`, or `None` if it cannot be.
    fn step(self, state: Option<Value>) -> Option<Option<Value>> {
        match self {
            Effect::Read(seen) => (seen == state).then_some(state),
            Effect::Write(value) => Some(Some(value)),
            Effect::CasApplied { expected, new } => (state == expected).then_some(Some(new)),
            Effect::CasRefused { expected } => (state != expected).then_some(state),
        }
    }
}

/// One op of a key's sub-history, as the search sees it.
#[derive(Debug, Clone, Copy)]
struct KeyOp {
    /// Index into the caller's history.
    index: usize,
    effect: Effect,
    invoke: u64,
    /// `None`: pending (the outcome is unknown).
    complete: Option<u64>,
    /// The effect if the outcome were unknown (`None` for reads, which are then dropped).
    if_pending: Option<Effect>,
}

/// Builds the search's view of one op, or `None` for an op that constrains nothing (a read with
/// unknown outcome).
fn key_op(index: usize, op: &Operation) -> Option<KeyOp> {
    let if_pending = match &op.call {
        Call::Read { .. } => None,
        Call::Write { value, .. } => Some(Effect::Write(*value)),
        Call::Cas { expected, new, .. } => Some(Effect::CasApplied {
            expected: *expected,
            new: *new,
        }),
    };
    let effect = match (&op.call, op.outcome) {
        (Call::Read { .. }, Outcome::Unknown) => return None,
        (Call::Read { .. }, Outcome::Returned { ret, .. }) => match ret {
            Return::Read(seen) => Effect::Read(seen),
            _ => unreachable!("validated: a read returns a read"),
        },
        (Call::Write { .. }, _) | (Call::Cas { .. }, Outcome::Unknown) => {
            if_pending.expect("writes and cas have a pending effect")
        }
        (Call::Cas { expected, new, .. }, Outcome::Returned { ret, .. }) => match ret {
            Return::Cas(true) => Effect::CasApplied {
                expected: *expected,
                new: *new,
            },
            Return::Cas(false) => Effect::CasRefused {
                expected: *expected,
            },
            _ => unreachable!("validated: a cas returns a cas"),
        },
    };
    Some(KeyOp {
        index,
        effect,
        invoke: op.invoke_time,
        complete: op.complete_time(),
        if_pending,
    })
}

pub(crate) enum KeyVerdict {
    Linearizable,
    Undecided,
    NotLinearizable(Box<Anomaly>),
}

/// Checks the ops at `indexes` (all on one key) of `history`.
pub(crate) fn check_key(history: &[Operation], indexes: &[usize], limits: Limits) -> KeyVerdict {
    let ops: Vec<KeyOp> = indexes
        .iter()
        .filter_map(|&i| key_op(i, &history[i]))
        .collect();
    let events = Events::new(&ops);
    let mut budget = limits.steps_per_key;
    match search(&ops, &events, &mut budget) {
        Search::Linearizable => return KeyVerdict::Linearizable,
        Search::OutOfBudget => return KeyVerdict::Undecided,
        Search::NotLinearizable { .. } => {}
    }

    // Non-linearizability is monotone in prefixes (a linearization of a history, cut at any
    // instant, linearizes the cut history with unfinished ops pending), and the shortest failing
    // prefix ends at a return: binary search over the returns.
    let returns: Vec<usize> = (0..events.order.len())
        .filter(|&p| events.order[p].kind == Kind::Return)
        .collect();
    let mut budget = limits.steps_per_key;
    let (mut lo, mut hi) = (0, returns.len() - 1);
    let mut exact = true;
    let mut failing = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let prefix = cut(&ops, &events, returns[mid]);
        match search(&prefix, &Events::new(&prefix), &mut budget) {
            Search::Linearizable => lo = mid + 1,
            Search::NotLinearizable { longest } => {
                hi = mid;
                failing = Some((mid, prefix, longest));
            }
            Search::OutOfBudget => {
                exact = false;
                break;
            }
        }
    }
    if !exact {
        // Out of budget while narrowing: report the whole history.
        hi = returns.len() - 1;
    }
    let (prefix, longest) = match failing {
        Some((mid, prefix, longest)) if mid == hi => (prefix, longest),
        _ => {
            let prefix = cut(&ops, &events, returns[hi]);
            let mut budget = limits.steps_per_key;
            let longest = match search(&prefix, &Events::new(&prefix), &mut budget) {
                Search::NotLinearizable { longest } => longest,
                Search::Linearizable | Search::OutOfBudget => Vec::new(),
            };
            (prefix, longest)
        }
    };
    let culprit = ops[events.order[returns[hi]].op].index;
    KeyVerdict::NotLinearizable(Box::new(Anomaly::new(
        history,
        indexes,
        culprit,
        prefix.iter().map(|op| op.index).collect(),
        exact,
        longest
            .into_iter()
            .map(|(op, state)| Step {
                index: prefix[op].index,
                state_after: state,
            })
            .collect(),
    )))
}

/// The history up to and including event `position` of `events`: ops invoked later are left
/// out; ops that complete later become pending (reads among them are dropped).
fn cut(ops: &[KeyOp], events: &Events, position: usize) -> Vec<KeyOp> {
    let mut prefix = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if events.call_at[i] > position {
            continue;
        }
        match events.return_at[i] {
            Some(r) if r <= position => prefix.push(*op),
            _ => {
                if let Some(effect) = op.if_pending {
                    prefix.push(KeyOp {
                        complete: None,
                        effect,
                        ..*op
                    });
                }
            }
        }
    }
    prefix
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    // Calls sort before returns at the same instant: touching intervals count as concurrent.
    Call,
    Return,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    kind: Kind,
    op: usize,
}

/// The ops' calls and returns in time order.
struct Events {
    order: Vec<Event>,
    call_at: Vec<usize>,
    return_at: Vec<Option<usize>>,
}

impl Events {
    fn new(ops: &[KeyOp]) -> Self {
        let mut timed: Vec<(u64, Kind, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            timed.push((op.invoke, Kind::Call, i));
            if let Some(c) = op.complete {
                timed.push((c, Kind::Return, i));
            }
        }
        timed.sort_unstable();
        let mut call_at = vec![0; ops.len()];
        let mut return_at = vec![None; ops.len()];
        let order = timed
            .iter()
            .enumerate()
            .map(|(p, &(_, kind, op))| {
                match kind {
                    Kind::Call => call_at[op] = p,
                    Kind::Return => return_at[op] = Some(p),
                }
                Event { kind, op }
            })
            .collect();
        Events {
            order,
            call_at,
            return_at,
        }
    }
}

enum Search {
    Linearizable,
    /// `longest`: the longest partial linearization found, as (op, state after) pairs.
    NotLinearizable {
        longest: Vec<(usize, Option<Value>)>,
    },
    OutOfBudget,
}

const NIL: usize = usize::MAX;

/// The linearized-ops set, hashed together with the state in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Lowe's just-in-time WGL search. The event list is a doubly linked list (node `p + 1` is
/// event `p`, node 0 the head); linearizing an op unlinks its call and return, backtracking
/// relinks them in reverse order.
fn search(ops: &[KeyOp], events: &Events, budget: &mut u64) -> Search {
    let len = events.order.len();
    let mut next: Vec<usize> = (1..=len + 1).collect();
    next[len] = NIL;
    let mut prev: Vec<usize> = (0..=len).map(|i| i.wrapping_sub(1)).collect();
    prev[0] = NIL;

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = next[node];
        if next[node] != NIL {
            prev[next[node]] = prev[node];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = node;
        if next[node] != NIL {
            prev[next[node]] = node;
        }
    };

    let mut remaining = ops.iter().filter(|op| op.complete.is_some()).count();
    let mut linearized = Bits::new(ops.len());
    let mut cache: HashSet<(Bits, Option<Value>)> = HashSet::new();
    // (op, state before it) for every op linearized so far, in order.
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    let mut longest: Vec<(usize, Option<Value>)> = Vec::new();
    let mut state: Option<Value> = None;
    let mut node = next[0];

    loop {
        if remaining == 0 {
            return Search::Linearizable;
        }
        if *budget == 0 {
            return Search::OutOfBudget;
        }
        *budget -= 1;
        let event = (node != NIL).then(|| events.order[node - 1]);
        match event {
            Some(Event {
                kind: Kind::Call,
                op,
            }) => {
                if let Some(after) = ops[op].effect.step(state) {
                    linearized.set(op);
                    if cache.insert((linearized.clone(), after)) {
                        stack.push((op, state));
                        state = after;
                        if ops[op].complete.is_some() {
                            remaining -= 1;
                        }
                        unlink(&mut next, &mut prev, events.call_at[op] + 1);
                        if let Some(r) = events.return_at[op] {
                            unlink(&mut next, &mut prev, r + 1);
                        }
                        if stack.len() > longest.len() {
                            longest = record(&stack, state);
                        }
                        node = next[0];
                        continue;
                    }
                    linearized.clear(op);
                }
                node = next[node];
            }
            // A return (or the end): an op completed without being linearized. Backtrack.
            _ => {
                let Some((op, before)) = stack.pop() else {
                    return Search::NotLinearizable { longest };
                };
                state = before;
                linearized.clear(op);
                if ops[op].complete.is_some() {
                    remaining += 1;
                }
                if let Some(r) = events.return_at[op] {
                    relink(&mut next, &mut prev, r + 1);
                }
                relink(&mut next, &mut prev, events.call_at[op] + 1);
                node = next[events.call_at[op] + 1];
            }
        }
    }
}

/// The linearization on `stack` as (op, state after) pairs.
fn record(stack: &[(usize, Option<Value>)], last: Option<Value>) -> Vec<(usize, Option<Value>)> {
    let mut out: Vec<(usize, Option<Value>)> = Vec::with_capacity(stack.len());
    for w in stack.windows(2) {
        out.push((w[0].0, w[1].1));
    }
    if let Some(&(op, _)) = stack.last() {
        out.push((op, last));
    }
    out
}
