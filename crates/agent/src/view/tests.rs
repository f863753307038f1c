use std::sync::Arc;

use catalog::{CatalogOp, HealthCheck, Registration, Service, Status};

use super::*;
use crate::testing::MemoryCatalog;

async fn register(client: &MemoryCatalog, node: &str, status: Status) {
    let mut check = HealthCheck::new(node, "web-check", "web check", status);
    check.service_id = "web".into();
    let reg = Registration {
        node: crate::identity::node_record(node, "", "10.0.0.1", "dc1"),
        skip_node_update: false,
        service: Some(Service {
            id: "web".into(),
            service: "web".into(),
            port: 80,
            ..Service::default()
        }),
        checks: vec![check],
    };
    client
        .apply(CatalogOp::Register(Box::new(reg)))
        .await
        .unwrap();
}

/// Waits (bounded) until the view's answer for web satisfies `holds`.
async fn wait_for(view: &HealthView, holds: impl Fn(&[ServiceHealth]) -> bool) -> Instances {
    for _ in 0..200 {
        let rows = view.service("web", false).await.unwrap();
        if holds(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the view never got there");
}

#[tokio::test]
async fn a_service_asked_for_is_watched_and_kept_current() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", Status::Passing).await;
    let view = HealthView::new(client.clone());
    let rows = view.service("web", false).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(view.watched(), 1);

    // Changes arrive without asking the servers again.
    register(&client, "b", Status::Critical).await;
    let rows = wait_for(&view, |rows| rows.len() == 2).await;
    let b = rows.iter().find(|r| r.node.name == "b").unwrap();
    assert_eq!(b.status(), Status::Critical);

    // An unknown service is an empty answer, and watched too.
    assert!(view.service("db", false).await.unwrap().is_empty());
    assert_eq!(view.watched(), 2);

    // Nodes too: known with their checks, unknown without a node.
    let a = view.node("a").await.unwrap();
    assert_eq!(a.node.as_ref().map(|n| n.name.as_str()), Some("a"));
    assert_eq!(a.checks.len(), 1);
    assert!(view.node("nowhere").await.unwrap().node.is_none());
    assert_eq!(view.watched(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_idle_watch_ends() {
    let client = Arc::new(MemoryCatalog::default());
    let view = HealthView::new(client.clone());
    view.service("web", false).await.unwrap();
    assert_eq!(view.watched(), 1);
    // Paused time: the blocking reads time out and the watch sees it has been idle.
    tokio::time::sleep(IDLE + WAIT * 2).await;
    assert_eq!(view.watched(), 0);
    // Asked again, it is watched again.
    view.service("web", false).await.unwrap();
    assert_eq!(view.watched(), 1);
}
