//! Forming a datacenter from `bootstrap_expect` and the servers gossip shows, and joining an
//! existing one.
//!
//! Servers find each other through gossip (their `role` and `port` tags); every server dials the
//! others it sees there over server RPC and asks who they are. When a
//! server knows `bootstrap_expect` servers (itself included), none of them already belongs to a
//! raft configuration, and it has the lowest raft id among them, it bootstraps raft with exactly
//! those servers; the others are brought in by that configuration. A server that finds an
//! initialized peer instead asks the leader to add it. Bootstrapping happens at most once: a
//! server whose raft state is initialized never bootstraps again.

use std::collections::BTreeMap;
use std::time::Duration;

use consensus::{RaftNode, ServerNode};
use tokio::sync::watch;

const RETRY_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn form_or_join(
    node: RaftNode,
    me: rpc::Identity,
    bootstrap_expect: u32,
    membership: agent::membership::Membership,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempts = 0u64;
    let mut changes = membership.changes();
    loop {
        changes.borrow_and_update();
        if *shutdown.borrow() || node.is_initialized() {
            return;
        }
        attempts += 1;
        let mut seen = BTreeMap::from([(me.raft_id, me.clone())]);
        let mut initialized_peer = None;
        let peers: Vec<String> = membership
            .servers()
            .into_iter()
            .filter(|addr| *addr != me.rpc_addr)
            .collect();
        for addr in &peers {
            match rpc::identify(addr).await {
                Ok(peer) => {
                    if peer.initialized {
                        initialized_peer = Some(peer.clone());
                    }
                    seen.insert(peer.raft_id, peer);
                }
                Err(err) if attempts % 10 == 1 => {
                    tracing::info!(%addr, %err, "a server gossip shows is not reachable yet")
                }
                Err(_) => {}
            }
        }
        if let Some(peer) = initialized_peer {
            if join(&me, &peer).await {
                return;
            }
        } else if bootstrap_expect > 1
            && seen.len() >= bootstrap_expect as usize
            && seen.keys().next() == Some(&me.raft_id)
        {
            let members: BTreeMap<_, _> = seen
                .values()
                .map(|s| {
                    (
                        s.raft_id,
                        ServerNode::new(s.rpc_addr.clone(), s.node_name.clone(), s.node_id.clone()),
                    )
                })
                .collect();
            match node.raft().initialize(members).await {
                Ok(()) => {
                    tracing::info!(
                        servers = seen.len(),
                        "bootstrapped the datacenter (bootstrap_expect reached)"
                    );
                    return;
                }
                Err(err) => tracing::warn!(%err, "bootstrap failed; retrying"),
            }
        }
        // Retry on the interval, or at once when gossip shows a server come or go.
        tokio::select! {
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
            Ok(()) = changes.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Asks `peer` (or the leader it knows) to add this server; true once added.
async fn join(me: &rpc::Identity, peer: &rpc::Identity) -> bool {
    match rpc::request_join(me, &peer.rpc_addr).await {
        Ok(()) => {
            tracing::info!(via = %peer.rpc_addr, "joined the datacenter");
            true
        }
        Err(err) => {
            tracing::info!(via = %peer.rpc_addr, %err, "join failed; retrying");
            false
        }
    }
}
