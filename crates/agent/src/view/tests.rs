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

#[tokio::test]
async fn watched_instances_are_handed_out_at_once_and_shared_until_they_change() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", Status::Passing).await;
    let view = HealthView::new(client.clone());
    assert!(view.service_now("web", false).is_none(), "not watched yet");
    let first = view.service("web", false).await.unwrap();
    let now = view.service_now("web", false).expect("watched and read");
    assert!(Arc::ptr_eq(&first, &now), "the same instances, not a copy");
    assert!(Arc::ptr_eq(
        &first,
        &view.service("web", false).await.unwrap()
    ));
    assert!(
        view.service_now("web", true).is_none(),
        "connect is watched apart"
    );

    register(&client, "a", Status::Critical).await;
    let changed = wait_for(&view, |rows| rows[0].status() == Status::Critical).await;
    assert!(!Arc::ptr_eq(&first, &changed));
    let now = view.service_now("web", false).expect("still watched");
    assert!(Arc::ptr_eq(&changed, &now));
}

/// DNS asks from threads with runtimes of their own: the watches run on the view's runtime,
/// so they outlive the runtime that asked first.
#[tokio::test]
async fn watches_run_on_the_views_runtime() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", Status::Passing).await;
    let view = HealthView::new(client.clone());
    let asking = view.clone();
    let rows = tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(asking.service("web", false))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rows.len(), 1);
    // The asking runtime is gone; the watch still follows changes.
    register(&client, "b", Status::Passing).await;
    let rows = wait_for(&view, |rows| rows.len() == 2).await;
    assert_eq!(rows.len(), 2);
}
