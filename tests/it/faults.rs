//! Process faults on three real servers: a leader frozen by SIGSTOP and woken after a new leader
//! took over, the whole datacenter killed -9 and restarted, and the loss of quorum.

use std::time::{Duration, Instant};

use test_support::faults::{bounded, Stopped};
use test_support::{wait_until, Cluster, Http, Reply};

/// Bound for any single request in these tests: above the 7 s hold and 10 s commit timeouts.
const REQUEST_LIMIT: Duration = Duration::from_secs(20);

async fn get(http: &Http, path: &str) -> anyhow::Result<Reply> {
    bounded(&format!("GET {path}"), REQUEST_LIMIT, http.get(path)).await
}

async fn put(http: &Http, path: &str, body: &str) -> anyhow::Result<Reply> {
    bounded(
        &format!("PUT {path}"),
        REQUEST_LIMIT,
        http.put(path, body.to_owned()),
    )
    .await
}

/// The leader address `http`'s server reports from its local state, if it answers in time.
async fn leader_seen(http: &Http) -> Option<String> {
    let reply = tokio::time::timeout(Duration::from_secs(2), http.get("/v1/status/leader?stale"))
        .await
        .ok()?
        .ok()?;
    let leader: String = serde_json::from_str(&reply.body).ok()?;
    (!leader.is_empty()).then_some(leader)
}

