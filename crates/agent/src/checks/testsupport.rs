//! Local servers for the probe tests, all on 127.0.0.1 ephemeral ports: an HTTP/1.1 server
//! with fixed routes (plain and TLS), a server that never answers, and an h2c/TLS gRPC health
//! server.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, LOCATION};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};
use tokio_rustls::TlsAcceptor;

type Body = BoxBody<Bytes, Infallible>;

/// Awaits `f`, failing the test if it takes more than 30 seconds.
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step timed out")
}

/// An address nothing listens on (a port that was just released).
pub(crate) async fn closed_tcp_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Whether process `pid` exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// A server that accepts connections and never answers.
pub(crate) async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Which protocol a test server speaks.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Http1,
    H2c,
}

/// An HTTP/1.1 server with the [`routes`].
pub(crate) async fn http_server() -> SocketAddr {
    serve(Mode::Http1, None).await
}

/// An HTTP/1.1 server with the [`routes`] on another loopback address (e.g. `127.0.0.2`).
pub(crate) async fn http_server_on(ip: &str) -> SocketAddr {
    serve_on(ip, Mode::Http1, None).await
}

/// A TLS server (self-signed certificate for `localhost`) with the [`routes`], speaking
/// HTTP/2 or HTTP/1.1 as ALPN decides.
pub(crate) async fn https_server() -> SocketAddr {
    serve(Mode::Http1, Some(acceptor(&[b"h2", b"http/1.1"]))).await
}

/// A TLS server that only speaks HTTP/1.1.
pub(crate) async fn https_http1_server() -> SocketAddr {
    serve(Mode::Http1, Some(acceptor(&[b"http/1.1"]))).await
}

/// A cleartext HTTP/2 (prior knowledge) server with the [`routes`] and the gRPC health
/// service.
pub(crate) async fn h2c_server() -> SocketAddr {
    serve(Mode::H2c, None).await
}

/// A TLS HTTP/2 server with the gRPC health service.
pub(crate) async fn grpc_tls_server() -> SocketAddr {
    serve(Mode::H2c, Some(acceptor(&[b"h2"]))).await
}

async fn serve(mode: Mode, tls: Option<TlsAcceptor>) -> SocketAddr {
    serve_on("127.0.0.1", mode, tls).await
}

async fn serve_on(ip: &str, mode: Mode, tls: Option<TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(mode, tcp).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        let mode = if h2 { Mode::H2c } else { mode };
                        serve_connection(mode, stream).await;
                    }
                }
            });
        }
    });
    addr
}

async fn serve_connection<S>(mode: Mode, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let service = service_fn(routes);
    let _ = match mode {
        Mode::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
        Mode::H2c => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
}

fn acceptor(alpn: &[&[u8]]) -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

fn redirect(status: StatusCode, to: &str) -> Response<Body> {
    let mut response = full(status, "");
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_str(to).unwrap());
    response
}

/// The test routes:
/// * `/ok` 200 `healthy`, `/busy` 429 `slow down`, `/fail` 500 `broken`
/// * `/reason` 200 with reason phrase `Fine Indeed`
/// * `/big` 200 with 5000 `a`s then `TAIL`
/// * `/redirect` 302 to `/ok`, `/see-other` 303 to `/echo`, `/temporary` 307 to `/echo`,
///   `/loop` 302 to itself, `/redirect-fail` 302 to `/fail`, `/redirect-to?<url>` 302 to
///   `<url>`
/// * `/echo` 200 describing the request: method, version, selected headers and the body
/// * `/grpc.health.v1.Health/Check` the gRPC health service (see [`grpc_health`])
async fn routes(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        "/ok" => full(StatusCode::OK, "healthy"),
        "/busy" => full(StatusCode::TOO_MANY_REQUESTS, "slow down"),
        "/fail" => full(StatusCode::INTERNAL_SERVER_ERROR, "broken"),
        "/reason" => {
            let mut response = full(StatusCode::OK, "");
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b"Fine Indeed"));
            response
        }
        "/big" => full(StatusCode::OK, format!("{}TAIL", "a".repeat(5000))),
        "/redirect" => redirect(StatusCode::FOUND, "/ok"),
        "/redirect-fail" => redirect(StatusCode::FOUND, "/fail"),
        "/see-other" => redirect(StatusCode::SEE_OTHER, "/echo"),
        "/temporary" => redirect(StatusCode::TEMPORARY_REDIRECT, "/echo"),
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        "/redirect-to" => {
            let target = req.uri().query().unwrap_or("/ok").to_owned();
            redirect(StatusCode::FOUND, &target)
        }
        "/echo" => echo(req).await,
        "/grpc.health.v1.Health/Check" => grpc_health(req).await,
        _ => full(StatusCode::NOT_FOUND, "not found"),
    })
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let header = |name: &str| -> String {
        parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let host = match parts.uri.authority() {
        Some(authority) => authority.to_string(),
        None => header("host"),
    };
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = format!(
        "method={} version={:?} host={} ua={} accept={} x-test={} auth={} length={} body={}",
        parts.method,
        parts.version,
        host,
        header("user-agent"),
        header("accept"),
        header("x-test"),
        header("authorization"),
        header("content-length"),
        String::from_utf8_lossy(&body)
    );
    full(StatusCode::OK, text)
}

/// The gRPC health service: service `""`/`up` is SERVING, `down` NOT_SERVING, `odd` status 7,
/// `missing` a Trailers-Only NOT_FOUND error, `silent` an OK status without a message,
/// `fail-http` an HTTP 503.
async fn grpc_health(req: Request<Incoming>) -> Response<Body> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let service = parse_request(body).unwrap_or_default();
    let status = match service.as_str() {
        "" | "up" => 1,
        "down" => 2,
        "odd" => 7,
        "missing" => {
            let mut response = Response::new(Full::new(Bytes::new()).boxed());
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from_static("5"));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("unknown%20service"),
            );
            return response;
        }
        "silent" => return grpc_response(None),
        "fail-http" => return full(StatusCode::SERVICE_UNAVAILABLE, ""),
        _ => 3,
    };
    // HealthCheckResponse { status = 1 (varint) }
    grpc_response(Some(vec![0x08, status]))
}

fn grpc_response(message: Option<Vec<u8>>) -> Response<Body> {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
    if let Some(message) = message {
        let mut data = BytesMut::new();
        data.put_u8(0);
        data.put_u32(message.len() as u32);
        data.extend_from_slice(&message);
        frames.push(Ok(Frame::data(data.freeze())));
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(stream::iter(frames)).boxed());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

/// The service name from a framed `HealthCheckRequest` (only field 1 is expected).
fn parse_request(mut body: Bytes) -> Option<String> {
    if body.len() < 5 {
        return None;
    }
    body.advance(5);
    if body.is_empty() {
        return Some(String::new());
    }
    if body.get_u8() != 0x0a {
        return None;
    }
    let len = usize::from(body.get_u8());
    body.get(..len)
        .map(|s| String::from_utf8_lossy(s).into_owned())
}
