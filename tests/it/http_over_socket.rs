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

/// `limits.http_max_conns_per_client`: a client IP holding the limit in open connections gets
/// Consul's 429 on the next one; a connection it closes frees its place.
///
/// The raw connections come from a client IP of their own: the fixture's pooled connections
/// from 127.0.0.1 close whenever their pool gets to it, and a count that includes them races.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_client_limit_get_429() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("limits.hcl");
    std::fs::write(&config, "limits {\n  http_max_conns_per_client = 2\n}\n")?;
    let config = config.to_string_lossy().into_owned();
    let server = ServerProcess::start(&dir.path().join("data"), &["-config-file", &config]).await?;
    let addr: std::net::SocketAddr = server.http_addr().parse()?;
    let connect = || async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((std::net::Ipv4Addr::new(127, 0, 16, 1), 0).into())?;
        anyhow::Ok(socket.connect(addr).await?)
    };
    let held = [connect().await?, connect().await?];
    let answer = |mut stream: tokio::net::TcpStream| async move {
        stream
            .write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text)).await??;
        anyhow::Ok(text)
    };
    let refused = answer(connect().await?).await?;
    assert!(refused.starts_with("HTTP/1.1 429 "), "{refused}");
    assert!(
        refused.ends_with("please rate limit your calls\n"),
        "{refused}"
    );
    drop(held);
    // The server notices the closed connections as it reads them: retry a little.
    let mut last = String::new();
    for _ in 0..50 {
        last = answer(connect().await?).await?;
        if last.starts_with("HTTP/1.1 200 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.starts_with("HTTP/1.1 200 "), "{last}");
    Ok(())
}

/// A request target over 64 KiB (a KV key, say) is answered 414 before it reaches the API,
/// and the agent keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_request_target_gets_414() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await?;
    let mut stream = tokio::net::TcpStream::connect(server.http_addr()).await?;
    let key = "k".repeat(70 * 1024);
    stream
        .write_all(
            format!("GET /v1/kv/{key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await??;
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer}");
    let reply = server.http().get("/v1/status/leader").await?;
    assert_eq!(reply.status, 200);
    Ok(())
}
