//! The gossip pool over real processes on loopback (127.0.0.60 to 127.0.0.70): a crashed agent
//! is seen as failed everywhere and its services leave `?passing`, and comes back when it
//! restarts; a pause shorter than the suspicion timeout raises no false alarm; a graceful leave
//! is recorded as left and deregisters the node, and SIGTERM leaves as `leave_on_terminate` says;
//! an agent with the wrong gossip key stays out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::faults::{bounded, Stopped};
use test_support::{wait_until, Cluster, Http, ServerProcess};

/// serf's member status codes, as `/v1/agent/members` reports them.
const ALIVE: u64 = 1;
const LEFT: u64 = 3;
const FAILED: u64 = 4;

/// Bound for the pool to form or to agree on a change. Detection takes about 2 s; this leaves
/// room for a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(30);

/// The shortest time in which a pool of 5 can declare a member failed, from the gossip defaults
/// (crates/gossip/src/config.rs): `suspicion_mult * max(1, log10(n)) * probe_period` =
/// 1.875 * max(1, log10(5) = 0.70) * 400 ms = 750 ms. It is the floor: it applies only once another
/// member confirms the suspicion (a lone suspecter waits `suspicion_max_mult` = 6 times longer,
/// 4.5 s), and a suspicion is only raised after a probe of the member went unanswered for the
/// 200 ms probe timeout and the indirect probes to the end of its 400 ms probe period. So a
/// member frozen for less than 750 ms must never be declared failed by anyone.
const MIN_SUSPICION: Duration = Duration::from_millis(750);

/// A third of [`MIN_SUSPICION`]: clearly shorter, yet longer than a probe timeout (200 ms), so
/// that probes of the frozen member do go unanswered and suspicions may well be raised.
const PAUSE: Duration = Duration::from_millis(250);

