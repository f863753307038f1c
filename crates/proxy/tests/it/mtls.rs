//! web's outbound listener → db's inbound listener → the db application, and the ways that path
//! is refused.

use proxy::{Identity, InboundConfig, OutboundConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{
    allow_all, bounded, endpoint, payload, round_trip, start_inbound, start_outbound, wait_until,
    Conn, EchoApp, IntentionsCache, TestCa, CLUSTER, DC, FOREIGN_CLUSTER,
};

#[tokio::test]
async fn bytes_round_trip_from_web_to_db_over_mtls() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let db = start_inbound(
        InboundConfig::new(app.addr),
        &ca.identity("db"),
        intentions.authorizer("db"),
    )
    .await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        ca.identity("web"),
        vec![endpoint(db.addr, "db")],
    )
    .await;

    let sent = payload(300_000);
    let back = round_trip(web.addr, &sent).await?;
    assert!(back == sent, "the echo differs from what was sent");

    wait_until("both sides to close", || {
        db.metrics.active.get() == 0 && web.metrics.active.get() == 0
    })
    .await?;
    let (inbound, outbound) = (db.metrics.snapshot(), web.metrics.snapshot());
    assert_eq!((inbound.accepted, inbound.authorized), (1, 1));
    assert_eq!((inbound.denied, inbound.handshake_failures), (0, 0));
    let len = sent.len() as u64;
    assert_eq!((inbound.bytes_in, inbound.bytes_out), (len, len));
    assert_eq!((outbound.accepted, outbound.established), (1, 1));
    assert_eq!((outbound.bytes_out, outbound.bytes_in), (len, len));
    assert_eq!(app.accepted(), 1);
    Ok(())
}

#[tokio::test]
async fn a_denied_source_is_closed_counted_and_an_intention_change_applies_next(
) -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "deny");
    let db = start_inbound(
        InboundConfig::new(app.addr),
        &ca.identity("db"),
        intentions.authorizer("db"),
    )
    .await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        ca.identity("web"),
        vec![endpoint(db.addr, "db")],
    )
    .await;

    let back = round_trip(web.addr, b"let me in").await?;
    assert!(
        back.is_empty(),
        "a denied connection carried data: {back:?}"
    );
    wait_until("the denial to be counted", || db.metrics.denied.get() == 1).await?;
    assert_eq!(db.metrics.authorized.get(), 0);
    assert_eq!(app.accepted(), 0, "the application was reached");

    // The next connection sees the new intention; no reload of anything else.
    intentions.set("web", "db", "allow");
    assert_eq!(round_trip(web.addr, b"hello").await?, b"hello");
    assert_eq!(db.metrics.denied.get(), 1);
    assert_eq!(db.metrics.authorized.get(), 1);
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_rejected_at_the_handshake() -> anyhow::Result<()>
{
    let mut ca = TestCa::new(CLUSTER);
    let mut foreign = TestCa::new(FOREIGN_CLUSTER);
    let app = EchoApp::start().await;
    let db = start_inbound(InboundConfig::new(app.addr), &ca.identity("db"), allow_all).await;

    // The impostor trusts the mesh's roots (so its side of the handshake succeeds) but presents
    // a `web` leaf from another CA.
    let impostor = Identity::new(foreign.leaf("web"), ca.roots());
    let tcp = bounded("connect", TcpStream::connect(db.addr)).await??;
    let connector = TlsConnector::from(impostor.client_config("db", DC));
    // In TLS 1.3 the client finishes first; the server's verdict on its certificate arrives
    // as an alert on the first read.
    let attempt = bounded("the handshake", async {
        let mut tls = connector
            .connect(impostor.server_name("db", DC), tcp)
            .await?;
        tls.write_all(b"hello").await?;
        let mut buf = [0u8; 16];
        tls.read(&mut buf).await
    })
    .await?;
    assert!(
        !matches!(attempt, Ok(n) if n > 0),
        "the impostor got data back: {attempt:?}"
    );
    wait_until("the failed handshake to be counted", || {
        db.metrics.handshake_failures.get() == 1
    })
    .await?;
    assert_eq!(db.metrics.authorized.get() + db.metrics.denied.get(), 0);
    assert_eq!(app.accepted(), 0);
    Ok(())
}

#[tokio::test]
async fn an_upstream_presenting_another_identity_is_refused_by_the_client() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    // `api` listens where web expects `db`.
    let api = start_inbound(InboundConfig::new(app.addr), &ca.identity("api"), allow_all).await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        ca.identity("web"),
        vec![endpoint(api.addr, "db")],
    )
    .await;

    let mut conn = Conn::open(web.addr).await?;
    // Had the impostor been accepted, this would come back. The write itself may fail once the
    // sidecar has given up on the connection.
    let _ = conn.0.write_all(b"hello").await;
    let _ = conn.0.shutdown().await;
    let back = conn.read_until_closed().await?;
    assert!(
        back.is_empty(),
        "data came back through an impostor: {back:?}"
    );
    let outbound = web.metrics.snapshot();
    assert_eq!(outbound.handshake_failures, 1);
    assert_eq!((outbound.established, outbound.failed), (0, 1));
    assert_eq!(api.metrics.authorized.get(), 0);
    assert_eq!(app.accepted(), 0);
    Ok(())
}
