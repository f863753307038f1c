//! `/v1/connect/intentions*` as Consul clients see them.

use serde_json::json;

use super::*;

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
}

/// `PUT /v1/connect/intentions/exact` that must succeed; returns the index it landed at.
async fn put_exact(fx: &Fixture, source: &str, destination: &str, body: Value) -> u64 {
    let uri = format!("/v1/connect/intentions/exact?source={source}&destination={destination}");
    let (status, _, text) = fx.send("PUT", &uri, body.to_string()).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "true"),
        "{source} => {destination}: {body}"
    );
    fx.applied()
}

/// `POST /v1/connect/intentions` that must succeed; returns the new ID.
async fn create(fx: &Fixture, body: Value) -> String {
    let (status, _, text) = fx
        .send("POST", "/v1/connect/intentions", body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}: {text}");
    let reply = json_body(&text);
    let id = reply["ID"].as_str().expect("ID").to_owned();
    assert_eq!(reply, json!({ "ID": id }));
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    id
}

/// `(source, destination)` of every intention in a JSON list, in order.
fn pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| {
            let name = |k: &str| i[k].as_str().expect("a name").to_owned();
            (name("SourceName"), name("DestinationName"))
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(s, d)| ((*s).to_owned(), (*d).to_owned()))
        .collect()
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

#[tokio::test]
async fn exact_upsert_get_and_delete() {
    let fx = Fixture::new().await;
    let created = put_exact(
        &fx,
        "web",
        "db",
        json!({"Action": "allow", "Description": "web reads the db", "SourceType": "consul"}),
    )
    .await;

    let (status, headers, text) = fx
        .send(
            "GET",
            "/v1/connect/intentions/exact?source=web&destination=db",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), created);
    assert_eq!(
        header_str(&headers, "Content-Type"),
        Some("application/json")
    );
    // Go's field order; no ID, times or Meta for an intention written by name.
    assert_eq!(
        text,
        format!(
            concat!(
                r#"{{"Description":"web reads the db","SourceNS":"default","SourceName":"web","#,
                r#""DestinationNS":"default","DestinationName":"db","SourceType":"consul","#,
                r#""Action":"allow","Precedence":9,"CreateIndex":{c},"ModifyIndex":{c}}}"#
            ),
            c = created
        )
    );
    // The `default` namespace may be named, in any case.
    let (status, _, same) = fx
        .send(
            "GET",
            "/v1/connect/intentions/exact?source=default/web&destination=Default/db",
            "",
        )
        .await;
    assert_eq!((status, same.as_str()), (StatusCode::OK, text.as_str()));

    // An upsert replaces the intention; the entry keeps its create index.
    let updated = put_exact(&fx, "web", "db", json!({"Action": "deny"})).await;
    assert!(updated > created);
    let (_, headers, text) = fx
        .send(
            "GET",
            "/v1/connect/intentions/exact?source=web&destination=db",
            "",
        )
        .await;
    assert_eq!(index(&headers), updated);
    let ixn = json_body(&text);
    assert_eq!(ixn["Action"], "deny");
    assert!(ixn.get("Description").is_none(), "{text}");
    assert_eq!(
        (ixn["CreateIndex"].as_u64(), ixn["ModifyIndex"].as_u64()),
        (Some(created), Some(updated))
    );

    let (status, _, text) = fx
        .send(
            "DELETE",
            "/v1/connect/intentions/exact?source=web&destination=db",
            "",
        )
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "true"));
    let deleted = fx.applied();
    assert!(deleted > updated);
    let (status, text) = refused(
        &fx,
        "GET",
        "/v1/connect/intentions/exact?source=web&destination=db",
        "",
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "Intention not found")
    );
    // Deleting what does not exist succeeds without a raft write.
    let (status, text) = {
        let before = fx.applied();
        let (status, _, text) = fx
            .send(
                "DELETE",
                "/v1/connect/intentions/exact?source=web&destination=db",
                "",
            )
            .await;
        assert_eq!(fx.applied(), before);
        (status, text)
    };
    assert_eq!((status, text.as_str()), (StatusCode::OK, "true"));
}

