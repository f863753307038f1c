//! Fixtures: a CA from the `ca` crate, leaves signed from CSRs as an agent gets them, a TCP echo
//! application, an HTTP application and client, sidecar listeners on loopback, and bounded
//! waiting.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use bytes::Bytes;
use ca::{CaConfig, CaState};
use http_body_util::channel::{Channel, Sender as ChannelSender};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use intentions::{DefaultPolicy, IntentionWrite, Intentions};
use proxy::{
    drain, Authorization, Drained, Endpoint, Endpoints, HttpRequest, Identity, Inbound,
    InboundConfig, InboundMetrics, LeafCert, Outbound, OutboundConfig, OutboundMetrics, SpiffeId,
    Trigger, TrustedRoots,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

pub const DC: &str = "dc1";
pub const CLUSTER: &str = "11111111-2222-3333-4444-555555555555";
pub const FOREIGN_CLUSTER: &str = "99999999-8888-7777-6666-555555555555";

/// Every network step of a test is bounded by this, so a broken proxy fails the test instead
/// of hanging it.
pub const STEP: Duration = Duration::from_secs(20);

pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(STEP, f)
        .await
        .with_context(|| format!("timed out after {STEP:?}: {what}"))
}

/// Polls `condition` until it holds, for at most [`STEP`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {STEP:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// [`wait_until`] for a condition that has to do IO to find out.
pub async fn wait_until_async<F, Fut>(what: &str, mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    while !bounded(what, condition()).await? {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {STEP:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The mesh CA, as the servers hold it.
pub struct TestCa {
    pub state: CaState,
}

impl TestCa {
    pub fn new(cluster: &str) -> TestCa {
        let state = CaState::bootstrap(cluster, CaConfig::default(), SystemTime::now())
            .expect("bootstrap the CA");
        TestCa { state }
    }

    /// A leaf for `service` the way an agent obtains one: key and CSR generated locally, signed
    /// by the active root's intermediate.
    pub fn leaf(&mut self, service: &str) -> LeafCert {
        let (key_pem, csr) = ca::generate_key_and_csr(&self.state.trust_domain, DC, service, &[])
            .expect("key and CSR");
        let leaf = self
            .state
            .sign_leaf(&csr, service, DC, SystemTime::now())
            .expect("sign the leaf");
        LeafCert::from_pem(&leaf.cert_pem, &key_pem).expect("a usable leaf")
    }

    /// Every root the CA currently trusts.
    pub fn roots(&self) -> TrustedRoots {
        TrustedRoots::from_pem(&self.state.trust_domain, &self.state.trusted_roots())
            .expect("usable roots")
    }

    /// Only the active root (what remains once rotated-out roots are pruned).
    pub fn active_root_only(&self) -> TrustedRoots {
        let active = self.state.active_root().expect("an active root");
        TrustedRoots::from_pem(&self.state.trust_domain, &[&active.root_cert_pem])
            .expect("usable roots")
    }

    pub fn identity(&mut self, service: &str) -> Identity {
        let leaf = self.leaf(service);
        Identity::new(leaf, self.roots())
    }

    pub fn rotate(&mut self) {
        self.state
            .rotate(SystemTime::now())
            .expect("rotate the root");
    }
}

/// A TCP echo server: writes back everything it reads, and closes its side after the client
/// closed its own.
pub struct EchoApp {
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EchoApp {
    pub async fn start() -> EchoApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo address");
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                        let _ = writer.shutdown().await;
                    }
                });
            }
        });
        EchoApp {
            addr,
            accepted,
            task,
        }
    }

    /// Connections the application has accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Allows every source and request.
pub fn allow_all(_: &SpiffeId, _: Option<&HttpRequest<'_>>) -> Authorization {
    Authorization::allow("test")
}

/// An intentions cache, as the sidecar would keep it, behind the inbound's authorizer.
#[derive(Clone)]
pub struct IntentionsCache {
    intentions: Arc<RwLock<Intentions>>,
    index: Arc<AtomicU64>,
}

