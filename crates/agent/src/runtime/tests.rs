use super::*;
use crate::testing::MemoryCatalog;

/// An agent whose configuration lives in `dir/agent.json`.
fn agent_with_config(dir: &std::path::Path, json: &str) -> Agent {
    agent_with_client(dir, json, Arc::new(MemoryCatalog::default()))
}

fn agent_with_client(dir: &std::path::Path, json: &str, client: Arc<MemoryCatalog>) -> Agent {
    let file = dir.join("agent.json");
    std::fs::write(&file, json).unwrap();
    let mut config = config::load(&[file], &[], &config::Overrides::default()).unwrap();
    config.node_name = "n1".into();
    Agent::from_config(&config, "", "127.0.0.1", dir, client).unwrap()
}

fn ids(agent: &Agent) -> (Vec<String>, Vec<String>) {
    let mut services: Vec<String> = agent.services().into_iter().map(|s| s.id).collect();
    let mut checks: Vec<String> = agent.checks().into_iter().map(|c| c.check_id).collect();
    services.sort();
    checks.sort();
    (services, checks)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn reload_replaces_config_registrations_and_leaves_api_ones_alone() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(
        dir.path(),
        r#"{"services": [{"name": "web", "port": 80}, {"name": "old", "port": 81}],
            "checks": [{"id": "disk", "name": "disk", "ttl": "30s"}]}"#,
    );
    let api_service = serde_json::from_str(r#"{"Name": "api", "Port": 90}"#).unwrap();
    agent
        .register_service(api_service, false, Source::Api)
        .unwrap();
    agent.ttl_update("disk", Status::Passing, "fine").unwrap();
    assert_eq!(
        ids(&agent),
        (strings(&["api", "old", "web"]), strings(&["disk"]))
    );

    std::fs::write(
        dir.path().join("agent.json"),
        r#"{"services": [{"name": "web", "port": 8080}, {"name": "new", "port": 82}],
            "checks": [{"id": "disk", "name": "disk", "ttl": "30s"},
                       {"id": "mem", "name": "mem", "ttl": "30s"}]}"#,
    )
    .unwrap();
    agent.reload().unwrap();
    assert_eq!(
        ids(&agent),
        (strings(&["api", "new", "web"]), strings(&["disk", "mem"]))
    );
    assert_eq!(agent.service("web").unwrap().port, 8080);
    let disk = agent.checks().into_iter().find(|c| c.check_id == "disk");
    assert_eq!(
        disk.map(|c| c.status),
        Some(Status::Passing),
        "a check that stays keeps its status"
    );
}

#[tokio::test]
async fn a_bad_configuration_on_reload_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(dir.path(), r#"{"services": [{"name": "web", "port": 80}]}"#);
    let before = ids(&agent);
    for broken in [
        r#"{"services": [{"name": "web", "port": 80}, {"port": 82}]}"#,
        r#"{"services": [}"#,
        r#"{"checks": [{"name": "orphan", "ttl": "10s", "service_id": "nowhere"}]}"#,
    ] {
        std::fs::write(dir.path().join("agent.json"), broken).unwrap();
        let err = agent.reload().expect_err(broken);
        assert!(
            err.to_string().starts_with("Failed to reload configs: "),
            "{err}"
        );
        assert_eq!(ids(&agent), before, "{broken}");
    }
}

