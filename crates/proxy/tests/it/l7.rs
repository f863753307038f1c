//! HTTP through web's outbound listener and db's inbound listener: HTTP/1.1 and HTTP/2,
//! per-request authorization, retries on another instance, the request timeout, the
//! proxy's own answers, and the status codes counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode, Version};
use proxy::{
    Authorization, EjectionPolicy, HttpRequest, InboundConfig, InboundMetrics, OutboundConfig,
    Protocol, SpiffeId,
};

use crate::support::{
    allow_all, endpoint, http_request, payload, read_reply, start_inbound, start_outbound,
    wait_until, wait_until_async, AppMode, HttpApp, HttpConn, IntentionsCache, Running, TestCa,
    CLUSTER,
};

/// No instance is ejected during a test, so which instance a request goes to depends only on
/// the requests outstanding.
fn outbound_config(protocol: Protocol) -> OutboundConfig {
    OutboundConfig {
        protocol,
        ejection: EjectionPolicy {
            consecutive_failures: 1000,
            ..EjectionPolicy::default()
        },
        ..OutboundConfig::default()
    }
}

fn inbound_config(app: &HttpApp, protocol: Protocol) -> InboundConfig {
    InboundConfig {
        protocol,
        ..InboundConfig::new(app.addr)
    }
}

/// `db`'s sidecar in front of `app`, allowing `web` by intention.
/// web's sidecar: an outbound listener for `db` with `protocol`, over the instances at `db`.
async fn web_sidecar(
    ca: &mut TestCa,
    protocol: Protocol,
    db: &[std::net::SocketAddr],
) -> (Running<proxy::OutboundMetrics>, proxy::Endpoints) {
    let instances = db.iter().map(|addr| endpoint(*addr, "db")).collect();
    start_outbound(
        "db",
        outbound_config(protocol),
        ca.identity("web"),
        instances,
    )
    .await
}

async fn db_sidecar(ca: &mut TestCa, app: &HttpApp, protocol: Protocol) -> Running<InboundMetrics> {
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    start_inbound(
        inbound_config(app, protocol),
        &ca.identity("db"),
        intentions.authorizer("db"),
    )
    .await
}

/// An address where nothing listens (bound, then closed: connects are refused).
fn dead_addr() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn statuses(pairs: &[(u16, u64)]) -> BTreeMap<u16, u64> {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn http1_requests_and_streamed_bodies_go_through_both_sidecars() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let db = db_sidecar(&mut ca, &app, Protocol::Http).await;
    let (web, _) = web_sidecar(&mut ca, Protocol::Http, &[db.addr]).await;

    let mut conn = HttpConn::open(web.addr, Version::HTTP_11).await?;
    let reply = conn.get("/hello?x=1").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "db HTTP/1.1 GET /hello?x=1");
    // The application learns the caller's identity from db's sidecar.
    let xfcc = reply
        .headers
        .get("x-app-x-forwarded-client-cert")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        xfcc.starts_with("By=spiffe://") && xfcc.contains("/svc/db;URI=spiffe://"),
        "{xfcc}"
    );
    assert!(xfcc.ends_with("/ns/default/dc/dc1/svc/web"), "{xfcc}");

    let sent = payload(1_000_000);
    let reply = conn.post("/echo", sent.clone()).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == sent, "the echo differs from what was sent");

    wait_until("both requests to end", || {
        web.metrics.http.active.get() == 0 && db.metrics.http.active.get() == 0
    })
    .await?;
    let (outbound, inbound) = (web.metrics.snapshot(), db.metrics.snapshot());
    assert_eq!(outbound.http.requests, 2);
    assert_eq!(outbound.http.statuses, statuses(&[(200, 2)]));
    assert_eq!(outbound.http.duration.count, 2);
    assert_eq!((outbound.retries, outbound.failed), (0, 0));
    assert!(outbound.established >= 1);
    assert!(outbound.connect_latency.count >= 1);
    assert!(outbound.bytes_out > sent.len() as u64);
    assert!(outbound.bytes_in > sent.len() as u64);
    assert_eq!(inbound.http.requests, 2);
    assert_eq!(inbound.http.statuses, statuses(&[(200, 2)]));
    assert_eq!(inbound.http.duration.count, 2);
    assert_eq!((inbound.authorized, inbound.denied), (2, 0));
    assert_eq!(app.hits(), 2);
    Ok(())
}

