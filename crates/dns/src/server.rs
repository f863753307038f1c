//! Binding the DNS sockets and serving them: UDP through [`crate::udp`], TCP through hickory's
//! server.
//!
//! UDP is served the way Knot DNS serves it: several UDP sockets bound to the same address
//! with `SO_REUSEPORT` (the kernel spreads clients over them), each served on a thread of its
//! own with a single-threaded runtime. A question is then received, answered and its answer
//! sent on one thread, with no wake-ups between threads and no work stealing; the handler only
//! reads memory on that path (the lookup does its waiting and server round trips on the
//! runtime it was made on). TCP is served on the caller's runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{ConfigError, DnsConfig, Settings};
use crate::handler::DnsHandler;
use crate::lookup::Lookup;

/// How long a TCP connection may stay idle between requests.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// With port 0, how many OS-chosen UDP ports to try before one is also free for TCP.
const PORT_ATTEMPTS: usize = 16;
/// The most UDP sockets (and threads) by default, however many cores there are.
const MAX_DEFAULT_UDP_WORKERS: usize = 4;

/// Why the DNS interface could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot bind DNS {transport} on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a DNS UDP worker: {0}")]
    Worker(#[source] io::Error),
    #[error("DNS UDP socket failed: {0}")]
    Udp(#[source] io::Error),
    #[error("DNS server stopped: {0}")]
    Server(#[source] NetError),
}

/// A DNS server bound to UDP and TCP on one address, not yet serving.
pub struct DnsServer {
    handler: DnsHandler,
    /// One socket per UDP worker, all bound to `local_addr`.
    udp: Vec<std::net::UdpSocket>,
    tcp: Server<DnsHandler>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .field("udp_workers", &self.udp.len())
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `config.bind`. With port 0, the OS picks a port free on both.
    pub async fn bind(config: DnsConfig, lookup: Arc<dyn Lookup>) -> Result<DnsServer, DnsError> {
        let settings = Settings::new(&config)?;
        let workers = udp_workers(config.udp_workers);
        let (udp, tcp) = bind_sockets(config.bind, workers)?;
        let local_addr = tcp.local_addr().map_err(|source| DnsError::Bind {
            addr: config.bind,
            transport: "TCP",
            source,
        })?;
        let handler = DnsHandler::from_settings(settings, lookup);
        let mut server = Server::new(handler.clone());
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(
            addr = %local_addr,
            domain = %config.domain,
            udp_workers = udp.len(),
            "DNS listening on UDP and TCP"
        );
        Ok(DnsServer {
            handler,
            udp,
            tcp: server,
            local_addr,
        })
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the server counts (questions by kind, answer times, failures).
    pub fn stats(&self) -> Arc<crate::DnsStats> {
        self.handler.stats()
    }

    /// Serves until `shutdown` completes, then stops accepting and returns. Dropping the
    /// future stops the UDP workers too.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DnsError> {
        // Dropped with this future: every worker then stops.
        let (stop, stopped) = watch::channel(false);
        let (done, mut finished) = mpsc::unbounded_channel();
        let workers = self.udp.len();
        for (i, socket) in self.udp.drain(..).enumerate() {
            let handler = self.handler.clone();
            let stopped = stopped.clone();
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || {
                    // The receiver is gone only when `run` is: nobody to tell.
                    let _ = done.send(serve_udp(socket, handler, stopped));
                });
            if let Err(error) = spawned {
                let _ = stop.send(true);
                // The workers already started stop before the error is returned.
                for _ in 0..i {
                    finished.recv().await;
                }
                return Err(DnsError::Worker(error));
            }
        }
        drop(done);

        let mut running = workers;
        let mut failure = None;
        tokio::select! {
            () = shutdown => {}
            result = self.tcp.block_until_done() => {
                // The listener closed without a shutdown.
                failure = Some(result.map_err(DnsError::Server).err().unwrap_or_else(|| {
                    DnsError::Server(NetError::from("the TCP listener stopped"))
                }));
            }
            Some(result) = finished.recv() => {
                running -= 1;
                failure = Some(result.err().unwrap_or_else(|| {
                    DnsError::Server(NetError::from("a UDP worker stopped"))
                }));
            }
        }
        let _ = stop.send(true);
        let tcp = self
            .tcp
            .shutdown_gracefully()
            .await
            .map_err(DnsError::Server);
        for _ in 0..running {
            if let Some(Err(error)) = finished.recv().await {
                warn!(%error, "DNS UDP worker failed while stopping");
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        tcp?;
        info!(addr = %self.local_addr, "DNS stopped");
        Ok(())
    }
}

/// Binds the DNS interface on `config.bind` and serves until `shutdown` completes.
pub async fn serve(
    config: DnsConfig,
    lookup: Arc<dyn Lookup>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DnsError> {
    DnsServer::bind(config, lookup).await?.run(shutdown).await
}

/// How many UDP sockets to serve: `configured`, or with 0 one per two cores (at least one, at
/// most [`MAX_DEFAULT_UDP_WORKERS`]). Where `SO_REUSEPORT` is not available, one.
///
/// Not one per core: an agent's DNS clients are the applications on its own machine, and a
/// worker per core competes with them. On two cores with the client on them (the benchmark),
/// one worker answers at about two thirds of the CPU per question that two do, where the
/// second worker mostly preempts the client and is preempted by it.
fn udp_workers(configured: usize) -> usize {
    if !cfg!(unix) {
        return 1;
    }
    match configured {
        0 => (std::thread::available_parallelism().map_or(1, usize::from) / 2)
            .clamp(1, MAX_DEFAULT_UDP_WORKERS),
        n => n,
    }
}

/// One UDP worker: its own single-threaded runtime serving `socket` ([`crate::udp`]), until
/// `stopped` turns true or its sender is dropped. Questions still waiting then get no answer;
/// their clients ask again.
fn serve_udp(
    socket: std::net::UdpSocket,
    handler: DnsHandler,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), DnsError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(DnsError::Worker)?;
    runtime.block_on(async move {
        let addr = socket.local_addr().map_err(DnsError::Worker)?;
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(|source| DnsError::Bind {
            addr,
            transport: "UDP",
            source,
        })?;
        tokio::select! {
            // Stop asked for, or `run` gone.
            _ = stopped.wait_for(|stop| *stop) => Ok(()),
            error = crate::udp::serve(socket, handler) => Err(DnsError::Udp(error)),
        }
    })
}

/// `workers` UDP sockets sharing one port (`SO_REUSEPORT`) and a TCP listener on the same
/// port. With port 0, the OS picks the port, and another one if TCP cannot have it.
fn bind_sockets(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), DnsError> {
    let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let udp_error = |addr, source| DnsError::Bind {
        addr,
        transport: "UDP",
        source,
    };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp_socket(addr, workers > 1).map_err(|e| udp_error(addr, e))?;
        let port = first.local_addr().map_err(|e| udp_error(addr, e))?.port();
        let bound = SocketAddr::new(addr.ip(), port);
        let mut udp = vec![first];
        for _ in 1..workers {
            udp.push(udp_socket(bound, true).map_err(|e| udp_error(bound, e))?);
        }
        match tcp_listener(bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    addr: bound,
                    transport: "TCP",
                    source,
                })
            }
        }
    }
    Err(last.expect("at least one attempt was made"))
}

/// A non-blocking UDP socket bound to `addr`, sharing it with other sockets of this server
/// (and only with sockets that ask for the same) when `shared`.
fn udp_socket(addr: SocketAddr, shared: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    if shared {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(unix))]
    let _ = shared;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

#[cfg(test)]
mod tests;