#[tokio::test]
async fn an_api_registration_takes_a_config_service_over() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(dir.path(), r#"{"services": [{"name": "web", "port": 80}]}"#);
    let body = serde_json::from_str(r#"{"Name": "web", "Port": 81}"#).unwrap();
    agent.register_service(body, false, Source::Api).unwrap();
    std::fs::write(dir.path().join("agent.json"), "{}").unwrap();
    agent.reload().unwrap();
    assert_eq!(agent.service("web").map(|s| s.port), Some(81));
}

/// Registers `db` on node `db-1` with one check in `status`, as its own agent would.
async fn register_db(client: &MemoryCatalog, status: Status, output: &str) {
    let mut check = HealthCheck::new("db-1", "db-check", "db check", status);
    check.service_id = "db".into();
    check.service_name = "db".into();
    check.output = output.into();
    let reg = catalog::Registration {
        node: crate::identity::node_record("db-1", "", "10.0.0.9", "dc1"),
        skip_node_update: false,
        service: Some(Service {
            id: "db".into(),
            service: "db".into(),
            ..Service::default()
        }),
        checks: vec![check],
    };
    client
        .apply(CatalogOp::Register(Box::new(reg)))
        .await
        .unwrap();
}

/// Waits (bounded) until the agent's check `id` has `status` and some output (a new check
/// starts critical with none), and returns the output.
async fn wait_for_check(agent: &Agent, id: &str, status: Status) -> String {
    for _ in 0..200 {
        if let Some(check) = agent.checks().into_iter().find(|c| c.check_id == id) {
            if check.status == status && !check.output.is_empty() {
                return check.output;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("check {id} never became {status:?}: {:?}", agent.checks());
}

#[tokio::test]
async fn aliases_of_other_nodes_follow_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(MemoryCatalog::default());
    let agent = agent_with_client(dir.path(), "{}", client.clone());
    register_db(&client, Status::Passing, "ok").await;
    let alias = serde_json::from_str(
        r#"{"ID": "db-alias", "Name": "db alias", "AliasNode": "db-1", "AliasService": "db"}"#,
    )
    .unwrap();
    agent.register_check(alias, Source::Api).unwrap();
    let output = wait_for_check(&agent, "db-alias", Status::Passing).await;
    assert_eq!(output, "All checks passing.");

    // A change on the other node reaches the alias through the blocking read.
    register_db(&client, Status::Critical, "connection refused").await;
    let output = wait_for_check(&agent, "db-alias", Status::Critical).await;
    assert_eq!(
        output,
        r#"Aliased check "db check" failing: connection refused"#
    );

    // An alias of a service the node does not run is critical.
    let missing = serde_json::from_str(
        r#"{"ID": "cache-alias", "Name": "cache", "AliasNode": "db-1", "AliasService": "cache"}"#,
    )
    .unwrap();
    agent.register_check(missing, Source::Api).unwrap();
    let output = wait_for_check(&agent, "cache-alias", Status::Critical).await;
    assert_eq!(output, "Service cache could not be found on node db-1");

    // Deregistering the alias stops its watcher.
    agent.deregister_check("db-alias");
    assert!(!agent.tasks().contains_key("db-alias"));
}

#[tokio::test]
async fn local_aliases_mirror_the_service_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(dir.path(), "{}");
    let web = serde_json::from_str(
        r#"{"Name": "web", "Port": 80, "Check": {"CheckID": "web-ttl", "TTL": "1m"}}"#,
    )
    .unwrap();
    agent.register_service(web, false, Source::Api).unwrap();
    let alias =
        serde_json::from_str(r#"{"ID": "web-alias", "Name": "b", "AliasService": "web"}"#).unwrap();
    agent.register_check(alias, Source::Api).unwrap();
    agent
        .ttl_update("web-ttl", Status::Warning, "slow")
        .unwrap();
    let check = agent
        .checks()
        .into_iter()
        .find(|c| c.check_id == "web-alias");
    assert_eq!(
        check.map(|c| (c.status, c.output)),
        Some((
            Status::Warning,
            r#"Aliased check "Service 'web' check" failing: slow"#.into()
        ))
    );
}

#[tokio::test]
async fn local_aliases_recover_when_the_failing_check_is_deregistered() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(dir.path(), "{}");
    let web = serde_json::from_str(r#"{"Name": "web", "Port": 80}"#).unwrap();
    agent.register_service(web, false, Source::Api).unwrap();
    let alias =
        serde_json::from_str(r#"{"ID": "web-alias", "Name": "b", "AliasService": "web"}"#).unwrap();
    agent.register_check(alias, Source::Api).unwrap();
    // A node-level check fails every service of the node, the aliased one included.
    let job = serde_json::from_str(r#"{"CheckID": "job", "Name": "job", "TTL": "1m"}"#).unwrap();
    agent.register_check(job, Source::Api).unwrap();
    agent.ttl_update("job", Status::Critical, "down").unwrap();
    let status = |agent: &Agent| {
        let check = agent
            .checks()
            .into_iter()
            .find(|c| c.check_id == "web-alias");
        check.map(|c| c.status)
    };
    assert_eq!(status(&agent), Some(Status::Critical));

    agent.deregister_check("job");
    assert_eq!(status(&agent), Some(Status::Passing));

    // Deregistering the aliased service itself turns the alias critical.
    agent.deregister_service("web");
    assert_eq!(status(&agent), Some(Status::Critical));
}
