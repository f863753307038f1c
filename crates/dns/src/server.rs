//! Binding the DNS sockets and running hickory's server over them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::config::{ConfigError, DnsConfig, Settings};
use crate::handler::DnsHandler;
use crate::lookup::Lookup;

/// How long a TCP connection may stay idle between requests.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// With port 0, how many OS-chosen UDP ports to try before one is also free for TCP.
const PORT_ATTEMPTS: usize = 16;

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
    #[error("DNS server stopped: {0}")]
    Server(#[source] NetError),
}

/// A DNS server bound to UDP and TCP on one address, not yet serving.
pub struct DnsServer {
    server: Server<DnsHandler>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `config.bind`. With port 0, the OS picks a port free on both.
    pub async fn bind(config: DnsConfig, lookup: Arc<dyn Lookup>) -> Result<DnsServer, DnsError> {
        let settings = Settings::new(&config)?;
        let (udp, tcp) = bind_both(config.bind).await?;
        let local_addr = udp.local_addr().map_err(|source| DnsError::Bind {
            addr: config.bind,
            transport: "UDP",
            source,
        })?;
        let mut server = Server::new(DnsHandler::from_settings(settings, lookup));
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        info!(addr = %local_addr, domain = %config.domain, "DNS listening on UDP and TCP");
        Ok(DnsServer { server, local_addr })
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DnsError> {
        tokio::select! {
            () = shutdown => {}
            result = self.server.block_until_done() => {
                // The sockets closed without a shutdown.
                return result.map_err(DnsError::Server);
            }
        }
        self.server
            .shutdown_gracefully()
            .await
            .map_err(DnsError::Server)?;
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

async fn bind_both(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let attempts = if addr.port() == 0 { PORT_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr,
                transport: "UDP",
                source,
            })?;
        let port = udp
            .local_addr()
            .map_err(|source| DnsError::Bind {
                addr,
                transport: "UDP",
                source,
            })?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    addr: tcp_addr,
                    transport: "TCP",
                    source,
                })
            }
        }
    }
    Err(last.expect("at least one attempt was made"))
}

#[cfg(test)]
mod tests;
