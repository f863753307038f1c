//! Go `time.Duration` text ("72h", "1h30m", "90s", "1.5h"), which Consul's CA configuration uses
//! for its TTLs. Parsing follows Go's `time.ParseDuration`; formatting has a compact form for
//! JSON ("72h", the way Consul echoes its defaults) and Go's `Duration.String` form for error
//! texts ("72h0m0s").

use std::time::Duration;

#[cfg(test)]
mod tests;

const NANOS_PER_UNIT: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration: a sequence of decimal numbers, each with an optional fraction and a
/// unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `72h`, `1h30m`, `1.5h`. Negative durations
/// are rejected (no CA setting can be negative); `0` alone is accepted as in Go.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("time: negative duration {text:?} is not allowed"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let frac_len = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale = NANOS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                if unit.is_empty() {
                    format!("time: missing unit in duration {text:?}")
                } else {
                    format!("time: unknown unit {unit:?} in duration {text:?}")
                }
            })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        // The fraction contributes scale * 0.frac, truncated to whole nanoseconds like Go does.
        let mut frac_scale = scale;
        for digit in frac_part.bytes().take(30) {
            frac_scale /= 10;
            value += u128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// The compact form used in JSON: only the non-zero units, e.g. `72h`, `1h30m`, `90s` → `1m30s`,
/// `500ms`, `0s`. Go's `time.ParseDuration` reads all of them back.
pub fn format_go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        return small(d);
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || d.subsec_nanos() > 0 {
        out.push_str(&seconds(s, d.subsec_nanos()));
    }
    out
}

/// Go's `Duration.String()`: `72h0m0s`, `1h0m0s`, `30m0s`, `45s`, `1.5s`, `500ms`.
pub(crate) fn format_go_duration_long(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        return small(d);
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let sec = seconds(s, d.subsec_nanos());
    if h > 0 {
        format!("{h}h{m}m{sec}")
    } else if m > 0 {
        format!("{m}m{sec}")
    } else {
        sec
    }
}

fn seconds(s: u64, nanos: u32) -> String {
    if nanos == 0 {
        format!("{s}s")
    } else {
        let frac = format!("{nanos:09}");
        format!("{s}.{}s", frac.trim_end_matches('0'))
    }
}

fn small(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    let (unit, scale) = if nanos >= 1_000_000 {
        ("ms", 1_000_000)
    } else if nanos >= 1_000 {
        ("µs", 1_000)
    } else {
        return format!("{nanos}ns");
    };
    let (whole, frac) = (nanos / scale, nanos % scale);
    if frac == 0 {
        format!("{whole}{unit}")
    } else {
        let digits = if scale == 1_000_000 { 6 } else { 3 };
        let frac = format!("{frac:0digits$}");
        format!("{whole}.{}{unit}", frac.trim_end_matches('0'))
    }
}

/// Serde adapter for `Duration` fields written as Go duration strings. Like Consul's decoder
/// (mapstructure with weak typing), a bare JSON integer is read as nanoseconds.
pub(crate) mod serde_go {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_go_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct GoDuration;
        impl Visitor<'_> for GoDuration {
            type Value = Duration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"72h\" or a number of nanoseconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_go_duration(v).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_nanos(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_nanos)
                    .map_err(|_| E::custom(format!("negative duration {v} is not allowed")))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                if v.is_finite() && v >= 0.0 {
                    Ok(Duration::from_nanos(v as u64))
                } else {
                    Err(E::custom(format!("invalid duration {v}")))
                }
            }
        }
        d.deserialize_any(GoDuration)
    }
}