impl IntentionsCache {
    /// Default deny (ACLs on, `acl.default_policy = deny`): only intentions allow.
    pub fn new() -> IntentionsCache {
        IntentionsCache {
            intentions: Arc::default(),
            index: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn set(&self, source: &str, destination: &str, action: &str) {
        let index = self.index.fetch_add(1, Ordering::Relaxed);
        let write = IntentionWrite {
            action: action.to_owned(),
            ..IntentionWrite::default()
        };
        self.intentions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .upsert(source, destination, write, index)
            .expect("a valid intention");
    }

    /// The authorizer of `destination`'s inbound listener.
    pub fn authorizer(
        &self,
        destination: &str,
    ) -> impl Fn(&SpiffeId, Option<&HttpRequest<'_>>) -> Authorization + Send + Sync + 'static {
        let intentions = self.intentions.clone();
        let destination = destination.to_owned();
        move |source: &SpiffeId, request: Option<&HttpRequest<'_>>| {
            intentions
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .authorize(
                    &source.service,
                    &destination,
                    request,
                    DefaultPolicy::Acl { allow: false },
                )
                .into()
        }
    }
}

/// A running listener: its address, counters, and the means to drain it.
pub struct Running<M> {
    pub addr: SocketAddr,
    pub metrics: Arc<M>,
    trigger: Option<Trigger>,
    task: Option<JoinHandle<Drained>>,
}

impl<M> Running<M> {
    pub fn drain(&mut self) {
        if let Some(trigger) = self.trigger.take() {
            trigger.drain();
        }
    }

    /// Drains (if not yet) and waits for the listener to finish.
    pub async fn drained(&mut self) -> anyhow::Result<Drained> {
        self.drain();
        let task = self.task.take().context("already drained")?;
        Ok(bounded("the listener to drain", task).await??)
    }
}

impl<M> Drop for Running<M> {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

pub async fn start_inbound(
    config: InboundConfig,
    identity: &Identity,
    authorize: impl proxy::Authorize,
) -> Running<InboundMetrics> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind inbound");
    let addr = listener.local_addr().expect("inbound address");
    let inbound = Inbound::new(config, identity, authorize);
    let metrics = inbound.metrics();
    let (trigger, watch) = drain::channel();
    let task = tokio::spawn(inbound.serve(listener, watch));
    Running {
        addr,
        metrics,
        trigger: Some(trigger),
        task: Some(task),
    }
}

pub async fn start_outbound(
    upstream: &str,
    config: OutboundConfig,
    identity: Identity,
    endpoints: Vec<Endpoint>,
) -> (Running<OutboundMetrics>, Endpoints) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind outbound");
    let addr = listener.local_addr().expect("outbound address");
    let outbound = Outbound::new(upstream, config, identity);
    let list = outbound.endpoints();
    list.replace(endpoints);
    let metrics = outbound.metrics();
    let (trigger, watch) = drain::channel();
    let task = tokio::spawn(outbound.serve(listener, watch));
    let running = Running {
        addr,
        metrics,
        trigger: Some(trigger),
        task: Some(task),
    };
    (running, list)
}

/// An instance of `service` at `addr` (its inbound listener).
pub fn endpoint(addr: SocketAddr, service: &str) -> Endpoint {
    Endpoint::new(addr, service, DC)
}

/// An application's connection through the proxies.
pub struct Conn(pub TcpStream);

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = bounded("connect", TcpStream::connect(addr)).await??;
        Ok(Conn(stream))
    }

    /// Sends `message` and reads back as many bytes.
    pub async fn echo(&mut self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut back = vec![0; message.len()];
        bounded("echo", async {
            self.0.write_all(message).await?;
            self.0.read_exact(&mut back).await?;
            anyhow::Ok(())
        })
        .await??;
        Ok(back)
    }

    /// Half-closes, then reads until the other side closes; returns what was read.
    pub async fn finish(mut self) -> anyhow::Result<Vec<u8>> {
        let mut rest = Vec::new();
        bounded("close", async {
            self.0.shutdown().await?;
            self.0.read_to_end(&mut rest).await?;
            anyhow::Ok(())
        })
        .await??;
        Ok(rest)
    }

    /// Reads until the connection ends, however it ends (EOF or reset).
    pub async fn read_until_closed(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut got = Vec::new();
        bounded("the connection to close", async {
            let mut buf = [0u8; 1024];
            loop {
                match self.0.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await?;
        Ok(got)
    }
}

/// Sends `payload`, half-closes, and returns everything that came back before the close.
pub async fn round_trip(addr: SocketAddr, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut conn = Conn::open(addr).await?;
    bounded("send", conn.0.write_all(payload)).await??;
    conn.finish().await
}

/// A payload that is not all one byte, so reordering or truncation shows.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// How an [`HttpApp`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppMode {
    /// See [`HttpApp`].
    Serve,
    /// 503 to everything, as an overloaded instance would.
    Unavailable,
}

/// The response body type of [`HttpApp`].
type AppBody = BoxBody<Bytes, hyper::Error>;

/// An HTTP application speaking HTTP/1.1 and HTTP/2 (prior knowledge). It answers
///
/// - `/slow`: never;
/// - `/hold`: 200 with a first chunk `held`, and the rest of the body only once
///   [`HttpApp::release`] is called;
/// - `/trailers`: 200 `ok` with the trailer `grpc-status: 0`;
/// - `POST` and `PUT` elsewhere: 200 echoing the request body, streamed;
/// - anything else: 200 `<name> <version> <method> <path?query>`;
///
/// and copies request headers it was sent into `x-app-<name>` for `te` and
/// `x-forwarded-client-cert`.
pub struct HttpApp {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    holds: Arc<Mutex<Vec<ChannelSender<Bytes>>>>,
    task: JoinHandle<()>,
}

impl HttpApp {
    pub async fn start(name: &'static str, mode: AppMode) -> HttpApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("app address");
        let hits = Arc::new(AtomicU64::new(0));
        let holds = Arc::new(Mutex::new(Vec::new()));
        let (counter, held) = (hits.clone(), holds.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, held) = (counter.clone(), held.clone());
                let service = service_fn(move |request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    app_answer(name, mode, held.clone(), request)
                });
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpApp {
            addr,
            hits,
            holds,
            task,
        }
    }

    /// Requests the application has received.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Ends the bodies of every `/hold` response.
    pub fn release(&self) {
        self.holds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for HttpApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn app_answer(
    name: &'static str,
    mode: AppMode,
    holds: Arc<Mutex<Vec<ChannelSender<Bytes>>>>,
    request: Request<Incoming>,
) -> Result<Response<AppBody>, Infallible> {
    let text = |status: StatusCode, text: String| {
        let body = Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed();
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response
    };
    if mode == AppMode::Unavailable {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} unavailable"),
        ));
    }
    let copied: Vec<(String, HeaderValue)> = ["te", "x-forwarded-client-cert"]
        .iter()
        .filter_map(|header| {
            let value = request.headers().get(*header)?;
            Some((format!("x-app-{header}"), value.clone()))
        })
        .collect();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut response = match path.as_str() {
        "/slow" => std::future::pending().await,
        "/hold" => {
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
            let _ = sender.send_data(Bytes::from_static(b"held")).await;
            holds
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(sender);
            Response::new(body.map_err(|never| match never {}).boxed())
        }
        "/trailers" => {
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(2);
            tokio::spawn(async move {
                let _ = sender.send_data(Bytes::from_static(b"ok")).await;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                let _ = sender.send_trailers(trailers).await;
            });
            Response::new(body.map_err(|never| match never {}).boxed())
        }
        _ if request.method() == Method::POST || request.method() == Method::PUT => {
            Response::new(request.into_body().boxed())
        }
        _ => text(
            StatusCode::OK,
            format!("{name} {:?} {} {path}", request.version(), request.method()),
        ),
    };
    for (header, value) in copied {
        if let Ok(header) = HeaderName::try_from(header) {
            response.headers_mut().insert(header, value);
        }
    }
    Ok(response)
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP connection of a client (the application, or a mesh peer over mTLS).
pub enum HttpConn {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl HttpConn {
    /// A plain connection to `addr` (an outbound listener), HTTP/1.1 or HTTP/2 prior knowledge.
    pub async fn open(addr: SocketAddr, version: Version) -> anyhow::Result<HttpConn> {
        let tcp = bounded("connect", TcpStream::connect(addr)).await??;
        HttpConn::handshake(tcp, version).await
    }

