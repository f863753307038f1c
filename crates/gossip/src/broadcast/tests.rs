use foca::{BroadcastHandler, Invalidates};

use super::*;

fn event(id: &str, ltime: u64) -> BroadcastItem {
    BroadcastItem::UserEvent(UserEvent {
        id: id.into(),
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime,
    })
}

fn leave(incarnation: u64, kind: LeaveKind) -> BroadcastKey {
    BroadcastKey::Leave(LeaveIntent {
        name: "n1".into(),
        incarnation,
        kind,
    })
}

#[test]
fn new_items_reach_the_inbox_once() {
    let (mut filter, inbox) = BroadcastFilter::new();
    let bytes = event("a", 3).encode();
    assert!(filter.receive_item(&bytes, None).unwrap().is_some());
    assert!(filter.receive_item(&bytes, None).unwrap().is_none());
    assert_eq!(inbox.try_iter().collect::<Vec<_>>(), [event("a", 3)]);
}

#[test]
fn events_far_behind_the_newest_are_dropped() {
    let (mut filter, inbox) = BroadcastFilter::new();
    filter
        .receive_item(&event("new", 1000).encode(), None)
        .unwrap();
    assert!(filter
        .receive_item(&event("old", 1000 - EVENT_WINDOW - 1).encode(), None)
        .unwrap()
        .is_none());
    assert!(filter
        .receive_item(&event("recent", 1000 - EVENT_WINDOW).encode(), None)
        .unwrap()
        .is_some());
    assert_eq!(inbox.try_iter().count(), 2);
}

#[test]
fn garbage_is_an_error() {
    let (mut filter, _inbox) = BroadcastFilter::new();
    assert!(filter.receive_item(&[0xff, 0xff, 0xff], None).is_err());
}

#[test]
fn invalidation_rules() {
    let ev = |id: &str, ltime| BroadcastKey::Event {
        id: id.into(),
        ltime,
    };
    assert!(ev("a", 1).invalidates(&ev("a", 1)));
    assert!(
        !ev("b", 2).invalidates(&ev("a", 1)),
        "distinct events are all delivered"
    );
    assert!(ev("b", 600).invalidates(&ev("a", 1)));

    assert!(leave(2, LeaveKind::Graceful).invalidates(&leave(1, LeaveKind::Forced { prune: true })));
    assert!(leave(1, LeaveKind::Forced { prune: true })
        .invalidates(&leave(1, LeaveKind::Forced { prune: false })));
    assert!(!leave(1, LeaveKind::Forced { prune: false })
        .invalidates(&leave(1, LeaveKind::Forced { prune: true })));
    assert!(!leave(1, LeaveKind::Graceful).invalidates(&ev("a", 1)));
}

#[test]
fn recent_set_forgets_the_oldest() {
    let mut set = RecentSet::new(2);
    assert!(set.insert(1));
    assert!(set.insert(2));
    assert!(!set.insert(1));
    assert!(set.insert(3));
    assert!(set.insert(1), "1 was evicted by 3");
}
