use std::time::Duration;

use super::{format_go_duration, format_go_duration_long, parse_go_duration};

fn check_parse(text: &str, expected: Duration) {
    assert_eq!(parse_go_duration(text), Ok(expected), "parsing {text:?}");
}

#[test]
fn parses_go_durations() {
    check_parse("72h", Duration::from_secs(72 * 3600));
    check_parse("8760h", Duration::from_secs(8760 * 3600));
    check_parse("1h30m", Duration::from_secs(5400));
    check_parse("72h0m0s", Duration::from_secs(72 * 3600));
    check_parse("1.5h", Duration::from_secs(5400));
    check_parse("90s", Duration::from_secs(90));
    check_parse("500ms", Duration::from_millis(500));
    check_parse("2µs", Duration::from_micros(2));
    check_parse("2us", Duration::from_micros(2));
    check_parse("0", Duration::ZERO);
    check_parse("+5m", Duration::from_secs(300));
    check_parse(".5s", Duration::from_millis(500));
}

#[test]
fn rejects_bad_durations() {
    for text in ["", "72", "h", "-1h", "1x", "1h-", "1..5s", "."] {
        assert!(
            parse_go_duration(text).is_err(),
            "{text:?} should not parse"
        );
    }
    assert_eq!(
        parse_go_duration("3d"),
        Err("time: unknown unit \"d\" in duration \"3d\"".to_owned())
    );
}

#[test]
fn formats_compact_and_long() {
    let cases = [
        (Duration::from_secs(72 * 3600), "72h", "72h0m0s"),
        (Duration::from_secs(3600), "1h", "1h0m0s"),
        (Duration::from_secs(5400), "1h30m", "1h30m0s"),
        (Duration::from_secs(1800), "30m", "30m0s"),
        (Duration::from_secs(45), "45s", "45s"),
        (Duration::from_millis(1500), "1.5s", "1.5s"),
        (Duration::from_millis(500), "500ms", "500ms"),
        (Duration::ZERO, "0s", "0s"),
    ];
    for (d, compact, long) in cases {
        assert_eq!(format_go_duration(d), compact);
        assert_eq!(format_go_duration_long(d), long);
        assert_eq!(parse_go_duration(compact), Ok(d));
        assert_eq!(parse_go_duration(long), Ok(d));
    }
}
