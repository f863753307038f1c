//! Lifeguard's dynamic suspicion: a suspicion starts long and shortens as other members confirm it.
//!
//! foca schedules one fixed `ChangeSuspectToDown` timer per suspicion it raises. The engine holds that timer
//! here and hands it back to foca only once the dynamic timeout has passed. The timeout starts at `max` and
//! falls towards `min` as independent confirmations arrive (other members that also failed to probe the
//! member broadcast a confirmation). A crashed member is probed and confirmed by many, so it goes down after
//! about `min`; a member suspected only by one slow or badly connected node keeps the long timeout and has
//! plenty of time to refute.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;

/// Suspicions nobody here raised are forgotten after this many `max` timeouts.
const FORGET_AFTER_MAX_TIMEOUTS: u32 = 2;

/// Most suspicions tracked at once; beyond that the oldest unconfirmed ones are dropped.
const MAX_TRACKED: usize = 4096;

/// One suspicion: a member in one foca incarnation of one life.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SuspicionKey {
    pub(crate) member: Arc<str>,
    pub(crate) incarnation: u64,
    pub(crate) foca_incarnation: u16,
}

/// Timeout bounds and how many confirmations bring it to the minimum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SuspicionPolicy {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) expected_confirmations: u32,
}

impl SuspicionPolicy {
    /// Lifeguard's timeout after `confirmations`: from `max` down to `min`, logarithmically.
    pub(crate) fn timeout(&self, confirmations: usize) -> Duration {
        if self.expected_confirmations == 0 || self.max <= self.min {
            return self.min;
        }
        let confirmed = confirmations as f64;
        let fraction =
            ((confirmed + 1.0).ln() / (f64::from(self.expected_confirmations) + 1.0).ln()).min(1.0);
        let span = (self.max - self.min).as_secs_f64();
        let shortening = Duration::try_from_secs_f64(fraction * span).unwrap_or(Duration::MAX);
        self.max.saturating_sub(shortening).max(self.min)
    }
}

#[derive(Debug)]
struct Suspicion {
    confirmations: BTreeSet<String>,
    first_heard: Instant,
    /// foca's timer, when this node raised the suspicion, and when it did.
    ours: Option<(foca::Timer<NodeIdentity>, Instant)>,
}

/// What to do with a suspicion when its check timer fires.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The timeout has passed: give foca its timer back.
    Due(foca::Timer<NodeIdentity>),
    /// Check again after this long.
    Wait(Duration),
    /// Nothing to do (not ours, or already handled).
    Gone,
}

#[derive(Debug, Default)]
pub(crate) struct Suspicions {
    entries: HashMap<SuspicionKey, Suspicion>,
}

impl Suspicions {
    /// This node raised a suspicion (foca handed over its down timer). Returns whether it is new here and
    /// the time until it is due.
    pub(crate) fn raise(
        &mut self,
        key: SuspicionKey,
        timer: foca::Timer<NodeIdentity>,
        policy: SuspicionPolicy,
        now: Instant,
    ) -> (bool, Duration) {
        let entry = self.entries.entry(key).or_insert_with(|| Suspicion {
            confirmations: BTreeSet::new(),
            first_heard: now,
            ours: None,
        });
        // foca re-submits the timer when it probes a member that is already suspect; the first one counts.
        let first = entry.ours.is_none();
        let started = entry.ours.get_or_insert((timer, now)).1;
        (
            first,
            policy
                .timeout(entry.confirmations.len())
                .saturating_sub(now.saturating_duration_since(started)),
        )
    }

    /// Another member confirms a suspicion. Returns the new time until due when this node raised it too.
    pub(crate) fn confirm(
        &mut self,
        key: SuspicionKey,
        from: &str,
        policy: SuspicionPolicy,
        now: Instant,
    ) -> Option<Duration> {
        if self.entries.len() >= MAX_TRACKED && !self.entries.contains_key(&key) {
            self.forget_unconfirmed();
        }
        let entry = self.entries.entry(key).or_insert_with(|| Suspicion {
            confirmations: BTreeSet::new(),
            first_heard: now,
            ours: None,
        });
        if !entry.confirmations.insert(from.to_owned()) {
            return None;
        }
        let (_, started) = entry.ours.as_ref()?;
        Some(
            policy
                .timeout(entry.confirmations.len())
                .saturating_sub(now.saturating_duration_since(*started)),
        )
    }

    /// Decides what a check timer for `key` means now.
    pub(crate) fn check(
        &mut self,
        key: &SuspicionKey,
        policy: SuspicionPolicy,
        now: Instant,
    ) -> Verdict {
        let Some(entry) = self.entries.get(key) else {
            return Verdict::Gone;
        };
        let Some((_, started)) = &entry.ours else {
            return Verdict::Gone;
        };
        let remaining = policy
            .timeout(entry.confirmations.len())
            .saturating_sub(now.saturating_duration_since(*started));
        if !remaining.is_zero() {
            return Verdict::Wait(remaining);
        }
        match self.entries.remove(key).and_then(|entry| entry.ours) {
            Some((timer, _)) => Verdict::Due(timer),
            None => Verdict::Gone,
        }
    }

    /// Drops confirmations of suspicions this node never raised, once they are old.
    pub(crate) fn expire(&mut self, policy: SuspicionPolicy, now: Instant) {
        let keep = policy.max.saturating_mul(FORGET_AFTER_MAX_TIMEOUTS);
        self.entries.retain(|_, entry| {
            entry.ours.is_some() || now.saturating_duration_since(entry.first_heard) < keep
        });
    }

    fn forget_unconfirmed(&mut self) {
        self.entries.retain(|_, entry| entry.ours.is_some());
    }
}

#[cfg(test)]
mod tests;
