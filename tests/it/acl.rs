//! ACLs on a real server: the configured initial management token is created by the leader,
//! requests without it are refused, and bootstrapping is then closed.

use test_support::tls::{client_config, TestCerts};
use test_support::ServerProcess;

const MANAGEMENT: &str = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";

/// Writes an agent configuration with ACLs on, denying by default, with [`MANAGEMENT`] as the
/// initial management token, into `dir`; returns its path.
fn acl_config(dir: &std::path::Path) -> anyhow::Result<String> {
    let config = dir.join("acl.hcl");
    std::fs::write(
        &config,
        format!(
            "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  tokens {{\n    initial_management = \"{MANAGEMENT}\"\n  }}\n}}\n"
        ),
    )?;
    Ok(config.to_string_lossy().into_owned())
}

/// `path` with `?token=` (or `&token=`) `secret`.
fn with_secret(path: &str, secret: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}token={secret}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_acls_creates_its_management_token_and_enforces() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = acl_config(dir.path())?;
    let server = ServerProcess::start(&dir.path().join("data"), &["-config-file", &config]).await?;
    let http = server.http();
    let with_token = |path: &str| with_secret(path, MANAGEMENT);
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
    let config = acl_config(dir.path())?;
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
    let with_token = |path: &str| with_secret(path, MANAGEMENT);
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

    // Its anti-entropy writes carry its agent token: without one, the server refuses them.
    test_support::wait_until(
        "the server refuses the client's token-less catalog writes",
        std::time::Duration::from_secs(30),
        || {
            let log = client.log_text();
            std::future::ready(log.contains("anti-entropy") && log.contains("Permission denied"))
        },
    )
    .await?;
    let in_catalog = |http: test_support::Http| async move {
        let path = format!("/v1/catalog/service/api?token={MANAGEMENT}");
        http.get(&path)
            .await
            .ok()
            .and_then(|r| r.json().ok())
            .and_then(|v| v.as_array().map(|rows| !rows.is_empty()))
            .unwrap_or(false)
    };
    assert!(!in_catalog(server.http()).await);
    let agent_token = format!(r#"{{"Token": "{MANAGEMENT}"}}"#);
    let reply = http
        .put(&with_token("/v1/agent/token/agent"), agent_token)
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    test_support::wait_until(
        "the client syncs its service with its agent token",
        std::time::Duration::from_secs(90),
        || in_catalog(server.http()),
    )
    .await?;

    // Forwarded to the server, which checks them.
    let reply = http.put("/v1/kv/from-client", "v").await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = http.put(&with_token("/v1/kv/from-client"), "v").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "true"));

    // The agent's default token, set through the API, answers requests that carry none.
    let body = format!(r#"{{"Token": "{MANAGEMENT}"}}"#);
    let reply = http.put("/v1/agent/token/default", body.clone()).await?;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = http
        .put(&with_token("/v1/agent/token/nope"), body.clone())
        .await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, "Token \"nope\" is unknown")
    );
    let reply = http
        .put(&with_token("/v1/agent/token/default"), body)
        .await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http.get("/v1/agent/self").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = http.put("/v1/kv/from-client", "w").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "true"),
        "the default token travels with what the client forwards"
    );
    Ok(())
}

