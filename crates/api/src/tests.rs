//! The `/v1` API as a Consul client sees it, driven through the router without a socket: exact
//! status codes, bodies and headers against a single-voter raft over RocksDB in a temp dir.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use consensus::{NoPeers, Raft, RaftNode, ServerNode};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::*;

const NODE_NAME: &str = "node-a";
const DATACENTER: &str = "dc1";
/// The server RPC address the fixture's only raft member advertises.
const RAFT_ADDR: &str = "127.0.0.1:8300";
const KV_MAX: usize = 1024;
/// Bound on every wait for something that must happen.
const MUST_HAPPEN: Duration = Duration::from_secs(10);
/// How long something that must not happen is given to happen anyway.
const MUST_NOT_HAPPEN: Duration = Duration::from_millis(300);

type Reply = (StatusCode, HeaderMap, String);

/// One server: a single-voter raft over the RocksDB store in a temp dir, and its router.
struct Fixture {
    app: Router,
    node: RaftNode,
    telemetry: Telemetry,
    _dir: TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_acl(AclSettings::default()).await
    }

    async fn with_acl(acl: AclSettings) -> Fixture {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) = raft_store::open(dir.path()).expect("open store");
        let reader = sm.reader();
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        };
        let raft = Raft::new(
            1,
            config.validate().expect("valid raft config").into(),
            NoPeers,
            log,
            sm,
        )
        .await
        .expect("raft starts");
        raft.initialize(BTreeMap::from([(
            1,
            ServerNode::new(RAFT_ADDR, "node-a", ""),
        )]))
        .await
        .expect("initialize");
        raft.wait(Some(MUST_HAPPEN))
            .state(openraft::ServerState::Leader, "single voter leads")
            .await
            .expect("becomes leader");
        let node = RaftNode::new(raft, reader);
        let telemetry = Telemetry::new();
        telemetry.attach_raft(node.clone());
        let ctx = ApiContext {
            node: node.clone(),
            agent: AgentInfo {
                node_name: NODE_NAME.into(),
                node_id: "4e3ae2a5-3ab5-4a4c-9a8e-1f8f3a1c2b7d".into(),
                datacenter: DATACENTER.into(),
                server: true,
                dev: false,
                version: "0.1.0-test".into(),
                revision: "abc123".into(),
                advertise_addr: "127.0.0.1".into(),
                http_port: 8500,
                server_port: 8300,
                intention_default: intentions::DefaultPolicy::Acl { allow: true },
            },
            kv_max_value_size: KV_MAX,
            txn_max_req_len: 64 * 1024,
            session_ttl_min: Duration::from_secs(10),
            identity: rpc::Identity {
                raft_id: 1,
                node_name: NODE_NAME.into(),
                node_id: String::new(),
                rpc_addr: RAFT_ADDR.into(),
                initialized: true,
                log: None,
            },
            autopilot: rpc::Autopilot::new(rpc::ConnectionPool::new()),
            telemetry: telemetry.clone(),
            acl,
            data_dir: None,
        };
        let policy = ctx.acl.default_policy;
        let enforcer = enforcer(&ctx);
        // As `router` builds it, with the telemetry endpoints and no local agent.
        let observed = metrics::routes(metrics::Observed {
            telemetry: telemetry.clone(),
            local: None,
            prometheus: true,
            dev: false,
        });
        let routes = server_routes(ctx)
            .merge(observed)
            .route_layer(middleware::from_fn_with_state(enforcer, authz::enforce));
        let app = finish(routes, policy).layer(middleware::from_fn_with_state(
            telemetry.clone(),
            metrics::observe_http,
        ));
        Fixture {
            app,
            node,
            telemetry,
            _dir: dir,
        }
    }

    /// Sends a request as an HTTP client would (with `Content-Length` for a non-empty body)
    /// and returns the status, headers and body text.
    async fn send(&self, method: &str, uri: &str, body: impl AsRef<[u8]>) -> Reply {
        let (status, headers, bytes) = request(self.app.clone(), method, uri, body.as_ref()).await;
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
        (status, headers, text)
    }

    /// Starts a request in the background (a blocking query).
    fn spawn(&self, method: &str, uri: &str) -> JoinHandle<Reply> {
        let app = self.app.clone();
        let (method, uri) = (method.to_owned(), uri.to_owned());
        tokio::spawn(async move {
            let (status, headers, bytes) = request(app, &method, &uri, b"").await;
            (
                status,
                headers,
                String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
            )
        })
    }

    /// A write that must succeed with `true`; returns the raft index it was applied at.
    async fn put(&self, key: &str, value: &str) -> u64 {
        let (status, _, body) = self.send("PUT", &format!("/v1/kv/{key}"), value).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "true"),
            "PUT {key}"
        );
        self.applied()
    }

    fn applied(&self) -> u64 {
        self.node.reader().last_applied_index()
    }

    /// Creates a session from a JSON body and returns its ID.
    async fn session(&self, body: &str) -> String {
        let (status, _, text) = self.send("PUT", "/v1/session/create", body).await;
        assert_eq!(status, StatusCode::OK, "session create {body}: {text}");
        let created: Value = serde_json::from_str(&text).expect("JSON");
        created["ID"].as_str().expect("ID").to_owned()
    }

    /// Everything in the KV store, as `GET /v1/kv/?recurse` reports it (status, index, body).
    async fn kv_dump(&self) -> (StatusCode, u64, String) {
        let (status, headers, body) = self.send("GET", "/v1/kv/?recurse", "").await;
        (status, index(&headers), body)
    }
}

async fn request(
    app: Router,
    method: &str,
    uri: &str,
    body: &[u8],
) -> (StatusCode, HeaderMap, Bytes) {
    request_as(app, "", method, uri, body).await
}

