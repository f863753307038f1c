//! What both L7 listeners share: serving HTTP/1.1 or HTTP/2 (detected from the client's first
//! bytes) on an accepted stream, the body type that streams requests and responses through
//! without buffering them, the responses the proxy answers itself (Envoy's texts), and the
//! header rewriting every hop does (hop-by-hop headers removed, an absolute URI for the pooled
//! client).
//!
//! Upgrades (WebSocket) and CONNECT tunnels are not supported: `Upgrade` is a hop-by-hop
//! header and is removed like the others.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::drain::Watch;
use crate::metrics::{Counter, HttpMetrics};

#[cfg(test)]
mod tests;

/// Errors of bodies in flight, as hyper wants them.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Envoy's body for a request an L7 rule denied.
pub(crate) const DENIED: &str = "RBAC: access denied";
/// Envoy's body when no instance can take a request.
pub(crate) const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
/// Envoy's body when a connection failed or was reset before a response came.
pub(crate) const UPSTREAM_RESET: &str = "upstream connect error or disconnect/reset before headers";
/// Envoy's body when the request timeout expired.
pub(crate) const UPSTREAM_TIMEOUT: &str = "upstream request timeout";
/// The body of a 400 for a request target that cannot be forwarded.
pub(crate) const BAD_REQUEST: &str = "invalid request target";

/// A request's body, handed from one attempt to the next until an attempt starts sending it.
/// Each hand-over revokes the earlier attempts' claims, so an attempt that was given up on
/// can never take the body from under the next one.
#[derive(Clone)]
pub(crate) struct BodySlot(Arc<Mutex<Handoff>>);

struct Handoff {
    body: Option<Incoming>,
    /// The attempt allowed to take the body.
    holder: u64,
}

impl BodySlot {
    pub(crate) fn new(body: Incoming) -> BodySlot {
        BodySlot(Arc::new(Mutex::new(Handoff {
            body: Some(body),
            holder: 0,
        })))
    }

    /// The body for a new attempt, unless an attempt already started sending it.
    pub(crate) fn hand_over(&self) -> Option<ProxyBody> {
        let mut handoff = self.lock();
        handoff.body.as_ref()?;
        handoff.holder += 1;
        Some(ProxyBody::new(Kind::Pending {
            slot: self.clone(),
            holder: handoff.holder,
        }))
    }

    fn take(&self, holder: u64) -> Option<Incoming> {
        let mut handoff = self.lock();
        if handoff.holder == holder {
            handoff.body.take()
        } else {
            None
        }
    }

    fn peek<T>(&self, holder: u64, f: impl FnOnce(&Incoming) -> T) -> Option<T> {
        let handoff = self.lock();
        (handoff.holder == holder)
            .then_some(handoff.body.as_ref())
            .flatten()
            .map(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Handoff> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The body of every request and response the proxy forwards or answers: streamed frame by
/// frame (trailers included) from the other side, or a short text of the proxy's own.
pub(crate) struct ProxyBody {
    kind: Kind,
    /// Dropped when the body ends, fails or is dropped: guards whose `Drop` records the end
    /// of the request (duration, gauges, the instance's outstanding count).
    on_end: Option<Box<dyn Send + Sync>>,
}

enum Kind {
    Empty,
    Text(Option<Bytes>),
    Streaming(Incoming),
    /// Not polled yet: the body stays in the slot, so an attempt that never sent it leaves
    /// it for the next one.
    Pending {
        slot: BodySlot,
        holder: u64,
    },
}

impl ProxyBody {
    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::new(Kind::Empty)
    }

    pub(crate) fn text(text: &'static str) -> ProxyBody {
        ProxyBody::new(Kind::Text(Some(Bytes::from_static(text.as_bytes()))))
    }

    pub(crate) fn streaming(body: Incoming) -> ProxyBody {
        ProxyBody::new(Kind::Streaming(body))
    }

    /// Keeps `guard` until the body ends or is dropped.
    pub(crate) fn on_end(mut self, guard: impl Send + Sync + 'static) -> ProxyBody {
        self.on_end = Some(Box::new(guard));
        self
    }

    fn new(kind: Kind) -> ProxyBody {
        ProxyBody { kind, on_end: None }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Kind::Pending { slot, holder } = &this.kind {
            match slot.take(*holder) {
                Some(body) => this.kind = Kind::Streaming(body),
                None => {
                    this.on_end = None;
                    return Poll::Ready(Some(Err("the request body was already sent".into())));
                }
            }
        }
        let polled = match &mut this.kind {
            Kind::Empty | Kind::Pending { .. } => Poll::Ready(None),
            Kind::Text(text) => Poll::Ready(text.take().map(|text| Ok(Frame::data(text)))),
            Kind::Streaming(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BoxError::from))),
        };
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.on_end = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Text(text) => text.as_ref().is_none_or(Bytes::is_empty),
            Kind::Streaming(body) => body.is_end_stream(),
            Kind::Pending { slot, holder } => {
                slot.peek(*holder, Incoming::is_end_stream).unwrap_or(false)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Text(text) => SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64)),
            Kind::Streaming(body) => body.size_hint(),
            Kind::Pending { slot, holder } => {
                slot.peek(*holder, Incoming::size_hint).unwrap_or_default()
            }
        }
    }
}

