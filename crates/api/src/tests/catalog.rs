//! `/v1/catalog/*` and `/v1/health/*` as Consul clients see them.

use serde_json::json;

use super::*;

async fn register(fx: &Fixture, body: serde_json::Value) -> u64 {
    let (status, _, text) = fx
        .send("PUT", "/v1/catalog/register", &body.to_string())
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "true"), "{body}");
    // Every registration here changes a service, so the services table's index is the
    // registration's.
    let (_, headers, _) = fx.send("GET", "/v1/catalog/services", "").await;
    index(&headers)
}

fn json_body(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON body")
}

#[tokio::test]
async fn register_then_read_through_every_catalog_view() {
    let fx = Fixture::new().await;
    register(
        &fx,
        json!({
            "Node": "n1", "Address": "10.0.0.1", "NodeMeta": {"rack": "r1"},
            "Service": {"Service": "web", "Tags": ["v1", "primary"], "Port": 80, "Meta": {"env": "prod"}},
            "Check": {"Name": "web alive", "ServiceID": "web", "Status": "passing"},
        }),
    )
    .await;
    register(&fx, json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "web", "ID": "web-2", "Tags": ["v2"]}})).await;

    let (status, _, body) = fx.send("GET", "/v1/catalog/services", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_body(&body), json!({"web": ["v1", "primary", "v2"]}));

    let (_, headers, body) = fx.send("GET", "/v1/catalog/service/web", "").await;
    let rows = json_body(&body);
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["ServiceID"], "web");
    assert_eq!(rows[0]["NodeMeta"], json!({"rack": "r1"}));
    assert_eq!(
        rows[0]["ServiceWeights"],
        json!({"Passing": 1, "Warning": 1})
    );
    assert_eq!(
        rows[0]["ServiceProxy"],
        json!({"Mode": "", "MeshGateway": {}, "Expose": {}})
    );
    assert_eq!(header_str(&headers, "X-Consul-KnownLeader"), Some("true"));

    let (_, _, body) = fx
        .send("GET", "/v1/catalog/service/web?tag=v1&tag=primary", "")
        .await;
    assert_eq!(json_body(&body).as_array().unwrap().len(), 1);
    let (_, _, body) = fx
        .send("GET", "/v1/catalog/service/web?tag=v1&tag=v2", "")
        .await;
    assert_eq!(body, "[]");
    let (_, _, body) = fx
        .send("GET", "/v1/catalog/service/web?node-meta=rack:r1", "")
        .await;
    assert_eq!(json_body(&body)[0]["Node"], "n1");
    let filter =
        form_urlencoded::byte_serialize(br#"ServiceMeta.env == "prod""#).collect::<String>();
    let (_, _, body) = fx
        .send(
            "GET",
            &format!("/v1/catalog/service/web?filter={filter}"),
            "",
        )
        .await;
    assert_eq!(json_body(&body)[0]["ServiceID"], "web");
    assert_eq!(json_body(&body).as_array().unwrap().len(), 1);

    let (_, _, body) = fx.send("GET", "/v1/catalog/node/n1", "").await;
    let node = json_body(&body);
    assert_eq!(node["Node"]["Address"], "10.0.0.1");
    assert_eq!(node["Services"]["web"]["Tags"], json!(["v1", "primary"]));
    let (status, _, body) = fx.send("GET", "/v1/catalog/node/ghost", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "null"));
    let (_, _, body) = fx.send("GET", "/v1/catalog/node-services/n2", "").await;
    assert_eq!(json_body(&body)["Services"][0]["ID"], "web-2");
    let (_, _, body) = fx.send("GET", "/v1/catalog/nodes", "").await;
    let names: Vec<_> = json_body(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Node"].clone())
        .collect();
    assert_eq!(names, [json!("n1"), json!("n2")]);
    let (_, _, body) = fx.send("GET", "/v1/catalog/datacenters", "").await;
    assert_eq!(body, r#"["dc1"]"#);
}

#[tokio::test]
async fn health_service_passing_drops_any_instance_with_a_non_passing_check() {
    let fx = Fixture::new().await;
    register(&fx, json!({"Node": "n1", "Address": "a", "Service": {"Service": "web"}, "Check": {"Name": "c", "ServiceID": "web", "Status": "passing"}})).await;
    register(&fx, json!({"Node": "n2", "Address": "b", "Service": {"Service": "web"}, "Check": {"Name": "c", "ServiceID": "web", "Status": "warning"}})).await;
    register(&fx, json!({"Node": "n3", "Address": "c", "Service": {"Service": "web"}, "Check": {"Name": "node down"}})).await;

    let (_, _, body) = fx.send("GET", "/v1/health/service/web", "").await;
    assert_eq!(json_body(&body).as_array().unwrap().len(), 3);
    let (_, _, body) = fx.send("GET", "/v1/health/service/web?passing", "").await;
    let rows = json_body(&body);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["Node"]["Node"], "n1");
    assert_eq!(rows[0]["Checks"][0]["Status"], "passing");
    let (status, _, body) = fx
        .send("GET", "/v1/health/service/web?passing=maybe", "")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "Invalid value for ?passing")
    );

    // A node-level critical check counts against every instance on the node.
    let (_, _, body) = fx.send("GET", "/v1/health/node/n3", "").await;
    assert_eq!(json_body(&body)[0]["Status"], "critical");
    assert_eq!(json_body(&body)[0]["CheckID"], "node down");
    let (_, _, body) = fx.send("GET", "/v1/health/state/critical", "").await;
    assert_eq!(json_body(&body).as_array().unwrap().len(), 1);
    let (status, _, body) = fx.send("GET", "/v1/health/state/sideways", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "Invalid check state")
    );
    let (_, _, body) = fx.send("GET", "/v1/health/checks/web", "").await;
    assert_eq!(json_body(&body).as_array().unwrap().len(), 2);
    let filter =
        form_urlencoded::byte_serialize(br#"Checks.Status == "warning""#).collect::<String>();
    let (_, _, body) = fx
        .send(
            "GET",
            &format!("/v1/health/service/web?filter={filter}"),
            "",
        )
        .await;
    assert_eq!(json_body(&body)[0]["Node"]["Node"], "n2");
}

