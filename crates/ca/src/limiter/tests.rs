use std::time::{Duration, UNIX_EPOCH};

use super::{CsrLimiter, RetryAfter, CSR_LIMIT_WAIT};

fn at_ms(ms: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

#[test]
fn burst_then_refill() {
    let mut limiter = CsrLimiter::new(10.0, 3);
    for _ in 0..3 {
        assert_eq!(limiter.check(at_ms(0)), Ok(()));
    }
    let refused = limiter.check(at_ms(0)).expect_err("bucket is empty");
    assert_eq!(refused.after, Duration::from_millis(100));
    assert_eq!(refused.to_string(), "Rate limit reached, try again later");
    // 100ms at 10/s accrues exactly one token.
    assert_eq!(limiter.check(at_ms(100)), Ok(()));
    assert!(limiter.check(at_ms(150)).is_err());
    // Never more than the burst, however long the bucket sat idle.
    for _ in 0..3 {
        assert_eq!(limiter.check(at_ms(60_000)), Ok(()));
    }
    assert!(limiter.check(at_ms(60_000)).is_err());
}

#[test]
fn consul_defaults_wait_up_to_half_a_second() {
    // 50/s with burst 1: a burst of simultaneous CSRs is spread 20ms apart until the next one
    // would wait longer than 500ms.
    let mut limiter = CsrLimiter::with_rate(50.0);
    let now = at_ms(0);
    let mut waits = Vec::new();
    while let Ok(wait) = limiter.reserve(now, CSR_LIMIT_WAIT) {
        waits.push(wait);
    }
    assert_eq!(waits.len(), 26, "1 immediate + 25 within 500ms");
    assert_eq!(waits[0], Duration::ZERO);
    assert_eq!(waits[1], Duration::from_millis(20));
    assert_eq!(waits[25], Duration::from_millis(500));
    let refused: RetryAfter = limiter
        .reserve(now, CSR_LIMIT_WAIT)
        .expect_err("over 500ms");
    assert_eq!(refused.after, Duration::from_millis(520));
}

#[test]
fn zero_rate_is_unlimited_and_clock_jumps_are_safe() {
    let mut unlimited = CsrLimiter::new(0.0, 1);
    for _ in 0..1000 {
        assert_eq!(unlimited.check(at_ms(0)), Ok(()));
    }

    let mut limiter = CsrLimiter::new(1.0, 1);
    assert_eq!(limiter.check(at_ms(10_000)), Ok(()));
    // The clock goes back: nothing accrues, nothing panics.
    assert!(limiter.check(at_ms(5_000)).is_err());
    assert_eq!(limiter.check(at_ms(11_000)), Ok(()));

    limiter.set_rate(0.0, at_ms(11_000));
    assert_eq!(limiter.check(at_ms(11_000)), Ok(()));
}
