//! The story, step by step, on either layout of `dc`: servers `server-1`..`server-3`, client
//! agents `client-1`..`client-3`, `db`'s echo application and its sidecar with client-1,
//! `web`'s HTTP application, its sidecar and its upstream listener for `db` with client-2.
//! client-3 runs no application: DNS questions go to it, and it is the client agent the story
//! kills.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;
use test_support::dns::question;
use test_support::sidecar::{EchoApp, HttpApp};
use tokio::time::Instant;

use crate::checks::{
    addresses, eventually, healthy, leader_of, members, members_are, reaches_db, ready, register,
    registrations, registrations_intact, resolves, serf_health_everywhere, shown, Traffic,
    ALL_ALIVE, CLIENTS, DENIALS, SERVERS, SIDECARS,
};
use crate::cli::Cli;
use crate::dc::{Agent, CliAddr, Layout};
use crate::steps::Steps;

/// How long to wait and how much to repeat.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// The longest wait for any one condition (a leader, a health check, a DNS answer).
    bound: Duration,
    /// How long something must keep holding (a blocking read must stay blocked).
    hold: Duration,
    /// How many times a path is exercised once it works (KV writes, connections).
    rounds: usize,
}

impl Pace {
    pub(crate) fn new(short: bool) -> Pace {
        // The bound is only a ceiling, reached on failure: the same for both, so that a loaded
        // CI machine does not fail the short run.
        if short {
            Pace {
                bound: Duration::from_secs(60),
                hold: Duration::from_millis(300),
                rounds: 2,
            }
        } else {
            Pace {
                bound: Duration::from_secs(60),
                hold: Duration::from_secs(3),
                rounds: 20,
            }
        }
    }

    /// The bound of a whole step, made of a few waits.
    fn step(&self) -> Duration {
        self.bound * 4
    }
}

