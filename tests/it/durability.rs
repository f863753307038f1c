//! Acknowledged writes survive `kill -9`; SIGTERM shuts down cleanly.

use std::time::Duration;

use test_support::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_with_their_indexes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::start(&dir.path().join("data"), &[]).await?;
    let http = server.http();

    // Concurrent writers, so acknowledgements come out of shared group commits.
    let writes = (0..200).map(|i| {
        let http = http.clone();
        async move {
            let reply = http
                .put(&format!("/v1/kv/durable/{i:03}"), format!("value-{i}"))
                .await?;
            anyhow::ensure!(
                reply.status == 200 && reply.body == "true",
                "write {i}: {reply:?}"
            );
            anyhow::Ok(())
        }
    });
    for result in futures::future::join_all(writes).await {
        result?;
    }
    let before = http.get("/v1/kv/durable/?recurse").await?.json()?;
    assert_eq!(before.as_array().map(Vec::len), Some(200));

    server.kill9()?;
    server.restart().await?;

    let after = server.http().get("/v1/kv/durable/?recurse").await?.json()?;
    assert_eq!(
        after, before,
        "every acknowledged key, value and index survives kill -9"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_data_is_intact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::start(&dir.path().join("data"), &[]).await?;
    assert_eq!(
        server.http().put("/v1/kv/graceful", "yes").await?.body,
        "true"
    );

    let status = server.terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "clean exit on SIGTERM, got {status}");

    server.restart().await?;
    let reply = server.http().get("/v1/kv/graceful?raw").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "yes"));
    Ok(())
}
