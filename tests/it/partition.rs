//! A real network partition: three servers in their own network namespaces on a bridge; the
//! leader is cut off, the majority carries on, and the old leader refuses to serve stale data.

use std::time::Duration;

use test_support::netns::{NsCluster, NsHttp, Unavailable};
use test_support::{wait_until, Reply};

/// curl's bound on one request: above the 7 s hold and 10 s commit timeouts.
const LIMIT: Duration = Duration::from_secs(20);

fn logs(cluster: &NsCluster) -> String {
    cluster
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("--- server {i} ---\n{}", s.log_text()))
        .collect()
}

async fn read_is(http: &NsHttp, path: &str, status: u16, body: &str) -> bool {
    matches!(http.get(path, Duration::from_secs(10)).await,
        Ok(r) if r.status == status && r.body == body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_refuses_reads_and_writes_and_rejoins() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = match NsCluster::start(dir.path(), 3).await {
        Ok(cluster) => cluster,
        Err(err) if err.downcast_ref::<Unavailable>().is_some() => {
            eprintln!("skipping: network namespaces unavailable: {err}");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let leader_addr = cluster.servers[0]
        .leader_seen()
        .await
        .ok_or_else(|| anyhow::anyhow!("no leader\n{}", logs(&cluster)))?;
    let old = cluster
        .index_of(&leader_addr)
        .ok_or_else(|| anyhow::anyhow!("unknown leader {leader_addr}"))?;
    let (a, b) = ((old + 1) % 3, (old + 2) % 3);
    let old_http = cluster.servers[old].http();
    let a_http = cluster.servers[a].http();

    let reply = old_http.put("/v1/kv/part", "before", LIMIT).await?;
    assert_eq!(reply.body, "true", "{reply:?}");
    for i in [a, b] {
        let http = cluster.servers[i].http();
        assert!(
            read_is(&http, "/v1/kv/part?raw", 200, "before").await,
            "server {i} reads the first write"
        );
    }

    cluster.lab.isolate(old)?;

    // The majority elects a new leader and accepts writes.
    for i in [a, b] {
        let server = &cluster.servers[i];
        wait_until(
            "the majority to elect a new leader",
            Duration::from_secs(20),
            || {
                let leader_addr = leader_addr.clone();
                async move { matches!(server.leader_seen().await, Some(l) if l != leader_addr) }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&cluster)))?;
    }
    let new_addr = cluster.servers[a].leader_seen().await.unwrap_or_default();
    let reply = a_http.put("/v1/kv/part", "after", LIMIT).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "true"),
        "write on the majority side: {reply:?}\n{}",
        logs(&cluster)
    );

    // The isolated old leader refuses linearizable reads and writes instead of serving "before".
    let (write, read, consistent) = tokio::join!(
        old_http.put("/v1/kv/minority", "lost", LIMIT),
        old_http.get("/v1/kv/part?raw", LIMIT),
        old_http.get("/v1/kv/part?consistent&raw", LIMIT),
    );
    let refusals: [(&str, Reply); 3] = [
        ("write", write?),
        ("default read", read?),
        ("?consistent read", consistent?),
    ];
    for (what, reply) in &refusals {
        // Reads give up after the 7 s barrier hold; a write after the 10 s commit timeout, its
        // outcome unknown to the client.
        let expected: &[&str] = if *what == "write" {
            &[
                "timed out after 10s waiting for a quorum",
                "No cluster leader",
            ]
        } else {
            &["No cluster leader"]
        };
        assert!(
            reply.status == 500 && expected.contains(&reply.body.as_str()),
            "{what} on the partitioned old leader: {reply:?}\n{}",
            logs(&cluster)
        );
    }
    // A stale read answers from local state and carries its freshness headers.
    let stale = old_http.get("/v1/kv/part?stale", LIMIT).await?;
    assert_eq!(stale.status, 200, "{stale:?}");
    assert!(
        stale.header("X-Consul-KnownLeader").is_some()
            && stale.header("X-Consul-LastContact").is_some(),
        "{stale:?}"
    );

    cluster.lab.heal(old)?;

    // The old leader rejoins as a follower and converges on the majority's state.
    let old_server = &cluster.servers[old];
    wait_until(
        "the old leader to see the new one",
        Duration::from_secs(30),
        || {
            let new_addr = new_addr.clone();
            async move { old_server.leader_seen().await == Some(new_addr) }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&cluster)))?;
    wait_until(
        "the old leader to read the majority's write",
        Duration::from_secs(30),
        || read_is(&old_http, "/v1/kv/part?raw", 200, "after"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&cluster)))?;
    let stale = old_http.get("/v1/kv/part?stale&raw", LIMIT).await?;
    assert_eq!((stale.status, stale.body.as_str()), (200, "after"));

    // The write the minority leader refused was never committed, so it never appears.
    // Each server is asked with a linearizable read; one that is between leaders answers
    // 500 (`No cluster leader`) for a moment, so ask until it answers for real.
    for (i, server) in cluster.servers.iter().enumerate() {
        let http = server.http();
        let answered = std::sync::Mutex::new(None);
        wait_until("a definite answer", Duration::from_secs(30), || async {
            let reply = http.get("/v1/kv/minority", LIMIT).await.ok();
            let definite = reply.as_ref().is_some_and(|r| r.status != 500);
            *answered.lock().expect("answer") = reply;
            definite
        })
        .await
        .map_err(|e| anyhow::anyhow!("server {i}: {e}\n{}", logs(&cluster)))?;
        let reply = answered.lock().expect("answer").take().expect("an answer");
        assert_eq!(
            reply.status,
            404,
            "server {i}: a write refused with 500 by a minority leader took effect: {reply:?}\n{}",
            logs(&cluster)
        );
    }
    Ok(())
}
