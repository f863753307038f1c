//! gRPC checks: one `grpc.health.v1.Health/Check` call over HTTP/2 (cleartext h2c, or TLS
//! with ALPN `h2`). The target is `host:port[/service]`; `SERVING` is passing, any other
//! serving status or RPC error is critical. The tiny protobuf messages and the gRPC framing
//! are encoded by hand; errors read like grpc-go's (`rpc error: code = ... desc = ...`).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::io::{error_chain, AbortOnDrop};
use super::tcp;
use super::tls::{self, Stream, TlsOptions};
use super::{GrpcProbe, Outcome};

/// The health service's method path.
const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

/// Runs a gRPC health check.
pub(crate) async fn check(p: &GrpcProbe, timeout: Duration) -> Outcome {
    let (server, service) = p.target.split_once('/').unwrap_or((p.target.as_str(), ""));
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, call(p, server, service, deadline)).await {
        Ok(Ok(SERVING)) => Outcome::passing(format!("gRPC check {}: success", p.target)),
        Ok(Ok(status)) => Outcome::critical(format!(
            "gRPC {} serving status: {}",
            p.target,
            serving_status_name(status)
        )),
        Ok(Err(e)) => Outcome::critical(e.to_string()),
        Err(_) => Outcome::critical(
            RpcError::new(Code::DEADLINE_EXCEEDED, "context deadline exceeded").to_string(),
        ),
    }
}

/// A gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Code(u32);

impl Code {
    const INTERNAL: Code = Code(13);
    const UNAVAILABLE: Code = Code(14);
    const DEADLINE_EXCEEDED: Code = Code(4);
    const UNKNOWN: Code = Code(2);

    /// grpc-go's spelling.
    fn name(self) -> String {
        const NAMES: [&str; 17] = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        match NAMES.get(self.0 as usize) {
            Some(name) => (*name).to_owned(),
            None => format!("Code({})", self.0),
        }
    }

    /// grpc-go's mapping of a non-200 HTTP status.
    fn from_http(status: StatusCode) -> Code {
        match status.as_u16() {
            400 => Code::INTERNAL,
            401 => Code(16),
            403 => Code(7),
            404 => Code(12),
            429 | 502..=504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        }
    }
}

/// A failed RPC.
#[derive(Debug, thiserror::Error)]
#[error("rpc error: code = {} desc = {}", .code.name(), .desc)]
struct RpcError {
    code: Code,
    desc: String,
}

impl RpcError {
    fn new(code: Code, desc: impl Into<String>) -> RpcError {
        RpcError {
            code,
            desc: desc.into(),
        }
    }

    fn connection(desc: impl std::fmt::Display) -> RpcError {
        RpcError::new(
            Code::UNAVAILABLE,
            format!("connection error: desc = \"transport: {desc}\""),
        )
    }

    fn unmarshal(reason: &str) -> RpcError {
        RpcError::new(
            Code::INTERNAL,
            format!("grpc: failed to unmarshal the received message: {reason}"),
        )
    }
}

