//! Server RPC on port 8300: the raft transport between servers and the forwarding of client
//! writes and read barriers from followers to the leader.
//!
//! One TCP connection carries length-prefixed postcard frames, one request then one response
//! at a time. [`RaftTransport`] is openraft's network over it; [`serve`] answers it. With agent
//! TLS on, [`connect`] and the accept loop in [`serve`] wrap every connection in TLS (mutual
//! when `verify_incoming` asks for it); [`tls`] builds the rustls configurations, which the
//! HTTPS API shares. This crate knows nothing about HTTP or Consul's wire format.

mod autopilot;
mod client;
mod frame;
mod join;
mod message;
mod server;
pub mod tls;
mod transport;

pub use autopilot::{Autopilot, Health, ServerHealth};
pub use client::{HttpHandler, HttpRequest, HttpResponse, NodeState, Servers};
pub use join::{identify, request_join, with_default_port, DEFAULT_RPC_PORT};
pub use message::{Identity, Request, Response};
pub use server::{
    add_voter, by_address, node_state, serve, watch_intentions, watch_node_state, watch_roots,
    watch_service_health, Guards, MAX_WATCH,
};
pub use tls::{install_dialer, PeerRole, RpcTls, ServerTls, Stream, TlsError};
pub use transport::{call, connect, ConnectionPool, Forwarder, RaftTransport};

/// Errors of one RPC exchange.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} answered with an unexpected message")]
    Unexpected { addr: String },
    #[error("{0}")]
    Remote(String),
}
