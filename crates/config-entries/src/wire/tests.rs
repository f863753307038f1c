use super::*;
use crate::store::ConfigEntries;

/// The entry a body stores when upserted at `index`.
fn stored(body: &str, index: u64) -> ConfigEntry {
    let write = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
    let mut store = ConfigEntries::new();
    let applied = store.upsert(&write, None, index).expect("valid");
    assert!(applied.done);
    let [entry] = store.list(Some(write.kind))[..] else {
        panic!("one entry");
    };
    entry.clone()
}

fn check_output(body: &str, expected: &str) {
    assert_eq!(entry_json(&stored(body, 7)).to_string(), expected, "{body}");
}

#[test]
fn output_in_go_order_with_go_omitempty() {
    check_output(
        r#"{"Kind":"service-defaults","Name":"web","Protocol":"HTTP","Meta":{"b":"2","a":"1"}}"#,
        concat!(
            r#"{"Kind":"service-defaults","Name":"web","Protocol":"http","TransparentProxy":{},"#,
            r#""MeshGateway":{},"Expose":{},"Meta":{"a":"1","b":"2"},"CreateIndex":7,"ModifyIndex":7}"#
        ),
    );
    // Protocol is written even when empty; Mode only when set.
    check_output(
        r#"{"Kind":"service-defaults","Name":"db","Mode":"direct"}"#,
        concat!(
            r#"{"Kind":"service-defaults","Name":"db","Protocol":"","Mode":"direct","#,
            r#""TransparentProxy":{},"MeshGateway":{},"Expose":{},"CreateIndex":7,"ModifyIndex":7}"#
        ),
    );
    // Config is a Go map: null when unset, keys sorted at every depth; no Protocol field.
    check_output(
        r#"{"Kind":"proxy-defaults","Name":"global"}"#,
        concat!(
            r#"{"Kind":"proxy-defaults","Name":"global","Config":null,"TransparentProxy":{},"#,
            r#""MeshGateway":{},"Expose":{},"AccessLogs":{},"CreateIndex":7,"ModifyIndex":7}"#
        ),
    );
    check_output(
        r#"{"kind":"proxy-defaults","config":{"protocol":"grpc","b":{"z":1,"a":[{"y":1,"x":2}]}}}"#,
        concat!(
            r#"{"Kind":"proxy-defaults","Name":"global","Config":{"b":{"a":[{"x":2,"y":1}],"z":1},"#,
            r#""protocol":"grpc"},"TransparentProxy":{},"MeshGateway":{},"Expose":{},"AccessLogs":{},"#,
            r#""CreateIndex":7,"ModifyIndex":7}"#
        ),
    );
}

