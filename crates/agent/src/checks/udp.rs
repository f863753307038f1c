//! UDP checks, with Consul's semantics: send an (empty) datagram on a connected socket and
//! wait for a reply until the timeout. A reply or silence is passing; an error (typically the
//! ICMP port-unreachable surfacing as "connection refused") is critical.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::io::error_text;
use super::tcp::resolve;
use super::Outcome;

/// Runs a UDP check against `host:port`. A healthy target takes the whole timeout.
pub(crate) async fn check(addr: &str, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let success = || Outcome::passing(format!("UDP connect {addr}: Success"));
    let remote = match tokio::time::timeout_at(deadline, resolve("udp", addr)).await {
        Ok(Ok(found)) => match found.first() {
            Some(remote) => *remote,
            None => {
                return Outcome::critical(format!(
                    "dial udp: lookup {}: no such host",
                    super::tcp::host_of(addr)
                ))
            }
        },
        Ok(Err(e)) => return Outcome::critical(e),
        // Consul counts any timeout as success.
        Err(_) => return success(),
    };
    let local = if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(e) => return Outcome::critical(format!("dial udp {remote}: {}", error_text(&e))),
    };
    if let Err(e) = socket.connect(remote).await {
        return Outcome::critical(format!("dial udp {remote}: connect: {}", error_text(&e)));
    }
    let local = socket
        .local_addr()
        .map_or_else(|_| local.to_owned(), |a| a.to_string());
    if let Err(e) = socket.send(&[]).await {
        return Outcome::critical(format!(
            "write udp {local}->{remote}: write: {}",
            error_text(&e)
        ));
    }
    let mut buf = [0u8; 1];
    match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
        Ok(Ok(_)) | Err(_) => success(),
        Ok(Err(e)) => Outcome::critical(format!(
            "read udp {local}->{remote}: read: {}",
            error_text(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testsupport::within;
    use catalog::Status;

    #[tokio::test]
    async fn silent_listener_is_passing_after_the_timeout() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let out = within(check(&addr, Duration::from_millis(300))).await;
        assert_eq!(
            out,
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
        // The probe's datagram arrived.
        let mut buf = [0u8; 16];
        let (n, _) = within(server.recv_from(&mut buf)).await.unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn replying_server_is_passing() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let (_, from) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(b"pong", from).await.unwrap();
        });
        let out = within(check(&addr, Duration::from_secs(30))).await;
        assert_eq!(
            out,
            Outcome::passing(format!("UDP connect {addr}: Success"))
        );
        within(echo).await.unwrap();
    }

    #[tokio::test]
    async fn closed_port_is_critical() {
        let addr = {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.local_addr().unwrap().to_string()
        };
        let out = within(check(&addr, Duration::from_secs(30))).await;
        assert_eq!(out.status, Status::Critical);
        assert!(
            out.output.starts_with("read udp 127.0.0.1:")
                && out
                    .output
                    .ends_with(&format!("->{addr}: read: connection refused")),
            "{}",
            out.output
        );
    }

    #[tokio::test]
    async fn missing_port_is_critical() {
        let out = within(check("127.0.0.1", Duration::from_secs(5))).await;
        assert_eq!(
            out,
            Outcome::critical("dial udp: address 127.0.0.1: missing port in address")
        );
    }
}
