//! What the DNS interface counts, for the agent's `/v1/agent/metrics`: questions by kind with
//! how long answering took, and server failures.
//!
//! Relaxed atomics bumped once per request by the handler; no lock is taken. Read whole with
//! [`DnsStats::read`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use timer::Timer;

/// A duration's count, sum, min and max, in microseconds.
pub type LatencyStats = timer::Timing;

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
    domain: Timer,
    ptr: Timer,
    recursed: Timer,
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
