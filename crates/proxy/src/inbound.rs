//! The inbound listener: the sidecar's public port. It terminates mTLS (a client certificate
//! chained to the current roots is required) and takes the source's identity from the
//! certificate. What follows depends on the service's [`Protocol`]:
//!
//! - `tcp`: the [`Authorize`] it was given decides for the connection; on allow the bytes are
//!   forwarded to the local application (`LocalServiceAddress:LocalServicePort`), on deny the
//!   connection is closed and the source logged and counted.
//! - `http`, `http2`, `grpc` (module `http`): HTTP is served on the TLS stream and the
//!   authorizer decides for every request, seeing its method, path and headers; a denied
//!   request gets Envoy's 403, an allowed one goes to the local application over pooled
//!   connections.
//!
//! The authorizer is synchronous and local: the sidecar backs it with the intentions it keeps
//! cached, so neither a connection nor a request waits on the network to be authorized.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ca::SpiffeId;
use intentions::HttpRequest;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Instrument};

use crate::accept::accept_loop;
use crate::drain::{Drained, Watch};
use crate::duplex::duplex;
use crate::metrics::{ActiveGuard, InboundMetrics};
use crate::protocol::Protocol;
use crate::tls::{peer_identity, Identity};

mod http;

/// Decides whether a verified source may reach this sidecar's service.
pub trait Authorize: Send + Sync + 'static {
    /// `request` is `None` to authorize a connection (`tcp` services), `Some` to authorize
    /// one request on a connection (HTTP services; the connection itself is then not
    /// authorized, as an L7 intention cannot answer for one).
    fn authorize(&self, source: &SpiffeId, request: Option<&HttpRequest<'_>>) -> Authorization;
}

impl<F> Authorize for F
where
    F: Fn(&SpiffeId, Option<&HttpRequest<'_>>) -> Authorization + Send + Sync + 'static,
{
    fn authorize(&self, source: &SpiffeId, request: Option<&HttpRequest<'_>>) -> Authorization {
        self(source, request)
    }
}

/// An authorizer's answer, with the reason that is logged on deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub allowed: bool,
    pub reason: String,
}

impl Authorization {
    pub fn allow(reason: impl Into<String>) -> Authorization {
        Authorization {
            allowed: true,
            reason: reason.into(),
        }
    }

    pub fn deny(reason: impl Into<String>) -> Authorization {
        Authorization {
            allowed: false,
            reason: reason.into(),
        }
    }
}

impl From<intentions::Decision> for Authorization {
    fn from(decision: intentions::Decision) -> Self {
        Authorization {
            allowed: decision.allowed,
            reason: decision.reason,
        }
    }
}

/// How the inbound listener behaves.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Where the local application listens.
    pub app_addr: SocketAddr,
    /// What the local application speaks, and so what mesh peers speak to this listener.
    /// Default `tcp`.
    pub protocol: Protocol,
    /// Longest a TLS handshake may take from accept.
    pub handshake_timeout: Duration,
    /// Longest a connect to the local application may take.
    pub connect_timeout: Duration,
    /// L7: how long a pooled connection to the local application may stay unused before it
    /// is closed. Default 90 s.
    pub idle_timeout: Duration,
    /// How long established connections may run on after a drain starts.
    pub drain_grace: Duration,
}

impl InboundConfig {
    pub fn new(app_addr: SocketAddr) -> InboundConfig {
        InboundConfig {
            app_addr,
            protocol: Protocol::Tcp,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            drain_grace: Duration::from_secs(30),
        }
    }
}

/// An inbound listener, ready to serve a bound socket.
pub struct Inbound {
    shared: Arc<Shared>,
}

