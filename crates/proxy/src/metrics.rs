//! Traffic counters and latency histograms, as plain atomics that the listeners bump and
//! anything may read. No exporter lives here: a Prometheus endpoint reads
//! [`InboundMetrics::snapshot`] and [`OutboundMetrics::snapshot`], plain data it can print.
//!
//! Recording is a few relaxed atomic adds: a [`Histogram`] has fixed buckets, and
//! [`StatusCounts`] one counter per possible status code, so the hot path never locks or
//! allocates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// A monotonic counter, or a gauge where documented as one.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one inbound (public, mTLS) listener.
#[derive(Debug, Default)]
pub struct InboundMetrics {
    /// TCP connections accepted.
    pub accepted: Counter,
    /// Handshakes that failed: no or untrusted client certificate, wrong trust domain, timeout,
    /// protocol errors. A peer that closes before sending anything is not counted.
    pub handshake_failures: Counter,
    /// L4: connections whose source the authorizer allowed. L7: requests it allowed.
    pub authorized: Counter,
    /// L4: connections whose source the authorizer denied (closed at once). L7: requests it
    /// denied (answered 403).
    pub denied: Counter,
    /// L4: allowed connections for which the local application could not be reached. L7:
    /// connects to the local application that failed or timed out (the request is answered
    /// 503).
    pub app_connect_failures: Counter,
    /// Connections being proxied now (a gauge).
    pub active: Counter,
    /// Bytes from mesh peers to the local application. L7: bytes read from mesh connections
    /// (HTTP framing included).
    pub bytes_in: Counter,
    /// Bytes from the local application back to mesh peers. L7: bytes written to mesh
    /// connections.
    pub bytes_out: Counter,
    /// L7 only: requests received from mesh peers.
    pub http: HttpMetrics,
}

/// A point-in-time copy of [`InboundMetrics`]; each field is documented there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundCounts {
    pub accepted: u64,
    pub handshake_failures: u64,
    pub authorized: u64,
    pub denied: u64,
    pub app_connect_failures: u64,
    /// A gauge.
    pub active: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub http: HttpCounts,
}

impl InboundMetrics {
    pub fn snapshot(&self) -> InboundCounts {
        InboundCounts {
            accepted: self.accepted.get(),
            handshake_failures: self.handshake_failures.get(),
            authorized: self.authorized.get(),
            denied: self.denied.get(),
            app_connect_failures: self.app_connect_failures.get(),
            active: self.active.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            http: self.http.snapshot(),
        }
    }
}

/// Counters of one outbound (per-upstream, plain TCP from the application) listener.
#[derive(Debug, Default)]
pub struct OutboundMetrics {
    /// Connections accepted from the local application.
    pub accepted: Counter,
    /// L4: connections for which an upstream instance was reached and its identity verified.
    /// L7: mTLS connections the pool opened to instances (identity verified).
    pub established: Counter,
    /// L4: connections given up on: no instance, or every attempt failed (the application's
    /// connection is closed). L7: requests answered 503 because no instance was available or
    /// none could be reached.
    pub failed: Counter,
    /// Attempts whose TCP connect failed or timed out.
    pub connect_failures: Counter,
    /// Attempts whose TLS handshake failed or timed out, a wrong server identity included.
    pub handshake_failures: Counter,
    /// Times an instance was ejected after failing repeatedly.
    pub ejections: Counter,
    /// Connections from the local application being proxied now (a gauge).
    pub active: Counter,
    /// Bytes from the local application to upstream instances. L7: bytes read from the
    /// application's connections (HTTP framing included).
    pub bytes_out: Counter,
    /// Bytes from upstream instances back to the local application. L7: bytes written to
    /// the application's connections.
    pub bytes_in: Counter,
    /// TCP connect plus TLS handshake of every successful connect to an instance, L4 and L7.
    pub connect_latency: Histogram,
    /// L7 only: requests sent again after a failed attempt (each retry counts once).
    pub retries: Counter,
    /// L7 only: retries not made because the retry budget was spent.
    pub retry_budget_exhausted: Counter,
    /// L7 only: requests received from the local application.
    pub http: HttpMetrics,
}

/// A point-in-time copy of [`OutboundMetrics`]; each field is documented there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundCounts {
    pub accepted: u64,
    pub established: u64,
    pub failed: u64,
    pub connect_failures: u64,
    pub handshake_failures: u64,
    pub ejections: u64,
    /// A gauge.
    pub active: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub connect_latency: HistogramSnapshot,
    pub retries: u64,
    pub retry_budget_exhausted: u64,
    pub http: HttpCounts,
}

