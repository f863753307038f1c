//! A running raft member and the leader's housekeeping.
//!
//! [`RaftNode`] is what the API layer talks to: it stamps writes with the wall clock, gathers
//! concurrent writes into one raft entry (group commit) and proposes them, confirms leadership for linearizable reads, and (while leader) expires sessions whose
//! TTL ran out and reaps old KV tombstones. Like Consul, session TTL timers are leader-local:
//! a new leader re-arms every timer at its full length.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::types::ServerNode;
use kv::SessionTimers;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::applied::StoreReader;
use crate::command::{Command, Op, Response};
use crate::types::{NodeId, Raft};

/// How long a KV tombstone is kept before the leader reaps it (Consul's `tombstone_ttl`).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a proposal may wait for its commit.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most client writes proposed as one raft entry.
const MAX_BATCH_OPS: usize = 256;
/// Roughly the most bytes of client writes in one raft entry.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Batches in flight at once: one being made durable while the next one fills.
const BATCHES_IN_FLIGHT: usize = 2;

/// How long a write or read barrier waits for a leader before giving up (Consul's
/// `rpc_hold_timeout`).
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(7);

/// Why a write or a linearizable read could not be served here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ConsensusError {
    /// Consul's exact text: clients and operators match on it.
    #[error("No cluster leader")]
    NoLeader,
    /// Another server leads; the request should go there.
    #[error("this server is not the leader; the leader is {leader}")]
    NotLeader { leader: String },
    #[error("raft stopped: {0}")]
    Stopped(String),
    /// A write was sent but its fate is not known (leadership changed, or the connection to the
    /// leader broke after sending). It may or may not be applied, so it is never retried.
    #[error("rpc error making call: the write's outcome is unknown: {0}")]
    Unknown(String),
    /// The request was understood and refused (e.g. removing the last voter).
    #[error("{0}")]
    Refused(String),
    /// The leader could not reach a quorum in time; a write's outcome is unknown.
    #[error("timed out after {0:?} waiting for a quorum")]
    Timeout(Duration),
}

/// Sends requests that only the leader can serve to the leader (the server RPC transport).
pub trait Forward: Send + Sync + std::fmt::Debug + 'static {
    fn write(&self, leader: String, op: Op) -> BoxFuture<Result<Written, ConsensusError>>;
    /// The leader's read index after it confirmed its leadership.
    fn read_index(&self, leader: String) -> BoxFuture<Result<u64, ConsensusError>>;
    fn renew_session(&self, leader: String, id: String) -> BoxFuture<Result<bool, ConsensusError>>;
    fn remove_voter(&self, leader: String, id: NodeId) -> BoxFuture<Result<(), ConsensusError>>;
    fn transfer_leadership(
        &self,
        leader: String,
        to: Option<NodeId>,
    ) -> BoxFuture<Result<NodeId, ConsensusError>>;
    /// Asks the server at `addr` to start an election now (the last step of a transfer).
    fn elect(&self, addr: String) -> BoxFuture<Result<(), ConsensusError>>;
}

/// One server of the raft configuration, for `/v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftServer {
    pub raft_id: NodeId,
    pub node: crate::types::ServerNode,
    pub leader: bool,
    pub voter: bool,
}

pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A committed write: what the state machine said and the log index it was applied at.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    proposals: mpsc::Sender<Proposal>,
    forward: Option<Arc<dyn Forward>>,
    /// When a leader last reached this server (a follower), or when this node started.
    leader_contact: Arc<Mutex<std::time::Instant>>,
    /// This server's CSR rate limit.
    pub(crate) limiter: crate::connect::Limiter,
    /// The data keys that seal the CA's private keys at rest (none: they stay PEM).
    pub(crate) data_keys: Option<Arc<ca::seal::DataKeys>>,
    /// Commit times and role changes, for the agent's metrics.
    stats: Arc<crate::stats::Counters>,
}

/// A client write waiting to be proposed.
struct Proposal {
    op: Op,
    reply: oneshot::Sender<Result<Written, ConsensusError>>,
}

