use super::*;
use crate::model::Proxy;

fn node(name: &str, addr: &str) -> Node {
    Node {
        name: name.into(),
        address: addr.into(),
        datacenter: "dc1".into(),
        ..Node::default()
    }
}

fn service(id: &str, name: &str, tags: &[&str]) -> Service {
    Service {
        id: id.into(),
        service: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        port: 80,
        ..Service::default()
    }
}

fn register(
    cat: &mut Catalog,
    index: u64,
    n: Node,
    svc: Option<Service>,
    checks: Vec<HealthCheck>,
) -> Effects {
    let reg = Registration {
        node: n,
        skip_node_update: false,
        service: svc,
        checks,
    };
    cat.apply(CatalogOp::Register(Box::new(reg)), index)
        .expect("valid")
}

/// The proxy `web-sidecar-proxy`, fronting `destination`.
fn sidecar_for(destination: &str) -> Service {
    Service {
        kind: "connect-proxy".into(),
        proxy: Some(Proxy {
            destination_service_name: destination.into(),
            ..Proxy::default()
        }),
        ..service("web-sidecar-proxy", "web-sidecar-proxy", &[])
    }
}

fn svc_check(node: &str, id: &str, service_id: &str, status: Status) -> HealthCheck {
    let mut c = HealthCheck::new(node, id, id, status);
    c.service_id = service_id.into();
    c
}

#[test]
fn a_change_to_one_service_touches_only_its_topics() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        5,
        node("n1", "10.0.0.1"),
        Some(service("web", "web", &[])),
        vec![],
    );
    register(
        &mut cat,
        6,
        node("n1", "10.0.0.1"),
        Some(service("db", "db", &[])),
        vec![],
    );
    cat.drain_changes();

    register(
        &mut cat,
        7,
        node("n1", "10.0.0.1"),
        None,
        vec![svc_check("n1", "db-alive", "db", Status::Passing)],
    );
    let changed = cat.drain_changes();
    assert!(changed.contains("service.db"));
    assert!(!changed.contains("service.web"), "{changed:?}");
    assert_eq!(cat.index("service.web"), 5);
    assert_eq!(cat.index("service.db"), 7);
}

#[test]
fn re_registering_the_same_thing_changes_nothing() {
    let mut cat = Catalog::new();
    let check = svc_check("n1", "web-alive", "web", Status::Passing);
    register(
        &mut cat,
        5,
        node("n1", "a"),
        Some(service("web", "web", &["v1"])),
        vec![check.clone()],
    );
    cat.drain_changes();
    register(
        &mut cat,
        9,
        node("n1", "a"),
        Some(service("web", "web", &["v1"])),
        vec![check],
    );
    assert!(cat.drain_changes().is_empty());
    assert_eq!(cat.index("service.web"), 5);
    let (_, services) = cat.node_services("n1").unwrap();
    assert_eq!(services[0].modify_index, 5);
}

#[test]
fn node_level_checks_bear_on_every_service_of_the_node() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        5,
        node("n1", "a"),
        Some(service("web", "web", &[])),
        vec![],
    );
    register(
        &mut cat,
        6,
        node("n1", "a"),
        Some(service("db", "db", &[])),
        vec![],
    );
    cat.drain_changes();
    register(
        &mut cat,
        7,
        node("n1", "a"),
        None,
        vec![HealthCheck::new(
            "n1",
            "serfHealth",
            "Serf Health Status",
            Status::Critical,
        )],
    );
    let changed = cat.drain_changes();
    assert!(changed.contains("service.web") && changed.contains("service.db"));
    let health = cat.health(cat.service_nodes("web"));
    assert_eq!(health[0].status(), Status::Critical);
}

#[test]
fn critical_and_removed_checks_are_reported_for_session_invalidation() {
    let mut cat = Catalog::new();
    let fx = register(
        &mut cat,
        5,
        node("n1", "a"),
        None,
        vec![HealthCheck::new("n1", "serfHealth", "s", Status::Passing)],
    );
    assert!(fx.checks_failed.is_empty());
    let fx = register(
        &mut cat,
        6,
        node("n1", "a"),
        None,
        vec![HealthCheck::new("n1", "serfHealth", "s", Status::Critical)],
    );
    assert_eq!(
        fx.checks_failed,
        vec![("n1".to_string(), "serfHealth".to_string())]
    );
    // Staying critical is not a new failure.
    let mut again = HealthCheck::new("n1", "serfHealth", "s", Status::Critical);
    again.output = "still down".into();
    let fx = register(&mut cat, 7, node("n1", "a"), None, vec![again]);
    assert!(fx.checks_failed.is_empty());
    let fx = cat
        .apply(
            CatalogOp::Deregister {
                node: "n1".into(),
                service_id: None,
                check_id: None,
            },
            8,
        )
        .unwrap();
    assert_eq!(fx.nodes_removed, vec!["n1".to_string()]);
}

#[test]
fn deregistering_a_service_removes_its_checks_and_moves_its_index() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        5,
        node("n1", "a"),
        Some(service("web", "web", &[])),
        vec![svc_check("n1", "c", "web", Status::Passing)],
    );
    cat.apply(
        CatalogOp::Deregister {
            node: "n1".into(),
            service_id: Some("web".into()),
            check_id: None,
        },
        6,
    )
    .unwrap();
    assert!(cat.service_nodes("web").is_empty());
    assert!(cat.node_checks("n1").is_empty());
    assert_eq!(cat.index("service.web"), 6);
    assert!(cat.services().is_empty());
}

