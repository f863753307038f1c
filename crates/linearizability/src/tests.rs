//! Data-driven histories in a one-line-per-op notation, and generated ones.
//!
//! Notation: `<process> <invoke> <complete|?> <op>` where `<op>` is `r <key> <value|->`,
//! `w <key> <value>` or `cas <key> <expected|-> <new> <true|false>`; `-` is absent, `?` an
//! unknown outcome (a read with `?` has no value).

use proptest::prelude::*;

use super::*;

fn value(s: &str) -> Option<Value> {
    (s != "-").then(|| s.parse().expect("a value"))
}

fn parse(text: &str) -> Vec<Operation> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            let process = w[0].parse().expect("a process");
            let invoke_time = w[1].parse().expect("an invoke time");
            let complete: Option<u64> = (w[2] != "?").then(|| w[2].parse().expect("a time"));
            let key = w[4].to_owned();
            let (call, ret) = match w[3] {
                "r" => (
                    Call::Read { key },
                    Return::Read(w.get(5).and_then(|v| value(v))),
                ),
                "w" => (
                    Call::Write {
                        key,
                        value: w[5].parse().expect("a value"),
                    },
                    Return::Write,
                ),
                "cas" => (
                    Call::Cas {
                        key,
                        expected: value(w[5]),
                        new: w[6].parse().expect("a value"),
                    },
                    Return::Cas(w.get(7) == Some(&"true")),
                ),
                other => panic!("unknown op {other:?} in {line:?}"),
            };
            let outcome = match complete {
                Some(time) => Outcome::Returned { time, ret },
                None => Outcome::Unknown,
            };
            Operation {
                process,
                call,
                invoke_time,
                outcome,
            }
        })
        .collect()
}

fn verdict(text: &str) -> Verdict {
    check(&parse(text), Limits::default()).expect("a well-formed history")
}

#[track_caller]
fn linearizable(text: &str) {
    let v = verdict(text);
    assert!(
        v.is_linearizable(),
        "expected linearizable:\n{text}\ngot {v:#?}"
    );
}

/// Asserts a violation on `key` whose culprit is op `culprit` (its line, from 0).
#[track_caller]
fn violation(text: &str, key: &str, culprit: usize) -> Anomaly {
    match verdict(text) {
        Verdict::NotLinearizable { mut anomalies, .. } => {
            assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
            let a = anomalies.remove(0);
            assert_eq!(a.key, key);
            assert_eq!(a.culprit, culprit, "{a}");
            assert!(a.prefix_is_shortest, "{a}");
            a
        }
        other => panic!("expected a violation on {key}:\n{text}\ngot {other:?}"),
    }
}

#[test]
fn known_good_histories() {
    // Empty; a read of an absent key.
    linearizable("");
    linearizable("0 0 1 r x -");
    // Sequential.
    linearizable(
        "0 0 1 w x 1
         0 2 3 r x 1
         0 4 5 w x 2
         1 6 7 r x 2
         1 8 9 cas x 2 3 true
         0 10 11 cas x 2 4 false
         0 12 13 r x 3",
    );
    // Overlapping writes; concurrent reads may see either, but must agree on one order.
    linearizable(
        "0 0 10 w x 1
         1 0 10 w x 2
         2 1 11 r x 1
         3 12 13 r x 2",
    );
    linearizable(
        "0 0 10 w x 1
         1 0 10 w x 2
         2 11 12 r x 1",
    );
    // A read concurrent with a write sees the old or the new value.
    linearizable(
        "0 0 1 w x 1
         0 2 10 w x 2
         1 3 4 r x 1
         1 5 6 r x 2",
    );
    // Touching intervals count as concurrent.
    linearizable(
        "0 0 5 w x 1
         1 5 6 r x -",
    );
    // A timed-out write that applied (late), and one that never did.
    linearizable(
        "0 0 ? w x 1
         1 10 11 r x -
         1 12 13 r x 1
         1 14 15 r x 1",
    );
    linearizable(
        "0 0 ? w x 1
         1 10 11 r x -
         1 12 13 w x 2
         1 14 15 r x 2",
    );
    // A timed-out CAS that applied; a timed-out read constrains nothing.
    linearizable(
        "0 0 1 w x 1
         1 2 ? cas x 1 5
         2 3 ? r x
         2 10 11 r x 5",
    );
    // CAS race: one of two wins from the same expected value.
    linearizable(
        "0 0 1 w x 1
         1 2 10 cas x 1 2 true
         2 2 10 cas x 1 3 false
         0 11 12 r x 2",
    );
    // CAS from absent (`?cas=0`).
    linearizable(
        "0 0 1 cas x - 1 true
         1 2 3 cas x - 2 false
         1 4 5 r x 1",
    );
    // Keys are independent.
    linearizable(
        "0 0 1 w x 1
         0 2 3 w y 2
         1 4 5 r x 1
         1 6 7 r y 2",
    );
}