#[tokio::test]
async fn legacy_create_get_update_and_delete() {
    let fx = Fixture::new().await;
    let id = create(
        &fx,
        json!({"SourceName": "web", "DestinationName": "db", "Action": "allow", "Meta": {"owner": "team-a"}}),
    )
    .await;
    let created = fx.applied();

    let (status, headers, text) = fx
        .send("GET", &format!("/v1/connect/intentions/{id}"), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(index(&headers), created);
    let ixn = json_body(&text);
    let created_at = ixn["CreatedAt"].as_str().expect("CreatedAt").to_owned();
    assert!(
        created_at.ends_with('Z') && created_at.len() >= 20,
        "{created_at}"
    );
    assert_eq!(ixn["UpdatedAt"], ixn["CreatedAt"]);
    let keys: Vec<&str> = ixn
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "UpdatedAt",
            "ID",
            "SourceNS",
            "SourceName",
            "DestinationNS",
            "DestinationName",
            "SourceType",
            "Action",
            "Meta",
            "Precedence",
            "CreateIndex",
            "ModifyIndex"
        ]
    );
    assert_eq!(ixn["ID"], id.as_str());
    assert_eq!(ixn["Meta"], json!({"owner": "team-a"}));
    assert_eq!(ixn["Action"], "allow");
    assert_eq!(ixn["Precedence"], 9);
    // The exact endpoint finds it too, with its ID.
    let (_, _, exact) = fx
        .send(
            "GET",
            "/v1/connect/intentions/exact?source=web&destination=db",
            "",
        )
        .await;
    assert_eq!(json_body(&exact), ixn);

    // The same pair again is refused by the config entry's validation.
    let (status, text) = refused(
        &fx,
        "POST",
        "/v1/connect/intentions",
        r#"{"SourceName":"web","DestinationName":"db","Action":"deny"}"#,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"Sources[1] defines "web" more than once"#
        )
    );

    // An update answers with the ID and keeps the creation time.
    let (status, _, text) = fx
        .send(
            "PUT",
            &format!("/v1/connect/intentions/{id}"),
            r#"{"SourceName":"web","DestinationName":"db","Action":"deny","Description":"closed"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(json_body(&text), json!({ "ID": id }));
    let updated = fx.applied();
    let (_, headers, text) = fx
        .send("GET", &format!("/v1/connect/intentions/{id}"), "")
        .await;
    assert_eq!(index(&headers), updated);
    let ixn = json_body(&text);
    assert_eq!(ixn["Action"], "deny");
    assert_eq!(ixn["Description"], "closed");
    assert_eq!(ixn["CreatedAt"], created_at.as_str());

    let (status, _, text) = fx
        .send("DELETE", &format!("/v1/connect/intentions/{id}"), "")
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "true"));
    let (status, text) = refused(&fx, "GET", &format!("/v1/connect/intentions/{id}"), "").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "Intention not found")
    );
    let (status, text) = refused(&fx, "DELETE", &format!("/v1/connect/intentions/{id}"), "").await;
    assert_eq!(
        (status, text),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Cannot delete non-existent intention: '{id}'")
        )
    );
    let (status, text) = refused(
        &fx,
        "PUT",
        &format!("/v1/connect/intentions/{id}"),
        r#"{"SourceName":"web","DestinationName":"db","Action":"deny"}"#,
    )
    .await;
    assert_eq!(
        (status, text),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Cannot modify non-existent intention: '{id}'")
        )
    );
}

