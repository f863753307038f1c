use std::time::Duration;

use super::*;

#[test]
fn go_duration_matches_go() {
    let cases: &[(Duration, &str)] = &[
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(7), "7ns"),
        (Duration::from_nanos(1_500), "1.5µs"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_micros(1_250), "1.25ms"),
        (Duration::from_secs(10), "10s"),
        (Duration::from_millis(1_500), "1.5s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_secs(86_400), "24h0m0s"),
    ];
    for (d, want) in cases {
        assert_eq!(go_duration(*d), *want, "{d:?}");
    }
}

#[test]
fn display_texts_are_consuls() {
    let cases: &[(KvError, &str)] = &[
        (KvError::MissingKey, "Must provide key"),
        (KvError::MissingSession, "missing session"),
        (
            KvError::SessionNotFound("abc".into()),
            r#"invalid session "abc""#,
        ),
        (KvError::MissingSessionId, "Missing session ID"),
        (
            KvError::InvalidBehavior("keep".into()),
            "Invalid Behavior setting 'keep'",
        ),
        (
            KvError::InvalidSessionTtl {
                ttl: Duration::from_secs(5),
                min: Duration::from_secs(10),
                max: Duration::from_secs(86_400),
            },
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
        ),
        (
            KvError::UnknownVerb("nope".into()),
            r#"unknown KV verb "nope""#,
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.to_string(), *want);
    }
}
