use std::time::Instant;

use super::*;

fn member(name: &str, ip: &str, status: MemberStatus, server_port: Option<u16>) -> Member {
    let mut tags = gossip::Tags::new();
    tags.insert(TAG_ID.into(), format!("id-{name}"));
    match server_port {
        Some(port) => {
            tags.insert(TAG_ROLE.into(), ROLE_SERVER.into());
            tags.insert(TAG_PORT.into(), port.to_string());
        }
        None => {
            tags.insert(TAG_ROLE.into(), "node".into());
        }
    }
    Member {
        name: name.into(),
        addr: format!("{ip}:8301").parse().unwrap(),
        tags,
        status,
        incarnation: 1,
        status_since: Instant::now(),
    }
}

/// Applies the plan at increasing indexes, as the leader would through raft.
fn reconcile(catalog: &mut Catalog, members: &[Member], next_index: &mut u64) -> usize {
    let ops = plan(members, catalog, "leader", "dc1", true);
    let count = ops.len();
    for op in ops {
        *next_index += 1;
        catalog.apply(op, *next_index).expect("valid op");
    }
    count
}

fn serf_status(catalog: &Catalog, node: &str) -> Option<Status> {
    catalog.check(node, SERF_HEALTH).map(|c| c.status)
}

#[test]
fn alive_members_are_registered_once_and_servers_get_the_consul_service() {
    let mut catalog = Catalog::new();
    let mut index = 0;
    let members = [
        member("leader", "10.0.0.1", MemberStatus::Alive, Some(8300)),
        member("web-1", "10.0.0.2", MemberStatus::Alive, None),
    ];
    assert_eq!(reconcile(&mut catalog, &members, &mut index), 2);
    assert_eq!(serf_status(&catalog, "web-1"), Some(Status::Passing));
    assert_eq!(catalog.node("web-1").unwrap().address, "10.0.0.2");
    let consul = catalog.service_nodes(CONSUL_SERVICE);
    assert_eq!(consul.len(), 1);
    assert_eq!(
        (consul[0].0.name.as_str(), consul[0].1.port),
        ("leader", 8300)
    );
    assert!(catalog.service_nodes("web-1").is_empty());
    // Nothing changed: nothing to write, nobody woken.
    assert_eq!(reconcile(&mut catalog, &members, &mut index), 0);
}

#[test]
fn a_failed_member_turns_critical_and_keeps_its_services() {
    let mut catalog = Catalog::new();
    let mut index = 0;
    let alive = [member("web-1", "10.0.0.2", MemberStatus::Alive, None)];
    reconcile(&mut catalog, &alive, &mut index);
    // The agent syncs its node meta and a service; the leader must not wipe them.
    let mut node = catalog.node("web-1").unwrap().clone();
    node.meta.insert("rack".into(), "r1".into());
    let service = Service {
        id: "web".into(),
        service: "web".into(),
        port: 80,
        ..Service::default()
    };
    index += 1;
    let reg = Registration {
        node,
        skip_node_update: false,
        service: Some(service),
        checks: vec![],
    };
    catalog
        .apply(CatalogOp::Register(Box::new(reg)), index)
        .unwrap();

    let failed = [member("web-1", "10.0.0.2", MemberStatus::Failed, None)];
    assert_eq!(reconcile(&mut catalog, &failed, &mut index), 1);
    assert_eq!(serf_status(&catalog, "web-1"), Some(Status::Critical));
    let check = catalog.check("web-1", SERF_HEALTH).unwrap();
    assert_eq!(check.output, FAILED_OUTPUT);
    assert_eq!(catalog.service_nodes("web").len(), 1);
    assert_eq!(reconcile(&mut catalog, &failed, &mut index), 0);

    // Back alive: passing again, meta kept.
    assert_eq!(reconcile(&mut catalog, &alive, &mut index), 1);
    assert_eq!(serf_status(&catalog, "web-1"), Some(Status::Passing));
    assert_eq!(
        catalog.node("web-1").unwrap().meta.get("rack").unwrap(),
        "r1"
    );
}

