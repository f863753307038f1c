//! One lock-free accumulator of durations, shared by everything the agent times for
//! `/v1/agent/metrics` (raft commits, DNS answers, HTTP requests): [`Timer::record`] from any
//! thread with relaxed atomics, [`Timer::read`] for a [`Timing`] (count, sum, min, max in
//! microseconds since the timer was made).
//!
//! Std only: no tokio, no IO, no clock (callers measure and pass the elapsed time).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Count, sum, min and max of the durations recorded, in microseconds.
#[derive(Debug)]
pub struct Timer {
    count: AtomicU64,
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Timer {
    fn default() -> Self {
        Timer {
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Timer {
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.min_us.fetch_min(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// What was recorded so far. The fields are read one by one, so a reading taken while
    /// another thread records may be off by that one duration; metrics tolerate that.
    pub fn read(&self) -> Timing {
        let count = self.count.load(Relaxed);
        Timing {
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

/// A [`Timer`]'s count, sum, min and max, in microseconds (all 0 before the first record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub count: u64,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_sum_min_and_max() {
        let timer = Timer::default();
        assert_eq!(timer.read(), Timing::default());
        for ms in [3, 1, 2] {
            timer.record(Duration::from_millis(ms));
        }
        assert_eq!(
            timer.read(),
            Timing {
                count: 3,
                sum_us: 6_000,
                min_us: 1_000,
                max_us: 3_000
            }
        );
    }
}
