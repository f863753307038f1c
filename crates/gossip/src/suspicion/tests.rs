use super::*;

fn policy() -> SuspicionPolicy {
    SuspicionPolicy {
        min: Duration::from_secs(1),
        max: Duration::from_secs(6),
        expected_confirmations: 2,
    }
}

fn key() -> SuspicionKey {
    SuspicionKey {
        member: "b".into(),
        incarnation: 1,
        foca_incarnation: 0,
    }
}

fn timer() -> foca::Timer<NodeIdentity> {
    foca::Timer::ProbeRandomMember(0)
}

#[test]
fn timeout_falls_from_max_to_min_with_confirmations() {
    let policy = policy();
    assert_eq!(policy.timeout(0), Duration::from_secs(6));
    let one = policy.timeout(1);
    assert!(
        one < Duration::from_secs(6) && one > Duration::from_secs(1),
        "{one:?}"
    );
    assert_eq!(policy.timeout(2), Duration::from_secs(1));
    assert_eq!(policy.timeout(10), Duration::from_secs(1));
    let none_expected = SuspicionPolicy {
        expected_confirmations: 0,
        ..policy
    };
    assert_eq!(none_expected.timeout(0), Duration::from_secs(1));
}

#[test]
fn confirmations_heard_before_raising_count() {
    let now = Instant::now();
    let mut suspicions = Suspicions::default();
    assert_eq!(suspicions.confirm(key(), "c", policy(), now), None);
    assert_eq!(suspicions.confirm(key(), "d", policy(), now), None);
    assert_eq!(
        suspicions.raise(key(), timer(), policy(), now),
        (true, Duration::from_secs(1))
    );
    assert_eq!(
        suspicions.raise(key(), timer(), policy(), now),
        (false, Duration::from_secs(1))
    );
}

#[test]
fn a_lone_suspicion_waits_for_max_and_confirmations_bring_it_forward() {
    let start = Instant::now();
    let mut suspicions = Suspicions::default();
    assert_eq!(
        suspicions.raise(key(), timer(), policy(), start),
        (true, Duration::from_secs(6))
    );
    let later = start + Duration::from_millis(1500);
    assert!(matches!(
        suspicions.check(&key(), policy(), later),
        Verdict::Wait(_)
    ));
    suspicions.confirm(key(), "c", policy(), later);
    assert_eq!(
        suspicions.confirm(key(), "d", policy(), later),
        Some(Duration::ZERO)
    );
    assert_eq!(
        suspicions.confirm(key(), "d", policy(), later),
        None,
        "duplicates do not count"
    );
    assert!(matches!(
        suspicions.check(&key(), policy(), later),
        Verdict::Due(_)
    ));
    assert!(matches!(
        suspicions.check(&key(), policy(), later),
        Verdict::Gone
    ));
}

#[test]
fn foreign_suspicions_are_forgotten() {
    let now = Instant::now();
    let mut suspicions = Suspicions::default();
    suspicions.confirm(key(), "c", policy(), now);
    suspicions.expire(policy(), now + Duration::from_secs(13));
    assert_eq!(
        suspicions.raise(key(), timer(), policy(), now),
        (true, Duration::from_secs(6))
    );
}
