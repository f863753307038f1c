//! `mesh-sidecar` on real processes: a server, a client agent, test applications and their
//! sidecars, configured only through the agent. Two services talk through their sidecars
//! exactly as intentions allow, a change of intentions applies to new connections without
//! touching established ones, a client certificate from a foreign CA is refused, traffic moves
//! off a killed instance with no failed connection, a root rotation under load loses nothing,
//! and an L7 intention denies one path with 403 for a service that speaks HTTP by its
//! `service-defaults` config entry.
//!
//! Addresses: each test has its own ten in 127.0.7.0/24 (`.10`, `.20`, `.30` and up), so the
//! tests can run at once without picking each other's ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{json, Value};
use test_support::sidecar::{echo_once, EchoApp, HttpApp, SidecarProcess};
use test_support::{free_port_on, wait_json, wait_until, Http, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOON: Duration = Duration::from_secs(30);

/// The addresses of one test: `Net(20).ip(3)` is 127.0.7.23.
#[derive(Debug, Clone, Copy)]
struct Net(u8);

impl Net {
    fn ip(self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 7, self.0 + n)
    }
}

/// A bootstrapped server on `.0` and a client agent on `.1` of `net`, joined and ready.
async fn datacenter(dir: &Path, net: Net) -> anyhow::Result<(ServerProcess, ServerProcess)> {
    let mut server = ServerProcess::new(net.ip(0), &dir.join("server"), vec!["-bootstrap".into()])?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let mut agent = ServerProcess::client(net.ip(1), &dir.join("agent"), &[server.gossip_addr()])?;
    agent.spawn()?;
    agent.wait_for_leader().await?;
    wait_json(
        &server.http(),
        "/v1/connect/ca/roots",
        "the CA",
        SOON,
        |r| r["Roots"].as_array().is_some_and(|roots| !roots.is_empty()),
    )
    .await?;
    Ok((server, agent))
}

/// Registers service `id` (named `name`) listening at `app`, with a sidecar whose public
/// listener is on `sidecar_ip` (checked every second, so it turns healthy quickly).
async fn register(
    agent: &Http,
    id: &str,
    name: &str,
    app: SocketAddr,
    sidecar_ip: Ipv4Addr,
    protocol: &str,
    upstreams: Value,
) -> anyhow::Result<SocketAddr> {
    let public = SocketAddr::from((sidecar_ip, free_port_on(sidecar_ip)?));
    let body = json!({
        "ID": id, "Name": name, "Address": app.ip().to_string(), "Port": app.port(),
        "Connect": {"SidecarService": {
            "Address": sidecar_ip.to_string(), "Port": public.port(),
            "Check": {"Name": "Connect Sidecar Listening", "TCP": public.to_string(), "Interval": "1s"},
            "Proxy": {
                "LocalServiceAddress": app.ip().to_string(), "LocalServicePort": app.port(),
                "Config": {"protocol": protocol},
                "Upstreams": upstreams,
            }
        }}
    });
    let reply = agent
        .put("/v1/agent/service/register", body.to_string())
        .await?;
    anyhow::ensure!(reply.status == 200, "registering {id}: {reply:?}");
    Ok(public)
}

/// `web`'s upstream `db` on `bind`.
fn upstream_db(bind: SocketAddr, protocol: &str) -> Value {
    json!([{"DestinationName": "db", "LocalBindAddress": bind.ip().to_string(),
            "LocalBindPort": bind.port(), "Config": {"protocol": protocol}}])
}

/// `db` (its app at `db_app`, sidecar on `.3`) and `web` (sidecar on `.4`, upstream `db` on
/// `bind`), registered with `protocol` ("" leaves it to the config entries), both sidecars
/// running and db's healthy.
struct WebToDb {
    db_public: SocketAddr,
    bind: SocketAddr,
    db: SidecarProcess,
    web: SidecarProcess,
}