/// A request with `X-Consul-Token: token` (no token header when `token` is empty).
async fn request_as(
    app: Router,
    token: &str,
    method: &str,
    uri: &str,
    body: &[u8],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut builder = Request::builder().method(method).uri(uri);
    if !token.is_empty() {
        builder = builder.header("X-Consul-Token", token);
    }
    if !body.is_empty() {
        builder = builder.header(header::CONTENT_LENGTH, body.len());
    }
    let req = builder
        .body(Body::from(body.to_vec()))
        .expect("valid request");
    let resp = app.oneshot(req).await.expect("infallible router");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

fn index(headers: &HeaderMap) -> u64 {
    header_str(headers, "X-Consul-Index")
        .expect("X-Consul-Index")
        .parse()
        .expect("numeric X-Consul-Index")
}

/// A `DirEntry` as Consul marshals it. `value` is the JSON of the value (`"\"aGk=\""` or
/// `"null"`).
fn entry(key: &str, value: &str, create: u64, modify: u64) -> String {
    format!(
        r#"{{"LockIndex":0,"Key":"{key}","Flags":0,"Value":{value},"CreateIndex":{create},"ModifyIndex":{modify}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// KV

#[tokio::test]
async fn kv_put_then_get_has_consul_shape_and_headers() {
    let fx = Fixture::new().await;
    let (status, headers, body) = fx.send("PUT", "/v1/kv/web/config", "hello").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    assert_eq!(
        header_str(&headers, "X-Consul-Default-ACL-Policy"),
        Some("allow")
    );
    let idx = fx.applied();

    let (status, headers, body) = fx.send("GET", "/v1/kv/web/config", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!("[{}]", entry("web/config", r#""aGVsbG8=""#, idx, idx))
    );
    for (name, value) in [
        ("Content-Type", "application/json".to_owned()),
        ("X-Consul-Index", idx.to_string()),
        ("X-Consul-KnownLeader", "true".to_owned()),
        ("X-Consul-LastContact", "0".to_owned()),
        ("X-Consul-Effective-Consistency", "leader".to_owned()),
        ("X-Consul-Default-ACL-Policy", "allow".to_owned()),
    ] {
        assert_eq!(header_str(&headers, name), Some(value.as_str()), "{name}");
    }

    // An overwrite keeps CreateIndex and moves ModifyIndex.
    let idx2 = fx.put("web/config", "hi").await;
    let (_, headers, body) = fx.send("GET", "/v1/kv/web/config", "").await;
    assert_eq!(
        body,
        format!("[{}]", entry("web/config", r#""aGk=""#, idx, idx2))
    );
    assert_eq!(index(&headers), idx2);

    // Consistency modes answer the same data and say which mode served them.
    for (query, mode) in [("?stale", "stale"), ("?consistent", "consistent")] {
        let (status, headers, same) = fx
            .send("GET", &format!("/v1/kv/web/config{query}"), "")
            .await;
        assert_eq!((status, &same), (StatusCode::OK, &body), "{query}");
        assert_eq!(
            header_str(&headers, "X-Consul-Effective-Consistency"),
            Some(mode)
        );
    }
}

#[tokio::test]
async fn kv_empty_value_is_null_and_flags_are_kept() {
    let fx = Fixture::new().await;
    let empty = fx.put("empty", "").await;
    let (status, _, body) = fx.send("PUT", "/v1/kv/flagged?flags=42", "x").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
    let flagged = fx.applied();
    #[rustfmt::skip]
    let cases = [
        ("/v1/kv/empty", format!("[{}]", entry("empty", "null", empty, empty))),
        ("/v1/kv/flagged", format!(r#"[{{"LockIndex":0,"Key":"flagged","Flags":42,"Value":"eA==","CreateIndex":{flagged},"ModifyIndex":{flagged}}}]"#)),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = fx.send("GET", uri, "").await;
        assert_eq!((status, body), (StatusCode::OK, expected), "{uri}");
    }
}

#[tokio::test]
async fn kv_miss_is_an_empty_404_that_still_carries_an_index() {
    let fx = Fixture::new().await;
    for uri in [
        "/v1/kv/missing",
        "/v1/kv/missing/?recurse",
        "/v1/kv/missing/?keys",
    ] {
        let (status, headers, body) = fx.send("GET", uri, "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, ""),
            "{uri}"
        );
        assert!(index(&headers) >= 1, "{uri}: index must never be 0");
        assert_eq!(header_str(&headers, "X-Consul-KnownLeader"), Some("true"));
    }
    // The root of an empty store lists no keys rather than 404, but has no entries.
    let (status, headers, body) = fx.send("GET", "/v1/kv/?keys", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    assert!(index(&headers) >= 1);
    let (status, _, body) = fx.send("GET", "/v1/kv/?recurse", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
}

#[tokio::test]
async fn kv_recurse_and_keys_listings() {
    let fx = Fixture::new().await;
    let a = fx.put("web/a", "1").await;
    let b = fx.put("web/sub/b", "2").await;
    let c = fx.put("web/sub/c", "3").await;
    let db = fx.put("db/x", "4").await;
    let web_a = entry("web/a", r#""MQ==""#, a, a);
    let web_b = entry("web/sub/b", r#""Mg==""#, b, b);
    let web_c = entry("web/sub/c", r#""Mw==""#, c, c);
    let db_x = entry("db/x", r#""NA==""#, db, db);
    #[rustfmt::skip]
    let cases: [(&str, u16, String, u64); 12] = [
        ("/v1/kv/web/?recurse", 200, format!("[{web_a},{web_b},{web_c}]"), c),
        ("/v1/kv/web/sub?recurse", 200, format!("[{web_b},{web_c}]"), c),
        ("/v1/kv/?recurse", 200, format!("[{db_x},{web_a},{web_b},{web_c}]"), db),
        ("/v1/kv/nope/?recurse", 404, String::new(), 1),
        ("/v1/kv/?keys", 200, r#"["db/x","web/a","web/sub/b","web/sub/c"]"#.into(), db),
        ("/v1/kv/web/?keys", 200, r#"["web/a","web/sub/b","web/sub/c"]"#.into(), c),
        ("/v1/kv/web/?keys&separator=/", 200, r#"["web/a","web/sub/"]"#.into(), c),
        // Consul's historic misspelling still works.
        ("/v1/kv/web/?keys&seperator=/", 200, r#"["web/a","web/sub/"]"#.into(), c),
        ("/v1/kv/?keys&separator=/", 200, r#"["db/","web/"]"#.into(), db),
        ("/v1/kv/web/sub/?keys&separator=/", 200, r#"["web/sub/b","web/sub/c"]"#.into(), c),
        ("/v1/kv/nope/?keys", 404, String::new(), 1),
        // `recurse` is ignored with `keys`, as in Consul.
        ("/v1/kv/db/?keys&recurse", 200, r#"["db/x"]"#.into(), db),
    ];
    for (uri, status, expected, idx) in cases {
        let (got, headers, body) = fx.send("GET", uri, "").await;
        assert_eq!((got.as_u16(), body), (status, expected), "{uri}");
        assert_eq!(index(&headers), idx, "{uri}: X-Consul-Index");
    }
}

#[tokio::test]
async fn kv_raw_returns_the_bytes_with_safe_headers() {
    let fx = Fixture::new().await;
    let value: &[u8] = b"<script>\x00\xff</script>";
    let (status, _, _) = fx.send("PUT", "/v1/kv/page", value).await;
    assert_eq!(status, StatusCode::OK);
    let idx = fx.applied();
    let (status, headers, body) = request(fx.app.clone(), "GET", "/v1/kv/page?raw", b"").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], value);
    let len = value.len().to_string();
    for (name, expected) in [
        ("Content-Type", "text/plain"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", "sandbox"),
        ("Content-Length", len.as_str()),
        ("X-Consul-KnownLeader", "true"),
    ] {
        assert_eq!(header_str(&headers, name), Some(expected), "{name}");
    }
    assert_eq!(index(&headers), idx);
    // `raw` does not apply to listings.
    let (status, headers, body) = fx.send("GET", "/v1/kv/pa?recurse&raw", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    assert_eq!(
        body,
        format!(
            "[{}]",
            entry("page", r#""PHNjcmlwdD4A/zwvc2NyaXB0Pg==""#, idx, idx)
        )
    );
}

#[tokio::test]
async fn kv_cas_creates_only_once_and_checks_the_modify_index() {
    let fx = Fixture::new().await;
    let (_, _, body) = fx.send("PUT", "/v1/kv/k?cas=0", "first").await;
    assert_eq!(body, "true", "cas=0 creates an absent key");
    let created = fx.applied();
    let stale = created + 100;
    #[rustfmt::skip]
    let cases = [
        ("/v1/kv/k?cas=0".to_owned(), "again", "false"),
        (format!("/v1/kv/k?cas={stale}"), "stale", "false"),
        (format!("/v1/kv/absent?cas={created}"), "x", "false"),
        (format!("/v1/kv/k?cas={created}"), "second", "true"),
        // The index moved with the successful write, so the same cas now fails.
        (format!("/v1/kv/k?cas={created}"), "third", "false"),
    ];
    let mut modified = created;
    for (uri, value, expected) in cases {
        let (status, _, body) = fx.send("PUT", &uri, value).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, expected),
            "PUT {uri}"
        );
        if expected == "true" {
            modified = fx.applied();
        }
    }
    let (_, _, body) = fx.send("GET", "/v1/kv/?recurse", "").await;
    assert_eq!(
        body,
        format!("[{}]", entry("k", r#""c2Vjb25k""#, created, modified))
    );
}

#[tokio::test]
async fn kv_acquire_and_release_with_sessions() {
    let fx = Fixture::new().await;
    let s1 = fx.session("").await;
    let s2 = fx.session("").await;
    let (_, _, body) = fx
        .send("PUT", &format!("/v1/kv/lock?acquire={s1}"), "held")
        .await;
    assert_eq!(body, "true");
    let locked = fx.applied();
    let held = format!(
        r#"[{{"LockIndex":1,"Key":"lock","Flags":0,"Value":"aGVsZA==","Session":"{s1}","CreateIndex":{locked},"ModifyIndex":{locked}}}]"#
    );
    let (_, _, body) = fx.send("GET", "/v1/kv/lock", "").await;
    assert_eq!(body, held);

    let refused = [
        (
            format!("/v1/kv/lock?acquire={s2}"),
            "other session cannot acquire",
        ),
        (
            format!("/v1/kv/lock?release={s2}"),
            "other session cannot release",
        ),
    ];
    for (uri, why) in refused {
        let (status, _, body) = fx.send("PUT", &uri, "stolen").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "false"), "{why}");
    }
    let (_, _, body) = fx.send("GET", "/v1/kv/lock", "").await;
    assert_eq!(body, held, "refused lock operations change nothing");

    // The holder re-acquiring updates the value without bumping LockIndex.
    let (_, _, body) = fx
        .send("PUT", &format!("/v1/kv/lock?acquire={s1}"), "again")
        .await;
    assert_eq!(body, "true");
    let reacquired = fx.applied();
    let (_, _, body) = fx.send("GET", "/v1/kv/lock", "").await;
    assert_eq!(
        body,
        format!(
            r#"[{{"LockIndex":1,"Key":"lock","Flags":0,"Value":"YWdhaW4=","Session":"{s1}","CreateIndex":{locked},"ModifyIndex":{reacquired}}}]"#
        )
    );

    let (_, _, body) = fx
        .send("PUT", &format!("/v1/kv/lock?release={s1}"), "free")
        .await;
    assert_eq!(body, "true");
    let released = fx.applied();
    let (_, _, body) = fx.send("GET", "/v1/kv/lock", "").await;
    assert_eq!(
        body,
        format!(
            r#"[{{"LockIndex":1,"Key":"lock","Flags":0,"Value":"ZnJlZQ==","CreateIndex":{locked},"ModifyIndex":{released}}}]"#
        ),
        "release clears Session and keeps LockIndex"
    );

    // Release has no lock delay: the other session can take it right away.
    let (_, _, body) = fx
        .send("PUT", &format!("/v1/kv/lock?acquire={s2}"), "mine")
        .await;
    assert_eq!(body, "true");
    let (_, _, body) = fx.send("GET", "/v1/kv/lock", "").await;
    assert!(body.contains(r#""LockIndex":2"#), "{body}");
    assert!(body.contains(&format!(r#""Session":"{s2}""#)), "{body}");
}

#[tokio::test]
async fn kv_deletes() {
    let fx = Fixture::new().await;
    fx.put("a", "1").await;
    fx.put("tree/x", "1").await;
    fx.put("tree/y/z", "1").await;
    fx.put("treehouse", "1").await;
    let kept = fx.put("kept", "1").await;
    #[rustfmt::skip]
    let cases = [
        ("/v1/kv/a", "true"),
        // Deleting an absent key is still `true`.
        ("/v1/kv/a", "true"),
        ("/v1/kv/tree/?recurse", "true"),
        ("/v1/kv/kept?cas=0", "false"),
        (&*format!("/v1/kv/kept?cas={}", kept + 1000), "false"),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = fx.send("DELETE", uri, "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, expected),
            "DELETE {uri}"
        );
    }
    let (_, _, keys) = fx.send("GET", "/v1/kv/?keys", "").await;
    assert_eq!(keys, r#"["kept","treehouse"]"#);

    let (_, _, body) = fx
        .send("DELETE", &format!("/v1/kv/kept?cas={kept}"), "")
        .await;
    assert_eq!(body, "true");
    let (status, _, _) = fx.send("GET", "/v1/kv/kept", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A recursive delete of the root empties the store.
    let (_, _, body) = fx.send("DELETE", "/v1/kv/?recurse", "").await;
    assert_eq!(body, "true");
    let (_, _, keys) = fx.send("GET", "/v1/kv/?keys", "").await;
    assert_eq!(keys, "[]");
}

#[tokio::test]
async fn bad_requests_get_consul_errors_and_write_nothing() {
    let fx = Fixture::new().await;
    fx.put("k", "original").await;
    let session = fx.session("").await;
    let ghost = "00000000-0000-0000-0000-00000000dead";
    let before = fx.kv_dump().await;

    let too_big = vec![b'x'; KV_MAX + 1];
    let too_big_text = "Request body(1025 bytes) too large, max size: 1024 bytes.";
    // (method, uri, body, status, body prefix)
    #[rustfmt::skip]
    let cases: Vec<(&str, String, &[u8], u16, String)> = vec![
        ("PUT", "/v1/kv/k?cas=0&acquire=x".into(), b"v", 400, "Conflicting flags: acquire=x&cas=0\n".into()),
        ("PUT", format!("/v1/kv/k?release={session}&acquire={session}"), b"v", 400, "Conflicting flags: ".into()),
        ("DELETE", "/v1/kv/k?recurse&cas=1".into(), b"", 400, "Conflicting flags: cas=1&recurse=\n".into()),
        ("GET", "/v1/kv/".into(), b"", 400, "Missing key name".into()),
        ("PUT", "/v1/kv/".into(), b"v", 400, "Missing key name".into()),
        ("DELETE", "/v1/kv/".into(), b"", 400, "Missing key name".into()),
        ("PUT", "/v1/kv/k?flags=abc".into(), b"v", 400, r#"strconv.ParseUint: parsing "abc": invalid syntax"#.into()),
        ("PUT", "/v1/kv/k?cas=-1".into(), b"v", 400, r#"strconv.ParseUint: parsing "-1": invalid syntax"#.into()),
        ("DELETE", "/v1/kv/k?cas=abc".into(), b"", 400, r#"strconv.ParseUint: parsing "abc": invalid syntax"#.into()),
        ("PUT", "/v1/kv/k".into(), &too_big, 413, too_big_text.into()),
        ("PUT", "/v1/kv/new".into(), &too_big, 413, too_big_text.into()),
        ("GET", "/v1/kv/k?dc=other".into(), b"", 500, "No path to datacenter".into()),
        ("PUT", "/v1/kv/k?dc=other".into(), b"v", 500, "No path to datacenter".into()),
        ("DELETE", "/v1/kv/k?dc=other".into(), b"", 500, "No path to datacenter".into()),
        ("GET", "/v1/kv/k?stale&consistent".into(), b"", 400, "Cannot specify ?stale with ?consistent, conflicting semantics.".into()),
        ("GET", "/v1/kv/k?index=abc".into(), b"", 400, "Invalid index".into()),
        ("GET", "/v1/kv/k?wait=xyz&index=1".into(), b"", 400, "Invalid wait time".into()),
        // Consul validates the read options of writes too, before writing anything.
        ("PUT", "/v1/kv/k?index=abc".into(), b"v", 400, "Invalid index".into()),
        ("PUT", "/v1/kv/new?wait=xyz".into(), b"v", 400, "Invalid wait time".into()),
        ("DELETE", "/v1/kv/k?stale&consistent".into(), b"", 400, "Cannot specify ?stale with ?consistent, conflicting semantics.".into()),
        ("PUT", format!("/v1/kv/k?acquire={ghost}"), b"v", 500, "".into()),
        ("PUT", format!("/v1/kv/new?acquire={ghost}"), b"v", 500, "".into()),
        ("POST", "/v1/kv/k".into(), b"v", 405, "method POST not allowed".into()),
        ("PATCH", "/v1/kv/".into(), b"v", 405, "method PATCH not allowed".into()),
        // HEAD is not a GET here (and certainly not a DELETE); a HEAD response has no body.
        ("HEAD", "/v1/kv/k".into(), b"", 405, "".into()),
    ];
    for (method, uri, body, status, prefix) in &cases {
        let (got, headers, bytes) = request(fx.app.clone(), method, uri, body).await;
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got.as_u16(), *status, "{method} {uri}: {text}");
        assert!(
            text.starts_with(prefix.as_str()),
            "{method} {uri}: {text:?}"
        );
        assert_eq!(
            header_str(&headers, "Content-Type"),
            Some("text/plain; charset=utf-8"),
            "{method} {uri}: errors are plain text"
        );
        assert_eq!(
            header_str(&headers, "X-Consul-Default-ACL-Policy"),
            Some("allow"),
            "{method} {uri}"
        );
        if *status == 500 && uri.contains("acquire") {
            assert!(text.contains("invalid session"), "{uri}: {text}");
        }
        if *status == 405 {
            assert_eq!(
                header_str(&headers, "Allow"),
                Some("OPTIONS,GET,PUT,DELETE")
            );
        }
    }
    assert_eq!(
        fx.kv_dump().await,
        before,
        "rejected writes changed the store"
    );

    // A body larger than the limit with no declared length (chunked) is cut off, not buffered.
    let chunked = Request::builder()
        .method("PUT")
        .uri("/v1/kv/k")
        .body(Body::from(vec![b'y'; 10 * KV_MAX]))
        .expect("request");
    let resp = fx.app.clone().oneshot(chunked).await.expect("response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let text = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        String::from_utf8_lossy(&text).contains("too large, max size: 1024 bytes."),
        "{text:?}"
    );
    assert_eq!(
        fx.kv_dump().await,
        before,
        "a cut-off body changed the store"
    );

    // Exactly at the limit is accepted.
    let (status, _, body) = fx.send("PUT", "/v1/kv/k", vec![b'z'; KV_MAX]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
}

#[tokio::test]
async fn pretty_json_is_four_space_indented_with_a_trailing_newline() {
    let fx = Fixture::new().await;
    let idx = fx.put("p", "v").await;
    let (status, _, body) = fx.send("GET", "/v1/kv/p?pretty", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!(
            "[\n    {{\n        \"LockIndex\": 0,\n        \"Key\": \"p\",\n        \"Flags\": 0,\n        \"Value\": \"dg==\",\n        \"CreateIndex\": {idx},\n        \"ModifyIndex\": {idx}\n    }}\n]\n"
        )
    );
    let (_, _, body) = fx.send("PUT", "/v1/kv/p?pretty", "w").await;
    assert_eq!(body, "true\n");
    let (_, _, body) = fx.send("GET", "/v1/kv/?keys&pretty=1", "").await;
    assert_eq!(body, "[\n    \"p\"\n]\n");
}

#[tokio::test]
async fn routing_methods_options_and_unknown_paths() {
    let fx = Fixture::new().await;
    let kv_allow = "OPTIONS,GET,PUT,DELETE";
    // (method, uri, status, body, Allow)
    #[rustfmt::skip]
    let cases = [
        ("OPTIONS", "/v1/kv/some/key", 200, "", Some(kv_allow)),
        ("OPTIONS", "/v1/kv/", 200, "", Some(kv_allow)),
        ("POST", "/v1/kv/some/key", 405, "method POST not allowed", Some(kv_allow)),
        ("OPTIONS", "/v1/txn", 200, "", Some("OPTIONS,PUT")),
        ("GET", "/v1/txn", 405, "method GET not allowed", Some("OPTIONS,PUT")),
        ("GET", "/v1/session/create", 405, "method GET not allowed", Some("OPTIONS,PUT")),
        ("PUT", "/v1/session/list", 405, "method PUT not allowed", Some("OPTIONS,GET")),
        ("DELETE", "/v1/session/info/x", 405, "method DELETE not allowed", Some("OPTIONS,GET")),
        ("PUT", "/v1/status/leader", 405, "method PUT not allowed", Some("OPTIONS,GET")),
        ("HEAD", "/v1/status/leader", 405, "", Some("OPTIONS,GET")),
        ("HEAD", "/v1/session/list", 405, "", Some("OPTIONS,GET")),
        ("OPTIONS", "/v1/agent/self", 200, "", Some("OPTIONS,GET")),
        ("GET", "/v1/nope", 404, "Invalid URL path: not a recognized HTTP API endpoint", None),
        ("GET", "/v1/catalogue/nodes", 404, "Invalid URL path: not a recognized HTTP API endpoint", None),
        ("PUT", "/v1/catalog/nodes", 405, "method PUT not allowed", Some("OPTIONS,GET")),
        ("GET", "/", 404, "Invalid URL path: not a recognized HTTP API endpoint", None),
    ];
    for (method, uri, status, expected, allow) in cases {
        let (got, headers, body) = fx.send(method, uri, "").await;
        assert_eq!(
            (got.as_u16(), body.as_str()),
            (status, expected),
            "{method} {uri}"
        );
        assert_eq!(
            header_str(&headers, "Allow"),
            allow,
            "{method} {uri}: Allow"
        );
        assert_eq!(
            header_str(&headers, "X-Consul-Default-ACL-Policy"),
            Some("allow"),
            "{method} {uri}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Blocking queries

#[tokio::test]
async fn blocking_key_read_wakes_for_its_key_only() {
    let fx = Fixture::new().await;
    let a0 = fx.put("a", "old").await;
    let mut watcher = fx.spawn("GET", &format!("/v1/kv/a?index={a0}&wait=5s"));

    fx.put("b", "unrelated").await;
    assert!(
        tokio::time::timeout(MUST_NOT_HAPPEN, &mut watcher)
            .await
            .is_err(),
        "a write to b woke a watcher of a"
    );

    let a1 = fx.put("a", "new").await;
    let (status, headers, body) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("the write to a wakes its watcher")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), a1);
    assert!(a1 > a0);
    assert_eq!(body, format!("[{}]", entry("a", r#""bmV3""#, a0, a1)));
}

#[tokio::test]
async fn blocking_prefix_read_wakes_for_writes_under_the_prefix_only() {
    let fx = Fixture::new().await;
    fx.put("web/a", "1").await;
    let (_, headers, _) = fx.send("GET", "/v1/kv/web/?recurse", "").await;
    let before = index(&headers);
    let mut watcher = fx.spawn(
        "GET",
        &format!("/v1/kv/web/?recurse&index={before}&wait=5s"),
    );

    // Neither a sibling tree nor the key equal to the prefix without its slash is under it.
    fx.put("db/x", "1").await;
    fx.put("web", "1").await;
    assert!(
        tokio::time::timeout(MUST_NOT_HAPPEN, &mut watcher)
            .await
            .is_err(),
        "a write outside web/ woke a web/ watcher"
    );

    let after = fx.put("web/b", "2").await;
    let (status, headers, body) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("a write under web/ wakes the watcher")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), after);
    assert!(body.contains(r#""Key":"web/b""#), "{body}");

    // A keys watcher wakes on a delete under its prefix (the tombstone moves the index).
    let mut keys = fx.spawn("GET", &format!("/v1/kv/web/?keys&index={after}&wait=5s"));
    assert!(tokio::time::timeout(MUST_NOT_HAPPEN, &mut keys)
        .await
        .is_err());
    let (_, _, ok) = fx.send("DELETE", "/v1/kv/web/a", "").await;
    assert_eq!(ok, "true");
    let deleted = fx.applied();
    let (status, headers, body) = tokio::time::timeout(MUST_HAPPEN, keys)
        .await
        .expect("a delete under web/ wakes the keys watcher")
        .expect("task");
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"["web/b"]"#));
    assert_eq!(index(&headers), deleted);
}

#[tokio::test]
async fn blocking_read_returns_after_its_wait_with_the_same_index() {
    let fx = Fixture::new().await;
    let idx = fx.put("quiet", "v").await;
    let started = tokio::time::Instant::now();
    let (status, headers, body) = tokio::time::timeout(
        MUST_HAPPEN,
        fx.send("GET", &format!("/v1/kv/quiet?index={idx}&wait=100ms"), ""),
    )
    .await
    .expect("the wait elapses");
    // A lower bound only: the server must hold the query for the whole wait.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), idx);
    assert_eq!(body, format!("[{}]", entry("quiet", r#""dg==""#, idx, idx)));

    // Empty `index` and `wait` values are ignored, as in Consul: no blocking, no 400.
    let (status, headers, _) =
        tokio::time::timeout(MUST_HAPPEN, fx.send("GET", "/v1/kv/quiet?index=&wait=", ""))
            .await
            .expect("an empty index does not block");
    assert_eq!((status, index(&headers)), (StatusCode::OK, idx));

    // An index other than the current one answers at once.
    let (status, headers, _) = tokio::time::timeout(
        MUST_HAPPEN,
        fx.send(
            "GET",
            &format!("/v1/kv/quiet?index={}&wait=5m", idx - 1),
            "",
        ),
    )
    .await
    .expect("a stale index does not block");
    assert_eq!((status, index(&headers)), (StatusCode::OK, idx));
}

#[tokio::test]
async fn blocking_on_a_missing_key_wakes_when_it_is_created() {
    let fx = Fixture::new().await;
    fx.put("other", "v").await;
    let (status, headers, _) = fx.send("GET", "/v1/kv/later", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let missing = index(&headers);
    assert!(missing >= 1, "index must never be 0");

    let (status, headers, _) = tokio::time::timeout(
        MUST_HAPPEN,
        fx.send(
            "GET",
            &format!("/v1/kv/later?index={missing}&wait=100ms"),
            "",
        ),
    )
    .await
    .expect("the wait elapses");
    assert_eq!((status, index(&headers)), (StatusCode::NOT_FOUND, missing));

    let mut watcher = fx.spawn("GET", &format!("/v1/kv/later?index={missing}&wait=5s"));
    assert!(tokio::time::timeout(MUST_NOT_HAPPEN, &mut watcher)
        .await
        .is_err());
    let created = fx.put("later", "now").await;
    let (status, headers, _) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("creating the key wakes its watcher")
        .expect("task");
    assert_eq!((status, index(&headers)), (StatusCode::OK, created));
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A session as Consul marshals it.
fn session_json(
    id: &str,
    name: &str,
    lock_delay_ns: u64,
    behavior: &str,
    ttl: &str,
    idx: u64,
) -> String {
    format!(
        r#"{{"ID":"{id}","Name":"{name}","Node":"{NODE_NAME}","LockDelay":{lock_delay_ns},"Behavior":"{behavior}","TTL":"{ttl}","NodeChecks":["serfHealth"],"ServiceChecks":null,"CreateIndex":{idx},"ModifyIndex":{idx}}}"#
    )
}

#[tokio::test]
async fn session_create_and_read_shapes() {
    let fx = Fixture::new().await;
    let (status, headers, body) = fx.send("PUT", "/v1/session/create", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    let created: Value = serde_json::from_str(&body).expect("JSON");
    let id = created["ID"].as_str().expect("ID").to_owned();
    uuid::Uuid::parse_str(&id).expect("ID is a UUID");
    assert_eq!(body, format!(r#"{{"ID":"{id}"}}"#));
    let idx = fx.applied();
    let one = session_json(&id, "", 15_000_000_000, "release", "", idx);

    #[rustfmt::skip]
    let cases = [
        (format!("/v1/session/info/{id}"), format!("[{one}]")),
        ("/v1/session/list".to_owned(), format!("[{one}]")),
        (format!("/v1/session/node/{NODE_NAME}"), format!("[{one}]")),
        // Unknown sessions and nodes are empty lists, never null or 404.
        ("/v1/session/info/nope".to_owned(), "[]".to_owned()),
        ("/v1/session/node/other-node".to_owned(), "[]".to_owned()),
    ];
    for (uri, expected) in cases {
        let (status, headers, body) = fx.send("GET", &uri, "").await;
        assert_eq!((status, body), (StatusCode::OK, expected), "{uri}");
        assert_eq!(index(&headers), idx, "{uri}");
        assert_eq!(header_str(&headers, "X-Consul-KnownLeader"), Some("true"));
    }
}

#[tokio::test]
async fn session_create_options() {
    let fx = Fixture::new().await;
    // (body, Name, LockDelay ns, Behavior, TTL)
    #[rustfmt::skip]
    let cases = [
        ("{}", "", 15_000_000_000u64, "release", ""),
        (r#"{"LockDelay": 15}"#, "", 15_000_000_000, "release", ""),
        (r#"{"LockDelay": "30s"}"#, "", 30_000_000_000, "release", ""),
        (r#"{"LockDelay": 2500000000}"#, "", 2_500_000_000, "release", ""),
        (r#"{"LockDelay": "5m"}"#, "", 60_000_000_000, "release", ""),
        (r#"{"Name": "web-lock", "Behavior": "delete", "TTL": "20s"}"#, "web-lock", 15_000_000_000, "delete", "20s"),
        // Go's decoder matches field names in any case.
        (r#"{"name": "lower", "ttl": "1m"}"#, "lower", 15_000_000_000, "release", "1m0s"),
    ];
    for (body, name, lock_delay, behavior, ttl) in cases {
        let id = fx.session(body).await;
        let idx = fx.applied();
        let (_, _, info) = fx.send("GET", &format!("/v1/session/info/{id}"), "").await;
        assert_eq!(
            info,
            format!(
                "[{}]",
                session_json(&id, name, lock_delay, behavior, ttl, idx)
            ),
            "{body}"
        );
    }
    // Naming the checks replaces the default, even with an empty list.
    let id = fx.session(r#"{"NodeChecks": []}"#).await;
    let (_, _, info) = fx.send("GET", &format!("/v1/session/info/{id}"), "").await;
    assert!(info.contains(r#""NodeChecks":[]"#), "{info}");
}

#[tokio::test]
async fn session_create_rejections_create_nothing() {
    let fx = Fixture::new().await;
    // (body, status, body prefix)
    #[rustfmt::skip]
    let cases = [
        (r#"{"TTL": "5s"}"#, 500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"),
        (r#"{"TTL": "25h"}"#, 500, "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"),
        (r#"{"TTL": "soon"}"#, 500, "Session TTL 'soon' invalid"),
        (r#"{"Behavior": "bogus"}"#, 500, "Invalid Behavior setting 'bogus'"),
        (r#"{"Name": "#, 400, "Request decode failed"),
        ("[1, 2]", 400, "Request decode failed"),
        (r#"{"Name": 7}"#, 400, "Request decode failed"),
        (r#"{"LockDelay": "forever"}"#, 400, "Request decode failed"),
    ];
    for (body, status, prefix) in cases {
        let (got, _, text) = fx.send("PUT", "/v1/session/create", body).await;
        assert_eq!(got.as_u16(), status, "{body}: {text}");
        assert!(text.starts_with(prefix), "{body}: {text:?}");
    }
    let (_, _, text) = fx.send("PUT", "/v1/session/create?dc=other", "").await;
    assert_eq!(text, "No path to datacenter");
    let (status, _, list) = fx.send("GET", "/v1/session/list", "").await;
    assert_eq!((status, list.as_str()), (StatusCode::OK, "[]"));
}

#[tokio::test]
async fn session_renew() {
    let fx = Fixture::new().await;
    let ghost = "6f1b7a47-0000-4000-8000-000000000000";
    let (status, _, body) = fx
        .send("PUT", &format!("/v1/session/renew/{ghost}"), "")
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            format!("Session id '{ghost}' not found")
        )
    );

    let id = fx.session(r#"{"TTL": "30s"}"#).await;
    let idx = fx.applied();
    let (status, _, body) = fx.send("PUT", &format!("/v1/session/renew/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!(
            "[{}]",
            session_json(&id, "", 15_000_000_000, "release", "30s", idx)
        )
    );
}

#[tokio::test]
async fn session_destroy_releases_or_deletes_held_locks() {
    let fx = Fixture::new().await;
    let release = fx.session("").await;
    let delete = fx.session(r#"{"Behavior": "delete"}"#).await;
    let mut locked = Vec::new();
    for (key, session) in [("locks/r", &release), ("locks/d", &delete)] {
        let (_, _, ok) = fx
            .send("PUT", &format!("/v1/kv/{key}?acquire={session}"), "v")
            .await;
        assert_eq!(ok, "true", "{key}");
        locked.push(fx.applied());
    }
    let mut destroyed = Vec::new();
    for id in [&release, &delete] {
        let (status, _, body) = fx
            .send("PUT", &format!("/v1/session/destroy/{id}"), "")
            .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
        destroyed.push(fx.applied());
    }
    let (r_locked, r_destroyed) = (locked[0], destroyed[0]);
    let (_, _, keys) = fx.send("GET", "/v1/kv/locks/?keys", "").await;
    assert_eq!(
        keys, r#"["locks/r"]"#,
        "Behavior delete removes the held key"
    );
    let (_, _, body) = fx.send("GET", "/v1/kv/locks/r", "").await;
    assert_eq!(
        body,
        format!(
            r#"[{{"LockIndex":1,"Key":"locks/r","Flags":0,"Value":"dg==","CreateIndex":{r_locked},"ModifyIndex":{r_destroyed}}}]"#
        ),
        "Behavior release clears Session and keeps the value"
    );
    let (_, _, list) = fx.send("GET", "/v1/session/list", "").await;
    assert_eq!(list, "[]");

    // Destroy is idempotent; renewing a destroyed session is a 404.
    let (status, _, body) = fx
        .send("PUT", &format!("/v1/session/destroy/{release}"), "")
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
    let (status, _, _) = fx
        .send("PUT", &format!("/v1/session/renew/{release}"), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blocking_session_list_wakes_on_session_changes() {
    let fx = Fixture::new().await;
    let (_, headers, _) = fx.send("GET", "/v1/session/list", "").await;
    let before = index(&headers);
    let mut watcher = fx.spawn("GET", &format!("/v1/session/list?index={before}&wait=5s"));
    fx.put("not/a/session", "v").await;
    assert!(
        tokio::time::timeout(MUST_NOT_HAPPEN, &mut watcher)
            .await
            .is_err(),
        "a KV write woke a session watcher"
    );
    let id = fx.session("").await;
    let (status, headers, body) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("a new session wakes the watcher")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), fx.applied());
    assert!(body.contains(&id), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Transactions

#[tokio::test]
async fn txn_applies_all_ops_and_returns_results() {
    let fx = Fixture::new().await;
    let body = r#"[
        {"KV": {"Verb": "set", "Key": "t/a", "Value": "YQ=="}},
        {"KV": {"Verb": "set", "Key": "t/b", "Value": "Yg==", "Flags": 7}},
        {"KV": {"Verb": "get", "Key": "t/a"}},
        {"KV": {"Verb": "delete", "Key": "t/none"}}
    ]"#;
    let (status, headers, text) = fx.send("PUT", "/v1/txn", body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let i = fx.applied();
    assert_eq!(
        text,
        format!(
            r#"{{"Results":[{{"KV":{}}},{{"KV":{{"LockIndex":0,"Key":"t/b","Flags":7,"Value":null,"CreateIndex":{i},"ModifyIndex":{i}}}}},{{"KV":{}}}],"Errors":null}}"#,
            entry("t/a", "null", i, i),
            entry("t/a", r#""YQ==""#, i, i),
        )
    );
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    let (_, _, keys) = fx.send("GET", "/v1/kv/t/?keys", "").await;
    assert_eq!(keys, r#"["t/a","t/b"]"#);
}

#[tokio::test]
async fn txn_read_only_is_served_like_a_read() {
    let fx = Fixture::new().await;
    let idx = fx.put("r", "v").await;
    let (status, headers, text) = fx
        .send("PUT", "/v1/txn", r#"[{"KV":{"Verb":"get","Key":"r"}}]"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        text,
        format!(
            r#"{{"Results":[{{"KV":{}}}],"Errors":null}}"#,
            entry("r", r#""dg==""#, idx, idx)
        )
    );
    assert_eq!(header_str(&headers, "X-Consul-KnownLeader"), Some("true"));
    assert_eq!(header_str(&headers, "X-Consul-LastContact"), Some("0"));
    assert_eq!(
        header_str(&headers, "X-Consul-Index"),
        None,
        "txns do not block"
    );
    assert_eq!(
        fx.applied(),
        idx,
        "a read-only txn goes through no raft write"
    );

    let (status, _, text) = fx
        .send("PUT", "/v1/txn", r#"[{"KV":{"Verb":"get","Key":"nope"}}]"#)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        text,
        r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"key \"nope\" doesn't exist"}]}"#
    );
}

#[tokio::test]
async fn txn_failures_roll_back_and_write_nothing() {
    let fx = Fixture::new().await;
    fx.put("existing", "v").await;
    let before = fx.kv_dump().await;

    let too_many = format!(
        "[{}]",
        vec![r#"{"KV":{"Verb":"set","Key":"many","Value":"eA=="}}"#; 129].join(",")
    );
    let exactly_max = format!(
        "[{}]",
        vec![r#"{"KV":{"Verb":"get","Key":"existing"}}"#; 128].join(",")
    );
    // (body, status, exact body or prefix)
    #[rustfmt::skip]
    let cases: Vec<(String, u16, &str, bool)> = vec![
        (r#"[{"KV":{"Verb":"set","Key":"fresh","Value":"eA=="}},{"KV":{"Verb":"cas","Key":"other","Value":"eA==","Index":999}}]"#.into(), 409, r#"{"Results":null,"Errors":[{"OpIndex":1,"What":"failed to set key \"other\", index is stale"}]}"#, true),
        (r#"[{"KV":{"Verb":"set","Key":"fresh","Value":"eA=="}},{"KV":{"Verb":"x","Key":"k"}}]"#.into(), 409, r#"{"Results":null,"Errors":[{"OpIndex":1,"What":"unknown KV verb \"x\""}]}"#, true),
        (r#"[{"KV":{"Verb":"set","Key":"fresh"}},{"KV":{"Verb":"check-not-exists","Key":"existing"}}]"#.into(), 409, r#"{"Results":null,"Errors":[{"OpIndex":1,"What":"key \"existing\" exists"}]}"#, true),
        (too_many, 413, "Transaction contains too many operations (129 > 128)", true),
        (r#"[{"KV":{"Verb":"set","Key":"fresh","Value":"!!not base64"}}]"#.into(), 400, "Failed to parse body", false),
        ("[{".into(), 400, "Failed to parse body", false),
        (r#"[{"Node":{"Verb":"set","Node":{"Node":"n1","Address":"10.0.0.1"}}}]"#.into(), 400, "", false),
        (format!(r#"[{{"KV":{{"Verb":"set","Key":"fresh","Value":"{}"}}}}]"#, "eHh4".repeat(KV_MAX / 3 + 1)), 413, "", false),
    ];
    for (body, status, expected, exact) in &cases {
        let (got, _, text) = fx.send("PUT", "/v1/txn", body).await;
        let shown = &body[..body.len().min(120)];
        assert_eq!(got.as_u16(), *status, "{shown}: {text}");
        if *exact {
            assert_eq!(text, *expected, "{shown}");
        } else {
            assert!(text.starts_with(expected), "{shown}: {text:?}");
        }
    }
    assert_eq!(fx.kv_dump().await, before, "a failed txn changed the store");

    let (status, _, text) = fx.send("PUT", "/v1/txn", &exactly_max).await;
    assert_eq!(status, StatusCode::OK, "128 ops are allowed: {text}");
    let (status, _, text) = fx.send("PUT", "/v1/txn?dc=other", "[]").await;
    assert_eq!(
        (status.as_u16(), text.as_str()),
        (500, "No path to datacenter")
    );
}

// ---------------------------------------------------------------------------------------------
// Status and agent

#[tokio::test]
async fn status_and_agent_self() {
    let fx = Fixture::new().await;
    #[rustfmt::skip]
    let cases = [
        ("/v1/status/leader", format!(r#""{RAFT_ADDR}""#)),
        ("/v1/status/peers", format!(r#"["{RAFT_ADDR}"]"#)),
        ("/v1/status/leader?pretty", format!("\"{RAFT_ADDR}\"\n")),
        ("/v1/status/leader?dc=other", "No path to datacenter".to_owned()),
    ];
    for (uri, expected) in cases {
        let (status, _, body) = fx.send("GET", uri, "").await;
        let want = if uri.contains("dc=") { 500 } else { 200 };
        assert_eq!((status.as_u16(), body), (want, expected), "{uri}");
    }

    let (status, headers, body) = fx.send("GET", "/v1/agent/self", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    let me: Value = serde_json::from_str(&body).expect("JSON");
    for (pointer, expected) in [
        ("/Config/Datacenter", DATACENTER),
        ("/Config/NodeName", NODE_NAME),
        ("/Member/Name", NODE_NAME),
        ("/Stats/consul/leader", "true"),
        ("/Stats/consul/leader_addr", RAFT_ADDR),
        ("/Stats/raft/num_peers", "0"),
        // What a sidecar applies when no intention matches: the ACL default here.
        ("/DebugConfig/DefaultIntentionPolicy", ""),
        ("/DebugConfig/ACLResolverSettings/ACLDefaultPolicy", "allow"),
    ] {
        assert_eq!(
            me.pointer(pointer).and_then(Value::as_str),
            Some(expected),
            "{pointer}"
        );
    }
    assert_eq!(me.pointer("/Config/Server"), Some(&Value::Bool(true)));
}

#[test]
fn rfc3339_timestamps() {
    for (ms, expected) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_795_536_000_123, "2026-11-24T16:00:00.123Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(crate::wire::rfc3339_from_unix_ms(ms), expected, "{ms}");
    }
}

#[tokio::test]
async fn autopilot_configuration_defaults_update_and_cas() {
    let fx = Fixture::new().await;
    let (status, _, body) = fx
        .send("GET", "/v1/operator/autopilot/configuration", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let config: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(config["CleanupDeadServers"], true);
    assert_eq!(config["LastContactThreshold"], "200ms");
    assert_eq!(config["MaxTrailingLogs"], 250);
    assert_eq!(config["ServerStabilizationTime"], "10s");

    let (status, _, body) = fx
        .send(
            "PUT",
            "/v1/operator/autopilot/configuration",
            r#"{"CleanupDeadServers": false, "MaxTrailingLogs": 500}"#,
        )
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
    let (_, _, body) = fx
        .send("GET", "/v1/operator/autopilot/configuration", "")
        .await;
    let config: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(config["CleanupDeadServers"], false);
    assert_eq!(config["MaxTrailingLogs"], 500);
    assert_eq!(
        config["LastContactThreshold"], "200ms",
        "fields left out keep their values"
    );
    let modify = config["ModifyIndex"].as_u64().expect("index");

    let stale_cas = format!("/v1/operator/autopilot/configuration?cas={}", modify - 1);
    let (status, _, body) = fx.send("PUT", &stale_cas, r#"{"MinQuorum": 3}"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "false"));
    let cas = format!("/v1/operator/autopilot/configuration?cas={modify}");
    let (status, _, body) = fx.send("PUT", &cas, r#"{"MinQuorum": 3}"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));

    let (status, _, _) = fx
        .send(
            "PUT",
            "/v1/operator/autopilot/configuration",
            r#"{"LastContactThreshold": "soon"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

mod acl;
mod catalog;
mod config_entries;
mod connect_intentions;

// ---------------------------------------------------------------------------------------------
// Catalog

/// Registers `id` of service `name` on node `n1` with `tags`; returns the index it landed at.
async fn register_web(fx: &Fixture, id: &str, tags: &[&str]) -> u64 {
    let body = serde_json::json!({
        "Node": "n1",
        "Address": "10.0.0.1",
        "Service": {"ID": id, "Service": "web", "Tags": tags, "Port": 80},
    });
    let (status, _, text) = fx
        .send("PUT", "/v1/catalog/register", body.to_string())
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "true"));
    fx.applied()
}

#[tokio::test]
async fn shared_renders_answer_only_their_own_question() {
    let fx = Fixture::new().await;
    register_web(&fx, "web-a", &["a"]).await;
    let at = register_web(&fx, "web-b", &["b"]).await;
    // The same topic at the same index, asked five ways: each gets its own answer, however
    // often and in whatever order it is asked.
    let ids = |text: &str| -> Vec<String> {
        let rows: Vec<Value> = serde_json::from_str(text).expect("JSON array");
        rows.iter()
            .map(|r| r["ServiceID"].as_str().expect("ServiceID").to_owned())
            .collect()
    };
    for _ in 0..2 {
        for (query, want) in [
            ("?tag=a", vec!["web-a"]),
            ("?tag=b", vec!["web-b"]),
            ("", vec!["web-a", "web-b"]),
            ("?filter=ServiceID%20%3D%3D%20%22web-b%22", vec!["web-b"]),
        ] {
            let (status, headers, text) = fx
                .send("GET", &format!("/v1/catalog/service/web{query}"), "")
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {text}");
            assert_eq!(index(&headers), at, "{query}");
            assert_eq!(ids(&text), want, "{query}");
        }
        let (_, _, pretty) = fx.send("GET", "/v1/catalog/service/web?pretty", "").await;
        assert!(
            pretty.ends_with("]\n") && pretty.contains("\n    {"),
            "{pretty}"
        );
        // The health endpoint asks about the same topic, and must not get the catalog's body.
        let (_, _, health) = fx.send("GET", "/v1/health/service/web?tag=a", "").await;
        let rows: Vec<Value> = serde_json::from_str(&health).expect("JSON array");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Service"]["ID"], "web-a");
    }
}

#[tokio::test]
async fn blocking_watchers_of_one_service_share_the_woken_answer() {
    let fx = Fixture::new().await;
    let at = register_web(&fx, "web-a", &[]).await;
    let watchers: Vec<_> = (0..20)
        .map(|_| {
            fx.spawn(
                "GET",
                &format!("/v1/health/service/web?index={at}&wait=30s"),
            )
        })
        .collect();
    // Parked or not yet, every watcher answers with the write: one that subscribes late sees
    // the new index at once.
    let next = register_web(&fx, "web-b", &[]).await;
    for watcher in watchers {
        let (status, headers, text) = tokio::time::timeout(MUST_HAPPEN, watcher)
            .await
            .expect("the write wakes every watcher")
            .expect("watcher task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(index(&headers), next);
        let rows: Vec<Value> = serde_json::from_str(&text).expect("JSON array");
        assert_eq!(rows.len(), 2, "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Telemetry: /v1/agent/metrics and /v1/agent/monitor

/// Waits (bounded) until `condition` holds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + MUST_HAPPEN;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The entry named `name` (with `labels`, if given) in a section of the metrics JSON.
fn metric<'a>(body: &'a Value, section: &str, name: &str, labels: Option<Value>) -> &'a Value {
    body[section]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .find(|e| e["Name"] == name && labels.as_ref().is_none_or(|l| &e["Labels"] == l))
        })
        .unwrap_or_else(|| panic!("no {section} entry {name} {labels:?} in {body}"))
}

#[tokio::test]
async fn agent_metrics_answer_in_consul_json_and_prometheus_text() {
    let fx = Fixture::new().await;
    fx.put("web/config", "hello").await;
    let (status, headers, body) = fx.send("GET", "/v1/agent/metrics", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    let body: Value = serde_json::from_str(&body).expect("JSON");
    let timestamp = body["Timestamp"].as_str().expect("Timestamp");
    assert!(timestamp.ends_with(" +0000 UTC"), "{timestamp}");
    assert_eq!(body["Points"], serde_json::json!([]));

    #[rustfmt::skip]
    let gauges = [
        ("consul.server.isLeader", 1.0),
        ("consul.state.kv_entries", 1.0),
        ("consul.state.nodes", 0.0),
        ("consul.rpc.queries_blocking", 0.0),
    ];
    for (name, value) in gauges {
        assert_eq!(
            metric(&body, "Gauges", name, None)["Value"],
            value,
            "{name}"
        );
    }
    for name in [
        "consul.raft.applied_index",
        "consul.raft.last_index",
        "mesh.agent.uptime",
    ] {
        assert!(
            metric(&body, "Gauges", name, None)["Value"].is_f64(),
            "{name}"
        );
    }
    let leader = metric(&body, "Counters", "consul.raft.state.leader", None);
    assert_eq!(leader["Count"], 1);
    let applied = metric(&body, "Counters", "consul.raft.apply", None);
    assert!(applied["Count"].as_u64() >= Some(1), "{applied}");
    let commit = metric(&body, "Samples", "consul.raft.commitTime", None);
    assert!(commit["Count"].as_u64() >= Some(1), "{commit}");
    for field in ["Rate", "Sum", "Min", "Max", "Mean", "Stddev"] {
        assert!(commit[field].is_f64(), "{field} in {commit}");
    }
    let labels = serde_json::json!({"method": "PUT", "path": "v1.kv._"});
    let put = metric(&body, "Samples", "consul.api.http", Some(labels));
    assert_eq!(put["Count"], 1);

    let (status, headers, text) = fx
        .send("GET", "/v1/agent/metrics?format=prometheus", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in [
        "# TYPE consul_raft_commitTime summary",
        "# TYPE consul_raft_apply counter",
        "consul_server_isLeader 1",
        "consul_state_kv_entries 1",
        "consul_raft_state_leader 1",
        "consul_api_http_count{method=\"PUT\",path=\"v1.kv._\"} 1",
        "consul_api_http_count{method=\"GET\",path=\"v1.agent.metrics\"} 1",
        "# TYPE consul_api_http_max gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }

    // Without `prometheus_retention_time`, Consul's 415.
    let off = metrics::routes(metrics::Observed {
        telemetry: fx.telemetry.clone(),
        local: None,
        prometheus: false,
        dev: false,
    });
    let (status, _, body) = request(off, "GET", "/v1/agent/metrics?format=prometheus", b"").await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Prometheus is not enabled since its retention time is not positive"
        )
    );
}

#[tokio::test]
async fn blocking_queries_in_flight_are_a_gauge() {
    let fx = Fixture::new().await;
    let a0 = fx.put("a", "old").await;
    let in_flight = || fx.telemetry.blocking().in_flight();
    let watcher = fx.spawn("GET", &format!("/v1/kv/a?index={a0}&wait=5s"));
    wait_until("the watcher to block", || in_flight() == 1).await;
    let (_, _, body) = fx.send("GET", "/v1/agent/metrics", "").await;
    let body: Value = serde_json::from_str(&body).expect("JSON");
    let gauge = metric(&body, "Gauges", "consul.rpc.queries_blocking", None);
    assert_eq!(gauge["Value"], 1.0);
    assert_eq!(
        metric(&body, "Counters", "consul.rpc.query", None)["Count"],
        1
    );

    fx.put("a", "new").await;
    let (status, _, _) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("the write wakes the watcher")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(in_flight(), 0);

    // A watcher whose client goes away stops counting too.
    let a1 = fx.applied();
    let abandoned = fx.spawn("GET", &format!("/v1/kv/a?index={a1}&wait=5s"));
    wait_until("the second watcher to block", || in_flight() == 1).await;
    abandoned.abort();
    wait_until("the abandoned watcher to stop counting", || {
        in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn monitor_streams_log_lines_until_the_client_goes_away() {
    use tracing_subscriber::layer::SubscriberExt;

    let logs = config::cli::LogStream::new();
    let _logging =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.layer()));
    let fx = Fixture::new().await;
    let (status, _, body) = fx.send("GET", "/v1/agent/monitor", "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "log streaming is not available: this process did not set up logging"
        )
    );
    fx.telemetry.attach_logs(logs.clone());
    let (status, _, body) = fx
        .send("GET", "/v1/agent/monitor?loglevel=verbose", "")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "Unknown log level: verbose")
    );

    let req = Request::get("/v1/agent/monitor?loglevel=debug&logjson")
        .body(Body::empty())
        .expect("valid request");
    let resp = fx
        .app
        .clone()
        .oneshot(req)
        .await
        .expect("infallible router");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(resp.headers(), "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(logs.readers(), 1);
    let mut stream = resp.into_body();
    tracing::debug!(key = "k1", "a line for the monitor");
    let line = tokio::time::timeout(MUST_HAPPEN, async {
        loop {
            let frame = stream
                .frame()
                .await
                .expect("the stream goes on")
                .expect("frame");
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let text = String::from_utf8(data.to_vec()).expect("UTF-8 line");
            if text.contains("a line for the monitor") {
                return text;
            }
        }
    })
    .await
    .expect("the logged line is streamed");
    assert!(line.ends_with('\n'), "{line:?}");
    let json: Value = serde_json::from_str(line.trim_end()).expect("a JSON line");
    assert_eq!(
        (&json["@level"], &json["@message"], &json["key"]),
        (
            &Value::from("debug"),
            &Value::from("a line for the monitor"),
            &Value::from("k1")
        )
    );

    // The client goes away: the agent stops feeding it.
    drop(stream);
    assert_eq!(logs.readers(), 0);
}
