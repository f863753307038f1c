//! openraft's type configuration for mesh.

use crate::command::{Command, Response};

pub type NodeId = u64;

/// A server as raft's membership records it: where to reach it and who it is, so operator
/// views (`/v1/operator/raft/configuration`) can name servers the way Consul does.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerNode {
    /// Server RPC address, `ip:port`.
    pub addr: String,
    pub name: String,
    /// The node's UUID (Consul's node ID).
    pub node_id: String,
}

impl ServerNode {
    pub fn new(
        addr: impl Into<String>,
        name: impl Into<String>,
        node_id: impl Into<String>,
    ) -> Self {
        ServerNode {
            addr: addr.into(),
            name: name.into(),
            node_id: node_id.into(),
        }
    }
}

impl std::fmt::Display for ServerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// The raft types of a mesh server: commands in, responses out, snapshots as files.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = ServerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