#[tokio::test]
async fn http2_and_grpc_requests_are_multiplexed_with_trailers() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let db = db_sidecar(&mut ca, &app, Protocol::Grpc).await;
    let (web, _) = web_sidecar(&mut ca, Protocol::Grpc, &[db.addr]).await;

    let mut conn = HttpConn::open(web.addr, Version::HTTP_2).await?;
    let reply = conn.get("/first").await?;
    assert_eq!(reply.text(), "db HTTP/2.0 GET /first");

    // gRPC's needs: `te: trailers` reaches the application, trailers come back.
    let mut request = http_request(Method::POST, "/trailers", Bytes::from_static(b"call"))?;
    request
        .headers_mut()
        .insert("te", hyper::header::HeaderValue::from_static("trailers"));
    request.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    let reply = conn.fetch(request).await?;
    assert_eq!(reply.text(), "ok");
    assert_eq!(
        reply.headers.get("x-app-te").map(|v| v.as_bytes()),
        Some(&b"trailers"[..])
    );
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // Concurrent requests share the application's connection and the pooled one to db.
    let mut pending = Vec::new();
    for i in 0..10 {
        let mut stream = match &conn {
            HttpConn::Http2(sender) => HttpConn::Http2(sender.clone()),
            HttpConn::Http1(_) => anyhow::bail!("an HTTP/2 connection was opened"),
        };
        pending.push(tokio::spawn(async move {
            stream.get(&format!("/concurrent/{i}")).await
        }));
    }
    for (i, task) in pending.into_iter().enumerate() {
        let reply = task.await??;
        assert_eq!(reply.text(), format!("db HTTP/2.0 GET /concurrent/{i}"));
    }
    assert_eq!(
        db.metrics.accepted.get(),
        1,
        "one multiplexed mesh connection"
    );
    assert_eq!(web.metrics.snapshot().http.statuses, statuses(&[(200, 12)]));

    // An HTTP/1.1 application may use an HTTP/2 upstream: the sidecars speak HTTP/2.
    let mut http1 = HttpConn::open(web.addr, Version::HTTP_11).await?;
    assert_eq!(http1.get("/old").await?.text(), "db HTTP/2.0 GET /old");
    Ok(())
}

#[tokio::test]
async fn an_l7_rule_denies_a_path_with_403_and_allows_others_on_the_same_connection(
) -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let connection_checks = Arc::new(AtomicU64::new(0));
    let checks = connection_checks.clone();
    let no_admin = move |_: &SpiffeId, request: Option<&HttpRequest<'_>>| match request {
        None => {
            checks.fetch_add(1, Ordering::Relaxed);
            Authorization::deny("connections are not authorized for HTTP")
        }
        Some(request) if request.path.starts_with("/admin") => Authorization::deny("no admin"),
        Some(request) if request.headers.contains(&(":authority", "db")) => {
            Authorization::allow("not admin")
        }
        Some(_) => Authorization::deny("no authority"),
    };
    let db = start_inbound(
        inbound_config(&app, Protocol::Http),
        &ca.identity("db"),
        no_admin,
    )
    .await;

    // web's sidecar, as seen from db: one mTLS connection, several requests.
    let web_identity = ca.identity("web");
    let mut conn = HttpConn::open_mtls(db.addr, &web_identity, "db").await?;
    let denied = conn.get("/admin/users").await?;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.text(), "RBAC: access denied");
    assert_eq!(
        denied.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );
    assert_eq!(conn.get("/").await?.status, StatusCode::OK);
    // Paths are normalized before the rules see them.
    for sneaky in ["/x/../admin", "/%61dmin", "/./admin/"] {
        assert_eq!(
            conn.get(sneaky).await?.status,
            StatusCode::FORBIDDEN,
            "{sneaky}"
        );
    }
    assert_eq!(conn.get("/other").await?.text(), "db HTTP/1.1 GET /other");

    let inbound = db.metrics.snapshot();
    assert_eq!(inbound.accepted, 1, "every request came on one connection");
    assert_eq!((inbound.authorized, inbound.denied), (2, 4));
    assert_eq!(inbound.http.statuses, statuses(&[(200, 2), (403, 4)]));
    assert_eq!(connection_checks.load(Ordering::Relaxed), 0);
    assert_eq!(app.hits(), 2, "denied requests reached the application");
    Ok(())
}

