//! The leader's reconcile of gossip membership into the catalog, the way Consul's leader does
//! it: an alive member is a registered node with a passing `serfHealth` check (servers also get
//! the `consul` service on their RPC port); a failed member keeps its registrations with
//! `serfHealth` critical, so its instances leave `?passing` and DNS and sessions tied to it are
//! invalidated; a member that left, or was reaped, is deregistered with everything on it. A
//! catalog node with a `serfHealth` check that gossip does not know at all was reaped while no
//! leader was watching, and is deregistered too.
//!
//! [`plan`] decides, from the member list and the catalog, what to write; [`run`] applies it on
//! every membership change, when this server becomes leader, and periodically.
//!
//! Two guards keep a server with a partial view from undoing the datacenter's catalog:
//! - Gossip keeps no member list across restarts, so a freshly started server knows only the
//!   members it has heard from. Nodes unknown to gossip are deregistered only once this
//!   server's gossip has run for [`REAP_UNKNOWN_AFTER`]; until then they may simply not have
//!   been heard from yet.
//! - Reconcile writes are proposed only while this server leads (`write_as_leader`), never
//!   forwarded: a server that believes it leads from a stale term must not have its plan,
//!   made from its own view, committed by the real leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agent::local::{CONSUL_SERVICE, SERF_HEALTH};
use agent::membership::{Membership, ROLE_SERVER, TAG_ID, TAG_PORT, TAG_ROLE};
use catalog::{Catalog, CatalogOp, HealthCheck, Node, Registration, Service, Status};
use consensus::{NodeId, RaftNode, ServerNode};
use gossip::{Member, MemberStatus};
use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;

/// How often the leader reconciles even without membership news (Consul: 60s).
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// How long gossip runs before nodes it has never heard of count as reaped (a restarted
/// server learns the pool through joins and push-pull exchanges within seconds).
const REAP_UNKNOWN_AFTER: Duration = Duration::from_secs(60);

/// `serfHealth` outputs, Consul's words.
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// The catalog writes that bring `catalog` in line with `members`. `me` (the leader) is never
/// deregistered: it is plainly alive. Catalog nodes with a `serfHealth` check that `members`
/// does not know at all are deregistered only with `reap_unknown` (gossip has had time to
/// hear from everyone).
pub(crate) fn plan(
    members: &[Member],
    catalog: &Catalog,
    me: &str,
    datacenter: &str,
    reap_unknown: bool,
) -> Vec<CatalogOp> {
    let mut ops = Vec::new();
    for member in members {
        let op = match member.status {
            MemberStatus::Alive | MemberStatus::Leaving => {
                let reg = alive_registration(member, catalog, datacenter);
                (!registered(catalog, &reg)).then(|| CatalogOp::Register(Box::new(reg)))
            }
            MemberStatus::Failed => failed_registration(member, catalog, datacenter)
                .map(|reg| CatalogOp::Register(Box::new(reg))),
            MemberStatus::Left | MemberStatus::None => (member.name != me
                && catalog.node(&member.name).is_some())
            .then(|| deregister(&member.name)),
        };
        ops.extend(op);
    }
    if !reap_unknown {
        return ops;
    }
    let known: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let reaped = catalog
        .nodes()
        .filter(|n| n.name != me && !known.contains(n.name.as_str()))
        .filter(|n| catalog.check(&n.name, SERF_HEALTH).is_some())
        .map(|n| deregister(&n.name));
    ops.extend(reaped);
    ops
}

fn deregister(node: &str) -> CatalogOp {
    CatalogOp::Deregister {
        node: node.to_owned(),
        service_id: None,
        check_id: None,
    }
}

/// The node as the catalog should hold it for a live member: what the catalog has (its agent
/// syncs meta and tagged addresses), at the address gossip reports.
fn node_record(member: &Member, catalog: &Catalog, datacenter: &str) -> Node {
    let address = member.addr.ip().to_string();
    match catalog.node(&member.name) {
        Some(node) => Node {
            address,
            ..node.clone()
        },
        None => {
            let id = member.tags.get(TAG_ID).map_or("", String::as_str);
            agent::identity::node_record(&member.name, id, &address, datacenter)
        }
    }
}

