//! The catalog end to end over real `mesh-server` processes: agent registrations reach every
//! server's catalog, TTL and HTTP checks drive health and `?passing`, registrations survive a
//! restart, and anti-entropy reverts edits made behind the agent's back.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::{Cluster, Http, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOON: Duration = Duration::from_secs(20);

/// Waits until `path` on `http` answers JSON for which `holds` is true, and returns it.
pub(crate) async fn wait_json(
    http: &Http,
    path: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    test_support::wait_json(http, path, what, SOON, holds).await
}

/// The status of check `id` in the first row of a `/v1/health/service` answer.
fn check_status(v: &Value, id: &str) -> Value {
    v[0]["Checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["CheckID"] == id))
        .map_or(Value::Null, |c| c["Status"].clone())
}

pub(crate) fn instances(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_on_any_agent_are_visible_through_every_server() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 111).await?;
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    let agent = cluster.servers[follower].http();
    let reply = agent
        .put(
            "/v1/agent/service/register",
            json!({"Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"], "Check": {"TTL": "30s"}}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Servers register themselves, and the registration reaches every server.
    for server in &cluster.servers {
        let http = server.http();
        wait_json(
            &http,
            "/v1/catalog/service/web?stale",
            "web in the catalog",
            |v| instances(v) == 1,
        )
        .await?;
        wait_json(
            &http,
            "/v1/catalog/service/consul?stale",
            "three servers as the consul service",
            |v| instances(v) == 3,
        )
        .await?;
    }
    // A new TTL check starts critical, so the instance is not passing until it reports.
    let any = cluster.servers[leader].http();
    let rows = any.get("/v1/health/service/web?passing").await?.json()?;
    assert_eq!(instances(&rows), 0, "{rows}");
    let reply = agent
        .put("/v1/agent/check/pass/service:web-1?note=ok", "")
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rows = wait_json(&any, "/v1/health/service/web?passing", "web passing", |v| {
        instances(v) == 1
    })
    .await?;
    assert_eq!(rows[0]["Service"]["Tags"], json!(["v1"]));
    assert_eq!(
        rows[0]["Checks"].as_array().map(Vec::len),
        Some(2),
        "serfHealth and the TTL check: {rows}"
    );

    // Failing drops it out of ?passing; passing brings it back.
    agent
        .put("/v1/agent/check/fail/service:web-1?note=broken", "")
        .await?;
    wait_json(
        &any,
        "/v1/health/service/web?passing",
        "web to drop out",
        |v| instances(v) == 0,
    )
    .await?;
    agent.put("/v1/agent/check/pass/service:web-1", "").await?;
    wait_json(
        &any,
        "/v1/health/service/web?passing",
        "web to come back",
        |v| instances(v) == 1,
    )
    .await?;

    // The TTL text clients match on to re-register.
    let reply = agent.put("/v1/agent/check/pass/nope", "").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "CheckID \"nope\" does not have associated TTL")
    );
    Ok(())
}