impl OutboundMetrics {
    pub fn snapshot(&self) -> OutboundCounts {
        OutboundCounts {
            accepted: self.accepted.get(),
            established: self.established.get(),
            failed: self.failed.get(),
            connect_failures: self.connect_failures.get(),
            handshake_failures: self.handshake_failures.get(),
            ejections: self.ejections.get(),
            active: self.active.get(),
            bytes_out: self.bytes_out.get(),
            bytes_in: self.bytes_in.get(),
            connect_latency: self.connect_latency.snapshot(),
            retries: self.retries.get(),
            retry_budget_exhausted: self.retry_budget_exhausted.get(),
            http: self.http.snapshot(),
        }
    }
}

/// What an L7 listener counts about the requests it serves (the requests its clients sent:
/// the local application's on the outbound side, mesh peers' on the inbound side).
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Requests received.
    pub requests: Counter,
    /// Requests in flight: received and not yet answered to the end of the response body (a
    /// gauge).
    pub active: Counter,
    /// Responses sent back, by status code, the listener's own included (403 on deny, 503,
    /// 504).
    pub statuses: StatusCounts,
    /// From receiving a request to the end of its response body (or the client abandoning
    /// it).
    pub duration: Histogram,
}

/// A point-in-time copy of [`HttpMetrics`]; each field is documented there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpCounts {
    pub requests: u64,
    /// A gauge.
    pub active: u64,
    /// Responses by status code; codes never sent are absent.
    pub statuses: BTreeMap<u16, u64>,
    pub duration: HistogramSnapshot,
}

impl HttpMetrics {
    pub fn snapshot(&self) -> HttpCounts {
        HttpCounts {
            requests: self.requests.get(),
            active: self.active.get(),
            statuses: self.statuses.snapshot(),
            duration: self.duration.snapshot(),
        }
    }
}

/// The lowest and highest status codes HTTP can carry (`http::StatusCode`'s range).
const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 999;

/// One counter per status code: counting is an index and an atomic add.
pub struct StatusCounts(Box<[AtomicU64]>);

impl Default for StatusCounts {
    fn default() -> Self {
        let len = usize::from(STATUS_MAX - STATUS_MIN + 1);
        StatusCounts((0..len).map(|_| AtomicU64::new(0)).collect())
    }
}

impl std::fmt::Debug for StatusCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.snapshot()).finish()
    }
}

impl StatusCounts {
    /// Responses sent with `code` so far (0 for a code outside 100..=999).
    pub fn get(&self, code: u16) -> u64 {
        self.slot(code)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// Every code counted at least once, with its count.
    pub fn snapshot(&self) -> BTreeMap<u16, u64> {
        (STATUS_MIN..=STATUS_MAX)
            .filter_map(|code| {
                let n = self.get(code);
                (n > 0).then_some((code, n))
            })
            .collect()
    }

    pub(crate) fn inc(&self, code: u16) {
        if let Some(counter) = self.slot(code) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn slot(&self, code: u16) -> Option<&AtomicU64> {
        let index = code.checked_sub(STATUS_MIN)?;
        self.0.get(usize::from(index))
    }
}

/// The upper bounds of [`Histogram`]'s buckets, in milliseconds (Prometheus' `le`); a last,
/// unbounded bucket (`+Inf`) catches the rest.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// [`LATENCY_BUCKETS_MS`] in microseconds, the unit observations are compared in.
const BUCKET_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency distribution over the fixed buckets of [`LATENCY_BUCKETS_MS`]: one atomic count
/// per bucket (not cumulative) and the sum of all observations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// `counts[i]` holds observations in (bound[i-1], bound[i]]; the last one those above the
    /// last bound.
    counts: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], shaped like Prometheus' exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in ms, observations ≤ bound)` for each bound of [`LATENCY_BUCKETS_MS`],
    /// in increasing order; the counts are cumulative. Empty only for `Default`.
    pub buckets: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// The sum of all observations, in milliseconds.
    pub sum_ms: f64,
}

impl Histogram {
    pub(crate) fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_MS.len());
        for (bound, count) in LATENCY_BUCKETS_MS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        // Summed from the buckets rather than kept apart, so `count` is never below the
        // last bucket even while observations are being recorded.
        let overflow = self.counts[BUCKET_BOUNDS_US.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: cumulative + overflow,
            sum_ms: self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Keeps a gauge up while it lives.
#[derive(Debug)]
pub(crate) struct ActiveGuard<'a>(&'a Counter);

impl<'a> ActiveGuard<'a> {
    pub(crate) fn new(gauge: &'a Counter) -> Self {
        gauge.inc();
        ActiveGuard(gauge)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
