//! The HTTPS API: the same router as plain HTTP, served on `ports.https` over TLS with the
//! agent's certificate (`tls.defaults`), asking for client certificates when
//! `tls.https.verify_incoming` says so; [`serve_api`] binds HTTP and HTTPS for servers and
//! client agents alike (`ports.http = -1` leaves only HTTPS).
//!
//! Each connection's handshake runs in its own task, bounded by
//! [`rpc::tls::HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the accept
//! loop; a failed handshake is logged at DEBUG (scanners and wrong CAs are not news).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;

use crate::conn_limit::{ConnLimiter, Counted, LimitedListener};

/// The HTTPS listener's TLS configuration, or `None` when `ports.https` is off.
pub fn https_config(config: &config::Config) -> Result<Option<Arc<ServerConfig>>, rpc::TlsError> {
    if config.ports.https == config::PORT_DISABLED {
        return Ok(None);
    }
    let mut tls = rpc::tls::server_config(&config.tls, config.tls.https_verify_incoming, false)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// Binds the API on `ports.http` (unless -1) and, with `https`, on `ports.https`, and serves
/// `app` on both until shutdown. Returns the HTTP address (the HTTPS one when HTTP is off) and
/// the HTTPS address; a bind error names its address.
pub fn serve_api(
    config: &config::Config,
    app: Router,
    https: Option<Arc<ServerConfig>>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(SocketAddr, Option<SocketAddr>), (SocketAddr, std::io::Error)> {
    let bind = |port: u16| {
        let addr = SocketAddr::new(config.client_addr, port);
        let listener = crate::listener(addr).map_err(|e| (addr, e))?;
        let local = listener.local_addr().map_err(|e| (addr, e))?;
        Ok::<_, (SocketAddr, std::io::Error)>((listener, local))
    };
    // One count per client IP across HTTP and HTTPS, as Consul's.
    let limiter = ConnLimiter::new(config.limits.http_max_conns_per_client as usize);
    let mut https_addr = None;
    if let Some(tls) = https {
        let (listener, addr) = bind(port(config.ports.https, 8501))?;
        https_addr = Some(addr);
        tasks.push(tokio::spawn(serve_https(
            listener,
            tls,
            app.clone(),
            limiter.clone(),
            shutdown.clone(),
        )));
    }
    if config.ports.http == config::PORT_DISABLED {
        if let Some(addr) = https_addr {
            return Ok((addr, https_addr));
        }
    }
    let (listener, http_addr) = bind(port(config.ports.http, 8500))?;
    let mut http_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let graceful = async move {
            let _ = http_shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(LimitedListener::new(listener, limiter), app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(%err, "HTTP server failed");
        }
    }));
    Ok((http_addr, https_addr))
}

/// A configured port, or `default` when it is -1 (disabled) or out of range.
fn port(configured: i32, default: u16) -> u16 {
    u16::try_from(configured).unwrap_or(default)
}

/// Serves `app` over TLS on `listener` until `shutdown` becomes true; open connections then
/// finish their requests in flight and close.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limiter: ConnLimiter,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accepting an HTTPS connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over the limit: closed before the handshake (a plaintext 429 would be garbage to a
        // TLS client).
        let Some(guard) = limiter.admit(peer.ip()) else {
            tracing::debug!(%peer, "refused an HTTPS connection: too many from this client");
            continue;
        };
        tokio::spawn(connection(
            acceptor.clone(),
            Counted::new(tcp, guard),
            peer,
            app.clone(),
            shutdown.clone(),
        ));
    }
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: Counted<tokio::net::TcpStream>,
    peer: SocketAddr,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.get_ref().set_nodelay(true);
    let stream = match tokio::time::timeout(rpc::tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "HTTPS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTPS handshake timed out");
            return;
        }
    };
    let service = TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, %err, "HTTPS connection closed");
    }
}