fn serf_health(member: &Member, status: Status, output: &str) -> HealthCheck {
    let mut check = HealthCheck::new(&member.name, SERF_HEALTH, "Serf Health Status", status);
    check.output = output.into();
    check.check_type = String::new();
    check
}

/// A server's `consul` service, on the RPC port its tags advertise.
fn consul_service(member: &Member) -> Option<Service> {
    if member.tags.get(TAG_ROLE).map(String::as_str) != Some(ROLE_SERVER) {
        return None;
    }
    let port = member.tags.get(TAG_PORT)?.parse().ok()?;
    Some(Service {
        id: CONSUL_SERVICE.into(),
        service: CONSUL_SERVICE.into(),
        port,
        meta: BTreeMap::from([
            ("raft_version".to_owned(), "3".to_owned()),
            ("version".to_owned(), crate::VERSION.to_owned()),
        ]),
        ..Service::default()
    })
}

fn alive_registration(member: &Member, catalog: &Catalog, datacenter: &str) -> Registration {
    Registration {
        node: node_record(member, catalog, datacenter),
        skip_node_update: false,
        service: consul_service(member),
        checks: vec![serf_health(member, Status::Passing, ALIVE_OUTPUT)],
    }
}

/// A failed member keeps its node and services; only `serfHealth` turns critical. Nothing to
/// write if it already is.
fn failed_registration(
    member: &Member,
    catalog: &Catalog,
    datacenter: &str,
) -> Option<Registration> {
    let check = serf_health(member, Status::Critical, FAILED_OUTPUT);
    let current = catalog.check(&member.name, SERF_HEALTH);
    if current.is_some_and(|c| c.status == Status::Critical && c.output == check.output) {
        return None;
    }
    Some(Registration {
        node: node_record(member, catalog, datacenter),
        skip_node_update: catalog.node(&member.name).is_some(),
        service: None,
        checks: vec![check],
    })
}

/// Whether the catalog already holds `reg` (so the leader writes nothing).
fn registered(catalog: &Catalog, reg: &Registration) -> bool {
    let Some((node, services)) = catalog.node_services(&reg.node.name) else {
        return false;
    };
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
    node.address == reg.node.address && service_same && checks_same
}

/// Whether this server leads an initialized cluster, the only state in which it reconciles.
fn leads(metrics: &RaftMetrics<NodeId, ServerNode>) -> bool {
    metrics.state == ServerState::Leader
        && metrics
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
}

/// While this server leads: reconcile at once on winning an election, on every membership
/// change, and every [`RECONCILE_INTERVAL`]. Not on every raft metrics change: those come with
/// every applied entry, and a reconcile reads the whole catalog.
pub(crate) async fn run(
    node: RaftNode,
    membership: Membership,
    datacenter: String,
    me: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = node.raft().metrics();
    let mut changes = membership.changes();
    let started = tokio::time::Instant::now();
    loop {
        let leading = leads(&metrics.borrow_and_update());
        changes.borrow_and_update();
        if leading {
            let ops = plan(
                &membership.members(),
                &node.reader().state().catalog,
                &me,
                &datacenter,
                started.elapsed() >= REAP_UNKNOWN_AFTER,
            );
            for op in ops {
                match crate::catalog_sync::apply_as_leader(&node, op).await {
                    Ok(()) => {}
                    Err(err) if err.not_leader => {
                        // Leadership moved: the new leader reconciles from its own view.
                        tracing::debug!(%err.reason, "stopped reconciling: no longer the leader");
                        break;
                    }
                    Err(err) => tracing::warn!(
                        err = %err.reason,
                        "reconciling gossip membership into the catalog failed"
                    ),
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            changed = metrics.wait_for(|m| leads(m) != leading) => if changed.is_err() { return },
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RECONCILE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests;
