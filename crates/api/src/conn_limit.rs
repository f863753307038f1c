//! `limits.http_max_conns_per_client`: how many connections one client IP may hold open to the
//! HTTP(S) API at once. Beyond it, a plain HTTP connection gets Consul's 429 and is closed;
//! an HTTPS one is closed before its handshake. Blocking queries hold a connection each, so
//! this is what keeps one client from parking thousands of them on an agent.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What a refused plain-HTTP connection reads before it is closed (Consul's `connlimit`
/// answer).
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 81\r\n\
Connection: close\r\n\
\r\n\
Your IP is issuing too many concurrent connections, please rate limit your calls\n";

/// Open connections per client IP, against a limit (0: none).
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnGuard {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection counts lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnLimiter {
    /// At most `limit` connections per client IP; 0 for no limit.
    pub fn new(limit: usize) -> Self {
        ConnLimiter {
            limit,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when it already holds the limit.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnGuard> {
        let mut open = self.open.lock().expect("connection counts lock");
        let count = open.entry(ip).or_insert(0);
        if self.limit != 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ConnGuard {
            ip,
            open: self.open.clone(),
        })
    }
}

/// A TCP listener for `axum::serve` that admits connections through a [`ConnLimiter`].
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    limiter: ConnLimiter,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, limiter: ConnLimiter) -> Self {
        LimitedListener { listener, limiter }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Counted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(%err, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.limiter.admit(peer.ip()) {
                Some(guard) => {
                    let _ = stream.set_nodelay(true);
                    return (Counted::new(stream, guard), peer);
                }
                None => {
                    tracing::debug!(%peer, "refused an HTTP connection: too many from this client");
                    tokio::spawn(refuse(stream));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Answers Consul's 429 and closes, without reading the request.
async fn refuse(mut stream: TcpStream) {
    let write = async {
        stream.write_all(TOO_MANY).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
}

/// A stream that holds its connection's place until dropped.
#[derive(Debug)]
pub struct Counted<S> {
    stream: S,
    _guard: ConnGuard,
}

impl<S> Counted<S> {
    pub fn new(stream: S, guard: ConnGuard) -> Self {
        Counted {
            stream,
            _guard: guard,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ip_gets_its_own_places_and_dropping_frees_them() {
        let limiter = ConnLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limiter.admit(a).expect("one");
        let _second = limiter.admit(a).expect("two");
        assert!(limiter.admit(a).is_none(), "the third from a is refused");
        assert!(limiter.admit(b).is_some(), "b has places of its own");
        drop(first);
        assert!(
            limiter.admit(a).is_some(),
            "a dropped connection frees its place"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = ConnLimiter::new(0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let guards: Vec<_> = (0..1000).map(|_| limiter.admit(ip)).collect();
        assert!(guards.iter().all(Option::is_some));
    }

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
