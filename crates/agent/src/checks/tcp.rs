//! TCP checks (a connect within the timeout is passing) and the dialer every network probe
//! uses, with Go-style error texts.

use std::time::Duration;

use tokio::net::{lookup_host, TcpStream};

use super::io::error_text;
use super::Outcome;

/// Runs a TCP check against `host:port`.
pub(crate) async fn check(addr: &str, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, dial(addr)).await {
        Ok(Ok(_stream)) => Outcome::passing(format!("TCP connect {addr}: Success")),
        Ok(Err(e)) => Outcome::critical(e),
        Err(_) => Outcome::critical(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Resolves `host:port` and connects to the first address that accepts. The error reads like
/// Go's (`dial tcp 127.0.0.1:1: connect: connection refused`). Not bounded: callers wrap it
/// in their timeout.
pub(crate) async fn dial(addr: &str) -> Result<TcpStream, String> {
    let candidates = resolve("tcp", addr).await?;
    let mut last = None;
    for candidate in candidates {
        match TcpStream::connect(candidate).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(format!("dial tcp {candidate}: connect: {}", error_text(&e))),
        }
    }
    Err(last.unwrap_or_else(|| format!("dial tcp: lookup {}: no such host", host_of(addr))))
}

/// Resolves `host:port` for `network` ("tcp"/"udp"), with Go-style errors.
pub(crate) async fn resolve(
    network: &str,
    addr: &str,
) -> Result<Vec<std::net::SocketAddr>, String> {
    if !has_port(addr) {
        return Err(format!(
            "dial {network}: address {addr}: missing port in address"
        ));
    }
    lookup_host(addr)
        .await
        .map(|found| found.collect())
        .map_err(|e| {
            format!(
                "dial {network}: lookup {}: {}",
                host_of(addr),
                error_text(&e)
            )
        })
}

/// Whether `addr` ends in `:port` (bracketed IPv6 literals included).
fn has_port(addr: &str) -> bool {
    match addr.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .is_some_and(|(_, port)| !port.is_empty()),
        None => addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !port.is_empty() && !host.contains(':')),
    }
}

/// The host part of `host:port`, without IPv6 brackets.
pub(crate) fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match addr.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testsupport::{closed_tcp_port, within};
    use catalog::Status;
    use tokio::net::TcpListener;

    #[test]
    fn host_port_parsing() {
        assert!(has_port("127.0.0.1:80"));
        assert!(has_port("[::1]:80"));
        assert!(!has_port("127.0.0.1"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("::1"));
        assert!(!has_port("host:"));
        assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }

    #[tokio::test]
    async fn connect_is_passing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let out = within(check(&addr, Duration::from_secs(5))).await;
        assert_eq!(
            out,
            Outcome::passing(format!("TCP connect {addr}: Success"))
        );
    }

    #[tokio::test]
    async fn refused_is_critical() {
        let addr = closed_tcp_port().await;
        let out = within(check(&addr, Duration::from_secs(5))).await;
        assert_eq!(out.status, Status::Critical);
        assert_eq!(
            out.output,
            format!("dial tcp {addr}: connect: connection refused")
        );
    }

    #[tokio::test]
    async fn missing_port_is_critical() {
        let out = within(check("127.0.0.1", Duration::from_secs(5))).await;
        assert_eq!(
            out,
            Outcome::critical("dial tcp: address 127.0.0.1: missing port in address")
        );
    }
}
