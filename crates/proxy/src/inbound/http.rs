//! The inbound listener's L7 side: HTTP served on a verified mTLS stream, every request
//! authorized on its own (method, normalized path, headers, authority), and allowed requests
//! forwarded to the local application over pooled connections (HTTP/1.1 for `http`, HTTP/2
//! prior knowledge for `http2` and `grpc`), bodies streamed both ways.
//!
//! Answers of its own, with Envoy's texts: 403 `RBAC: access denied` for a denied request,
//! 503 `upstream connect error or disconnect/reset before headers` when the application
//! cannot be reached or drops the request, 400 for a request target that cannot be
//! normalized.
//!
//! The application learns who called through `x-forwarded-client-cert`
//! (`By=<this service's identity>;URI=<the source's identity>`); one sent by the peer is
//! replaced, never trusted.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ca::SpiffeId;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, PathAndQuery};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn, Instrument};

use super::{InboundConfig, Shared};
use crate::drain::Watch;
use crate::http::{
    error_chain, header_texts, is_client_side, local_response, normalize_path, prepare_forward,
    prepare_response, rule_view, serve_connection, CountedIo, InFlight, ProxyBody, BAD_REQUEST,
    DENIED, UPSTREAM_RESET,
};
use crate::metrics::InboundMetrics;

/// The header Envoy uses to tell the application about the client certificate.
const XFCC: &str = "x-forwarded-client-cert";

/// The pooled client to the local application, and what it needs to address it.
pub(super) struct AppClient {
    client: Client<AppConnector, ProxyBody>,
    http2: bool,
    /// The authority of a request that names none (HTTP/1.0 without `Host`).
    fallback: Authority,
}

impl AppClient {
    pub(super) fn new(config: &InboundConfig) -> AppClient {
        let connector = AppConnector {
            addr: config.app_addr,
            timeout: config.connect_timeout,
        };
        let http2 = config.protocol.is_http2();
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .pool_idle_timeout(config.idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let fallback = Authority::try_from(config.app_addr.to_string())
            .unwrap_or_else(|_| Authority::from_static("localhost"));
        AppClient {
            client,
            http2,
            fallback,
        }
    }
}

/// Why the local application could not be reached.
#[derive(Debug, thiserror::Error)]
enum AppConnectError {
    #[error("connecting to the local application at {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the local application at {addr} timed out after {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Connects the pool to the local application, whatever the request's URI says.
#[derive(Debug, Clone)]
struct AppConnector {
    addr: SocketAddr,
    timeout: Duration,
}

impl tower::Service<Uri> for AppConnector {
    type Response = TokioIo<TcpStream>;
    type Error = AppConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, limit) = (self.addr, self.timeout);
        Box::pin(async move {
            let tcp = timeout(limit, TcpStream::connect(addr))
                .await
                .map_err(|_| AppConnectError::Timeout {
                    addr,
                    timeout: limit,
                })?
                .map_err(|source| AppConnectError::Connect { addr, source })?;
            let _ = tcp.set_nodelay(true);
            Ok(TokioIo::new(tcp))
        })
    }
}

impl Shared {
    /// Serves HTTP on a verified connection from `source` until either side closes it or a
    /// drain ends it.
    pub(super) async fn serve_http(
        self: Arc<Self>,
        tls: TlsStream<TcpStream>,
        source: SpiffeId,
        drain: &Watch,
    ) {
        let io = CountedIo::new(
            tls,
            self.metrics.clone(),
            |m: &InboundMetrics| &m.bytes_in,
            |m: &InboundMetrics| &m.bytes_out,
        );
        let source = Arc::new(source);
        // HTTP/2 runs each request in a task of its own; they log in the connection's span.
        let span = tracing::Span::current();
        let served = serve_connection(
            io,
            move |request| {
                let (shared, source) = (self.clone(), source.clone());
                async move { shared.proxy_request(&source, request).await }.instrument(span.clone())
            },
            drain,
        )
        .await;
        if let Err(e) = served {
            debug!(error = %error_chain(&*e), "connection ended with an error");
        }
    }

    async fn proxy_request(
        &self,
        source: &SpiffeId,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let in_flight = InFlight::start(&self.metrics, |m: &InboundMetrics| &m.http);
        let client_version = request.version();
        let mut response = self.route(source, request).await;
        prepare_response(&mut response, client_version);
        self.metrics.http.statuses.inc(response.status().as_u16());
        response.map(|body| body.on_end(in_flight))
    }

    async fn route(&self, source: &SpiffeId, request: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = request.into_parts();
        if let Err(e) = normalize(&mut parts) {
            debug!(error = %e, uri = %parts.uri, "unusable request target");
            return local_response(StatusCode::BAD_REQUEST, BAD_REQUEST);
        }
        let values = header_texts(&parts);
        let decision = self
            .authorize
            .authorize(source, Some(&rule_view(&parts, &values)));
        if !decision.allowed {
            self.metrics.denied.inc();
            info!(
                source = %source,
                method = %parts.method,
                path = %parts.uri.path(),
                reason = %decision.reason,
                "request denied"
            );
            return local_response(StatusCode::FORBIDDEN, DENIED);
        }
        self.metrics.authorized.inc();
        debug!(method = %parts.method, path = %parts.uri.path(), reason = %decision.reason, "request authorized");

        let xfcc = format!("By={};URI={source}", self.identity.id());
        match HeaderValue::try_from(xfcc) {
            Ok(value) => {
                parts.headers.insert(XFCC, value);
            }
            Err(_) => {
                parts.headers.remove(XFCC);
            }
        }
        let app = &self.app;
        if let Err(e) = prepare_forward(&mut parts, app.http2, &app.fallback) {
            debug!(error = %e, "request cannot be forwarded");
            return local_response(StatusCode::BAD_REQUEST, BAD_REQUEST);
        }
        let forwarded = Request::from_parts(parts, ProxyBody::streaming(body));
        match app.client.request(forwarded).await {
            Ok(response) => response.map(ProxyBody::streaming),
            Err(e) if e.is_connect() => {
                self.metrics.app_connect_failures.inc();
                warn!(app = %self.config.app_addr, error = %error_chain(&e), "cannot reach the local application");
                local_response(StatusCode::SERVICE_UNAVAILABLE, UPSTREAM_RESET)
            }
            Err(e) if is_client_side(&e) => {
                debug!(error = %error_chain(&e), "the peer's request broke off");
                local_response(StatusCode::SERVICE_UNAVAILABLE, UPSTREAM_RESET)
            }
            Err(e) => {
                warn!(app = %self.config.app_addr, error = %error_chain(&e), "the local application failed the request");
                local_response(StatusCode::SERVICE_UNAVAILABLE, UPSTREAM_RESET)
            }
        }
    }
}

/// Replaces the request's path by its normalized form (see [`normalize_path`]).
fn normalize(parts: &mut Parts) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(path_and_query) = parts.uri.path_and_query() else {
        return Ok(());
    };
    let normalized = match normalize_path(path_and_query.as_str())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(normalized) => PathAndQuery::try_from(normalized)?,
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(normalized);
    parts.uri = Uri::from_parts(uri)?;
    Ok(())
}
