use std::time::Duration;

use super::*;
use crate::testing::{acquire, session_req, set, store_with_session};
use crate::KvOp;

const SECOND_NS: u64 = 1_000_000_000;

#[test]
fn lock_delay_normalization() {
    let cases = [
        (Duration::ZERO, Duration::ZERO),
        (Duration::from_nanos(15), Duration::from_secs(15)),
        (Duration::from_nanos(999), MAX_LOCK_DELAY),
        (Duration::from_nanos(1000), Duration::from_nanos(1000)),
        (Duration::from_millis(500), Duration::from_millis(500)),
        (DEFAULT_LOCK_DELAY, Duration::from_secs(15)),
        (Duration::from_secs(120), MAX_LOCK_DELAY),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_lock_delay(raw), want, "{raw:?}");
    }
}

#[test]
fn ttl_validation() {
    let min = Duration::from_secs(10);
    let secs = Duration::from_secs;
    assert_eq!(validate_session_ttl(Duration::ZERO, min), Ok(None));
    assert_eq!(validate_session_ttl(secs(10), min), Ok(Some(secs(10))));
    assert_eq!(
        validate_session_ttl(SESSION_TTL_MAX, min),
        Ok(Some(SESSION_TTL_MAX))
    );
    for bad in [secs(9), SESSION_TTL_MAX + Duration::from_nanos(1)] {
        assert_eq!(
            validate_session_ttl(bad, min),
            Err(KvError::InvalidSessionTtl {
                ttl: bad,
                min,
                max: SESSION_TTL_MAX
            })
        );
    }
    let text = validate_session_ttl(secs(9), min).map_err(|e| e.to_string());
    assert_eq!(
        text,
        Err("Invalid Session TTL '9000000000', must be between [10s=24h0m0s]".to_owned())
    );
}

#[test]
fn behavior_spellings() {
    assert_eq!("release".parse(), Ok(Behavior::Release));
    assert_eq!("".parse(), Ok(Behavior::Release));
    assert_eq!("delete".parse(), Ok(Behavior::Delete));
    assert_eq!(
        "keep".parse::<Behavior>(),
        Err(KvError::InvalidBehavior("keep".into()))
    );
    assert_eq!(Behavior::Delete.as_str(), "delete");
    assert_eq!(Behavior::default(), Behavior::Release);
}

#[test]
fn create_records_the_session_and_its_index() {
    let mut store = KvStore::default();
    let mut req = session_req("s1", "n1", Behavior::Delete, Duration::from_secs(15));
    req.ttl = Some(Duration::from_secs(30));
    store.create_session(req.clone(), 4, 0).expect("create");

    let want = Session {
        id: "s1".into(),
        name: String::new(),
        node: "n1".into(),
        lock_delay_ns: 15 * SECOND_NS,
        behavior: Behavior::Delete,
        ttl: Some(Duration::from_secs(30)),
        node_checks: vec!["serfHealth".into()],
        service_checks: Vec::new(),
        create_index: 4,
        modify_index: 4,
    };
    assert_eq!(store.session("s1"), Some(&want));
    assert_eq!(store.sessions_index(), 4);
    assert!(store.drain_changes().sessions);

    assert_eq!(
        store.create_session(req, 5, 0),
        Err(KvError::SessionExists("s1".into()))
    );
    let nameless = session_req("", "n1", Behavior::Release, Duration::ZERO);
    assert_eq!(
        store.create_session(nameless, 5, 0),
        Err(KvError::MissingSessionId)
    );
    assert_eq!(store.sessions_index(), 4);
}

#[test]
fn listing_is_sorted_and_by_node() {
    let mut store = KvStore::default();
    for (i, (id, node)) in [("c", "n1"), ("a", "n2"), ("b", "n1")]
        .into_iter()
        .enumerate()
    {
        store
            .create_session(
                session_req(id, node, Behavior::Release, Duration::ZERO),
                i as u64 + 1,
                0,
            )
            .expect("create");
    }
    let ids = |v: Vec<&Session>| v.into_iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(store.sessions()), ["a", "b", "c"]);
    assert_eq!(ids(store.node_sessions("n1")), ["b", "c"]);
    assert!(store.node_sessions("n3").is_empty());
}

#[test]
fn destroy_releases_held_keys_into_lock_delay() {
    let mut store = store_with_session(); // s1: release, 15s lock delay
    store
        .create_session(
            session_req("s2", "n1", Behavior::Release, Duration::ZERO),
            2,
            0,
        )
        .expect("create");
    assert_eq!(acquire(&mut store, "held", "v", "s1", 3, 0), Ok(true));
    set(&mut store, "free", "v", 4);
    store.drain_changes();

    assert!(store.destroy_session("s1", 10, 1_000));
    let e = store.get("held").cloned().unwrap_or_default();
    assert_eq!(
        (e.value.as_slice(), e.session, e.lock_index, e.modify_index),
        (&b"v"[..], None, 1, 10)
    );
    assert_eq!(store.get("free").map(|e| e.modify_index), Some(4));
    assert_eq!(store.session("s1"), None);
    assert_eq!(store.sessions_index(), 10);
    let changes = store.drain_changes();
    assert!(changes.sessions);
    assert_eq!(changes.keys.into_iter().collect::<Vec<_>>(), ["held"]);

    // Lock-delay: refused until now + 15s, then allowed.
    assert_eq!(store.lock_delay_until("held"), Some(16_000));
    assert_eq!(
        acquire(&mut store, "held", "x", "s2", 11, 15_999),
        Ok(false)
    );
    assert_eq!(acquire(&mut store, "held", "x", "s2", 12, 16_000), Ok(true));

    // Idempotent: a second destroy reports false and changes nothing.
    let before = store.clone();
    assert!(!store.destroy_session("s1", 13, 20_000));
    assert_eq!(store, before);
}