#[tokio::test]
async fn blocking_on_one_service_ignores_changes_to_another() {
    let fx = Fixture::new().await;
    let web0 = register(
        &fx,
        json!({"Node": "n1", "Address": "a", "Service": {"Service": "web"}}),
    )
    .await;
    register(
        &fx,
        json!({"Node": "n1", "Address": "a", "Service": {"Service": "db"}}),
    )
    .await;
    let (_, headers, _) = fx.send("GET", "/v1/health/service/web", "").await;
    let web_index = index(&headers);
    assert_eq!(web_index, web0);
    let mut watcher = fx.spawn(
        "GET",
        &format!("/v1/health/service/web?index={web_index}&wait=5s"),
    );

    register(
        &fx,
        json!({"Node": "n1", "Address": "a", "Service": {"Service": "db", "Tags": ["x"]}}),
    )
    .await;
    register(
        &fx,
        json!({"Node": "n9", "Address": "z", "Service": {"Service": "db"}}),
    )
    .await;
    assert!(
        tokio::time::timeout(MUST_NOT_HAPPEN, &mut watcher)
            .await
            .is_err(),
        "a change to db woke a watcher of web"
    );
    let web1 = register(
        &fx,
        json!({"Node": "n1", "Address": "a", "Service": {"Service": "web", "Tags": ["new"]}}),
    )
    .await;
    let (status, headers, body) = tokio::time::timeout(MUST_HAPPEN, watcher)
        .await
        .expect("the change to web wakes its watcher")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(index(&headers), web1);
    assert_eq!(json_body(&body)[0]["Service"]["Tags"], json!(["new"]));
}

