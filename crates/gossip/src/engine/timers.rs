//! Timers out of the driver's hands and back in: foca's, and the engine's own periodic work.

use std::net::SocketAddr;
use std::time::Instant;

use rand::RngExt;

use super::join::Retry;
use super::Gossip;
use crate::event::Event;
use crate::member::{MemberStatus, ReapPolicy};
use crate::timer::{Timer, TimerKind};
use crate::wire::Frame;

impl Gossip {
    /// Handles a timer returned by [`Gossip::poll_timer`] once its delay has passed.
    pub fn handle_timer(&mut self, timer: Timer, now: Instant) {
        if self.has_left() {
            return;
        }
        match timer.0 {
            TimerKind::Foca(timer) => {
                if matches!(timer, foca::Timer::ProbeRandomMember(_)) {
                    self.refresh_ping_digest();
                }
                if let Err(error) =
                    self.drive(now, |foca, effects| foca.handle_timer(timer, effects))
                {
                    tracing::debug!(%error, "foca timer");
                }
            }
            TimerKind::Reap => self.reap(now),
            TimerKind::Reconnect => self.reconnect(now),
            TimerKind::BroadcastTick => self.broadcast_tick(now),
            TimerKind::FinishLeave => self.finish_leave(now),
            TimerKind::QueryDeadline(id) => {
                if self.queries.finish(id) {
                    self.events.push_back(Event::QueryDone { id });
                }
            }
            TimerKind::JoinRetry(addr) => self.retry_join(addr, now),
            TimerKind::SuspicionNotice(suspect) => self.repeat_suspicion_notice(suspect),
            TimerKind::SuspicionCheck(key) => self.check_suspicion(key, now),
            TimerKind::Sync => self.sync(),
        }
        self.spread_news(now);
    }

    fn reap(&mut self, now: Instant) {
        let policy = ReapPolicy {
            reconnect_timeout: self.config.reconnect_timeout,
            tombstone_timeout: self.config.tombstone_timeout,
        };
        let reaped = self.table.reap(now, policy);
        self.events.extend(reaped);
        self.suspicions
            .expire(self.config.suspicion_policy(self.pool_size()), now);
        self.prune_identity_book();
        self.schedule(self.config.reap_interval, TimerKind::Reap);
    }

    /// Announces to one random failed member: if it is alive behind a healed partition, the pools merge.
    fn reconnect(&mut self, now: Instant) {
        let failed: Vec<_> = self
            .table
            .iter()
            .filter(|m| m.status == MemberStatus::Failed)
            .collect();
        if !failed.is_empty() {
            let target = failed[self.rng.random_range(0..failed.len())].identity();
            if let Err(error) = self.drive(now, |foca, effects| foca.announce(target, effects)) {
                tracing::debug!(%error, "reconnect announce");
            }
        }
        self.schedule(self.config.reconnect_interval, TimerKind::Reconnect);
    }

    /// Broadcasts too large to ride along probes and gossip get messages of their own.
    fn broadcast_tick(&mut self, now: Instant) {
        if self.foca.custom_broadcast_backlog() > 0 {
            if let Err(error) = self.drive(now, |foca, effects| foca.broadcast(effects)) {
                tracing::debug!(%error, "broadcast");
            }
        }
        self.schedule(self.config.gossip_interval, TimerKind::BroadcastTick);
    }

    fn finish_leave(&mut self, now: Instant) {
        if let Err(error) = self.drive(now, |foca, effects| foca.leave_cluster(effects)) {
            tracing::debug!(%error, "leave");
        }
        self.set_local_status(MemberStatus::Left, now);
    }

    fn retry_join(&mut self, addr: SocketAddr, now: Instant) {
        let foca = &self.foca;
        let retry = self
            .joins
            .retry(addr, |seed| foca.iter_members().any(|m| m.id() == seed));
        match retry {
            Retry::Done => return,
            Retry::Probe => self.send_frame(addr, &Frame::JoinProbe),
            Retry::Announce(seed) => {
                if let Err(error) = self.drive(now, |foca, effects| foca.announce(seed, effects)) {
                    tracing::debug!(%error, "join announce");
                }
            }
        }
        self.schedule(self.config.join_retry_interval, TimerKind::JoinRetry(addr));
    }
}
