//! A client of serf's RPC protocol (the one `serf members` speaks): MessagePack values on one TCP
//! connection, a `handshake` first, then `members` as often as the harness polls.
//!
//! Polling through the RPC rather than the CLI keeps a sweep over fifty agents within the
//! 50 ms poll period (a `serf members` process per agent per sweep would not), on one kept-open
//! connection per agent as mesh's agents are polled over kept-alive HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::members::{serf_members, MemberView};
use super::msgpack::{self, Scalar, Value};

/// serf's only IPC version.
const IPC_VERSION: u64 = 1;
/// Largest response accepted (a members list of a few hundred agents is far smaller).
const MAX_RESPONSE: usize = 16 << 20;

/// One open RPC connection to a serf agent.
#[derive(Debug)]
pub struct SerfRpc {
    stream: TcpStream,
    seq: u64,
    buf: Vec<u8>,
}

impl SerfRpc {
    /// Connects and handshakes, within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Self> {
        tokio::time::timeout(timeout, async {
            let stream = TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to serf RPC at {addr}"))?;
            stream.set_nodelay(true).context("setting TCP_NODELAY")?;
            let mut rpc = SerfRpc {
                stream,
                seq: 0,
                buf: Vec::new(),
            };
            let body = msgpack::encode_map(&[("Version", Scalar::Uint(IPC_VERSION))]);
            rpc.call("handshake", Some(&body)).await?;
            Ok(rpc)
        })
        .await
        .with_context(|| format!("serf RPC handshake with {addr} took longer than {timeout:?}"))?
    }

    /// Every member the agent knows, within `timeout`.
    pub async fn members(&mut self, timeout: Duration) -> anyhow::Result<Vec<MemberView>> {
        tokio::time::timeout(timeout, async {
            self.call("members", None).await?;
            let body = self.read_value().await?;
            serf_members(&body)
        })
        .await
        .context("serf RPC members took too long")?
    }

    /// Sends one request and reads its response header; fails on a serf error.
    async fn call(&mut self, command: &str, body: Option<&[u8]>) -> anyhow::Result<()> {
        let seq = self.seq;
        self.seq += 1;
        let mut out = msgpack::encode_map(&[
            ("Command", Scalar::Str(command)),
            ("Seq", Scalar::Uint(seq)),
        ]);
        if let Some(body) = body {
            out.extend_from_slice(body);
        }
        self.stream
            .write_all(&out)
            .await
            .with_context(|| format!("sending serf RPC {command}"))?;
        let header = self.read_value().await?;
        check_header(&header, seq).with_context(|| format!("serf RPC {command}"))
    }

    /// The next MessagePack value on the connection.
    async fn read_value(&mut self) -> anyhow::Result<Value> {
        loop {
            if let Some((value, used)) = msgpack::decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(value);
            }
            if self.buf.len() > MAX_RESPONSE {
                bail!("serf RPC response larger than {MAX_RESPONSE} bytes");
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .context("reading from serf RPC")?;
            if n == 0 {
                bail!("serf closed the RPC connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A response header must answer request `seq` with an empty `Error`.
pub fn check_header(header: &Value, seq: u64) -> anyhow::Result<()> {
    msgpack::expect_map(header, "response header")?;
    let got = header.get("Seq").and_then(Value::as_int);
    if got != Some(i128::from(seq)) {
        bail!("response header answers Seq {got:?}, expected {seq}");
    }
    match header.get("Error").and_then(Value::as_str) {
        None | Some("") => Ok(()),
        Some(error) => bail!("serf answered: {error}"),
    }
}
