use super::*;
use crate::wire;

fn normalized(body: &str) -> Result<ConfigEntry, ConfigEntryError> {
    normalize(&wire::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}")))
}

#[test]
fn refusals_have_consuls_texts() {
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(513);
    let many: Vec<String> = (0..65).map(|i| format!(r#""k{i}":"v""#)).collect();
    let cases: Vec<(String, String)> = vec![
        (r#"{"Kind":"service-defaults"}"#.into(), "Name is required".into()),
        (r#"{"Kind":"service-defaults","Name":"*"}"#.into(),
            "service-defaults name must be the name of a service, and not a wildcard".into()),
        (r#"{"Kind":"proxy-defaults","Name":"x"}"#.into(),
            r#"invalid name ("x"), only "global" is supported"#.into()),
        (r#"{"Kind":"proxy-defaults","Name":"Global"}"#.into(),
            r#"invalid name ("Global"), only "global" is supported"#.into()),
        (format!(r#"{{"Kind":"service-defaults","Name":"web","Meta":{{"{long_key}":"{long_value}"}}}}"#),
            format!("2 errors occurred:\n\t* Meta key \"{long_key}\" exceeds maximum length 128\n\t* Meta value for key \"{long_key}\" exceeds maximum length 512\n\n")),
        (format!(r#"{{"Kind":"proxy-defaults","Meta":{{{}}}}}"#, many.join(",")),
            "1 error occurred:\n\t* Meta exceeds maximum element count 64\n\n".into()),
        (r#"{"Kind":"service-defaults","Name":"web","BalanceInboundConnections":"round"}"#.into(),
            "1 error occurred:\n\t* invalid value for balance_inbound_connections: round\n\n".into()),
        (r#"{"Kind":"service-defaults","Name":"web","MutualTLSMode":"loose","BalanceInboundConnections":"x"}"#.into(),
            r#"Invalid MutualTLSMode "loose". Must be one of "", "strict", or "permissive"."#.into()),
        (format!(r#"{{"Kind":"proxy-defaults","Config":{{"envoy_hcp_metrics_bind_socket_dir":"{}"}}}}"#, "d".repeat(71)),
            "Config: envoy_hcp_metrics_bind_socket_dir length 71 exceeds max 70".into()),
        (r#"{"Kind":"proxy-defaults","Config":{"Protocol":["http"]}}"#.into(),
            "1 error(s) decoding:\n\n* 'protocol' expected type 'string', got unconvertible type '[]interface {}', value: '[http]'".into()),
        // mesh's own: protocols its proxies do not speak, modes no proxy knows.
        (r#"{"Kind":"service-defaults","Name":"web","Protocol":"Kafka"}"#.into(),
            r#"invalid protocol "kafka": mesh supports "tcp", "http", "http2" and "grpc""#.into()),
        (r#"{"Kind":"proxy-defaults","Config":{"protocol":"udp"}}"#.into(),
            r#"Config: invalid protocol "udp": mesh supports "tcp", "http", "http2" and "grpc""#.into()),
        (r#"{"Kind":"service-defaults","Name":"web","Mode":"Direct"}"#.into(),
            r#"Invalid Proxy Mode: "Direct""#.into()),
    ];
    for (body, expected) in cases {
        let err = normalized(&body).expect_err(&body);
        assert_eq!(err.to_string(), expected, "{body}");
        assert_eq!(err.write_status(), 500, "{body}");
    }
}

#[test]
fn normalization() {
    let entry =
        normalized(r#"{"Kind":"service-defaults","Name":"Web","Protocol":"GRPC"}"#).expect("valid");
    assert_eq!(
        (entry.name.as_str(), entry.protocol),
        ("Web", Protocol::Grpc)
    );
    // A proxy-defaults needs no name, and finds its protocol in Config in any case.
    let entry =
        normalized(r#"{"Kind":"proxy-defaults","Config":{"PROTOCOL":"Http2"},"Protocol":"tcp"}"#)
            .expect("valid");
    assert_eq!(
        (entry.name.as_str(), entry.protocol),
        ("global", Protocol::Http2)
    );
    let entry =
        normalized(r#"{"Kind":"proxy-defaults","Config":{"protocol":null}}"#).expect("valid");
    assert_eq!(entry.protocol, Protocol::Unset);
    assert_eq!(
        delete_name(Kind::ProxyDefaults, "").as_deref(),
        Ok("global")
    );
    assert_eq!(
        delete_name(Kind::ProxyDefaults, "other").map_err(|e| e.to_string()),
        Err(r#"invalid name ("other"), only "global" is supported"#.to_owned())
    );
    assert_eq!(
        delete_name(Kind::ServiceDefaults, "Web").as_deref(),
        Ok("Web")
    );
}