    /// An HTTP/1.1 connection over mTLS to an inbound listener, as `identity`'s sidecar.
    pub async fn open_mtls(
        addr: SocketAddr,
        identity: &Identity,
        service: &str,
    ) -> anyhow::Result<HttpConn> {
        let tcp = bounded("connect", TcpStream::connect(addr)).await??;
        let connector = TlsConnector::from(identity.client_config(service, DC));
        let tls = bounded(
            "the TLS handshake",
            connector.connect(identity.server_name(service, DC), tcp),
        )
        .await??;
        HttpConn::handshake(tls, Version::HTTP_11).await
    }

    async fn handshake<T>(io: T, version: Version) -> anyhow::Result<HttpConn>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        if version == Version::HTTP_2 {
            let (sender, connection) = bounded(
                "the HTTP/2 handshake",
                http2::handshake(TokioExecutor::new(), io),
            )
            .await??;
            tokio::spawn(connection);
            Ok(HttpConn::Http2(sender))
        } else {
            let (sender, connection) =
                bounded("the HTTP/1 handshake", http1::handshake(io)).await??;
            tokio::spawn(connection);
            Ok(HttpConn::Http1(sender))
        }
    }

    /// Sends `request`; returns once the response headers are in.
    pub async fn send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let response = bounded("a response", async {
            match self {
                HttpConn::Http1(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await
                }
                HttpConn::Http2(sender) => {
                    *request.version_mut() = Version::HTTP_2;
                    sender.ready().await?;
                    sender.send_request(request).await
                }
            }
        })
        .await??;
        Ok(response)
    }

    /// Sends `request` and reads the response to its end.
    pub async fn fetch(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let response = self.send(request).await?;
        read_reply(response).await
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        self.fetch(http_request(Method::GET, path, Bytes::new())?)
            .await
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> anyhow::Result<Reply> {
        self.fetch(http_request(Method::POST, path, body.into())?)
            .await
    }
}

/// A request for `path` on the `db` upstream.
pub fn http_request(
    method: Method,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(format!("http://db{path}"))
        .header("host", "db")
        .body(Full::new(body))?)
}

/// Reads `response` to its end.
pub async fn read_reply(response: Response<Incoming>) -> anyhow::Result<Reply> {
    let (head, body) = response.into_parts();
    let collected = bounded("the response body", body.collect()).await??;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: head.status,
        headers: head.headers,
        body: collected.to_bytes(),
        trailers,
    })
}
