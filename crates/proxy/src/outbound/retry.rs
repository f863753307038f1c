//! When an L7 request is sent again, as plain rules: which failures qualify, which methods
//! are safe to repeat, and the retry budget that keeps retries from multiplying load when an
//! upstream is already struggling (Envoy's `retry_budget`: retries in flight may not exceed
//! a share of the requests in flight, with a floor).
//!
//! Whether the request's body can be sent again is decided where the body is (see
//! [`super::http`]); nothing here buffers.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{Method, StatusCode};

#[cfg(test)]
mod tests;

/// How often, and how many at once, requests may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries per request after its first attempt, each on an instance this request has not
    /// tried yet; 0 disables retries. Default 2.
    pub max_retries: u32,
    /// Requests retrying at any moment may not exceed this percentage of the requests in
    /// flight... Default 20 (Envoy's `budget_percent`).
    pub budget_percent: u32,
    /// ...though this many may always retry. Default 3 (Envoy's `min_retry_concurrency`).
    pub min_retry_concurrency: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            budget_percent: 20,
            min_retry_concurrency: 3,
        }
    }
}

impl RetryPolicy {
    /// Whether one more request may start retrying while `retrying` of the `active` requests
    /// in flight already are.
    pub fn budget_allows(&self, active: u64, retrying: u64) -> bool {
        let share = active.saturating_mul(u64::from(self.budget_percent)) / 100;
        retrying < share.max(u64::from(self.min_retry_concurrency))
    }
}

/// Methods whose request may be repeated without changing the outcome (RFC 9110 §9.2.2),
/// so a response saying the instance could not handle it may be retried elsewhere.
pub fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// A response status that says "try another instance" (for idempotent requests).
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
}

/// The requests of one listener retrying now, held against the policy's budget.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    policy: RetryPolicy,
    retrying: AtomicU64,
}

impl RetryBudget {
    pub(crate) fn new(policy: RetryPolicy) -> RetryBudget {
        RetryBudget {
            policy,
            retrying: AtomicU64::new(0),
        }
    }

    /// A retry slot for one request, if the budget allows one with `active` requests in
    /// flight. The request holds it until it has its answer.
    pub(crate) fn try_acquire(&self, active: u64) -> Option<RetrySlot<'_>> {
        self.retrying
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |retrying| {
                self.policy
                    .budget_allows(active, retrying)
                    .then_some(retrying + 1)
            })
            .ok()
            .map(|_| RetrySlot(self))
    }

    #[cfg(test)]
    fn retrying(&self) -> u64 {
        self.retrying.load(Ordering::Acquire)
    }
}

/// One request's place in the retry budget, given back on drop.
#[derive(Debug)]
pub(crate) struct RetrySlot<'a>(&'a RetryBudget);

impl Drop for RetrySlot<'_> {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::AcqRel);
    }
}
