//! Response bodies and the `X-Consul-*` metadata headers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::params::Consistency;

/// What a read reports about itself in headers.
#[derive(Debug, Clone, Copy)]
pub struct QueryMeta {
    pub index: u64,
    pub known_leader: bool,
    pub last_contact_ms: u64,
    pub consistency: Consistency,
}

impl QueryMeta {
    pub fn apply(&self, resp: &mut Response) {
        let headers = resp.headers_mut();
        // Consul never reports index 0: `index=0` would not block and clients would spin.
        headers.insert("X-Consul-Index", HeaderValue::from(self.index.max(1)));
        headers.insert(
            "X-Consul-KnownLeader",
            HeaderValue::from_static(if self.known_leader { "true" } else { "false" }),
        );
        headers.insert(
            "X-Consul-LastContact",
            HeaderValue::from(self.last_contact_ms),
        );
        headers.insert(
            "X-Consul-Effective-Consistency",
            HeaderValue::from_static(self.consistency.header_value()),
        );
    }
}

/// A JSON body: compact, or Consul's `?pretty` form (4-space indent and a trailing newline).
pub fn json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Response {
    match to_json(value, pretty) {
        Ok(bytes) => json_bytes(bytes),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// The bytes of [`json`]'s body.
pub fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> serde_json::Result<Bytes> {
    if !pretty {
        return serde_json::to_vec(value).map(Bytes::from);
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(Bytes::from(out))
}

/// A response with an already rendered JSON body.
pub fn json_bytes(body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// A JSON body with read metadata.
pub fn json_with_meta<T: Serialize + ?Sized>(
    value: &T,
    pretty: bool,
    meta: &QueryMeta,
) -> Response {
    let mut resp = json(value, pretty);
    meta.apply(&mut resp);
    resp
}

/// An empty body with a status and read metadata (a KV miss is a 404 that still carries
/// `X-Consul-Index`, so clients can block on a key that does not exist yet).
pub fn empty_with_meta(status: StatusCode, meta: &QueryMeta) -> Response {
    let mut resp = status.into_response();
    meta.apply(&mut resp);
    resp
}