#[tokio::test]
async fn status_code_metrics_count_what_each_side_served() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let no_admin = |_: &SpiffeId, request: Option<&HttpRequest<'_>>| match request {
        Some(request) if request.path == "/admin" => Authorization::deny("no admin"),
        _ => Authorization::allow("not admin"),
    };
    let db = start_inbound(
        inbound_config(&app, Protocol::Http),
        &ca.identity("db"),
        no_admin,
    )
    .await;
    let (web, _) = web_sidecar(&mut ca, Protocol::Http, &[db.addr]).await;

    let mut conn = HttpConn::open(web.addr, Version::HTTP_11).await?;
    assert_eq!(conn.get("/").await?.status, StatusCode::OK);
    assert_eq!(conn.get("/admin").await?.status, StatusCode::FORBIDDEN);
    assert_eq!(conn.get("/").await?.status, StatusCode::OK);

    wait_until("the requests to end", || web.metrics.http.active.get() == 0).await?;
    let expected = statuses(&[(200, 2), (403, 1)]);
    assert_eq!(web.metrics.snapshot().http.statuses, expected);
    assert_eq!(db.metrics.snapshot().http.statuses, expected);
    assert_eq!(web.metrics.http.statuses.get(403), 1);
    // A 403 is the instance's answer, not its failure: nothing is retried.
    assert_eq!(web.metrics.retries.get(), 0);
    Ok(())
}

/// Two instances of db, `first` answering 503 to everything and `second` serving.
struct TwoInstances {
    unavailable_app: HttpApp,
    serving_app: HttpApp,
    _unavailable: Running<InboundMetrics>,
    _serving: Running<InboundMetrics>,
    web: Running<proxy::OutboundMetrics>,
}

impl TwoInstances {
    async fn start(ca: &mut TestCa) -> TwoInstances {
        let unavailable_app = HttpApp::start("db1", AppMode::Unavailable).await;
        let serving_app = HttpApp::start("db2", AppMode::Serve).await;
        let db_identity = ca.identity("db");
        let config = |app: &HttpApp| inbound_config(app, Protocol::Http);
        let unavailable = start_inbound(config(&unavailable_app), &db_identity, allow_all).await;
        let serving = start_inbound(config(&serving_app), &db_identity, allow_all).await;
        let (web, _) = web_sidecar(ca, Protocol::Http, &[unavailable.addr, serving.addr]).await;
        TwoInstances {
            unavailable_app,
            serving_app,
            _unavailable: unavailable,
            _serving: serving,
            web,
        }
    }
}

/// Opens a `/hold` request through `web`, which ends up on the serving instance (retried
/// there if it went to another first) and stays outstanding there: from then on, power of two
/// choices sends every new request to the other instance first.
async fn hold_serving_instance(
    web: std::net::SocketAddr,
) -> anyhow::Result<(HttpConn, hyper::Response<hyper::body::Incoming>)> {
    let mut conn = HttpConn::open(web, Version::HTTP_11).await?;
    let held = conn
        .send(http_request(Method::GET, "/hold", Bytes::new())?)
        .await?;
    assert_eq!(held.status(), StatusCode::OK);
    Ok((conn, held))
}

#[tokio::test]
async fn a_503_is_retried_on_another_instance_for_get_but_not_for_post() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let mesh = TwoInstances::start(&mut ca).await;
    let (_held_conn, held) = hold_serving_instance(mesh.web.addr).await?;
    let (retries, unavailable_hits) = (mesh.web.metrics.retries.get(), mesh.unavailable_app.hits());

    let mut conn = HttpConn::open(mesh.web.addr, Version::HTTP_11).await?;
    let reply = conn.get("/").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "db2 HTTP/1.1 GET /");
    assert_eq!(mesh.unavailable_app.hits(), unavailable_hits + 1);
    assert_eq!(mesh.web.metrics.retries.get(), retries + 1);

    // Not idempotent: the 503 is the answer, even without a body to resend.
    let reply = conn
        .fetch(http_request(Method::POST, "/", Bytes::new())?)
        .await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "db1 unavailable");
    assert_eq!(mesh.unavailable_app.hits(), unavailable_hits + 2);
    assert_eq!(mesh.web.metrics.retries.get(), retries + 1);

    mesh.serving_app.release();
    assert_eq!(read_reply(held).await?.text(), "held");
    let served = mesh.web.metrics.snapshot().http.statuses;
    assert_eq!(served, statuses(&[(200, 2), (503, 1)]));
    Ok(())
}

