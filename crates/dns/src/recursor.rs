//! Forwarding questions outside the mesh domains to the configured recursors.
//!
//! The client's query is sent as it came (a fresh message ID aside) to each recursor in turn:
//! over UDP, then over TCP when the UDP answer is truncated. A recursor that does not answer in
//! `recursor_timeout`, or answers with anything but NOERROR or NXDOMAIN, is skipped.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

/// Why no recursor answered.
#[derive(Debug, thiserror::Error)]
#[error("no recursor answered ({tried} tried); last: {last}")]
pub(crate) struct RecurseError {
    tried: usize,
    #[source]
    last: AskError,
}

/// Why one recursor gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AskError {
    #[error("no recursor configured")]
    NoneConfigured,
    #[error("{recursor}: {source}")]
    Io {
        recursor: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{recursor}: no {transport} answer in {timeout:?}")]
    Timeout {
        recursor: SocketAddr,
        transport: &'static str,
        timeout: Duration,
    },
    #[error("{recursor}: undecodable answer: {reason}")]
    Decode {
        recursor: SocketAddr,
        reason: String,
    },
    #[error("{recursor} answered {rcode}")]
    Rcode {
        recursor: SocketAddr,
        rcode: ResponseCode,
    },
}

/// Asks each recursor in turn; the first usable answer wins.
pub(crate) async fn recurse(
    query: &[u8],
    recursors: &[SocketAddr],
    timeout: Duration,
) -> Result<Message, RecurseError> {
    let mut last = AskError::NoneConfigured;
    let mut query = query.to_vec();
    for recursor in recursors {
        let id: u16 = rand::random();
        query[..2].copy_from_slice(&id.to_be_bytes());
        match ask(&query, id, *recursor, timeout).await {
            Ok(reply)
                if matches!(
                    reply.metadata.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
            {
                return Ok(reply);
            }
            Ok(reply) => {
                last = AskError::Rcode {
                    recursor: *recursor,
                    rcode: reply.metadata.response_code,
                };
            }
            Err(error) => last = error,
        }
        debug!(error = %last, "recursor failed");
    }
    Err(RecurseError {
        tried: recursors.len(),
        last,
    })
}

async fn ask(
    query: &[u8],
    id: u16,
    recursor: SocketAddr,
    timeout: Duration,
) -> Result<Message, AskError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = |transport| AskError::Timeout {
        recursor,
        transport,
        timeout,
    };
    let io = |source| AskError::Io { recursor, source };
    let reply = tokio::time::timeout_at(deadline, udp(query, id, recursor))
        .await
        .map_err(|_| timed_out("UDP"))?
        .map_err(io)?;
    // The TC bit, in the header's third byte.
    let reply = if reply[2] & 0x02 != 0 {
        tokio::time::timeout_at(deadline, tcp(query, id, recursor))
            .await
            .map_err(|_| timed_out("TCP"))?
            .map_err(io)?
    } else {
        reply
    };
    Message::from_vec(&reply).map_err(|e| AskError::Decode {
        recursor,
        reason: e.to_string(),
    })
}

/// The first datagram from `recursor` that answers message `id`.
async fn udp(query: &[u8], id: u16, recursor: SocketAddr) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if recursor.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // A connected socket only receives datagrams from the recursor.
    socket.connect(recursor).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let len = socket.recv(&mut buf).await?;
        // A datagram that does not answer this query is ignored, not trusted.
        if len >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

/// The answer to `query` over a TCP connection (RFC 1035 section 4.2.2 framing).
async fn tcp(query: &[u8], id: u16, recursor: SocketAddr) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(recursor).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    if buf.len() < 12 || buf[..2] != id.to_be_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer to another message",
        ));
    }
    Ok(buf)
}
