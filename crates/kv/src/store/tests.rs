use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::testing::{acquire, set, store_with_session};

fn entry(store: &KvStore, key: &str) -> DirEntry {
    store.get(key).cloned().unwrap_or_default()
}

fn release(
    store: &mut KvStore,
    key: &str,
    value: &str,
    session: &str,
    index: u64,
) -> Result<bool, KvError> {
    let op = KvOp::Release {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        session: session.to_owned(),
    };
    store.apply(op, index, 0)
}

#[test]
fn set_creates_then_updates_keeping_create_index() {
    let mut store = KvStore::default();
    set(&mut store, "foo", "bar", 1);
    let want = DirEntry {
        key: "foo".into(),
        value: b"bar".to_vec(),
        create_index: 1,
        modify_index: 1,
        ..DirEntry::default()
    };
    assert_eq!(entry(&store, "foo"), want);

    set(&mut store, "foo", "baz", 2);
    let e = entry(&store, "foo");
    assert_eq!(
        (e.create_index, e.modify_index, e.value),
        (1, 2, b"baz".to_vec())
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn idempotent_set_keeps_modify_index_and_wakes_nobody() {
    let mut store = KvStore::default();
    set(&mut store, "foo", "bar", 1);
    store.drain_changes();
    set(&mut store, "foo", "bar", 2);
    assert_eq!(entry(&store, "foo").modify_index, 1);
    assert_eq!(store.drain_changes(), Changes::default());
}

#[test]
fn cas_follows_consul() {
    // (existing ModifyIndex, cas index, applied)
    let cases = [
        (None, 0, true),
        (Some(1), 0, false),
        (None, 1, false),
        (Some(1), 1, true),
        (Some(1), 2, false),
    ];
    for (existing, cas, applied) in cases {
        let mut store = KvStore::default();
        if let Some(i) = existing {
            set(&mut store, "k", "old", i);
        }
        let op = KvOp::Cas {
            key: "k".into(),
            value: b"new".to_vec(),
            flags: 7,
            index: cas,
        };
        assert_eq!(
            store.apply(op, 10, 0),
            Ok(applied),
            "{existing:?} cas={cas}"
        );
        let e = store.get("k");
        if applied {
            assert_eq!(
                e.map(|e| (e.value.as_slice(), e.flags, e.modify_index)),
                Some((&b"new"[..], 7, 10))
            );
        } else {
            assert_eq!(e.map(|e| e.value.as_slice()), existing.map(|_| &b"old"[..]));
        }
    }
}

#[test]
fn acquire_locks_counts_and_refuses_other_holders() {
    let mut store = store_with_session();
    let req = crate::testing::session_req(
        "s2",
        "n1",
        crate::Behavior::Release,
        std::time::Duration::ZERO,
    );
    store.create_session(req, 2, 0).expect("fresh id");

    // Acquire on a missing key creates it.
    assert_eq!(acquire(&mut store, "lock", "a", "s1", 3, 0), Ok(true));
    let e = entry(&store, "lock");
    assert_eq!((e.create_index, e.modify_index, e.lock_index), (3, 3, 1));
    assert_eq!(e.session.as_deref(), Some("s1"));

    // The holder may re-acquire to update the value; LockIndex stays.
    assert_eq!(acquire(&mut store, "lock", "b", "s1", 4, 0), Ok(true));
    let e = entry(&store, "lock");
    assert_eq!(
        (e.value.as_slice(), e.modify_index, e.lock_index),
        (&b"b"[..], 4, 1)
    );

    // Another session is refused and nothing changes.
    let before = store.clone();
    assert_eq!(acquire(&mut store, "lock", "c", "s2", 5, 0), Ok(false));
    assert_eq!(store, before);

    // A plain PUT overwrites the value of a locked key and keeps the lock.
    set(&mut store, "lock", "d", 6);
    let e = entry(&store, "lock");
    assert_eq!(
        (e.value.as_slice(), e.lock_index, e.session.as_deref()),
        (&b"d"[..], 1, Some("s1"))
    );
}

#[test]
fn acquire_needs_an_existing_session() {
    let mut store = store_with_session();
    let err = acquire(&mut store, "k", "v", "nope", 2, 0);
    assert_eq!(err, Err(KvError::SessionNotFound("nope".into())));
    assert!(err.is_err_and(|e| e.to_string().contains("invalid session")));
    assert_eq!(
        acquire(&mut store, "k", "v", "", 2, 0),
        Err(KvError::MissingSession)
    );
    assert!(store.is_empty());
}

#[test]
fn release_only_by_the_holder_and_keeps_lock_index() {
    let mut store = store_with_session();
    assert_eq!(
        release(&mut store, "k", "v", "s1", 2),
        Ok(false),
        "missing key"
    );
    assert_eq!(acquire(&mut store, "k", "v", "s1", 3, 0), Ok(true));
    assert_eq!(release(&mut store, "k", "x", "other", 4), Ok(false));
    assert_eq!(entry(&store, "k").modify_index, 3);

    assert_eq!(release(&mut store, "k", "released", "s1", 5), Ok(true));
    let e = entry(&store, "k");
    assert_eq!(
        (e.value.as_slice(), e.modify_index, e.lock_index, e.session),
        (&b"released"[..], 5, 1, None)
    );
    // Release sets no lock-delay: an immediate re-acquire works and counts.
    assert_eq!(acquire(&mut store, "k", "again", "s1", 6, 0), Ok(true));
    assert_eq!(entry(&store, "k").lock_index, 2);
}

#[test]
fn delete_tombstones_only_existing_keys() {
    let mut store = KvStore::default();
    set(&mut store, "foo", "1", 1);
    set(&mut store, "foo/bar", "2", 2);
    store.drain_changes();

    assert_eq!(
        store.apply(KvOp::Delete { key: "nope".into() }, 3, 0),
        Ok(true)
    );
    assert_eq!(store.key_index("nope"), 0);
    assert_eq!(store.drain_changes(), Changes::default());

    assert_eq!(
        store.apply(KvOp::Delete { key: "foo".into() }, 4, 0),
        Ok(true)
    );
    assert_eq!(store.get("foo"), None);
    assert_eq!(store.key_index("foo"), 4);
    assert_eq!(store.prefix_index("foo"), 4);
    assert_eq!(
        store.drain_changes().keys,
        BTreeSet::from(["foo".to_owned()])
    );
}

#[test]
fn delete_cas_follows_consul() {
    // (existing ModifyIndex, cas index, answer, deleted)
    let cases = [
        (Some(2), 0, false, false),
        (Some(2), 1, false, false),
        (Some(2), 2, true, true),
        (None, 0, true, false),
        (None, 5, true, false),
    ];
    for (existing, cas, answer, deleted) in cases {
        let mut store = KvStore::default();
        if let Some(i) = existing {
            set(&mut store, "k", "v", i);
        }
        let op = KvOp::DeleteCas {
            key: "k".into(),
            index: cas,
        };
        assert_eq!(store.apply(op, 9, 0), Ok(answer), "{existing:?} cas={cas}");
        assert_eq!(store.get("k").is_none(), existing.is_none() || deleted);
        assert_eq!(
            store.key_index("k"),
            if deleted { 9 } else { existing.unwrap_or(0) }
        );
    }
}

#[test]
fn delete_tree_removes_the_prefix_only() {
    let mut store = KvStore::default();
    for (i, key) in ["a/1", "a/2", "ab", "b"].into_iter().enumerate() {
        set(&mut store, key, "v", i as u64 + 1);
    }
    store.drain_changes();
    assert_eq!(
        store.apply(
            KvOp::DeleteTree {
                prefix: "a/".into()
            },
            10,
            0
        ),
        Ok(true)
    );
    assert_eq!(store.keys("", None), ["ab", "b"]);
    assert_eq!(store.key_index("a/1"), 10);
    assert_eq!(store.prefix_index("a/"), 10);
    assert_eq!(store.prefix_index("b"), 4);
    assert_eq!(
        store.drain_changes().keys,
        BTreeSet::from(["a/1".to_owned(), "a/2".to_owned()])
    );

    assert_eq!(
        store.apply(
            KvOp::DeleteTree {
                prefix: "zzz".into()
            },
            11,
            0
        ),
        Ok(true)
    );
    assert_eq!(store.prefix_index("zzz"), 0);
}

#[test]
fn writes_need_a_key() {
    let mut store = KvStore::default();
    let ops = [
        KvOp::Set {
            key: String::new(),
            value: Vec::new(),
            flags: 0,
        },
        KvOp::Delete { key: String::new() },
        KvOp::DeleteCas {
            key: String::new(),
            index: 1,
        },
    ];
    for op in ops {
        assert_eq!(store.apply(op, 1, 0), Err(KvError::MissingKey));
    }
    // A tree delete of "" is the whole store.
    set(&mut store, "x", "v", 2);
    assert_eq!(
        store.apply(
            KvOp::DeleteTree {
                prefix: String::new()
            },
            3,
            0
        ),
        Ok(true)
    );
    assert!(store.is_empty());
}

#[test]
fn keys_fold_at_the_first_separator_after_the_prefix() {
    let mut store = KvStore::default();
    let keys = [
        "foo",
        "foo/bar",
        "foo/bar/baz",
        "foo/bar/zip",
        "foo/bar/zip/zam",
        "foo/bar/zip/zorp",
        "some/other/prefix",
    ];
    for (i, key) in keys.into_iter().enumerate() {
        set(&mut store, key, "v", i as u64 + 1);
    }
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        (
            "foo/bar/",
            Some("/"),
            &["foo/bar/baz", "foo/bar/zip", "foo/bar/zip/"],
        ),
        ("", Some("/"), &["foo", "foo/", "some/"]),
        (
            "foo",
            None,
            &[
                "foo",
                "foo/bar",
                "foo/bar/baz",
                "foo/bar/zip",
                "foo/bar/zip/zam",
                "foo/bar/zip/zorp",
            ],
        ),
        (
            "foo",
            Some(""),
            &[
                "foo",
                "foo/bar",
                "foo/bar/baz",
                "foo/bar/zip",
                "foo/bar/zip/zam",
                "foo/bar/zip/zorp",
            ],
        ),
        ("foo/bar/zip", Some("/z"), &["foo/bar/zip", "foo/bar/zip/z"]),
        ("nothing", Some("/"), &[]),
    ];
    for (prefix, sep, want) in cases {
        assert_eq!(
            store.keys(prefix, *sep),
            *want,
            "prefix={prefix:?} sep={sep:?}"
        );
    }
    let listed: Vec<&str> = store
        .list("foo/bar/zip")
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(
        listed,
        ["foo/bar/zip", "foo/bar/zip/zam", "foo/bar/zip/zorp"]
    );
}

#[test]
fn reaping_never_moves_an_index_backwards() {
    // Consul's TestStateStore_ReapTombstones scenario; Consul's index slides back to 5 at the
    // end, ours stays at 7 thanks to the reap floor.
    let mut store = KvStore::default();
    for (i, key) in ["foo", "foo/bar", "foo/baz", "foo/moo", "foo/zoo"]
        .into_iter()
        .enumerate()
    {
        set(&mut store, key, "bar", i as u64 + 1);
    }
    store
        .apply(
            KvOp::Delete {
                key: "foo/baz".into(),
            },
            6,
            0,
        )
        .expect("delete");
    store
        .apply(
            KvOp::Delete {
                key: "foo/moo".into(),
            },
            7,
            0,
        )
        .expect("delete");
    assert_eq!(store.prefix_index("foo/"), 7);

    store.reap_tombstones(6);
    assert_eq!(
        (store.prefix_index("foo/"), store.key_index("foo/baz")),
        (7, 6)
    );
    store.reap_tombstones(7);
    assert_eq!(store.prefix_index("foo/"), 7);
    assert_eq!(store.key_index("foo/moo"), 7);
    assert_eq!(store.key_index("never/existed"), 7);
    assert_eq!(
        store.key_index("foo/zoo"),
        5,
        "live keys report their own index"
    );
    assert!(store.tombstones.is_empty());
}

#[test]
fn changes_accumulate_until_drained() {
    let mut store = KvStore::default();
    set(&mut store, "a", "1", 1);
    set(&mut store, "b", "1", 2);
    let changes = store.drain_changes();
    assert_eq!(
        changes.keys,
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
    assert!(!changes.sessions);
    assert_eq!(store.drain_changes(), Changes::default());
}

#[derive(Debug, Clone)]
enum Step {
    Set(usize),
    Cas(usize, u64),
    Delete(usize),
    DeleteTree(usize),
    Reap(u64),
}

const KEYS: [&str; 6] = ["", "a", "a/b", "a/c", "ab", "b/x"];

fn step() -> impl Strategy<Value = Step> {
    let key = 0..KEYS.len();
    prop_oneof![
        key.clone().prop_map(Step::Set),
        (key.clone(), 0..20u64).prop_map(|(k, i)| Step::Cas(k, i)),
        key.clone().prop_map(Step::Delete),
        key.prop_map(Step::DeleteTree),
        (0..30u64).prop_map(Step::Reap),
    ]
}

proptest! {
    /// Whatever happens (writes, deletes, tree deletes, reaping), no key's or prefix's blocking
    /// index ever goes down, so blocking clients never see an index reset.
    #[test]
    fn indexes_never_go_backwards(steps in prop::collection::vec(step(), 1..40)) {
        let mut store = KvStore::default();
        let mut last: Vec<(u64, u64)> = vec![(0, 0); KEYS.len()];
        for (i, step) in steps.into_iter().enumerate() {
            let index = i as u64 + 1;
            let op = match step {
                Step::Set(k) => Some(KvOp::Set { key: KEYS[k].into(), value: vec![index as u8], flags: 0 }),
                Step::Cas(k, cas) => Some(KvOp::Cas { key: KEYS[k].into(), value: vec![1], flags: 0, index: cas }),
                Step::Delete(k) => Some(KvOp::Delete { key: KEYS[k].into() }),
                Step::DeleteTree(k) => Some(KvOp::DeleteTree { prefix: KEYS[k].into() }),
                Step::Reap(up_to) => {
                    store.reap_tombstones(up_to);
                    None
                }
            };
            if let Some(op) = op {
                // Ops on the empty key are refused; that is fine here.
                let _ = store.apply(op, index, 0);
            }
            for (k, key) in KEYS.iter().enumerate() {
                let now = (store.key_index(key), store.prefix_index(key));
                prop_assert!(now.0 >= last[k].0 && now.1 >= last[k].1, "{key:?}: {:?} -> {now:?}", last[k]);
                prop_assert!(now.0 <= index && now.1 <= index);
                last[k] = now;
            }
        }
    }
}
