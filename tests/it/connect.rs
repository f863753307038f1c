//! Connect on real agents: the leader creates the CA, a client agent gets a leaf for a local
//! service from a key it generated, a root rotation reaches the agent and a blocking leaf
//! request returns the leaf signed under the new root, while leaves of the old root stay
//! valid through the transition; and intentions written on a server decide the client agent's
//! authorizations once they reach its cache.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use test_support::{wait_json, ServerProcess};

const SOON: Duration = Duration::from_secs(30);

fn trusted(roots: &Value) -> Vec<String> {
    roots["Roots"]
        .as_array()
        .map(|roots| {
            roots
                .iter()
                .filter_map(|r| r["RootCert"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A bootstrapped server on `127.0.0.<server>` and a client agent joined to it on
/// `127.0.0.<server + 1>`, both ready.
async fn server_and_client(
    dir: &std::path::Path,
    server: u8,
) -> anyhow::Result<(ServerProcess, ServerProcess)> {
    let mut srv = ServerProcess::new(
        Ipv4Addr::new(127, 0, 0, server),
        &dir.join("server"),
        vec!["-bootstrap".into()],
    )?;
    srv.spawn()?;
    srv.wait_for_leader().await?;
    let mut client = ServerProcess::client(
        Ipv4Addr::new(127, 0, 0, server + 1),
        &dir.join("client"),
        &[srv.gossip_addr()],
    )?;
    client.spawn()?;
    client.wait_for_leader().await?;
    Ok((srv, client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_are_issued_to_agents_and_survive_a_root_rotation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut server, mut client) = server_and_client(dir.path(), 100).await?;
    let http = server.http();
    let agent = client.http();

    // The leader created the CA: one active root in a `<cluster-id>.mesh` trust domain.
    let roots = wait_json(&http, "/v1/connect/ca/roots", "the CA", SOON, |r| {
        r["Roots"].as_array().is_some_and(|roots| roots.len() == 1)
    })
    .await?;
    let trust_domain = roots["TrustDomain"].as_str().unwrap_or_default().to_owned();
    assert!(trust_domain.ends_with(".mesh"), "{roots}");
    assert_eq!(roots["Roots"][0]["ID"], roots["ActiveRootID"]);
    let config = http.get("/v1/connect/ca/configuration").await?;
    let config: Value = serde_json::from_str(&config.body)?;
    assert_eq!(config["Provider"], "consul");
    assert_eq!(config["Config"]["LeafCertTTL"], "72h");

    // The client agent's leaf for `web`: its own key, chained to the root, web's identity.
    let reply = agent.get("/v1/agent/connect/ca/leaf/web").await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let first: Value = serde_json::from_str(&reply.body)?;
    assert_eq!(first["Service"], "web");
    assert_eq!(
        first["ServiceURI"],
        format!("spiffe://{trust_domain}/ns/default/dc/dc1/svc/web")
    );
    assert!(first["PrivateKeyPEM"]
        .as_str()
        .is_some_and(|k| k.contains("PRIVATE KEY")));
    let index = reply
        .header("X-Consul-Index")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(index, first["ModifyIndex"].to_string());
    let first_pem = first["CertPEM"].as_str().unwrap_or_default().to_owned();
    ca::verify_leaf(&first_pem, &trusted(&roots), SystemTime::now())?;
    let agent_roots = agent.get("/v1/agent/connect/ca/roots").await?;
    let agent_roots: Value = serde_json::from_str(&agent_roots.body)?;
    assert_eq!(agent_roots["ActiveRootID"], roots["ActiveRootID"]);

    // Rotate to a root built from a key the operator supplies; a blocking leaf request
    // returns once the agent has a leaf from the new root.
    let waiting = {
        let agent = client.http();
        let path = format!("/v1/agent/connect/ca/leaf/web?index={index}&wait=60s");
        tokio::spawn(async move { agent.get(&path).await })
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let body = json!({"Provider": "consul", "Config": {"PrivateKey": key.serialize_pem()}});
    let reply = http
        .put("/v1/connect/ca/configuration", body.to_string())
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let rotated = wait_json(&http, "/v1/connect/ca/roots", "the new root", SOON, |r| {
        r["Roots"].as_array().is_some_and(|roots| roots.len() == 2)
    })
    .await?;
    assert_ne!(rotated["ActiveRootID"], roots["ActiveRootID"]);
    let renewed = waiting.await??;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let renewed: Value = serde_json::from_str(&renewed.body)?;
    assert_ne!(renewed["SerialNumber"], first["SerialNumber"]);
    let renewed_pem = renewed["CertPEM"].as_str().unwrap_or_default();
    // Both the old leaf and the new one verify against the roots now trusted.
    let now_trusted = trusted(&rotated);
    ca::verify_leaf(renewed_pem, &now_trusted, SystemTime::now())?;
    ca::verify_leaf(&first_pem, &now_trusted, SystemTime::now())?;
    // A peer that still trusts only the old root accepts the new leaf through the
    // cross-signed certificate it carries.
    ca::verify_leaf(renewed_pem, &trusted(&roots), SystemTime::now())?;

    client.kill9()?;
    server.kill9()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intention_change_reaches_the_agents_authorize() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut server, mut client) = server_and_client(dir.path(), 102).await?;
    let http = server.http();
    let agent = client.http();
    let roots = wait_json(&http, "/v1/connect/ca/roots", "the CA", SOON, |r| {
        r["TrustDomain"].as_str().is_some_and(|t| !t.is_empty())
    })
    .await?;
    let web = format!(
        "spiffe://{}/ns/default/dc/dc1/svc/web",
        roots["TrustDomain"].as_str().unwrap_or_default()
    );
    let request = json!({"Target": "db", "ClientCertURI": web}).to_string();
    let authorize = || async {
        let reply = agent
            .post("/v1/agent/connect/authorize", request.clone())
            .await?;
        anyhow::ensure!(reply.status == 200, "{reply:?}");
        Ok::<Value, anyhow::Error>(serde_json::from_str(&reply.body)?)
    };

    // No intention: ACLs are off, so the default allows.
    let first = authorize().await?;
    assert_eq!(first["Authorized"], true, "{first}");
    assert_eq!(first["Reason"], "Default behavior configured by ACLs");

    // A deny written on the server reaches the agent's cache.
    let reply = http
        .put(
            "/v1/connect/intentions/exact?source=web&destination=db",
            json!({"Action": "deny"}).to_string(),
        )
        .await?;
    assert_eq!(reply.body, "true", "{reply:?}");
    test_support::wait_until("the deny reaches the agent", SOON, || async {
        authorize().await.is_ok_and(|d| d["Authorized"] == false)
    })
    .await?;
    let denied = authorize().await?;
    let reason = denied["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("DENY") && reason.contains("default/web => default/db"),
        "{denied}"
    );
    // Consul's 400 for a request without a target.
    let reply = agent
        .post(
            "/v1/agent/connect/authorize",
            json!({"ClientCertURI": web}).to_string(),
        )
        .await?;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body, "Target service must be specified");

    client.kill9()?;
    server.kill9()?;
    Ok(())
}