/// A one-route HTTP server whose status the test sets.
async fn health_endpoint(
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let code = status.load(std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                let body = format!("status {code}");
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok((format!("http://{addr}/health"), task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_restart_and_anti_entropy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.hcl");
    std::fs::write(&config, "ae_interval = \"1s\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let mut server =
        ServerProcess::start(&dir.path().join("data"), &["-config-file", &config]).await?;
    let http = server.http();
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
    let (url, _endpoint) = health_endpoint(status.clone()).await?;

    let reply = http
        .put(
            "/v1/agent/service/register",
            json!({"name": "api", "port": 9000, "tags": ["a"], "check": {"http": url, "interval": "1s"}}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rows = wait_json(
        &http,
        "/v1/health/service/api?passing",
        "the HTTP check to pass",
        |v| instances(v) == 1,
    )
    .await?;
    let output = rows[0]["Checks"][1]["Output"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        output.contains("200") && output.contains("status 200"),
        "{output}"
    );

    status.store(500, std::sync::atomic::Ordering::SeqCst);
    wait_json(
        &http,
        "/v1/health/service/api?passing",
        "a 500 to fail the check",
        |v| instances(v) == 0,
    )
    .await?;
    status.store(429, std::sync::atomic::Ordering::SeqCst);
    wait_json(&http, "/v1/health/checks/api", "a 429 to warn", |v| {
        v[0]["Status"] == "warning"
    })
    .await?;
    status.store(200, std::sync::atomic::Ordering::SeqCst);

    // An edit behind the agent's back is reverted; a catalog-only service on its node removed.
    let node = server.http().get("/v1/agent/self").await?.json()?["Config"]["NodeName"].clone();
    let edit = json!({"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": true, "Service": {"Service": "api", "Port": 9000, "Tags": ["hacked"]}});
    assert_eq!(
        http.put("/v1/catalog/register", edit.to_string())
            .await?
            .body,
        "true"
    );
    let rogue = json!({"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": true, "Service": {"Service": "rogue"}});
    assert_eq!(
        http.put("/v1/catalog/register", rogue.to_string())
            .await?
            .body,
        "true"
    );
    wait_json(
        &http,
        "/v1/catalog/service/api",
        "anti-entropy to restore the tags",
        |v| v[0]["ServiceTags"] == json!(["a"]),
    )
    .await?;
    wait_json(
        &http,
        "/v1/catalog/service/rogue",
        "anti-entropy to remove the rogue service",
        |v| instances(v) == 0,
    )
    .await?;

    // A restart keeps the agent's registrations.
    server.restart().await?;
    let http = server.http();
    let services = wait_json(
        &http,
        "/v1/agent/services",
        "the service to be restored",
        |v| v.get("api").is_some(),
    )
    .await?;
    assert_eq!(services["api"]["Tags"], json!(["a"]));
    wait_json(
        &http,
        "/v1/health/service/api?passing",
        "the restored check to pass",
        |v| instances(v) == 1,
    )
    .await?;

    // A reload picks up services added to the config files, over HTTP and on SIGHUP, and a
    // broken file is refused with Consul's 500 and changes nothing.
    std::fs::write(
        &config,
        "ae_interval = \"1s\"\nservice {\n  name = \"cache\"\n  port = 6379\n}\n",
    )?;
    let reply = http.put("/v1/agent/reload", "").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    wait_json(
        &http,
        "/v1/catalog/service/cache",
        "the reloaded service",
        |v| instances(v) == 1,
    )
    .await?;
    std::fs::write(
        &config,
        "ae_interval = \"1s\"\nservice {\n  port = 6379\n}\n",
    )?;
    let reply = http.put("/v1/agent/reload", "").await?;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.starts_with("Failed to reload configs: "),
        "{}",
        reply.body
    );
    std::fs::write(&config, "ae_interval = \"1s\"\n")?;
    let pid = server
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the server is running"))?;
    test_support::faults::signal(pid, "HUP")?;
    wait_json(
        &http,
        "/v1/catalog/service/cache",
        "SIGHUP to remove the service",
        |v| instances(v) == 0,
    )
    .await?;
    let services = http.get("/v1/agent/services").await?.json()?;
    assert!(
        services.get("api").is_some(),
        "API registrations stay: {services}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_registrations_get_consuls_400s_and_change_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await?;
    let http = server.http();
    let cases = [
        (json!({"Port": 1}), "Missing service name"),
        (json!({"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/"}}), "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
        (json!({"Name": "x", "Meta": {"consul-a": "b"}}), "Invalid Service Meta: Couldn't load metadata pair ('consul-a', 'b'): Key prefix 'consul-' is reserved for internal use"),
    ];
    for (body, text) in cases {
        let reply = http
            .put("/v1/agent/service/register", body.to_string())
            .await?;
        assert_eq!((reply.status, reply.body.as_str()), (400, text), "{body}");
    }
    let reply = http
        .put(
            "/v1/agent/check/register",
            json!({"Name": "c", "TTL": "5s", "ServiceID": "ghost"}).to_string(),
        )
        .await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, "ServiceID \"ghost\" does not exist")
    );
    assert_eq!(http.get("/v1/agent/services").await?.body, "{}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agents_register_discover_and_fail_over() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(dir.path(), 3, 114).await?;
    let servers: Vec<String> = cluster
        .servers
        .iter()
        .map(ServerProcess::gossip_addr)
        .collect();
    let mut clients = Vec::new();
    for (i, octet) in [117u8, 118].into_iter().enumerate() {
        let ip = std::net::Ipv4Addr::new(127, 0, 0, octet);
        let mut client =
            ServerProcess::client(ip, &dir.path().join(format!("client-{i}")), &servers)?;
        client.spawn()?;
        client.wait_for_leader().await?;
        clients.push(client);
    }
    let (a, b) = (clients[0].http(), clients[1].http());
    let reply = a
        .put(
            "/v1/agent/service/register",
            json!({"Name": "web", "Port": 80, "Check": {"CheckID": "web-ttl", "TTL": "1m", "Status": "passing"}}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    b.put(
        "/v1/agent/service/register",
        json!({"Name": "db", "Port": 5432}).to_string(),
    )
    .await?;

    // Every server, and the other client (forwarding), sees the healthy instance.
    for server in &cluster.servers {
        wait_json(
            &server.http(),
            "/v1/health/service/web?passing&stale",
            "web on every server",
            |v| instances(v) == 1,
        )
        .await?;
    }
    let rows = wait_json(
        &b,
        "/v1/health/service/web?passing",
        "web through the other client",
        |v| instances(v) == 1,
    )
    .await?;
    assert_eq!(rows[0]["Node"]["Node"], "node-117");
    let nodes = wait_json(
        &b,
        "/v1/catalog/nodes",
        "two clients and three servers",
        |v| instances(v) == 5,
    )
    .await?;
    assert_eq!(instances(&nodes), 5);

    // A blocking query through a client wakes for web, not for db.
    let reply = b.get("/v1/health/service/web").await?;
    let index: u64 = reply.header("X-Consul-Index").unwrap_or("0").parse()?;
    let watcher = {
        let b = b.clone();
        tokio::spawn(async move {
            b.get(&format!("/v1/health/service/web?index={index}&wait=30s"))
                .await
        })
    };
    b.put(
        "/v1/agent/service/register",
        json!({"Name": "db", "Port": 5432, "Tags": ["x"]}).to_string(),
    )
    .await?;
    wait_json(&b, "/v1/catalog/service/db", "db's change", |v| {
        v[0]["ServiceTags"] == json!(["x"])
    })
    .await?;
    assert!(
        !watcher.is_finished(),
        "a change to db woke a watcher of web"
    );
    a.put("/v1/agent/check/warn/web-ttl", "").await?;
    let woke = tokio::time::timeout(SOON, watcher)
        .await??
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Client nodes have no serfHealth check until gossip reconciles them.
    assert_eq!(
        check_status(&woke.json()?, "web-ttl"),
        "warning",
        "{}",
        woke.body
    );

    // An alias on b of web on a's node follows it through a blocking read on the servers.
    let reply = b
        .put(
            "/v1/agent/check/register",
            json!({"ID": "web-alias", "Name": "web alias", "AliasNode": "node-117", "AliasService": "web"}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let alias = |want: &'static str| move |v: &Value| v["web-alias"]["Status"] == want;
    wait_json(
        &b,
        "/v1/agent/checks",
        "the alias to see web's warning",
        alias("warning"),
    )
    .await?;

    // Lose the leader: the clients fail over and keep the catalog current.
    let leader = cluster.leader().await?;
    cluster.servers[leader].kill9()?;
    a.put("/v1/agent/check/fail/web-ttl", "").await?;
    let checks = wait_json(
        &b,
        "/v1/agent/checks",
        "the alias to follow web down",
        alias("critical"),
    )
    .await?;
    assert_eq!(
        checks["web-alias"]["Output"], r#"Aliased check "Service 'web' check" failing: "#,
        "{checks}"
    );
    let survivor = cluster.servers[(leader + 1) % 3].http();
    wait_json(
        &survivor,
        "/v1/health/service/web",
        "the failure to reach the surviving servers",
        |v| check_status(v, "web-ttl") == "critical",
    )
    .await?;
    wait_json(
        &b,
        "/v1/health/service/web?passing",
        "web out of ?passing through the other client",
        |v| instances(v) == 0,
    )
    .await?;

    let metrics = b.get("/v1/agent/metrics").await?.json()?;
    let services = metrics["Gauges"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["Name"] == "consul.agent.services"))
        .map(|g| g["Value"].clone());
    assert_eq!(services, Some(json!(1.0)), "{metrics}");

    // A client that leaves is deregistered and its process exits.
    let reply = b.put("/v1/agent/leave", "").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_json(
        &survivor,
        "/v1/catalog/node/node-118",
        "the leaving node to be deregistered",
        Value::is_null,
    )
    .await?;
    let leaver = &mut clients[1];
    let deadline = tokio::time::Instant::now() + SOON;
    while !leaver.has_exited()? {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the client did not exit after leaving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A restarted client keeps its registrations.
    clients[0].restart().await?;
    let services = wait_json(
        &clients[0].http(),
        "/v1/agent/services",
        "restored services",
        |v| v.get("web").is_some(),
    )
    .await?;
    assert_eq!(services["web"]["Port"], 80);
    Ok(())
}
