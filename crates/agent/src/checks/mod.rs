//! Health-check probes and the runner that schedules them (Consul's `agent/checks`).
//!
//! A [`Probe`] is one kind of active check (HTTP, TCP, UDP, gRPC, H2PING or a script).
//! [`probe`] runs it once, bounded by a timeout, and returns an [`Outcome`]: a status and
//! Consul-style output text. A [`Damper`] applies a check's flap-damping thresholds to a
//! stream of outcomes, and [`spawn`] ties both together in a background task that probes every
//! interval and reports the damped results.
//!
//! TTL and alias checks are not probes; the agent runtime handles them itself.

mod alias;
mod damping;
mod grpc;
mod h2ping;
mod http;
mod io;
mod runner;
mod script;
mod tcp;
mod tls;
mod udp;

#[cfg(test)]
mod testsupport;

use std::time::Duration;

use catalog::Status;

pub use alias::alias_status;
pub use damping::{Damper, Damping};
pub use runner::{spawn, RunnerHandle};

use crate::definition::{DEFAULT_OUTPUT_MAX, DEFAULT_TIMEOUT};

/// Scripts get this long when the check sets no timeout (other probes get
/// [`DEFAULT_TIMEOUT`]).
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// One active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP(S) request; 2xx is passing, 429 warning, anything else critical.
    Http(HttpProbe),
    /// A TCP connect to `host:port`.
    Tcp { addr: String },
    /// A datagram to `host:port`; passing unless the port is reported unreachable.
    Udp { addr: String },
    /// The standard `grpc.health.v1.Health/Check` call.
    Grpc(GrpcProbe),
    /// An HTTP/2 PING to `host:port`, over TLS (ALPN `h2`) unless `use_tls` is false (h2c).
    /// `tls_server_name` overrides the name the certificate is checked against;
    /// `tls_skip_verify` accepts any certificate.
    H2Ping {
        addr: String,
        use_tls: bool,
        tls_server_name: String,
        tls_skip_verify: bool,
    },
    /// A command. `args` run directly when non-empty; otherwise `shell` is a command line run
    /// with `$SHELL -c` (falling back to `/bin/sh`), like Consul's legacy `Script` field.
    /// Exit 0 is passing, 1 warning, anything else critical.
    Script {
        args: Vec<String>,
        shell: Option<String>,
    },
}

/// An HTTP check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpProbe {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method; empty means `GET`.
    pub method: String,
    /// Extra request headers, in order; a name may repeat. A `Host` header overrides the
    /// request's host.
    pub headers: Vec<(String, String)>,
    /// Request body (may be empty).
    pub body: String,
    /// Report a 3xx response as is instead of following it (at most 10 redirects are
    /// followed otherwise).
    pub disable_redirects: bool,
    /// TLS server name to send and verify; empty means the URL's host.
    pub tls_server_name: String,
    /// Accept any server certificate.
    pub tls_skip_verify: bool,
}

/// A gRPC health check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcProbe {
    /// `host:port` or `host:port/service`.
    pub target: String,
    /// Use TLS (ALPN `h2`) instead of cleartext HTTP/2.
    pub use_tls: bool,
    /// TLS server name to send and verify; empty means the target's host.
    pub tls_server_name: String,
    /// Accept any server certificate.
    pub tls_skip_verify: bool,
}

/// The result of one probe (or, after a [`Damper`], the result to report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub output: String,
}

impl Outcome {
    pub(crate) fn passing(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Passing,
            output: output.into(),
        }
    }

    pub(crate) fn warning(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Warning,
            output: output.into(),
        }
    }

    pub(crate) fn critical(output: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Critical,
            output: output.into(),
        }
    }
}

/// Runs `probe` once. The whole probe (name resolution, connecting, TLS, the exchange) is
/// bounded by `timeout`; a zero timeout means the default (10s, 30s for scripts). At most
/// `output_max` bytes of response body / script output are kept (zero means 4096).
pub async fn probe(probe: &Probe, timeout: Duration, output_max: usize) -> Outcome {
    let timeout = match timeout {
        t if !t.is_zero() => t,
        _ if matches!(probe, Probe::Script { .. }) => DEFAULT_SCRIPT_TIMEOUT,
        _ => DEFAULT_TIMEOUT,
    };
    let output_max = match output_max {
        0 => DEFAULT_OUTPUT_MAX,
        n => n,
    };
    match probe {
        Probe::Http(p) => http::check(p, timeout, output_max).await,
        Probe::Tcp { addr } => tcp::check(addr, timeout).await,
        Probe::Udp { addr } => udp::check(addr, timeout).await,
        Probe::Grpc(p) => grpc::check(p, timeout).await,
        Probe::H2Ping {
            addr,
            use_tls,
            tls_server_name,
            tls_skip_verify,
        } => {
            let tls = use_tls.then_some(tls::TlsOptions {
                server_name: tls_server_name,
                skip_verify: *tls_skip_verify,
                alpn: &[],
            });
            h2ping::check(addr, tls, timeout).await
        }
        Probe::Script { args, shell } => {
            script::check(args, shell.as_deref(), timeout, output_max).await
        }
    }
}
