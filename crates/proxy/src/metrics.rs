//! Traffic counters, as plain atomics that the listeners bump and anything may read. No
//! exporter lives here: a Prometheus endpoint reads [`InboundMetrics::snapshot`] and
//! [`OutboundMetrics::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Connections whose source the authorizer allowed.
    pub authorized: Counter,
    /// Connections whose source the authorizer denied (closed at once).
    pub denied: Counter,
    /// Allowed connections for which the local application could not be reached.
    pub app_connect_failures: Counter,
    /// Connections being proxied now (a gauge).
    pub active: Counter,
    /// Bytes from mesh peers to the local application.
    pub bytes_in: Counter,
    /// Bytes from the local application back to mesh peers.
    pub bytes_out: Counter,
}

/// A point-in-time copy of [`InboundMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundCounts {
    pub accepted: u64,
    pub handshake_failures: u64,
    pub authorized: u64,
    pub denied: u64,
    pub app_connect_failures: u64,
    pub active: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
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
        }
    }
}

/// Counters of one outbound (per-upstream, plain TCP from the application) listener.
#[derive(Debug, Default)]
pub struct OutboundMetrics {
    /// Connections accepted from the local application.
    pub accepted: Counter,
    /// Connections for which an upstream instance was reached and its identity verified.
    pub established: Counter,
    /// Connections given up on: no instance, or every attempt failed (the application's
    /// connection is closed).
    pub failed: Counter,
    /// Attempts whose TCP connect failed or timed out.
    pub connect_failures: Counter,
    /// Attempts whose TLS handshake failed or timed out, a wrong server identity included.
    pub handshake_failures: Counter,
    /// Times an instance was ejected after failing repeatedly.
    pub ejections: Counter,
    /// Connections being proxied now (a gauge).
    pub active: Counter,
    /// Bytes from the local application to upstream instances.
    pub bytes_out: Counter,
    /// Bytes from upstream instances back to the local application.
    pub bytes_in: Counter,
}

/// A point-in-time copy of [`OutboundMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundCounts {
    pub accepted: u64,
    pub established: u64,
    pub failed: u64,
    pub connect_failures: u64,
    pub handshake_failures: u64,
    pub ejections: u64,
    pub active: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
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
