//! An outbound listener: one per upstream, on a local port the application connects to in
//! plain TCP. Upstream instances are reached over mTLS originated with this service's leaf,
//! and only if the instance proves the upstream's identity. Instances are chosen by the
//! [`Balancer`] (power of two choices on outstanding work), and instances that keep failing
//! are ejected for a growing period. What is balanced depends on the upstream's [`Protocol`]:
//!
//! - `tcp`: connections. Each goes to one instance; a failed connect (TCP or TLS, including a
//!   wrong identity) is retried on another instance, a bounded number of times.
//! - `http`, `http2`, `grpc` (module `http`): requests. The application's connection
//!   is served as HTTP and each request goes to an instance over pooled connections, with a
//!   timeout and retries within a budget ([`RetryPolicy`]).
//!
//! The instance list is shared and replaceable at any time ([`Endpoints::replace`]); a new list
//! applies to the next connection or request.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn, Instrument};

use crate::accept::accept_loop;
use crate::drain::{Drained, Watch};
use crate::duplex::duplex;
use crate::metrics::{ActiveGuard, OutboundMetrics};
use crate::protocol::Protocol;
use crate::tls::Identity;

mod balance;
mod http;
mod retry;

pub use balance::{Balancer, EjectionPolicy, Endpoint, EndpointState, Failure};
pub use retry::{is_idempotent, RetryPolicy};

/// How an outbound listener behaves.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// What the upstream speaks, and so what the application speaks to this listener.
    /// Default `tcp`.
    pub protocol: Protocol,
    /// Longest a TCP connect to an instance may take.
    pub connect_timeout: Duration,
    /// Longest the TLS handshake with an instance may take.
    pub handshake_timeout: Duration,
    /// L4: instances tried per connection (each at most once) before giving up. (L7 tries
    /// `1 + retry.max_retries` per request.)
    pub max_attempts: usize,
    pub ejection: EjectionPolicy,
    /// L7: longest from receiving a request to having the response headers, all attempts
    /// included; on expiry the application gets 504. Zero means no limit. Default 15 s
    /// (Envoy's route timeout). Response bodies (streams) are not limited.
    pub request_timeout: Duration,
    /// L7: when and how often a request is sent again.
    pub retry: RetryPolicy,
    /// L7: how long a pooled connection to an instance may stay unused before it is closed.
    /// Default 90 s.
    pub idle_timeout: Duration,
    /// How long established connections may run on after a drain starts.
    pub drain_grace: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            protocol: Protocol::Tcp,
            connect_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_attempts: 3,
            ejection: EjectionPolicy::default(),
            request_timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            idle_timeout: Duration::from_secs(90),
            drain_grace: Duration::from_secs(30),
        }
    }
}

/// The shared, replaceable instance list of one upstream, with its balancing state.
#[derive(Debug, Clone)]
pub struct Endpoints(Arc<Mutex<Balancer>>);

impl Endpoints {
    pub fn new(policy: EjectionPolicy) -> Endpoints {
        Endpoints(Arc::new(Mutex::new(Balancer::new(policy))))
    }

    /// Replaces the instances (healthy ones only: the health endpoint's `?passing` answer).
    pub fn replace(&self, endpoints: Vec<Endpoint>) {
        self.lock().replace(endpoints);
    }

