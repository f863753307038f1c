use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::uri::Authority;
use hyper::{Request, Version};

use super::{
    header_texts, normalize_path, prepare_forward, rule_view, strip_hop_by_hop, PathError,
};

fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn names(map: &HeaderMap) -> Vec<&str> {
    map.keys().map(|name| name.as_str()).collect()
}

#[test]
fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
    let mut map = headers(&[
        ("connection", "keep-alive, x-hop"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-hop", "1"),
        ("te", "gzip"),
        ("content-type", "text/plain"),
        ("x-end-to-end", "2"),
    ]);
    strip_hop_by_hop(&mut map);
    assert_eq!(names(&map), ["content-type", "x-end-to-end"]);
}

#[test]
fn te_trailers_survives_for_grpc() {
    let mut map = headers(&[("te", "trailers"), ("content-type", "application/grpc")]);
    strip_hop_by_hop(&mut map);
    assert_eq!(map.get("te").map(|v| v.as_bytes()), Some(&b"trailers"[..]));
}

#[test]
fn paths_are_normalized_like_envoy_before_rules_see_them() {
    let check = |raw: &str, expected: &str| {
        assert_eq!(normalize_path(raw).as_deref(), Ok(expected), "{raw:?}");
    };
    check("/", "/");
    check("/admin", "/admin");
    check("/a/b?x=%2e%2e/y", "/a/b?x=%2e%2e/y");
    check("/%61dmin", "/admin");
    check("/x/../admin", "/admin");
    check("/%2e%2E/admin", "/admin");
    check("/./admin/.", "/admin/");
    check("/a/b/..", "/a/");
    check("/..", "/");
    check("/../../admin?q=1", "/admin?q=1");
    check("/a%2fb", "/a%2Fb");
    check("/a//b", "/a//b");
    check("/100%", "/100%");
    check("/%zz", "/%zz");
    check("/%7Euser", "/~user");
    check("*", "*");
    assert_eq!(normalize_path("admin"), Err(PathError::NotAbsolute));
}

#[test]
fn unchanged_paths_are_not_copied() {
    assert!(matches!(
        normalize_path("/api/v1?x=1"),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
}

#[test]
fn forwarded_requests_carry_an_absolute_uri_and_the_next_hops_version() {
    let fallback = Authority::from_static("db");
    let request = Request::get("/path?q=1")
        .header("host", "db.example:8080")
        .header("connection", "close")
        .body(())
        .expect("a request");
    let (mut parts, ()) = request.into_parts();
    prepare_forward(&mut parts, false, &fallback).expect("forwardable");
    assert_eq!(parts.uri, "http://db.example:8080/path?q=1");
    assert_eq!(parts.version, Version::HTTP_11);
    assert_eq!(names(&parts.headers), ["host"]);

    // Over HTTP/2 the authority is the pseudo-header; without any, the fallback names it.
    let (mut parts, ()) = Request::get("/").body(()).expect("a request").into_parts();
    prepare_forward(&mut parts, true, &fallback).expect("forwardable");
    assert_eq!(parts.uri, "http://db/");
    assert_eq!(parts.version, Version::HTTP_2);
    assert!(parts.headers.get("host").is_none());
}

#[test]
fn rules_see_every_header_and_the_authority() {
    let request = Request::post("/x?y=1")
        .header("host", "db")
        .header("x-tag", "a")
        .header("x-tag", "b")
        .header(
            "x-raw",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("a value"),
        )
        .body(())
        .expect("a request");
    let (parts, ()) = request.into_parts();
    let values = header_texts(&parts);
    let view = rule_view(&parts, &values);
    assert_eq!(view.method, "POST");
    assert_eq!(view.path, "/x?y=1");
    assert_eq!(
        view.headers,
        [
            ("host", "db"),
            ("x-tag", "a"),
            ("x-tag", "b"),
            ("x-raw", "café"),
            (":authority", "db")
        ]
    );
}
