//! Server-side CSR rate limiting, as Consul does it (agent/consul: `csr_max_per_second`): a token
//! bucket with a burst of 1 that a signing request may wait up to 500ms on before it is refused
//! with "Rate limit reached, try again later" (`structs.ErrRateLimited`, served as HTTP 429).
//! Pure: the caller passes the time and does any waiting itself.

use std::fmt;
use std::time::{Duration, SystemTime};

#[cfg(test)]
mod tests;

/// Consul's default `CSRMaxPerSecond`.
pub const DEFAULT_CSR_MAX_PER_SECOND: f64 = 50.0;

/// How long Consul lets a signing request wait for a token (`csrLimitWait`).
pub const CSR_LIMIT_WAIT: Duration = Duration::from_millis(500);

/// A token bucket: `rate_per_sec` tokens per second, holding at most `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrLimiter {
    rate_per_sec: f64,
    burst: u32,
    /// Negative while reservations are waiting for tokens that have not accrued yet.
    tokens: f64,
    last: Option<SystemTime>,
}

/// A refused request: the text is Consul's, `after` says when a token is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub after: Duration,
}

impl RetryAfter {
    /// Consul's `ErrRateLimited` text, which clients match on.
    pub const MESSAGE: &'static str = "Rate limit reached, try again later";
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for RetryAfter {}

impl CsrLimiter {
    /// A limiter allowing `rate_per_sec` CSRs per second with bursts of `burst` (at least 1).
    /// A rate of 0 (or less) disables limiting, as `CSRMaxPerSecond = 0` does in Consul.
    pub fn new(rate_per_sec: f64, burst: u32) -> CsrLimiter {
        let burst = burst.max(1);
        CsrLimiter {
            rate_per_sec: if rate_per_sec.is_finite() {
                rate_per_sec.max(0.0)
            } else {
                0.0
            },
            burst,
            tokens: f64::from(burst),
            last: None,
        }
    }

    /// Consul's limiter for a configured `CSRMaxPerSecond`: burst 1 (callers wait up to
    /// [`CSR_LIMIT_WAIT`] with [`CsrLimiter::reserve`] to smooth arrivals).
    pub fn with_rate(rate_per_sec: f64) -> CsrLimiter {
        CsrLimiter::new(rate_per_sec, 1)
    }

    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }

    /// Changes the rate when the CA configuration changes, keeping the tokens already accrued.
    pub fn set_rate(&mut self, rate_per_sec: f64, now: SystemTime) {
        self.refill(now);
        *self = CsrLimiter {
            tokens: self.tokens.min(f64::from(self.burst)),
            last: self.last,
            ..CsrLimiter::new(rate_per_sec, self.burst)
        };
    }

    /// Takes a token now or refuses: `Err` carries when to retry.
    pub fn check(&mut self, now: SystemTime) -> Result<(), RetryAfter> {
        self.reserve(now, Duration::ZERO).map(|_| ())
    }

    /// Takes a token that may only become available within `max_wait`: `Ok(wait)` means the
    /// caller must wait `wait` before signing (Go's `rate.Limiter.Wait` with a deadline);
    /// `Err` means it would have to wait longer and nothing was taken.
    pub fn reserve(&mut self, now: SystemTime, max_wait: Duration) -> Result<Duration, RetryAfter> {
        if self.rate_per_sec <= 0.0 {
            return Ok(Duration::ZERO);
        }
        self.refill(now);
        let left = self.tokens - 1.0;
        if left >= 0.0 {
            self.tokens = left;
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64(-left / self.rate_per_sec);
        if wait <= max_wait {
            self.tokens = left;
            Ok(wait)
        } else {
            Err(RetryAfter { after: wait })
        }
    }

    fn refill(&mut self, now: SystemTime) {
        let elapsed = match self.last {
            // A clock that went backwards accrues nothing.
            Some(last) => now.duration_since(last).unwrap_or_default(),
            None => Duration::ZERO,
        };
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        let accrued = elapsed.as_secs_f64() * self.rate_per_sec;
        self.tokens = (self.tokens + accrued).min(f64::from(self.burst));
    }
}
