use super::*;
use crate::definition::ServiceBody;
use catalog::wire as cw;
use serde_json::json;

const MINUTE: u64 = 60_000;

fn state() -> LocalState {
    let node = Node {
        id: "0000-1".into(),
        name: "n1".into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        ..Node::default()
    };
    LocalState::new(node, 5 * MINUTE)
}

fn def(body: serde_json::Value) -> ServiceDefinition {
    let body: ServiceBody = cw::decode(body.to_string().as_bytes()).unwrap();
    body.validate(&|_| false).unwrap()
}

/// Applies the plan to a catalog, as the servers would, and marks it synced.
fn sync(local: &mut LocalState, cat: &mut catalog::Catalog, index: &mut u64, now: u64) -> usize {
    let (steps, _) = local.plan(now);
    for step in &steps {
        *index += 1;
        cat.apply(step.op.clone(), *index).expect("valid op");
        local.mark_synced(step, now);
    }
    steps.len()
}

#[test]
fn a_new_service_syncs_once_and_then_nothing_is_left() {
    let mut local = state();
    let mut cat = catalog::Catalog::new();
    let mut index = 0;
    local.add_service(
        def(json!({"Name": "web", "Port": 80, "Check": {"TTL": "10s"}})),
        "",
        false,
    );
    assert!(sync(&mut local, &mut cat, &mut index, 0) > 0);
    assert_eq!(cat.service_nodes("web").len(), 1);
    assert_eq!(
        cat.check("n1", "service:web").unwrap().status,
        Status::Critical
    );
    assert_eq!(sync(&mut local, &mut cat, &mut index, 0), 0);
    assert!(local.in_sync());
}

#[test]
fn anti_entropy_repairs_catalog_edits_and_removes_unknown_entries() {
    let mut local = state();
    let mut cat = catalog::Catalog::new();
    let mut index = 0;
    local.add_service(
        def(json!({"Name": "web", "Port": 80, "Tags": ["a"]})),
        "",
        false,
    );
    sync(&mut local, &mut cat, &mut index, 0);
    // Someone edits the catalog behind the agent's back.
    let mut edited = cat.node_services("n1").unwrap().1[0].clone();
    edited.tags = vec!["hacked".into()];
    let rogue = catalog::Service {
        id: "rogue".into(),
        service: "rogue".into(),
        ..catalog::Service::default()
    };
    for svc in [edited, rogue] {
        index += 1;
        cat.apply(
            CatalogOp::Register(Box::new(Registration {
                node: local.node().clone(),
                skip_node_update: true,
                service: Some(svc),
                checks: vec![],
            })),
            index,
        )
        .unwrap();
    }
    local.reconcile(&cat.node_state("n1"));
    sync(&mut local, &mut cat, &mut index, 0);
    let (_, services) = cat.node_services("n1").unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].tags, vec!["a".to_string()]);
}

#[test]
fn tag_override_lets_the_catalog_win() {
    let mut local = state();
    let mut cat = catalog::Catalog::new();
    let mut index = 0;
    local.add_service(
        def(json!({"Name": "web", "Tags": ["a"], "EnableTagOverride": true})),
        "",
        false,
    );
    sync(&mut local, &mut cat, &mut index, 0);
    let mut edited = cat.node_services("n1").unwrap().1[0].clone();
    edited.tags = vec!["b".into()];
    index += 1;
    cat.apply(
        CatalogOp::Register(Box::new(Registration {
            node: local.node().clone(),
            skip_node_update: true,
            service: Some(edited),
            checks: vec![],
        })),
        index,
    )
    .unwrap();
    local.reconcile(&cat.node_state("n1"));
    assert_eq!(sync(&mut local, &mut cat, &mut index, 0), 0);
    assert_eq!(
        local.service("web").unwrap().service.tags,
        vec!["b".to_string()]
    );
}