#[tokio::test]
async fn deregister_node_service_and_check() {
    let fx = Fixture::new().await;
    register(&fx, json!({"Node": "n1", "Address": "a", "Service": {"Service": "web"}, "Checks": [{"Name": "c1", "ServiceID": "web"}, {"Name": "node"}]})).await;
    register(
        &fx,
        json!({"Node": "n1", "Address": "a", "Service": {"Service": "db"}}),
    )
    .await;
    let dereg = |body: serde_json::Value| {
        let fx = &fx;
        async move {
            let (status, _, text) = fx
                .send("PUT", "/v1/catalog/deregister", &body.to_string())
                .await;
            assert_eq!((status, text.as_str()), (StatusCode::OK, "true"));
        }
    };
    dereg(json!({"Node": "n1", "CheckID": "node"})).await;
    let (_, _, body) = fx.send("GET", "/v1/health/node/n1", "").await;
    assert_eq!(json_body(&body).as_array().unwrap().len(), 1);
    dereg(json!({"Node": "n1", "ServiceID": "web"})).await;
    let (_, _, body) = fx.send("GET", "/v1/catalog/service/web", "").await;
    assert_eq!(body, "[]");
    let (_, _, body) = fx.send("GET", "/v1/health/node/n1", "").await;
    assert_eq!(body, "[]");
    dereg(json!({"Node": "n1"})).await;
    let (_, _, body) = fx.send("GET", "/v1/catalog/node/n1", "").await;
    assert_eq!(body, "null");
    // Deregistering what is not there is still `true`.
    dereg(json!({"Node": "ghost"})).await;
}

#[tokio::test]
async fn bad_registrations_get_consul_errors_and_change_nothing() {
    let fx = Fixture::new().await;
    let (_, before, _) = fx.send("GET", "/v1/catalog/nodes", "").await;
    let cases = [
        (
            json!({"Node": "n1"}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Must provide node and address",
        ),
        (
            json!({"Node": "n1", "Address": "a", "Service": {"ID": "x"}}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Must provide service name with ID",
        ),
        (
            json!({"Node": "n1", "Address": "a", "Service": {"Service": "x", "Address": "0.0.0.0"}}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Invalid service address",
        ),
        (
            json!({"Node": "n1", "Address": "a", "Check": {"Name": "c", "ServiceID": "ghost"}}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Missing service registration",
        ),
        (
            json!({"Node": "n1", "Address": "a", "Check": {"Name": "c", "Status": "fine"}}),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Invalid check status: 'fine'",
        ),
    ];
    for (body, status, text) in cases {
        let (got, _, got_text) = fx
            .send("PUT", "/v1/catalog/register", &body.to_string())
            .await;
        assert_eq!((got, got_text.as_str()), (status, text), "{body}");
    }
    let (status, _, text) = fx.send("PUT", "/v1/catalog/register", "{nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("Request decode failed: "), "{text}");
    let (status, _, text) = fx
        .send("GET", "/v1/catalog/service/web?filter=Service%20%3D%3D", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("Failed to create boolean expression evaluator"),
        "{text}"
    );
    let (status, _, text) = fx.send("GET", "/v1/catalog/service/", "").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::BAD_REQUEST, "Missing service name")
    );
    let (_, after, body) = fx.send("GET", "/v1/catalog/nodes", "").await;
    assert_eq!(index(&before), index(&after));
    assert_eq!(body, "[]");
}

#[tokio::test]
async fn service_meta_is_checked_with_consuls_rules_before_it_is_proposed() {
    let fx = Fixture::new().await;
    let meta: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let body = json!({
        "Node": "n1", "Address": "10.0.0.1",
        "Service": {"Service": "web", "Meta": meta},
    });
    let (status, _, text) = fx
        .send("PUT", "/v1/catalog/register", &body.to_string())
        .await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Invalid service meta Node metadata cannot contain more than 64 key/value pairs"
        )
    );
    let applied = fx.applied();
    let (_, _, text) = fx.send("GET", "/v1/catalog/services", "").await;
    assert_eq!(json_body(&text), json!({}), "nothing was written");
    assert_eq!(fx.applied(), applied);
}

#[tokio::test]
async fn query_parameters_are_bounded_before_any_handler_parses_them() {
    let fx = Fixture::new().await;
    let many: String = (0..=crate::limits::MAX_QUERY_PARAMETERS)
        .map(|i| format!("p{i}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let (status, headers, text) = fx.send("GET", &format!("/v1/kv/a?{many}"), "").await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Too many query parameters (513, limit: 512)"
        )
    );
    assert!(header_str(&headers, "X-Consul-Default-ACL-Policy").is_some());
    // Within the bound: answered as usual.
    let (status, _, _) = fx.send("GET", "/v1/kv/a?p1=1&p2=2", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
