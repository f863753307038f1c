use std::time::Duration;

use super::*;

#[test]
fn deadline_is_twice_the_ttl() {
    let mut timers = SessionTimers::new();
    timers.arm("a", Duration::from_secs(10), 1_000);
    assert_eq!(timers.next_deadline(), Some(21_000));
    assert_eq!(timers.len(), 1);
}

#[test]
fn renew_pushes_the_deadline_and_expiry_removes() {
    let mut timers = SessionTimers::new();
    timers.arm("a", Duration::from_secs(10), 0); // 20_000
    timers.arm("b", Duration::from_secs(15), 0); // 30_000
    timers.renew("a", Duration::from_secs(10), 15_000); // 35_000

    assert_eq!(timers.expired(29_999), Vec::<String>::new());
    assert_eq!(timers.expired(30_000), ["b"]);
    assert_eq!(timers.next_deadline(), Some(35_000));
    assert_eq!(timers.expired(u64::MAX), ["a"]);
    assert!(timers.is_empty());
    assert_eq!(timers.next_deadline(), None);
}

#[test]
fn expired_returns_earliest_first_and_remove_forgets() {
    let mut timers = SessionTimers::new();
    timers.arm("late", Duration::from_secs(30), 0);
    timers.arm("early", Duration::from_secs(10), 0);
    timers.arm("gone", Duration::from_secs(10), 0);
    timers.remove("gone");
    timers.remove("never-armed");
    assert_eq!(timers.len(), 2);
    assert_eq!(timers.expired(100_000), ["early", "late"]);
}

#[test]
fn huge_ttls_saturate_instead_of_overflowing() {
    let mut timers = SessionTimers::new();
    timers.arm("a", Duration::MAX, u64::MAX - 1);
    assert_eq!(timers.next_deadline(), Some(u64::MAX));
}
