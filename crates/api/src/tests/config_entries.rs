//! `/v1/config*` as Consul clients see them.

use serde_json::json;

use super::*;

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
}

/// `PUT /v1/config[?query]` that must answer `expected`; returns the applied index.
async fn put(fx: &Fixture, query: &str, body: Value, expected: &str) -> u64 {
    let (status, headers, text) = fx
        .send("PUT", &format!("/v1/config{query}"), body.to_string())
        .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, expected),
        "{body}"
    );
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    fx.applied()
}

/// A GET that must succeed: its `X-Consul-Index` and body.
async fn get(fx: &Fixture, uri: &str) -> (u64, String) {
    let (status, headers, text) = fx.send("GET", uri, "").await;
    assert_eq!(status, StatusCode::OK, "{uri}: {text}");
    (index(&headers), text)
}

/// The status and body of a request that must fail, and the proof that it wrote nothing.
async fn refused(fx: &Fixture, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let before = fx.applied();
    let (status, headers, text) = fx.send(method, uri, body).await;
    assert_eq!(fx.applied(), before, "{method} {uri} wrote something");
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("text/plain; charset=utf-8"),
        "{method} {uri}"
    );
    (status, text)
}

fn web(protocol: &str) -> Value {
    json!({"Kind": "service-defaults", "Name": "web", "Protocol": protocol})
}

#[tokio::test]
async fn write_read_list_and_delete() {
    let fx = Fixture::new().await;
    let created = put(&fx, "", web("HTTP"), "true").await;
    let (at, text) = get(&fx, "/v1/config/service-defaults/web").await;
    assert_eq!(at, created);
    assert_eq!(
        text,
        format!(
            concat!(
                r#"{{"Kind":"service-defaults","Name":"web","Protocol":"http","TransparentProxy":{{}},"#,
                r#""MeshGateway":{{}},"Expose":{{}},"CreateIndex":{c},"ModifyIndex":{c}}}"#
            ),
            c = created
        )
    );
    // Names ignore case, as Consul's state store does.
    let (_, same) = get(&fx, "/v1/config/service-defaults/WEB").await;
    assert_eq!(same, text);

    // An update keeps the create index; snake_case and any case are read.
    let body = json!({"kind": "service-defaults", "name": "web", "protocol": "grpc", "mesh_gateway": {"mode": "local"}, "Meta": {"team": "a"}});
    let updated = put(&fx, "", body, "true").await;
    let (at, text) = get(&fx, "/v1/config/service-defaults/web?pretty").await;
    assert_eq!(at, updated);
    assert!(
        text.ends_with("}\n") && text.contains("\n    \"Protocol\": \"grpc\""),
        "{text}"
    );
    let entry = json_body(&text);
    assert_eq!(entry["MeshGateway"], json!({"Mode": "local"}));
    assert_eq!(entry["Meta"], json!({"team": "a"}));
    assert_eq!(
        (entry["CreateIndex"].as_u64(), entry["ModifyIndex"].as_u64()),
        (Some(created), Some(updated))
    );

    // proxy-defaults: always `global`; its Config is Go's map, keys sorted.
    let global = put(
        &fx,
        "",
        json!({"Kind": "proxy-defaults", "Config": {"protocol": "http", "local_connect_timeout_ms": 1000}}),
        "true",
    )
    .await;
    let (at, text) = get(&fx, "/v1/config/proxy-defaults/global").await;
    assert_eq!(at, global, "reads report the table's index");
    assert_eq!(
        text,
        format!(
            concat!(
                r#"{{"Kind":"proxy-defaults","Name":"global","Config":{{"local_connect_timeout_ms":1000,"protocol":"http"}},"#,
                r#""TransparentProxy":{{}},"MeshGateway":{{}},"Expose":{{}},"AccessLogs":{{}},"CreateIndex":{g},"ModifyIndex":{g}}}"#
            ),
            g = global
        )
    );

    put(
        &fx,
        "",
        json!({"Kind": "service-defaults", "Name": "Api"}),
        "true",
    )
    .await;
    let last = fx.applied();
    let names = |text: &str| -> Vec<String> {
        json_body(text)
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["Kind"].as_str().unwrap(),
                    e["Name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (at, text) = get(&fx, "/v1/config/service-defaults").await;
    assert_eq!(at, last);
    assert_eq!(
        names(&text),
        ["service-defaults/Api", "service-defaults/web"]
    );
    let (_, text) = get(&fx, "/v1/config/").await;
    assert_eq!(
        names(&text),
        [
            "proxy-defaults/global",
            "service-defaults/Api",
            "service-defaults/web"
        ]
    );

    let (status, _, text) = fx
        .send("DELETE", "/v1/config/service-defaults/web", "")
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    let deleted = fx.applied();
    let (status, text) = refused(&fx, "GET", "/v1/config/service-defaults/web", "").await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::NOT_FOUND,
            r#"Config entry not found for "service-defaults" / "web""#
        )
    );
    // The miss still carries the table's index, so a client can block on it.
    let (_, headers, _) = fx.send("GET", "/v1/config/service-defaults/web", "").await;
    assert_eq!(index(&headers), deleted);
    // Deleting what is gone still succeeds.
    let (status, _, text) = fx
        .send("DELETE", "/v1/config/service-defaults/web", "")
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    // An empty list is `[]`, never `null`, and never index 0.
    let fresh = Fixture::new().await;
    let (status, headers, text) = fresh.send("GET", "/v1/config/proxy-defaults", "").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "[]"));
    assert_eq!(index(&headers), 1);
}

