//! The outbound listener's L7 side: the application's connection is served as HTTP (HTTP/1.1
//! or HTTP/2 prior knowledge, whichever it speaks) and every request is balanced on its own.
//!
//! For each request: an instance is picked (power of two choices on requests in flight), the
//! request goes over that instance's pooled mTLS connections (HTTP/1.1 for `http`, HTTP/2 for
//! `http2` and `grpc`) and the response streams back. Within the request timeout it is tried
//! again on another instance when
//!
//! - the connect failed (TCP or TLS, a wrong identity included), whatever the method;
//! - the instance answered 503 and the method is idempotent,
//!
//! provided the body can be sent again: the request had none, or no attempt started sending
//! it (the body waits in a [`BodySlot`] and is never buffered). Every retry must fit the
//! retry budget. Connect failures and gateway errors (502, 503, 504) count as the instance's
//! failures for ejection; any other answer as a success.
//!
//! The application gets the instance's answer (the last 503 if every retry was refused one),
//! or one of the proxy's own, with Envoy's texts: 503 `no healthy upstream` when no instance
//! was available or reachable, 503 `upstream connect error or disconnect/reset before
//! headers` when a connection broke before the response, 504 `upstream request timeout`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tracing::{debug, warn, Instrument};

use super::retry::{is_idempotent, is_retryable_status, RetryBudget};
use super::{AttemptError, Dialer, Endpoint, Endpoints, OutboundConfig, Outstanding, Shared};
use crate::drain::Watch;
use crate::http::{
    error_chain, is_client_side, local_response, prepare_forward, prepare_response,
    serve_connection, BodySlot, CountedIo, InFlight, ProxyBody, BAD_REQUEST, NO_HEALTHY_UPSTREAM,
    UPSTREAM_RESET, UPSTREAM_TIMEOUT,
};
use crate::metrics::OutboundMetrics;

/// The L7 state of an outbound listener.
pub(super) struct Requests {
    /// One pooled client per instance: the pool keys connections by the request's authority,
    /// which names the upstream, not the instance.
    clients: Mutex<HashMap<SocketAddr, InstanceClient>>,
    budget: RetryBudget,
    http2: bool,
    idle_timeout: Duration,
    /// The authority of a request that names none: the upstream's name.
    fallback: Authority,
}

struct InstanceClient {
    endpoint: Endpoint,
    client: Client<InstanceConnector, ProxyBody>,
}

impl Requests {
    pub(super) fn new(upstream: &str, config: &OutboundConfig) -> Requests {
        Requests {
            clients: Mutex::default(),
            budget: RetryBudget::new(config.retry),
            http2: config.protocol.is_http2(),
            idle_timeout: config.idle_timeout,
            fallback: Authority::try_from(upstream)
                .unwrap_or_else(|_| Authority::from_static("localhost")),
        }
    }

    /// The pooled client of `endpoint`, created on first use.
    fn client(
        &self,
        endpoint: &Endpoint,
        dialer: &Arc<Dialer>,
        endpoints: &Endpoints,
    ) -> Client<InstanceConnector, ProxyBody> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = clients.get(&endpoint.addr) {
            if existing.endpoint == *endpoint {
                return existing.client.clone();
            }
        }
        // A new instance is a good moment to forget the pools of the ones no longer listed.
        let listed: HashSet<SocketAddr> = endpoints.lock().endpoints().map(|e| e.addr).collect();
        clients.retain(|addr, _| listed.contains(addr));
        let connector = InstanceConnector {
            endpoint: endpoint.clone(),
            dialer: dialer.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(self.http2)
            .pool_idle_timeout(self.idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector);
        clients.insert(
            endpoint.addr,
            InstanceClient {
                endpoint: endpoint.clone(),
                client: client.clone(),
            },
        );
        client
    }
}

/// Connects the pool of one instance: TCP, then TLS with the instance's identity checked.
#[derive(Debug, Clone)]
struct InstanceConnector {
    endpoint: Endpoint,
    dialer: Arc<Dialer>,
}

impl tower::Service<Uri> for InstanceConnector {
    type Response = TokioIo<MeshStream>;
    type Error = AttemptError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (endpoint, dialer) = (self.endpoint.clone(), self.dialer.clone());
        Box::pin(async move {
            let tls = dialer.connect(&endpoint).await?;
            dialer.metrics.established.inc();
            debug!(instance = %endpoint.addr, "connected to an instance");
            Ok(TokioIo::new(MeshStream(tls)))
        })
    }
}

