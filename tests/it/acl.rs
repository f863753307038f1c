//! ACLs on a real server: the configured initial management token is created by the leader,
//! requests without it are refused, and bootstrapping is then closed.

use test_support::ServerProcess;

const MANAGEMENT: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_acls_creates_its_management_token_and_enforces() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("acl.hcl");
    std::fs::write(
        &config,
        format!(
            "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  tokens {{\n    initial_management = \"{MANAGEMENT}\"\n  }}\n}}\n"
        ),
    )?;
    let config = config.to_string_lossy().into_owned();
    let server = ServerProcess::start(&dir.path().join("data"), &["-config-file", &config]).await?;
    let http = server.http();
    let with_token = |path: &str| format!("{path}?token={MANAGEMENT}");
    test_support::wait_until(
        "the leader creates the initial management token",
        std::time::Duration::from_secs(30),
        || {
            let (http, path) = (http.clone(), with_token("/v1/acl/token/self"));
            async move { http.get(&path).await.is_ok_and(|r| r.status == 200) }
        },
    )
    .await?;

    let reply = http.put("/v1/kv/app/config", "v1").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("lacks permission 'key:write' on \"app/config\""),
        "{}",
        reply.body
    );
    assert_eq!(
        reply
            .headers
            .get("X-Consul-Default-ACL-Policy")
            .and_then(|v| v.to_str().ok()),
        Some("deny")
    );
    let reply = http.put(&with_token("/v1/kv/app/config"), "v1").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "true"));
    let reply = http.get("/v1/kv/app/config").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);

    // The initial management token ended bootstrapping.
    let reply = http.put("/v1/acl/bootstrap", "").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply
            .body
            .starts_with("ACL bootstrap no longer allowed (reset index: "),
        "{}",
        reply.body
    );
    // The server's own agent endpoints check tokens too.
    let service = r#"{"Name": "web", "Port": 80}"#;
    let reply = http.put("/v1/agent/service/register", service).await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("lacks permission 'service:write' on \"web\""),
        "{}",
        reply.body
    );
    let reply = http
        .put(&with_token("/v1/agent/service/register"), service)
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http.get("/v1/agent/services").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "{}"));
    let reply = http.get(&with_token("/v1/agent/services")).await?;
    assert!(reply.body.contains("\"web\""), "{}", reply.body);
    let reply = http.put("/v1/agent/service/deregister/web", "").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);

    // The builtin policies are there for operators to link.
    let reply = http
        .get(&with_token("/v1/acl/policy/name/global-management"))
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    Ok(())
}

/// A client agent with ACLs on checks its own endpoints with tokens the servers resolve, and
/// what it forwards is checked by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_agent_checks_tokens_through_the_servers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("acl.hcl");
    std::fs::write(
        &config,
        format!(
            "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  tokens {{\n    initial_management = \"{MANAGEMENT}\"\n  }}\n}}\n"
        ),
    )?;
    let config = config.to_string_lossy().into_owned();
    let ip = |last| std::net::Ipv4Addr::new(127, 0, 14, last);
    let mut server = ServerProcess::new(
        ip(1),
        &dir.path().join("server"),
        vec!["-bootstrap".into(), "-config-file".into(), config.clone()],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let mut client =
        ServerProcess::client(ip(2), &dir.path().join("client"), &[server.gossip_addr()])?;
    client.push_args(["-config-file", config.as_str()]);
    client.spawn()?;
    client.wait_for_leader().await?;
    let http = client.http();
    let with_token = |path: &str| format!("{path}?token={MANAGEMENT}");
    test_support::wait_until(
        "the client resolves the management token",
        std::time::Duration::from_secs(30),
        || {
            let (http, path) = (http.clone(), with_token("/v1/agent/self"));
            async move { http.get(&path).await.is_ok_and(|r| r.status == 200) }
        },
    )
    .await?;

    // The client's own endpoints.
    let reply = http.get("/v1/agent/self").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let service = r#"{"Name": "api", "Port": 81}"#;
    let reply = http.put("/v1/agent/service/register", service).await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.starts_with("Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks permission 'service:write' on \"api\""),
        "{}",
        reply.body
    );
    let reply = http
        .put("/v1/agent/service/register?token=wrong", service)
        .await?;
    assert_eq!((reply.status, reply.body.as_str()), (403, "ACL not found"));
    let reply = http
        .put(&with_token("/v1/agent/service/register"), service)
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Forwarded to the server, which checks them.
    let reply = http.put("/v1/kv/from-client", "v").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = http.put(&with_token("/v1/kv/from-client"), "v").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "true"));
    Ok(())
}