/// Group commit. openraft 0.9 makes each proposal durable before it takes the next, so
/// concurrent client writes are gathered here into one entry: one append, one fsync, one
/// apply. While a batch is being committed the next one fills; no write waits for a timer.
async fn run_proposer(
    raft: Raft,
    mut queue: mpsc::Receiver<Proposal>,
    stats: Arc<crate::stats::Counters>,
) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.op.approx_size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.op.approx_size();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            propose(&raft, batch, &stats).await;
            drop(permit);
        });
    }
}

async fn propose(raft: &Raft, batch: Vec<Proposal>, stats: &crate::stats::Counters) {
    let batched = batch.len() > 1;
    let writes = batch.len();
    let (mut ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
    let op = match ops.pop() {
        Some(only) if !batched => only,
        Some(last) => {
            ops.push(last);
            Op::Batch(ops)
        }
        None => return,
    };
    // A leader cut off from its quorum never commits; give up instead of hanging. The write
    // may still commit later if the partition heals, so the outcome is unknown to the client.
    let proposed = std::time::Instant::now();
    let write = raft.client_write(Command {
        now_ms: now_ms(),
        op,
    });
    let Ok(result) = tokio::time::timeout(COMMIT_TIMEOUT, write).await else {
        stats.commit_failed();
        let err = ConsensusError::Timeout(COMMIT_TIMEOUT);
        for reply in replies {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    };
    match result {
        Ok(resp) => {
            stats.committed(writes, proposed.elapsed());
            let index = resp.log_id.index;
            let responses = match resp.data {
                Response::Batch(responses) if batched => responses,
                single => vec![single],
            };
            for (reply, response) in replies.into_iter().zip(responses) {
                // The client may have gone away; its write is committed regardless.
                let _ = reply.send(Ok(Written { response, index }));
            }
        }
        Err(err) => {
            stats.commit_failed();
            let err = match err {
                // The entry may already be in the log and be committed by the next leader:
                // retrying could apply it twice, so the client is told the outcome is unknown.
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                    ConsensusError::Unknown(
                        "leadership changed before the write was committed".into(),
                    )
                }
                RaftError::APIError(other) => ConsensusError::Stopped(other.to_string()),
                RaftError::Fatal(fatal) => ConsensusError::Stopped(fatal.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

fn not_leader(leader: Option<ServerNode>) -> ConsensusError {
    match leader {
        Some(node) => ConsensusError::NotLeader { leader: node.addr },
        None => ConsensusError::NoLeader,
    }
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
    /// Wraps a started raft member. Spawns the proposer task, so call it inside a runtime.
    pub fn new(raft: Raft, reader: StoreReader) -> Self {
        let (proposals, queue) = mpsc::channel(4 * MAX_BATCH_OPS);
        let stats = Arc::new(crate::stats::Counters::default());
        tokio::spawn(run_proposer(raft.clone(), queue, stats.clone()));
        tokio::spawn(crate::stats::follow_roles(
            stats.clone(),
            raft.server_metrics(),
        ));
        Self {
            raft,
            reader,
            timers: Arc::new(Mutex::new(SessionTimers::new())),
            proposals,
            forward: None,
            leader_contact: Arc::new(Mutex::new(std::time::Instant::now())),
            limiter: crate::connect::Limiter::default(),
            data_keys: None,
            stats,
        }
    }

    /// Seals the CA's private keys with `keys` before any CA change is proposed, and opens
    /// them to sign leaves (see [`RaftNode::update_ca`]).
    pub fn with_data_keys(mut self, keys: Option<Arc<ca::seal::DataKeys>>) -> Self {
        self.data_keys = keys;
        self
    }

    /// The data keys this server seals the CA's keys with, if it has any.
    pub fn data_keys(&self) -> Option<&Arc<ca::seal::DataKeys>> {
        self.data_keys.as_ref()
    }

    /// Where this member's log is, and commit times, committed writes and role changes since
    /// it started.
    pub fn stats(&self) -> crate::stats::RaftStats {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        crate::stats::RaftStats {
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            ..self.stats.read()
        }
    }

    /// Lets a follower send writes and read barriers to the leader.
    pub fn with_forwarder(mut self, forward: Arc<dyn Forward>) -> Self {
        self.forward = Some(forward);
        self
    }

    async fn forward_to<T, Remote, RemoteFut>(
        &self,
        leader: String,
        remote: &Remote,
    ) -> Result<T, ConsensusError>
    where
        Remote: Fn(&dyn Forward, String) -> RemoteFut,
        RemoteFut: std::future::Future<Output = Result<T, ConsensusError>>,
    {
        match &self.forward {
            Some(forward) => remote(forward.as_ref(), leader).await,
            None => Err(ConsensusError::NoLeader),
        }
    }

    /// Runs `attempt` against the leader: locally when this server leads, else forwarded.
    /// While no leader is known, retries for up to [`HOLD_TIMEOUT`].
    async fn on_leader<T, Local, LocalFut, Remote, RemoteFut>(
        &self,
        local: Local,
        remote: Remote,
    ) -> Result<T, ConsensusError>
    where
        Local: Fn() -> LocalFut,
        LocalFut: std::future::Future<Output = Result<T, ConsensusError>>,
        Remote: Fn(&dyn Forward, String) -> RemoteFut,
        RemoteFut: std::future::Future<Output = Result<T, ConsensusError>>,
    {
        let deadline = tokio::time::Instant::now() + HOLD_TIMEOUT;
        loop {
            let outcome = match local().await {
                Err(ConsensusError::NotLeader { leader }) => self.forward_to(leader, &remote).await,
                // openraft does not always name the leader in its refusal; metrics may know it.
                Err(ConsensusError::NoLeader) => match self.leader_view() {
                    LeaderView {
                        is_leader: false,
                        leader_addr: Some(leader),
                        ..
                    } => self.forward_to(leader, &remote).await,
                    _ => Err(ConsensusError::NoLeader),
                },
                other => other,
            };
            match outcome {
                Err(ConsensusError::NoLeader | ConsensusError::NotLeader { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(ConsensusError::NotLeader { .. }) => return Err(ConsensusError::NoLeader),
                other => return other,
            }
        }
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn reader(&self) -> &StoreReader {
        &self.reader
    }

    /// Proposes `op` (forwarded to the leader when this server is a follower) and waits until
    /// it is committed and applied.
    pub async fn write(&self, op: Op) -> Result<Written, ConsensusError> {
        self.on_leader(
            || self.write_as_leader(op.clone()),
            |forward, leader| forward.write(leader, op.clone()),
        )
        .await
    }

    /// Proposes `op` on this server. `NotLeader`/`NoLeader` mean it was not proposed (safe to
    /// retry elsewhere); any failure after proposing is `Unknown` or `Timeout`.
    pub async fn write_as_leader(&self, op: Op) -> Result<Written, ConsensusError> {
        let view = self.leader_view();
        if !view.is_leader {
            return Err(match view.leader_addr {
                Some(leader) => ConsensusError::NotLeader { leader },
                None => ConsensusError::NoLeader,
            });
        }
        let session_armed = match &op {
            Op::CreateSession(req) => req.ttl.map(|ttl| (req.id.clone(), ttl)),
            _ => None,
        };
        let destroyed = match &op {
            Op::DestroySession { id } => Some(id.clone()),
            _ => None,
        };
        let (reply, replied) = oneshot::channel();
        let stopped = || ConsensusError::Stopped("the write proposer has stopped".into());
        self.proposals
            .send(Proposal { op, reply })
            .await
            .map_err(|_| stopped())?;
        let written = replied.await.map_err(|_| stopped())??;
        let mut timers = self.timers.lock().expect("session timers poisoned");
        if let Some((id, ttl)) = session_armed {
            if written.response == Response::None {
                timers.arm(&id, ttl, now_ms());
            }
        }
        if let Some(id) = destroyed {
            timers.remove(&id);
        }
        Ok(written)
    }

    /// Makes the local state at least as fresh as every write acknowledged before this call:
    /// the leader confirms its leadership with a quorum (read index); a follower asks the leader
    /// for its read index and waits until it has applied that far.
    pub async fn linearize(&self) -> Result<(), ConsensusError> {
        let read_index = self
            .on_leader(
                || self.read_index_as_leader(),
                |forward, leader| forward.read_index(leader),
            )
            .await?;
        self.raft
            .wait(Some(HOLD_TIMEOUT))
            .applied_index_at_least(Some(read_index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| ConsensusError::NoLeader)
    }

    /// The read index after confirming leadership; `NotLeader` on a follower.
    pub async fn read_index_as_leader(&self) -> Result<u64, ConsensusError> {
        let confirm = self.raft.ensure_linearizable();
        let Ok(confirmed) = tokio::time::timeout(HOLD_TIMEOUT, confirm).await else {
            // A leader that cannot hear from a quorum must not serve the read.
            return Err(ConsensusError::NoLeader);
        };
        match confirmed {
            Ok(read_log_id) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                Err(not_leader(to.leader_node))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ConsensusError::NoLeader)
            }
            Err(RaftError::Fatal(fatal)) => Err(ConsensusError::Stopped(fatal.to_string())),
        }
    }

    /// Whether this server belongs to a raft configuration (bootstrapped or joined).
    pub fn is_initialized(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    pub fn leader_view(&self) -> LeaderView {
        // Called for every response's headers: read the metrics in place, don't clone them.
        let (is_leader, leader_addr, quorum_ack_ms) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let leader_addr = metrics.current_leader.and_then(|leader| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&leader)
                    .map(|node| node.addr.clone())
            });
            (
                metrics.state == ServerState::Leader,
                leader_addr,
                metrics.millis_since_quorum_ack,
            )
        };
        let last_contact_ms = if is_leader {
            quorum_ack_ms.unwrap_or(0)
        } else {
            let since = self
                .leader_contact
                .lock()
                .expect("leader contact poisoned")
                .elapsed();
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        };
        // A leader that has not heard from a quorum for longer than an election timeout has most
        // likely been replaced; like Consul's stepped-down leader it stops claiming a known one.
        let leader_addr = if is_leader && last_contact_ms > self.raft.config().election_timeout_max
        {
            None
        } else {
            leader_addr
        };
        LeaderView {
            is_leader,
            leader_addr,
            last_contact_ms,
        }
    }

    /// Records that the current leader just reached this server (an AppendEntries or snapshot
    /// from it), for `X-Consul-LastContact` on followers.
    pub fn note_leader_contact(&self) {
        *self.leader_contact.lock().expect("leader contact poisoned") = std::time::Instant::now();
    }

    /// The raft configuration as this server knows it, and the log index it was committed at.
    pub fn configuration(&self) -> (Vec<RaftServer>, u64) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let servers = membership
            .nodes()
            .map(|(&raft_id, node)| RaftServer {
                raft_id,
                node: node.clone(),
                leader: metrics.current_leader == Some(raft_id),
                voter: membership.voter_ids().any(|v| v == raft_id),
            })
            .collect();
        let index = metrics.membership_config.log_id().map_or(0, |id| id.index);
        (servers, index)
    }

    /// Removes a server from the raft configuration (forwarded to the leader).
    pub async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.on_leader(
            || self.remove_voter_as_leader(id),
            |forward, leader| forward.remove_voter(leader, id),
        )
        .await
    }

    pub async fn remove_voter_as_leader(&self, id: NodeId) -> Result<(), ConsensusError> {
        let (servers, _) = self.configuration();
        let remaining: std::collections::BTreeSet<NodeId> = servers
            .iter()
            .filter(|s| s.voter && s.raft_id != id)
            .map(|s| s.raft_id)
            .collect();
        if remaining.is_empty() {
            return Err(ConsensusError::Refused(
                "cannot remove the last voter".into(),
            ));
        }
        match self.raft.change_membership(remaining, false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(not_leader(to.leader_node))
            }
            Err(RaftError::APIError(other)) => Err(ConsensusError::Refused(other.to_string())),
            Err(RaftError::Fatal(fatal)) => Err(ConsensusError::Stopped(fatal.to_string())),
        }
    }

    /// Moves leadership to `to` (or the most up-to-date other voter), forwarded to the leader.
    /// Returns the new leader's raft id.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<NodeId, ConsensusError> {
        self.on_leader(
            || self.transfer_leadership_as_leader(to),
            |forward, leader| forward.transfer_leadership(leader, to),
        )
        .await
    }

    /// openraft 0.9 has no transfer API, so the leader does it by hand: wait until the target has
    /// the whole log, stop heartbeats until the followers' leader leases lapse, have the target
    /// start an election (its log is the most up to date, so it wins), then resume heartbeats.
    pub async fn transfer_leadership_as_leader(
        &self,
        to: Option<NodeId>,
    ) -> Result<NodeId, ConsensusError> {
        let view = self.leader_view();
        if !view.is_leader {
            return Err(match view.leader_addr {
                Some(leader) => ConsensusError::NotLeader { leader },
                None => ConsensusError::NoLeader,
            });
        }
        let me = self.raft.metrics().borrow().id;
        let (servers, _) = self.configuration();
        let matched = |id: NodeId| {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index.unwrap_or(0);
            let theirs = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map_or(0, |l| l.index);
            (theirs, last)
        };
        let target = match to {
            Some(id) if id == me => return Ok(me),
            Some(id) => servers
                .iter()
                .find(|s| s.raft_id == id && s.voter)
                .ok_or_else(|| ConsensusError::Refused(format!("server {id} is not a voter")))?,
            None => servers
                .iter()
                .filter(|s| s.voter && s.raft_id != me)
                .max_by_key(|s| matched(s.raft_id).0)
                .ok_or_else(|| {
                    ConsensusError::Refused("there is no other voter to transfer to".into())
                })?,
        };
        let forward = self
            .forward
            .clone()
            .ok_or_else(|| ConsensusError::Refused("this server has no server RPC".into()))?;
        let deadline = tokio::time::Instant::now() + HOLD_TIMEOUT;
        while matched(target.raft_id).0 < matched(target.raft_id).1 {
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsensusError::Refused(format!(
                    "{} did not catch up in time",
                    target.node.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lease = Duration::from_millis(self.raft.config().election_timeout_max);
        self.raft.runtime_config().heartbeat(false);
        tokio::time::sleep(lease + lease / 4).await;
        let elected = forward.elect(target.node.addr.clone()).await;
        let outcome = match elected {
            Ok(()) => {
                let wait = self
                    .raft
                    .wait(Some(HOLD_TIMEOUT))
                    .metrics(
                        |m| m.current_leader.is_some_and(|l| l != me),
                        "a new leader",
                    )
                    .await;
                match wait {
                    Ok(m) if m.current_leader == Some(target.raft_id) => Ok(target.raft_id),
                    Ok(m) => Err(ConsensusError::Refused(format!(
                        "leadership moved to server {:?} instead of {}",
                        m.current_leader, target.node.name
                    ))),
                    Err(_) => Err(ConsensusError::Refused(
                        "no new leader was elected; leadership stays".into(),
                    )),
                }
            }
            Err(err) => Err(err),
        };
        self.raft.runtime_config().heartbeat(true);
        outcome
    }

    /// Starts an election on this server now (a leadership transfer's last step).
    pub async fn elect_now(&self) -> Result<(), ConsensusError> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| ConsensusError::Stopped(e.to_string()))
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

    /// Resets a session's TTL timer on the leader (a renew). Returns false when the session
    /// does not exist.
    pub async fn renew_session(&self, id: &str) -> Result<bool, ConsensusError> {
        self.on_leader(
            || std::future::ready(self.renew_session_as_leader(id)),
            |forward, leader| forward.renew_session(leader, id.to_owned()),
        )
        .await
    }

    pub fn renew_session_as_leader(&self, id: &str) -> Result<bool, ConsensusError> {
        let view = self.leader_view();
        if !view.is_leader {
            return Err(match view.leader_addr {
                Some(leader) => ConsensusError::NotLeader { leader },
                None => ConsensusError::NoLeader,
            });
        }
        let ttl = match self.reader.state().kv.session(id) {
            Some(session) => session.ttl,
            None => return Ok(false),
        };
        if let Some(ttl) = ttl {
            self.timers
                .lock()
                .expect("session timers poisoned")
                .renew(id, ttl, now_ms());
        }
        Ok(true)
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
