//! Three real servers on 127.0.0.x: forming by bootstrap_expect, forwarding, follower reads,
//! and losing the leader to kill -9.

use std::time::Duration;

use futures::FutureExt;
use test_support::{wait_until, Cluster, Method};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_survive_kill_9_of_the_leader() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 21).await?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    // Writes through a follower are forwarded to the leader.
    let via_follower = cluster.servers[follower].http();
    for i in 0..30 {
        let reply = via_follower
            .put(&format!("/v1/kv/c/{i:02}"), format!("v{i}"))
            .await?;
        anyhow::ensure!(
            reply.body == "true",
            "write {i} through a follower: {reply:?}"
        );
    }
    // A default (linearizable) read on another follower sees every acknowledged write.
    let listed = cluster.servers[other]
        .http()
        .get("/v1/kv/c/?recurse")
        .await?;
    assert_eq!(listed.status, 200, "{listed:?}");
    let before = listed.json()?;
    assert_eq!(before.as_array().map(Vec::len), Some(30));

    let peers = cluster.servers[other]
        .http()
        .get("/v1/status/peers")
        .await?
        .json()?;
    assert_eq!(
        peers.as_array().map(Vec::len),
        Some(3),
        "three voters: {peers}"
    );

    let old_leader = format!("\"{}\"", cluster.servers[leader].rpc_addr());
    cluster.servers[leader].kill9()?;
    let survivor = cluster.servers[follower].http();
    wait_until(
        "a new leader among the survivors",
        Duration::from_secs(30),
        || {
            let survivor = survivor.clone();
            let old_leader = old_leader.clone();
            async move {
                matches!(survivor.get("/v1/status/leader?stale").await,
                Ok(r) if r.body.len() > 2 && r.body != old_leader)
            }
        },
    )
    .await?;
    let new_leader = cluster.leader().await?;
    assert_ne!(new_leader, leader);

    // Writes resume, and nothing acknowledged before the crash is lost.
    assert_eq!(survivor.put("/v1/kv/c/after", "x").await?.body, "true");
    let after = survivor.get("/v1/kv/c/?recurse").await?.json()?;
    let after = after.as_array().cloned().unwrap_or_default();
    assert_eq!(after.len(), 31);
    for entry in before.as_array().into_iter().flatten() {
        assert!(
            after.contains(entry),
            "lost or changed after failover: {entry}"
        );
    }

    // The killed server comes back, catches up, and serves linearizable reads again.
    cluster.servers[leader].spawn()?;
    cluster.servers[leader].wait_for_leader().await?;
    let rejoined = cluster.servers[leader]
        .http()
        .get("/v1/kv/c/after?raw")
        .await?;
    assert_eq!((rejoined.status, rejoined.body.as_str()), (200, "x"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_lists_servers_and_removes_one_while_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 24).await?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    let http = cluster.servers[follower].http();

    let config = http.get("/v1/operator/raft/configuration").await?.json()?;
    let servers = config["Servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 3, "{config}");
    assert_eq!(servers.iter().filter(|s| s["Leader"] == true).count(), 1);
    assert!(servers
        .iter()
        .all(|s| s["Voter"] == true && s["Node"].as_str().is_some_and(|n| n.starts_with("node-"))));
    let leader_entry = servers
        .iter()
        .find(|s| s["Leader"] == true)
        .expect("a leader");
    assert_eq!(
        leader_entry["Address"],
        cluster.servers[leader].rpc_addr().as_str()
    );

    // Remove a follower that is not the one we talk to; the datacenter keeps serving.
    let removed = (leader + 2) % 3;
    let address = cluster.servers[removed].rpc_addr();
    let reply = http
        .request(
            Method::DELETE,
            &format!("/v1/operator/raft/peer?address={address}"),
            "",
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    cluster.servers[removed].kill9()?;
    let config = http.get("/v1/operator/raft/configuration").await?.json()?;
    assert_eq!(
        config["Servers"].as_array().map(Vec::len),
        Some(2),
        "{config}"
    );
    assert_eq!(http.put("/v1/kv/after-removal", "ok").await?.body, "true");

    let missing = http
        .request(
            Method::DELETE,
            "/v1/operator/raft/peer?address=127.0.0.1:1",
            "",
        )
        .await?;
    assert_eq!(missing.status, 500);
    assert!(
        missing
            .body
            .contains("was not found in the Raft configuration"),
        "{missing:?}"
    );
    let neither = http
        .request(Method::DELETE, "/v1/operator/raft/peer", "")
        .await?;
    assert_eq!(neither.status, 400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_joins_a_running_datacenter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // One bootstrapped server, then a second that is brought in with /v1/agent/join.
    let first = test_support::ServerProcess::start(&dir.path().join("first"), &[]).await?;
    first.http().put("/v1/kv/before-join", "1").await?;
    let second = start_and_join(30, &dir.path().join("second"), Vec::new(), &first).await?;
    second.wait_for_leader().await?;
    let config = first
        .http()
        .get("/v1/operator/raft/configuration")
        .await?
        .json()?;
    assert_eq!(
        config["Servers"].as_array().map(Vec::len),
        Some(2),
        "{config}"
    );
    let read = second.http().get("/v1/kv/before-join?raw").await?;
    assert_eq!((read.status, read.body.as_str()), (200, "1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopilot_removes_a_dead_server_and_takes_it_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 33).await?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    let victim = (leader + 2) % 3;
    let http = cluster.servers[follower].http();

    // Asked of a follower, answered by the leader.
    wait_until("every server to be healthy", Duration::from_secs(20), || {
        let http = http.clone();
        async move {
            matches!(http.get("/v1/operator/autopilot/health").await,
                Ok(r) if r.status == 200 && r.json().is_ok_and(|h| h["Healthy"] == true && h["FailureTolerance"] == 1))
        }
    })
    .await?;
    // The whole autopilot view: every server keyed by ID, the leader, three voters.
    let state = http.get("/v1/operator/autopilot/state").await?.json()?;
    assert_eq!(
        state["Servers"].as_object().map(|s| s.len()),
        Some(3),
        "{state}"
    );
    assert_eq!(state["Voters"].as_array().map(Vec::len), Some(3), "{state}");
    let leader = state["Leader"].as_str().unwrap_or_default();
    assert_eq!(state["Servers"][leader]["Status"], "leader", "{state}");
    assert_eq!(state["OptimisticFailureTolerance"], 1, "{state}");
    let health = http.get("/v1/operator/autopilot/health").await?.json()?;
    assert_eq!(
        health["Servers"].as_array().map(Vec::len),
        Some(3),
        "{health}"
    );

    cluster.servers[victim].kill9()?;
    let victim_addr = cluster.servers[victim].rpc_addr();
    wait_until(
        "autopilot to mark the killed server unhealthy",
        Duration::from_secs(20),
        || {
            let http = http.clone();
            let victim_addr = victim_addr.clone();
            async move {
                let Ok(r) = http.get("/v1/operator/autopilot/health").await else {
                    return false;
                };
                let Ok(h) = r.json() else { return false };
                r.status == 429
                    && h["Healthy"] == false
                    && h["FailureTolerance"] == 0
                    && h["Servers"].as_array().is_some_and(|servers| {
                        servers
                            .iter()
                            .any(|s| s["Address"] == victim_addr.as_str() && s["Healthy"] == false)
                    })
            }
        },
    )
    .await?;

    // Failed in gossip for longer than ServerStabilizationTime (10 s): out of raft, so the two
    // left form a healthy datacenter again.
    let voters = |http: test_support::Http| async move {
        let config = http.get("/v1/operator/raft/configuration").await.ok()?;
        config.json().ok()?["Servers"].as_array().map(Vec::len)
    };
    wait_until(
        "autopilot to remove the dead server",
        Duration::from_secs(60),
        || voters(http.clone()).map(|n| n == Some(2)),
    )
    .await?;
    wait_until(
        "the two left to be healthy",
        Duration::from_secs(20),
        || {
            let http = http.clone();
            async move {
                matches!(http.get("/v1/operator/autopilot/health").await, Ok(r) if r.status == 200)
            }
        },
    )
    .await?;

    // Back alive for ServerStabilizationTime: in raft again, with the writes it missed.
    let reply = http.put("/v1/kv/while-away", "x").await?;
    assert_eq!(reply.body, "true");
    cluster.servers[victim].restart().await?;
    wait_until(
        "autopilot to take the server back",
        Duration::from_secs(60),
        || voters(http.clone()).map(|n| n == Some(3)),
    )
    .await?;
    let back = cluster.servers[victim].http();
    wait_until("the returned server to have the write", Duration::from_secs(30), || {
        let back = back.clone();
        async move { matches!(back.get("/v1/kv/while-away?stale").await, Ok(r) if r.status == 200) }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_under_load_lose_no_acknowledged_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 42).await?;
    let leader = cluster.leader().await?;
    let stable = cluster.servers[leader].http();

    // A writer keeps writing through the leader while the configuration changes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let http = stable.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000 {
                if let Ok(reply) = http.put(&format!("/v1/kv/load/{i:05}"), "x").await {
                    if reply.body == "true" {
                        acknowledged.push(i);
                    }
                }
                i += 1;
            }
            acknowledged
        })
    };

    wait_until(
        "the writer to be under way",
        Duration::from_secs(20),
        || {
            let http = stable.clone();
            async move {
                matches!(http.get("/v1/kv/load/?keys").await,
                Ok(r) if r.json().ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0) >= 50)
            }
        },
    )
    .await?;

    // Remove a follower, then bring a brand-new server in with /v1/agent/join.
    let removed = (leader + 1) % 3;
    let reply = stable
        .request(
            Method::DELETE,
            &format!(
                "/v1/operator/raft/peer?address={}",
                cluster.servers[removed].rpc_addr()
            ),
            "",
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    cluster.servers[removed].kill9()?;
    let newcomer = start_and_join(
        45,
        &dir.path().join("newcomer"),
        Vec::new(),
        &cluster.servers[leader],
    )
    .await?;
    let newcomer_http = newcomer.http();
    // The gossip join returns at once; the newcomer then asks the leader to add it to raft.
    wait_until(
        "the newcomer to be a raft voter",
        Duration::from_secs(30),
        || {
            let http = stable.clone();
            async move {
                matches!(http.get("/v1/operator/raft/configuration").await,
                Ok(r) if r.json().ok().and_then(|v| v["Servers"].as_array().map(Vec::len)) == Some(3))
            }
        },
    )
    .await?;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = tokio::time::timeout(Duration::from_secs(60), writer).await??;
    assert!(!acknowledged.is_empty());
    // Every acknowledged write is readable, linearizably, on the newcomer.
    let keys = newcomer_http.get("/v1/kv/load/?keys").await?.json()?;
    let keys: std::collections::HashSet<String> = keys
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for i in acknowledged {
        assert!(
            keys.contains(&format!("load/{i:05}")),
            "acknowledged write {i} missing"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_server_catches_up_by_snapshot_install() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Snapshot often and keep few trailing logs, so a newcomer cannot catch up from the log.
    let config = dir.path().join("snapshots.hcl");
    std::fs::write(
        &config,
        "raft_snapshot_threshold = 50\nraft_trailing_logs = 5\n",
    )?;
    let config = config.to_string_lossy().into_owned();
    let first =
        test_support::ServerProcess::start(&dir.path().join("first"), &["-config-file", &config])
            .await?;
    let http = first.http();
    for i in 0..300 {
        assert_eq!(
            http.put(&format!("/v1/kv/snapdata/{i:03}"), format!("v{i}"))
                .await?
                .body,
            "true"
        );
    }
    let before = http.get("/v1/kv/snapdata/?recurse").await?.json()?;

    let second = start_and_join(
        48,
        &dir.path().join("second"),
        vec!["-config-file".into(), config.clone()],
        &first,
    )
    .await?;
    let second_http = second.http();
    // Local state only: it must have been installed from the leader's snapshot and log.
    wait_until(
        "the newcomer to hold every key locally",
        Duration::from_secs(30),
        || {
            let http = second_http.clone();
            let before = before.clone();
            async move {
                matches!(http.get("/v1/kv/snapdata/?recurse&stale").await,
                Ok(r) if r.json().ok() == Some(before))
            }
        },
    )
    .await?;
    let stats = second_http.get("/v1/agent/self").await?.json()?;
    let installed: u64 = stats["Stats"]["raft"]["last_snapshot_index"]
        .as_str()
        .unwrap_or("0")
        .parse()?;
    assert!(
        installed > 0,
        "the newcomer holds a snapshot: {}",
        stats["Stats"]["raft"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_server_asked_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 51).await?;
    let leader = cluster.leader().await?;
    let target = (leader + 1) % 3;
    let via = (leader + 2) % 3;
    let http = cluster.servers[via].http();
    http.put("/v1/kv/before-transfer", "1").await?;

    let config = http.get("/v1/operator/raft/configuration").await?.json()?;
    let target_addr = cluster.servers[target].rpc_addr();
    let target_id = config["Servers"]
        .as_array()
        .and_then(|servers| {
            servers
                .iter()
                .find(|s| s["Address"] == target_addr.as_str())
        })
        .and_then(|s| s["ID"].as_str())
        .expect("the target is in the configuration")
        .to_owned();

    // Asked of a follower that is neither leader nor target: forwarded to the leader.
    let reply = http
        .request(
            Method::POST,
            &format!("/v1/operator/raft/transfer-leader?id={target_id}"),
            "",
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()?["Success"], true);
    wait_until(
        "every server to follow the new leader",
        Duration::from_secs(20),
        || {
            let servers: Vec<_> = cluster.servers.iter().map(|s| s.http()).collect();
            let expected = format!("\"{target_addr}\"");
            async move {
                for http in servers {
                    match http.get("/v1/status/leader?stale").await {
                        Ok(r) if r.body == expected => {}
                        _ => return false,
                    }
                }
                true
            }
        },
    )
    .await?;
    assert_eq!(http.put("/v1/kv/after-transfer", "2").await?.body, "true");
    assert_eq!(http.get("/v1/kv/before-transfer?raw").await?.body, "1");
    Ok(())
}

/// Starts a fresh server on 127.0.0.`octet` and joins it to the datacenter of `via` with
/// `PUT /v1/agent/join` (gossip); the new server then finds the servers and joins raft.
async fn start_and_join(
    octet: u8,
    data_dir: &std::path::Path,
    args: Vec<String>,
    via: &test_support::ServerProcess,
) -> anyhow::Result<test_support::ServerProcess> {
    let mut server = test_support::ServerProcess::new(
        std::net::Ipv4Addr::new(127, 0, 0, octet),
        data_dir,
        args,
    )?;
    server.spawn()?;
    let http = server.http();
    wait_until("the new server's API to answer", Duration::from_secs(20), || {
        let http = http.clone();
        async move { matches!(http.get("/v1/status/leader?stale").await, Ok(r) if r.status == 200) }
    })
    .await?;
    let reply = http
        .request(
            Method::PUT,
            &format!("/v1/agent/join/{}", via.gossip_addr()),
            "",
        )
        .await?;
    anyhow::ensure!(reply.status == 200, "join failed: {reply:?}");
    Ok(server)
}