/// An mTLS connection to an instance, as the pool holds it.
struct MeshStream(TlsStream<TcpStream>);

impl Connection for MeshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MeshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The request's body as the attempts see it.
enum AttemptBody {
    /// None at all: every attempt sends an empty body.
    Empty,
    /// Handed to each attempt until one starts sending it.
    Once(BodySlot),
}

impl AttemptBody {
    fn new(body: Incoming) -> AttemptBody {
        if hyper::body::Body::is_end_stream(&body) {
            AttemptBody::Empty
        } else {
            AttemptBody::Once(BodySlot::new(body))
        }
    }

    /// The body for the next attempt; `None` once it has been (partly) sent.
    fn for_attempt(&self) -> Option<ProxyBody> {
        match self {
            AttemptBody::Empty => Some(ProxyBody::empty()),
            AttemptBody::Once(slot) => slot.hand_over(),
        }
    }
}

/// An instance's response, with the instance's outstanding count held until its body ends.
struct Answer {
    response: Response<Incoming>,
    outstanding: Outstanding,
}

/// Why a request got a response of the proxy's own instead of an instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The request cannot be turned into a forwardable one.
    BadRequest,
    /// No instance to try, or every attempt failed to connect.
    NoHealthyUpstream,
    /// The connection failed after the request was (possibly) sent, before a response.
    Reset,
    /// The request timeout expired first.
    Timeout,
}

impl Refusal {
    fn response(self) -> Response<ProxyBody> {
        match self {
            Refusal::BadRequest => local_response(StatusCode::BAD_REQUEST, BAD_REQUEST),
            Refusal::NoHealthyUpstream => {
                local_response(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY_UPSTREAM)
            }
            Refusal::Reset => local_response(StatusCode::SERVICE_UNAVAILABLE, UPSTREAM_RESET),
            Refusal::Timeout => local_response(StatusCode::GATEWAY_TIMEOUT, UPSTREAM_TIMEOUT),
        }
    }
}

/// Why an attempt got no response.
enum SendFailure<'e> {
    /// The connect failed, so the request never left and may go elsewhere. `None` when the
    /// pool failed to connect without saying how.
    Connect(Option<&'e AttemptError>),
    /// The application's side failed (its request body broke off): not the instance's fault.
    Downstream,
    /// The connection broke after the request was (possibly) sent.
    Upstream,
}

impl<'e> SendFailure<'e> {
    fn of(error: &'e hyper_util::client::legacy::Error) -> SendFailure<'e> {
        if error.is_connect() {
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                if let Some(attempt) = cause.downcast_ref::<AttemptError>() {
                    return SendFailure::Connect(Some(attempt));
                }
                source = cause.source();
            }
            SendFailure::Connect(None)
        } else if is_client_side(error) {
            SendFailure::Downstream
        } else {
            SendFailure::Upstream
        }
    }
}

impl Shared {
    /// Serves HTTP on a connection from the application until it closes it or a drain ends
    /// it.
    pub(super) async fn serve_http(self: Arc<Self>, app: TcpStream, drain: &Watch) {
        let io = CountedIo::new(
            app,
            self.metrics.clone(),
            |m: &OutboundMetrics| &m.bytes_out,
            |m: &OutboundMetrics| &m.bytes_in,
        );
        // HTTP/2 runs each request in a task of its own; they log in the connection's span.
        let span = tracing::Span::current();
        let served = serve_connection(
            io,
            move |request| {
                let shared = self.clone();
                async move { shared.proxy_request(request).await }.instrument(span.clone())
            },
            drain,
        )
        .await;
        if let Err(e) = served {
            debug!(error = %error_chain(&*e), "connection ended with an error");
        }
    }

    async fn proxy_request(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let in_flight = InFlight::start(&self.metrics, |m: &OutboundMetrics| &m.http);
        let client_version = request.version();
        let (mut response, outstanding) = match self.forward(request).await {
            Ok(Answer {
                response,
                outstanding,
            }) => (response.map(ProxyBody::streaming), Some(outstanding)),
            Err(refusal) => {
                if refusal == Refusal::NoHealthyUpstream {
                    self.metrics.failed.inc();
                }
                (refusal.response(), None)
            }
        };
        prepare_response(&mut response, client_version);
        self.metrics.http.statuses.inc(response.status().as_u16());
        response.map(|body| body.on_end((in_flight, outstanding)))
    }

