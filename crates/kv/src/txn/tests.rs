use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::testing::{acquire, session_req, set, store_with_session};
use crate::Behavior;

fn op(verb: TxnVerb, key: &str) -> TxnKvOp {
    TxnKvOp {
        verb,
        key: key.to_owned(),
        value: Vec::new(),
        flags: 0,
        index: 0,
        session: String::new(),
    }
}

fn with_value(mut op: TxnKvOp, value: &str) -> TxnKvOp {
    op.value = value.as_bytes().to_vec();
    op
}

fn with_index(mut op: TxnKvOp, index: u64) -> TxnKvOp {
    op.index = index;
    op
}

fn with_session(mut op: TxnKvOp, session: &str) -> TxnKvOp {
    op.session = session.to_owned();
    op
}

/// A store with session `s1`, keys `a` (ModifyIndex 2, locked by s1 at 3) and `b` (4).
fn fixture() -> KvStore {
    let mut store = store_with_session();
    set(&mut store, "a", "A", 2);
    assert_eq!(acquire(&mut store, "a", "A", "s1", 3, 0), Ok(true));
    set(&mut store, "b", "B", 4);
    store.drain_changes();
    store
}

/// Runs `ops` at index 10 and expects exactly these `(op index, text)` errors and no change.
fn check_errors(ops: &[TxnKvOp], want: &[(usize, &str)]) {
    let mut store = fixture();
    let before = format!("{store:?}");
    let got = store.txn(ops, 10, 0).map_err(|errs| {
        errs.into_iter()
            .map(|e| (e.op_index, e.what))
            .collect::<Vec<_>>()
    });
    let want: Vec<(usize, String)> = want.iter().map(|(i, w)| (*i, (*w).to_owned())).collect();
    assert_eq!(got, Err(want), "{ops:?}");
    assert_eq!(format!("{store:?}"), before, "rolled back");
}

