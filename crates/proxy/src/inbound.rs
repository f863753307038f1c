//! The inbound listener: the sidecar's public port. It terminates mTLS (a client certificate
//! chained to the current roots is required), takes the source's identity from the
//! certificate, asks the [`Authorize`] it was given, and on allow forwards to the local
//! application (`LocalServiceAddress:LocalServicePort`); on deny it closes the connection and
//! logs and counts the source.
//!
//! The authorizer is synchronous and local: the sidecar backs it with the intentions it keeps
//! cached, so a connection never waits on the network to be authorized.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ca::SpiffeId;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Instrument};

use crate::accept::accept_loop;
use crate::drain::{Drained, Watch};
use crate::duplex::duplex;
use crate::metrics::{ActiveGuard, InboundMetrics};
use crate::tls::{peer_identity, Identity};

/// Decides whether a verified source may connect to this sidecar's service.
pub trait Authorize: Send + Sync + 'static {
    fn authorize(&self, source: &SpiffeId) -> Authorization;
}

impl<F> Authorize for F
where
    F: Fn(&SpiffeId) -> Authorization + Send + Sync + 'static,
{
    fn authorize(&self, source: &SpiffeId) -> Authorization {
        self(source)
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
    /// Longest a TLS handshake may take from accept.
    pub handshake_timeout: Duration,
    /// Longest a connect to the local application may take.
    pub connect_timeout: Duration,
    /// How long established connections may run on after a drain starts.
    pub drain_grace: Duration,
}

impl InboundConfig {
    pub fn new(app_addr: SocketAddr) -> InboundConfig {
        InboundConfig {
            app_addr,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
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
    acceptor: TlsAcceptor,
    authorize: Box<dyn Authorize>,
    metrics: Arc<InboundMetrics>,
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
                config,
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
        accept_loop(listener, drain, grace, |tcp, peer| {
            let shared = self.shared.clone();
            let span = tracing::info_span!("inbound", %peer, source = tracing::field::Empty);
            async move { shared.handle(tcp).await }.instrument(span)
        })
        .await
    }
}

impl Shared {
    async fn handle(&self, tcp: TcpStream) {
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
        let decision = self.authorize.authorize(&source);
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