#[test]
fn known_bad_histories() {
    // Stale read after a completed write.
    let a = violation(
        "0 0 1 w x 1
         0 2 3 w x 2
         1 4 5 r x 1",
        "x",
        2,
    );
    assert_eq!(a.prefix.len(), 3);
    // A read of a value nobody wrote.
    violation(
        "0 0 1 w x 1
         1 2 3 r x 7",
        "x",
        1,
    );
    // A lost acknowledged write: the key reads absent after the write completed.
    violation(
        "0 0 1 w x 1
         1 2 3 r x 1
         1 4 5 r x -",
        "x",
        2,
    );
    // Two successful CAS from the same expected value.
    violation(
        "0 0 1 w x 1
         1 2 10 cas x 1 2 true
         2 2 11 cas x 1 3 true",
        "x",
        2,
    );
    // A refused CAS whose expected value was current throughout.
    violation(
        "0 0 1 w x 1
         1 2 3 cas x 1 2 false",
        "x",
        1,
    );
    // A CAS answered `false` whose new value shows up later (a retried proposal: the first
    // attempt applied, the retry compared against its own result). Found in mesh by mesh-jepsen.
    violation(
        "0 0 1 w x 592
         1 2 100 cas x 592 598 false
         2 3 99 cas x 592 599 false
         3 98 99 r x 598",
        "x",
        1,
    );
    // Reads that see two concurrent writes in opposite orders.
    violation(
        "0 0 10 w x 1
         1 0 10 w x 2
         2 11 12 r x 1
         3 13 14 r x 2",
        "x",
        3,
    );
    // A timed-out write cannot take effect before its invocation.
    violation(
        "0 0 1 r x 1
         1 5 ? w x 1",
        "x",
        0,
    );
    // Only the bad key is reported; the culprit is the first op that cannot be placed.
    let a = violation(
        "0 0 1 w y 1
         0 2 3 w x 1
         1 4 5 r y 1
         1 6 7 w x 2
         1 8 9 r x 2
         2 10 11 r x 1
         2 12 13 r x 2",
        "x",
        5,
    );
    assert_eq!(a.prefix, vec![1, 3, 4, 5]);
    assert_eq!(a.key_ops, 5);
}

