//! Graceful shutdown: listeners stop accepting, established connections finish, and whatever is
//! still open when the grace period ends is cut.

use std::time::Duration;

use proxy::{InboundConfig, OutboundConfig};
use tokio::net::TcpStream;

use crate::support::{
    endpoint, start_inbound, start_outbound, wait_until, wait_until_async, Conn, EchoApp,
    IntentionsCache, TestCa, CLUSTER,
};

#[tokio::test]
async fn a_drain_stops_accepting_and_lets_established_connections_finish() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let mut db = start_inbound(
        InboundConfig::new(app.addr),
        &ca.identity("db"),
        intentions.authorizer("db"),
    )
    .await;
    let (mut web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        ca.identity("web"),
        vec![endpoint(db.addr, "db")],
    )
    .await;
    let mut conn = Conn::open(web.addr).await?;
    assert_eq!(conn.echo(b"before").await?, b"before");

    web.drain();
    db.drain();
    // Both listening sockets close; a connect is refused from then on.
    for addr in [web.addr, db.addr] {
        wait_until_async("the listener to close", || async move {
            TcpStream::connect(addr).await.is_err()
        })
        .await?;
    }
    assert_eq!(conn.echo(b"during").await?, b"during");
    assert!(conn.finish().await?.is_empty());

    assert_eq!(web.drained().await?.cut, 0);
    assert_eq!(db.drained().await?.cut, 0);
    assert!(TcpStream::connect(web.addr).await.is_err());
    Ok(())
}

#[tokio::test]
async fn connections_still_open_after_the_grace_period_are_cut() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let config = InboundConfig {
        drain_grace: Duration::from_millis(50),
        ..InboundConfig::new(app.addr)
    };
    let mut db = start_inbound(config, &ca.identity("db"), intentions.authorizer("db")).await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        ca.identity("web"),
        vec![endpoint(db.addr, "db")],
    )
    .await;
    let mut idle = Conn::open(web.addr).await?;
    assert_eq!(idle.echo(b"idle").await?, b"idle");

    assert_eq!(db.drained().await?.cut, 1);
    // The cut travels back through web's sidecar to the application.
    assert!(idle.read_until_closed().await?.is_empty());
    wait_until("web's side to close", || web.metrics.active.get() == 0).await?;
    Ok(())
}