    /// The balancing state of one instance.
    pub fn state(&self, addr: SocketAddr) -> Option<EndpointState> {
        self.lock().state(addr)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Balancer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An attempt, connection or request counted as outstanding on its instance until dropped.
struct Outstanding {
    endpoints: Endpoints,
    addr: SocketAddr,
}

impl Outstanding {
    /// Picks an instance not in `tried` (see [`Balancer::pick`]).
    fn pick(endpoints: &Endpoints, tried: &[SocketAddr]) -> Option<(Endpoint, Outstanding)> {
        let picked = endpoints
            .lock()
            .pick(Instant::now(), &mut rand::rng(), tried)?;
        let outstanding = Outstanding {
            endpoints: endpoints.clone(),
            addr: picked.addr,
        };
        Some((picked, outstanding))
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.endpoints.lock().release(self.addr);
    }
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("TCP connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("TCP connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    #[error("TLS handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
}

/// Reaches instances: TCP connect, then the TLS handshake that proves the instance's
/// identity. Shared by the L4 path and the L7 connection pool.
#[derive(Debug)]
struct Dialer {
    identity: Identity,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    metrics: Arc<OutboundMetrics>,
}

impl Dialer {
    async fn connect(&self, endpoint: &Endpoint) -> Result<TlsStream<TcpStream>, AttemptError> {
        let started = Instant::now();
        let tcp = timeout(self.connect_timeout, TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| AttemptError::ConnectTimeout(self.connect_timeout))?
            .map_err(AttemptError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let identity = &self.identity;
        let connector =
            TlsConnector::from(identity.client_config(&endpoint.service, &endpoint.datacenter));
        let server_name = identity.server_name(&endpoint.service, &endpoint.datacenter);
        let tls = timeout(self.handshake_timeout, connector.connect(server_name, tcp))
            .await
            .map_err(|_| AttemptError::HandshakeTimeout(self.handshake_timeout))?
            .map_err(AttemptError::Handshake)?;
        self.metrics.connect_latency.record(started.elapsed());
        Ok(tls)
    }
}

/// The outbound listener of one upstream.
pub struct Outbound {
    shared: Arc<Shared>,
}

struct Shared {
    upstream: String,
    config: OutboundConfig,
    endpoints: Endpoints,
    metrics: Arc<OutboundMetrics>,
    dialer: Arc<Dialer>,
    /// L7: pooled connections to the instances, and the retry budget.
    http: http::Requests,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("upstream", &self.shared.upstream)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// `upstream` names the upstream in logs (its destination name). `identity` provides the
    /// client certificate and the roots at every handshake.
    pub fn new(upstream: &str, config: OutboundConfig, identity: Identity) -> Outbound {
        let endpoints = Endpoints::new(config.ejection);
        let metrics = Arc::<OutboundMetrics>::default();
        let dialer = Arc::new(Dialer {
            identity,
            connect_timeout: config.connect_timeout,
            handshake_timeout: config.handshake_timeout,
            metrics: metrics.clone(),
        });
        Outbound {
            shared: Arc::new(Shared {
                upstream: upstream.to_owned(),
                http: http::Requests::new(upstream, &config),
                config,
                endpoints,
                metrics,
                dialer,
            }),
        }
    }

    /// The instance list to keep current.
    pub fn endpoints(&self) -> Endpoints {
        self.shared.endpoints.clone()
    }

    pub fn metrics(&self) -> Arc<OutboundMetrics> {
        self.shared.metrics.clone()
    }

    /// Serves `listener` until `drain` signals, then drains (see [`crate::drain`]).
    pub async fn serve(self, listener: TcpListener, drain: Watch) -> Drained {
        let grace = self.shared.config.drain_grace;
        let watch = drain.clone();
        accept_loop(listener, drain, grace, |app, _peer| {
            let shared = self.shared.clone();
            let drain = watch.clone();
            let span = tracing::info_span!(
                "outbound",
                upstream = %shared.upstream,
                instance = tracing::field::Empty
            );
            async move { shared.handle(app, drain).await }.instrument(span)
        })
        .await
    }
}

impl Shared {
    async fn handle(self: Arc<Self>, mut app: TcpStream, drain: Watch) {
        let metrics = &self.metrics;
        metrics.accepted.inc();
        let _ = app.set_nodelay(true);
        if self.config.protocol.is_http() {
            let _active = ActiveGuard::new(&metrics.active);
            self.clone().serve_http(app, &drain).await;
            return;
        }
        let Some((mut upstream, _outstanding)) = self.connect().await else {
            metrics.failed.inc();
            return;
        };
        metrics.established.inc();
        let _active = ActiveGuard::new(&metrics.active);
        if let Err(e) = duplex(
            &mut app,
            &mut upstream,
            &metrics.bytes_out,
            &metrics.bytes_in,
        )
        .await
        {
            debug!(error = %e, "connection ended with an error");
        }
    }

    /// Tries instances until one is reached and verified, at most `max_attempts` of them.
    async fn connect(&self) -> Option<(TlsStream<TcpStream>, Outstanding)> {
        let mut tried = Vec::new();
        while tried.len() < self.config.max_attempts {
            let Some((endpoint, outstanding)) = Outstanding::pick(&self.endpoints, &tried) else {
                break;
            };
            tried.push(endpoint.addr);
            match self.dialer.connect(&endpoint).await {
                Ok(stream) => {
                    self.endpoints.lock().succeeded(endpoint.addr);
                    tracing::Span::current()
                        .record("instance", tracing::field::display(endpoint.addr));
                    return Some((stream, outstanding));
                }
                Err(e) => self.attempt_failed(&endpoint, &e),
            }
        }
        if tried.is_empty() {
            warn!("no healthy instance to connect to");
        } else {
            warn!(attempts = tried.len(), "no instance could be reached");
        }
        None
    }

    fn attempt_failed(&self, endpoint: &Endpoint, e: &AttemptError) {
        let metrics = &self.metrics;
        let instance = endpoint.addr;
        match e {
            AttemptError::Connect(_) | AttemptError::ConnectTimeout(_) => {
                metrics.connect_failures.inc();
                debug!(%instance, error = %e, "connect attempt failed");
            }
            // A TLS failure is a misconfiguration or an impostor, not an instance going away.
            AttemptError::Handshake(_) | AttemptError::HandshakeTimeout(_) => {
                metrics.handshake_failures.inc();
                warn!(%instance, service = %endpoint.service, error = %e, "connect attempt failed");
            }
        }
        self.instance_failed(instance);
    }

    /// Reports a failure of `instance` to the balancer, which may eject it.
    fn instance_failed(&self, instance: SocketAddr) {
        let failure = self.endpoints.lock().failed(instance, Instant::now());
        if let Failure::Ejected { period, .. } = failure {
            self.metrics.ejections.inc();
            info!(%instance, ?period, "instance ejected after repeated failures");
        }
    }
}