/// Every server's log, for failure messages.
fn logs(cluster: &Cluster) -> String {
    cluster
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("--- server {i} ---\n{}", s.log_text()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_woken_from_sigstop_serves_no_stale_reads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 71).await?;
    let leader = cluster.leader().await?;
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let old_addr = cluster.servers[leader].rpc_addr();
    let old = cluster.servers[leader].http();
    let via_a = cluster.servers[a].http();

    assert_eq!(put(&old, "/v1/kv/frozen", "old").await?.body, "true");
    let seen = get(&via_a, "/v1/kv/frozen?raw").await?;
    assert_eq!((seen.status, seen.body.as_str()), (200, "old"));

    let pid = cluster.servers[leader].pid().expect("leader is running");
    // Declared after `cluster`: dropped first, so the process is continued before it is killed.
    let stopped = Stopped::stop(pid)?;
    let frozen_at = Instant::now();

    // The others elect a new leader (elections time out after 300-600 ms) and take a write.
    for i in [a, b] {
        let http = cluster.servers[i].http();
        let old_addr = old_addr.clone();
        wait_until(
            "a new leader while the old one is stopped",
            Duration::from_secs(15),
            || {
                let http = http.clone();
                let old_addr = old_addr.clone();
                async move { matches!(leader_seen(&http).await, Some(l) if l != old_addr) }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&cluster)))?;
    }
    let written = put(&via_a, "/v1/kv/frozen", "new").await?;
    assert_eq!(
        (written.status, written.body.as_str()),
        (200, "true"),
        "{written:?}"
    );

    // Reads sent to the frozen leader after "new" was acknowledged: the kernel queues them and
    // the process reads them first thing after SIGCONT, while it still believes it leads.
    let queued_default = tokio::spawn({
        let old = old.clone();
        async move { get(&old, "/v1/kv/frozen?raw").await }
    });
    let queued_consistent = tokio::spawn({
        let old = old.clone();
        async move { get(&old, "/v1/kv/frozen?consistent&raw").await }
    });

    // Fault duration, not synchronization: keep the leader frozen for 2 s in all.
    tokio::time::sleep_until((frozen_at + Duration::from_secs(2)).into()).await;
    // Must not happen: a frozen process cannot answer.
    assert!(
        !queued_default.is_finished() && !queued_consistent.is_finished(),
        "the stopped leader answered"
    );
    stopped.resume()?;

    let context = |what: &str, reply: &Reply| {
        format!(
            "{what} on the woken old leader: {reply:?}\n{}",
            logs(&cluster)
        )
    };
    for (what, reply) in [
        ("queued default read", queued_default.await??),
        ("queued ?consistent read", queued_consistent.await??),
        ("default read", get(&old, "/v1/kv/frozen?raw").await?),
        (
            "?consistent read",
            get(&old, "/v1/kv/frozen?consistent&raw").await?,
        ),
    ] {
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "new"),
            "{}",
            context(what, &reply)
        );
    }

    // A stale read may be behind, but says how fresh it is.
    let stale = get(&old, "/v1/kv/frozen?stale").await?;
    assert_eq!(stale.status, 200, "{}", context("?stale read", &stale));
    let value = stale.json()?[0]["Value"].clone();
    assert!(
        value == "b2xk" || value == "bmV3", // base64 of "old" / "new"
        "{}",
        context("?stale read", &stale)
    );
    for header in ["X-Consul-KnownLeader", "X-Consul-LastContact"] {
        assert!(
            stale.header(header).is_some(),
            "{}",
            context(&format!("?stale read without {header}"), &stale)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_the_whole_datacenter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 74).await?;
    let https: Vec<Http> = cluster.servers.iter().map(|s| s.http()).collect();

    // Concurrent writes through all three servers (followers forward to the leader).
    let writes = (0..60).map(|i| {
        let http = https[i % 3].clone();
        async move {
            let reply = put(
                &http,
                &format!("/v1/kv/whole/{i:02}?flags={i}"),
                &format!("v{i}"),
            )
            .await?;
            anyhow::ensure!(
                (reply.status, reply.body.as_str()) == (200, "true"),
                "write {i}: {reply:?}"
            );
            anyhow::Ok(())
        }
    });
    for result in futures::future::join_all(writes).await {
        result?;
    }
    let deleted = bounded(
        "DELETE",
        REQUEST_LIMIT,
        https[1].request(test_support::Method::DELETE, "/v1/kv/whole/07", ""),
    )
    .await?;
    assert_eq!(deleted.status, 200, "{deleted:?}");

    let before = get(&https[0], "/v1/kv/whole/?recurse").await?;
    assert_eq!(before.status, 200, "{before:?}");
    let entries = before.json()?;
    assert_eq!(entries.as_array().map(Vec::len), Some(59));
    let index_before = before.header("X-Consul-Index").map(str::to_owned);

    for server in &mut cluster.servers {
        server.kill9()?;
    }
    for server in &mut cluster.servers {
        server.spawn()?;
    }
    for server in &cluster.servers {
        server.wait_for_leader().await?;
    }

    for (i, http) in https.iter().enumerate() {
        let after = get(http, "/v1/kv/whole/?recurse").await?;
        assert_eq!(
            after.status,
            200,
            "server {i}: {after:?}\n{}",
            logs(&cluster)
        );
        assert_eq!(
            after.json()?,
            entries,
            "server {i}: every acknowledged key, value, flag and index survives\n{}",
            logs(&cluster)
        );
        assert_eq!(
            after.header("X-Consul-Index").map(str::to_owned),
            index_before,
            "server {i}: the prefix index is unchanged"
        );
    }
    let deleted = get(&https[2], "/v1/kv/whole/07").await?;
    assert_eq!(deleted.status, 404, "{deleted:?}");

    // The restarted datacenter takes writes, at indexes after everything it had before.
    let reply = put(&https[2], "/v1/kv/whole/after", "x").await?;
    assert_eq!(reply.body, "true", "{reply:?}");
    let max_before = entries
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["ModifyIndex"].as_u64())
        .max()
        .unwrap_or(0);
    let after = get(&https[0], "/v1/kv/whole/after").await?.json()?;
    assert!(
        after[0]["ModifyIndex"].as_u64().unwrap_or(0) > max_before,
        "{after}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_and_default_reads_fail_and_stale_reads_answer() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 77).await?;
    let leader = cluster.leader().await?;
    let survivor = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let http = cluster.servers[survivor].http();

    assert_eq!(put(&http, "/v1/kv/quorum", "v1").await?.body, "true");
    // A linearizable read here also means the survivor has applied "v1".
    let seen = get(&http, "/v1/kv/quorum?raw").await?;
    assert_eq!((seen.status, seen.body.as_str()), (200, "v1"));

    cluster.servers[leader].kill9()?;
    cluster.servers[other].kill9()?;

    // The survivor cannot reach a majority: it holds the requests, then refuses them.
    let started = Instant::now();
    let (write, read, consistent) = tokio::join!(
        put(&http, "/v1/kv/quorum", "v2"),
        get(&http, "/v1/kv/quorum?raw"),
        get(&http, "/v1/kv/quorum?consistent&raw"),
    );
    let elapsed = started.elapsed();
    for (what, reply) in [
        ("write", write?),
        ("default read", read?),
        ("?consistent read", consistent?),
    ] {
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (500, "No cluster leader"),
            "{what} without quorum: {reply:?}\n{}",
            logs(&cluster)
        );
    }
    assert!(
        elapsed < Duration::from_secs(15),
        "refusals took {elapsed:?}"
    );

    // Local state is still served to clients that ask for it.
    let stale = get(&http, "/v1/kv/quorum?stale&raw").await?;
    assert_eq!(
        (stale.status, stale.body.as_str()),
        (200, "v1"),
        "{stale:?}"
    );
    let stale = get(&http, "/v1/kv/quorum?stale").await?;
    assert!(
        stale.header("X-Consul-KnownLeader").is_some()
            && stale.header("X-Consul-LastContact").is_some(),
        "{stale:?}"
    );
    // The refusals above took about 7 s, so the survivor last heard from a leader seconds ago;
    // a stale read must say so instead of claiming fresh data.
    let last_contact: u64 = stale
        .header("X-Consul-LastContact")
        .unwrap_or("0")
        .parse()?;
    assert!(
        last_contact >= 1000,
        "LastContact {last_contact} ms: {stale:?}"
    );

    // One server back: a majority again, and writes succeed.
    cluster.servers[other].spawn()?;
    wait_until(
        "a write to succeed after quorum is restored",
        Duration::from_secs(45),
        || {
            let http = http.clone();
            async move {
                matches!(put(&http, "/v1/kv/quorum", "v3").await,
                    Ok(r) if r.status == 200 && r.body == "true")
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&cluster)))?;
    let read = get(&http, "/v1/kv/quorum?raw").await?;
    assert_eq!((read.status, read.body.as_str()), (200, "v3"), "{read:?}");
    Ok(())
}
