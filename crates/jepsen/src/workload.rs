//! The clients: each pinned to one server, issuing random reads, writes and read-then-CAS on a
//! few keys, recording every operation with its real-time bounds.
//!
//! Values are unique across the run (one shared counter), which is what lets the checker treat
//! `?cas=<ModifyIndex>` as a CAS on the value read with that index (see `linearizability`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linearizability::{Call, Operation, Outcome, Return};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::client::{Failure, KvClient};

/// What one client needs to know.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub id: u64,
    pub clients: u64,
    pub keys: usize,
    /// `""`, `"consistent"` or `"stale"`.
    pub consistency: &'static str,
    pub timeout: Duration,
    pub seed: u64,
}

/// Tallies by `(op, outcome)`, e.g. `("cas", "refused")`.
pub type Counts = BTreeMap<(&'static str, String), u64>;

/// What a client (or the final read) recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    pub history: Vec<Operation>,
    pub counts: Counts,
}

impl Recorded {
    fn count(&mut self, op: &'static str, outcome: impl Into<String>) {
        *self.counts.entry((op, outcome.into())).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorded) {
        self.history.extend(other.history);
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
    }
}

pub fn key_name(i: usize) -> String {
    format!("jepsen/r{i}")
}

/// Microseconds since the run's start: the history's clock.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// A short tag for an indeterminate failure, for the tallies.
fn reason(failure: &Failure) -> String {
    match failure {
        Failure::Refused(_) => "failed (not applied)".into(),
        Failure::Indeterminate(why) if why.contains("No cluster leader") => {
            "unknown (No cluster leader)".into()
        }
        Failure::Indeterminate(why) if why.starts_with("no answer") => "unknown (timeout)".into(),
        Failure::Indeterminate(why) if why.starts_with('5') => "unknown (5xx)".into(),
        Failure::Indeterminate(_) => "unknown (connection lost)".into(),
    }
}

/// Runs one client until `deadline`.
pub async fn run_client(
    plan: ClientPlan,
    client: KvClient,
    values: Arc<AtomicU64>,
    start: Instant,
    deadline: Instant,
) -> Recorded {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut out = Recorded::default();
    let mut generation = 0;
    while Instant::now() < deadline {
        // A process with an indeterminate op in flight is, as in Jepsen, replaced by a new one.
        let process = plan.id + plan.clients * generation;
        let key = key_name(rng.random_range(0..plan.keys));
        let roll = rng.random_range(0..100);
        let indeterminate = if roll < 50 {
            read(&plan, &client, &key, process, start, &mut out).await;
            false
        } else if roll < 75 {
            let value = values.fetch_add(1, Ordering::Relaxed);
            write(&plan, &client, &key, value, None, process, start, &mut out).await
        } else {
            // Read-then-CAS: the read (recorded like any other) supplies the value and index.
            match read(&plan, &client, &key, process, start, &mut out).await {
                Some(seen) => {
                    let value = values.fetch_add(1, Ordering::Relaxed);
                    write(
                        &plan,
                        &client,
                        &key,
                        value,
                        Some(seen),
                        process,
                        start,
                        &mut out,
                    )
                    .await
                }
                None => false,
            }
        };
        if indeterminate {
            generation += 1;
        }
    }
    out
}

/// A read; returns what it saw, or `None` if it failed (failed reads are not recorded: a read
/// with no answer constrains nothing).
async fn read(
    plan: &ClientPlan,
    client: &KvClient,
    key: &str,
    process: u64,
    start: Instant,
    out: &mut Recorded,
) -> Option<crate::client::Read> {
    let invoke_time = micros(start);
    match client.read(key, plan.consistency, plan.timeout).await {
        Ok(seen) => {
            let time = micros(start);
            out.history.push(Operation {
                process,
                call: Call::Read {
                    key: key.to_owned(),
                },
                invoke_time,
                outcome: Outcome::Returned {
                    time,
                    ret: Return::Read(seen.map(|(v, _)| v)),
                },
            });
            out.count("read", if seen.is_some() { "ok" } else { "ok (absent)" });
            Some(seen)
        }
        Err(failure) => {
            let why = reason(&failure)
                .replace("unknown", "dropped")
                .replace("failed (not applied)", "failed (connection refused)");
            out.count("read", why);
            if let Failure::Refused(_) = failure {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            None
        }
    }
}

/// A write, or with `cas: Some(seen)` a CAS from what was seen (`?cas=0` when absent). Returns
/// whether the outcome is indeterminate.
#[allow(clippy::too_many_arguments)]
async fn write(
    plan: &ClientPlan,
    client: &KvClient,
    key: &str,
    value: u64,
    cas: Option<crate::client::Read>,
    process: u64,
    start: Instant,
    out: &mut Recorded,
) -> bool {
    let (call, name, index) = match cas {
        None => (
            Call::Write {
                key: key.to_owned(),
                value,
            },
            "write",
            None,
        ),
        Some(seen) => (
            Call::Cas {
                key: key.to_owned(),
                expected: seen.map(|(v, _)| v),
                new: value,
            },
            "cas",
            Some(seen.map_or(0, |(_, index)| index)),
        ),
    };
    let invoke_time = micros(start);
    let answer = client.write(key, value, index, plan.timeout).await;
    let time = micros(start);
    let (outcome, indeterminate) = match answer {
        Ok(applied) => {
            let ret = match (&call, applied) {
                (Call::Cas { .. }, applied) => Return::Cas(applied),
                (_, true) => Return::Write,
                (_, false) => {
                    // A plain PUT answering `false` is not Consul's behaviour; keep it visible.
                    out.count(name, "answered false (unexpected)");
                    out.history.push(Operation {
                        process,
                        call,
                        invoke_time,
                        outcome: Outcome::Unknown,
                    });
                    return true;
                }
            };
            out.count(
                name,
                match ret {
                    Return::Cas(true) => "applied",
                    Return::Cas(false) => "refused",
                    _ => "ok",
                },
            );
            (Outcome::Returned { time, ret }, false)
        }
        Err(failure) => {
            out.count(name, reason(&failure));
            match failure {
                // Definitely not applied: it is as if the op never happened.
                Failure::Refused(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return false;
                }
                Failure::Indeterminate(_) => (Outcome::Unknown, true),
            }
        }
    };
    out.history.push(Operation {
        process,
        call,
        invoke_time,
        outcome,
    });
    indeterminate
}

/// After the faults: one `?consistent` read of every key through every server.
pub async fn final_reads(
    clients: &[KvClient],
    keys: usize,
    first_process: u64,
    timeout: Duration,
    start: Instant,
) -> Recorded {
    let mut out = Recorded::default();
    let plan = ClientPlan {
        id: first_process,
        clients: 1,
        keys,
        consistency: "consistent",
        timeout,
        seed: 0,
    };
    for (i, client) in clients.iter().enumerate() {
        for k in 0..keys {
            let mut r = Recorded::default();
            read(
                &plan,
                client,
                &key_name(k),
                first_process + i as u64,
                start,
                &mut r,
            )
            .await;
            for ((_, outcome), n) in r.counts {
                *out.counts.entry(("final read", outcome)).or_default() += n;
            }
            out.history.extend(r.history);
        }
    }
    out
}