#[tokio::test]
async fn list_is_ordered_by_precedence_and_filtered() {
    let fx = Fixture::new().await;
    let (status, headers, text) = fx.send("GET", "/v1/connect/intentions", "").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "[]"));
    assert_eq!(index(&headers), 1, "never index 0");

    put_exact(&fx, "*", "*", json!({"Action": "deny"})).await;
    put_exact(&fx, "web", "db", json!({"Action": "allow"})).await;
    put_exact(&fx, "*", "db", json!({"Action": "deny"})).await;
    let last = put_exact(&fx, "api", "db", json!({"Action": "allow"})).await;

    let (status, headers, text) = fx.send("GET", "/v1/connect/intentions", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), last);
    assert_eq!(
        pairs(&json_body(&text)),
        owned(&[("api", "db"), ("web", "db"), ("*", "db"), ("*", "*")])
    );

    let filter = "SourceName%20%3D%3D%20%22web%22%20or%20Action%20%3D%3D%20deny";
    let (status, headers, text) = fx
        .send(
            "GET",
            &format!("/v1/connect/intentions?filter={filter}"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(index(&headers), last);
    assert_eq!(
        pairs(&json_body(&text)),
        owned(&[("web", "db"), ("*", "db"), ("*", "*")])
    );

    let (status, text) = refused(
        &fx,
        "GET",
        "/v1/connect/intentions?filter=SourceName%20%3D%3D",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("Failed to create boolean expression evaluator"),
        "{text}"
    );

    let (_, _, pretty) = fx.send("GET", "/v1/connect/intentions?pretty", "").await;
    assert!(
        pretty.starts_with("[\n    {") && pretty.ends_with("]\n"),
        "{pretty}"
    );
}

#[tokio::test]
async fn match_answers_each_name_by_precedence() {
    let fx = Fixture::new().await;
    put_exact(&fx, "*", "*", json!({"Action": "deny"})).await;
    put_exact(&fx, "web", "*", json!({"Action": "allow"})).await;
    put_exact(&fx, "web", "db", json!({"Action": "allow"})).await;
    put_exact(&fx, "*", "db", json!({"Action": "deny"})).await;
    put_exact(&fx, "api", "db", json!({"Action": "allow"})).await;
    let last = put_exact(&fx, "api", "cache", json!({"Action": "allow"})).await;

    let (status, headers, text) = fx
        .send(
            "GET",
            "/v1/connect/intentions/match?by=destination&name=db",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(index(&headers), last);
    let answer = json_body(&text);
    assert_eq!(
        pairs(&answer["db"]),
        owned(&[
            ("api", "db"),
            ("web", "db"),
            ("*", "db"),
            ("web", "*"),
            ("*", "*")
        ])
    );
    let precedences: Vec<u64> = answer["db"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Precedence"].as_u64().unwrap())
        .collect();
    assert_eq!(precedences, [9, 9, 8, 6, 5]);

    // Several names: one key each, sorted as Go sorts map keys; a name in the default
    // namespace is answered under the name it was asked as.
    let (status, _, text) = fx
        .send(
            "GET",
            "/v1/connect/intentions/match?by=source&name=web&name=default/api&name=nobody",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.starts_with(r#"{"default/api":["#),
        "keys in Go's order: {text}"
    );
    let answer = json_body(&text);
    assert_eq!(
        answer.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["default/api", "nobody", "web"]
    );
    assert_eq!(
        pairs(&answer["web"]),
        owned(&[("web", "db"), ("*", "db"), ("web", "*"), ("*", "*")])
    );
    assert_eq!(
        pairs(&answer["default/api"]),
        owned(&[("api", "cache"), ("api", "db"), ("*", "db"), ("*", "*")])
    );
    assert_eq!(pairs(&answer["nobody"]), owned(&[("*", "db"), ("*", "*")]));
}

#[tokio::test]
async fn check_decides_like_a_connection() {
    let fx = Fixture::new().await;
    let check = |source: &'static str, destination: &'static str| {
        let fx = &fx;
        async move {
            let uri =
                format!("/v1/connect/intentions/check?source={source}&destination={destination}");
            let (status, _, text) = fx.send("GET", &uri, "").await;
            assert_eq!(status, StatusCode::OK, "{uri}: {text}");
            let reply = json_body(&text);
            reply["Allowed"]
                .as_bool()
                .unwrap_or_else(|| panic!("{{\"Allowed\": bool}}: {text}"))
        }
    };
    // Nothing matches: the default policy (allow, with ACLs off).
    assert!(check("web", "db").await);
    let (_, _, text) = fx
        .send(
            "GET",
            "/v1/connect/intentions/check?source=web&destination=db",
            "",
        )
        .await;
    assert_eq!(text, r#"{"Allowed":true}"#);

    put_exact(&fx, "web", "db", json!({"Action": "allow"})).await;
    put_exact(&fx, "api", "db", json!({"Action": "deny"})).await;
    put_exact(
        &fx,
        "ops",
        "db",
        json!({"Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/admin"}}]}),
    )
    .await;
    assert!(check("web", "db").await);
    assert!(!check("api", "db").await);
    assert!(!check("ops", "db").await, "an L7 intention is a deny");
    assert!(check("other", "db").await, "no match: the default");

    // A wildcard deny now covers everything not matched more precisely.
    put_exact(&fx, "*", "*", json!({"Action": "deny"})).await;
    assert!(!check("other", "db").await);
    assert!(check("web", "db").await);
    assert!(check("default/web", "default/db").await);
}

#[tokio::test]
async fn bad_requests_get_consul_errors_and_write_nothing() {
    let fx = Fixture::new().await;
    put_exact(&fx, "web", "db", json!({"Action": "allow"})).await;
    let e500 = StatusCode::INTERNAL_SERVER_ERROR;
    let e400 = StatusCode::BAD_REQUEST;
    // `web => db` exists, so a new source for `db` is its entry's second (`Sources[1]`).
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, StatusCode, &str)] = &[
        // Required parameters.
        ("GET", "/v1/connect/intentions/exact?destination=db", "", e500, "required query parameter 'source' not set"),
        ("GET", "/v1/connect/intentions/exact?source=web", "", e500, "required query parameter 'destination' not set"),
        ("GET", "/v1/connect/intentions/exact?source=a&source=b&destination=db", "", e500, "required query parameter 'source' not set"),
        ("PUT", "/v1/connect/intentions/exact?source=&destination=db", r#"{"Action":"allow"}"#, e500, "required query parameter 'source' not set"),
        ("DELETE", "/v1/connect/intentions/exact?source=web", "", e500, "required query parameter 'destination' not set"),
        ("GET", "/v1/connect/intentions/check?destination=db", "", e500, "required query parameter 'source' not set"),
        ("GET", "/v1/connect/intentions/check?source=web", "", e500, "required query parameter 'destination' not set"),
        ("GET", "/v1/connect/intentions/match?name=web", "", e500, "required query parameter 'by' not set"),
        ("GET", "/v1/connect/intentions/match?by=source&by=destination&name=web", "", e500, "required query parameter 'by' not set"),
        ("GET", "/v1/connect/intentions/match?by=sideways&name=web", "", e500, "'by' parameter must be one of 'source' or 'destination'"),
        ("GET", "/v1/connect/intentions/match?by=source", "", e500, "required query parameter 'name' not set"),
        // Name forms.
        ("GET", "/v1/connect/intentions/match?by=source&name=a/b/c/d", "", e500, r#"name "a/b/c/d" is invalid: input can contain at most two '/'"#),
        ("GET", "/v1/connect/intentions/match?by=source&name=peer:p/web", "", e500, r#"name "peer:p/web" is invalid: cannot specify a peer here"#),
        ("PUT", "/v1/connect/intentions/exact?source=peer:p/web&destination=db", r#"{"Action":"allow"}"#, e500, r#"source "peer:p/web" is invalid: cannot specify a peer here"#),
        ("GET", "/v1/connect/intentions/exact?source=peer:p&destination=db", "", e500, r#"source "peer:p" is invalid: need to specify the service name as well"#),
        ("GET", "/v1/connect/intentions/exact?source=web&destination=peer:p/db", "", e500, r#"destination "peer:p/db" is invalid: cannot specify a peer here"#),
        // Namespaces and partitions other than `default`.
        ("GET", "/v1/connect/intentions?ns=default", "", e400, r#"Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature"#),
        ("PUT", "/v1/connect/intentions/exact?source=web&destination=db&partition=p", r#"{"Action":"allow"}"#, e400, r#"Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/exact?source=team/web&destination=db", "", e500, r#"Invalid SourceNS "team": Namespaces is a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/exact?source=web&destination=team/db", "", e500, r#"Invalid DestinationNS "team": Namespaces is a Consul Enterprise feature"#),
        ("PUT", "/v1/connect/intentions/exact?source=team/web&destination=db", r#"{"Action":"allow"}"#, e500, r#"Invalid source namespace "team": Namespaces is a Consul Enterprise feature"#),
        ("DELETE", "/v1/connect/intentions/exact?source=web&destination=p/default/db", "", e500, r#"Invalid destination partition "p": Partitions is a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/match?by=source&name=team/web", "", e500, r#"Invalid match entry namespace "team": Namespaces is a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/match?by=source&name=p/default/web", "", e500, r#"Invalid match entry partition "p": Partitions is a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/check?source=team/web&destination=db", "", e500, r#"Invalid source namespace "team": Namespaces is a Consul Enterprise feature"#),
        ("GET", "/v1/connect/intentions/check?source=web&destination=db&source-type=aws", "", e500, r#"unsupported SourceType: "aws""#),
        ("POST", "/v1/connect/intentions", r#"{"SourceNS":"team","SourceName":"x","DestinationName":"y","Action":"allow"}"#, e400, "Invalid SourceNS(team): Namespaces is a Consul Enterprise feature"),
        // Bodies, and what the intentions crate refuses.
        ("PUT", "/v1/connect/intentions/exact?source=api&destination=db", "", e400, "Request decode failed: EOF"),
        ("POST", "/v1/connect/intentions", "", e500, "Failed to decode request body: EOF"),
        ("PUT", "/v1/connect/intentions/exact?source=api&destination=db", "{}", e500, "Sources[1].Action must be set to 'allow' or 'deny'"),
        ("PUT", "/v1/connect/intentions/exact?source=api&destination=db", r#"{"Action":"allow","Meta":{"k":"v"}}"#, e500, "Meta must not be specified, or should be unchanged during an update."),
        ("PUT", "/v1/connect/intentions/exact?source=api&destination=db", r#"{"Action":"allow","SourcePeer":"p"}"#, e500, "SourcePeer field is not supported on this endpoint. Use config entries instead"),
        ("POST", "/v1/connect/intentions", r#"{"SourceName":"api","DestinationName":"db","Action":"allow"}"#, e500, r#"cannot use legacy intention API to edit intentions with a destination of "db" after editing them via a service-intentions config entry"#),
        // Legacy IDs.
        ("GET", "/v1/connect/intentions/not-a-uuid", "", e400, "failed config entry lookup: UUID must be 36 characters"),
        ("GET", "/v1/connect/intentions/a1111111-2222-3333-4444-55555555555b", "", StatusCode::NOT_FOUND, "Intention not found"),
        ("DELETE", "/v1/connect/intentions/not-a-uuid", "", e500, "Intention lookup failed: failed config entry lookup: UUID must be 36 characters"),
        // Read options.
        ("GET", "/v1/connect/intentions?dc=elsewhere", "", e500, "No path to datacenter"),
        ("GET", "/v1/connect/intentions?index=abc", "", e400, "Invalid index"),
    ];
    for (method, uri, body, status, text) in cases {
        let (got, got_text) = refused(&fx, method, uri, body).await;
        assert_eq!(
            (got, got_text.as_str()),
            (*status, *text),
            "{method} {uri} {body}"
        );
    }
    // A peer's intention cannot exist here: not found.
    let (status, text) = refused(
        &fx,
        "GET",
        "/v1/connect/intentions/exact?source=peer:p/web&destination=db",
        "",
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "Intention not found")
    );
    // The header spelling of a namespace is refused too.
    let req = Request::builder()
        .uri("/v1/connect/intentions")
        .header("X-Consul-Namespace", "team")
        .body(Body::empty())
        .expect("request");
    let resp = fx.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn routes_and_methods() {
    let fx = Fixture::new().await;
    for (method, uri, allow) in [
        ("PATCH", "/v1/connect/intentions", "OPTIONS,GET,POST"),
        (
            "POST",
            "/v1/connect/intentions/exact",
            "OPTIONS,GET,PUT,DELETE",
        ),
        ("PUT", "/v1/connect/intentions/match", "OPTIONS,GET"),
        ("DELETE", "/v1/connect/intentions/check", "OPTIONS,GET"),
        (
            "POST",
            "/v1/connect/intentions/a1111111-2222-3333-4444-55555555555b",
            "OPTIONS,GET,PUT,DELETE",
        ),
    ] {
        let (status, headers, text) = fx.send(method, uri, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(header_str(&headers, "Allow"), Some(allow), "{method} {uri}");
        assert_eq!(text, format!("method {method} not allowed"));
    }
    // An ID with a slash is still an ID (Consul routes by prefix), and not a UUID.
    let (status, _, text) = fx.send("GET", "/v1/connect/intentions/a/b", "").await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "failed config entry lookup: UUID must be 36 characters"
        )
    );
}

#[tokio::test]
async fn blocking_reads_wake_on_intention_writes_only() {
    let fx = Fixture::new().await;
    let first = put_exact(&fx, "web", "db", json!({"Action": "allow"})).await;
    let mut list = fx.spawn(
        "GET",
        &format!("/v1/connect/intentions?index={first}&wait=5s"),
    );
    let mut matched = fx.spawn(
        "GET",
        &format!("/v1/connect/intentions/match?by=destination&name=db&index={first}&wait=5s"),
    );
    let mut exact = fx.spawn(
        "GET",
        &format!("/v1/connect/intentions/exact?source=web&destination=db&index={first}&wait=5s"),
    );

    fx.put("unrelated", "v").await;
    for watcher in [&mut list, &mut matched, &mut exact] {
        assert!(
            tokio::time::timeout(MUST_NOT_HAPPEN, watcher)
                .await
                .is_err(),
            "a KV write woke an intentions watcher"
        );
    }

    let second = put_exact(&fx, "web", "db", json!({"Action": "deny"})).await;
    for (name, watcher) in [("list", list), ("match", matched), ("exact", exact)] {
        let (status, headers, text) = tokio::time::timeout(MUST_HAPPEN, watcher)
            .await
            .unwrap_or_else(|_| panic!("the write wakes the {name} watcher"))
            .expect("task");
        assert_eq!(status, StatusCode::OK, "{name}: {text}");
        assert_eq!(index(&headers), second, "{name}");
        assert!(text.contains(r#""Action":"deny""#), "{name}: {text}");
    }

    // Blocking on a missing intention answers at once, as Consul's query does.
    let (status, _, text) = tokio::time::timeout(
        MUST_HAPPEN,
        fx.send(
            "GET",
            &format!(
                "/v1/connect/intentions/exact?source=api&destination=db&index={second}&wait=5m"
            ),
            "",
        ),
    )
    .await
    .expect("a missing intention does not block");
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "Intention not found")
    );
}
