//! Lifeguard on top of foca: awareness-scaled probe timers, suspicions held for a timeout that shrinks with
//! independent confirmations, and the buddy notice that lets a suspected member refute within a round trip.

use std::iter;
use std::time::{Duration, Instant};

use foca::{Member as FocaMember, State};

use super::Gossip;
use crate::broadcast::{BroadcastItem, SuspicionConfirmation};
use crate::identity::NodeIdentity;
use crate::suspicion::{SuspicionKey, Verdict};
use crate::timer::TimerKind;
use crate::wire::Frame;

impl Gossip {
    /// Stretches the probe cycle by the awareness score (Lifeguard).
    pub(super) fn scale_foca_timer(
        &self,
        timer: &foca::Timer<NodeIdentity>,
        after: Duration,
    ) -> Duration {
        match timer {
            foca::Timer::ProbeRandomMember(_) | foca::Timer::SendIndirectProbe { .. } => {
                self.awareness.scale(after)
            }
            _ => after,
        }
    }

    /// foca suspects a member: hold its down timer for the dynamic timeout and tell the others.
    pub(super) fn raise_suspicion(&mut self, timer: foca::Timer<NodeIdentity>, now: Instant) {
        let foca::Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = &timer
        else {
            return;
        };
        let key = SuspicionKey {
            member: member_id.name.clone(),
            incarnation: member_id.incarnation,
            foca_incarnation: *incarnation,
        };
        let confirmation = SuspicionConfirmation {
            member: member_id.name.to_string(),
            incarnation: member_id.incarnation,
            foca_incarnation: *incarnation,
            from: self.local.name.clone(),
        };
        let policy = self.config.suspicion_policy(self.pool_size());
        let (first, remaining) = self.suspicions.raise(key.clone(), timer, policy, now);
        self.schedule(remaining, TimerKind::SuspicionCheck(key));
        if first {
            if let Err(error) = self.broadcast(BroadcastItem::Suspicion(confirmation), now) {
                tracing::debug!(%error, "suspicion confirmation");
            }
        }
    }

    /// Someone else suspects a member: count the confirmation, or refute when the member is us.
    pub(super) fn confirm_suspicion(&mut self, confirmation: SuspicionConfirmation, now: Instant) {
        if confirmation.from == self.local.name {
            return;
        }
        if confirmation.member == self.local.name {
            if confirmation.incarnation == self.identity.incarnation {
                let suspect = FocaMember::new(
                    self.identity.clone(),
                    confirmation.foca_incarnation,
                    State::Suspect,
                );
                if let Err(error) = self.drive(now, |foca, effects| {
                    foca.apply_many(iter::once(suspect), true, effects)
                }) {
                    tracing::debug!(%error, "refuting a suspicion");
                }
            }
            return;
        }
        let key = SuspicionKey {
            member: confirmation.member.as_str().into(),
            incarnation: confirmation.incarnation,
            foca_incarnation: confirmation.foca_incarnation,
        };
        let policy = self.config.suspicion_policy(self.pool_size());
        if let Some(remaining) =
            self.suspicions
                .confirm(key.clone(), &confirmation.from, policy, now)
        {
            self.schedule(remaining, TimerKind::SuspicionCheck(key));
        }
    }

    /// Buddy notice: tells a member we now suspect, so that it can refute within a round trip.
    pub(super) fn notify_suspect(&mut self, id: &NodeIdentity) {
        let suspect = self
            .foca
            .iter_members()
            .find(|member| member.id() == id && member.state() == State::Suspect)
            .cloned();
        if let Some(suspect) = suspect {
            self.send_suspicion_notice(suspect);
        }
    }

    /// Repeats a buddy notice while foca still suspects the member at the same incarnation.
    pub(super) fn repeat_suspicion_notice(&mut self, suspect: FocaMember<NodeIdentity>) {
        if self.foca.iter_members().any(|member| *member == suspect) {
            self.send_suspicion_notice(suspect);
        }
    }

    fn send_suspicion_notice(&mut self, suspect: FocaMember<NodeIdentity>) {
        self.send_frame(suspect.id().addr, &Frame::Suspect(suspect.clone()));
        let retry = self.awareness.scale(self.config.probe_timeout);
        self.schedule(retry, TimerKind::SuspicionNotice(suspect));
    }

    /// A suspicion's check timer fired: hand foca its down timer if the (dynamic) timeout has passed.
    pub(super) fn check_suspicion(&mut self, key: SuspicionKey, now: Instant) {
        let policy = self.config.suspicion_policy(self.pool_size());
        match self.suspicions.check(&key, policy, now) {
            // foca 2.0 sends `TurnUndead` to the member even when the suspicion was refuted in the meantime,
            // which makes a healthy member rejoin under a new incarnation: only hand over live suspicions.
            Verdict::Due(timer) if self.still_suspected(&key) => {
                if let Err(error) =
                    self.drive(now, |foca, effects| foca.handle_timer(timer, effects))
                {
                    tracing::debug!(%error, "suspicion timeout");
                }
            }
            Verdict::Due(_) | Verdict::Gone => {}
            Verdict::Wait(remaining) => self.schedule(remaining, TimerKind::SuspicionCheck(key)),
        }
    }

    /// Whether foca still suspects the member in the life and foca incarnation the suspicion was about.
    fn still_suspected(&self, key: &SuspicionKey) -> bool {
        self.foca.iter_members().any(|member| {
            member.id().name == key.member
                && member.id().incarnation == key.incarnation
                && member.state() == State::Suspect
                && member.incarnation() == key.foca_incarnation
        })
    }
}
