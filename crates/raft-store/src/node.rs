//! A running raft member and the leader's housekeeping.
//!
//! [`RaftNode`] is what the API layer talks to: it stamps writes with the wall clock, proposes
//! them, confirms leadership for linearizable reads, and (while leader) expires sessions whose
//! TTL ran out and reaps old KV tombstones. Like Consul, session TTL timers are leader-local:
//! a new leader re-arms every timer at its full length.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv::SessionTimers;
use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::watch;

use crate::command::{Command, Op, Response};
use crate::state_machine::StoreReader;
use crate::types::{NodeId, Raft};

/// How long a KV tombstone is kept before the leader reaps it (Consul's `tombstone_ttl`).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

/// Why a write or a linearizable read could not be served here.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// Consul's exact text: clients and operators match on it.
    #[error("No cluster leader")]
    NoLeader,
    #[error("raft stopped: {0}")]
    Stopped(String),
}

/// A committed write: what the state machine said and the log index it was applied at.
#[derive(Debug, Clone)]
pub struct Written {
    pub response: Response,
    pub index: u64,
}

/// Leadership as seen by this member, for `X-Consul-KnownLeader` and `/v1/status/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub is_leader: bool,
    /// The leader's advertised server RPC address, when one is known.
    pub leader_addr: Option<String>,
    /// Milliseconds since this member last heard from a quorum (leader) or the leader.
    pub last_contact_ms: u64,
}

#[derive(Clone)]
pub struct RaftNode {
    raft: Raft,
    reader: StoreReader,
    timers: Arc<Mutex<SessionTimers>>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.raft.metrics().borrow().id)
            .finish()
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl RaftNode {
    pub fn new(raft: Raft, reader: StoreReader) -> Self {
        Self {
            raft,
            reader,
            timers: Arc::new(Mutex::new(SessionTimers::new())),
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }

    /// Proposes `op` and waits until it is committed and applied.
    pub async fn write(&self, op: Op) -> Result<Written, ConsensusError> {
        let session_armed = match &op {
            Op::CreateSession(req) => req.ttl.map(|ttl| (req.id.clone(), ttl)),
            _ => None,
        };
        let destroyed = match &op {
            Op::DestroySession { id } => Some(id.clone()),
            _ => None,
        };
        let cmd = Command {
            now_ms: now_ms(),
            op,
        };
        let resp = self.raft.client_write(cmd).await.map_err(|err| match err {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ConsensusError::NoLeader,
            RaftError::APIError(other) => ConsensusError::Stopped(other.to_string()),
            RaftError::Fatal(fatal) => ConsensusError::Stopped(fatal.to_string()),
        })?;
        let mut timers = self.timers.lock().expect("session timers poisoned");
        if let Some((id, ttl)) = session_armed {
            if resp.data == Response::None {
                timers.arm(&id, ttl, now_ms());
            }
        }
        if let Some(id) = destroyed {
            timers.remove(&id);
        }
        Ok(Written {
            response: resp.data,
            index: resp.log_id.index,
        })
    }

    /// Confirms leadership with a quorum and waits until everything committed before the read
    /// is applied: a read after this sees every write acknowledged before it started.
    pub async fn linearize(&self) -> Result<(), ConsensusError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|err| match err {
                RaftError::APIError(_) => ConsensusError::NoLeader,
                RaftError::Fatal(fatal) => ConsensusError::Stopped(fatal.to_string()),
            })
    }

    pub fn leader_view(&self) -> LeaderView {
        let metrics = self.raft.metrics().borrow().clone();
        let is_leader = metrics.state == ServerState::Leader;
        let leader_addr = metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|node| node.addr.clone())
        });
        let last_contact_ms = if is_leader {
            0
        } else {
            metrics.millis_since_quorum_ack.unwrap_or(0)
        };
        LeaderView {
            is_leader,
            leader_addr,
            last_contact_ms,
        }
    }

    /// Server RPC addresses of the current voters.
    pub fn voter_addrs(&self) -> Vec<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id: NodeId| membership.get_node(&id).map(|n| n.addr.clone()))
            .collect()
    }

    /// Resets a session's TTL timer (a renew). Returns false when the session does not exist.
    pub fn renew_session(&self, id: &str) -> bool {
        let ttl = match self.reader.state().kv.session(id) {
            Some(session) => session.ttl,
            None => return false,
        };
        if let Some(ttl) = ttl {
            self.timers
                .lock()
                .expect("session timers poisoned")
                .renew(id, ttl, now_ms());
        }
        true
    }

    /// The leader's housekeeping loop: session TTL expiry and tombstone reaping. Runs until
    /// `shutdown` flips to true.
    pub async fn run_leader_duties(self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        let mut led_term = None;
        // (time, applied index) samples, to find the index that is older than TOMBSTONE_TTL.
        let mut history: std::collections::VecDeque<(u64, u64)> = Default::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = metrics.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let (state, term) = {
                let m = metrics.borrow();
                (m.state, m.current_term)
            };
            if state != ServerState::Leader {
                led_term = None;
                continue;
            }
            if led_term != Some(term) {
                led_term = Some(term);
                self.rearm_session_timers();
                history.clear();
            }
            self.expire_sessions().await;
            self.reap_tombstones(&mut history).await;
        }
    }

    fn rearm_session_timers(&self) {
        let now = now_ms();
        let state = self.reader.state();
        let mut timers = SessionTimers::new();
        for session in state.kv.sessions() {
            if let Some(ttl) = session.ttl {
                timers.arm(&session.id, ttl, now);
            }
        }
        drop(state);
        *self.timers.lock().expect("session timers poisoned") = timers;
    }

    async fn expire_sessions(&self) {
        let expired = self
            .timers
            .lock()
            .expect("session timers poisoned")
            .expired(now_ms());
        for id in expired {
            match self.write(Op::DestroySession { id: id.clone() }).await {
                Ok(_) => tracing::info!(session = %id, "session TTL expired; session invalidated"),
                Err(err) => {
                    tracing::warn!(session = %id, %err, "could not invalidate expired session; will retry");
                    let ttl = self.reader.state().kv.session(&id).and_then(|s| s.ttl);
                    if let Some(ttl) = ttl {
                        // Retry soon rather than after a whole TTL.
                        let retry_at = now_ms().saturating_sub(2 * ttl.as_millis() as u64) + 1_000;
                        self.timers
                            .lock()
                            .expect("session timers poisoned")
                            .renew(&id, ttl, retry_at);
                    }
                    return;
                }
            }
        }
    }

    async fn reap_tombstones(&self, history: &mut std::collections::VecDeque<(u64, u64)>) {
        let now = now_ms();
        let sample_every = 30_000;
        if history.back().is_none_or(|&(t, _)| now >= t + sample_every) {
            history.push_back((now, self.reader.last_applied_index()));
        }
        let ttl_ms = TOMBSTONE_TTL.as_millis() as u64;
        let mut reap_to = None;
        while let Some(&(t, index)) = history.front() {
            if now < t + ttl_ms {
                break;
            }
            reap_to = Some(index);
            history.pop_front();
        }
        if let Some(up_to_index) = reap_to {
            if let Err(err) = self.write(Op::ReapTombstones { up_to_index }).await {
                tracing::warn!(%err, "tombstone reaping failed; will retry");
                history.push_front((now.saturating_sub(ttl_ms), up_to_index));
            }
        }
    }
}