/// Every route of a server's API, with ACLs and TLS on, called over HTTPS with no token, an
/// unknown token, a token that may read everything and one that may write everything (through
/// rules, not the management policy), in an order where each call finds what it needs. Left out: what would end the
/// server or the test (`/v1/agent/leave`, a snapshot restore, raft peer removal and leadership
/// transfer with one server, `/v1/agent/monitor`'s endless stream); their requirement is the
/// same table's (`api::authz::requirement`), exercised by their neighbours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_kind_of_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ip = std::net::Ipv4Addr::new(127, 0, 14, 10);
    // ACLs and TLS on: server RPC over mutual TLS, the API called over HTTPS with a client
    // certificate from the agent CA.
    let certs = TestCerts::new("dc1", "mesh")?;
    let server_cert = certs.server("server", &[std::net::IpAddr::V4(ip)])?;
    let client_cert = certs.client("cli")?;
    let https_port = test_support::free_port_on(ip)?;
    let config = dir.path().join("secure.hcl");
    std::fs::write(
        &config,
        format!(
            r#"
acl {{
  enabled        = true
  default_policy = "deny"
  tokens {{
    initial_management = "{MANAGEMENT}"
  }}
}}
ports {{
  https = {https_port}
}}
tls {{
  defaults {{
    ca_file         = "{ca}"
    cert_file       = "{cert}"
    key_file        = "{key}"
    verify_incoming = true
    verify_outgoing = true
  }}
  internal_rpc {{
    verify_server_hostname = true
  }}
}}
"#,
            ca = certs.ca_file().display(),
            cert = server_cert.cert.display(),
            key = server_cert.key.display(),
        ),
    )?;
    let config = config.to_string_lossy().into_owned();
    let mut server = ServerProcess::new(
        ip,
        &dir.path().join("server"),
        vec![
            "-bootstrap".into(),
            "-config-file".into(),
            config,
            // The keyring endpoints answer only with gossip encryption on.
            "-encrypt".into(),
            "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=".into(),
        ],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let http = test_support::Http::https(
        &ip.to_string(),
        https_port,
        client_config(&certs.ca_file(), Some(&client_cert))?,
    );
    let node = server.node_name();
    let as_management = |path: &str| with_secret(path, MANAGEMENT);
    test_support::wait_until(
        "the leader creates the initial management token",
        std::time::Duration::from_secs(30),
        || {
            let (http, path) = (http.clone(), as_management("/v1/acl/token/self"));
            async move { http.get(&path).await.is_ok_and(|r| r.status == 200) }
        },
    )
    .await?;
    let make_token = |name: &str, rules: &str| {
        let (http, name, rules) = (http.clone(), name.to_owned(), rules.to_owned());
        let policy_path = as_management("/v1/acl/policy");
        let token_path = as_management("/v1/acl/token");
        async move {
            let policy = serde_json::json!({"Name": name, "Rules": rules}).to_string();
            let reply = http.put(&policy_path, policy).await?;
            anyhow::ensure!(reply.status == 200, "policy {name}: {}", reply.body);
            let token = serde_json::json!({"Policies": [{"Name": name}]}).to_string();
            let reply = http.put(&token_path, token).await?;
            anyhow::ensure!(reply.status == 200, "token {name}: {}", reply.body);
            Ok::<String, anyhow::Error>(
                reply.json()?["SecretID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let everything = |level: &str| {
        format!(
            "acl = \"{level}\"\noperator = \"{level}\"\nkeyring = \"{level}\"\nmesh = \"{level}\"\n{}",
            ["agent", "event", "key", "node", "query", "session"]
                .iter()
                .map(|r| format!("{r}_prefix \"\" {{ policy = \"{level}\" }}\n"))
                .collect::<String>()
                + &format!("service_prefix \"\" {{\n  policy = \"{level}\"\n  intentions = \"{level}\"\n}}\n")
        )
    };
    let read = make_token("read-all", &everything("read")).await?;
    let write = make_token("write-all", &everything("write")).await?;

    // What the calls below read, made by the management token.
    for (method, path, body) in [
        ("PUT", "/v1/kv/m/k", "v"),
        ("PUT", "/v1/kv/m/gone", "v"),
        ("PUT", "/v1/kv/m/tree/a", "v"),
        (
            "PUT",
            "/v1/catalog/register",
            r#"{"Node":"n9","Address":"10.0.0.9","Service":{"Service":"web","ID":"web"}}"#,
        ),
        (
            "PUT",
            "/v1/agent/service/register",
            r#"{"Name":"api","ID":"api"}"#,
        ),
    ] {
        let reply = http
            .request(method.parse()?, &as_management(path), body.to_owned())
            .await?;
        anyhow::ensure!(reply.status == 200, "{method} {path}: {}", reply.body);
    }
    let session = http
        .put(
            &as_management("/v1/session/create"),
            format!(r#"{{"Node":"{node}"}}"#),
        )
        .await?
        .json()?["ID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let intention = http
        .post(
            &as_management("/v1/connect/intentions"),
            r#"{"SourceName":"x","DestinationName":"y","Action":"allow"}"#,
        )
        .await?
        .json()?["ID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!session.is_empty() && !intention.is_empty());

    const OK: u16 = 200;
    const DENIED: u16 = 403;
    // Nothing readable: KV answers 404 for an empty listing, as for no keys at all.
    const MISSING: u16 = 404;
    // A transaction puts a refused op in its errors, with Consul's 409.
    const REFUSED: u16 = 409;
    let open = [OK, OK, OK, OK];
    let listing = [OK, DENIED, OK, OK];
    let reading = [DENIED, DENIED, OK, OK];
    let writing = [DENIED, DENIED, DENIED, OK];
    let check = r#"{"Name":"c","ID":"c","TTL":"30s","ServiceID":"api"}"#;
    let authorize = r#"{"Target":"api","ClientCertURI":"spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web"}"#;
    let calls: Vec<(&str, String, String, [u16; 4])> = vec![
        ("GET", "/v1/kv/m/k".into(), String::new(), reading),
        (
            "GET",
            "/v1/kv/m/?recurse".into(),
            String::new(),
            [MISSING, DENIED, OK, OK],
        ),
        (
            "GET",
            "/v1/kv/m/?keys".into(),
            String::new(),
            [MISSING, DENIED, OK, OK],
        ),
        ("PUT", "/v1/kv/m/k".into(), "w".into(), writing),
        ("DELETE", "/v1/kv/m/gone".into(), String::new(), writing),
        (
            "DELETE",
            "/v1/kv/m/tree/?recurse".into(),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/txn".into(),
            r#"[{"KV":{"Verb":"set","Key":"m/t","Value":"dg=="}}]"#.into(),
            [REFUSED, DENIED, REFUSED, OK],
        ),
        ("GET", "/v1/session/list".into(), String::new(), listing),
        (
            "GET",
            format!("/v1/session/node/{node}"),
            String::new(),
            listing,
        ),
        (
            "GET",
            format!("/v1/session/info/{session}"),
            String::new(),
            listing,
        ),
        (
            "PUT",
            format!("/v1/session/renew/{session}"),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/session/create".into(),
            format!(r#"{{"Node":"{node}"}}"#),
            writing,
        ),
        ("GET", "/v1/catalog/datacenters".into(), String::new(), open),
        ("GET", "/v1/catalog/nodes".into(), String::new(), listing),
        ("GET", "/v1/catalog/services".into(), String::new(), listing),
        (
            "GET",
            "/v1/catalog/service/web".into(),
            String::new(),
            listing,
        ),
        (
            "GET",
            "/v1/catalog/connect/web".into(),
            String::new(),
            listing,
        ),
        ("GET", "/v1/catalog/node/n9".into(), String::new(), listing),
        (
            "GET",
            "/v1/catalog/node-services/n9".into(),
            String::new(),
            listing,
        ),
        (
            "PUT",
            "/v1/catalog/register".into(),
            r#"{"Node":"n8","Address":"10.0.0.8","Service":{"Service":"db"}}"#.into(),
            writing,
        ),
        (
            "PUT",
            "/v1/catalog/deregister".into(),
            r#"{"Node":"n8"}"#.into(),
            writing,
        ),
        ("GET", "/v1/health/node/n9".into(), String::new(), listing),
        (
            "GET",
            "/v1/health/checks/web".into(),
            String::new(),
            listing,
        ),
        (
            "GET",
            "/v1/health/service/web".into(),
            String::new(),
            listing,
        ),
        (
            "GET",
            "/v1/health/connect/web".into(),
            String::new(),
            listing,
        ),
        ("GET", "/v1/health/state/any".into(), String::new(), listing),
        ("GET", "/v1/status/leader".into(), String::new(), open),
        ("GET", "/v1/status/peers".into(), String::new(), open),
        ("GET", "/v1/agent/self".into(), String::new(), reading),
        ("GET", "/v1/agent/members".into(), String::new(), listing),
        ("GET", "/v1/agent/metrics".into(), String::new(), reading),
        ("PUT", "/v1/agent/reload".into(), String::new(), writing),
        (
            "PUT",
            "/v1/agent/maintenance?enable=false".into(),
            String::new(),
            writing,
        ),
        ("GET", "/v1/agent/services".into(), String::new(), listing),
        ("GET", "/v1/agent/checks".into(), String::new(), listing),
        (
            "GET",
            "/v1/agent/service/api".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/agent/health/service/id/api".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/agent/health/service/name/api".into(),
            String::new(),
            reading,
        ),
        (
            "PUT",
            "/v1/agent/service/maintenance/api?enable=false".into(),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/register".into(),
            check.into(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/pass/c".into(),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/warn/c".into(),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/fail/c".into(),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/update/c".into(),
            r#"{"Status":"passing"}"#.into(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/check/deregister/c".into(),
            String::new(),
            writing,
        ),
        (
            "GET",
            "/v1/agent/connect/ca/roots".into(),
            String::new(),
            open,
        ),
        (
            "GET",
            "/v1/agent/connect/ca/leaf/api".into(),
            String::new(),
            writing,
        ),
        (
            "POST",
            "/v1/agent/connect/authorize".into(),
            authorize.into(),
            writing,
        ),
        (
            "PUT",
            "/v1/event/fire/deploy".into(),
            String::new(),
            writing,
        ),
        ("GET", "/v1/event/list".into(), String::new(), listing),
        (
            "GET",
            "/v1/operator/raft/configuration".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/operator/autopilot/configuration".into(),
            String::new(),
            reading,
        ),
        (
            "PUT",
            "/v1/operator/autopilot/configuration".into(),
            r#"{"CleanupDeadServers":true}"#.into(),
            writing,
        ),
        (
            "GET",
            "/v1/operator/autopilot/health".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/operator/autopilot/state".into(),
            String::new(),
            reading,
        ),
        ("GET", "/v1/operator/keyring".into(), String::new(), reading),
        ("GET", "/v1/snapshot".into(), String::new(), writing),
        ("GET", "/v1/connect/ca/roots".into(), String::new(), open),
        (
            "GET",
            "/v1/connect/ca/configuration".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/connect/intentions".into(),
            String::new(),
            listing,
        ),
        (
            "GET",
            "/v1/connect/intentions/match?by=destination&name=y".into(),
            String::new(),
            listing,
        ),
        (
            "GET",
            "/v1/connect/intentions/check?source=x&destination=y".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/connect/intentions/exact?source=x&destination=y".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            format!("/v1/connect/intentions/{intention}"),
            String::new(),
            reading,
        ),
        (
            "PUT",
            "/v1/connect/intentions/exact?source=a&destination=b".into(),
            r#"{"Action":"deny"}"#.into(),
            writing,
        ),
        (
            "POST",
            "/v1/connect/intentions".into(),
            r#"{"SourceName":"c","DestinationName":"d","Action":"allow"}"#.into(),
            [DENIED, DENIED, DENIED, OK],
        ),
        (
            "PUT",
            "/v1/config".into(),
            r#"{"Kind":"service-defaults","Name":"web","Protocol":"http"}"#.into(),
            writing,
        ),
        (
            "GET",
            "/v1/config/service-defaults/web".into(),
            String::new(),
            reading,
        ),
        (
            "GET",
            "/v1/config/service-defaults".into(),
            String::new(),
            listing,
        ),
        (
            "DELETE",
            "/v1/config/service-defaults/web".into(),
            String::new(),
            writing,
        ),
        ("GET", "/v1/acl/tokens".into(), String::new(), reading),
        ("GET", "/v1/acl/policies".into(), String::new(), reading),
        ("GET", "/v1/acl/roles".into(), String::new(), reading),
        (
            "GET",
            "/v1/acl/policy/name/read-all".into(),
            String::new(),
            reading,
        ),
        ("GET", "/v1/acl/token/self".into(), String::new(), listing),
        (
            "PUT",
            "/v1/acl/role".into(),
            r#"{"Name":"r","Policies":[{"Name":"read-all"}]}"#.into(),
            writing,
        ),
        (
            "PUT",
            "/v1/acl/bootstrap".into(),
            String::new(),
            [DENIED; 4],
        ),
        (
            "DELETE",
            format!("/v1/connect/intentions/{intention}"),
            String::new(),
            writing,
        ),
        (
            "PUT",
            format!("/v1/session/destroy/{session}"),
            String::new(),
            writing,
        ),
        (
            "PUT",
            "/v1/agent/service/deregister/api".into(),
            String::new(),
            writing,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &calls {
        for (token, want) in ["", "00000000-aaaa-bbbb-cccc-000000000000", &read, &write]
            .into_iter()
            .zip(expected)
        {
            let path = if token.is_empty() {
                path.clone()
            } else {
                with_secret(path, token)
            };
            let reply = http.request(method.parse()?, &path, body.clone()).await?;
            if reply.status != *want {
                wrong.push(format!(
                    "{method} {path}: {} (wanted {want}): {}",
                    reply.status,
                    reply.body.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}
