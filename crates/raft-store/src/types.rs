//! openraft's type configuration for mesh.

use std::io::Cursor;

use crate::command::{Command, Response};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The raft types of a mesh server: commands in, responses out, snapshots as bytes.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