#[test]
fn bad_registrations_are_refused_and_change_nothing() {
    let mut cat = Catalog::new();
    let before = cat.clone();
    let cases = [
        (
            Registration {
                node: node("", "a"),
                skip_node_update: false,
                service: None,
                checks: vec![],
            },
            CatalogError::MissingNodeOrAddress,
        ),
        (
            Registration {
                node: node("n", ""),
                skip_node_update: false,
                service: None,
                checks: vec![],
            },
            CatalogError::MissingNodeOrAddress,
        ),
        (
            Registration {
                node: node("n", "a"),
                skip_node_update: false,
                service: Some(service("x", "", &[])),
                checks: vec![],
            },
            CatalogError::MissingServiceName,
        ),
        (
            Registration {
                node: node("n", "a"),
                skip_node_update: false,
                service: Some(Service {
                    address: "0.0.0.0".into(),
                    ..service("x", "x", &[])
                }),
                checks: vec![],
            },
            CatalogError::InvalidServiceAddress,
        ),
        (
            Registration {
                node: node("n", "a"),
                skip_node_update: false,
                service: None,
                checks: vec![svc_check("n", "c", "ghost", Status::Passing)],
            },
            CatalogError::MissingService,
        ),
    ];
    for (reg, want) in cases {
        assert_eq!(
            cat.apply(CatalogOp::Register(Box::new(reg)), 3),
            Err(want.clone()),
            "{want}"
        );
        assert_eq!(cat, before);
    }
}

#[test]
fn proxies_are_indexed_under_their_destination() {
    let mut cat = Catalog::new();
    let proxy = sidecar_for("web");
    register(&mut cat, 5, node("n1", "a"), Some(proxy), vec![]);
    register(
        &mut cat,
        6,
        node("n2", "b"),
        Some(Service {
            connect_native: true,
            ..service("api", "api", &[])
        }),
        vec![],
    );
    assert_eq!(cat.connect_nodes("web").len(), 1);
    assert_eq!(cat.connect_nodes("api").len(), 1);
    assert_eq!(cat.index("connect.web"), 5);
    // Renaming the destination moves the proxy.
    let moved = sidecar_for("db");
    register(&mut cat, 7, node("n1", "a"), Some(moved), vec![]);
    assert!(cat.connect_nodes("web").is_empty());
    assert_eq!(cat.connect_nodes("db").len(), 1);
    assert_eq!(cat.index("connect.web"), 7);
}

#[test]
fn proxy_health_and_node_changes_wake_readers_of_the_destination() {
    let mut cat = Catalog::new();
    let proxy = sidecar_for("web");
    register(&mut cat, 5, node("n1", "a"), Some(proxy), vec![]);
    let proxy_check = svc_check("n1", "proxy-alive", "web-sidecar-proxy", Status::Critical);
    register(&mut cat, 6, node("n1", "a"), None, vec![proxy_check]);
    assert_eq!(cat.index("connect.web"), 6);
    let serf = HealthCheck::new("n1", "serfHealth", "Serf Health Status", Status::Critical);
    register(&mut cat, 7, node("n1", "a"), None, vec![serf]);
    assert_eq!(cat.index("connect.web"), 7);
    register(&mut cat, 8, node("n1", "moved"), None, vec![]);
    assert_eq!(cat.index("connect.web"), 8);
    cat.apply(
        CatalogOp::Deregister {
            node: "n1".into(),
            service_id: None,
            check_id: Some("serfHealth".into()),
        },
        9,
    )
    .expect("valid");
    assert_eq!(cat.index("connect.web"), 9);
}

#[test]
fn service_tag_changes_reach_its_checks() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        5,
        node("n1", "a"),
        Some(service("web", "web", &["v1"])),
        vec![svc_check("n1", "c", "web", Status::Passing)],
    );
    register(
        &mut cat,
        6,
        node("n1", "a"),
        Some(service("web", "web", &["v2"])),
        vec![],
    );
    let check = cat.check("n1", "c").unwrap();
    assert_eq!(check.service_tags, vec!["v2".to_string()]);
    assert_eq!(check.modify_index, 6);
}

#[test]
fn unknown_topics_fall_back_to_their_table() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        5,
        node("n1", "a"),
        Some(service("web", "web", &[])),
        vec![],
    );
    assert_eq!(cat.index("service.nope"), 5);
    assert_eq!(cat.index("node.nope"), 5);
}

#[test]
fn service_names_are_found_ignoring_case_for_dns() {
    let mut cat = Catalog::new();
    register(
        &mut cat,
        1,
        node("a", "10.0.0.1"),
        Some(service("w1", "WebApp", &[])),
        vec![],
    );
    register(
        &mut cat,
        2,
        node("b", "10.0.0.2"),
        Some(sidecar_for("WebApp")),
        vec![],
    );
    register(
        &mut cat,
        3,
        node("c", "10.0.0.3"),
        Some(service("w2", "webapp", &[])),
        vec![],
    );
    assert_eq!(
        cat.service_name_like("webapp", false),
        Some("webapp"),
        "exact first"
    );
    assert_eq!(cat.service_name_like("WEBAPP", false), Some("WebApp"));
    assert_eq!(cat.service_name_like("webapp", true), Some("WebApp"));
    assert_eq!(cat.service_name_like("db", false), None);
}