async fn web_to_db(
    agent: &ServerProcess,
    net: Net,
    db_app: SocketAddr,
    protocol: &str,
    dir: &Path,
) -> anyhow::Result<WebToDb> {
    let agent_http = agent.http();
    let db_public = register(
        &agent_http,
        "db",
        "db",
        db_app,
        net.ip(3),
        protocol,
        json!([]),
    )
    .await?;
    let bind = SocketAddr::from((net.ip(7), free_port_on(net.ip(7))?));
    let web_app = SocketAddr::from((net.ip(9), free_port_on(net.ip(9))?));
    let upstreams = upstream_db(bind, protocol);
    register(
        &agent_http,
        "web",
        "web",
        web_app,
        net.ip(4),
        protocol,
        upstreams,
    )
    .await?;
    let db = SidecarProcess::sidecar_for("db", &agent.http_addr(), net.ip(3), dir)?;
    let web = SidecarProcess::sidecar_for("web", &agent.http_addr(), net.ip(4), dir)?;
    healthy_db(&agent_http, 1).await?;
    Ok(WebToDb {
        db_public,
        bind,
        db,
        web,
    })
}

async fn set_intention(server: &Http, action: Value) -> anyhow::Result<()> {
    let reply = server
        .put(
            "/v1/connect/intentions/exact?source=web&destination=db",
            action.to_string(),
        )
        .await?;
    anyhow::ensure!(reply.status == 200, "writing the intention: {reply:?}");
    Ok(())
}