/// A request from receipt to the end of its response body, counted in a listener's
/// [`HttpMetrics`]; recorded when dropped.
pub(crate) struct InFlight<M: 'static> {
    metrics: Arc<M>,
    http: fn(&M) -> &HttpMetrics,
    started: Instant,
}

impl<M> InFlight<M> {
    pub(crate) fn start(metrics: &Arc<M>, http: fn(&M) -> &HttpMetrics) -> InFlight<M> {
        let counts = http(metrics);
        counts.requests.inc();
        counts.active.inc();
        InFlight {
            metrics: metrics.clone(),
            http,
            started: Instant::now(),
        }
    }
}

impl<M> Drop for InFlight<M> {
    fn drop(&mut self) {
        let counts = (self.http)(&self.metrics);
        counts.active.dec();
        counts.duration.record(self.started.elapsed());
    }
}

/// An error and its sources, `: `-separated: hyper's errors say little without their sources.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a pooled client's error came from the request's own side (its body broke off,
/// the client went away) rather than from the server it was sent to.
pub(crate) fn is_client_side(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_user() {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// A response of the proxy's own: `status` with `text` as a `text/plain` body.
pub(crate) fn local_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::text(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// Removes the headers that describe one connection rather than the message (RFC 9110
/// §7.6.1), the ones the `Connection` header names included. `TE: trailers` stays: gRPC
/// requires it end to end.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    let te_is_trailers = headers
        .get_all(header::TE)
        .iter()
        .all(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_is_trailers {
        headers.remove(header::TE);
    }
}

/// The request's host: the URI's authority (HTTP/2, absolute-form HTTP/1), else the `Host`
/// header.
pub(crate) fn authority(parts: &Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(authority) => Some(authority.as_str()),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok()),
    }
}

/// Rewrites a received request for the next hop: hop-by-hop headers removed, an absolute
/// `http` URI (the pooled client requires one; it keys nothing on it here, and writes the
/// origin form on HTTP/1), the version of the next hop's connection. On HTTP/2 the authority
/// travels as `:authority`, so `Host` is dropped; HTTP/1 gets `Host` from the URI if it had
/// none. `fallback` is the authority of a request that names none.
pub(crate) fn prepare_forward(
    parts: &mut Parts,
    http2: bool,
    fallback: &Authority,
) -> Result<(), hyper::http::Error> {
    strip_hop_by_hop(&mut parts.headers);
    let authority = authority(parts)
        .and_then(|host| Authority::try_from(host).ok())
        .unwrap_or_else(|| fallback.clone());
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path)
        .build()?;
    if http2 {
        parts.version = Version::HTTP_2;
        parts.headers.remove(header::HOST);
    } else {
        parts.version = Version::HTTP_11;
    }
    Ok(())
}

/// Rewrites a response received from the next hop for the client: hop-by-hop headers
/// removed, the version of the client's connection.
pub(crate) fn prepare_response<B>(response: &mut Response<B>, client_version: Version) {
    strip_hop_by_hop(response.headers_mut());
    *response.version_mut() = if client_version == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
}

/// Why a request target cannot be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("the request path does not start with '/'")]
    NotAbsolute,
}