#[tokio::test]
async fn a_killed_instance_is_retried_on_another_whatever_the_method() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let db_identity = ca.identity("db");
    let apps = [
        HttpApp::start("db1", AppMode::Serve).await,
        HttpApp::start("db2", AppMode::Serve).await,
    ];
    let mut killed = start_inbound(
        inbound_config(&apps[0], Protocol::Http),
        &db_identity,
        allow_all,
    )
    .await;
    let alive = start_inbound(
        inbound_config(&apps[1], Protocol::Http),
        &db_identity,
        allow_all,
    )
    .await;
    let (web, _) = web_sidecar(&mut ca, Protocol::Http, &[killed.addr, alive.addr]).await;
    // Its listener is closed: connects are refused.
    killed.drained().await?;

    let (_held_conn, held) = hold_serving_instance(web.addr).await?;
    let (retries, failures) = (
        web.metrics.retries.get(),
        web.metrics.connect_failures.get(),
    );
    let mut conn = HttpConn::open(web.addr, Version::HTTP_11).await?;
    assert_eq!(conn.get("/").await?.text(), "db2 HTTP/1.1 GET /");
    assert_eq!(web.metrics.connect_failures.get(), failures + 1);
    assert_eq!(web.metrics.retries.get(), retries + 1);

    // The body never left for the dead instance, so a POST goes on to the next one with it.
    let reply = conn.post("/submit", "the order").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "the order");
    assert_eq!(web.metrics.connect_failures.get(), failures + 2);
    assert_eq!(web.metrics.retries.get(), retries + 2);
    assert_eq!(apps[0].hits(), 0);

    apps[1].release();
    assert_eq!(read_reply(held).await?.text(), "held");
    assert_eq!(web.metrics.failed.get(), 0);
    Ok(())
}

#[tokio::test]
async fn the_request_timeout_answers_504() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let db = db_sidecar(&mut ca, &app, Protocol::Http).await;
    let config = OutboundConfig {
        request_timeout: Duration::from_millis(200),
        ..outbound_config(Protocol::Http)
    };
    let (web, _) = start_outbound(
        "db",
        config,
        ca.identity("web"),
        vec![endpoint(db.addr, "db")],
    )
    .await;

    let mut conn = HttpConn::open(web.addr, Version::HTTP_11).await?;
    let reply = conn.get("/slow").await?;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.text(), "upstream request timeout");
    let outbound = web.metrics.snapshot();
    assert_eq!(outbound.http.statuses, statuses(&[(504, 1)]));
    // A slow answer is not a failed instance: nothing is retried or ejected.
    assert_eq!((outbound.retries, outbound.ejections), (0, 0));
    Ok(())
}

#[tokio::test]
async fn without_an_instance_or_an_application_the_answer_is_503() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let (web, endpoints) = web_sidecar(&mut ca, Protocol::Http, &[]).await;
    let mut conn = HttpConn::open(web.addr, Version::HTTP_11).await?;
    let reply = conn.get("/").await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "no healthy upstream");
    assert_eq!(web.metrics.failed.get(), 1);

    // db's sidecar is up, its application is not: db's sidecar answers 503 itself.
    let config = InboundConfig {
        protocol: Protocol::Http,
        ..InboundConfig::new(dead_addr()?)
    };
    let db = start_inbound(config, &ca.identity("db"), allow_all).await;
    endpoints.replace(vec![endpoint(db.addr, "db")]);
    let reply = conn.get("/").await?;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.text(),
        "upstream connect error or disconnect/reset before headers"
    );
    assert_eq!(db.metrics.app_connect_failures.get(), 1);
    assert_eq!(db.metrics.http.statuses.get(503), 1);
    assert_eq!(web.metrics.snapshot().http.statuses, statuses(&[(503, 2)]));
    Ok(())
}

#[tokio::test]
async fn a_drain_lets_an_in_flight_request_finish() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = HttpApp::start("db", AppMode::Serve).await;
    let db = db_sidecar(&mut ca, &app, Protocol::Http2).await;
    let (mut web, _) = web_sidecar(&mut ca, Protocol::Http2, &[db.addr]).await;
    let mut conn = HttpConn::open(web.addr, Version::HTTP_2).await?;
    let held = conn
        .send(http_request(Method::GET, "/hold", Bytes::new())?)
        .await?;

    web.drain();
    let addr = web.addr;
    wait_until_async("the drain to close the listener", || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await?;
    app.release();
    assert_eq!(read_reply(held).await?.text(), "held");
    assert_eq!(web.drained().await?.cut, 0);
    Ok(())
}
