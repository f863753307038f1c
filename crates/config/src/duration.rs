//! Go `time.Duration` text format: `time.ParseDuration` and `Duration.String()`.
//!
//! Consul writes every duration in its config files and HTTP API this way ("10s", "1m30s",
//! "1h0m0s"), so other crates reuse these two functions for wire compatibility. Pure string
//! handling: no clock, no IO.

use std::time::Duration;

/// Why a string is not a Go duration. Display strings match Go's `time.ParseDuration`
/// errors (Go has no unsigned durations, so [`DurationError::Negative`] is ours).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {input:?}")]
    Invalid { input: String },
    #[error("time: missing unit in duration {input:?}")]
    MissingUnit { input: String },
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("negative duration {input:?} is not allowed")]
    Negative { input: String },
}

/// Go's `Duration` is an `int64` count of nanoseconds; larger values do not parse in Go.
const MAX_NANOS: u64 = i64::MAX as u64;
const OVERFLOW_LIMIT: u64 = 1 << 63;

/// Parses a duration the way Go's `time.ParseDuration` does: a sequence of decimal numbers,
/// each with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`),
/// e.g. "300ms", "1.5h", "2h45m". "0" needs no unit. Negative durations are rejected
/// (except for zero) because `std::time::Duration` is unsigned.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }

        let (int, rest) = leading_int(s).ok_or_else(invalid)?;
        let had_int = rest.len() != s.len();
        s = rest;

        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_frac = false;
        if let Some(rest) = s.strip_prefix('.') {
            let (f, sc, rest2) = leading_fraction(rest);
            had_frac = rest2.len() != rest.len();
            frac = f;
            scale = sc;
            s = rest2;
        }
        if !had_int && !had_frac {
            return Err(invalid());
        }

        let unit_len = s
            .bytes()
            .position(|c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;

        if int > OVERFLOW_LIMIT / unit_nanos {
            return Err(invalid());
        }
        let mut value = int * unit_nanos;
        if frac > 0 {
            // Go uses float64 here: exact to the nanosecond for fractions of hours.
            let frac_nanos = (frac as f64 * (unit_nanos as f64 / scale)) as u64;
            value += frac_nanos;
            if value > OVERFLOW_LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > OVERFLOW_LIMIT {
            return Err(invalid());
        }
    }

    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative {
                input: input.to_owned(),
            })
        };
    }
    if total > MAX_NANOS {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 60 * 60 * 1_000_000_000,
        _ => return None,
    })
}

/// Consumes `[0-9]*`; `None` on overflow, like Go's `leadingInt`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for c in s[..digits].bytes() {
        if x > OVERFLOW_LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > OVERFLOW_LIMIT {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// Consumes `[0-9]*` after a decimal point, dropping digits beyond the precision of a `u64`
/// like Go's `leadingFraction`. Returns the digits, their scale and the rest.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    let mut scale = 1.0;
    let mut overflow = false;
    for c in s[..digits].bytes() {
        if overflow {
            continue;
        }
        if x > MAX_NANOS / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > OVERFLOW_LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[digits..])
}

/// Formats a duration like Go's `Duration.String()`: "0s", "1.5µs", "500ms", "1m30s",
/// "1h0m0s". Sub-second durations use the largest fitting unit below a second; larger ones
/// use hours, minutes and (fractional) seconds, never days.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (precision, unit) = if nanos < 1_000 {
            (0, "ns")
        } else if nanos < 1_000_000 {
            (3, "\u{00b5}s")
        } else {
            (6, "ms")
        };
        return format!("{}{unit}", with_fraction(nanos, precision));
    }

    let seconds = with_fraction(nanos % 60_000_000_000, 9);
    let minutes_total = nanos / 60_000_000_000;
    if minutes_total == 0 {
        return format!("{seconds}s");
    }
    let minutes = minutes_total % 60;
    let hours = minutes_total / 60;
    if hours == 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{hours}h{minutes}m{seconds}s")
    }
}

/// `value / 10^precision` as a decimal, trailing zeros (and a bare point) omitted.
fn with_fraction(value: u128, precision: u32) -> String {
    let scale = 10u128.pow(precision);
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = precision as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;
