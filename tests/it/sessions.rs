//! Sessions end-to-end: the leader expires a TTL session and its lock is released.

use std::time::Duration;

use test_support::{wait_until, ServerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_releases_the_lock() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A short minimum TTL so expiry (at 2 x TTL, like Consul) happens within the test.
    let config = dir.path().join("ttl.hcl");
    std::fs::write(&config, "session_ttl_min = \"1s\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let server = ServerProcess::start(&dir.path().join("data"), &["-config-file", &config]).await?;
    let http = server.http();

    let created = http
        .put(
            "/v1/session/create",
            r#"{"Name":"lock-holder","TTL":"1s","LockDelay":"1ms"}"#,
        )
        .await?
        .json()?;
    let id = created["ID"].as_str().expect("session id").to_owned();
    let acquired = http
        .put(&format!("/v1/kv/locked?acquire={id}"), "held")
        .await?;
    assert_eq!(acquired.body, "true");
    let entry = http.get("/v1/kv/locked").await?.json()?;
    assert_eq!(entry[0]["Session"], id.as_str());

    wait_until(
        "the leader to expire the session",
        Duration::from_secs(15),
        || {
            let http = http.clone();
            let id = id.clone();
            async move {
                let info = http.get(&format!("/v1/session/info/{id}")).await;
                matches!(info, Ok(r) if r.body.trim() == "[]")
            }
        },
    )
    .await?;
    let entry = http.get("/v1/kv/locked").await?.json()?;
    assert!(entry[0].get("Session").is_none(), "lock released: {entry}");
    assert_eq!(entry[0]["LockIndex"], 1, "release keeps the lock index");
    Ok(())
}
