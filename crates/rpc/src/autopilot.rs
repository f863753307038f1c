//! Autopilot's view of server health, computed by the leader from what it sees over server RPC:
//! how long ago each server answered, and how far its log trails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use consensus::{AutopilotConfig, NodeId, RaftNode};
use serde::{Deserialize, Serialize};

use crate::message::{Request, Response};
use crate::transport::ConnectionPool;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    pub raft_id: NodeId,
    pub node_id: String,
    pub name: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
    pub last_contact: Duration,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    /// Unix milliseconds since which `healthy` has not changed.
    pub stable_since_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    pub failure_tolerance: usize,
    pub servers: Vec<ServerHealth>,
}

/// The leader's autopilot: remembers since when each server has been (un)healthy.
#[derive(Debug, Clone)]
pub struct Autopilot {
    pool: ConnectionPool,
    stable: Arc<Mutex<HashMap<NodeId, (bool, SystemTime)>>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Autopilot {
    pub fn new(pool: ConnectionPool) -> Self {
        Autopilot {
            pool,
            stable: Arc::default(),
        }
    }

    /// Health as the leader sees it: computed here on the leader, asked of the leader otherwise.
    pub async fn leader_health(&self, node: &RaftNode) -> Result<Health, String> {
        let view = node.leader_view();
        if view.is_leader {
            let config = node.reader().state().autopilot.clone();
            return Ok(self.health(node, &config));
        }
        let leader = view.leader_addr.ok_or("No cluster leader")?;
        match self
            .pool
            .request(&leader, &Request::AutopilotHealth, Duration::from_secs(10))
            .await
        {
            Ok(Response::AutopilotHealth(result)) => result,
            Ok(_) => Err(format!("{leader} answered with an unexpected message")),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Health as this server sees it; meaningful on the leader, which hears from everyone.
    pub fn health(&self, node: &RaftNode, config: &AutopilotConfig) -> Health {
        let metrics = node.raft().metrics().borrow().clone();
        let (servers, _) = node.configuration();
        let leader_last = metrics.last_log_index.unwrap_or(0);
        let now = SystemTime::now();
        // A follower is heard from once per heartbeat, so the threshold counts from the last
        // heartbeat that was due, not from the last one that arrived.
        let threshold = config.last_contact_threshold
            + Duration::from_millis(node.raft().config().heartbeat_interval);
        let mut stable = self.stable.lock().expect("autopilot state poisoned");
        let servers: Vec<ServerHealth> = servers
            .into_iter()
            .map(|s| {
                let is_self = s.raft_id == metrics.id;
                let last_index = if is_self {
                    leader_last
                } else {
                    metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&s.raft_id).cloned().flatten())
                        .map_or(0, |id| id.index)
                };
                let last_contact = if is_self {
                    Duration::ZERO
                } else {
                    self.pool
                        .since_last_answer(&s.node.addr)
                        .unwrap_or(Duration::MAX)
                };
                let healthy = last_contact <= threshold
                    && leader_last.saturating_sub(last_index) <= config.max_trailing_logs;
                let since = stable.entry(s.raft_id).or_insert((healthy, now));
                if since.0 != healthy {
                    *since = (healthy, now);
                }
                ServerHealth {
                    raft_id: s.raft_id,
                    node_id: s.node.node_id.clone(),
                    name: s.node.name.clone(),
                    address: s.node.addr.clone(),
                    leader: s.leader,
                    voter: s.voter,
                    last_contact,
                    last_term: metrics.current_term,
                    last_index,
                    healthy,
                    stable_since_ms: unix_ms(since.1),
                }
            })
            .collect();
        let voters = servers.iter().filter(|s| s.voter).count();
        let healthy_voters = servers.iter().filter(|s| s.voter && s.healthy).count();
        let quorum = voters / 2 + 1;
        Health {
            healthy: servers.iter().all(|s| s.healthy),
            failure_tolerance: healthy_voters.saturating_sub(quorum),
            servers,
        }
    }
}
