use super::*;

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const M: u64 = 60 * S;
const H: u64 = 60 * M;

fn check_parse(input: &str, nanos: u64) {
    assert_eq!(
        parse_go_duration(input),
        Ok(Duration::from_nanos(nanos)),
        "parsing {input:?}"
    );
}

/// Cases from Go's `time` package tests (`parseDurationTests`), minus negative results.
#[test]
fn parses_like_go() {
    check_parse("0", 0);
    check_parse("5s", 5 * S);
    check_parse("30s", 30 * S);
    check_parse("1478s", 1478 * S);
    check_parse("+5s", 5 * S);
    check_parse("-0", 0);
    check_parse("+0", 0);
    check_parse("-0s", 0);
    check_parse("5.0s", 5 * S);
    check_parse("5.6s", 5 * S + 600 * MS);
    check_parse("5.s", 5 * S);
    check_parse(".5s", 500 * MS);
    check_parse("1.0s", S);
    check_parse("1.00s", S);
    check_parse("1.004s", S + 4 * MS);
    check_parse("1.0040s", S + 4 * MS);
    check_parse("100.00100s", 100 * S + MS);
    check_parse("10ns", 10 * NS);
    check_parse("11us", 11 * US);
    check_parse("12\u{00b5}s", 12 * US);
    check_parse("12\u{03bc}s", 12 * US);
    check_parse("13ms", 13 * MS);
    check_parse("14s", 14 * S);
    check_parse("15m", 15 * M);
    check_parse("16h", 16 * H);
    check_parse("3h30m", 3 * H + 30 * M);
    check_parse("10.5s4m", 4 * M + 10 * S + 500 * MS);
    check_parse(
        "1h2m3s4ms5us6ns",
        H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
    );
    check_parse("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS);
    check_parse("52763797000ns", 52_763_797_000);
    check_parse("0.3333333333333333333h", 20 * M);
    check_parse("9007199254740993ns", (1 << 53) + 1);
    check_parse("9223372036854775807ns", i64::MAX as u64);
    check_parse("9223372036854775.807us", i64::MAX as u64);
    check_parse("9223372036s854ms775us807ns", i64::MAX as u64);
    check_parse("0.100000000000000000000h", 6 * M);
    check_parse("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827);
    // The brief's examples.
    check_parse("300ms", 300 * MS);
    check_parse("1.5h", H + 30 * M);
    check_parse("2h45m", 2 * H + 45 * M);
    check_parse("10us", 10 * US);
    check_parse("10\u{00b5}s", 10 * US);
}

#[test]
fn rejects_like_go() {
    let cases: &[(&str, &str)] = &[
        ("", r#"time: invalid duration """#),
        ("3", r#"time: missing unit in duration "3""#),
        ("-", r#"time: invalid duration "-""#),
        ("s", r#"time: invalid duration "s""#),
        (".", r#"time: invalid duration ".""#),
        ("-.", r#"time: invalid duration "-.""#),
        (".s", r#"time: invalid duration ".s""#),
        ("+.s", r#"time: invalid duration "+.s""#),
        ("1d", r#"time: unknown unit "d" in duration "1d""#),
        ("10 s", r#"time: unknown unit " s" in duration "10 s""#),
        ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
        (
            "9223372036854775808ns",
            r#"time: invalid duration "9223372036854775808ns""#,
        ),
        (
            "9223372036854775.808us",
            r#"time: invalid duration "9223372036854775.808us""#,
        ),
        (
            "9223372036854ms775us808ns",
            r#"time: invalid duration "9223372036854ms775us808ns""#,
        ),
        (
            "100000000000000000000h",
            r#"time: invalid duration "100000000000000000000h""#,
        ),
        ("-5s", r#"negative duration "-5s" is not allowed"#),
        ("-2m3.4s", r#"negative duration "-2m3.4s" is not allowed"#),
    ];
    for (input, message) in cases {
        match parse_go_duration(input) {
            Ok(d) => panic!("{input:?} parsed as {d:?}"),
            Err(e) => assert_eq!(e.to_string(), *message, "parsing {input:?}"),
        }
    }
}

/// Cases from Go's `durationTests` and the `Duration.String` examples.
#[test]
fn formats_like_go() {
    let cases: &[(u64, &str)] = &[
        (0, "0s"),
        (1, "1ns"),
        (1_100, "1.1\u{00b5}s"),
        (2_200_000, "2.2ms"),
        (3_300_000_000, "3.3s"),
        (4 * M + 5 * S, "4m5s"),
        (4 * M + 5001 * MS, "4m5.001s"),
        (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
        (8 * M + 1, "8m0.000000001s"),
        (i64::MAX as u64, "2562047h47m16.854775807s"),
        (H + 2 * M + 300 * MS, "1h2m0.3s"),
        (300 * MS, "300ms"),
        (10 * S, "10s"),
        (90 * S, "1m30s"),
        (H, "1h0m0s"),
        (10 * H, "10h0m0s"),
        (H + 10 * M + 10 * S, "1h10m10s"),
        (1500 * MS, "1.5s"),
        (500 * MS, "500ms"),
        (US, "1\u{00b5}s"),
        (H + 15 * M + 30 * S + 918_273_645, "1h15m30.918273645s"),
    ];
    for (nanos, text) in cases {
        assert_eq!(format_go_duration(Duration::from_nanos(*nanos)), *text);
        // Every Go-formatted duration parses back to itself.
        check_parse(text, *nanos);
    }
}
