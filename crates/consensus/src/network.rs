//! The raft network of a single-voter datacenter.
//!
//! A server that is the only voter never sends a raft RPC: it elects itself and commits alone.
//! Multi-server datacenters replace this with the server RPC transport on port 8300; until a
//! node is configured with peers, every call here reports the peer as unreachable.

use crate::types::ServerNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::types::{NodeId, TypeConfig};

/// Network factory for a datacenter whose only voter is this server.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeers;

fn unreachable<E: std::error::Error>(target: NodeId) -> RPCError<NodeId, ServerNode, E> {
    let why = std::io::Error::other(format!(
        "server {target} is not reachable: this server is configured as the only voter"
    ));
    RPCError::Unreachable(Unreachable::new(&why))
}

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeerClient;

    async fn new_client(&mut self, target: NodeId, _node: &ServerNode) -> NoPeerClient {
        NoPeerClient { target }
    }
}

#[derive(Debug)]
pub struct NoPeerClient {
    target: NodeId,
}

impl RaftNetwork<TypeConfig> for NoPeerClient {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>>
    {
        Err(unreachable(self.target))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ServerNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(unreachable(self.target))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>> {
        Err(unreachable(self.target))
    }
}
