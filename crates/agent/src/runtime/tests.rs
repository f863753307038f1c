use std::sync::atomic::{AtomicU64, Ordering};

use catalog::Catalog;

use super::*;

/// The catalog a server would apply the agent's writes to, held in memory.
#[derive(Default)]
struct MemoryCatalog {
    catalog: Mutex<Catalog>,
    index: AtomicU64,
}

impl CatalogClient for MemoryCatalog {
    fn apply(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), String>> {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self
            .catalog
            .lock()
            .unwrap()
            .apply(op, index)
            .map(drop)
            .map_err(|err| err.to_string());
        Box::pin(async move { result })
    }

    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>> {
        let state = self.catalog.lock().unwrap().node_state(node);
        Box::pin(async move { Ok(state) })
    }
}

/// An agent whose configuration lives in `dir/agent.json`.
fn agent_with_config(dir: &std::path::Path, json: &str) -> Agent {
    let file = dir.join("agent.json");
    std::fs::write(&file, json).unwrap();
    let mut config = config::load(&[file], &[], &config::Overrides::default()).unwrap();
    config.node_name = "n1".into();
    let client = Arc::new(MemoryCatalog::default());
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

#[tokio::test]
async fn aliases_of_other_nodes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_config(dir.path(), "{}");
    let remote = serde_json::from_str(r#"{"Name": "a", "AliasNode": "elsewhere"}"#).unwrap();
    let err = agent.register_check(remote, Source::Api).unwrap_err();
    assert!(matches!(err, AgentError::Invalid(_)), "{err}");
    assert!(agent.checks().is_empty());
    let web = serde_json::from_str(r#"{"Name": "web", "Port": 80}"#).unwrap();
    agent.register_service(web, false, Source::Api).unwrap();
    let local =
        serde_json::from_str(r#"{"Name": "b", "AliasNode": "n1", "AliasService": "web"}"#).unwrap();
    agent.register_check(local, Source::Api).unwrap();
}