#[tokio::test]
async fn check_and_set() {
    let fx = Fixture::new().await;
    let created = put(&fx, "?cas=0", web("http"), "true").await;
    put(&fx, "?cas=0", web("grpc"), "false").await;
    put(
        &fx,
        &format!("?cas={}", created + 100),
        web("grpc"),
        "false",
    )
    .await;
    let (_, text) = get(&fx, "/v1/config/service-defaults/web").await;
    assert_eq!(
        json_body(&text)["Protocol"],
        "http",
        "refused writes change nothing"
    );
    let updated = put(&fx, &format!("?cas={created}"), web("grpc"), "true").await;
    let (at, text) = get(&fx, "/v1/config/service-defaults/web").await;
    assert_eq!(
        (at, json_body(&text)["ModifyIndex"].as_u64()),
        (updated, Some(updated))
    );
    // An empty `?cas=` is no check at all.
    put(&fx, "?cas=", web("tcp"), "true").await;
    let modify = fx.applied();

    for (uri, expected) in [
        (
            format!("/v1/config/service-defaults/web?cas={created}"),
            "false",
        ),
        ("/v1/config/service-defaults/nope?cas=0".to_owned(), "false"),
        (
            format!("/v1/config/service-defaults/web?cas={modify}"),
            "true",
        ),
        (
            format!("/v1/config/service-defaults/web?cas={modify}"),
            "false",
        ),
    ] {
        let (status, _, text) = fx.send("DELETE", &uri, "").await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, expected), "{uri}");
    }
    let (status, _) = refused(&fx, "GET", "/v1/config/service-defaults/web", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blocking_reads_wake_on_config_entry_writes_only() {
    let fx = Fixture::new().await;
    let first = put(&fx, "", web("http"), "true").await;
    let mut one = fx.spawn(
        "GET",
        &format!("/v1/config/service-defaults/web?index={first}&wait=5s"),
    );
    let mut list = fx.spawn(
        "GET",
        &format!("/v1/config/service-defaults?index={first}&wait=5s"),
    );
    // A sidecar waits for the entry of a service that has none yet.
    let mut missing = fx.spawn(
        "GET",
        &format!("/v1/config/service-defaults/api?index={first}&wait=5s"),
    );

    fx.put("unrelated", "v").await;
    for watcher in [&mut one, &mut list, &mut missing] {
        assert!(
            tokio::time::timeout(MUST_NOT_HAPPEN, watcher)
                .await
                .is_err(),
            "a KV write woke a config entry watcher"
        );
    }

    let second = put(&fx, "", web("grpc"), "true").await;
    for (name, watcher) in [("one", one), ("list", list)] {
        let (status, headers, text) = tokio::time::timeout(MUST_HAPPEN, watcher)
            .await
            .unwrap_or_else(|_| panic!("the write wakes the {name} watcher"))
            .expect("task");
        assert_eq!(status, StatusCode::OK, "{name}: {text}");
        assert_eq!(index(&headers), second, "{name}");
        assert!(text.contains(r#""Protocol":"grpc""#), "{name}: {text}");
    }
    // Woken by the table, still missing: a 404 at the new index, as Consul answers.
    let (status, headers, text) = tokio::time::timeout(MUST_HAPPEN, missing)
        .await
        .expect("the write wakes the watcher of a missing entry")
        .expect("task");
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert_eq!(index(&headers), second);

    let waiting = fx.spawn(
        "GET",
        &format!("/v1/config/service-defaults/api?index={second}&wait=5s"),
    );
    let created = put(
        &fx,
        "",
        json!({"Kind": "service-defaults", "Name": "api", "Protocol": "http2"}),
        "true",
    )
    .await;
    let (status, headers, text) = tokio::time::timeout(MUST_HAPPEN, waiting)
        .await
        .expect("its creation wakes the watcher")
        .expect("task");
    assert_eq!(
        (status, index(&headers)),
        (StatusCode::OK, created),
        "{text}"
    );
    assert_eq!(json_body(&text)["Protocol"], "http2");
}

#[tokio::test]
async fn bad_requests_get_consul_errors_and_write_nothing() {
    let fx = Fixture::new().await;
    put(&fx, "", web("http"), "true").await;
    let e500 = StatusCode::INTERNAL_SERVER_ERROR;
    let e400 = StatusCode::BAD_REQUEST;
    let e404 = StatusCode::NOT_FOUND;
    let valid = r#"{"Kind":"service-defaults","Name":"web"}"#;
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, StatusCode, &str)] = &[
        // Bodies.
        ("PUT", "/v1/config", "", e400, "Request decoding failed: EOF"),
        ("PUT", "/v1/config", "[]", e400, "Request decoding failed: '' expected a map, got 'slice'"),
        ("PUT", "/v1/config", r#"{"Name":"web"}"#, e400, "Request decoding failed: Payload does not contain a kind/Kind key at the top level"),
        ("PUT", "/v1/config", r#"{"Kind":["service-defaults"]}"#, e400, "Request decoding failed: Kind value in payload is not a string"),
        ("PUT", "/v1/config", r#"{"Kind":"service-router","Name":"web"}"#, e400, "Request decoding failed: invalid config entry kind: service-router"),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"web","Color":"red"}"#, e400, "Request decoding failed: 1 error occurred:\n\t* invalid config key \"Color\"\n\n"),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"web","Namespace":"team"}"#, e400, "Request decoding failed: 1 error occurred:\n\t* invalid config key \"Namespace\", namespaces are a consul enterprise feature\n\n"),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"web","Meta":[1]}"#, e400, "Request decoding failed: 1 error(s) decoding:\n\n* 'Meta' expected a map, got 'slice'"),
        // What the server refuses.
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults"}"#, e500, "Name is required"),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"*"}"#, e500, "service-defaults name must be the name of a service, and not a wildcard"),
        ("PUT", "/v1/config", r#"{"Kind":"proxy-defaults","Name":"web"}"#, e500, r#"invalid name ("web"), only "global" is supported"#),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"web","Protocol":"kafka"}"#, e500, r#"invalid protocol "kafka": mesh supports "tcp", "http", "http2" and "grpc""#),
        ("PUT", "/v1/config", r#"{"Kind":"proxy-defaults","Config":{"protocol":"udp"}}"#, e500, r#"Config: invalid protocol "udp": mesh supports "tcp", "http", "http2" and "grpc""#),
        ("PUT", "/v1/config", r#"{"Kind":"service-defaults","Name":"web","Mode":"sideways"}"#, e500, r#"Invalid Proxy Mode: "sideways""#),
        // Query parameters.
        ("PUT", "/v1/config?cas=x", valid, e500, r#"strconv.ParseUint: parsing "x": invalid syntax"#),
        ("PUT", "/v1/config?cas=%2B1", valid, e500, r#"strconv.ParseUint: parsing "+1": invalid syntax"#),
        ("PUT", "/v1/config?cas=99999999999999999999", valid, e500, r#"strconv.ParseUint: parsing "99999999999999999999": value out of range"#),
        ("PUT", "/v1/config?ns=team", valid, e400, r#"Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature"#),
        ("PUT", "/v1/config?dc=elsewhere", valid, e500, "No path to datacenter"),
        // Reads.
        ("GET", "/v1/config/service-router", "", e500, "invalid config entry kind: service-router"),
        ("GET", "/v1/config/service-router/web", "", e500, "invalid config entry kind: service-router"),
        ("GET", "/v1/config/service-defaults/nope", "", e404, r#"Config entry not found for "service-defaults" / "nope""#),
        ("GET", "/v1/config/service-defaults/", "", e404, r#"Config entry not found for "service-defaults" / """#),
        ("GET", "/v1/config/service-defaults/a/b", "", e404, r#"Config entry not found for "service-defaults" / "a/b""#),
        ("GET", "/v1/config/service-defaults?index=abc", "", e400, "Invalid index"),
        ("GET", "/v1/config/service-defaults/web?stale&consistent", "", e400, "Cannot specify ?stale with ?consistent, conflicting semantics."),
        ("GET", "/v1/config/service-defaults?dc=elsewhere", "", e500, "No path to datacenter"),
        ("GET", "/v1/config/service-defaults?partition=p", "", e400, r#"Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature"#),
        // Deletes.
        ("DELETE", "/v1/config/", "", e404, "Must provide both a kind and name to delete"),
        ("DELETE", "/v1/config/service-defaults", "", e404, "Must provide both a kind and name to delete"),
        ("DELETE", "/v1/config/service-router/web", "", e400, "invalid config entry kind: service-router"),
        ("DELETE", "/v1/config/proxy-defaults/other", "", e500, r#"invalid name ("other"), only "global" is supported"#),
        ("DELETE", "/v1/config/service-defaults/web?cas=-1", "", e500, r#"strconv.ParseUint: parsing "-1": invalid syntax"#),
        ("DELETE", "/v1/config/service-defaults/web?dc=elsewhere", "", e500, "No path to datacenter"),
    ];
    for (method, uri, body, status, text) in cases {
        let (got, got_text) = refused(&fx, method, uri, body).await;
        assert_eq!(
            (got, got_text.as_str()),
            (*status, *text),
            "{method} {uri} {body}"
        );
    }
    let (_, text) = get(&fx, "/v1/config/service-defaults/web").await;
    assert_eq!(json_body(&text)["Protocol"], "http", "still as written");
}

#[tokio::test]
async fn routes_and_methods() {
    let fx = Fixture::new().await;
    for (method, uri, allow) in [
        ("GET", "/v1/config", "OPTIONS,PUT"),
        ("POST", "/v1/config", "OPTIONS,PUT"),
        ("PUT", "/v1/config/", "OPTIONS,GET,DELETE"),
        ("PUT", "/v1/config/service-defaults", "OPTIONS,GET,DELETE"),
        (
            "POST",
            "/v1/config/service-defaults/web",
            "OPTIONS,GET,DELETE",
        ),
    ] {
        let (status, headers, text) = fx.send(method, uri, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(header_str(&headers, "Allow"), Some(allow), "{method} {uri}");
        assert_eq!(text, format!("method {method} not allowed"));
    }
}
