//! Evaluation of a parsed filter against one JSON value (Consul's wire shape).
//!
//! These rules follow go-bexpr v0.1.2, the version Consul's HTTP filtering is built on,
//! adapted from Go reflection to JSON types.
//!
//! # Walking a selector
//!
//! Each selector segment is looked up as a key of the current JSON object.
//!
//! * **Arrays are walked, never indexed.** When a segment has to be looked up in an array,
//!   the *rest of the match expression* (the remaining selector, the operator and its
//!   negation) is evaluated against every element, and the match is true if it is true for
//!   **any** element. So on a CheckServiceNode, `Checks.Status != "passing"` is true when at
//!   least one check is not passing, while `not Checks.Status == "passing"` is true when no
//!   check is passing. Walking an empty array is false for every operator, negated or not.
//!   Only when the selector *ends* at an array does the operator apply to the array itself
//!   (`Service.Tags contains "primary"`, `Service.Tags is empty`).
//! * **Missing keys** (and JSON `null`, which is how Consul encodes nil maps, slices and
//!   pointers) make the match behave as if an empty value were there: `==`, `in`,
//!   `contains`, `matches` and `is not empty` are false; `!=`, `not in`, `not contains`,
//!   `not matches` and `is empty` are true.
//! * Looking a segment up in a string, number or bool is false for every operator.
//!
//! # Operators at the selected value
//!
//! | value   | `==` / `!=`                                  | `in` / `contains`          | `is empty`  | `matches` |
//! |---------|----------------------------------------------|----------------------------|-------------|-----------|
//! | string  | text equality                                | substring                  | `""`        | regex     |
//! | number  | literal parsed as a Go int (or float for non-integers); not a number → unequal | – | – | – |
//! | bool    | literal parsed with Go's `ParseBool`; otherwise unequal | –               | –           | –         |
//! | array   | –                                            | some element `==` literal  | no elements | –         |
//! | object  | –                                            | key present                | no keys     | –         |
//!
//! A "–" is a combination bexpr rejects when it validates an expression against Consul's
//! Go types; without those types it is only detected here, and such a match is false in
//! both its positive and negated forms (the element is never selected by it).

use super::{Expr, Match, MatchOp};
use serde_json::{Number, Value};

/// Evaluates `expr` against `value`.
pub(super) fn eval(expr: &Expr, value: &Value) -> bool {
    match expr {
        Expr::And(terms) => terms.iter().all(|term| eval(term, value)),
        Expr::Or(terms) => terms.iter().any(|term| eval(term, value)),
        Expr::Not(inner) => !eval(inner, value),
        Expr::Match(m) => eval_match(m, value, &m.selector),
    }
}

/// Evaluates `m` with `path` still to be walked from `value`.
fn eval_match(m: &Match, value: &Value, path: &[String]) -> bool {
    let Some((key, rest)) = path.split_first() else {
        return apply(m, value);
    };
    match value {
        Value::Object(map) => match map.get(key) {
            Some(child) => eval_match(m, child, rest),
            None => when_missing(m),
        },
        Value::Array(items) => items.iter().any(|item| eval_match(m, item, path)),
        Value::Null => when_missing(m),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => false,
    }
}

/// The result of `m` when the selected value does not exist: it behaves as empty.
fn when_missing(m: &Match) -> bool {
    matches!(m.op, MatchOp::IsEmpty) != m.negated
}

/// Applies the operator of `m` to the selected `value`.
fn apply(m: &Match, value: &Value) -> bool {
    if value.is_null() {
        return when_missing(m);
    }
    let positive = match &m.op {
        MatchOp::Equal(raw) => equals(raw, value),
        MatchOp::In(raw) => contains(value, raw),
        MatchOp::IsEmpty => is_empty(value),
        MatchOp::Matches(re) => value.as_str().map(|s| re.is_match(s)),
    };
    positive.is_some_and(|hit| hit != m.negated)
}

