//! The application behind every proxy pair, in the bench process: an HTTP/1.1 server that
//! answers every request with a 1 KiB body, and on the same port a bulk source for throughput
//! runs. A connection whose first byte is `B` (no HTTP method starts with it) sends
//! [`BULK_HELLO`] and then receives bytes until it closes; every other connection is HTTP.
//!
//! It counts its open connections, so the benchmark can wait (bounded) until a pair has opened
//! or closed every connection to it, instead of sleeping.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The size of every HTTP answer's body.
pub const BODY_BYTES: usize = 1024;
/// What a bulk client sends first.
pub const BULK_HELLO: &[u8] = b"BULK\n";
/// The bulk source's writes.
const BULK_CHUNK: usize = 64 * 1024;

/// The backend's accept loop, running on the caller's runtime until dropped.
#[derive(Debug)]
pub struct Backend {
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Backend> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the backend on {addr}"))?;
        let open = Arc::new(AtomicUsize::new(0));
        let body = Bytes::from(vec![b'x'; BODY_BYTES]);
        let chunk = Bytes::from(vec![0x5a; BULK_CHUNK]);
        let task = tokio::spawn(accept_loop(listener, open.clone(), body, chunk));
        Ok(Backend { open, task })
    }

    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decrements the open-connection count when a connection's task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, open: Arc<AtomicUsize>, body: Bytes, chunk: Bytes) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: the connection waits in the backlog.
                eprintln!("  backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        open.fetch_add(1, Ordering::Relaxed);
        let guard = Open(open.clone());
        let (body, chunk) = (body.clone(), chunk.clone());
        tokio::spawn(async move {
            let _guard = guard;
            // The proxies forward bytes, not connections' errors; a failed connection shows
            // up as a failed request on the client's side.
            let _ = serve(stream, body, chunk).await;
        });
    }
}

async fn serve(stream: TcpStream, body: Bytes, chunk: Bytes) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(());
    }
    if first[0] == BULK_HELLO[0] {
        return bulk(stream, chunk).await;
    }
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

/// Reads the hello, then writes until the client goes away.
async fn bulk(mut stream: TcpStream, chunk: Bytes) -> anyhow::Result<()> {
    let mut hello = [0u8; BULK_HELLO.len()];
    stream.read_exact(&mut hello).await?;
    anyhow::ensure!(hello == BULK_HELLO, "not a bulk hello: {hello:?}");
    loop {
        stream.write_all(&chunk).await?;
    }
}