#[test]
fn snake_case_and_any_case_are_read_like_consul() {
    check_output(
        concat!(
            r#"{"kind":"service-defaults","name":"web","protocol":"grpc","mesh_gateway":{"mode":"local"},"#,
            r#""max_inbound_connections":10,"TRANSPARENTPROXY":{"dialed_directly":true,"outbound_listener_port":15001},"#,
            r#""expose":{"paths":{"path":"/h","local_path_port":8080,"listener_port":21500},"checks":false},"#,
            r#""upstream_config":{"defaults":{"connect_timeout_ms":5}},"envoy_extensions":[],"external_sni":""}"#
        ),
        concat!(
            r#"{"Kind":"service-defaults","Name":"web","Protocol":"grpc","#,
            r#""TransparentProxy":{"OutboundListenerPort":15001,"DialedDirectly":true},"#,
            r#""MeshGateway":{"Mode":"local"},"#,
            r#""Expose":{"Paths":[{"ListenerPort":21500,"Path":"/h","LocalPathPort":8080}]},"#,
            r#""UpstreamConfig":{"defaults":{"connect_timeout_ms":5}},"MaxInboundConnections":10,"#,
            r#""CreateIndex":7,"ModifyIndex":7}"#
        ),
    );
    // Weak typing: a number is a string; a list of one stands for its element.
    let write = decode(br#"{"Kind":"service-defaults","Name":["web"],"Meta":{"n":5,"b":true}}"#)
        .expect("decodes");
    assert_eq!(write.name, "web");
    assert_eq!(
        write.meta.into_iter().collect::<Vec<_>>(),
        [("b".into(), "1".into()), ("n".into(), "5".into())]
    );
    // Only the first JSON value counts, as with Go's decoder.
    assert!(decode(br#"{"Kind":"service-defaults","Name":"a"} trailing"#).is_ok());
}

#[test]
fn json_round_trips() {
    for body in [
        concat!(
            r#"{"Kind":"service-defaults","Name":"Web","Protocol":"http2","Mode":"transparent","#,
            r#""TransparentProxy":{"OutboundListenerPort":15001},"MutualTLSMode":"strict","#,
            r#""MeshGateway":{"Mode":"remote"},"Expose":{"Checks":true},"ExternalSNI":"x.example","#,
            r#""Destination":{"Addresses":["a.example"],"Port":443},"LocalRequestTimeoutMs":30,"#,
            r#""BalanceInboundConnections":"exact_balance","RateLimits":{"InstanceLevel":{"RequestsPerSecond":5}},"#,
            r#""EnvoyExtensions":[{"Name":"builtin/lua"}],"Meta":{"k":"v"}}"#
        ),
        concat!(
            r#"{"Kind":"proxy-defaults","Name":"global","Config":{"protocol":"http","n":1.5},"#,
            r#""AccessLogs":{"Enabled":true,"Type":"stdout"},"FailoverPolicy":{"Mode":"default"},"#,
            r#""PrioritizeByLocality":{"Mode":"failover"},"Meta":{"k":"v"}}"#
        ),
    ] {
        let first = stored(body, 3);
        let json = entry_json(&first).to_string();
        let again = parse_entry(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(again, first, "{json}");
        assert_eq!(entry_json(&again).to_string(), json);
    }
    assert_eq!(entries_json([]).to_string(), "[]");
}

#[test]
fn decode_errors_are_consuls() {
    let check = |body: &str, expected: &str| {
        let err = decode(body.as_bytes()).expect_err(body);
        assert_eq!(err.to_string(), expected, "{body}");
    };
    check("", "EOF");
    check("  \n", "EOF");
    check("[1]", "'' expected a map, got 'slice'");
    check(
        "null",
        "Payload does not contain a kind/Kind key at the top level",
    );
    check(
        r#"{"Name":"web"}"#,
        "Payload does not contain a kind/Kind key at the top level",
    );
    check(
        r#"{"KIND":"service-defaults"}"#,
        "Payload does not contain a kind/Kind key at the top level",
    );
    check(r#"{"Kind":5}"#, "Kind value in payload is not a string");
    check(r#"{"Kind":null}"#, "Kind value in payload is not a string");
    check(
        r#"{"Kind":"service-router","Name":"web"}"#,
        "invalid config entry kind: service-router",
    );
    check(
        r#"{"Kind":"Service-Defaults","Name":"web"}"#,
        "invalid config entry kind: Service-Defaults",
    );
    check(
        r#"{"Kind":"service-defaults","Name":"web","Color":"red"}"#,
        "1 error occurred:\n\t* invalid config key \"Color\"\n\n",
    );
    check(
        r#"{"Kind":"service-defaults","Name":"web","Namespace":"team","Partition":"p","Config":{}}"#,
        concat!(
            "3 errors occurred:\n\t* invalid config key \"Config\"\n",
            "\t* invalid config key \"Namespace\", namespaces are a consul enterprise feature\n",
            "\t* invalid config key \"Partition\"\n\n"
        ),
    );
    check(
        r#"{"Kind":"proxy-defaults","TransparentProxy":{"Port":1},"Expose":{"Paths":[{"Nope":1}]}}"#,
        concat!(
            "2 errors occurred:\n\t* invalid config key \"Expose.Paths[0].Nope\"\n",
            "\t* invalid config key \"TransparentProxy.Port\"\n\n"
        ),
    );
    // Two spellings of one field: the exact one is used, the other left unused.
    check(
        r#"{"Kind":"service-defaults","protocol":"tcp","Protocol":"http","Name":"web"}"#,
        "1 error occurred:\n\t* invalid config key \"protocol\"\n\n",
    );
    check(
        r#"{"Kind":"service-defaults","Name":{"a":1},"Protocol":[1,2]}"#,
        concat!(
            "2 error(s) decoding:\n\n",
            "* 'Name' expected type 'string', got unconvertible type 'map[string]interface {}', value: 'map[a:1]'\n",
            "* 'Protocol' expected type 'string', got unconvertible type '[]interface {}', value: '[1 2]'"
        ),
    );
    check(
        r#"{"Kind":"service-defaults","Name":"web","Meta":"x","MeshGateway":"local"}"#,
        "2 error(s) decoding:\n\n* 'MeshGateway' expected a map, got 'string'\n* 'Meta' expected a map, got 'string'",
    );
    check(
        r#"{"Kind":"service-defaults","Name":"web","Meta":{"k":{}}}"#,
        "1 error(s) decoding:\n\n* 'Meta[k]' expected type 'string', got unconvertible type 'map[string]interface {}', value: 'map[]'",
    );
    check(
        r#"{"Kind":"proxy-defaults","Config":"protocol=http"}"#,
        "1 error(s) decoding:\n\n* 'Config' expected a map, got 'string'",
    );
    assert!(decode(b"{")
        .expect_err("truncated")
        .to_string()
        .contains("EOF"));
}

#[test]
fn indexes_and_kind_in_a_body_are_ignored() {
    let write = decode(
        br#"{"Kind":"service-defaults","kind":"x","Name":"web","CreateIndex":5,"ModifyIndex":9,"Hash":123}"#,
    )
    .expect("accepted, as Consul accepts what it wrote");
    assert_eq!(write.name, "web");
    assert!(write.other.is_empty());
}

#[test]
fn not_found_text() {
    assert_eq!(
        not_found("service-defaults", "we\"b"),
        r#"Config entry not found for "service-defaults" / "we\"b""#
    );
}