#[test]
fn left_and_reaped_members_are_deregistered_but_never_the_leader() {
    let mut catalog = Catalog::new();
    let mut index = 0;
    let members = [
        member("leader", "10.0.0.1", MemberStatus::Alive, Some(8300)),
        member("web-1", "10.0.0.2", MemberStatus::Alive, None),
        member("web-2", "10.0.0.3", MemberStatus::Alive, None),
    ];
    reconcile(&mut catalog, &members, &mut index);
    // A node registered only through the catalog API (no serfHealth) is not gossip's business.
    index += 1;
    let external = Registration {
        node: agent::identity::node_record("external", "", "192.0.2.1", "dc1"),
        skip_node_update: false,
        service: None,
        checks: vec![],
    };
    catalog
        .apply(CatalogOp::Register(Box::new(external)), index)
        .unwrap();

    // web-1 left; web-2 was reaped (gone from the list); the leader shows as left in a stale
    // view of itself, which must not deregister it.
    let later = [
        member("leader", "10.0.0.1", MemberStatus::Left, Some(8300)),
        member("web-1", "10.0.0.2", MemberStatus::Left, None),
    ];
    assert_eq!(reconcile(&mut catalog, &later, &mut index), 2);
    assert!(catalog.node("web-1").is_none());
    assert!(catalog.node("web-2").is_none());
    assert!(catalog.node("leader").is_some());
    assert!(catalog.node("external").is_some());
}

#[test]
fn an_address_change_is_written() {
    let mut catalog = Catalog::new();
    let mut index = 0;
    reconcile(
        &mut catalog,
        &[member("web-1", "10.0.0.2", MemberStatus::Alive, None)],
        &mut index,
    );
    let moved = [member("web-1", "10.0.0.9", MemberStatus::Alive, None)];
    assert_eq!(reconcile(&mut catalog, &moved, &mut index), 1);
    assert_eq!(catalog.node("web-1").unwrap().address, "10.0.0.9");
}

#[test]
fn only_a_change_of_leadership_wakes_the_reconcile_not_each_applied_entry() {
    use openraft::{CommittedLeaderId, LogId, StoredMembership};

    let log_id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
    let mut metrics = RaftMetrics::<NodeId, ServerNode>::new_initial(1);
    assert!(!leads(&metrics), "a follower");
    metrics.state = ServerState::Leader;
    assert!(!leads(&metrics), "a leader of no configuration yet");
    let voters = openraft::Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([(1, ServerNode::new("127.0.0.1:8300", "leader", ""))]),
    );
    metrics.membership_config = std::sync::Arc::new(StoredMembership::new(Some(log_id(1)), voters));
    assert!(leads(&metrics));
    // What changes with every write leaves the answer, and so the reconcile, alone.
    metrics.last_log_index = Some(100);
    metrics.last_applied = Some(log_id(100));
    assert!(leads(&metrics));
    metrics.state = ServerState::Follower;
    assert!(!leads(&metrics), "leadership lost");
}

#[test]
fn nodes_gossip_has_not_heard_of_yet_are_kept_until_it_could_have() {
    let mut catalog = Catalog::new();
    let mut index = 0;
    let members = [
        member("leader", "10.0.0.1", MemberStatus::Alive, Some(8300)),
        member("web-1", "10.0.0.2", MemberStatus::Alive, None),
    ];
    reconcile(&mut catalog, &members, &mut index);
    // Just restarted: gossip knows only this server so far.
    let alone = [member(
        "leader",
        "10.0.0.1",
        MemberStatus::Alive,
        Some(8300),
    )];
    assert!(plan(&alone, &catalog, "leader", "dc1", false).is_empty());
    assert_eq!(
        plan(&alone, &catalog, "leader", "dc1", true),
        vec![deregister("web-1")]
    );
}
