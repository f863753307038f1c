//! Instance choice on real sockets: a dead instance is failed over and ejected, a replaced
//! instance list applies to the next connection, and no instance closes the application's
//! connection.

use std::time::Duration;

use proxy::{EjectionPolicy, InboundConfig, OutboundConfig};
use tokio::net::TcpListener;

use crate::support::{
    endpoint, round_trip, start_inbound, start_outbound, Conn, EchoApp, IntentionsCache, TestCa,
    CLUSTER,
};

/// An address where nothing listens (bound, then closed: connects are refused).
async fn dead_addr() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

fn config() -> OutboundConfig {
    OutboundConfig {
        // The first failure ejects, for longer than any test runs.
        ejection: EjectionPolicy {
            consecutive_failures: 1,
            base: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..OutboundConfig::default()
    }
}

#[tokio::test]
async fn connections_fail_over_from_a_dead_instance_which_is_then_ejected() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let db_identity = ca.identity("db");
    let db = start_inbound(
        InboundConfig::new(app.addr),
        &db_identity,
        intentions.authorizer("db"),
    )
    .await;
    let dead = dead_addr().await;
    let (web, endpoints) = start_outbound(
        "db",
        config(),
        ca.identity("web"),
        vec![endpoint(dead, "db"), endpoint(db.addr, "db")],
    )
    .await;

    // While this connection is open the live instance has one outstanding connection and the
    // dead one none, so the next pick tries the dead one first (if this one did not already).
    let mut held = Conn::open(web.addr).await?;
    assert_eq!(held.echo(b"held").await?, b"held");
    for i in 0..10u8 {
        let message = [b'm', i];
        assert_eq!(round_trip(web.addr, &message).await?, message);
    }
    let outbound = web.metrics.snapshot();
    assert_eq!(outbound.failed, 0, "an application connection failed");
    assert_eq!(outbound.established, 11);
    assert_eq!(
        outbound.connect_failures, 1,
        "the dead instance was tried again"
    );
    assert_eq!(outbound.ejections, 1);
    let state = endpoints.state(dead).expect("still listed");
    assert!(state.ejected_until.is_some());
    assert_eq!(state.outstanding, 0);

    // A new instance list applies to the next connection.
    let other_app = EchoApp::start().await;
    let db2 = start_inbound(
        InboundConfig::new(other_app.addr),
        &db_identity,
        intentions.authorizer("db"),
    )
    .await;
    endpoints.replace(vec![endpoint(db2.addr, "db")]);
    assert_eq!(round_trip(web.addr, b"moved").await?, b"moved");
    assert_eq!(db2.metrics.authorized.get(), 1);
    assert_eq!(other_app.accepted(), 1);

    // The connection opened before the change still goes where it went.
    assert_eq!(held.echo(b"still").await?, b"still");
    assert!(held.finish().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn without_a_reachable_instance_the_application_connection_is_closed() -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let (web, endpoints) = start_outbound("db", config(), ca.identity("web"), Vec::new()).await;
    let mut conn = Conn::open(web.addr).await?;
    assert!(conn.read_until_closed().await?.is_empty());
    assert_eq!(web.metrics.failed.get(), 1);
    assert_eq!(web.metrics.connect_failures.get(), 0);

    // Every instance dead: each is tried once, then the connection is given up.
    let dead = [dead_addr().await, dead_addr().await];
    endpoints.replace(dead.iter().map(|addr| endpoint(*addr, "db")).collect());
    let mut conn = Conn::open(web.addr).await?;
    assert!(conn.read_until_closed().await?.is_empty());
    assert_eq!(web.metrics.failed.get(), 2);
    assert_eq!(web.metrics.connect_failures.get(), 2);
    Ok(())
}
