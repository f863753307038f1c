//! Lifeguard's local health awareness: how much this node should doubt itself.
//!
//! A node that misses acks or keeps having to refute suspicions about itself is more likely slow (CPU
//! starved, paused, congested) than surrounded by failed peers. Its score rises, and its probe interval,
//! probe timeout and suspicion timeout stretch by `score + 1`, so it stops accusing healthy members.
//! Successful probes lower the score again.

use std::sync::Arc;
use std::time::Duration;

/// The awareness score, `0..=max`.
#[derive(Debug)]
pub(crate) struct Awareness {
    score: u8,
    max: u8,
}

impl Awareness {
    /// `max = 0` disables awareness.
    pub(crate) fn new(max: u8) -> Self {
        Awareness { score: 0, max }
    }

    pub(crate) fn score(&self) -> u8 {
        self.score
    }

    pub(crate) fn raise(&mut self) {
        self.score = self.score.saturating_add(1).min(self.max);
    }

    pub(crate) fn lower(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// Stretches a timeout by `score + 1`.
    pub(crate) fn scale(&self, timeout: Duration) -> Duration {
        timeout.saturating_mul(u32::from(self.score) + 1)
    }
}

/// What the awareness score needs to know about our own probing, gathered from foca's notifications.
#[derive(Debug, Default)]
pub(crate) struct ProbeWatch {
    /// The member pinged last and the probe number, until its ack arrives.
    pending_ping: Option<(Arc<str>, u8)>,
    /// foca's incarnation of our current identity (identity incarnation, foca incarnation).
    refutations: Option<(u64, u16)>,
}

impl ProbeWatch {
    pub(crate) fn ping_sent(&mut self, to: Arc<str>, probe_number: u8) {
        self.pending_ping = Some((to, probe_number));
    }

    /// True when this ack answers the pending direct ping (the first time only).
    pub(crate) fn ack_received(&mut self, from: &str, probe_number: u8) -> bool {
        match &self.pending_ping {
            Some((to, number)) if **to == *from && *number == probe_number => {
                self.pending_ping = None;
                true
            }
            _ => false,
        }
    }

    /// Records the foca incarnation our messages carry; true when it grew, i.e. we refuted a suspicion.
    pub(crate) fn incarnation_sent(
        &mut self,
        identity_incarnation: u64,
        foca_incarnation: u16,
    ) -> bool {
        let grew = matches!(
            self.refutations,
            Some((identity, previous)) if identity == identity_incarnation && foca_incarnation > previous
        );
        self.refutations = Some((identity_incarnation, foca_incarnation));
        grew
    }

    /// foca's incarnation of our identity as last seen on the wire.
    pub(crate) fn foca_incarnation(&self, identity_incarnation: u64) -> u16 {
        match self.refutations {
            Some((identity, incarnation)) if identity == identity_incarnation => incarnation,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
