//! Errors of KV writes and session management. Display texts are Consul's where Consul has
//! one, because clients match on them and the HTTP layer shows them verbatim.

use std::time::Duration;

/// Why a KV or session write was refused (Consul answers these with 500 and the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// Every op but a tree delete needs a key (`kvsPreApply`).
    #[error("Must provide key")]
    MissingKey,
    /// Lock and unlock need a session (`kvsLockTxn`, `kvsUnlockTxn`).
    #[error("missing session")]
    MissingSession,
    /// Lock with a session that does not exist (`kvsLockTxn`).
    #[error("invalid session {0:?}")]
    SessionNotFound(String),
    #[error("Missing session ID")]
    MissingSessionId,
    /// Session IDs are chosen by the proposer; a collision is refused rather than overwritten.
    #[error("session {0:?} already exists")]
    SessionExists(String),
    #[error("Invalid Behavior setting '{0}'")]
    InvalidBehavior(String),
    /// Consul prints the TTL as integer nanoseconds and the bounds as Go durations.
    #[error(
        "Invalid Session TTL '{}', must be between [{}={}]",
        ttl.as_nanos(),
        go_duration(*min),
        go_duration(*max)
    )]
    InvalidSessionTtl {
        ttl: Duration,
        min: Duration,
        max: Duration,
    },
    /// A transaction verb Consul does not know (`txnKVS`).
    #[error("unknown KV verb {0:?}")]
    UnknownVerb(String),
}

/// Formats like Go's `time.Duration.String()` (`10s`, `24h0m0s`, `1.5ms`), which is how Consul
/// prints durations inside error texts.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    match nanos {
        0 => "0s".to_owned(),
        1..=999 => format!("{nanos}ns"),
        1_000..=999_999 => format!("{}µs", decimal(nanos, 3)),
        1_000_000..=999_999_999 => format!("{}ms", decimal(nanos, 6)),
        _ => {
            let secs = d.as_secs();
            let (hours, mins) = (secs / 3600, secs / 60 % 60);
            let secs = decimal(
                u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
                9,
            );
            match (hours, mins) {
                (0, 0) => format!("{secs}s"),
                (0, _) => format!("{mins}m{secs}s"),
                _ => format!("{hours}h{mins}m{secs}s"),
            }
        }
    }
}

/// `value / 10^scale` as a decimal with trailing fractional zeros removed.
fn decimal(value: u128, scale: u32) -> String {
    let unit = 10u128.pow(scale);
    let (whole, frac) = (value / unit, value % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = scale as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;
