//! H2PING checks: open an HTTP/2 connection (TLS with ALPN `h2` by default, cleartext h2c
//! when TLS is off) and send a PING; an acknowledgement within the timeout is passing.
//! Output texts follow Consul's (`HTTP2 ping was successful`, `Failed to dial to ...`).
//! Over TLS the certificate is checked against the system's trust roots for the dialed host,
//! or for `TLSServerName`; `TLSSkipVerify` turns the check off.

use std::time::Duration;

use tokio::time::Instant;

use super::io::error_chain;
use super::tls::{self, Stream, TlsOptions};
use super::Outcome;

/// Runs an H2PING check against `host:port`, over TLS when `tls` is given (offering ALPN
/// `h2` whatever `tls.alpn` says), h2c otherwise.
pub(crate) async fn check(addr: &str, tls: Option<TlsOptions<'_>>, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let options = tls.map(|tls| TlsOptions {
        alpn: &[b"h2"],
        ..tls
    });
    let stream = match tokio::time::timeout_at(deadline, tls::open(addr, options)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Outcome::critical(format!("Failed to dial to {addr}: {e}")),
        Err(_) => {
            return Outcome::critical(format!(
                "Failed to dial to {addr}: dial tcp {addr}: i/o timeout"
            ))
        }
    };
    match tokio::time::timeout_at(deadline, ping(stream)).await {
        Ok(Ok(())) => Outcome::passing("HTTP2 ping was successful"),
        Ok(Err(e)) => Outcome::critical(e),
        Err(_) => Outcome::critical("HTTP2 ping failed: context deadline exceeded"),
    }
}

async fn ping(stream: Stream) -> Result<(), String> {
    let (_requests, mut connection) = h2::client::handshake(stream)
        .await
        .map_err(|e| format!("Failed to create client connection {}", error_chain(&e)))?;
    let mut ping_pong = connection
        .ping_pong()
        .ok_or_else(|| "HTTP2 ping failed: ping unavailable".to_owned())?;
    // The connection must be driven while the ping is outstanding; `_requests` keeps it open.
    tokio::select! {
        pong = ping_pong.ping(h2::Ping::opaque()) => {
            pong.map(|_| ()).map_err(|e| format!("HTTP2 ping failed: {}", error_chain(&e)))
        }
        closed = &mut connection => Err(match closed {
            Ok(()) => "HTTP2 ping failed: connection closed".to_owned(),
            Err(e) => format!("HTTP2 ping failed: {}", error_chain(&e)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testsupport::{
        closed_tcp_port, h2c_server, http_server, https_server, within,
    };
    use catalog::Status;

    const VERIFY: TlsOptions<'static> = TlsOptions {
        server_name: "",
        skip_verify: false,
        alpn: &[],
    };

    #[tokio::test]
    async fn tls_ping_with_skip_verify_is_passing() {
        let addr = https_server().await.to_string();
        let tls = TlsOptions {
            skip_verify: true,
            ..VERIFY
        };
        let out = within(check(&addr, Some(tls), Duration::from_secs(5))).await;
        assert_eq!(out, Outcome::passing("HTTP2 ping was successful"));
    }

    #[tokio::test]
    async fn h2c_ping_is_passing() {
        let addr = h2c_server().await.to_string();
        let out = within(check(&addr, None, Duration::from_secs(5))).await;
        assert_eq!(out, Outcome::passing("HTTP2 ping was successful"));
    }

    #[tokio::test]
    async fn http1_server_is_critical() {
        let addr = http_server().await.to_string();
        let out = within(check(&addr, None, Duration::from_secs(5))).await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("HTTP2 ping failed"),
            "{}",
            out.output
        );
    }

    #[tokio::test]
    async fn untrusted_certificate_is_critical() {
        let addr = https_server().await.to_string();
        let out = within(check(&addr, Some(VERIFY), Duration::from_secs(5))).await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output
                .starts_with(&format!("Failed to dial to {addr}: tls: ")),
            "{}",
            out.output
        );
    }

    #[tokio::test]
    async fn refused_is_critical() {
        let addr = closed_tcp_port().await;
        let out = within(check(&addr, None, Duration::from_secs(5))).await;
        assert_eq!(
            out,
            Outcome::critical(format!(
                "Failed to dial to {addr}: dial tcp {addr}: connect: connection refused"
            ))
        );
    }
}
