//! What servers say to each other.

use consensus::{ConsensusError, NodeId, Op, TypeConfig, Written};
use openraft::error::InstallSnapshotError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

/// Who a server is, for forming a datacenter (`bootstrap_expect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub raft_id: NodeId,
    pub node_name: String,
    /// The node's UUID.
    pub node_id: String,
    /// The server RPC address peers should use.
    pub rpc_addr: String,
    /// Whether this server already belongs to a raft configuration.
    pub initialized: bool,
    /// How far this server's raft log goes, for choosing which survivor to recover.
    pub log: Option<consensus::LogPosition>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client write from a follower, to be proposed by the leader.
    Write(Op),
    /// A follower's read barrier: the leader confirms leadership and returns its read index.
    ReadIndex,
    /// A session renew from a follower (TTL timers live on the leader).
    RenewSession(String),
    Identify,
    /// A server asks the leader to add it to the raft configuration as a voter.
    Join(Identity),
    /// An operator removes a server (`DELETE /v1/operator/raft/peer` on a follower).
    RemoveVoter(NodeId),
    /// Autopilot's health as the leader sees it.
    AutopilotHealth,
    /// Move leadership (to a given server, or the best other voter).
    TransferLeadership(Option<NodeId>),
    /// Start an election now (sent by a leader handing over).
    Elect,
    /// A client agent's write, proposed through raft by whichever server receives it.
    ClientWrite(Op),
    /// A client agent's anti-entropy read: the catalog's view of one node, linearizable.
    NodeState(String),
    /// A blocking read of one node's catalog state (alias checks of another node): answered
    /// once the node's index differs from `index`, or after `wait_ms`.
    WatchNode {
        name: String,
        index: u64,
        wait_ms: u64,
    },
    /// A blocking read of a service's instances with their health (the agent's DNS view):
    /// answered once the service's index (its `connect.` index with `connect`) differs from
    /// `index`, or after `wait_ms`.
    WatchService {
        name: String,
        connect: bool,
        index: u64,
        wait_ms: u64,
    },
    /// The node, and failing that a service instance, whose address is this (DNS PTR).
    ByAddress(std::net::IpAddr),
    /// An HTTP API call forwarded by a client agent.
    Http(crate::client::HttpRequest),
    /// A blocking read of the Connect CA roots: answered once their index differs from
    /// `index`, or after `wait_ms`.
    WatchRoots {
        index: u64,
        wait_ms: u64,
    },
    /// A blocking read of every intention, like [`Request::WatchRoots`].
    WatchIntentions {
        index: u64,
        wait_ms: u64,
    },
    /// A client agent's CSR for one of its services; signed by the server that receives it.
    SignLeaf {
        csr_pem: String,
        service: String,
    },
    /// What the token with this secret grants, for a client agent's ACL checks.
    ResolveToken(String),
    /// auto_encrypt: a client agent's CSR for its agent TLS certificate; the only request a
    /// client without a certificate may make when servers verify incoming RPC.
    SignAgentCert(crate::tls::AgentCertRequest),
    /// A client agent's catalog write with its agent token: checked against the token as
    /// `/v1/catalog/register` would be when ACLs are on. Answered like [`Request::ClientWrite`].
    ClientWriteAs {
        token: String,
        op: Op,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Errors of raft RPCs travel as text: the caller treats them as an unreachable peer.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, String>),
    Vote(Result<VoteResponse<NodeId>, String>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, SnapshotFailure>),
    Write(Result<Written, ConsensusError>),
    ReadIndex(Result<u64, ConsensusError>),
    RenewSession(Result<bool, ConsensusError>),
    Identity(Identity),
    Join(Result<(), String>),
    RemoveVoter(Result<(), ConsensusError>),
    AutopilotHealth(Result<crate::Health, String>),
    TransferLeadership(Result<NodeId, ConsensusError>),
    Elect(Result<(), ConsensusError>),
    ClientWrite(Result<Written, ConsensusError>),
    NodeState(Result<crate::client::NodeState, ConsensusError>),
    /// The node's state and its index.
    WatchNode(crate::client::NodeState, u64),
    /// The instances and their index.
    WatchService(Vec<catalog::ServiceHealth>, u64),
    /// The node with that address, else the name of a service with an instance there.
    ByAddress(Option<catalog::Node>, Option<String>),
    Http(crate::client::HttpResponse),
    /// The roots (none before the CA exists) and their index.
    WatchRoots(Option<ca::wire::IndexedCaRoots>, u64),
    /// The intentions and their index.
    WatchIntentions(intentions::Intentions, u64),
    /// The leaf and its raft index.
    SignLeaf(Result<(ca::Leaf, u64), consensus::SignError>),
    /// The token's grant in this datacenter, or `ACL not found`.
    ResolveToken(Result<acl::TokenGrant, acl::AclError>),
    /// The agent certificate (PEM) and the CA that signed it, or why not.
    SignAgentCert(Result<crate::tls::AgentCert, String>),
}

/// Why a snapshot chunk was refused; a mismatch is part of the protocol and is passed on.
#[derive(Debug, Serialize, Deserialize)]
pub enum SnapshotFailure {
    Mismatch(InstallSnapshotError),
    Other(String),
}
