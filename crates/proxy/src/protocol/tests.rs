use super::Protocol;

#[test]
fn consul_protocol_values_parse_in_any_case() {
    let check = |text: &str, expected: Option<Protocol>| {
        assert_eq!(Protocol::parse(text), expected, "{text:?}");
    };
    check("", Some(Protocol::Tcp));
    check("tcp", Some(Protocol::Tcp));
    check("TCP", Some(Protocol::Tcp));
    check("http", Some(Protocol::Http));
    check("HTTP", Some(Protocol::Http));
    check("http2", Some(Protocol::Http2));
    check("Http2", Some(Protocol::Http2));
    check("grpc", Some(Protocol::Grpc));
    check("gRPC", Some(Protocol::Grpc));
    check("https", None);
    check("h2", None);
    check(" http", None);
    check("udp", None);
}

#[test]
fn names_round_trip_and_say_what_is_proxied() {
    for protocol in [
        Protocol::Tcp,
        Protocol::Http,
        Protocol::Http2,
        Protocol::Grpc,
    ] {
        assert_eq!(Protocol::parse(&protocol.to_string()), Some(protocol));
    }
    assert!(!Protocol::Tcp.is_http());
    assert!(Protocol::Http.is_http() && !Protocol::Http.is_http2());
    assert!(Protocol::Http2.is_http2() && Protocol::Grpc.is_http2());
    assert_eq!(Protocol::default(), Protocol::Tcp);
}