#[test]
fn verbs_parse_with_consuls_spellings() {
    let spellings = [
        "set",
        "cas",
        "lock",
        "unlock",
        "get",
        "get-tree",
        "check-index",
        "check-session",
        "check-not-exists",
        "delete",
        "delete-tree",
        "delete-cas",
        "get-or-empty",
    ];
    for s in spellings {
        let verb: TxnVerb = s.parse().expect("known verb");
        assert_eq!(verb.as_str(), s);
    }
    let err = "frobnicate".parse::<TxnVerb>().map_err(|e| e.to_string());
    assert_eq!(err, Err(r#"unknown KV verb "frobnicate""#.to_owned()));
}

#[test]
fn error_texts_are_consuls() {
    use TxnVerb::*;
    let cases: Vec<(TxnKvOp, &str)> = vec![
        (op(Get, "nope"), r#"key "nope" doesn't exist"#),
        (
            with_index(op(Cas, "b"), 3),
            r#"failed to set key "b", index is stale"#,
        ),
        (
            with_index(op(Cas, "b"), 0),
            r#"failed to set key "b", index is stale"#,
        ),
        (
            with_index(op(DeleteCas, "b"), 3),
            r#"failed to delete key "b", index is stale"#,
        ),
        (op(Lock, "b"), "missing session"),
        (
            with_session(op(Lock, "b"), "ghost"),
            r#"invalid session "ghost""#,
        ),
        (op(Unlock, "a"), "missing session"),
        (
            with_session(op(Unlock, "b"), "s1"),
            r#"failed to unlock key "b", lock isn't held, or is held by another session"#,
        ),
        (
            with_session(op(Unlock, "nope"), "s1"),
            r#"failed to unlock key "nope", lock isn't held, or is held by another session"#,
        ),
        (
            op(CheckIndex, "nope"),
            r#"failed to check index, key "nope" doesn't exist"#,
        ),
        (
            with_index(op(CheckIndex, "b"), 3),
            r#"failed index check for key "b", current modify index 4 != 3"#,
        ),
        (
            op(CheckSession, "nope"),
            r#"failed to check session, key "nope" doesn't exist"#,
        ),
        (
            with_session(op(CheckSession, "a"), "s2"),
            r#"failed session check for key "a", current session "s1" != "s2""#,
        ),
        (
            with_session(op(CheckSession, "b"), "s1"),
            r#"failed session check for key "b", current session "" != "s1""#,
        ),
        (op(CheckNotExists, "b"), r#"key "b" exists"#),
    ];
    for (op, want) in cases {
        check_errors(&[op], &[(0, want)]);
    }
}

#[test]
fn lock_held_by_another_session_is_an_error() {
    let mut store = fixture();
    store
        .create_session(
            session_req("s2", "n1", Behavior::Release, Duration::ZERO),
            5,
            0,
        )
        .expect("create");
    let ops = [with_session(op(TxnVerb::Lock, "a"), "s2")];
    let got = store.txn(&ops, 10, 0);
    let want = TxnError {
        op_index: 0,
        what: r#"failed to lock key "a", lock is already held"#.into(),
    };
    assert_eq!(got, Err(vec![want]));
}

#[test]
fn every_failing_op_is_reported() {
    use TxnVerb::*;
    let ops = [
        with_value(op(Set, "new"), "x"),
        op(Get, "nope"),
        with_index(op(Cas, "b"), 99),
        op(Delete, "b"),
        op(CheckNotExists, "a"),
    ];
    check_errors(
        &ops,
        &[
            (1, r#"key "nope" doesn't exist"#),
            (2, r#"failed to set key "b", index is stale"#),
            (4, r#"key "a" exists"#),
        ],
    );
}

#[test]
fn pre_checks_run_first_and_alone() {
    use TxnVerb::*;
    // Empty keys and lock-delayed locks are refused before anything runs; the failing get is
    // not even evaluated, as in Consul where these checks precede the raft apply.
    let mut store = fixture();
    store.destroy_session("s1", 5, 0); // `a` enters a 15s lock-delay
    store
        .create_session(
            session_req("s2", "n1", Behavior::Release, Duration::ZERO),
            6,
            0,
        )
        .expect("create");
    let ops = [
        op(Get, ""),
        op(Get, "nope"),
        with_session(op(Lock, "a"), "s2"),
        op(DeleteTree, ""),
    ];
    let got = store.txn(&ops, 10, 1_000);
    let want = vec![
        TxnError {
            op_index: 0,
            what: "Must provide key".into(),
        },
        TxnError {
            op_index: 2,
            what: r#"failed to lock key "a" due to lock delay"#.into(),
        },
    ];
    assert_eq!(got, Err(want));
    assert_eq!(store.get("a").map(|e| e.session.clone()), Some(None));

    let after_delay = store.txn(&ops[2..3], 11, 15_000);
    assert!(after_delay.is_ok(), "{after_delay:?}");
}

#[test]
fn results_follow_consul() {
    use TxnVerb::*;
    let mut store = fixture();
    let ops = [
        with_value(op(Set, "b2"), "C"),     // entry, no value
        op(Get, "b2"),                      // full entry, sees the set above
        with_index(op(CheckIndex, "b"), 4), // entry, no value
        with_session(op(CheckSession, "a"), "s1"),
        op(CheckNotExists, "zzz"),                             // nothing
        op(GetTree, "b"),                                      // every entry under the prefix
        op(Delete, "b"),                                       // nothing
        with_session(with_value(op(Unlock, "a"), "A2"), "s1"), // entry, no value
        with_index(op(DeleteCas, "b2"), 10),                   // nothing: b2 was set at 10 above
        op(DeleteTree, "zzz"),                                 // nothing
    ];
    let got = store.txn(&ops, 10, 0).expect("txn applies");
    let entry =
        |key: &str, value: &str, create: u64, modify: u64, lock: u64, session: Option<&str>| {
            TxnResult::Entry(DirEntry {
                key: key.into(),
                value: value.as_bytes().to_vec(),
                flags: 0,
                create_index: create,
                modify_index: modify,
                lock_index: lock,
                session: session.map(str::to_owned),
            })
        };
    let want = vec![
        entry("b2", "", 10, 10, 0, None),
        entry("b2", "C", 10, 10, 0, None),
        entry("b", "", 4, 4, 0, None),
        entry("a", "", 2, 3, 1, Some("s1")),
        entry("b", "B", 4, 4, 0, None),
        entry("b2", "C", 10, 10, 0, None),
        entry("a", "", 2, 10, 1, None),
    ];
    assert_eq!(got, want);
    assert_eq!(store.keys("", None), ["a"]);
    assert_eq!(
        store.get("a").map(|e| e.value.clone()),
        Some(b"A2".to_vec())
    );
    let touched: Vec<String> = store.drain_changes().keys.into_iter().collect();
    assert_eq!(touched, ["a", "b", "b2"]);
}

#[test]
fn lock_in_a_txn_creates_and_counts() {
    let mut store = fixture();
    let ops = [with_session(
        with_value(op(TxnVerb::Lock, "new"), "v"),
        "s1",
    )];
    let got = store.txn(&ops, 10, 0).expect("lock");
    let e = store.get("new").cloned().unwrap_or_default();
    assert_eq!(
        (e.lock_index, e.session.as_deref(), e.value.as_slice()),
        (1, Some("s1"), &b"v"[..])
    );
    assert_eq!(got, vec![TxnResult::Entry(e.without_value())]);
}

#[test]
fn get_or_empty_echoes_the_op_for_a_missing_key() {
    let store = fixture();
    let mut missing = with_session(with_index(op(TxnVerb::GetOrEmpty, "nope"), 7), "s9");
    missing.flags = 3;
    missing.value = b"ignored".to_vec();
    let got = store.read_txn(&[missing, op(TxnVerb::GetOrEmpty, "b")]);
    let echo = DirEntry {
        key: "nope".into(),
        flags: 3,
        modify_index: 7,
        session: Some("s9".into()),
        ..DirEntry::default()
    };
    let b = store.get("b").cloned().unwrap_or_default();
    assert_eq!(got, Ok(vec![TxnResult::Entry(echo), TxnResult::Entry(b)]));
}

#[test]
fn read_txn_serves_reads_and_refuses_writes() {
    use TxnVerb::*;
    let store = fixture();
    let got = store.read_txn(&[op(GetTree, "b"), with_index(op(CheckIndex, "b"), 4)]);
    let b = store.get("b").cloned().unwrap_or_default();
    assert_eq!(
        got,
        Ok(vec![
            TxnResult::Entry(b.clone()),
            TxnResult::Entry(b.without_value())
        ])
    );

    let got = store.read_txn(&[op(Get, "b"), op(Delete, "b")]);
    let want = TxnError {
        op_index: 1,
        what: r#"verb "delete" is not allowed in a read-only transaction"#.into(),
    };
    assert_eq!(got, Err(vec![want]));

    let got = store.read_txn(&[op(Get, "nope"), op(CheckNotExists, "b")]);
    assert_eq!(got.map_err(|e| e.len()), Err(2));
    for verb in TxnVerb::ALL {
        let read_only = matches!(
            verb,
            Get | GetTree | GetOrEmpty | CheckIndex | CheckSession | CheckNotExists
        );
        assert_eq!(verb.is_write(), !read_only, "{verb:?}");
    }
}

fn txn_op() -> impl Strategy<Value = TxnKvOp> {
    let verb = prop::sample::select(TxnVerb::ALL.to_vec());
    let key = prop::sample::select(vec!["a", "b", "c", "a/x", ""]);
    let session = prop::sample::select(vec!["", "s1", "ghost"]);
    (verb, key, 0..6u64, session, any::<u8>()).prop_map(|(verb, key, index, session, byte)| {
        TxnKvOp {
            verb,
            key: key.to_owned(),
            value: vec![byte],
            flags: u64::from(byte % 3),
            index,
            session: session.to_owned(),
        }
    })
}

proptest! {
    /// A transaction that fails leaves the store exactly as it was, pending changes included.
    #[test]
    fn failed_txn_changes_nothing(ops in prop::collection::vec(txn_op(), 1..12), now_ms in 0..20_000u64) {
        let mut store = fixture();
        store.destroy_session("s1", 5, 0); // lock-delays on `a`
        store.create_session(session_req("s1", "n1", Behavior::Release, Duration::ZERO), 6, 0).expect("create");
        set(&mut store, "c", "C", 7);
        let before = store.clone();
        let before_debug = format!("{store:?}");
        match store.txn(&ops, 10, now_ms) {
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                prop_assert!(errors.windows(2).all(|w| w[0].op_index < w[1].op_index));
                prop_assert_eq!(&store, &before);
                prop_assert_eq!(format!("{store:?}"), before_debug);
            }
            Ok(_) => {
                // Success is all-or-nothing too: the same ops one by one give the same state.
                let mut one_by_one = before.clone();
                for op in &ops {
                    prop_assert!(one_by_one.txn(std::slice::from_ref(op), 10, now_ms).is_ok());
                }
                prop_assert_eq!(&store, &one_by_one);
            }
        }
    }
}
