//! ACLs as Consul clients see them: bootstrap, tokens and policies, 401 when off, 403 texts,
//! list filtering, and a matrix of endpoints called with no token, an unknown one, a read
//! token and a write token.

use serde_json::json;

use super::*;

const ANONYMOUS: &str = "00000000-0000-0000-0000-000000000002";

async fn acl_fixture() -> Fixture {
    let fx = Fixture::with_acl(AclSettings {
        enabled: true,
        default_policy: ::acl::DefaultPolicy::Deny,
        tokens: AgentTokens::default(),
    })
    .await;
    // What a leader does when it takes over with ACLs on.
    let op = ::acl::AclOp::Initialize {
        initial_management: None,
    };
    fx.node
        .write(consensus::Op::Acl(Box::new(op)))
        .await
        .expect("initialize");
    fx
}

/// Sends with `X-Consul-Token` (none when `token` is empty).
async fn send_as(fx: &Fixture, token: &str, method: &str, uri: &str, body: &str) -> Reply {
    let (status, headers, bytes) =
        super::request_as(fx.app.clone(), token, method, uri, body.as_bytes()).await;
    // A snapshot's body is an archive, not text.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, headers, text)
}

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
}

/// Bootstraps and returns the management secret.
async fn bootstrap(fx: &Fixture) -> String {
    let (status, _, body) = send_as(fx, "", "PUT", "/v1/acl/bootstrap", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = json_body(&body);
    assert_eq!(
        token["ID"], token["SecretID"],
        "the legacy ID is the secret"
    );
    assert_eq!(
        token["Policies"],
        json!([{"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}])
    );
    assert_eq!(token["Description"], "Bootstrap Token (Global Management)");
    token["SecretID"].as_str().expect("secret").to_owned()
}

/// Creates a policy with `rules` and a token linked to it by name; returns its secret.
async fn token_with(fx: &Fixture, management: &str, name: &str, rules: &str) -> String {
    let policy = json!({"Name": name, "Rules": rules}).to_string();
    let (status, _, body) = send_as(fx, management, "PUT", "/v1/acl/policy", &policy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = json!({"Description": name, "Policies": [{"Name": name}]}).to_string();
    let (status, _, body) = send_as(fx, management, "PUT", "/v1/acl/token", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let made = json_body(&body);
    assert_eq!(made["Policies"][0]["Name"], name);
    made["SecretID"].as_str().expect("secret").to_owned()
}

#[tokio::test]
async fn with_acls_off_the_acl_endpoints_answer_401() {
    let fx = Fixture::new().await;
    for (method, path) in [
        ("PUT", "/v1/acl/bootstrap"),
        ("GET", "/v1/acl/tokens"),
        ("GET", "/v1/acl/token/self"),
        ("PUT", "/v1/acl/policy"),
        ("GET", "/v1/acl/roles"),
    ] {
        let (status, headers, body) = send_as(&fx, "", method, path, "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::UNAUTHORIZED, "ACL support disabled"),
            "{method} {path}"
        );
        assert_eq!(
            header_str(&headers, "X-Consul-Default-ACL-Policy"),
            Some("allow")
        );
    }
    // And nothing else asks for a token.
    let (status, _, _) = send_as(&fx, "", "PUT", "/v1/kv/a", "x").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bootstrap_once_then_403_with_the_reset_index() {
    let fx = acl_fixture().await;
    let management = bootstrap(&fx).await;
    let (status, _, body) = send_as(&fx, "", "PUT", "/v1/acl/bootstrap", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.starts_with("ACL bootstrap no longer allowed (reset index: "),
        "{body}"
    );
    let (status, _, body) = send_as(&fx, &management, "GET", "/v1/acl/token/self", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&body)["SecretID"], management);
}

#[tokio::test]
async fn denials_use_consuls_texts_and_headers() {
    let fx = acl_fixture().await;
    let management = bootstrap(&fx).await;
    let (status, headers, body) = send_as(&fx, "", "GET", "/v1/kv/a", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        format!("Permission denied: token with AccessorID '{ANONYMOUS}' lacks permission 'key:read' on \"a\"")
    );
    assert_eq!(
        header_str(&headers, "X-Consul-Default-ACL-Policy"),
        Some("deny")
    );
    let (status, _, body) = send_as(&fx, "nope", "GET", "/v1/kv/a", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "ACL not found")
    );
    // Also through `?token=` and `Authorization: Bearer`.
    let (status, _, _) =
        send_as(&fx, "", "PUT", &format!("/v1/kv/a?token={management}"), "x").await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::builder()
        .method("GET")
        .uri("/v1/kv/a")
        .header(header::AUTHORIZATION, format!("bearer {management}"))
        .body(Body::empty())
        .expect("request");
    let resp = fx.app.clone().oneshot(req).await.expect("router");
    assert_eq!(resp.status(), StatusCode::OK);
    let reader = token_with(&fx, &management, "ops-read", r#"operator = "read""#).await;
    let (status, _, body) = send_as(
        &fx,
        &reader,
        "PUT",
        "/v1/operator/autopilot/configuration",
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.ends_with("lacks permission 'operator:write'"),
        "{body}"
    );
}

#[tokio::test]
async fn lists_keep_what_the_token_may_read() {
    let fx = acl_fixture().await;
    let management = bootstrap(&fx).await;
    for key in ["app/one", "app/two", "secret/key"] {
        let (status, _, _) = send_as(&fx, &management, "PUT", &format!("/v1/kv/{key}"), "v").await;
        assert_eq!(status, StatusCode::OK);
    }
    for (node, service) in [("n1", "web"), ("n2", "db")] {
        let body = json!({"Node": node, "Address": "10.0.0.1", "Service": {"Service": service}});
        let (status, _, text) = send_as(
            &fx,
            &management,
            "PUT",
            "/v1/catalog/register",
            &body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let reader = token_with(
        &fx,
        &management,
        "app-reader",
        r#"
key_prefix "app/" { policy = "read" }
service "web" { policy = "read" }
node_prefix "" { policy = "read" }
"#,
    )
    .await;
    let (status, headers, body) = send_as(&fx, &reader, "GET", "/v1/kv/?recurse", "").await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<_> = json_body(&body)
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["Key"].as_str().expect("key").to_owned())
        .collect();
    assert_eq!(keys, ["app/one", "app/two"]);
    assert_eq!(
        header_str(&headers, "X-Consul-Results-Filtered-By-ACLs"),
        Some("true")
    );
    let (_, headers, body) = send_as(&fx, &reader, "GET", "/v1/kv/app/?keys", "").await;
    assert_eq!(json_body(&body), json!(["app/one", "app/two"]));
    assert_eq!(
        header_str(&headers, "X-Consul-Results-Filtered-By-ACLs"),
        None
    );
    let (_, headers, body) = send_as(&fx, &reader, "GET", "/v1/catalog/services", "").await;
    assert_eq!(json_body(&body), json!({"web": []}));
    assert_eq!(
        header_str(&headers, "X-Consul-Results-Filtered-By-ACLs"),
        Some("true")
    );
    let (_, _, body) = send_as(&fx, &reader, "GET", "/v1/health/service/db", "").await;
    assert_eq!(json_body(&body), json!([]));
    // Management sees everything, unfiltered.
    let (_, headers, body) = send_as(&fx, &management, "GET", "/v1/catalog/services", "").await;
    assert_eq!(json_body(&body), json!({"db": [], "web": []}));
    assert_eq!(
        header_str(&headers, "X-Consul-Results-Filtered-By-ACLs"),
        None
    );
}

#[tokio::test]
async fn every_listed_endpoint_answers_each_kind_of_token() {
    let fx = acl_fixture().await;
    let management = bootstrap(&fx).await;
    let (status, _, _) = send_as(&fx, &management, "PUT", "/v1/kv/k", "v").await;
    assert_eq!(status, StatusCode::OK);
    let read = token_with(
        &fx,
        &management,
        "read",
        r#"
key_prefix "" { policy = "read" }
operator = "read"
acl = "read"
agent_prefix "" { policy = "read" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
session_prefix "" { policy = "read" }
"#,
    )
    .await;
    let write = token_with(
        &fx,
        &management,
        "write",
        r#"
key_prefix "" { policy = "write" }
operator = "write"
acl = "write"
service_prefix "" {
  policy = "write"
  intentions = "write"
}
node_prefix "" { policy = "write" }
"#,
    )
    .await;
    const OK: StatusCode = StatusCode::OK;
    const DENIED: StatusCode = StatusCode::FORBIDDEN;
    // A transaction reports a refused op in its errors, with Consul's 409.
    const REFUSED: StatusCode = StatusCode::CONFLICT;
    const MISSING: StatusCode = StatusCode::NOT_FOUND;
    let register = r#"{"Node":"n9","Address":"10.0.0.9","Service":{"Service":"web"}}"#;
    let txn = r#"[{"KV":{"Verb":"set","Key":"t","Value":"dg=="}}]"#;
    let intention = r#"{"SourceName":"a","DestinationName":"b","Action":"allow"}"#;
    let defaults = r#"{"Kind":"service-defaults","Name":"web","Protocol":"http"}"#;
    // (method, path, body, with no token, an unknown token, the read token, the write token)
    let matrix: &[(&str, &str, &str, [StatusCode; 4])] = &[
        ("GET", "/v1/kv/k", "", [DENIED, DENIED, OK, OK]),
        ("PUT", "/v1/kv/k", "v", [DENIED, DENIED, DENIED, OK]),
        ("GET", "/v1/status/leader", "", [OK, OK, OK, OK]),
        (
            "GET",
            "/v1/operator/raft/configuration",
            "",
            [DENIED, DENIED, OK, OK],
        ),
        (
            "GET",
            "/v1/operator/autopilot/configuration",
            "",
            [DENIED, DENIED, OK, OK],
        ),
        ("GET", "/v1/acl/tokens", "", [DENIED, DENIED, OK, OK]),
        ("GET", "/v1/acl/policies", "", [DENIED, DENIED, OK, OK]),
        (
            "PUT",
            "/v1/acl/policy",
            r#"{"Name":"p"}"#,
            [DENIED, DENIED, DENIED, OK],
        ),
        ("GET", "/v1/agent/self", "", [DENIED, DENIED, OK, DENIED]),
        // `acl:write` may take snapshots, as Consul's `Snapshot` rule decides.
        ("GET", "/v1/snapshot", "", [DENIED, DENIED, DENIED, OK]),
        ("GET", "/v1/connect/ca/roots", "", [OK, OK, OK, OK]),
        (
            "PUT",
            "/v1/catalog/register",
            register,
            [DENIED, DENIED, DENIED, OK],
        ),
        ("GET", "/v1/catalog/services", "", [OK, DENIED, OK, OK]),
        ("GET", "/v1/health/service/web", "", [OK, DENIED, OK, OK]),
        ("GET", "/v1/session/list", "", [OK, DENIED, OK, OK]),
        ("PUT", "/v1/txn", txn, [REFUSED, DENIED, REFUSED, OK]),
        ("GET", "/v1/connect/intentions", "", [OK, DENIED, OK, OK]),
        (
            "POST",
            "/v1/connect/intentions",
            intention,
            [DENIED, DENIED, DENIED, OK],
        ),
        ("PUT", "/v1/config", defaults, [DENIED, DENIED, DENIED, OK]),
        (
            "GET",
            "/v1/config/service-defaults/web",
            "",
            [DENIED, DENIED, OK, OK],
        ),
        (
            "GET",
            "/v1/config/proxy-defaults/global",
            "",
            [MISSING, DENIED, MISSING, MISSING],
        ),
        (
            "GET",
            "/v1/config/service-defaults",
            "",
            [OK, DENIED, OK, OK],
        ),
        (
            "DELETE",
            "/v1/kv/?recurse",
            "",
            [DENIED, DENIED, DENIED, OK],
        ),
    ];
    for (method, path, body, expected) in matrix {
        for (token, want) in ["", "not-a-token", &read, &write].into_iter().zip(expected) {
            let (status, _, text) = send_as(&fx, token, method, path, body).await;
            assert_eq!(
                status, *want,
                "{method} {path} with token {token:?}: {text}"
            );
            if status == DENIED {
                assert!(
                    text == "ACL not found" || text.starts_with("Permission denied: "),
                    "{method} {path}: {text}"
                );
            }
        }
    }
    // Secrets show only to tokens that may write ACLs.
    let (_, _, body) = send_as(&fx, &read, "GET", "/v1/acl/tokens", "").await;
    assert!(json_body(&body)
        .as_array()
        .expect("list")
        .iter()
        .all(|t| t["SecretID"] == "<hidden>"));
}
