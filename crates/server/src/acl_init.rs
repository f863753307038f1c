//! The leader's ACL start-up, as Consul's `initializeACLs`: the builtin policies, the
//! anonymous token and the configured initial management token exist once a leader has led
//! with ACLs on.

use std::time::Duration;

use consensus::RaftNode;
use tokio::sync::watch;

/// How often a server checks whether it leads and the tables need initializing.
const INTERVAL: Duration = Duration::from_secs(1);

/// While this server leads with ACLs on: writes [`acl::AclOp::Initialize`] whenever the
/// builtins or the initial management token are missing (a new datacenter, a restore of a
/// snapshot taken without ACLs).
pub(crate) async fn run(
    node: RaftNode,
    initial_management: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if node.leader_view().is_leader && node.is_initialized() {
            initialize(&node, initial_management.as_deref()).await;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

async fn initialize(node: &RaftNode, initial_management: Option<&str>) {
    let needed = {
        let state = node.reader().state();
        !state.acl.initialized()
            || initial_management.is_some_and(|secret| state.acl.token_by_secret(secret).is_none())
    };
    if !needed {
        return;
    }
    let op = acl::AclOp::Initialize {
        initial_management: initial_management
            .map(|secret| (uuid::Uuid::new_v4().to_string(), secret.to_owned())),
    };
    match node.write_as_leader(consensus::Op::Acl(Box::new(op))).await {
        Ok(_) => tracing::info!("acl: builtin policies and tokens created"),
        Err(err) => tracing::debug!(%err, "acl: initializing failed; will retry"),
    }
}