struct Shared {
    config: InboundConfig,
    identity: Identity,
    acceptor: TlsAcceptor,
    authorize: Box<dyn Authorize>,
    metrics: Arc<InboundMetrics>,
    /// L7: the pooled client to the local application.
    app: http::AppClient,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// `identity` is read at every handshake, so leaf and root updates made through it apply
    /// to the next connection.
    pub fn new(config: InboundConfig, identity: &Identity, authorize: impl Authorize) -> Inbound {
        Inbound {
            shared: Arc::new(Shared {
                app: http::AppClient::new(&config),
                config,
                identity: identity.clone(),
                acceptor: TlsAcceptor::from(identity.server_config()),
                authorize: Box::new(authorize),
                metrics: Arc::default(),
            }),
        }
    }

    pub fn metrics(&self) -> Arc<InboundMetrics> {
        self.shared.metrics.clone()
    }

    /// Serves `listener` until `drain` signals, then drains (see [`crate::drain`]).
    pub async fn serve(self, listener: TcpListener, drain: Watch) -> Drained {
        let grace = self.shared.config.drain_grace;
        let watch = drain.clone();
        accept_loop(listener, drain, grace, |tcp, peer| {
            let shared = self.shared.clone();
            let drain = watch.clone();
            let span = tracing::info_span!("inbound", %peer, source = tracing::field::Empty);
            async move { shared.handle(tcp, drain).await }.instrument(span)
        })
        .await
    }
}

impl Shared {
    async fn handle(self: Arc<Self>, tcp: TcpStream, drain: Watch) {
        let metrics = &self.metrics;
        metrics.accepted.inc();
        let _ = tcp.set_nodelay(true);
        let handshake = timeout(self.config.handshake_timeout, self.acceptor.accept(tcp)).await;
        let mut tls = match handshake {
            Ok(Ok(tls)) => tls,
            // Connected and left without a word: a TCP health check or a port scan.
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                debug!("peer closed before completing a handshake");
                return;
            }
            Ok(Err(e)) => {
                metrics.handshake_failures.inc();
                warn!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics.handshake_failures.inc();
                debug!(timeout = ?self.config.handshake_timeout, "TLS handshake timed out");
                return;
            }
        };
        // The verifier accepted exactly one service identity; read it back from the chain.
        let peer_chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
        let source = match peer_identity(peer_chain) {
            Ok(source) => source,
            Err(e) => {
                metrics.handshake_failures.inc();
                warn!(error = %e, "verified client certificate without an identity");
                return;
            }
        };
        tracing::Span::current().record("source", tracing::field::display(&source));
        if self.config.protocol.is_http() {
            let _active = ActiveGuard::new(&metrics.active);
            self.clone().serve_http(tls, source, &drain).await;
            return;
        }
        let decision = self.authorize.authorize(&source, None);
        if !decision.allowed {
            metrics.denied.inc();
            info!(source = %source, reason = %decision.reason, "connection denied");
            let _ = timeout(self.config.handshake_timeout, tls.shutdown()).await;
            return;
        }
        metrics.authorized.inc();
        debug!(reason = %decision.reason, "connection authorized");

        let app = timeout(
            self.config.connect_timeout,
            TcpStream::connect(self.config.app_addr),
        )
        .await;
        let mut app = match app {
            Ok(Ok(app)) => app,
            Ok(Err(e)) => {
                metrics.app_connect_failures.inc();
                warn!(app = %self.config.app_addr, error = %e, "cannot reach the local application");
                let _ = timeout(self.config.handshake_timeout, tls.shutdown()).await;
                return;
            }
            Err(_) => {
                metrics.app_connect_failures.inc();
                warn!(app = %self.config.app_addr, "connecting to the local application timed out");
                let _ = timeout(self.config.handshake_timeout, tls.shutdown()).await;
                return;
            }
        };
        let _ = app.set_nodelay(true);
        let _active = ActiveGuard::new(&metrics.active);
        if let Err(e) = duplex(&mut tls, &mut app, &metrics.bytes_in, &metrics.bytes_out).await {
            debug!(error = %e, "connection ended with an error");
        }
    }
}
