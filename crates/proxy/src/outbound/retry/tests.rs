use hyper::{Method, StatusCode};

use super::{is_idempotent, is_retryable_status, RetryBudget, RetryPolicy};

#[test]
fn the_budget_is_a_share_of_active_requests_with_a_floor() {
    let policy = RetryPolicy::default();
    let check = |active: u64, retrying: u64, allowed: bool| {
        assert_eq!(
            policy.budget_allows(active, retrying),
            allowed,
            "{retrying} retrying of {active} active"
        );
    };
    // The floor: three may retry however few requests are in flight.
    check(0, 0, true);
    check(1, 2, true);
    check(1, 3, false);
    check(15, 3, false);
    // Above it, 20% of the requests in flight.
    check(20, 3, true);
    check(20, 4, false);
    check(100, 19, true);
    check(100, 20, false);
    check(u64::MAX, 4, true);
}

#[test]
fn a_zero_floor_and_share_allow_no_retry() {
    let policy = RetryPolicy {
        max_retries: 2,
        budget_percent: 0,
        min_retry_concurrency: 0,
    };
    assert!(!policy.budget_allows(1000, 0));
}

#[test]
fn slots_are_held_until_dropped() {
    let budget = RetryBudget::new(RetryPolicy::default());
    let slots: Vec<_> = (0..3)
        .map(|_| budget.try_acquire(1).expect("within the floor"))
        .collect();
    assert!(budget.try_acquire(1).is_none(), "the floor is 3");
    // More requests in flight make room.
    let fourth = budget.try_acquire(20).expect("20% of 20");
    assert_eq!(budget.retrying(), 4);
    drop(slots);
    drop(fourth);
    assert_eq!(budget.retrying(), 0);
    assert!(budget.try_acquire(0).is_some());
}

#[test]
fn only_idempotent_methods_are_safe_to_repeat() {
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ] {
        assert!(is_idempotent(&method), "{method}");
    }
    for method in [Method::POST, Method::PATCH, Method::CONNECT] {
        assert!(!is_idempotent(&method), "{method}");
    }
    let custom = Method::from_bytes(b"PURGE").expect("a method");
    assert!(!is_idempotent(&custom));
}

#[test]
fn only_503_asks_for_another_instance() {
    assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
    for status in [200, 404, 500, 502, 504] {
        let status = StatusCode::from_u16(status).expect("a status");
        assert!(!is_retryable_status(status), "{status}");
    }
}
