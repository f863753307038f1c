//! Save and restore the whole state through `/v1/snapshot`, replicated to every server.

use std::time::Duration;

use test_support::{Cluster, Method};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_state_everywhere_and_wakes_blocking_queries() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 27).await?;
    let http = cluster.servers[0].http();
    for i in 0..10 {
        assert_eq!(
            http.put(&format!("/v1/kv/snap/{i}"), format!("v{i}"))
                .await?
                .body,
            "true"
        );
    }
    let saved = http.get("/v1/kv/snap/?recurse").await?.json()?;
    let archive = http.get_bytes("/v1/snapshot").await?;
    assert!(archive.starts_with(&[0x1f, 0x8b]), "a gzip archive");

    // Change things after the snapshot, and block on the prefix.
    http.request(Method::DELETE, "/v1/kv/snap/3", "").await?;
    http.put("/v1/kv/snap/new", "later").await?;
    let index = http
        .get("/v1/kv/snap/?recurse")
        .await?
        .header("X-Consul-Index")
        .unwrap_or("0")
        .to_owned();
    let waiter = {
        let http = cluster.servers[1].http();
        tokio::spawn(async move {
            http.get(&format!("/v1/kv/snap/?recurse&index={index}&wait=60s"))
                .await
        })
    };

    // A corrupt archive is refused and changes nothing.
    let mut corrupt = archive.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    let refused = http.put("/v1/snapshot", corrupt).await?;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.starts_with("Snapshot restore failed"),
        "{refused:?}"
    );
    assert_eq!(http.get("/v1/kv/snap/new?raw").await?.body, "later");

    let restored = http.put("/v1/snapshot", archive).await?;
    assert_eq!(restored.status, 200, "{restored:?}");
    let woken = tokio::time::timeout(Duration::from_secs(20), waiter).await???;
    assert_eq!(
        woken.json()?,
        saved,
        "the woken query sees the restored state"
    );
    for server in &cluster.servers {
        let listed = server.http().get("/v1/kv/snap/?recurse").await?.json()?;
        assert_eq!(listed, saved, "every server holds the restored state");
    }
    Ok(())
}