pub(crate) async fn run(
    steps: &mut Steps,
    layout: &Layout,
    client_bin: &Path,
    pace: Pace,
) -> anyhow::Result<()> {
    let work = steps.work().to_path_buf();
    let log = steps.transcript();
    let cli = Cli::new(client_bin.to_path_buf(), log.clone());
    let (bound, long) = (pace.bound, pace.step());

    // a. The datacenter: a gossip key, 3 servers, 3 client agents.
    let key = steps
        .run(
            "gossip key made with `mesh-client keygen`",
            &[],
            long,
            async {
                let key = cli.ok("keygen", None, &[]).await?.trim().to_owned();
                ensure!(
                    key.len() == 44 && key.ends_with('='),
                    "not the base64 of 32 bytes: {key:?}"
                );
                Ok(key)
            },
        )
        .await?;

    let mut servers = steps
        .run_noted("3 servers elected a leader", &SERVERS, long, async {
            let mut servers = Vec::new();
            for n in 0..SERVERS.len() {
                servers.push(layout.server(n, &work)?);
            }
            let gossip: Vec<String> = servers.iter().map(Agent::gossip_addr).collect();
            for (i, server) in servers.iter_mut().enumerate() {
                server.push_args(&["-bootstrap-expect", "3", "-encrypt", &key]);
                for (j, addr) in gossip.iter().enumerate() {
                    if i != j {
                        server.push_args(&["-retry-join", addr.as_str()]);
                    }
                }
                server.spawn()?;
            }
            for (server, name) in servers.iter_mut().zip(SERVERS) {
                ready(server, name, bound).await?;
            }
            let (leader, _) = eventually(
                &log,
                "the servers to agree on a leader and 3 voters",
                bound,
                || async {
                    let mut leaders = BTreeSet::new();
                    for server in &servers {
                        leaders.insert(leader_of(server).await?);
                        let peers = server.http().get("/v1/status/peers").await?.json()?;
                        ensure!(peers.as_array().map(Vec::len) == Some(3), "peers: {peers}");
                    }
                    ensure!(leaders.len() == 1, "leaders: {leaders:?}");
                    let leader = leaders.pop_first().unwrap_or_default();
                    servers
                        .iter()
                        .position(|s| s.rpc_addr() == leader)
                        .with_context(|| format!("the leader {leader:?} is none of the servers"))
                },
            )
            .await?;
            let note = format!("{} leads", SERVERS[leader]);
            Ok((servers, note))
        })
        .await?;
    let server_gossip: Vec<String> = servers.iter().map(Agent::gossip_addr).collect();

    let mut clients = steps
        .run(
            "3 client agents joined with the gossip key",
            &CLIENTS,
            long,
            async {
                let mut clients = Vec::new();
                for n in 0..CLIENTS.len() {
                    let mut client = layout.client(n, &work, &server_gossip)?;
                    client.push_args(&["-encrypt", key.as_str()]);
                    client.spawn()?;
                    clients.push(client);
                }
                for (client, name) in clients.iter_mut().zip(CLIENTS) {
                    ready(client, name, bound).await?;
                }
                Ok(clients)
            },
        )
        .await?;
    let agent: Vec<CliAddr> = clients.iter().map(Agent::cli_addr).collect();

    steps
        .run(
            "`mesh-client members` shows 6 alive members, `keyring -list` the key on all 6",
            &["client-1"],
            long,
            async {
                eventually(&log, "6 alive members", bound, || {
                    members_are(&cli, &agent[0], &ALL_ALIVE)
                })
                .await?;
                let table = cli.ok("members", Some(&agent[0]), &[]).await?;
                let servers_listed = members(&table)
                    .iter()
                    .filter(|(node, _, kind)| node.starts_with("server-") && kind == "server")
                    .count();
                ensure!(servers_listed == 3, "3 servers of type server:\n{table}");
                eventually(&log, "the key on all 6 members", bound, || async {
                    let listing = cli.ok("keyring", Some(&agent[0]), &["-list"]).await?;
                    ensure!(
                        listing.contains(&format!("{key} [6/6] (primary)")),
                        "keyring -list:\n{listing}"
                    );
                    Ok(())
                })
                .await?;
                Ok(())
            },
        )
        .await?;

    // b. Two applications with sidecars, registered on two client agents; DNS on the third.
    let (db_host, web_host) = (layout.app(0, 21)?, layout.app(1, 23)?);
    let upstream = layout.upstream(&web_host)?;
    let (db_app, web_app) = steps
        .run(
            "db registered on client-1 and web on client-2, with sidecar services",
            &["client-1", "client-2"],
            long,
            async {
                // Each application runs on its host (inside its namespace), as a process there.
                let ip = db_host.ip;
                let db_app = db_host
                    .netns
                    .serve(move || async move { EchoApp::start(ip, "db").await })
                    .await?;
                let ip = web_host.ip;
                let web_app = web_host
                    .netns
                    .serve(move || async move { HttpApp::start(ip, "web").await })
                    .await?;
                let (db_public, web_public) = (db_host.public, web_host.public);
                let upstream = upstream.addr;
                register(
                    &clients[0].http(),
                    "db",
                    db_app.addr,
                    json!({"Name": "db accepts", "TCP": db_app.addr.to_string(), "Interval": "1s"}),
                    db_public,
                    json!([]),
                )
                .await?;
                register(
                    &clients[1].http(),
                    "web",
                    web_app.addr,
                    json!({"Name": "web answers", "HTTP": format!("http://{}/health", web_app.addr), "Interval": "1s"}),
                    web_public,
                    json!([{"DestinationName": "db", "LocalBindAddress": upstream.ip().to_string(),
                            "LocalBindPort": upstream.port()}]),
                )
                .await?;
                let catalog = servers[0].http();
                eventually(&log, "db and web healthy in the catalog", bound, || async {
                    healthy(&catalog, "db", false, "client-1", db_app.addr).await?;
                    healthy(&catalog, "web", false, "client-2", web_app.addr).await
                })
                .await?;
                Ok((db_app, web_app))
            },
        )
        .await?;

    let (db_sidecar, _web_sidecar, registered) = steps
        .run(
            "both sidecars started, listening and healthy",
            &SIDECARS,
            long,
            async {
                let db = layout.sidecar("db", &db_host, &clients[0], &work)?;
                let web = layout.sidecar("web", &web_host, &clients[1], &work)?;
                let catalog = servers[0].http();
                eventually(
                    &log,
                    "both sidecars healthy in the catalog",
                    bound,
                    || async {
                        healthy(&catalog, "db", true, "client-1", db_host.public).await?;
                        healthy(&catalog, "web", true, "client-2", web_host.public).await
                    },
                )
                .await?;
                let registered = registrations(&servers[0], false).await?;
                Ok((db, web, registered))
            },
        )
        .await?;

    let (dns, dns_http) = (clients[2].dns(), clients[2].http());
    let (db_ip, web_ip) = (db_host.ip, web_host.ip);
    let db_sidecar_ip = match db_host.public {
        SocketAddr::V4(public) => *public.ip(),
        SocketAddr::V6(public) => bail!("db's sidecar is not on IPv4: {public}"),
    };
    steps
        .run(
            "DNS on client-3 resolves db and web to their apps (A, SRV over UDP and TCP) and db.connect to its sidecar",
            &["client-3"],
            long,
            async {
                eventually(&log, "the DNS answers", bound, || async {
                    resolves(&dns, &dns_http, "db.service.mesh.", db_ip).await?;
                    resolves(&dns, &dns_http, "web.service.mesh.", web_ip).await?;
                    resolves(&dns, &dns_http, "db.connect.mesh.", db_sidecar_ip).await?;
                    let query = question("_db._tcp.service.mesh.", RecordType::SRV, None)?;
                    for (transport, srv) in [
                        ("UDP", dns.dns_udp(query.clone()).await?),
                        ("TCP", dns.dns_tcp(query.clone()).await?),
                    ] {
                        let ports: Vec<u16> = srv
                            .answers
                            .iter()
                            .filter_map(|r| match &r.data {
                                RData::SRV(srv) => Some(srv.port),
                                _ => None,
                            })
                            .collect();
                        ensure!(
                            ports == [db_app.addr.port()] && addresses(&srv) == [db_ip.to_string()],
                            "_db._tcp.service.mesh SRV over {transport} answered {}, not port {} at {}",
                            shown(&srv),
                            db_app.addr.port(),
                            db_ip
                        );
                    }
                    Ok(())
                })
                .await?;
                Ok(())
            },
        )
        .await?;

    // c. KV through the CLI, and a blocking read.
    steps
        .run(
            "`mesh-client kv put` through client-2 read back with `kv get` through client-1",
            &["client-1", "client-2"],
            long,
            async {
                let out = cli
                    .ok("kv put", Some(&agent[1]), &["e2e/greeting", "hello"])
                    .await?;
                ensure!(
                    out == "Success! Data written to: e2e/greeting\n",
                    "kv put printed {out:?}"
                );
                let got = cli.ok("kv get", Some(&agent[0]), &["e2e/greeting"]).await?;
                ensure!(got == "hello\n", "kv get printed {got:?}");
                for round in 0..pace.rounds {
                    let (key, value) = (format!("e2e/rounds/{round}"), format!("value {round}"));
                    cli.ok("kv put", Some(&agent[1]), &[&key, &value]).await?;
                    let got = cli.ok("kv get", Some(&agent[2]), &[&key]).await?;
                    ensure!(got == format!("{value}\n"), "{key}: kv get printed {got:?}");
                }
                Ok(())
            },
        )
        .await?;

    steps
        .run_noted(
            "a blocking read on client-1 was woken by a write through client-2",
            &["client-1", "client-2"],
            long,
            async {
                let http = clients[0].http();
                let first = http.get("/v1/kv/e2e/greeting").await?;
                ensure!(first.status == 200, "reading e2e/greeting: {first:?}");
                let index: u64 = first
                    .header("X-Consul-Index")
                    .context("no X-Consul-Index")?
                    .parse()?;
                let wait = bound.as_secs();
                let path = format!("/v1/kv/e2e/greeting?raw&index={index}&wait={wait}s");
                let read = http.get(&path);
                tokio::pin!(read);
                if let Ok(early) = tokio::time::timeout(pace.hold, &mut read).await {
                    bail!("the blocking read returned before any write: {early:?}");
                }
                let written = Instant::now();
                let (reply, put) = tokio::join!(
                    tokio::time::timeout(bound, &mut read),
                    cli.ok("kv put", Some(&agent[1]), &["e2e/greeting", "hello again"])
                );
                put?;
                let reply = reply.context("the blocking read was not woken")??;
                let woke = written.elapsed();
                ensure!(
                    reply.status == 200 && reply.body == "hello again",
                    "the blocking read answered {reply:?}"
                );
                let after: u64 = reply
                    .header("X-Consul-Index")
                    .context("no X-Consul-Index")?
                    .parse()?;
                ensure!(
                    after > index,
                    "the index did not move: {index} then {after}"
                );
                ensure!(
                    woke < Duration::from_secs(wait) / 2,
                    "woken {woke:?} after the write: by its wait running out, not by the write"
                );
                Ok(((), format!("{} ms after the write", woke.as_millis())))
            },
        )
        .await?;

    // d. Intentions, through the sidecars.
    steps
        .run(
            "`intention create -deny web db`: web's connections are refused at db's sidecar",
            &["sidecar-db", "sidecar-web", "client-1"],
            long,
            async {
                let out = cli
                    .ok("intention create", Some(&agent[1]), &["-deny", "web", "db"])
                    .await?;
                ensure!(
                    out == "Created: web => db (deny)\n",
                    "intention create printed {out:?}"
                );
                eventually(&log, "db's sidecar to refuse web", bound, || async {
                    ensure!(
                        upstream.echo_once("hello db").await.is_err(),
                        "web reached db (the deny has not reached db's sidecar yet?)"
                    );
                    let denials = db_sidecar.metric(DENIALS).await.unwrap_or(0);
                    ensure!(
                        denials >= 1,
                        "the connection failed, but db's sidecar counted no denial"
                    );
                    Ok(())
                })
                .await?;
                for round in 0..pace.rounds {
                    ensure!(
                        upstream.echo_once("hello db").await.is_err(),
                        "connection {round} after the deny reached db"
                    );
                }
                let check = cli
                    .run("intention check", Some(&agent[1]), &["web", "db"])
                    .await?;
                ensure!(
                    check.code == 1 && check.stdout == "Denied\n",
                    "intention check web db: {check:?}"
                );
                Ok(())
            },
        )
        .await?;

    steps
        .run(
            "`intention create -replace -allow web db`: web reaches db through the sidecars",
            &["sidecar-db", "sidecar-web", "client-1"],
            long,
            async {
                let out = cli
                    .ok(
                        "intention create",
                        Some(&agent[1]),
                        &["-replace", "-allow", "web", "db"],
                    )
                    .await?;
                // As Consul's: a replaced intention is updated in place, silently.
                ensure!(out.is_empty(), "intention create -replace printed {out:?}");
                eventually(&log, "web to reach db", bound, || reaches_db(&upstream)).await?;
                for _ in 0..pace.rounds {
                    reaches_db(&upstream).await?;
                }
                let check = cli
                    .run("intention check", Some(&agent[1]), &["web", "db"])
                    .await?;
                ensure!(
                    check.code == 0 && check.stdout == "Allowed\n",
                    "intention check web db: {check:?}"
                );
                Ok(())
            },
        )
        .await?;

    // e. kill -9 the leader, with traffic from web to db all along.
    let traffic = Traffic::start(upstream.clone());
    let killed = steps
        .run_noted(
            "the leader killed with -9: another server elected, the dead one `failed` in members",
            &SERVERS,
            long,
            async {
                let leader = leader_of(&servers[0]).await?;
                let killed = servers
                    .iter()
                    .position(|s| s.rpc_addr() == leader)
                    .with_context(|| format!("the leader {leader:?} is none of the servers"))?;
                servers[killed].kill9()?;
                let survivors: Vec<usize> = (0..3).filter(|&i| i != killed).collect();
                let (elected, _) =
                    eventually(&log, "a new leader among the survivors", bound, || async {
                        let mut leaders = BTreeSet::new();
                        for &i in &survivors {
                            let now = leader_of(&servers[i]).await?;
                            ensure!(
                                !now.is_empty() && now != leader,
                                "{} reports leader {now:?}",
                                SERVERS[i]
                            );
                            leaders.insert(now);
                        }
                        ensure!(leaders.len() == 1, "the survivors disagree: {leaders:?}");
                        let now = leaders.pop_first().unwrap_or_default();
                        servers
                            .iter()
                            .position(|s| s.rpc_addr() == now)
                            .with_context(|| format!("the leader {now:?} is none of the servers"))
                    })
                    .await?;
                let mut expected = ALL_ALIVE.to_vec();
                expected.retain(|(node, _)| *node != SERVERS[killed]);
                expected.push((SERVERS[killed], "failed"));
                eventually(
                    &log,
                    "the killed server failed in `mesh-client members`",
                    bound,
                    || members_are(&cli, &agent[0], &expected),
                )
                .await?;
                Ok((
                    killed,
                    format!("{} → {}", SERVERS[killed], SERVERS[elected]),
                ))
            },
        )
        .await?;

    steps
        .run_noted(
            &format!(
                "with {} down: KV writes, DNS and the sidecar path work",
                SERVERS[killed]
            ),
            &SERVERS,
            long,
            async {
                let started = Instant::now();
                let (_, attempts) =
                    eventually(&log, "a KV write through client-2", bound, || async {
                        cli.ok(
                            "kv put",
                            Some(&agent[1]),
                            &["e2e/failover", "written with a server down"],
                        )
                        .await
                    })
                    .await?;
                let first_write = started.elapsed();
                let got = cli.ok("kv get", Some(&agent[0]), &["e2e/failover"]).await?;
                ensure!(
                    got == "written with a server down\n",
                    "kv get printed {got:?}"
                );
                for round in 0..pace.rounds {
                    let key = format!("e2e/failover/{round}");
                    cli.ok("kv put", Some(&agent[round % 3]), &[&key, "x"])
                        .await?;
                }
                resolves(&dns, &dns_http, "db.service.mesh.", db_ip).await?;
                resolves(&dns, &dns_http, "web.service.mesh.", web_ip).await?;
                for _ in 0..pace.rounds.max(1) {
                    reaches_db(&upstream).await?;
                }
                tokio::time::sleep(pace.hold).await;
                reaches_db(&upstream).await?;
                Ok((
                    (),
                    format!(
                        "first write accepted after {:.1}s ({attempts} attempts)",
                        first_write.as_secs_f64()
                    ),
                ))
            },
        )
        .await?;

    steps
        .run(
            &format!(
                "{} restarted, rejoined and caught up; no registration lost",
                SERVERS[killed]
            ),
            &SERVERS,
            long,
            async {
                let server = &mut servers[killed];
                server.spawn()?;
                ready(server, SERVERS[killed], bound).await?;
                let http = server.http();
                eventually(
                    &log,
                    "the restarted server to hold the write it missed",
                    bound,
                    || async {
                        let reply = http.get("/v1/kv/e2e/failover?raw&stale").await?;
                        ensure!(
                            reply.status == 200 && reply.body == "written with a server down",
                            "a stale read of e2e/failover answered {reply:?}"
                        );
                        Ok(())
                    },
                )
                .await?;
                eventually(&log, "3 voters, one of them the leader", bound, || async {
                    let table = cli
                        .ok("operator raft list-peers", Some(&agent[0]), &[])
                        .await?;
                    let rows: Vec<Vec<&str>> = table
                        .lines()
                        .skip(1)
                        .map(|line| line.split_whitespace().collect())
                        .collect();
                    let voters = rows
                        .iter()
                        .filter(|row| row.get(4) == Some(&"true"))
                        .count();
                    let leaders = rows
                        .iter()
                        .filter(|row| row.get(3) == Some(&"leader"))
                        .count();
                    ensure!(
                        rows.len() == 3 && voters == 3 && leaders == 1,
                        "operator raft list-peers:\n{table}"
                    );
                    Ok(())
                })
                .await?;
                eventually(
                    &log,
                    "autopilot to find all 3 servers healthy",
                    bound,
                    || async {
                        let reply = http.get("/v1/operator/autopilot/health").await?;
                        let health = reply.json()?;
                        let healthy = health["Servers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|s| s["Healthy"] == true)
                            .count();
                        ensure!(
                            reply.status == 200
                                && health["Healthy"] == true
                                && health["FailureTolerance"] == 1
                                && healthy == 3,
                            "autopilot health ({}): {health}",
                            reply.status
                        );
                        Ok(())
                    },
                )
                .await?;
                eventually(&log, "6 alive members", bound, || {
                    members_are(&cli, &agent[0], &ALL_ALIVE)
                })
                .await?;
                registrations_intact(&servers, &registered).await?;
                Ok(())
            },
        )
        .await?;

    steps
        .run_noted(
            "web → db through the sidecars all through the failover, no exchange failed",
            &SIDECARS,
            long,
            async {
                let (ok, failed) = traffic.stop().await;
                ensure!(ok > 0, "no exchange went through during the failover");
                ensure!(
                    failed.is_empty(),
                    "{} of {} exchanges failed during the failover, the first: {}",
                    failed.len(),
                    ok + failed.len() as u64,
                    failed[0]
                );
                Ok(((), format!("{ok} exchanges")))
            },
        )
        .await?;

    // f. kill -9 the client agent that runs neither application.
    steps
        .run(
            "client-3 killed with -9: its serfHealth is critical on every server",
            &["client-1", "server-1"],
            long,
            async {
                clients[2].kill9()?;
                eventually(&log, "client-3's serfHealth critical", bound, || {
                    serf_health_everywhere(&servers, "client-3", "critical")
                })
                .await?;
                let mut expected = ALL_ALIVE.to_vec();
                expected.retain(|(node, _)| *node != "client-3");
                expected.push(("client-3", "failed"));
                eventually(
                    &log,
                    "client-3 failed in `mesh-client members`",
                    bound,
                    || members_are(&cli, &agent[0], &expected),
                )
                .await?;
                Ok(())
            },
        )
        .await?;

    steps
        .run(
            "client-3 restarted: its serfHealth passes again on every server; no registration lost",
            &["client-3", "server-1"],
            long,
            async {
                clients[2].spawn()?;
                ready(&mut clients[2], "client-3", bound).await?;
                eventually(&log, "client-3's serfHealth passing", bound, || {
                    serf_health_everywhere(&servers, "client-3", "passing")
                })
                .await?;
                eventually(&log, "6 alive members", bound, || {
                    members_are(&cli, &agent[0], &ALL_ALIVE)
                })
                .await?;
                registrations_intact(&servers, &registered).await?;
                Ok(())
            },
        )
        .await?;

    // g. Snapshot save and restore.
    let snapshot = work.join("backup.snap");
    let snapshot_arg = snapshot.to_string_lossy().into_owned();
    steps
        .run_noted(
            "`snapshot save`, KV changes, `snapshot restore`: the keys have their old values",
            &SERVERS,
            long,
            async {
                let before = cli.ok("kv get", Some(&agent[0]), &["e2e/greeting"]).await?;
                ensure!(before == "hello again\n", "kv get printed {before:?}");
                let saved = cli
                    .ok("snapshot save", Some(&agent[0]), &[&snapshot_arg])
                    .await?;
                let index = saved
                    .trim()
                    .strip_prefix("Saved and verified snapshot to index ")
                    .with_context(|| format!("snapshot save printed {saved:?}"))?
                    .to_owned();
                cli.ok(
                    "kv put",
                    Some(&agent[1]),
                    &["e2e/greeting", "changed after the snapshot"],
                )
                .await?;
                cli.ok("kv put", Some(&agent[1]), &["e2e/after-snapshot", "new"])
                    .await?;
                let changed = cli.ok("kv get", Some(&agent[0]), &["e2e/greeting"]).await?;
                ensure!(
                    changed == "changed after the snapshot\n",
                    "kv get printed {changed:?}"
                );
                let restored = cli
                    .ok("snapshot restore", Some(&agent[0]), &[&snapshot_arg])
                    .await?;
                ensure!(
                    restored == "Restored snapshot\n",
                    "snapshot restore printed {restored:?}"
                );
                let got = cli.ok("kv get", Some(&agent[1]), &["e2e/greeting"]).await?;
                ensure!(
                    got == before,
                    "after the restore, kv get printed {got:?}, not {before:?}"
                );
                let gone = cli
                    .run("kv get", Some(&agent[1]), &["e2e/after-snapshot"])
                    .await?;
                ensure!(
                    gone.code == 1,
                    "a key written after the snapshot survived the restore: {gone:?}"
                );
                Ok(((), format!("saved at index {index}")))
            },
        )
        .await?;

    steps
        .run(
            "after the restore: KV writes, DNS, intentions and the sidecar path work",
            &[
                "server-1",
                "client-1",
                "client-3",
                "sidecar-db",
                "sidecar-web",
            ],
            long,
            async {
                eventually(&log, "a KV write after the restore", bound, || async {
                    cli.ok("kv put", Some(&agent[1]), &["e2e/after-restore", "ok"])
                        .await
                })
                .await?;
                let got = cli
                    .ok("kv get", Some(&agent[0]), &["e2e/after-restore"])
                    .await?;
                ensure!(got == "ok\n", "kv get printed {got:?}");
                eventually(&log, "DNS after the restore", bound, || async {
                    resolves(&dns, &dns_http, "db.service.mesh.", db_ip).await?;
                    resolves(&dns, &dns_http, "web.service.mesh.", web_ip).await
                })
                .await?;
                let check = cli
                    .run("intention check", Some(&agent[1]), &["web", "db"])
                    .await?;
                ensure!(
                    check.code == 0 && check.stdout == "Allowed\n",
                    "intention check web db: {check:?}"
                );
                eventually(&log, "web to reach db", bound, || reaches_db(&upstream)).await?;
                Ok(())
            },
        )
        .await?;

    // The applications served until here; everything else stops as it drops, killed by PID.
    drop((db_app, web_app));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_wait_less_but_bound_the_same() {
        let (short, full) = (Pace::new(true), Pace::new(false));
        assert!(short.hold < full.hold && short.rounds < full.rounds);
        assert_eq!(short.bound, full.bound);
    }
}
