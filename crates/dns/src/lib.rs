//! mesh's DNS interface: answers `*.service.mesh`, `*.node.mesh` and Consul's other DNS names
//! (section 4 of the Consul reference) from a read-only catalog view, over UDP and TCP.
//!
//! The protocol is hickory's: this crate implements its [`RequestHandler`] over a [`Lookup`]
//! that the agent provides. hickory's server serves TCP; UDP is served by a datagram loop of
//! ours (`udp`) that decodes, answers and encodes through the same hickory types, in batches. Names are parsed (`name`), answers built (`answer`) and sized
//! for the transport (`fit`) in pure modules, with no IO, clock or hidden randomness; the
//! handler and the socket setup are the thin IO layer around them. Unlike Consul, a response
//! cut to fit sets the TC bit, so stub resolvers retry over TCP.
//!
//! A service's records are built once per set of instances the lookup hands out (`cache`) and
//! shuffled per question; UDP is served by worker threads, each with its own socket on the
//! same port (`server`) and its own loop (`udp`).
//!
//! This crate never depends on raft, HTTP or RocksDB, and never talks to servers itself.
//!
//! [`RequestHandler`]: hickory_server::server::RequestHandler

mod answer;
mod cache;
mod config;
mod fit;
mod handler;
mod lookup;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
mod name;
mod recursor;
mod server;
mod stats;
mod udp;

pub use config::{parse_recursor, ConfigError, DnsConfig, SoaConfig};
pub use handler::DnsHandler;
pub use lookup::{Instance, Instances, Lookup, LookupError, LookupFuture};
pub use server::{serve, DnsError, DnsServer};
pub use stats::{DnsCounts, DnsStats, LatencyStats};

#[cfg(test)]
mod layering {
    /// The pure modules stay pure: no runtime, no sockets, no clock, no hidden randomness.
    #[test]
    fn pure_modules_do_no_io() {
        let modules = [
            ("name.rs", include_str!("name.rs")),
            ("answer.rs", include_str!("answer.rs")),
            ("fit.rs", include_str!("fit.rs")),
            ("config.rs", include_str!("config.rs")),
        ];
        for (file, source) in modules {
            for forbidden in [
                "tokio",
                "hickory_server",
                "SystemTime",
                "Instant",
                "rand::rng",
                "thread_rng",
                "std::fs",
                "UdpSocket",
                "TcpStream",
            ] {
                assert!(!source.contains(forbidden), "{file} uses {forbidden}");
            }
        }
    }
}
