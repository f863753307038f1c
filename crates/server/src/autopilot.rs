//! Autopilot's housekeeping of the raft configuration, on the leader, driven by gossip:
//!
//! - a server that left the pool, or (with `CleanupDeadServers`) has been failed for longer than
//!   `ServerStabilizationTime`, is removed from raft, so a dead server stops counting towards
//!   quorum; never more than fewer than half the voters at once, never below `MinQuorum`, and
//!   never the leader itself;
//! - a live server of this datacenter that gossip has shown alive for `ServerStabilizationTime`
//!   but raft does not know (a removed server that came back, or one whose join was lost) is
//!   added back: first as a learner that catches up, then as a voter.
//!
//! [`plan`] decides from the raft configuration and the member list; [`run`] applies it.

use std::time::{Duration, Instant};

use agent::membership::{server_rpc_addr, Membership, ROLE_SERVER, TAG_DC, TAG_ROLE};
use consensus::{AutopilotConfig, NodeId, RaftNode, RaftServer};
use gossip::{Member, MemberStatus};
use tokio::sync::watch;

/// How often the leader looks, besides on every membership change.
const INTERVAL: Duration = Duration::from_secs(2);
/// How long adding a returning server may take (it catches up as a learner first).
const ADD_TIMEOUT: Duration = Duration::from_secs(60);

/// What the leader should change in the raft configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Dead voters to remove: raft id and node name.
    pub remove: Vec<(NodeId, String)>,
    /// Dead voters left alone because removing them would not be safe, and why.
    pub kept: Option<String>,
    /// Server RPC addresses of live servers raft does not know.
    pub add: Vec<String>,
}

/// The changes that bring the raft configuration `servers` in line with gossip's `members`,
/// as seen by the leader `me` of `datacenter` at `now`.
pub(crate) fn plan(
    servers: &[RaftServer],
    members: &[Member],
    config: &AutopilotConfig,
    me: NodeId,
    datacenter: &str,
    now: Instant,
) -> Plan {
    let stable_for = |m: &Member| now.saturating_duration_since(m.status_since);
    let member = |name: &str| members.iter().find(|m| m.name == name);
    let dead: Vec<&RaftServer> = servers
        .iter()
        .filter(|s| s.voter && s.raft_id != me)
        .filter(|s| {
            member(&s.node.name).is_some_and(|m| match m.status {
                MemberStatus::Left => true,
                MemberStatus::Failed => {
                    config.cleanup_dead_servers && stable_for(m) >= config.server_stabilization_time
                }
                _ => false,
            })
        })
        .collect();
    let voters = servers.iter().filter(|s| s.voter).count();
    let floor = (config.min_quorum as usize).max(1);
    let mut plan = Plan::default();
    if !dead.is_empty() {
        if dead.len() * 2 >= voters {
            plan.kept = Some(format!(
                "{} of {voters} voters are dead; removing them could lose data, so none is removed",
                dead.len()
            ));
        } else if voters - dead.len() < floor {
            plan.kept = Some(format!(
                "removing {} of {voters} voters would go below min_quorum {floor}",
                dead.len()
            ));
        } else {
            plan.remove = dead
                .iter()
                .map(|s| (s.raft_id, s.node.name.clone()))
                .collect();
        }
    }
    plan.add = members
        .iter()
        .filter(|m| m.tags.get(TAG_ROLE).map(String::as_str) == Some(ROLE_SERVER))
        .filter(|m| m.tags.get(TAG_DC).map(String::as_str) == Some(datacenter))
        .filter(|m| stable_for(m) >= config.server_stabilization_time)
        .filter_map(|m| Some((m, server_rpc_addr(m)?)))
        .filter(|(m, addr)| {
            !servers
                .iter()
                .any(|s| s.node.name == m.name || s.node.addr == *addr)
        })
        .map(|(_, addr)| addr)
        .collect();
    plan
}

/// The configuration a datacenter's autopilot starts with: the agent's `autopilot` block.
pub(crate) fn initial_config(config: &config::Autopilot) -> AutopilotConfig {
    AutopilotConfig {
        cleanup_dead_servers: config.cleanup_dead_servers,
        last_contact_threshold: config.last_contact_threshold,
        max_trailing_logs: config.max_trailing_logs,
        min_quorum: config.min_quorum,
        server_stabilization_time: config.server_stabilization_time,
        ..AutopilotConfig::default()
    }
}

/// Writes `initial` as the datacenter's autopilot configuration unless one was ever written
/// (as Consul's leader does when it takes over): the `autopilot` block of the leader's agent
/// configuration counts only until the first write, then the API changes it.
async fn initialize(node: &RaftNode, initial: &AutopilotConfig) {
    if node.reader().state().autopilot.create_index != 0 {
        return;
    }
    let op = consensus::Op::SetAutopilot {
        config: initial.clone(),
        cas: Some(0),
    };
    match node.write_as_leader(op).await {
        Ok(_) => tracing::info!("autopilot: configuration initialized from the agent's"),
        Err(err) => {
            tracing::debug!(%err, "autopilot: initializing the configuration failed; will retry")
        }
    }
}

/// While this server leads: initializes the configuration, then applies [`plan`] on every
/// membership change and every [`INTERVAL`].
pub(crate) async fn run(
    node: RaftNode,
    membership: Membership,
    initial: AutopilotConfig,
    me: NodeId,
    datacenter: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = membership.changes();
    let mut last_kept = None;
    loop {
        changes.borrow_and_update();
        if node.leader_view().is_leader && node.is_initialized() {
            initialize(&node, &initial).await;
            let (servers, _) = node.configuration();
            let config = node.reader().state().autopilot.clone();
            let plan = plan(
                &servers,
                &membership.members(),
                &config,
                me,
                &datacenter,
                Instant::now(),
            );
            if plan.kept.is_some() && plan.kept != last_kept {
                tracing::warn!(
                    reason = plan.kept.as_deref(),
                    "autopilot: dead servers kept"
                );
            }
            last_kept = plan.kept;
            for (id, name) in plan.remove {
                match node.remove_voter_as_leader(id).await {
                    Ok(()) => {
                        tracing::info!(server = %name, "autopilot: removed a dead server from raft")
                    }
                    Err(err) => {
                        tracing::warn!(server = %name, %err, "autopilot: removing a dead server failed")
                    }
                }
            }
            for addr in plan.add {
                add(&node, &addr).await;
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            Ok(()) = changes.changed() => {}
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Brings the live server at `addr` back into raft.
async fn add(node: &RaftNode, addr: &str) {
    let joiner = match rpc::identify(addr).await {
        Ok(joiner) => joiner,
        Err(err) => {
            tracing::debug!(%addr, %err, "autopilot: a live server did not answer yet");
            return;
        }
    };
    let name = joiner.node_name.clone();
    match tokio::time::timeout(ADD_TIMEOUT, rpc::add_voter(node, joiner)).await {
        Ok(Ok(())) => {
            tracing::info!(server = %name, %addr, "autopilot: added a live server to raft")
        }
        Ok(Err(err)) => tracing::warn!(server = %name, %err, "autopilot: adding a server failed"),
        Err(_) => {
            tracing::warn!(server = %name, "autopilot: adding a server timed out; will retry")
        }
    }
}

#[cfg(test)]
mod tests;
