use std::time::{Duration, Instant};

use super::*;

fn identity(name: &str, incarnation: u64) -> NodeIdentity {
    NodeIdentity::new(
        name,
        "10.0.0.1:8301".parse().unwrap(),
        incarnation,
        Tags::new(),
    )
    .unwrap()
}

fn kind(event: &Option<Event>) -> Option<(&'static str, MemberStatus)> {
    event.as_ref().map(|event| match event {
        Event::MemberJoin(m) => ("join", m.status),
        Event::MemberUpdate(m) => ("update", m.status),
        Event::MemberFailed(m) => ("failed", m.status),
        Event::MemberLeft(m) => ("left", m.status),
        Event::MemberReaped(m) => ("reaped", m.status),
        other => panic!("unexpected {other:?}"),
    })
}

fn intent(name: &str, incarnation: u64, kind: LeaveKind) -> LeaveIntent {
    LeaveIntent {
        name: name.into(),
        incarnation,
        kind,
    }
}

#[test]
fn status_codes_are_serfs() {
    let codes: Vec<u8> = [
        MemberStatus::None,
        MemberStatus::Alive,
        MemberStatus::Leaving,
        MemberStatus::Left,
        MemberStatus::Failed,
    ]
    .into_iter()
    .map(MemberStatus::code)
    .collect();
    assert_eq!(codes, [0, 1, 2, 3, 4]);
}

#[test]
fn down_without_intent_is_failed_and_rejoin_is_a_join() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    assert_eq!(
        kind(&table.member_up(&identity("a", 1), now)),
        Some(("join", MemberStatus::Alive))
    );
    assert_eq!(
        kind(&table.member_up(&identity("a", 1), now)),
        None,
        "no event without a change"
    );
    assert_eq!(
        kind(&table.member_down(&identity("a", 1), now)),
        Some(("failed", MemberStatus::Failed))
    );
    assert_eq!(kind(&table.member_down(&identity("a", 1), now)), None);
    assert_eq!(
        table.member_renamed(&identity("a", 2), now).map(|_| ()),
        None
    );
    assert_eq!(
        kind(&table.member_up(&identity("a", 2), now)),
        Some(("join", MemberStatus::Alive))
    );
}

#[test]
fn graceful_intent_turns_the_down_into_left() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    table.member_up(&identity("a", 1), now);
    assert!(table
        .leave_intent(&intent("a", 1, LeaveKind::Graceful), now)
        .is_empty());
    assert_eq!(table.get("a").unwrap().status, MemberStatus::Leaving);
    assert_eq!(
        kind(&table.member_down(&identity("a", 1), now)),
        Some(("left", MemberStatus::Left))
    );
}

#[test]
fn late_intent_turns_failed_into_left() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    table.member_up(&identity("a", 1), now);
    table.member_down(&identity("a", 1), now);
    let events = table.leave_intent(&intent("a", 1, LeaveKind::Graceful), now);
    assert!(matches!(events.as_slice(), [Event::MemberLeft(m)] if m.status == MemberStatus::Left));
}

#[test]
fn stale_intent_is_ignored() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    table.member_up(&identity("a", 5), now);
    table.leave_intent(&intent("a", 4, LeaveKind::Graceful), now);
    assert_eq!(table.get("a").unwrap().status, MemberStatus::Alive);
}

#[test]
fn force_leave_only_touches_failed_members_and_prune_removes() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    table.member_up(&identity("a", 1), now);
    assert!(table
        .leave_intent(&intent("a", 1, LeaveKind::Forced { prune: false }), now)
        .is_empty());
    assert_eq!(table.get("a").unwrap().status, MemberStatus::Alive);

    table.member_down(&identity("a", 1), now);
    let events = table.leave_intent(&intent("a", 1, LeaveKind::Forced { prune: true }), now);
    assert!(matches!(
        events.as_slice(),
        [Event::MemberLeft(_), Event::MemberReaped(_)]
    ));
    assert!(table.get("a").is_none());
}

#[test]
fn tag_change_of_a_live_member_is_an_update() {
    let now = Instant::now();
    let mut table = MemberTable::default();
    table.member_up(&identity("a", 1), now);
    let renamed = identity("a", 1)
        .with_tags(Tags::from([("role".into(), "node".into())]))
        .unwrap();
    let event = table.member_renamed(&renamed, now);
    assert_eq!(kind(&event), Some(("update", MemberStatus::Alive)));
    assert_eq!(table.get("a").unwrap().tags.get("role").unwrap(), "node");
}

#[test]
fn reaping_respects_both_timeouts() {
    let start = Instant::now();
    let policy = ReapPolicy {
        reconnect_timeout: Duration::from_secs(100),
        tombstone_timeout: Duration::from_secs(10),
    };
    let mut table = MemberTable::default();
    for name in ["failed", "left", "alive"] {
        table.member_up(&identity(name, 1), start);
    }
    table.member_down(&identity("failed", 1), start);
    table.leave_intent(&intent("left", 1, LeaveKind::Graceful), start);
    table.member_down(&identity("left", 1), start);

    assert!(table
        .reap(start + Duration::from_secs(9), policy)
        .is_empty());
    let reaped = table.reap(start + Duration::from_secs(10), policy);
    assert!(matches!(reaped.as_slice(), [Event::MemberReaped(m)] if m.name == "left"));
    let reaped = table.reap(start + Duration::from_secs(100), policy);
    assert!(matches!(reaped.as_slice(), [Event::MemberReaped(m)] if m.name == "failed"));
    assert_eq!(table.iter().count(), 1);
}
