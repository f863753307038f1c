//! The load generator, on the caller's single-threaded runtime: keep-alive HTTP/1.1
//! connections paced at a fixed rate or in a closed loop, a new connection per request, bulk
//! streams, and idle connections held open.
//!
//! Connections are opened (and each checked with one request) before a measurement starts, so
//! that the caller can read the proxies' CPU around the traffic alone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use futures::stream::{self, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::backend::{BODY_BYTES, BULK_HELLO};

/// A connection attempt that takes longer fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request that takes longer fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A paced request sent later than this after its time counts as late.
const LATE: Duration = Duration::from_millis(2);
/// Each bulk stream's read buffer.
const BULK_BUFFER: usize = 256 * 1024;

/// One keep-alive HTTP/1.1 connection.
pub type Sender = SendRequest<Empty<Bytes>>;

/// What one measurement did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Requests answered 200 with the 1 KiB body (connections, for new-connection runs).
    pub ok: u64,
    pub errors: u64,
    /// Bulk bytes received.
    pub bytes: u64,
    /// Latency of every successful request in µs, ascending (not written to JSON).
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
    /// Paced requests sent more than 2 ms after their time (the rate was not held).
    pub late: u64,
    pub elapsed_secs: f64,
    pub first_error: Option<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.late += other.late;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn failed(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    fn merged(parts: Vec<Outcome>, started: Instant) -> Outcome {
        let mut out = Outcome::default();
        for part in parts {
            out.merge(part);
        }
        out.latencies_us.sort_unstable();
        out.elapsed_secs = started.elapsed().as_secs_f64();
        out
    }
}

