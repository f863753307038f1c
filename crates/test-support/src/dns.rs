//! A DNS client for tests: one question over UDP or TCP, bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(10);

/// A query for `name` of type `kind`, with EDNS advertising `edns` bytes when given.
pub fn question(name: &str, kind: RecordType, edns: Option<u16>) -> anyhow::Result<Message> {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, kind));
    if let Some(size) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(size);
        message.set_edns(opt);
    }
    Ok(message)
}

fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos & 0xffff) as u16
}

/// Asks `server` over UDP.
pub async fn udp(server: SocketAddr, query: &Message) -> anyhow::Result<Message> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => "127.0.0.1:0".parse()?,
        SocketAddr::V6(_) => "[::1]:0".parse()?,
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&query.to_vec()?).await?;
    let mut buf = vec![0; 65535];
    let len = tokio::time::timeout(BOUND, socket.recv(&mut buf))
        .await
        .context("no DNS answer over UDP in time")??;
    Ok(Message::from_vec(&buf[..len])?)
}

/// Asks `server` over TCP.
pub async fn tcp(server: SocketAddr, query: &Message) -> anyhow::Result<Message> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let bytes = query.to_vec()?;
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await?;
        stream.write_all(&bytes).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        anyhow::Ok(Message::from_vec(&buf)?)
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .context("no DNS answer over TCP in time")?
}
