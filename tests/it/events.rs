//! User events and the gossip keyring across real agents: events reach the agents their
//! filters name, `/v1/event/list` blocks on Consul's index, and a key rotation (install, use,
//! remove) through one agent reaches every agent, survives a restart, and never splits the pool.

use std::net::Ipv4Addr;

use serde_json::{json, Value};
use test_support::{Http, Method, ServerProcess};

use crate::catalog::{instances, wait_json};

/// Base64 of 32 bytes of `A`, then of `B`: test keys.
const KEY_1: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_2: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn names(events: &Value) -> Vec<String> {
    events
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["Name"].as_str().map(str::to_owned))
        .collect()
}

async fn all_alive(agents: &[&Http], n: usize) -> anyhow::Result<()> {
    for http in agents {
        wait_json(http, "/v1/agent/members", "every member alive", |v| {
            instances(v) == n
                && v.as_array()
                    .is_some_and(|m| m.iter().all(|m| m["Status"] == 1))
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_their_agents_and_keys_rotate_everywhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let encrypt = ["-encrypt".to_owned(), KEY_1.to_owned()];
    let telemetry = dir.path().join("telemetry.json");
    std::fs::write(
        &telemetry,
        r#"{"telemetry": {"prometheus_retention_time": "60s"}}"#,
    )?;
    let mut args = vec!["-bootstrap".to_owned(), "-config-file".to_owned()];
    args.push(telemetry.display().to_string());
    args.extend(encrypt.clone());
    let mut server = ServerProcess::new(Ipv4Addr::new(127, 0, 0, 80), &dir.path().join("s"), args)?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let mut clients = Vec::new();
    for octet in [81u8, 82] {
        let ip = Ipv4Addr::new(127, 0, 0, octet);
        let mut client = ServerProcess::client(
            ip,
            &dir.path().join(format!("c{octet}")),
            &[server.gossip_addr()],
        )?;
        client.push_args(encrypt.clone());
        client.spawn()?;
        client.wait_for_leader().await?;
        clients.push(client);
    }
    let (s, a, b) = (server.http(), clients[0].http(), clients[1].http());
    all_alive(&[&s, &a, &b], 3).await?;
    let reply = a
        .put(
            "/v1/agent/service/register",
            json!({"Name": "web", "Port": 80, "Tags": ["blue"]}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Prometheus output where telemetry asks for it, Consul's 415 elsewhere.
    let scrape = s.get("/v1/agent/metrics?format=prometheus").await?;
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        scrape.body.contains("\nmesh_gossip_members_alive 3\n"),
        "{}",
        scrape.body
    );
    assert_eq!(
        a.get("/v1/agent/metrics?format=prometheus").await?.status,
        415
    );

    // Filtered: only the agent running a blue web keeps it.
    let reply = b
        .put("/v1/event/fire/deploy?service=^web$&tag=blu", "v2")
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fired = reply.json()?;
    assert_eq!(fired["Name"], "deploy");
    assert_eq!(fired["Payload"], "djI=");
    assert_eq!(fired["ServiceFilter"], "^web$");
    assert_eq!(fired["Version"], 1);
    let listed = wait_json(
        &a,
        "/v1/event/list",
        "the deploy event on web's agent",
        |v| names(v) == ["deploy"],
    )
    .await?;
    assert_eq!(listed[0]["ID"], fired["ID"]);
    assert_eq!(listed[0]["Payload"], "djI=");

    // Unfiltered, fired on the server: everyone keeps it, and a blocked list wakes.
    let reply = b.get("/v1/event/list").await?;
    let index = reply.header("X-Consul-Index").unwrap_or("0").to_owned();
    assert_eq!(reply.json()?, json!([]), "b runs no web");
    assert_eq!(index, "1", "an empty list has index 1");
    let watcher = {
        let b = b.clone();
        tokio::spawn(async move {
            b.get(&format!("/v1/event/list?index={index}&wait=30s"))
                .await
        })
    };
    let reply = s.put("/v1/event/fire/restart", "").await?;
    assert_eq!(reply.json()?["Payload"], Value::Null, "no payload is null");
    let woke = tokio::time::timeout(std::time::Duration::from_secs(20), watcher).await???;
    assert_eq!(names(&woke.json()?), ["restart"]);
    assert_ne!(woke.header("X-Consul-Index"), Some("1"));
    wait_json(&a, "/v1/event/list", "both events on a", |v| {
        names(v) == ["deploy", "restart"]
    })
    .await?;
    let only = a.get("/v1/event/list?name=restart").await?.json()?;
    assert_eq!(names(&only), ["restart"]);

    // Consul's refusals.
    let reply = a.put("/v1/event/fire/x?tag=blue", "").await?;
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.body,
        "Cannot provide tag filter without service filter"
    );
    let reply = a.put("/v1/event/fire/x", vec![b'x'; 600]).await?;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("512"), "{}", reply.body);
    let reply = a.put("/v1/event/fire/", "").await?;
    assert_eq!((reply.status, reply.body.as_str()), (400, "Missing name"));

    // Key rotation through one client reaches every agent.
    let listing = wait_json(&b, "/v1/operator/keyring", "the keyring of three", |v| {
        v[0]["NumNodes"] == 3 && v[0]["Keys"][KEY_1] == 3
    })
    .await?;
    assert_eq!(listing[0]["PrimaryKeys"], json!({ KEY_1: 3 }));
    assert_eq!(listing[0]["WAN"], false);
    let keyring = |method: Method, key: &str| {
        let b = b.clone();
        let body = json!({ "Key": key }).to_string();
        async move { b.request(method, "/v1/operator/keyring", body).await }
    };
    let reply = keyring(Method::POST, KEY_2).await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    let reply = keyring(Method::PUT, KEY_2).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = keyring(Method::DELETE, KEY_2).await?;
    assert_eq!(reply.status, 500, "the primary key cannot be removed");
    assert!(
        reply.body.contains("3/3 nodes reported failure"),
        "{}",
        reply.body
    );
    let reply = keyring(Method::DELETE, KEY_1).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listing = s.get("/v1/operator/keyring").await?.json()?;
    assert_eq!(listing[0]["Keys"], json!({ KEY_2: 3 }), "{listing}");
    assert_eq!(listing[0]["PrimaryKeys"], json!({ KEY_2: 3 }));
    let local = a.get("/v1/operator/keyring?local-only").await?.json()?;
    assert_eq!(local[0]["NumNodes"], 1);
    let reply = a.put("/v1/event/fire/after-rotation", "").await?;
    assert_eq!(reply.status, 200);
    wait_json(
        &s,
        "/v1/event/list?name=after-rotation",
        "gossip on the new key",
        |v| instances(v) == 1,
    )
    .await?;
    let reply = b
        .request(
            Method::POST,
            "/v1/operator/keyring",
            json!({"Key": "short"}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 500);
    assert!(reply.body.starts_with("Invalid key: "), "{}", reply.body);

    // The operator commands say the same.
    let cli = |args: &[&str]| -> anyhow::Result<(i32, String)> {
        let mut cmd = std::process::Command::new(test_support::binary("mesh-client")?);
        cmd.args(args).args(["-http-addr", &clients[1].http_addr()]);
        test_support::run_command_to_exit(cmd, std::time::Duration::from_secs(30))
    };
    let (code, out) = cli(&["members"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Node "), "{out}");
    assert_eq!(out.matches("  alive  ").count(), 3, "{out}");
    assert_eq!(out.matches("  server  ").count(), 1, "{out}");
    let (code, out) = cli(&["keyring", "-list"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("  {KEY_2} [3/3] (primary)")), "{out}");
    let (code, out) = cli(&["keyring", "-remove", KEY_2])?;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Removing the primary key is not allowed"),
        "{out}"
    );

    // A restarted agent keeps the rotated keyring (its data directory wins over -encrypt,
    // which still names the removed key) and rejoins.
    clients[0].restart().await?;
    all_alive(&[&s, &a, &b], 3).await?;
    let local = a.get("/v1/operator/keyring?local-only").await?.json()?;
    assert_eq!(local[0]["Keys"], json!({ KEY_2: 1 }), "{local}");
    Ok(())
}

/// `mesh-client watch -type event -name NAME HANDLER`: the handler runs once per new event with
/// only the events it has not seen on stdin (Consul's event watch), and other names never wake
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_watch_hands_its_handler_only_new_events() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::new(
        Ipv4Addr::new(127, 0, 0, 83),
        &dir.path().join("s"),
        vec!["-bootstrap".into()],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let http = server.http();
    let fire = |name: &str, payload: &str| {
        let (http, path) = (http.clone(), format!("/v1/event/fire/{name}"));
        let payload = payload.to_owned();
        async move {
            let reply = http.put(&path, payload).await?;
            anyhow::ensure!(reply.status == 200, "{path}: {}", reply.body);
            anyhow::Ok(())
        }
    };
    // Fired before the watch starts: the first run hands it over, as Consul's does.
    fire("deploy", "v1").await?;

    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs)?;
    // Each run of the handler keeps its stdin in its own file.
    let handler = format!("cat > {}/$(date +%s%N)", runs.display());
    let mut watch = tokio::process::Command::new(test_support::binary("mesh-client")?)
        .args(["watch", "-http-addr", &server.http_addr()])
        .args(["-type", "event", "-name", "deploy", &handler])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let soon = std::time::Duration::from_secs(30);
    test_support::wait_until("the handler's first run", soon, || {
        std::future::ready(!handed_over(&runs).is_empty())
    })
    .await?;
    let first = handed_over(&runs);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(names(&first[0]), ["deploy"]);

    fire("other", "x").await?;
    fire("deploy", "v2").await?;
    test_support::wait_until("the handler's second run", soon, || {
        std::future::ready(handed_over(&runs).len() >= 2)
    })
    .await?;
    let runs_now = handed_over(&runs);
    assert_eq!(
        runs_now.len(),
        2,
        "one more run, for the new deploy only: {runs_now:?}"
    );
    let second = &runs_now[1];
    assert_eq!(names(second), ["deploy"], "{second}");
    let payload = second[0]["Payload"].as_str().unwrap_or_default();
    assert_eq!(
        payload, "djI=",
        "only the new event (base64 of v2): {second}"
    );
    watch.start_kill()?;
    watch.wait().await?;
    Ok(())
}

/// What the watch's handler runs wrote, oldest first: one JSON list per run, counted once the
/// run wrote all of it.
fn handed_over(runs: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| serde_json::from_slice(&std::fs::read(f).ok()?).ok())
        .collect()
}
