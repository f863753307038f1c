//! The sidecar's data plane (the core of `mesh-sidecar`): mTLS in both directions between
//! services of the mesh, proxying bytes (L4, `tcp`) or HTTP requests (L7: `http`, `http2`,
//! `grpc`, over HTTP/1.1 or HTTP/2 with hyper).
//!
//! - [`tls`]: rustls configurations from the agent's PEM material (leaf + roots), identities from
//!   SPIFFE URI SANs, and hot reload through [`Identity`].
//! - [`inbound`]: the public listener: mTLS termination, the source's identity, authorization
//!   per connection (L4) or per request (L7 intentions), forwarding to the local application.
//! - [`outbound`]: one local listener per upstream: instance choice (power of two choices),
//!   failover and ejection ([`outbound::Balancer`], pure), mTLS origination with the server's
//!   identity checked; for L7, per-request balancing over pooled connections, a request
//!   timeout and retries within a budget.
//! - [`Protocol`]: which of the two a listener does, from Consul's `protocol` values.
//! - [`drain`]: graceful shutdown; [`metrics`]: counters, status codes and latency histograms.
//!
//! IO stays at the edges: listeners are handed bound sockets, configuration arrives as values
//! and through [`Identity`], [`Endpoints`] and the [`Authorize`] implementation, and the decision
//! logic (balancing, ejection, identity checks, retry rules, path normalization) is plain code
//! tested without sockets. Whoever composes a sidecar (the binary, tests) fetches the material
//! and the instance lists.
//!
//! This crate never depends on the agent, raft, RocksDB, the catalog or the HTTP API servers
//! (`api`, axum); it uses the `ca` and `intentions` crates only for their pure types
//! (`SpiffeId`, `Decision`, `HttpRequest`). hyper is its HTTP engine, as a proxy, not an API
//! framework. A test below keeps the manifest honest.

mod accept;
pub mod drain;
mod duplex;
mod http;
pub mod inbound;
pub mod metrics;
pub mod outbound;
mod protocol;
pub mod tls;

pub use ca::SpiffeId;
pub use drain::{Drained, Trigger, Watch};
pub use inbound::{Authorization, Authorize, Inbound, InboundConfig};
pub use intentions::HttpRequest;
pub use metrics::{
    HistogramSnapshot, HttpCounts, HttpMetrics, InboundCounts, InboundMetrics, OutboundCounts,
    OutboundMetrics,
};
pub use outbound::{EjectionPolicy, Endpoint, Endpoints, Outbound, OutboundConfig, RetryPolicy};
pub use protocol::Protocol;
pub use tls::{Identity, IdentityError, LeafCert, TlsError, TrustedRoots};

#[cfg(test)]
mod layering {
    /// The decision logic stays pure: no runtime, no sockets, no clock, no hidden randomness.
    #[test]
    fn balancing_does_no_io() {
        let source = include_str!("outbound/balance.rs");
        for forbidden in [
            "tokio",
            "Instant::now",
            "SystemTime",
            "rand::rng",
            "thread_rng",
            "TcpStream",
            "std::fs",
        ] {
            assert!(!source.contains(forbidden), "balance.rs uses {forbidden}");
        }
    }

    /// What the crate root promises it never depends on.
    #[test]
    fn no_control_plane_or_http_server_dependencies() {
        let manifest = include_str!("../Cargo.toml");
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("a [dependencies] table");
        for line in dependencies.lines() {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            assert!(
                ![
                    "agent",
                    "raft-store",
                    "rocksdb",
                    "openraft",
                    "catalog",
                    "api",
                    "server",
                    "axum",
                ]
                .contains(&name),
                "proxy depends on {name}"
            );
        }
    }
}