    async fn forward(&self, request: Request<Incoming>) -> Result<Answer, Refusal> {
        let (mut parts, body) = request.into_parts();
        let requests = &self.http;
        if let Err(e) = prepare_forward(&mut parts, requests.http2, &requests.fallback) {
            debug!(error = %e, "request cannot be forwarded");
            return Err(Refusal::BadRequest);
        }
        let body = AttemptBody::new(body);
        let limit = self.config.request_timeout;
        if limit.is_zero() {
            return self.attempts(&parts, &body).await;
        }
        match timeout(limit, self.attempts(&parts, &body)).await {
            Ok(answer) => answer,
            Err(_) => {
                warn!(method = %parts.method, path = %parts.uri.path(), timeout = ?limit, "request timed out");
                Err(Refusal::Timeout)
            }
        }
    }

    /// Sends the request to one instance after another until one answers for good, at most
    /// `1 + max_retries` of them.
    async fn attempts(&self, parts: &Parts, body: &AttemptBody) -> Result<Answer, Refusal> {
        let max_attempts = 1 + self.config.retry.max_retries as usize;
        let mut tried = Vec::new();
        // This request's place in the retry budget, taken at its first retry.
        let mut retry_slot = None;
        // A 503 to hand back if no other instance does better.
        let mut unavailable: Option<Answer> = None;
        let mut refusal = Refusal::NoHealthyUpstream;
        while tried.len() < max_attempts {
            let Some(attempt_body) = body.for_attempt() else {
                debug!("not retrying: the request body was already sent");
                break;
            };
            let Some((endpoint, outstanding)) = Outstanding::pick(&self.endpoints, &tried) else {
                break;
            };
            if !tried.is_empty() {
                if retry_slot.is_none() {
                    retry_slot = self.http.budget.try_acquire(self.metrics.http.active.get());
                }
                if retry_slot.is_none() {
                    self.metrics.retry_budget_exhausted.inc();
                    debug!("not retrying: the retry budget is spent");
                    break;
                }
                self.metrics.retries.inc();
                debug!(instance = %endpoint.addr, attempt = tried.len() + 1, "retrying on another instance");
            }
            tried.push(endpoint.addr);
            let mut request = Request::new(attempt_body);
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.version_mut() = parts.version;
            *request.headers_mut() = parts.headers.clone();
            let client = self.http.client(&endpoint, &self.dialer, &self.endpoints);
            match client.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    self.report_answer(&endpoint, status);
                    let answer = Answer {
                        response,
                        outstanding,
                    };
                    if is_retryable_status(status) && is_idempotent(&parts.method) {
                        unavailable = Some(answer);
                        continue;
                    }
                    return Ok(answer);
                }
                Err(e) => match SendFailure::of(&e) {
                    SendFailure::Connect(Some(failure)) => {
                        self.attempt_failed(&endpoint, failure);
                        refusal = Refusal::NoHealthyUpstream;
                    }
                    SendFailure::Connect(None) => {
                        self.metrics.connect_failures.inc();
                        debug!(instance = %endpoint.addr, error = %error_chain(&e), "connect attempt failed");
                        self.instance_failed(endpoint.addr);
                        refusal = Refusal::NoHealthyUpstream;
                    }
                    SendFailure::Downstream => {
                        debug!(error = %error_chain(&e), "the application's request broke off");
                        refusal = Refusal::Reset;
                        break;
                    }
                    SendFailure::Upstream => {
                        warn!(instance = %endpoint.addr, error = %error_chain(&e), "request failed before a response");
                        self.instance_failed(endpoint.addr);
                        refusal = Refusal::Reset;
                        break;
                    }
                },
            }
        }
        if let Some(answer) = unavailable {
            return Ok(answer);
        }
        if refusal == Refusal::NoHealthyUpstream {
            if tried.is_empty() {
                warn!("no healthy instance to send the request to");
            } else {
                warn!(attempts = tried.len(), "no instance could be reached");
            }
        }
        Err(refusal)
    }

    /// Gateway errors count towards ejecting the instance; any other answer shows it works.
    fn report_answer(&self, endpoint: &Endpoint, status: StatusCode) {
        let gateway_error = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        if gateway_error {
            debug!(instance = %endpoint.addr, %status, "instance answered with a gateway error");
            self.instance_failed(endpoint.addr);
        } else {
            self.endpoints.lock().succeeded(endpoint.addr);
        }
    }
}