/// Whether `value` equals the literal `raw` coerced to its type; `None` if the type has no
/// equality (arrays, objects).
fn equals(raw: &str, value: &Value) -> Option<bool> {
    match value {
        Value::String(s) => Some(s == raw),
        Value::Number(n) => Some(number_equals(raw, n)),
        Value::Bool(b) => Some(parse_go_bool(raw) == Some(*b)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// `in` / `contains`: substring, array element or object key; `None` for scalars.
fn contains(value: &Value, raw: &str) -> Option<bool> {
    match value {
        Value::String(s) => Some(s.contains(raw)),
        Value::Array(items) => Some(items.iter().any(|item| equals(raw, item) == Some(true))),
        Value::Object(map) => Some(map.contains_key(raw)),
        Value::Null | Value::Number(_) | Value::Bool(_) => None,
    }
}

/// `is empty` for strings, arrays and objects; `None` for numbers and bools.
fn is_empty(value: &Value) -> Option<bool> {
    match value {
        Value::String(s) => Some(s.is_empty()),
        Value::Array(items) => Some(items.is_empty()),
        Value::Object(map) => Some(map.is_empty()),
        Value::Null => Some(true),
        Value::Number(_) | Value::Bool(_) => None,
    }
}

/// Compares a JSON number with a literal: integers parse it like Go's `ParseInt(s, 0, 64)`,
/// floats like `ParseFloat`. A literal that does not parse is unequal.
fn number_equals(raw: &str, n: &Number) -> bool {
    if let Some(i) = n.as_i64() {
        parse_go_int(raw) == Some(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        parse_go_int(raw) == Some(i128::from(u))
    } else {
        n.as_f64()
            .is_some_and(|f| raw.parse::<f64>().is_ok_and(|lit| lit == f))
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(raw, 0, 64)` syntax: optional sign, `0x`/`0o`/`0b` or leading-`0`
/// octal prefix, and `_` separators between digits. Returns `None` for anything else (the
/// range check is left to the comparison: no JSON integer equals an out-of-range value).
fn parse_go_int(raw: &str) -> Option<i128> {
    let (negative, unsigned) = match raw.as_bytes().first()? {
        b'-' => (true, &raw[1..]),
        b'+' => (false, &raw[1..]),
        _ => (false, raw),
    };
    let (radix, digits, after_prefix) = split_radix(unsigned);
    let magnitude = parse_digits(digits, radix, after_prefix)?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Splits off a base prefix: `(radix, digits, whether a prefix preceded the digits)`.
fn split_radix(s: &str) -> (u32, &str, bool) {
    let prefixed = |p: &str| {
        s.get(..2)
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| &s[2..])
    };
    if let Some(rest) = prefixed("0x") {
        (16, rest, true)
    } else if let Some(rest) = prefixed("0o") {
        (8, rest, true)
    } else if let Some(rest) = prefixed("0b") {
        (2, rest, true)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..], true)
    } else {
        (10, s, false)
    }
}

/// Parses digits in `radix`, allowing a `_` only right after a digit (or the base prefix)
/// and right before a digit.
fn parse_digits(digits: &str, radix: u32, after_prefix: bool) -> Option<i128> {
    let mut value: i128 = 0;
    let mut seen_digit = false;
    let mut prev_ok_for_underscore = after_prefix;
    let mut prev_underscore = false;
    for c in digits.chars() {
        if c == '_' {
            if !prev_ok_for_underscore {
                return None;
            }
            prev_ok_for_underscore = false;
            prev_underscore = true;
            continue;
        }
        let digit = c.to_digit(radix)?;
        value = value
            .checked_mul(i128::from(radix))?
            .checked_add(i128::from(digit))?;
        seen_digit = true;
        prev_ok_for_underscore = true;
        prev_underscore = false;
    }
    (seen_digit && !prev_underscore).then_some(value)
}

#[cfg(test)]
mod unit {
    use super::{parse_go_bool, parse_go_int};

    #[test]
    fn go_int_syntax() {
        let cases: &[(&str, Option<i128>)] = &[
            ("0", Some(0)),
            ("8080", Some(8080)),
            ("-12", Some(-12)),
            ("+7", Some(7)),
            ("0x1F", Some(31)),
            ("0X1f", Some(31)),
            ("0o17", Some(15)),
            ("017", Some(15)),
            ("0b101", Some(5)),
            ("1_000", Some(1000)),
            ("0x_ff", Some(255)),
            ("", None),
            ("-", None),
            ("0x", None),
            ("08", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("1.0", None),
            ("1e3", None),
            ("abc", None),
            ("++1", None),
            ("99999999999999999999999999999999999999999", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_go_int(raw), *want, "parse_go_int({raw:?})");
        }
    }

    #[test]
    fn go_bool_syntax() {
        for raw in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(raw), Some(true), "{raw}");
        }
        for raw in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(raw), Some(false), "{raw}");
        }
        for raw in ["yes", "tRUE", "", "2"] {
            assert_eq!(parse_go_bool(raw), None, "{raw}");
        }
    }
}