/// Waits until `passing` instances of `db`'s sidecars are healthy at the agent.
async fn healthy_db(agent: &Http, passing: usize) -> anyhow::Result<()> {
    wait_json(
        agent,
        "/v1/health/connect/db?passing",
        "healthy db sidecars",
        SOON,
        |r| r.as_array().is_some_and(|list| list.len() == passing),
    )
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intentions_decide_and_a_foreign_ca_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let net = Net(10);
    let (server, agent) = datacenter(dir.path(), net).await?;
    let (http, agent_http) = (server.http(), agent.http());
    set_intention(&http, json!({"Action": "deny"})).await?;

    let db_app = EchoApp::start(net.ip(2), "db").await?;
    let WebToDb {
        db_public,
        bind,
        db,
        web,
    } = web_to_db(&agent, net, db_app.addr, "tcp", dir.path()).await?;

    // Denied: the connection reaches db's sidecar and is closed there, counted by source.
    wait_until("a denial at db's sidecar", SOON, || async {
        assert!(
            echo_once(bind, "hello").await.is_err(),
            "a deny intention let web through"
        );
        db.metric(r#"mesh_sidecar_authorization_denials_total{service="db",source="web"}"#)
            .await
            .is_some_and(|n| n >= 1)
    })
    .await
    .with_context(|| format!("db: {}\nweb: {}", db.log_text(), web.log_text()))?;

    // Allowed from the next connection on, without restarting anything.
    set_intention(&http, json!({"Action": "allow"})).await?;
    wait_until("web reaches db", SOON, || async {
        echo_once(bind, "hello")
            .await
            .is_ok_and(|name| name == "db")
    })
    .await?;

    // An ad-hoc sidecar (`-service web -upstream db:PORT`, nothing registered) reaches db too.
    let ad_hoc_port = free_port_on(Ipv4Addr::LOCALHOST)?;
    let ad_hoc = SidecarProcess::ad_hoc(
        "web",
        &[format!("db:{ad_hoc_port}")],
        &agent.http_addr(),
        net.ip(5),
        dir.path(),
    )?;
    let ad_hoc_bind = SocketAddr::from((Ipv4Addr::LOCALHOST, ad_hoc_port));
    wait_until("web reaches db through an ad-hoc sidecar", SOON, || async {
        echo_once(ad_hoc_bind, "hello")
            .await
            .is_ok_and(|name| name == "db")
    })
    .await
    .with_context(|| ad_hoc.log_text())?;
    drop(ad_hoc);

    // An established connection outlives a deny; new connections are refused.
    let mut held = tokio::net::TcpStream::connect(bind).await?;
    let mut greeting = [0; 3];
    held.read_exact(&mut greeting).await?;
    assert_eq!(&greeting, b"db\n");
    set_intention(&http, json!({"Action": "deny"})).await?;
    wait_until("new connections are denied again", SOON, || async {
        echo_once(bind, "hello").await.is_err()
    })
    .await?;
    held.write_all(b"still here\n").await?;
    let mut back = [0; 11];
    tokio::time::timeout(SOON, held.read_exact(&mut back)).await??;
    assert_eq!(&back, b"still here\n");

    // A client certificate from another CA is refused at the handshake, before the app.
    let roots = agent_http.get("/v1/agent/connect/ca/roots").await?.json()?;
    let failures = r#"mesh_sidecar_inbound_tls_handshake_failures_total{service="db"}"#;
    let before = db.metric(failures).await.unwrap_or(0);
    let answer = foreign_client_exchange(&roots, db_public).await?;
    assert!(
        answer.is_empty(),
        "a foreign certificate reached the app: {answer:?}"
    );
    wait_until("the refused handshake is counted", SOON, || async {
        db.metric(failures).await.is_some_and(|n| n > before)
    })
    .await?;
    Ok(())
}

/// Connects to `public` with a leaf for `web` from a CA of another cluster (trusting the
/// real roots, so only the server can refuse), and returns whatever the app side sent.
async fn foreign_client_exchange(roots: &Value, public: SocketAddr) -> anyhow::Result<Vec<u8>> {
    let mut foreign = ca::CaState::bootstrap(
        "99999999-8888-7777-6666-555555555555",
        ca::CaConfig::default(),
        SystemTime::now(),
    )?;
    let (key, csr) = ca::generate_key_and_csr(&foreign.trust_domain, "dc1", "web", &[])?;
    let leaf = foreign.sign_leaf(&csr, "web", "dc1", SystemTime::now())?;
    let pems: Vec<String> = roots["Roots"]
        .as_array()
        .context("roots")?
        .iter()
        .filter_map(|r| r["RootCert"].as_str().map(str::to_owned))
        .collect();
    let trust_domain = roots["TrustDomain"].as_str().context("trust domain")?;
    let identity = proxy::Identity::new(
        proxy::LeafCert::from_pem(&leaf.cert_pem, &key)?,
        proxy::TrustedRoots::from_pem(trust_domain, &pems)?,
    );
    let connector = tokio_rustls::TlsConnector::from(identity.client_config("db", "dc1"));
    let tcp = tokio::net::TcpStream::connect(public).await?;
    let exchange = async {
        let mut received = Vec::new();
        // TLS 1.3: the client finishes first; the server's verdict arrives on the first read.
        if let Ok(mut tls) = connector
            .connect(identity.server_name("db", "dc1"), tcp)
            .await
        {
            let _ = tls.read_to_end(&mut received).await;
        }
        received
    };
    tokio::time::timeout(SOON, exchange)
        .await
        .context("the refused handshake did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_a_killed_instance_and_a_root_rotation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let net = Net(20);
    let (server, agent) = datacenter(dir.path(), net).await?;
    let (http, agent_http) = (server.http(), agent.http());
    set_intention(&http, json!({"Action": "allow"})).await?;

    let app_1 = EchoApp::start(net.ip(2), "db-1").await?;
    let app_2 = EchoApp::start(net.ip(5), "db-2").await?;
    register(
        &agent_http,
        "db-1",
        "db",
        app_1.addr,
        net.ip(3),
        "tcp",
        json!([]),
    )
    .await?;
    register(
        &agent_http,
        "db-2",
        "db",
        app_2.addr,
        net.ip(6),
        "tcp",
        json!([]),
    )
    .await?;
    let bind = SocketAddr::from((net.ip(7), free_port_on(net.ip(7))?));
    let web_app = SocketAddr::from((net.ip(9), free_port_on(net.ip(9))?));
    register(
        &agent_http,
        "web",
        "web",
        web_app,
        net.ip(4),
        "tcp",
        upstream_db(bind, "tcp"),
    )
    .await?;
    let mut db_1 = SidecarProcess::sidecar_for("db-1", &agent.http_addr(), net.ip(3), dir.path())?;
    let _db_2 = SidecarProcess::sidecar_for("db-2", &agent.http_addr(), net.ip(6), dir.path())?;
    let web = SidecarProcess::sidecar_for("web", &agent.http_addr(), net.ip(4), dir.path())?;
    healthy_db(&agent_http, 2).await?;

    // Both instances take traffic.
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    wait_until("both instances answer", SOON, || async {
        if let Ok(name) = echo_once(bind, "x").await {
            seen.lock().expect("seen").insert(name);
        }
        seen.lock().expect("seen").len() == 2
    })
    .await?;

    // Load: one new connection after another, each exchange checked, from here to the end.
    let load = Load::start(bind);

    // Kill db-1's sidecar: connections move to db-2 at once (a refused connect is retried
    // on the other instance), long before the health check notices.
    load.wait_for_more(20)
        .await
        .with_context(|| web.log_text())?;
    db_1.kill9()?;
    let after_kill = load.ok();
    load.wait_for_more(50).await?;
    // Requests are sequential: at most the one in flight on db-1 when it died may fail.
    let in_flight = load.failed();
    assert!(
        in_flight <= 1,
        "{in_flight} connections failed after an instance was killed"
    );
    assert!(load.ok() >= after_kill + 50);
    db_1.spawn()?;
    healthy_db(&agent_http, 2).await?;

    // Rotate the root under load: the agent re-issues leaves, the sidecars pick them up and
    // trust both roots meanwhile; not one connection fails.
    let mut serials = Vec::new();
    for service in ["web", "db"] {
        let path = format!("/v1/agent/connect/ca/leaf/{service}");
        serials.push((
            path.clone(),
            agent_http.get(&path).await?.json()?["SerialNumber"].clone(),
        ));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let body = json!({"Provider": "consul", "Config": {"PrivateKey": key.serialize_pem()}});
    let reply = http
        .put("/v1/connect/ca/configuration", body.to_string())
        .await?;
    anyhow::ensure!(reply.status == 200, "rotating: {reply:?}");
    for (path, old) in &serials {
        wait_json(
            &agent_http,
            path,
            "a leaf under the new root",
            SOON,
            |leaf| leaf["SerialNumber"] != *old,
        )
        .await?;
    }
    // The sidecars took the new material themselves (nothing was restarted).
    wait_until("web's sidecar holds the new leaf", SOON, || async {
        web.log_text().contains("leaf certificate updated")
            && web.log_text().contains("trusted roots updated")
    })
    .await?;
    load.wait_for_more(200).await?;
    let failed = load.stop().await;
    assert_eq!(
        failed, in_flight,
        "connections failed during the root rotation"
    );
    Ok(())
}

/// Sequential echo exchanges through `bind` on new connections, counted.
struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(bind: SocketAddr) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match echo_once(bind, &format!("request {n}")).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("request {n} failed: {e:#}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
        });
        Load {
            ok,
            failed,
            stop,
            task,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    async fn wait_for_more(&self, n: u64) -> anyhow::Result<()> {
        let target = self.ok() + n;
        wait_until("more successful exchanges", SOON, || async {
            self.ok() >= target
        })
        .await
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let failed = self.failed.clone();
        let _ = tokio::time::timeout(SOON, self.task).await;
        failed.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l7_intention_denies_one_path_with_403() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let net = Net(30);
    let (server, agent) = datacenter(dir.path(), net).await?;
    let http = server.http();
    set_intention(
        &http,
        json!({"Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {"PathPrefix": "/"}}
        ]}),
    )
    .await?;

    // db speaks HTTP by its service-defaults entry: neither registration names a protocol,
    // so both sidecars (db's public listener, web's upstream) take it from there.
    let entry = json!({"Kind": "service-defaults", "Name": "db", "Protocol": "http"});
    let reply = http.put("/v1/config", entry.to_string()).await?;
    anyhow::ensure!(reply.status == 200, "writing service-defaults: {reply:?}");
    let db_app = HttpApp::start(net.ip(2), "db").await?;
    let WebToDb { bind, db, web, .. } = web_to_db(&agent, net, db_app.addr, "", dir.path()).await?;

    let through = Http::new(bind);
    wait_until("web reaches db over HTTP", SOON, || async {
        through
            .get("/users")
            .await
            .is_ok_and(|r| r.status == 200 && r.body == "db GET /users")
    })
    .await
    .with_context(|| format!("db: {}\nweb: {}", db.log_text(), web.log_text()))?;
    let denied = through.get("/admin/keys").await?;
    assert_eq!(
        (denied.status, denied.body.as_str()),
        (403, "RBAC: access denied")
    );
    let allowed = through.get("/users").await?;
    assert_eq!(allowed.status, 200);
    let denials = db
        .metric(r#"mesh_sidecar_authorization_denials_total{service="db",source="web"}"#)
        .await;
    assert_eq!(denials, Some(1));
    Ok(())
}

/// With ACLs on and denying by default, each sidecar works with a token that holds only its
/// service identity: it gets its leaf, its intentions and its upstream's instances through the
/// client agent, and web reaches db once an intention allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_work_with_service_identity_tokens_under_acls() -> anyhow::Result<()> {
    const MANAGEMENT: &str = "5d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a";
    let dir = tempfile::tempdir()?;
    let net = Net(40);
    let acl = |extra: &str| {
        format!(
            "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  tokens {{\n{extra}  }}\n}}\n"
        )
    };
    let server_config = dir.path().join("server-acl.hcl");
    std::fs::write(
        &server_config,
        acl(&format!("    initial_management = \"{MANAGEMENT}\"\n")),
    )?;
    // The client's own catalog writes carry the management token; requests to it that carry
    // no token get nothing (no default token).
    let client_config = dir.path().join("client-acl.hcl");
    std::fs::write(
        &client_config,
        acl(&format!("    agent = \"{MANAGEMENT}\"\n")),
    )?;
    let mut server = ServerProcess::new(
        net.ip(0),
        &dir.path().join("server"),
        vec![
            "-bootstrap".into(),
            "-config-file".into(),
            server_config.display().to_string(),
        ],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let mut agent = ServerProcess::client(
        net.ip(1),
        &dir.path().join("agent"),
        &[server.gossip_addr()],
    )?;
    agent.push_args([
        "-config-file".to_owned(),
        client_config.display().to_string(),
    ]);
    agent.spawn()?;
    agent.wait_for_leader().await?;
    let management = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}token={MANAGEMENT}")
    };
    let (http, agent_http) = (server.http(), agent.http());
    wait_json(
        &http,
        &management("/v1/connect/ca/roots"),
        "the CA and the management token",
        SOON,
        |r| r["Roots"].as_array().is_some_and(|roots| !roots.is_empty()),
    )
    .await?;
    let identity_token = |service: &str| {
        let (http, path) = (http.clone(), management("/v1/acl/token"));
        let body = json!({"ServiceIdentities": [{"ServiceName": service}]}).to_string();
        async move {
            let reply = http.put(&path, body).await?;
            anyhow::ensure!(reply.status == 200, "{reply:?}");
            Ok::<String, anyhow::Error>(
                reply.json()?["SecretID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let (db_token, web_token) = (identity_token("db").await?, identity_token("web").await?);
    let reply = http
        .put(
            &management("/v1/connect/intentions/exact?source=web&destination=db"),
            json!({"Action": "allow"}).to_string(),
        )
        .await?;
    anyhow::ensure!(reply.status == 200, "the intention: {reply:?}");

    // Registered by each service's own token.
    let db_app = EchoApp::start(net.ip(2), "db").await?;
    let bind = SocketAddr::from((net.ip(7), free_port_on(net.ip(7))?));
    let web_app = SocketAddr::from((net.ip(9), free_port_on(net.ip(9))?));
    for (id, app, sidecar_ip, upstreams, token) in [
        ("db", db_app.addr, net.ip(3), json!([]), &db_token),
        (
            "web",
            web_app,
            net.ip(4),
            upstream_db(bind, "tcp"),
            &web_token,
        ),
    ] {
        let public = SocketAddr::from((sidecar_ip, free_port_on(sidecar_ip)?));
        let body = json!({
            "ID": id, "Name": id, "Address": app.ip().to_string(), "Port": app.port(),
            "Connect": {"SidecarService": {
                "Address": sidecar_ip.to_string(), "Port": public.port(),
                "Check": {"Name": "Connect Sidecar Listening", "TCP": public.to_string(), "Interval": "1s"},
                "Proxy": {
                    "LocalServiceAddress": app.ip().to_string(), "LocalServicePort": app.port(),
                    "Upstreams": upstreams,
                }
            }}
        });
        let path = format!("/v1/agent/service/register?token={token}");
        let reply = agent_http.put(&path, body.to_string()).await?;
        anyhow::ensure!(reply.status == 200, "registering {id}: {reply:?}");
    }
    // Without a token, a registration is refused.
    let reply = agent_http
        .put(
            "/v1/agent/service/register",
            json!({"Name": "db"}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 403, "{reply:?}");

    let db = SidecarProcess::sidecar_for_with_token(
        "db",
        &agent.http_addr(),
        net.ip(3),
        dir.path(),
        &db_token,
    )?;
    let web = SidecarProcess::sidecar_for_with_token(
        "web",
        &agent.http_addr(),
        net.ip(4),
        dir.path(),
        &web_token,
    )?;
    wait_until("web reaches db through the sidecars", SOON, || async {
        echo_once(bind, "hello")
            .await
            .is_ok_and(|name| name == "db")
    })
    .await
    .with_context(|| format!("db: {}\nweb: {}", db.log_text(), web.log_text()))?;
    Ok(())
}
