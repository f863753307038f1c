//! What a raft member measures about itself, for the agent's `/v1/agent/metrics`: how long
//! proposals take to commit, how many operations were committed, and how often this member
//! changed role or saw a new leader.
//!
//! Plain relaxed atomics, written where the thing happens (the proposer, a task following
//! openraft's server metrics) and read whole by [`RaftNode::stats`](crate::RaftNode::stats).
//! Nothing here changes what raft does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use openraft::ServerState;
use timer::Timer;
use tokio::sync::watch;

use crate::types::{NodeId, ServerNode};

/// A duration's count, sum, min and max since the member started, in microseconds.
pub type LatencyStats = timer::Timing;

/// What [`RaftNode::stats`](crate::RaftNode::stats) reports: where the member's log is, and
/// counts since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStats {
    pub term: u64,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// Proposals (one raft entry each, possibly a batch of writes) from proposing to
    /// committed and applied on this leader.
    pub commit_time: LatencyStats,
    /// Writes (client writes and the leader's own) committed through this member while it led.
    pub applied_ops: u64,
    /// Proposals that failed or timed out.
    pub commit_failures: u64,
    pub became_leader: u64,
    pub became_candidate: u64,
    pub became_follower: u64,
    /// Times the known leader changed to another member (the first one seen is not a change).
    pub leader_changes: u64,
}

/// The counters behind [`RaftStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commit_time: Timer,
    applied_ops: AtomicU64,
    commit_failures: AtomicU64,
    became_leader: AtomicU64,
    became_candidate: AtomicU64,
    became_follower: AtomicU64,
    leader_changes: AtomicU64,
}

impl Counters {
    /// A proposal of `ops` client writes committed after `elapsed`.
    pub(crate) fn committed(&self, ops: usize, elapsed: Duration) {
        self.commit_time.record(elapsed);
        self.applied_ops.fetch_add(ops as u64, Relaxed);
    }

    pub(crate) fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Relaxed);
    }

    /// The counts; the log position is the caller's to fill in.
    pub(crate) fn read(&self) -> RaftStats {
        RaftStats {
            term: 0,
            last_log_index: 0,
            applied_index: 0,
            commit_time: self.commit_time.read(),
            applied_ops: self.applied_ops.load(Relaxed),
            commit_failures: self.commit_failures.load(Relaxed),
            became_leader: self.became_leader.load(Relaxed),
            became_candidate: self.became_candidate.load(Relaxed),
            became_follower: self.became_follower.load(Relaxed),
            leader_changes: self.leader_changes.load(Relaxed),
        }
    }

    /// Counts what changed between two observations of the member's role and leader.
    fn observe(&self, seen: &mut Seen, state: ServerState, leader: Option<NodeId>) {
        if seen.state != Some(state) {
            let counter = match state {
                ServerState::Leader => Some(&self.became_leader),
                ServerState::Candidate => Some(&self.became_candidate),
                ServerState::Follower => Some(&self.became_follower),
                ServerState::Learner | ServerState::Shutdown => None,
            };
            if let Some(counter) = counter {
                counter.fetch_add(1, Relaxed);
            }
            seen.state = Some(state);
        }
        if let Some(leader) = leader {
            if seen.leader.is_some_and(|known| known != leader) {
                self.leader_changes.fetch_add(1, Relaxed);
            }
            seen.leader = Some(leader);
        }
    }
}

/// The role and leader last observed.
#[derive(Debug, Default)]
struct Seen {
    state: Option<ServerState>,
    leader: Option<NodeId>,
}

/// Follows openraft's server metrics (they change on role, leader and membership changes
/// only) until raft stops. A role held only between two observations is not counted.
pub(crate) async fn follow_roles(
    counters: std::sync::Arc<Counters>,
    mut metrics: watch::Receiver<openraft::metrics::RaftServerMetrics<NodeId, ServerNode>>,
) {
    let mut seen = Seen::default();
    loop {
        {
            let m = metrics.borrow_and_update();
            counters.observe(&mut seen, m.state, m.current_leader);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_leader_changes_are_counted_on_transitions() {
        let counters = Counters::default();
        let mut seen = Seen::default();
        let steps = [
            (ServerState::Follower, None),
            (ServerState::Follower, Some(1)),
            (ServerState::Candidate, None),
            (ServerState::Leader, Some(2)),
            (ServerState::Leader, Some(2)),
            (ServerState::Follower, Some(3)),
        ];
        for (state, leader) in steps {
            counters.observe(&mut seen, state, leader);
        }
        let stats = counters.read();
        assert_eq!(
            (
                stats.became_follower,
                stats.became_candidate,
                stats.became_leader,
                stats.leader_changes
            ),
            (2, 1, 1, 2)
        );
    }

    #[test]
    fn commit_time_keeps_count_sum_min_and_max() {
        let counters = Counters::default();
        assert_eq!(counters.read().commit_time, LatencyStats::default());
        counters.committed(3, Duration::from_micros(500));
        counters.committed(1, Duration::from_micros(1500));
        let stats = counters.read();
        assert_eq!(
            stats.commit_time,
            LatencyStats {
                count: 2,
                sum_us: 2000,
                min_us: 500,
                max_us: 1500
            }
        );
        assert_eq!(stats.applied_ops, 4);
    }
}
