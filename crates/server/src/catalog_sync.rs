//! The server's side of the catalog: its own agent talks to the replicated store directly, and
//! the leader keeps every server registered the way Consul's leader does (the node, a passing
//! `serfHealth` check, and the `consul` service on the server RPC port).

use std::collections::BTreeMap;
use std::time::Duration;

use agent::local::{CONSUL_SERVICE, SERF_HEALTH};
use catalog::{CatalogOp, HealthCheck, NodeState, Registration, Service, Status};
use futures::future::BoxFuture;
use raft_store::{Op, RaftNode, Response};
use tokio::sync::watch;

/// How often the leader re-checks that every server is registered (Consul: 60s).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

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

    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>> {
        let node = node.to_owned();
        Box::pin(async move {
            rpc::node_state(&self.node, &node)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Applies a catalog write; a refusal by the state machine is an error.
pub async fn apply(node: &RaftNode, op: CatalogOp) -> Result<(), String> {
    let written = node
        .write(Op::Catalog(op))
        .await
        .map_err(|e| e.to_string())?;
    match written.response {
        Response::Bool(_) | Response::None => Ok(()),
        Response::Rejected(reason) => Err(reason),
        other => Err(format!("unexpected catalog write result: {other:?}")),
    }
}

/// The registration the leader keeps for one server.
fn server_registration(member: &raft_store::ServerNode, datacenter: &str) -> Registration {
    let (host, port) = member
        .addr
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse().unwrap_or(8300)))
        .unwrap_or_else(|| (member.addr.clone(), 8300));
    let node = agent::identity::node_record(&member.name, &member.node_id, &host, datacenter);
    let service = Service {
        id: CONSUL_SERVICE.into(),
        service: CONSUL_SERVICE.into(),
        port,
        meta: BTreeMap::from([
            ("raft_version".to_owned(), "3".to_owned()),
            ("version".to_owned(), crate::VERSION.to_owned()),
        ]),
        ..Service::default()
    };
    let mut check = HealthCheck::new(
        &member.name,
        SERF_HEALTH,
        "Serf Health Status",
        Status::Passing,
    );
    check.output = "Agent alive and reachable".into();
    check.check_type = String::new();
    Registration {
        node,
        skip_node_update: false,
        service: Some(service),
        checks: vec![check],
    }
}

/// Whether the catalog already holds `reg` exactly (so the leader writes nothing).
fn registered(catalog: &catalog::Catalog, reg: &Registration) -> bool {
    let Some((node, services)) = catalog.node_services(&reg.node.name) else {
        return false;
    };
    let node_same = node.same_as(&reg.node);
    let service_same = reg
        .service
        .as_ref()
        .is_none_or(|want| services.iter().any(|s| s.same_as(want)));
    let checks_same = reg.checks.iter().all(|want| {
        catalog
            .check(&reg.node.name, &want.check_id)
            .is_some_and(|c| {
                c.status == want.status && c.output == want.output && c.name == want.name
            })
    });
    node_same && service_same && checks_same
}

/// While this server leads: register every raft member as a server node, at once on
/// winning an election and then periodically.
pub async fn reconcile_servers(
    node: RaftNode,
    datacenter: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = node.raft().metrics();
    loop {
        let leading = node.leader_view().is_leader && node.is_initialized();
        metrics.borrow_and_update();
        if leading {
            let (members, _) = node.configuration();
            for member in members.iter().map(|m| &m.node) {
                let reg = server_registration(member, &datacenter);
                if registered(&node.reader().state().catalog, &reg) {
                    continue;
                }
                if let Err(err) = apply(&node, CatalogOp::Register(Box::new(reg))).await {
                    tracing::warn!(server = %member.name, %err, "registering a server in the catalog failed");
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            changed = metrics.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RECONCILE_INTERVAL) => {}
        }
    }
}
