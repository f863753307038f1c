//! Timers the engine asks its driver to schedule. Opaque to the driver: it only hands them back.

use std::net::SocketAddr;

use crate::event::QueryId;
use crate::identity::NodeIdentity;
use crate::suspicion::SuspicionKey;

/// A timer to hand back to [`crate::Gossip::handle_timer`] once its delay has passed.
#[derive(Clone, Debug)]
pub struct Timer(pub(crate) TimerKind);

#[derive(Clone, Debug)]
pub(crate) enum TimerKind {
    /// One of foca's own timers (probe cycle, suspicion, periodic gossip and announce).
    Foca(foca::Timer<NodeIdentity>),
    /// Remove failed and left members whose time is up.
    Reap,
    /// Announce to a random failed member, so that a healed partition merges.
    Reconnect,
    /// Push queued broadcasts out in dedicated messages.
    BroadcastTick,
    /// The leave intent has had its head start: tell foca we are leaving.
    FinishLeave,
    /// A query this node started has timed out.
    QueryDeadline(QueryId),
    /// Retry a join that has not connected yet.
    JoinRetry(SocketAddr),
    /// Repeat a buddy notice while the member is still suspected at this foca incarnation.
    SuspicionNotice(foca::Member<NodeIdentity>),
    /// See whether a suspicion this node raised has reached its (dynamic) timeout.
    SuspicionCheck(SuspicionKey),
    /// Pull the member list from a random member.
    Sync,
}

impl Timer {
    /// A short name for logs and traces.
    pub fn name(&self) -> &'static str {
        match &self.0 {
            TimerKind::Foca(_) => "foca",
            TimerKind::Reap => "reap",
            TimerKind::Reconnect => "reconnect",
            TimerKind::BroadcastTick => "broadcast",
            TimerKind::FinishLeave => "finish-leave",
            TimerKind::QueryDeadline(_) => "query-deadline",
            TimerKind::JoinRetry(_) => "join-retry",
            TimerKind::SuspicionNotice(_) => "suspicion-notice",
            TimerKind::SuspicionCheck(_) => "suspicion-check",
            TimerKind::Sync => "sync",
        }
    }
}
