//! The API over a real socket: blocking queries wake only for their own key.

use std::time::Duration;

use test_support::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_read_wakes_for_its_key_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await?;
    let http = server.http();
    http.put("/v1/kv/watched", "v1").await?;
    let first = http.get("/v1/kv/watched").await?;
    let index: u64 = first.header("X-Consul-Index").unwrap_or("0").parse()?;

    let waiter = {
        let http = http.clone();
        tokio::spawn(async move {
            http.get(&format!("/v1/kv/watched?index={index}&wait=30s"))
                .await
        })
    };
    // Unrelated writes, acknowledged: the waiter must still be blocked afterwards.
    for i in 0..5 {
        assert_eq!(
            http.put(&format!("/v1/kv/other/{i}"), "x").await?.body,
            "true"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "an unrelated write woke the blocking query"
    );

    http.put("/v1/kv/watched", "v2").await?;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter).await???;
    let new_index: u64 = woken.header("X-Consul-Index").unwrap_or("0").parse()?;
    assert!(new_index > index);
    assert_eq!(woken.json()?[0]["Value"], "djI="); // base64("v2")
    Ok(())
}