#[test]
fn destroy_with_delete_behavior_tombstones_and_delay_survives() {
    let mut store = KvStore::default();
    store
        .create_session(
            session_req("s1", "n1", Behavior::Delete, Duration::from_secs(5)),
            1,
            0,
        )
        .expect("create");
    store
        .create_session(
            session_req("s2", "n1", Behavior::Release, Duration::ZERO),
            2,
            0,
        )
        .expect("create");
    assert_eq!(acquire(&mut store, "a/lock", "v", "s1", 3, 0), Ok(true));
    set(&mut store, "a/other", "v", 4);

    assert!(store.destroy_session("s1", 7, 0));
    assert_eq!(store.get("a/lock"), None);
    assert_eq!(store.key_index("a/lock"), 7);
    assert_eq!(store.prefix_index("a/"), 7);
    // The key is gone but its lock-delay is not: re-creating it by acquire is refused.
    assert_eq!(
        acquire(&mut store, "a/lock", "v", "s2", 8, 4_999),
        Ok(false)
    );
    assert_eq!(acquire(&mut store, "a/lock", "v", "s2", 9, 5_000), Ok(true));
}

#[test]
fn lock_delay_zero_sets_none_and_long_delays_are_capped() {
    let mut store = KvStore::default();
    store
        .create_session(
            session_req("quick", "n1", Behavior::Release, Duration::ZERO),
            1,
            0,
        )
        .expect("create");
    // Not normalized by the caller: the cap still applies at invalidation, as in Consul.
    store
        .create_session(
            session_req("slow", "n1", Behavior::Release, Duration::from_secs(600)),
            2,
            0,
        )
        .expect("create");
    assert_eq!(acquire(&mut store, "q", "v", "quick", 3, 0), Ok(true));
    assert_eq!(acquire(&mut store, "s", "v", "slow", 4, 0), Ok(true));

    store.destroy_session("quick", 5, 100);
    store.destroy_session("slow", 6, 100);
    assert_eq!(store.lock_delay_until("q"), None);
    assert_eq!(store.lock_delay_until("s"), Some(100 + 60_000));
}

#[test]
fn expired_lock_delays_are_forgotten_on_the_next_invalidation() {
    let mut store = store_with_session();
    assert_eq!(acquire(&mut store, "k", "v", "s1", 2, 0), Ok(true));
    store.destroy_session("s1", 3, 0);
    assert_eq!(store.lock_delay_until("k"), Some(15_000));

    store
        .create_session(
            session_req("s2", "n1", Behavior::Release, Duration::ZERO),
            4,
            0,
        )
        .expect("create");
    store.destroy_session("s2", 5, 15_000);
    assert_eq!(store.lock_delay_until("k"), None);
}

#[test]
fn invalidate_by_node_and_by_check() {
    let mut store = KvStore::default();
    let mut with_service_check = session_req("svc", "n1", Behavior::Release, Duration::ZERO);
    with_service_check.node_checks = Vec::new();
    with_service_check.service_checks = vec![ServiceCheck {
        id: "web-check".into(),
        namespace: String::new(),
    }];
    let reqs = [
        session_req("a", "n1", Behavior::Release, Duration::ZERO),
        session_req("b", "n2", Behavior::Release, Duration::ZERO),
        with_service_check,
    ];
    for (i, req) in reqs.into_iter().enumerate() {
        store.create_session(req, i as u64 + 1, 0).expect("create");
    }

    assert_eq!(
        store.invalidate_check_sessions("n1", "web-check", 10, 0),
        ["svc"]
    );
    assert_eq!(
        store.invalidate_check_sessions("n1", "nope", 11, 0),
        Vec::<String>::new()
    );
    assert_eq!(
        store.invalidate_check_sessions("n2", "serfHealth", 12, 0),
        ["b"]
    );
    assert_eq!(store.sessions_index(), 12);
    assert_eq!(store.invalidate_node_sessions("n1", 13, 0), ["a"]);
    assert!(store.sessions().is_empty());
    assert_eq!(
        store.invalidate_node_sessions("n1", 14, 0),
        Vec::<String>::new()
    );
    assert_eq!(store.sessions_index(), 13);
}

#[test]
fn session_ops_via_apply_match_the_lock_semantics() {
    let mut store = store_with_session();
    let release = KvOp::Release {
        key: "k".into(),
        value: Vec::new(),
        flags: 0,
        session: String::new(),
    };
    assert_eq!(store.apply(release, 2, 0), Err(KvError::MissingSession));
}
