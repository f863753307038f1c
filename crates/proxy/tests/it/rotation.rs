//! Root rotation applied through hot reload: established connections keep working, new
//! connections use the new leaves, and the cross-signed root bridges a peer that still trusts
//! only the old root.

use proxy::{InboundConfig, OutboundConfig};

use crate::support::{
    endpoint, round_trip, start_inbound, start_outbound, Conn, EchoApp, IntentionsCache, TestCa,
    CLUSTER,
};

#[tokio::test]
async fn a_rotation_keeps_established_connections_and_new_ones_use_the_new_leaves(
) -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let db_identity = ca.identity("db");
    let web_identity = ca.identity("web");
    let db = start_inbound(
        InboundConfig::new(app.addr),
        &db_identity,
        intentions.authorizer("db"),
    )
    .await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        web_identity.clone(),
        vec![endpoint(db.addr, "db")],
    )
    .await;
    let mut established = Conn::open(web.addr).await?;
    assert_eq!(established.echo(b"before").await?, b"before");

    ca.rotate();
    db_identity.set_leaf(ca.leaf("db"));
    db_identity.set_roots(ca.roots());
    web_identity.set_leaf(ca.leaf("web"));
    web_identity.set_roots(ca.roots());
    assert_eq!(established.echo(b"during").await?, b"during");
    assert_eq!(round_trip(web.addr, b"new").await?, b"new");

    // The old root is pruned. Only the new leaves chain to what is left, so a connection that
    // succeeds now proves both sides presented them.
    db_identity.set_roots(ca.active_root_only());
    web_identity.set_roots(ca.active_root_only());
    assert_eq!(round_trip(web.addr, b"pruned").await?, b"pruned");

    assert_eq!(established.echo(b"after").await?, b"after");
    assert!(established.finish().await?.is_empty());
    assert_eq!(db.metrics.handshake_failures.get(), 0);
    assert_eq!(web.metrics.failed.get(), 0);
    assert_eq!(db.metrics.authorized.get(), 3);
    Ok(())
}

/// Which side holds a leaf issued after the rotation; the other keeps its leaf from before and
/// trusts only the old root.
#[derive(Debug, Clone, Copy)]
enum Renewed {
    Client,
    Server,
}

async fn one_side_renewed(renewed: Renewed) -> anyhow::Result<()> {
    let mut ca = TestCa::new(CLUSTER);
    let (renewed_service, old_service) = match renewed {
        Renewed::Client => ("web", "db"),
        Renewed::Server => ("db", "web"),
    };
    let old_side = ca.identity(old_service);
    ca.rotate();
    // Built after the rotation, so it has no old leaf to fall back on.
    let new_side = ca.identity(renewed_service);
    let (db_identity, web_identity) = match renewed {
        Renewed::Client => (old_side, new_side),
        Renewed::Server => (new_side, old_side),
    };

    let app = EchoApp::start().await;
    let intentions = IntentionsCache::new();
    intentions.set("web", "db", "allow");
    let db = start_inbound(
        InboundConfig::new(app.addr),
        &db_identity,
        intentions.authorizer("db"),
    )
    .await;
    let (web, _) = start_outbound(
        "db",
        OutboundConfig::default(),
        web_identity,
        vec![endpoint(db.addr, "db")],
    )
    .await;

    assert_eq!(round_trip(web.addr, b"bridged").await?, b"bridged");
    assert_eq!(db.metrics.handshake_failures.get(), 0);
    assert_eq!(web.metrics.handshake_failures.get(), 0);
    Ok(())
}

#[tokio::test]
async fn a_new_client_leaf_is_accepted_by_a_server_trusting_only_the_old_root() -> anyhow::Result<()>
{
    one_side_renewed(Renewed::Client).await
}

#[tokio::test]
async fn a_new_server_leaf_is_accepted_by_a_client_trusting_only_the_old_root() -> anyhow::Result<()>
{
    one_side_renewed(Renewed::Server).await
}