/// Makes the call; returns the serving status.
async fn call(
    p: &GrpcProbe,
    server: &str,
    service: &str,
    deadline: Instant,
) -> Result<u64, RpcError> {
    let tcp = tcp::dial(server)
        .await
        .map_err(|e| RpcError::connection(format!("Error while dialing: {e}")))?;
    let stream = if p.use_tls {
        let options = TlsOptions {
            server_name: &p.tls_server_name,
            skip_verify: p.tls_skip_verify,
            alpn: &[b"h2"],
        };
        tls::connect(tcp, tcp::host_of(server), options)
            .await
            .map_err(|e| RpcError::connection(format!("authentication handshake failed: {e}")))?
    } else {
        Stream::Plain(tcp)
    };
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| RpcError::connection(error_chain(&e)))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));

    let scheme = if p.use_tls { "https" } else { "http" };
    let uri = format!("{scheme}://{server}{CHECK_PATH}");
    let remaining = deadline.saturating_duration_since(Instant::now());
    let request = Request::post(uri)
        .header(CONTENT_TYPE, "application/grpc")
        .header(TE, "trailers")
        .header("grpc-timeout", format!("{}m", remaining.as_millis().max(1)))
        .body(Full::new(frame(&encode_request(service))))
        .map_err(|e| RpcError::new(Code::INTERNAL, e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| RpcError::new(Code::UNAVAILABLE, error_chain(&e)))?;

    let (parts, mut body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(RpcError::new(
            Code::from_http(parts.status),
            format!(
                "unexpected HTTP status code received from server: {} ({})",
                parts.status.as_u16(),
                parts.status.canonical_reason().unwrap_or("")
            ),
        ));
    }
    // A "Trailers-Only" response carries the status in the headers.
    if parts.headers.contains_key("grpc-status") {
        rpc_status(&parts.headers)?;
        return Err(no_message());
    }
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RpcError::new(Code::UNAVAILABLE, error_chain(&e)))?;
        match frame.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    let trailers = trailers.ok_or_else(|| {
        RpcError::new(
            Code::INTERNAL,
            "server closed the stream without sending trailers",
        )
    })?;
    rpc_status(&trailers)?;
    decode_response(&data)
}

/// Fails unless `grpc-status` is 0.
fn rpc_status(headers: &HeaderMap) -> Result<(), RpcError> {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    match code {
        Some(0) => Ok(()),
        Some(code) => {
            let message = headers
                .get("grpc-message")
                .map(HeaderValue::as_bytes)
                .map(percent_decode)
                .unwrap_or_default();
            Err(RpcError::new(Code(code), message))
        }
        None => Err(RpcError::new(
            Code::INTERNAL,
            "malformed grpc-status in trailers",
        )),
    }
}

fn no_message() -> RpcError {
    RpcError::new(
        Code::INTERNAL,
        "cardinality violation: received no response message from non-streaming RPC",
    )
}

/// `HealthCheckRequest { service = 1 }` (an empty message when `service` is empty).
fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a); // field 1, length-delimited
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// A gRPC length-prefixed message: uncompressed flag, big-endian length, payload.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.extend_from_slice(message);
    out.freeze()
}

/// Reads the `HealthCheckResponse { status = 1 }` from the response body.
fn decode_response(data: &[u8]) -> Result<u64, RpcError> {
    let Some((header, rest)) = data.split_first_chunk::<5>() else {
        return Err(no_message());
    };
    if header[0] != 0 {
        return Err(RpcError::new(
            Code::INTERNAL,
            "grpc: compressed flag set with identity or empty encoding",
        ));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = rest
        .get(..len)
        .ok_or_else(|| RpcError::unmarshal("unexpected EOF"))?;
    decode_status(message)
        .ok_or_else(|| RpcError::unmarshal("proto: cannot parse invalid wire-format data"))
}

/// The value of field 1 (varint) of a protobuf message; 0 when absent. `None` when the
/// message is malformed.
fn decode_status(mut message: &[u8]) -> Option<u64> {
    let mut status = 0;
    while !message.is_empty() {
        let tag = take_varint(&mut message)?;
        match tag & 7 {
            0 => {
                let value = take_varint(&mut message)?;
                if tag >> 3 == 1 {
                    status = value;
                }
            }
            1 => message = message.get(8..)?,
            2 => {
                let len = usize::try_from(take_varint(&mut message)?).ok()?;
                message = message.get(len..)?;
            }
            5 => message = message.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names (the number when unknown, as Go
/// prints it).
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_owned(),
        1 => "SERVING".to_owned(),
        2 => "NOT_SERVING".to_owned(),
        3 => "SERVICE_UNKNOWN".to_owned(),
        n => n.to_string(),
    }
}

/// Decodes `grpc-message`'s percent-encoding (invalid escapes are kept as they are).
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = (raw[i] == b'%')
            .then(|| raw.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
