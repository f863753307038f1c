//! What the DNS interface counts, for the agent's `/v1/agent/metrics`: questions by kind with
//! how long answering took, and server failures.
//!
//! Relaxed atomics bumped once per request by the handler; no lock is taken. Read whole with
//! [`DnsStats::read`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counts, sum, min and max of durations, in microseconds.
#[derive(Debug)]
struct Latency {
    count: AtomicU64,
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Latency {
    fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.min_us.fetch_min(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    fn read(&self) -> LatencyStats {
        let count = self.count.load(Relaxed);
        LatencyStats {
            count,
            sum_us: self.sum_us.load(Relaxed),
            min_us: if count == 0 {
                0
            } else {
                self.min_us.load(Relaxed)
            },
            max_us: self.max_us.load(Relaxed),
        }
    }
}

/// A duration's count, sum, min and max, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyStats {
    pub count: u64,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
}

/// What kind of question a request asked, as the handler classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    /// A name in one of the mesh domains (answered from the cache or a lookup).
    Domain,
    /// A reverse (`in-addr.arpa`, `ip6.arpa`) question.
    Ptr,
    /// A name outside the mesh domains, sent to a recursor.
    Recursed,
    /// Refused, malformed or not implemented.
    Other,
}

/// The DNS interface's counters since it started; shared by the handler and the agent.
#[derive(Debug, Default)]
pub struct DnsStats {
    domain: Latency,
    ptr: Latency,
    recursed: Latency,
    other: AtomicU64,
    servfail: AtomicU64,
}

/// A reading of [`DnsStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsCounts {
    /// Questions for names in the mesh domains.
    pub domain_query: LatencyStats,
    /// Reverse lookups.
    pub ptr_query: LatencyStats,
    /// Questions forwarded to a recursor.
    pub recursed: LatencyStats,
    /// Requests refused or not answered (outside the domains with no recursor, malformed,
    /// not a query).
    pub other: u64,
    /// Responses with SERVFAIL (a lookup or a recursor failed).
    pub servfail: u64,
}

impl DnsStats {
    pub(crate) fn record(&self, kind: QueryKind, elapsed: Duration, servfail: bool) {
        match kind {
            QueryKind::Domain => self.domain.record(elapsed),
            QueryKind::Ptr => self.ptr.record(elapsed),
            QueryKind::Recursed => self.recursed.record(elapsed),
            QueryKind::Other => {
                self.other.fetch_add(1, Relaxed);
            }
        }
        if servfail {
            self.servfail.fetch_add(1, Relaxed);
        }
    }

    pub fn read(&self) -> DnsCounts {
        DnsCounts {
            domain_query: self.domain.read(),
            ptr_query: self.ptr.read(),
            recursed: self.recursed.read(),
            other: self.other.load(Relaxed),
            servfail: self.servfail.load(Relaxed),
        }
    }
}
