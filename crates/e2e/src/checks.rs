//! The checks the story makes and the helpers they share: bounded waits, the members table,
//! DNS answers, catalog registrations and health, and traffic through the sidecars.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use serde_json::{json, Value};
use test_support::dns::question;
use test_support::in_netns::NetnsHttp;
use tokio::time::Instant;

use crate::cli::Cli;
use crate::dc::{Agent, CliAddr, Endpoint};
use crate::steps::Transcript;

/// Pause between attempts of a condition.
pub(crate) const RETRY: Duration = Duration::from_millis(100);

pub(crate) const SERVERS: [&str; 3] = ["server-1", "server-2", "server-3"];
pub(crate) const CLIENTS: [&str; 3] = ["client-1", "client-2", "client-3"];
pub(crate) const SIDECARS: [&str; 2] = ["sidecar-db", "sidecar-web"];
/// The counter db's sidecar keeps of connections from web it refused.
pub(crate) const DENIALS: &str =
    r#"mesh_sidecar_authorization_denials_total{service="db",source="web"}"#;

/// Retries `check` until it succeeds or `bound` passes; on timeout the error shows the last
/// failure. Returns the value and how many attempts it took; a wait that needed more than one
/// goes into the transcript, with its first failure.
pub(crate) async fn eventually<T, F, Fut>(
    log: &Transcript,
    what: &str,
    bound: Duration,
    mut check: F,
) -> anyhow::Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let deadline = started + bound;
    let mut attempts = 0;
    let mut first = None;
    let mut previous: Option<String> = None;
    loop {
        attempts += 1;
        let last = match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(value)) => {
                if let Some(first) = first {
                    log.note(&format!(
                        "(waited {:.1}s for {what}, {attempts} attempts; the first failed: {first})",
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok((value, attempts));
            }
            Ok(Err(err)) => err,
            Err(_) => anyhow::anyhow!(
                "the last attempt was still running when the bound passed; the one before: {}",
                previous.as_deref().unwrap_or("none")
            ),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {bound:?} ({attempts} attempts) waiting for {what}; last: {last:#}");
        }
        let last = format!("{last:#}");
        first.get_or_insert_with(|| last.clone());
        previous = Some(last);
        tokio::time::sleep(RETRY).await;
    }
}

/// Waits until `process` (a server, or a client agent through its servers) knows a leader;
/// fails at once if it exits.
pub(crate) async fn ready(process: &mut Agent, name: &str, bound: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    let http = process.http();
    loop {
        if process.has_exited()? {
            bail!("{name} exited as it started");
        }
        if let Ok(reply) = http.get("/v1/status/leader?stale").await {
            if reply.status == 200 && reply.body.len() > 2 {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("{name} knew no leader within {bound:?}");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The leader's RPC address as `server` reports it (empty when it knows none).
pub(crate) async fn leader_of(server: &Agent) -> anyhow::Result<String> {
    let reply = server.http().get("/v1/status/leader").await?;
    ensure!(reply.status == 200, "/v1/status/leader: {reply:?}");
    Ok(reply.json()?.as_str().unwrap_or_default().to_owned())
}

/// The `(node, status, type)` rows of `mesh-client members`.
pub(crate) fn members(table: &str) -> Vec<(String, String, String)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            match cells.as_slice() {
                [node, _address, status, kind, ..] => {
                    Some(((*node).to_owned(), (*status).to_owned(), (*kind).to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

/// `mesh-client members` through `http` lists exactly these nodes, with these statuses.
pub(crate) async fn members_are(
    cli: &Cli,
    agent: &CliAddr,
    expected: &[(&str, &str)],
) -> anyhow::Result<()> {
    let table = cli.ok("members", Some(agent), &[]).await?;
    let found: BTreeSet<(String, String)> = members(&table)
        .into_iter()
        .map(|(node, status, _)| (node, status))
        .collect();
    let wanted: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(node, status)| ((*node).to_owned(), (*status).to_owned()))
        .collect();
    ensure!(found == wanted, "members:\n{table}");
    Ok(())
}

/// All six nodes alive.
pub(crate) const ALL_ALIVE: [(&str, &str); 6] = [
    ("server-1", "alive"),
    ("server-2", "alive"),
    ("server-3", "alive"),
    ("client-1", "alive"),
    ("client-2", "alive"),
    ("client-3", "alive"),
];

/// The A records of an answer, sorted.
pub(crate) fn addresses(answer: &Message) -> Vec<String> {
    let mut found: Vec<String> = answer
        .answers
        .iter()
        .chain(answer.additionals.iter())
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

/// An answer, shortly, for error messages.
pub(crate) fn shown(answer: &Message) -> String {
    let records: Vec<String> = answer
        .answers
        .iter()
        .chain(answer.additionals.iter())
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    format!(
        "{:?} [{}]",
        answer.metadata.response_code,
        records.join("; ")
    )
}

/// `name` (`<service>.service.mesh.` or `<service>.connect.mesh.`) resolves (type A, over
/// UDP) at the agent's `dns` to exactly `want`; if not, the error also shows what the agent's
/// HTTP API (`http`) reports as the service's healthy instances.
pub(crate) async fn resolves(
    dns: &Endpoint,
    http: &NetnsHttp,
    name: &str,
    want: Ipv4Addr,
) -> anyhow::Result<()> {
    let answer = dns.dns_udp(question(name, RecordType::A, None)?).await?;
    if addresses(&answer) == [want.to_string()] {
        return Ok(());
    }
    let mut labels = name.split('.');
    let (service, kind) = (
        labels.next().unwrap_or_default(),
        labels.next().unwrap_or_default(),
    );
    let path = format!("/v1/health/{kind}/{service}");
    let catalog = match http.get(&path).await.and_then(|reply| reply.json()) {
        Ok(entries) => instances(&entries),
        Err(err) => format!("({err:#})"),
    };
    bail!(
        "{name} answered {}, not {want}; {path} on the same agent: {catalog}",
        shown(&answer)
    )
}

/// `/v1/health/service/...` entries, shortly: `node address:port [check=status ...]`.
pub(crate) fn instances(entries: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let shown: Vec<String> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let checks: Vec<String> = entry["Checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}={}", text(&c["CheckID"]), text(&c["Status"])))
                .collect();
            format!(
                "{} {}:{} [{}]",
                text(&entry["Node"]["Node"]),
                text(&entry["Service"]["Address"]),
                entry["Service"]["Port"],
                checks.join(" ")
            )
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// The status of `node`'s `serfHealth` check as `server` reports it.
pub(crate) async fn serf_health(server: &Agent, node: &str) -> anyhow::Result<String> {
    let checks = server
        .http()
        .get(&format!("/v1/health/node/{node}"))
        .await?
        .json()?;
    let check = checks
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["CheckID"] == "serfHealth")
        .with_context(|| format!("no serfHealth check for {node}: {checks}"))?;
    Ok(check["Status"].as_str().unwrap_or_default().to_owned())
}

/// `node`'s serfHealth is `status` on every running server.
pub(crate) async fn serf_health_everywhere(
    servers: &[Agent],
    node: &str,
    status: &str,
) -> anyhow::Result<()> {
    for (server, name) in servers.iter().zip(SERVERS) {
        let found = serf_health(server, node).await?;
        ensure!(
            found == status,
            "{name} reports {node}'s serfHealth {found}"
        );
    }
    Ok(())
}

/// Registers service `name` at `app` on the agent `agent`, with a check on the application
/// and a sidecar service whose public listener is `public` (checked every second).
pub(crate) async fn register(
    agent: &NetnsHttp,
    name: &str,
    app: SocketAddr,
    check: Value,
    public: SocketAddr,
    upstreams: Value,
) -> anyhow::Result<()> {
    let body = json!({
        "Name": name, "Address": app.ip().to_string(), "Port": app.port(), "Check": check,
        "Connect": {"SidecarService": {
            "Address": public.ip().to_string(), "Port": public.port(),
            "Check": {"Name": "Connect Sidecar Listening", "TCP": public.to_string(), "Interval": "1s"},
            "Proxy": {
                "LocalServiceAddress": app.ip().to_string(), "LocalServicePort": app.port(),
                "Upstreams": upstreams,
            }
        }}
    });
    let reply = agent
        .put("/v1/agent/service/register", body.to_string())
        .await?;
    ensure!(reply.status == 200, "registering {name}: {reply:?}");
    Ok(())
}

/// One healthy instance of `service` (or its sidecar, with `connect`) is in the catalog, at
/// `address` on `node`.
pub(crate) async fn healthy(
    http: &NetnsHttp,
    service: &str,
    connect: bool,
    node: &str,
    address: SocketAddr,
) -> anyhow::Result<()> {
    let kind = if connect { "connect" } else { "service" };
    let list = http
        .get(&format!("/v1/health/{kind}/{service}?passing"))
        .await?
        .json()?;
    let entries = list.as_array().cloned().unwrap_or_default();
    ensure!(
        entries.len() == 1
            && entries[0]["Node"]["Node"] == node
            && entries[0]["Service"]["Address"] == address.ip().to_string().as_str()
            && entries[0]["Service"]["Port"] == address.port(),
        "healthy {kind} {service}: {list}"
    );
    Ok(())
}

/// The services the story registers, and the client agent each is registered on.
pub(crate) const REGISTERED: [(&str, &str); 4] = [
    ("db", "client-1"),
    ("db-sidecar-proxy", "client-1"),
    ("web", "client-2"),
    ("web-sidecar-proxy", "client-2"),
];

/// The `CreateIndex` of each of [`REGISTERED`] in `server`'s catalog (`stale`: its own copy).
pub(crate) async fn registrations(
    server: &Agent,
    stale: bool,
) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let mut found = BTreeMap::new();
    for (service, node) in REGISTERED {
        let query = if stale { "?stale" } else { "" };
        let list = server
            .http()
            .get(&format!("/v1/catalog/service/{service}{query}"))
            .await?
            .json()?;
        let entries = list.as_array().cloned().unwrap_or_default();
        let [entry] = entries.as_slice() else {
            bail!("{service} is not registered once in the catalog: {list}");
        };
        ensure!(
            entry["Node"] == node,
            "{service} is on {} rather than {node}",
            entry["Node"]
        );
        let index = entry["CreateIndex"].as_u64().context("no CreateIndex")?;
        found.insert(service, index);
    }
    Ok(found)
}

/// Every running server still holds the registrations made at the start, untouched: not
/// deregistered and registered again (which changes their `CreateIndex`), not missing.
pub(crate) async fn registrations_intact(
    servers: &[Agent],
    registered: &BTreeMap<&'static str, u64>,
) -> anyhow::Result<()> {
    for (server, name) in servers.iter().zip(SERVERS) {
        let lost = match registrations(server, true).await {
            Ok(found) if &found == registered => continue,
            Ok(found) => format!(
                "were deregistered and registered again: CreateIndex {found:?}, at the start \
                 {registered:?}"
            ),
            Err(err) => format!("are gone (at the start: {registered:?}): {err:#}"),
        };
        bail!(
            "on {name}, registrations made at the start {lost}; the nodes' CreateIndex now: {}",
            node_indexes(server).await
        );
    }
    Ok(())
}

/// `node:CreateIndex` of every node in `server`'s catalog: which nodes were registered anew.
pub(crate) async fn node_indexes(server: &Agent) -> String {
    let nodes = match server.http().get("/v1/catalog/nodes?stale").await {
        Ok(reply) => reply.json().unwrap_or_default(),
        Err(err) => return format!("({err:#})"),
    };
    let shown: Vec<String> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            format!(
                "{}:{}",
                n["Node"].as_str().unwrap_or_default(),
                n["CreateIndex"]
            )
        })
        .collect();
    shown.join(" ")
}

/// Exchanges from web to db through the sidecars, one new connection after another, counted
/// until stopped.
#[derive(Debug)]
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl Traffic {
    pub(crate) fn start(upstream: Endpoint) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    match reaches_db(&upstream).await {
                        Ok(()) => ok += 1,
                        Err(err) => failed.push(format!("{err:#}")),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (ok, failed)
            }
        });
        Traffic {
            stop,
            task: Some(task),
        }
    }

    /// Stops; how many exchanges went through, and the failures.
    pub(crate) async fn stop(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|err| (0, vec![format!("the traffic task failed: {err}")])),
            None => (0, Vec::new()),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One exchange through web's upstream listener (from inside web's host) must reach db.
pub(crate) async fn reaches_db(upstream: &Endpoint) -> anyhow::Result<()> {
    let name = upstream.echo_once("hello db").await?;
    ensure!(name == "db", "{name} answered instead of db");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_tables_parse() {
        let table = "Node      Address             Status  Type    Build  Protocol  DC   Partition  Segment\n\
                     server-1  127.0.9.1:40000     alive   server  1.0.0  2         dc1  default    <all>\n\
                     client-3  127.0.9.13:40001    failed  client  1.0.0  2         dc1  default    <default>\n";
        assert_eq!(
            members(table),
            [
                ("server-1".into(), "alive".into(), "server".into()),
                ("client-3".into(), "failed".into(), "client".into())
            ]
        );
    }
}
