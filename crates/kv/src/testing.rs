//! Helpers shared by the unit tests of every module.

use std::time::Duration;

use crate::{Behavior, KvOp, KvStore, SessionRequest};

/// A session request on `node` with the given behavior and lock delay.
pub(crate) fn session_req(
    id: &str,
    node: &str,
    behavior: Behavior,
    lock_delay: Duration,
) -> SessionRequest {
    SessionRequest {
        id: id.to_owned(),
        name: String::new(),
        node: node.to_owned(),
        lock_delay,
        behavior,
        ttl: None,
        node_checks: vec!["serfHealth".to_owned()],
        service_checks: Vec::new(),
    }
}

/// Plain `PUT key=value` at `index`.
pub(crate) fn set(store: &mut KvStore, key: &str, value: &str, index: u64) {
    let op = KvOp::Set {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        flags: 0,
    };
    assert_eq!(store.apply(op, index, 0), Ok(true));
}

pub(crate) fn acquire(
    store: &mut KvStore,
    key: &str,
    value: &str,
    session: &str,
    index: u64,
    now_ms: u64,
) -> Result<bool, crate::KvError> {
    let op = KvOp::Acquire {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        session: session.to_owned(),
    };
    store.apply(op, index, now_ms)
}

/// A store with session `s1` (release, 15s lock delay) on node `n1`, created at index 1.
pub(crate) fn store_with_session() -> KvStore {
    let mut store = KvStore::default();
    let req = session_req("s1", "n1", Behavior::Release, Duration::from_secs(15));
    assert_eq!(store.create_session(req, 1, 0), Ok(()));
    store.drain_changes();
    store
}