/// Envoy's `normalize_path` (RFC 3986 §6.2.2): percent-encoded unreserved characters decoded,
/// other percent-encodings in upper case, `.` and `..` segments removed. Done before the L7
/// rules see a path, so `/%61dmin` or `/x/../admin` cannot slip past a rule on `/admin`; the
/// application gets the normalized path too. Slashes are not merged (Consul's default), and
/// the query is left as it is.
pub(crate) fn normalize_path(path_and_query: &str) -> Result<Cow<'_, str>, PathError> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    if path == "*" {
        return Ok(Cow::Borrowed(path_and_query));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = normalize_percent_encoding(path);
    let needs_dot_removal = decoded
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if !needs_dot_removal && matches!(decoded, Cow::Borrowed(_)) {
        return Ok(Cow::Borrowed(path_and_query));
    }
    let mut normalized = if needs_dot_removal {
        remove_dot_segments(&decoded)
    } else {
        decoded.into_owned()
    };
    if let Some(query) = query {
        normalized.push('?');
        normalized.push_str(query);
    }
    Ok(Cow::Owned(normalized))
}

/// Decodes `%XX` of unreserved characters and upper-cases the hex digits of the others;
/// malformed escapes stay as they are.
fn normalize_percent_encoding(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((high, low)) => {
                let decoded = high << 4 | low;
                if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
                    out.push(decoded);
                } else {
                    out.push(b'%');
                    out.push(bytes[i + 1].to_ascii_uppercase());
                    out.push(bytes[i + 2].to_ascii_uppercase());
                }
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    if out == bytes {
        return Cow::Borrowed(path);
    }
    // Only ASCII was replaced by ASCII, so the bytes are still UTF-8.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// RFC 3986 §5.2.4 for a path starting with `/`.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
        // `/a/.` and `/a/b/..` name a directory: keep the trailing slash.
        if i == last && (*segment == "." || *segment == "..") {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

/// A request as the L7 rules see it, borrowing from `parts` and `values` (header values
/// that are not visible ASCII, decoded lossily so that a rule on the header still sees it).
pub(crate) fn rule_view<'a>(
    parts: &'a Parts,
    values: &'a [Cow<'a, str>],
) -> intentions::HttpRequest<'a> {
    let mut headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .zip(values)
        .map(|((name, _), value)| (name.as_str(), value.as_ref()))
        .collect();
    if let Some(host) = authority(parts) {
        headers.push((":authority", host));
    }
    intentions::HttpRequest {
        method: parts.method.as_str(),
        path: parts.uri.path_and_query().map_or("/", PathAndQuery::as_str),
        headers,
    }
}

/// The header values of `parts` as text, in header order, for [`rule_view`].
pub(crate) fn header_texts(parts: &Parts) -> Vec<Cow<'_, str>> {
    parts
        .headers
        .values()
        .map(|value| String::from_utf8_lossy(value.as_bytes()))
        .collect()
}

/// Serves HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface, on `io` until
/// the client leaves or `drain` signals; then in-flight requests finish (HTTP/1 closes after
/// the current response, HTTP/2 sends GOAWAY) and the connection closes.
pub(crate) async fn serve_connection<I, S, F>(
    io: I,
    service: S,
    drain: &Watch,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let response = service(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer enables HTTP/1's header read timeout (a slow-loris guard).
    builder.http1().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        () = drain.signaled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// A stream whose bytes read and written are added to two counters of a listener's metrics.
pub(crate) struct CountedIo<T, M: 'static> {
    inner: T,
    metrics: Arc<M>,
    read: fn(&M) -> &Counter,
    written: fn(&M) -> &Counter,
}

impl<T, M> CountedIo<T, M> {
    pub(crate) fn new(
        inner: T,
        metrics: Arc<M>,
        read: fn(&M) -> &Counter,
        written: fn(&M) -> &Counter,
    ) -> Self {
        CountedIo {
            inner,
            metrics,
            read,
            written,
        }
    }
}

impl<T: AsyncRead + Unpin, M> AsyncRead for CountedIo<T, M> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        (this.read)(&this.metrics).add((buf.filled().len() - before) as u64);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin, M> AsyncWrite for CountedIo<T, M> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        (this.written)(&this.metrics).add(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        (this.written)(&this.metrics).add(n as u64);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