#[test]
fn the_report_names_the_key_the_culprit_and_the_ops_involved() {
    let a = violation(
        "0 0 1 w x 1
         1 2 ? w x 3
         0 2 3 w x 2
         1 4 5 r x 1",
        "x",
        3,
    );
    let text = a.to_string();
    for expected in [
        "key \"x\" is not linearizable",
        "shortest unlinearizable prefix: 4 of 4 ops",
        "=> #3      p1 read x = 1  [4..5]",
        "p1 write x 3 = ?  [2..]",
        "p0 write x 2 = ok  [2..3]",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

#[test]
fn malformed_histories_are_errors() {
    let mut h = parse("0 5 4 w x 1");
    assert!(matches!(
        check(&h, Limits::default()),
        Err(HistoryError::CompletesBeforeInvoke { index: 0, .. })
    ));
    h[0].outcome = Outcome::Returned {
        time: 6,
        ret: Return::Cas(true),
    };
    assert!(matches!(
        check(&h, Limits::default()),
        Err(HistoryError::MismatchedReturn { index: 0, .. })
    ));
}

#[test]
fn an_exhausted_budget_is_unknown_not_a_hang() {
    // Many concurrent writes and a read of the first: the search must try orders.
    let mut text = String::new();
    for p in 0..12 {
        text.push_str(&format!("{p} 0 100 w x {p}\n"));
    }
    text.push_str("99 101 102 r x 0\n");
    let v = check(&parse(&text), Limits { steps_per_key: 10 }).expect("well-formed");
    assert_eq!(
        v,
        Verdict::Unknown {
            undecided: vec!["x".into()]
        }
    );
    assert!(verdict(&text).is_linearizable());
}

/// A register simulated with random linearization points: each op takes effect at an instant
/// inside its interval (an unknown-outcome op at an instant after its invocation, or never).
#[derive(Debug, Clone)]
struct Planned {
    process: u64,
    key: u8,
    kind: u8,
    invoke: u64,
    lin_offset: u64,
    duration: u64,
    unknown: bool,
    applies_if_unknown: bool,
    cas_expect_current: bool,
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        0u64..5,
        0u8..2,
        0u8..3,
        0u64..200,
        0u64..20,
        0u64..20,
        prop::bool::weighted(0.1),
        any::<bool>(),
        prop::bool::weighted(0.7),
    )
        .prop_map(
            |(process, key, kind, invoke, a, b, unknown, applies, expect)| Planned {
                process,
                key,
                kind,
                invoke,
                lin_offset: a.min(b),
                duration: a.max(b),
                unknown,
                applies_if_unknown: applies,
                cas_expect_current: expect,
            },
        )
}

/// Runs the plan against a real register in linearization-point order and records the history.
fn simulate(plan: &[Planned]) -> Vec<Operation> {
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&i| (plan[i].invoke + plan[i].lin_offset, i));
    let mut registers: [Option<Value>; 2] = [None; 2];
    let mut history: Vec<Option<Operation>> = vec![None; plan.len()];
    for i in order {
        let p = &plan[i];
        let key = format!("k{}", p.key);
        let reg = &mut registers[p.key as usize];
        let unique = 1000 + i as Value;
        let applies = !p.unknown || p.applies_if_unknown;
        let (call, ret) = match p.kind {
            0 => (Call::Read { key }, Return::Read(*reg)),
            1 => {
                if applies {
                    *reg = Some(unique);
                }
                (Call::Write { key, value: unique }, Return::Write)
            }
            _ => {
                let expected = if p.cas_expect_current {
                    *reg
                } else {
                    Some(unique + 10_000)
                };
                let ok = *reg == expected;
                if ok && applies {
                    *reg = Some(unique);
                }
                (
                    Call::Cas {
                        key,
                        expected,
                        new: unique,
                    },
                    Return::Cas(ok),
                )
            }
        };
        let outcome = if p.unknown {
            Outcome::Unknown
        } else {
            Outcome::Returned {
                time: p.invoke + p.duration,
                ret,
            }
        };
        history[i] = Some(Operation {
            process: p.process,
            call,
            invoke_time: p.invoke,
            outcome,
        });
    }
    history
        .into_iter()
        .map(|o| o.expect("every op simulated"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn simulated_concurrent_registers_are_linearizable(plan in prop::collection::vec(planned(), 0..40)) {
        let history = simulate(&plan);
        let v = check(&history, Limits::default()).expect("well-formed");
        prop_assert!(v.is_linearizable(), "{:#?}\n{:?}", history, v);
    }

    /// In a sequential history the order is forced, so any other read result is an anomaly.
    #[test]
    fn a_corrupted_read_in_a_sequential_history_is_caught(
        mut plan in prop::collection::vec(planned(), 1..40),
        pick in any::<prop::sample::Index>(),
        wrong in prop::option::of(0u64..2000),
    ) {
        for (i, p) in plan.iter_mut().enumerate() {
            p.invoke = 100 * i as u64;
            p.lin_offset = 0;
            p.duration = 10;
            p.unknown = false;
        }
        let mut history = simulate(&plan);
        prop_assert!(check(&history, Limits::default()).expect("well-formed").is_linearizable());
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].call, Call::Read { .. }))
            .collect();
        prop_assume!(!reads.is_empty());
        let victim = reads[pick.index(reads.len())];
        let Outcome::Returned { time, ret: Return::Read(seen) } = history[victim].outcome else {
            unreachable!("sequential reads complete")
        };
        prop_assume!(wrong != seen);
        history[victim].outcome = Outcome::Returned { time, ret: Return::Read(wrong) };
        match check(&history, Limits::default()).expect("well-formed") {
            Verdict::NotLinearizable { anomalies, .. } => {
                prop_assert_eq!(anomalies.len(), 1);
                prop_assert_eq!(anomalies[0].culprit, victim);
            }
            other => prop_assert!(false, "corrupting #{} went unnoticed: {:?}", victim, other),
        }
    }
}
