//! How Go prints what Consul's errors contain: `%q` strings, go-multierror lists, and the
//! types and values that mapstructure names when a field cannot be decoded.

use serde_json::Value;

pub(crate) use go_text::quote;

/// go-multierror's `ListFormatFunc`.
pub(crate) fn multierror(errors: &[String]) -> String {
    if let [only] = errors {
        return format!("1 error occurred:\n\t* {only}\n\n");
    }
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errors.len(),
        points.join("\n\t")
    )
}

/// mapstructure's `*Error`: its points sorted.
pub(crate) fn mapstructure_error(errors: &[String]) -> String {
    let mut points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    points.sort();
    format!(
        "{} error(s) decoding:\n\n{}",
        errors.len(),
        points.join("\n")
    )
}

/// The `reflect.Kind` of a JSON value decoded by Go into an `interface{}`.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "invalid",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// The Go type of a JSON value decoded into an `interface{}`.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `%v` of a JSON value decoded into an `interface{}` (maps print their keys sorted).
pub(crate) fn value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), float_v),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let pairs: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", value(v)))
                .collect();
            format!("map[{}]", pairs.join(" "))
        }
    }
}

/// `%v` of a float64: shortest digits, exponent form from 1e+06 on (or below 1e-04).
fn float_v(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        // Rust writes `1.5e6`; Go writes `1.5e+06`.
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{f}")
}

/// mapstructure's weakly typed decoding of a JSON value into a Go `string`; `None` when it
/// cannot (a map, or a list of other than one element, which Consul's decode hook unwraps).
pub(crate) fn weak_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        // `strconv.FormatFloat(f, 'f', -1, 64)`: never an exponent.
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format!("{f}"),
            _ => n.to_string(),
        }),
        Value::Array(items) if items.len() == 1 => weak_string(&items[0]),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// mapstructure's refusal of a value it cannot turn into a string.
pub(crate) fn unconvertible(field: &str, v: &Value) -> String {
    format!(
        "'{field}' expected type 'string', got unconvertible type '{}', value: '{}'",
        type_name(v),
        value(v)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quote_escapes_like_strconv_quote() {
        assert_eq!(quote("web"), r#""web""#);
        assert_eq!(quote("a\"b\\c\t\u{1}"), r#""a\"b\\c\t\x01""#);
    }

    #[test]
    fn multierror_lists_like_go_multierror() {
        assert_eq!(multierror(&["a".into()]), "1 error occurred:\n\t* a\n\n");
        assert_eq!(
            multierror(&["a".into(), "b".into()]),
            "2 errors occurred:\n\t* a\n\t* b\n\n"
        );
        assert_eq!(
            mapstructure_error(&["z".into(), "a".into()]),
            "2 error(s) decoding:\n\n* a\n* z"
        );
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(
            value(&json!({"b": [1, "x"], "a": true})),
            "map[a:true b:[1 x]]"
        );
        assert_eq!(value(&json!(1.5)), "1.5");
        assert_eq!(value(&json!(1_000_000)), "1e+06");
        assert_eq!(value(&json!(123_456)), "123456");
        assert_eq!(weak_string(&json!(5)), Some("5".into()));
        assert_eq!(weak_string(&json!(true)), Some("1".into()));
        assert_eq!(weak_string(&json!(["http"])), Some("http".into()));
        assert_eq!(weak_string(&json!({})), None);
    }
}
