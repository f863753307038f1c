//! Quorum-loss recovery with `mesh-server -recover`: refusing when it could lose data, then
//! bringing a lone survivor back as a working datacenter with everything it had.

use std::time::Duration;

use test_support::{wait_until, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_survivor_recovers_the_datacenter() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 36).await?;
    let leader = cluster.leader().await?;
    let http = cluster.servers[leader].http();
    for i in 0..20 {
        assert_eq!(
            http.put(&format!("/v1/kv/r/{i:02}"), format!("v{i}"))
                .await?
                .body,
            "true"
        );
    }
    let before = http.get("/v1/kv/r/?recurse").await?.json()?;
    // Every server has applied everything before two of them are lost.
    for server in &cluster.servers {
        let http = server.http();
        wait_until(
            "a server to apply all writes",
            Duration::from_secs(20),
            || {
                let http = http.clone();
                async move {
                    matches!(http.get("/v1/kv/r/?recurse&stale").await,
                    Ok(r) if r.json().ok().and_then(|v| v.as_array().map(Vec::len)) == Some(20))
                }
            },
        )
        .await?;
    }

    let survivor = (leader + 1) % 3;
    let lost: Vec<usize> = (0..3).filter(|&i| i != survivor).collect();
    let lost_addrs: Vec<String> = lost
        .iter()
        .map(|&i| cluster.servers[i].rpc_addr())
        .collect();
    for &i in &lost {
        cluster.servers[i].kill9()?;
    }
    let status = cluster.servers[survivor]
        .terminate(Duration::from_secs(20))
        .await?;
    assert!(status.success());

    // The lost servers cannot be asked how far their logs go: refused without -recover-force.
    let mut refused_args = vec!["-recover"];
    for addr in &lost_addrs {
        refused_args.extend(["-survivor", addr.as_str()]);
    }
    let (code, out) =
        cluster.servers[survivor].run_to_exit(&refused_args, Duration::from_secs(30))?;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("recovery refused") && out.contains("cannot ask survivor"),
        "{out}"
    );

    let mut forced_args = refused_args.clone();
    forced_args.push("-recover-force");
    let (code, out) =
        cluster.servers[survivor].run_to_exit(&forced_args, Duration::from_secs(30))?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("as the only voter"), "{out}");

    cluster.servers[survivor].spawn()?;
    cluster.servers[survivor].wait_for_leader().await?;
    let http = cluster.servers[survivor].http();
    assert_eq!(
        http.get("/v1/kv/r/?recurse").await?.json()?,
        before,
        "nothing lost"
    );
    assert_eq!(http.put("/v1/kv/r/after", "ok").await?.body, "true");
    let config = http.get("/v1/operator/raft/configuration").await?.json()?;
    assert_eq!(
        config["Servers"].as_array().map(Vec::len),
        Some(1),
        "{config}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_refuses_a_survivor_with_less_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 39).await?;
    let leader = cluster.leader().await?;
    let behind = (leader + 1) % 3;
    let ahead = (leader + 2) % 3;
    let status = cluster.servers[behind]
        .terminate(Duration::from_secs(20))
        .await?;
    assert!(status.success());
    // The other two still form a majority and keep writing.
    let http = cluster.servers[leader].http();
    for i in 0..5 {
        assert_eq!(
            http.put(&format!("/v1/kv/later/{i}"), "x").await?.body,
            "true"
        );
    }
    let ahead_addr = cluster.servers[ahead].rpc_addr();
    let (code, out) = cluster.servers[behind].run_to_exit(
        &["-recover", "-survivor", &ahead_addr],
        Duration::from_secs(30),
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("has more log"), "{out}");
    Ok(())
}