/// After the pause, watch for the longest an unconfirmed suspicion raised during it could last
/// (6 * 750 ms = 4.5 s), plus margin.
const WATCH_AFTER_PAUSE: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_agents_detect_a_crash_and_recover() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 60).await?;
    // Each client is given one server's gossip address only.
    let join = [cluster.servers[0].gossip_addr()];
    let mut victim = start_client(63, &dir.path().join("client-63"), &join).await?;
    let other = start_client(64, &dir.path().join("client-64"), &join).await?;
    let everyone: Vec<&ServerProcess> = cluster.servers.iter().chain([&victim, &other]).collect();
    wait_pool_alive(&everyone).await?;

    // Each client learned all three servers through gossip, and forwards to them.
    let server_names: Vec<String> = cluster.servers.iter().map(|s| s.node_name()).collect();
    for client in [&victim, &other] {
        let consul: Vec<String> = members(&client.http())
            .await?
            .iter()
            .filter(|m| m["Tags"]["role"] == "consul")
            .filter_map(|m| m["Name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(consul, server_names, "servers on {}", client.node_name());
        let reply = client
            .http()
            .put("/v1/kv/gossip/written-by", client.node_name())
            .await?;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "true"),
            "KV write through {}",
            client.node_name()
        );
    }
    let read = cluster.servers[1]
        .http()
        .get("/v1/kv/gossip/written-by?raw")
        .await?;
    assert_eq!((read.status, read.body.as_str()), (200, "node-64"));

    let reply = victim
        .http()
        .put(
            "/v1/agent/service/register",
            json!({"Name": "web", "Port": 80}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let server = cluster.servers[0].http();
    wait_json(
        &server,
        "/v1/health/service/web?passing",
        "web passing",
        |v| instances(v) == 1,
    )
    .await?;

    // kill -9: every other agent declares it failed, and the leader marks serfHealth critical.
    let crashed = victim.node_name();
    victim.kill9()?;
    let killed_at = Instant::now();
    let survivors: Vec<&ServerProcess> = cluster.servers.iter().chain([&other]).collect();
    wait_status_everywhere(&survivors, &crashed, FAILED).await?;
    eprintln!(
        "five_agents: a kill -9 was seen as failed by all 4 others after {:?}",
        killed_at.elapsed()
    );
    let rows = wait_json(
        &server,
        "/v1/health/service/web",
        "serfHealth critical",
        |v| check_status(v, "serfHealth") == "critical",
    )
    .await?;
    assert_eq!(rows[0]["Node"]["Node"], crashed.as_str(), "{rows}");
    let passing = wait_json(
        &server,
        "/v1/health/service/web?passing",
        "web out of ?passing",
        |v| instances(v) == 0,
    )
    .await?;
    assert_eq!(passing, json!([]));
    let via_client = other.http().get("/v1/health/service/web?passing").await?;
    assert_eq!(via_client.json()?, json!([]), "?passing through the client");

    // Restarted on the same data directory, it is alive everywhere and its service back.
    victim.restart().await?;
    let restarted_at = Instant::now();
    let everyone: Vec<&ServerProcess> = cluster.servers.iter().chain([&victim, &other]).collect();
    wait_pool_alive(&everyone).await?;
    eprintln!(
        "five_agents: the restarted agent was alive on all others {:?} after it knew a leader",
        restarted_at.elapsed()
    );
    let rows = wait_json(
        &server,
        "/v1/health/service/web?passing",
        "web back in ?passing",
        |v| instances(v) == 1,
    )
    .await?;
    assert_eq!(rows[0]["Node"]["Node"], crashed.as_str(), "{rows}");
    assert_eq!(check_status(&rows, "serfHealth"), "passing", "{rows}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pause_is_not_a_failure() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), 3, 65).await?;
    let join = [cluster.servers[1].gossip_addr()];
    let paused = start_client(68, &dir.path().join("client-68"), &join).await?;
    let mut leaver = start_client(69, &dir.path().join("client-69"), &join).await?;
    let everyone: Vec<&ServerProcess> = cluster.servers.iter().chain([&paused, &leaver]).collect();
    wait_pool_alive(&everyone).await?;

    // Every ~50 ms, from before the pause until well after it, ask every other agent how it
    // sees the paused one; anything but alive, even once, is a false failure.
    let name = paused.node_name();
    let watchers: Vec<(String, Http)> = cluster
        .servers
        .iter()
        .chain([&leaver])
        .map(|a| (a.node_name(), a.http()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn(watch_status(
        watchers,
        name.clone(),
        Instant::now(),
        stop.clone(),
    ));
    // Let the watcher take a baseline first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = paused.pid().expect("the client runs");
    let frozen_at = Instant::now();
    // Declared after `paused`: if the test fails, the guard continues the process first.
    let stopped = Stopped::stop(pid)?;
    tokio::time::sleep(PAUSE).await;
    stopped.resume()?;
    let frozen_for = frozen_at.elapsed();
    tokio::time::sleep(WATCH_AFTER_PAUSE).await;
    stop.store(true, Ordering::SeqCst);
    let watched = watch.await?;

    eprintln!(
        "short_pause: frozen for {frozen_for:?}; {} rounds of 4 observations, {} not alive",
        watched.rounds,
        watched.bad.len()
    );
    anyhow::ensure!(
        frozen_for < MIN_SUSPICION,
        "the pause overran to {frozen_for:?}, not clearly below the {MIN_SUSPICION:?} minimum suspicion"
    );
    assert!(
        watched.bad.is_empty(),
        "{name} was frozen for {frozen_for:?} (< {MIN_SUSPICION:?}) yet reported as not alive: {:#?}\n{}",
        watched.bad,
        logs(&everyone)
    );
    // About 6.5 s at 50 ms per round even on a slow machine: the watcher really was watching.
    assert!(watched.rounds >= 30, "only {} rounds", watched.rounds);
    for agent in &everyone {
        assert_eq!(
            status_on(&agent.http(), &name).await?,
            Some(ALIVE),
            "{name} on {}",
            agent.node_name()
        );
    }

    // A graceful leave: left (not failed) everywhere, and out of the catalog.
    let left = leaver.node_name();
    let reply = bounded(
        "PUT /v1/agent/leave",
        SOON,
        leaver.http().put("/v1/agent/leave", ""),
    )
    .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stayed: Vec<&ServerProcess> = cluster.servers.iter().chain([&paused]).collect();
    wait_status_everywhere(&stayed, &left, LEFT).await?;
    for server in &cluster.servers {
        wait_json(
            &server.http(),
            "/v1/catalog/nodes?stale",
            "the node that left to leave the catalog",
            |v| {
                let names = node_names(v);
                names.len() == 4 && !names.contains(&left)
            },
        )
        .await?;
    }
    wait_until("the agent that left to exit", SOON, || {
        std::future::ready(leaver.has_exited().unwrap_or(false))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_gossip_key_cannot_join() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (key, wrong_key) = (random_gossip_key()?, random_gossip_key()?);
    assert_ne!(key, wrong_key);
    // One loopback address for all four agents, each on its own ports under its own name.
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 70);

    let mut server = ServerProcess::new(
        ip,
        &dir.path().join("server"),
        vec!["-bootstrap".into(), "-encrypt".into(), key.clone()],
    )?;
    server.set_node_name("keyed-server");
    server.spawn()?;
    server.wait_for_leader().await?;
    let join = [server.gossip_addr()];
    let keyed = start_named_client(&dir, "keyed-client", &join, &key).await?;
    wait_pool_alive(&[&server, &keyed]).await?;

    // The wrong key: its join datagrams reach the server, which cannot open them.
    let mut intruder = ServerProcess::client(ip, &dir.path().join("wrong-key-client"), &join)?;
    intruder.set_node_name("wrong-key-client");
    intruder.push_args(["-encrypt", wrong_key.as_str()]);
    intruder.spawn()?;
    let intruder_http = intruder.http();
    wait_until("the wrong-key agent to answer HTTP", SOON, || {
        let http = intruder_http.clone();
        async move { members(&http).await.is_ok() }
    })
    .await?;
    const WARNING: &str =
        "dropping gossip datagrams that fail to decrypt; is the gossip key the same everywhere?";
    wait_until("the decrypt warning in a log", SOON, || {
        let seen = server.log_text().contains(WARNING) || intruder.log_text().contains(WARNING);
        std::future::ready(seen)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", logs(&[&server, &intruder])))?;

    // An agent with the right key joins fine meanwhile.
    let late = start_named_client(&dir, "late-keyed-client", &join, &key).await?;
    let pool = [&server, &keyed, &late];
    wait_pool_alive(&pool).await?;

    // For a few seconds (its retry_join keeps trying every 2 s): the intruder sees nobody but
    // itself, and nobody lists it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let seen = member_names(&members(&intruder_http).await?);
        assert_eq!(seen, ["wrong-key-client"], "the wrong-key agent's members");
        for agent in pool {
            let names = member_names(&members(&agent.http()).await?);
            assert!(
                !names.iter().any(|n| n == "wrong-key-client"),
                "{} lists the wrong-key agent: {names:?}",
                agent.node_name()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the three keyed agents still agree with each other.
    wait_pool_alive(&pool).await?;
    Ok(())
}

/// On SIGTERM a client agent leaves (Consul's `leave_on_terminate` defaults to true on
/// clients), so it is recorded as left and its node leaves the catalog; with
/// `leave_on_terminate = false` it just stops, and the pool declares it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_as_configured() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 70);
    let mut server = ServerProcess::new(ip, &dir.path().join("server"), vec!["-bootstrap".into()])?;
    server.set_node_name("sigterm-server");
    server.spawn()?;
    server.wait_for_leader().await?;
    let join = [server.gossip_addr()];
    let start = |name: &'static str, extra: Vec<String>| {
        let dir = dir.path().join(name);
        let join = join.clone();
        async move {
            let mut client = ServerProcess::client(ip, &dir, &join)?;
            client.set_node_name(name);
            client.push_args(extra);
            client.spawn()?;
            client.wait_for_leader().await?;
            anyhow::Ok(client)
        }
    };
    let mut leaving = start("sigterm-leaves", Vec::new()).await?;
    let stays = dir.path().join("stays.json");
    std::fs::write(&stays, r#"{"leave_on_terminate": false}"#)?;
    let mut staying = start(
        "sigterm-stays",
        vec!["-config-file".into(), stays.display().to_string()],
    )
    .await?;
    wait_pool_alive(&[&server, &leaving, &staying]).await?;

    let status = leaving.terminate(SOON).await?;
    assert!(status.success(), "a clean exit after leaving, got {status}");
    wait_status_everywhere(&[&server], "sigterm-leaves", LEFT).await?;
    wait_json(
        &server.http(),
        "/v1/catalog/nodes",
        "the client that left on SIGTERM to leave the catalog",
        |v| !node_names(v).iter().any(|n| n == "sigterm-leaves"),
    )
    .await?;

    let status = staying.terminate(SOON).await?;
    assert!(status.success(), "a clean exit, got {status}");
    wait_status_everywhere(&[&server], "sigterm-stays", FAILED).await?;
    let nodes = server.http().get("/v1/catalog/nodes").await?.json()?;
    assert!(
        node_names(&nodes).iter().any(|n| n == "sigterm-stays"),
        "a client that did not leave stays in the catalog (failed): {nodes}"
    );
    Ok(())
}

// ---- helpers -----------------------------------------------------------------------------------

/// Starts a client agent on 127.0.0.`octet` joining through `join`, and waits until it knows a
/// leader.
async fn start_client(
    octet: u8,
    data_dir: &std::path::Path,
    join: &[String],
) -> anyhow::Result<ServerProcess> {
    let ip = std::net::Ipv4Addr::new(127, 0, 0, octet);
    let mut client = ServerProcess::client(ip, data_dir, join)?;
    client.spawn()?;
    client.wait_for_leader().await?;
    Ok(client)
}

/// Starts a client agent named `name` on 127.0.0.70 with gossip key `key`, and waits until it
/// knows a leader.
async fn start_named_client(
    dir: &tempfile::TempDir,
    name: &str,
    join: &[String],
    key: &str,
) -> anyhow::Result<ServerProcess> {
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 70);
    let mut client = ServerProcess::client(ip, &dir.path().join(name), join)?;
    client.set_node_name(name);
    client.push_args(["-encrypt", key]);
    client.spawn()?;
    client.wait_for_leader().await?;
    Ok(client)
}

/// `GET /v1/agent/members` on one agent, bounded.
async fn members(http: &Http) -> anyhow::Result<Vec<Value>> {
    let reply = bounded(
        "GET /v1/agent/members",
        Duration::from_secs(5),
        http.get("/v1/agent/members"),
    )
    .await?;
    anyhow::ensure!(reply.status == 200, "members: {reply:?}");
    match reply.json()? {
        Value::Array(list) => Ok(list),
        other => anyhow::bail!("members is not a list: {other}"),
    }
}

fn member_names(members: &[Value]) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect()
}

/// The status an agent reports for `node`, or `None` if it does not list it.
async fn status_on(http: &Http, node: &str) -> anyhow::Result<Option<u64>> {
    Ok(members(http)
        .await?
        .iter()
        .find(|m| m["Name"] == node)
        .and_then(|m| m["Status"].as_u64()))
}

/// Every agent's view: name to (member name to status), or the error asking it.
async fn views(
    agents: &[&ServerProcess],
) -> BTreeMap<String, Result<BTreeMap<String, u64>, String>> {
    let mut all = BTreeMap::new();
    for agent in agents {
        let view = match members(&agent.http()).await {
            Ok(list) => Ok(list
                .iter()
                .filter_map(|m| Some((m["Name"].as_str()?.to_owned(), m["Status"].as_u64()?)))
                .collect()),
            Err(err) => Err(err.to_string()),
        };
        all.insert(agent.node_name(), view);
    }
    all
}

/// Waits until every agent's view satisfies `holds`; the error shows the last views.
async fn wait_views(
    agents: &[&ServerProcess],
    what: &str,
    holds: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> anyhow::Result<()> {
    let last = Arc::new(Mutex::new(BTreeMap::new()));
    let agreed = wait_until(what, SOON, || {
        let last = last.clone();
        let holds = &holds;
        async move {
            let all = views(agents).await;
            let ok = all.values().all(|v| v.as_ref().is_ok_and(holds));
            *last.lock().expect("views") = all;
            ok
        }
    })
    .await;
    agreed.map_err(|e| {
        let last = last.lock().expect("views");
        anyhow::anyhow!("{e}; last views: {last:#?}\n{}", logs(agents))
    })
}

/// Waits until each of `agents` lists exactly `agents`, all alive.
async fn wait_pool_alive(agents: &[&ServerProcess]) -> anyhow::Result<()> {
    let names: Vec<String> = agents.iter().map(|a| a.node_name()).collect();
    let what = format!("every agent to list {names:?} alive");
    wait_views(agents, &what, |view| {
        view.len() == names.len() && names.iter().all(|n| view.get(n) == Some(&ALIVE))
    })
    .await
}

/// Waits until every one of `agents` reports `node` with `status`.
async fn wait_status_everywhere(
    agents: &[&ServerProcess],
    node: &str,
    status: u64,
) -> anyhow::Result<()> {
    let what = format!("every agent to report {node} with status {status}");
    wait_views(agents, &what, |view| view.get(node) == Some(&status)).await
}

/// What [`watch_status`] saw.
#[derive(Debug, Default)]
struct Watched {
    rounds: usize,
    /// (time since the watch started, agent, status or error) for every non-alive answer.
    bad: Vec<(Duration, String, String)>,
}

/// Until `stop`, asks every agent in `watchers` for `node`'s status every ~50 ms and records
/// every answer other than alive (an unlisted node or a failed request included).
async fn watch_status(
    watchers: Vec<(String, Http)>,
    node: String,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Watched {
    let mut watched = Watched::default();
    while !stop.load(Ordering::SeqCst) {
        let answers =
            futures::future::join_all(watchers.iter().map(|(_, http)| status_on(http, &node)))
                .await;
        for ((agent, _), answer) in watchers.iter().zip(answers) {
            let bad = match answer {
                Ok(Some(ALIVE)) => continue,
                Ok(Some(status)) => format!("status {status}"),
                Ok(None) => "not listed".to_owned(),
                Err(err) => format!("error: {err}"),
            };
            watched.bad.push((started.elapsed(), agent.clone(), bad));
        }
        watched.rounds += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watched
}

/// Waits until `path` on `http` answers JSON for which `holds` is true, and returns it.
async fn wait_json(
    http: &Http,
    path: &str,
    what: &str,
    holds: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    test_support::wait_json(http, path, what, SOON, holds).await
}

fn instances(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn node_names(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["Node"].as_str().map(str::to_owned))
        .collect()
}

/// The status of check `id` in the first row of a `/v1/health/service` answer.
fn check_status(v: &Value, id: &str) -> Value {
    v[0]["Checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["CheckID"] == id))
        .map_or(Value::Null, |c| c["Status"].clone())
}

/// Every agent's log, for failure messages.
fn logs(agents: &[&ServerProcess]) -> String {
    agents
        .iter()
        .map(|a| format!("--- {} ---\n{}", a.node_name(), a.log_text()))
        .collect()
}

/// A fresh gossip key, from `mesh-client keygen`.
fn random_gossip_key() -> anyhow::Result<String> {
    let mut keygen = std::process::Command::new(test_support::binary("mesh-client")?);
    keygen.arg("keygen");
    let (code, out) = test_support::run_command_to_exit(keygen, Duration::from_secs(30))?;
    anyhow::ensure!(code == 0, "mesh-client keygen failed: {out}");
    Ok(out.trim().to_owned())
}