#[test]
fn output_only_changes_wait_for_their_window_but_status_changes_do_not() {
    let mut local = state();
    let mut cat = catalog::Catalog::new();
    let mut index = 0;
    local.add_service(
        def(json!({"Name": "web", "Check": {"TTL": "10s"}})),
        "",
        false,
    );
    local
        .ttl_update("service:web", Status::Passing, "ok 1", 0)
        .unwrap();
    sync(&mut local, &mut cat, &mut index, 0);
    local.update_check("service:web", Status::Passing, "ok 2", 1000);
    let (steps, due) = local.plan(1000);
    assert!(steps.is_empty());
    assert_eq!(due, Some(5 * MINUTE));
    assert_eq!(sync(&mut local, &mut cat, &mut index, 5 * MINUTE), 1);
    assert_eq!(cat.check("n1", "service:web").unwrap().output, "ok 2");
    local.update_check("service:web", Status::Critical, "down", 5 * MINUTE + 1);
    assert_eq!(sync(&mut local, &mut cat, &mut index, 5 * MINUTE + 1), 1);
}

#[test]
fn ttl_updates_on_other_checks_get_the_text_clients_match() {
    let mut local = state();
    local.add_service(
        def(json!({"Name": "web", "Check": {"TCP": "127.0.0.1:1", "Interval": "10s"}})),
        "",
        false,
    );
    let err = local
        .ttl_update("service:web", Status::Passing, "", 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "CheckID \"service:web\" does not have associated TTL"
    );
    let err = local
        .ttl_update("nope", Status::Passing, "", 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "CheckID \"nope\" does not have associated TTL"
    );
}

#[test]
fn deregistering_removes_service_checks_and_sidecar() {
    let mut local = state();
    let mut cat = catalog::Catalog::new();
    let mut index = 0;
    local.add_service(def(json!({"Name": "web", "Port": 80, "Connect": {"SidecarService": {}}, "Check": {"TTL": "5s"}})), "", false);
    sync(&mut local, &mut cat, &mut index, 0);
    assert_eq!(cat.node_services("n1").unwrap().1.len(), 2);
    let removed = local.remove_service("web").unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    sync(&mut local, &mut cat, &mut index, 0);
    assert!(cat.node_services("n1").unwrap().1.is_empty());
    assert!(cat.node_checks("n1").is_empty());
}

#[test]
fn maintenance_is_a_critical_check_with_consuls_ids() {
    let mut local = state();
    local.add_service(def(json!({"Name": "web"})), "", false);
    local.set_node_maintenance(true, "");
    local
        .set_service_maintenance("web", true, "upgrading")
        .unwrap();
    let node = local.check(NODE_MAINTENANCE).unwrap();
    assert_eq!(node.check.status, Status::Critical);
    assert!(node
        .check
        .notes
        .starts_with("Maintenance mode is enabled for this node"));
    let svc = local.check("_service_maintenance:web").unwrap();
    assert_eq!(svc.check.notes, "upgrading");
    assert_eq!(svc.check.service_id, "web");
    assert!(local.set_service_maintenance("nope", true, "").is_err());
    local.set_node_maintenance(false, "");
    assert!(!local.node_in_maintenance());
}

#[test]
fn replace_existing_checks_drops_the_ones_not_named() {
    let mut local = state();
    local.add_service(
        def(json!({"Name": "web", "Checks": [{"TTL": "5s"}, {"TTL": "6s"}]})),
        "",
        false,
    );
    local.add_service(
        def(json!({"Name": "web", "Check": {"CheckID": "service:web:1", "TTL": "5s"}})),
        "",
        true,
    );
    let ids: Vec<_> = local.checks().map(|c| c.check.check_id.clone()).collect();
    assert_eq!(ids, ["service:web:1"]);
}

#[test]
fn critical_checks_past_their_limit_reap_the_service() {
    let mut local = state();
    local.add_service(
        def(json!({"Name": "web", "Check": {"TTL": "5s", "DeregisterCriticalServiceAfter": "1m"}})),
        "",
        false,
    );
    local.update_check("service:web", Status::Critical, "TTL expired", 1000);
    assert!(local.services_to_reap(1000 + MINUTE - 1).is_empty());
    assert_eq!(local.services_to_reap(1000 + MINUTE), ["web"]);
}
