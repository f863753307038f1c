//! The server's side of the catalog: its own agent talks to the replicated store directly.
//! (The leader's registration of every server and client node follows gossip; see
//! `membership_sync`.)

use catalog::{CatalogOp, NodeState};
use consensus::{Op, RaftNode, Response};
use futures::future::BoxFuture;

/// The catalog as the server's own agent reaches it: writes through raft (forwarded to the
/// leader when this server follows), reads after a read barrier.
#[derive(Debug, Clone)]
pub struct LocalCatalog {
    pub node: RaftNode,
}

impl agent::CatalogClient for LocalCatalog {
    fn apply(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { apply(&self.node, op).await })
    }

    fn watch_node(
        &self,
        node: &str,
        index: u64,
        wait: std::time::Duration,
    ) -> BoxFuture<'_, Result<(NodeState, u64), String>> {
        let node = node.to_owned();
        Box::pin(async move { Ok(rpc::watch_node_state(&self.node, &node, index, wait).await) })
    }

    fn watch_service(
        &self,
        name: &str,
        connect: bool,
        index: u64,
        wait: std::time::Duration,
    ) -> BoxFuture<'_, Result<(Vec<catalog::ServiceHealth>, u64), String>> {
        let name = name.to_owned();
        Box::pin(async move {
            Ok(rpc::watch_service_health(&self.node, &name, connect, index, wait).await)
        })
    }

    fn by_address(
        &self,
        addr: std::net::IpAddr,
    ) -> BoxFuture<'_, Result<agent::AddressOwner, String>> {
        Box::pin(async move { Ok(rpc::by_address(&self.node, addr)) })
    }

    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>> {
        let node = node.to_owned();
        Box::pin(async move {
            rpc::node_state(&self.node, &node)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Connect as the server's own agent reaches it: this server's replicated state, and leaf
/// signing on this server.
impl agent::connect::ConnectClient for LocalCatalog {
    fn watch_roots(
        &self,
        index: u64,
        wait: std::time::Duration,
    ) -> BoxFuture<'_, Result<(Option<ca::wire::IndexedCaRoots>, u64), String>> {
        Box::pin(async move { Ok(rpc::watch_roots(&self.node, index, wait).await) })
    }

    fn watch_intentions(
        &self,
        index: u64,
        wait: std::time::Duration,
    ) -> BoxFuture<'_, Result<(intentions::Intentions, u64), String>> {
        Box::pin(async move { Ok(rpc::watch_intentions(&self.node, index, wait).await) })
    }

    fn sign(
        &self,
        csr_pem: String,
        service: String,
    ) -> BoxFuture<'_, Result<(ca::Leaf, u64), agent::connect::SignFailure>> {
        Box::pin(async move {
            self.node
                .sign_leaf(&csr_pem, &service)
                .await
                .map_err(sign_failure)
        })
    }
}

/// What the agent needs to know of a refused signing.
pub fn sign_failure(err: consensus::SignError) -> agent::connect::SignFailure {
    match err {
        consensus::SignError::RateLimited => agent::connect::SignFailure::RateLimited,
        other => agent::connect::SignFailure::Failed(other.to_string()),
    }
}

/// Applies a catalog write; a refusal by the state machine is an error.
pub async fn apply(node: &RaftNode, op: CatalogOp) -> Result<(), String> {
    let written = node
        .write(Op::Catalog(op))
        .await
        .map_err(|e| e.to_string())?;
    catalog_result(written)
}

/// Why a leader-only catalog write failed.
#[derive(Debug)]
pub(crate) struct LeaderWriteError {
    /// This server did not lead when it tried, so nothing was proposed.
    pub(crate) not_leader: bool,
    pub(crate) reason: String,
}

/// Applies a catalog write only if this server leads: never forwarded to another leader.
pub(crate) async fn apply_as_leader(
    node: &RaftNode,
    op: CatalogOp,
) -> Result<(), LeaderWriteError> {
    let written = node
        .write_as_leader(Op::Catalog(op))
        .await
        .map_err(|e| LeaderWriteError {
            not_leader: matches!(
                e,
                consensus::ConsensusError::NotLeader { .. } | consensus::ConsensusError::NoLeader
            ),
            reason: e.to_string(),
        })?;
    catalog_result(written).map_err(|reason| LeaderWriteError {
        not_leader: false,
        reason,
    })
}

fn catalog_result(written: consensus::Written) -> Result<(), String> {
    match written.response {
        Response::Bool(_) | Response::None => Ok(()),
        Response::Rejected(reason) => Err(reason),
        other => Err(format!("unexpected catalog write result: {other:?}")),
    }
}
