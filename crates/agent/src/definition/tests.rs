use super::*;

fn service(json: serde_json::Value) -> Result<ServiceDefinition, Invalid> {
    let body: ServiceBody = cw::decode(json.to_string().as_bytes()).expect("decodes");
    body.validate(&|_| false)
}

#[test]
fn embedded_checks_get_consuls_ids_and_names() {
    let one = service(json!({"Name": "web", "Port": 80, "Check": {"TTL": "10s"}})).unwrap();
    assert_eq!(one.checks[0].id, "service:web");
    assert_eq!(one.checks[0].name, "Service 'web' check");
    assert_eq!(one.checks[0].status, Status::Critical);
    let two = service(json!({"name": "web", "id": "web-1", "checks": [
        {"ttl": "10s"},
        {"http": "http://127.0.0.1:1/h", "interval": "500ms"},
    ]}))
    .unwrap();
    let ids: Vec<_> = two.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["service:web-1:1", "service:web-1:2"]);
    // Intervals below a second are raised to one.
    assert_eq!(two.checks[1].interval, MIN_INTERVAL);
    assert_eq!(two.checks[1].service_id, "web-1");
}

#[test]
fn bad_definitions_get_consuls_texts() {
    let cases = [
        (json!({"Port": 80}), "Missing service name"),
        (json!({"Name": "w", "Address": "0.0.0.0"}), "Invalid service address"),
        (json!({"Name": "w", "Weights": {"Passing": 0, "Warning": 1}}), "Invalid Weights: Passing must be greater than 0 and less than 65536, got 0"),
        (json!({"Name": "w", "Meta": {"consul-x": "y"}}), "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'y'): Key prefix 'consul-' is reserved for internal use"),
        (json!({"Name": "w", "Check": {"HTTP": "http://x"}}), "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
        (json!({"Name": "w", "Check": {}}), "Invalid check: TTL must be > 0 for TTL checks"),
        (json!({"Name": "w", "Check": {"TTL": "5s", "Interval": "5s"}}), "Invalid check: Interval and TTL cannot both be specified"),
        (json!({"Name": "w", "Check": {"TTL": "5s", "Status": "bogus"}}), "Status for checks must 'passing', 'warning', 'critical'"),
        (json!({"Name": "w", "Kind": "connect-proxy", "Port": 1}), "Validation failed: Proxy.DestinationServiceName must be non-empty for Connect proxy services"),
    ];
    for (body, want) in cases {
        assert_eq!(service(body.clone()).unwrap_err().0, want, "{body}");
    }
}

#[test]
fn sidecar_service_expands_like_consul() {
    let def = service(json!({
        "name": "web", "port": 8080,
        "connect": {"sidecar_service": {"proxy": {"upstreams": [{"destination_name": "db", "local_bind_port": 9191}]}}}
    }))
    .unwrap();
    let sidecar = def.sidecar.expect("sidecar");
    let svc = &sidecar.service;
    assert_eq!(svc.id, "web-sidecar-proxy");
    assert_eq!(svc.service, "web-sidecar-proxy");
    assert_eq!(svc.kind, "connect-proxy");
    assert_eq!(svc.port, 21000);
    let proxy = svc.proxy.as_ref().unwrap();
    assert_eq!(proxy.destination_service_name, "web");
    assert_eq!(proxy.local_service_port, 8080);
    assert_eq!(proxy.upstreams[0].destination_name, "db");
    let names: Vec<_> = sidecar.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Connect Sidecar Listening", "Connect Sidecar Aliasing web"]
    );
    assert_eq!(
        sidecar.checks[0].kind,
        CheckKind::Tcp("127.0.0.1:21000".into())
    );
}

#[test]
fn sidecar_ports_skip_taken_ones() {
    let body: ServiceBody = cw::decode(br#"{"Name":"a","Connect":{"SidecarService":{}}}"#).unwrap();
    let def = body.validate(&|p| p < 21003).unwrap();
    assert_eq!(def.sidecar.unwrap().service.port, 21003);
}

#[test]
fn check_definition_shows_durations_as_strings() {
    let def =
        service(json!({"Name": "w", "Check": {"HTTP": "http://h", "Interval": 10_000_000_000u64}}))
            .unwrap();
    let hc = def.checks[0].health_check("n1", Some(&def.service));
    assert_eq!(hc.interval, "10s");
    assert_eq!(hc.timeout, "10s");
    assert_eq!(hc.check_type, "http");
    let shown: Value = serde_json::from_str(&hc.definition).unwrap();
    assert_eq!(shown["HTTP"], "http://h");
    assert_eq!(shown["Interval"], "10s");
}