/// Opens a connection and its HTTP/1.1 session; the connection closes when the sender drops.
pub async fn connect(entry: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tcp(entry).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {entry}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; a failure shows as a failed
        // request.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn tcp(entry: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(entry))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {entry}: no answer in {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("connecting to {entry}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One `GET /`, which must be answered 200 with the backend's 1 KiB body.
pub async fn request(sender: &mut Sender) -> Result<(), String> {
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let req = Request::get("/")
            .header(hyper::header::HOST, "echo")
            .body(Empty::new())
            .expect("a GET is built from valid parts");
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if status != hyper::StatusCode::OK || body.len() != BODY_BYTES {
            return Err(format!("HTTP {status} with {} body bytes", body.len()));
        }
        Ok(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
}

/// A new connection with one request on it, kept.
pub async fn connect_and_request(entry: SocketAddr) -> Result<Sender, String> {
    let mut sender = connect(entry).await.map_err(|e| format!("{e:#}"))?;
    request(&mut sender).await?;
    Ok(sender)
}

/// Keep-alive connections for the request measurements.
#[derive(Debug)]
pub struct KeepAlive {
    senders: Vec<Sender>,
}

impl KeepAlive {
    /// Opens `n` connections, each checked with one request.
    pub async fn open(entry: SocketAddr, n: usize) -> anyhow::Result<KeepAlive> {
        let opened = futures::future::join_all((0..n).map(|_| connect_and_request(entry))).await;
        let mut senders = Vec::with_capacity(n);
        for s in opened {
            match s {
                Ok(s) => senders.push(s),
                Err(e) => bail!("opening {n} keep-alive connections to {entry}: {e}"),
            }
        }
        Ok(KeepAlive { senders })
    }

    /// `rate` requests per second spread evenly over the connections (each sends at its own
    /// fixed times, one request in flight at most), for `duration`. Latency counts from the
    /// moment a request is sent; requests sent late because the previous answer was slow are
    /// counted in [`Outcome::late`].
    pub async fn fixed_rate(&mut self, rate: u64, duration: Duration) -> Outcome {
        let started = Instant::now();
        let deadline = started + duration;
        let conns = self.senders.len() as u32;
        let interval = Duration::from_secs_f64(f64::from(conns) / rate as f64);
        let offset = Duration::from_secs_f64(1.0 / rate as f64);
        let parts = futures::future::join_all(
            self.senders
                .iter_mut()
                .zip(0u32..)
                .map(|(sender, i)| paced(sender, started + offset * i, interval, deadline)),
        )
        .await;
        Outcome::merged(parts, started)
    }

    /// Every connection sends its next request as soon as the last is answered.
    pub async fn closed_loop(&mut self, duration: Duration) -> Outcome {
        let started = Instant::now();
        let deadline = started + duration;
        let parts = futures::future::join_all(
            self.senders
                .iter_mut()
                .map(|sender| back_to_back(sender, deadline)),
        )
        .await;
        Outcome::merged(parts, started)
    }
}

async fn paced(
    sender: &mut Sender,
    first: Instant,
    interval: Duration,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome::default();
    for k in 0u32.. {
        let due = first + interval * k;
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        if sent.saturating_duration_since(due) > LATE {
            out.late += 1;
        }
        match request(sender).await {
            Ok(()) => {
                out.ok += 1;
                out.latencies_us.push(sent.elapsed().as_micros() as u64);
            }
            Err(e) => {
                // The connection is broken: this worker is done.
                out.failed(e);
                break;
            }
        }
    }
    out
}

async fn back_to_back(sender: &mut Sender, deadline: Instant) -> Outcome {
    let mut out = Outcome::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        match request(sender).await {
            Ok(()) => {
                out.ok += 1;
                out.latencies_us.push(sent.elapsed().as_micros() as u64);
            }
            Err(e) => {
                out.failed(e);
                break;
            }
        }
    }
    out
}

/// `concurrency` workers, each opening a new connection, sending one request on it and
/// closing it, again and again for `duration`. Latency covers connect to answer.
pub async fn new_connections(entry: SocketAddr, concurrency: usize, duration: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let worker = || async move {
        let mut out = Outcome::default();
        while Instant::now() < deadline {
            let sent = Instant::now();
            match connect_and_request(entry).await {
                Ok(sender) => {
                    drop(sender);
                    out.ok += 1;
                    out.latencies_us.push(sent.elapsed().as_micros() as u64);
                }
                Err(e) => {
                    out.failed(e);
                    // A refusing proxy answers at once; do not spin a core on refusals.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        out
    };
    let parts = futures::future::join_all((0..concurrency).map(|_| worker())).await;
    Outcome::merged(parts, started)
}

/// Connections streaming from the backend's bulk source.
#[derive(Debug)]
pub struct BulkStreams {
    streams: Vec<TcpStream>,
}

impl BulkStreams {
    /// Opens `n` streams and waits until bytes flow on each.
    pub async fn open(entry: SocketAddr, n: usize) -> anyhow::Result<BulkStreams> {
        let one = || async move {
            let mut stream = tcp(entry).await?;
            stream.write_all(BULK_HELLO).await?;
            let mut first = [0u8; 1];
            let read = tokio::time::timeout(REQUEST_TIMEOUT, stream.read(&mut first))
                .await
                .map_err(|_| anyhow::anyhow!("no bulk bytes within {REQUEST_TIMEOUT:?}"))??;
            if read == 0 {
                bail!("the bulk stream closed at once");
            }
            Ok::<_, anyhow::Error>(stream)
        };
        let streams = futures::future::join_all((0..n).map(|_| one()))
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("opening {n} bulk streams through {entry}"))?;
        Ok(BulkStreams { streams })
    }

    /// Reads from every stream for `duration`; [`Outcome::bytes`] is what arrived.
    pub async fn read_for(&mut self, duration: Duration) -> Outcome {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + duration);
        let parts = futures::future::join_all(self.streams.iter_mut().map(|stream| async move {
            let mut out = Outcome::default();
            let mut buf = vec![0u8; BULK_BUFFER];
            let stop = tokio::time::sleep_until(deadline);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    read = stream.read(&mut buf) => match read {
                        Ok(0) => {
                            out.failed("the bulk stream closed".to_owned());
                            break;
                        }
                        Ok(n) => out.bytes += n as u64,
                        Err(e) => {
                            out.failed(format!("bulk read: {e}"));
                            break;
                        }
                    },
                }
            }
            out
        }))
        .await;
        Outcome::merged(parts, started)
    }
}

/// Idle keep-alive connections held open through a pair, each used for one request.
#[derive(Debug, Default)]
pub struct IdleConns {
    senders: Vec<Sender>,
}

impl IdleConns {
    /// Connections open now.
    pub fn opened(&self) -> usize {
        self.senders.len()
    }

    /// Opens connections, `concurrency` at a time, until `n` are open. Failed attempts are
    /// not retried: the result is how many failed and the first error.
    pub async fn grow_to(
        &mut self,
        entry: SocketAddr,
        n: usize,
        concurrency: usize,
    ) -> (u64, Option<String>) {
        let missing = n.saturating_sub(self.senders.len());
        let mut attempts = stream::iter(0..missing)
            .map(|_| connect_and_request(entry))
            .buffer_unordered(concurrency.max(1));
        let (mut failed, mut first_error) = (0, None);
        while let Some(attempt) = attempts.next().await {
            match attempt {
                Ok(sender) => self.senders.push(sender),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        (failed, first_error)
    }

    /// Closes every connection.
    pub fn close(&mut self) {
        self.senders.clear();
    }
}
