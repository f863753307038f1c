//! Watchers for the fan-out benchmark: one plain HTTP/1.1 connection each, spoken by hand.
//!
//! A hand-written client (rather than hyper's) knows exactly when a watcher's request has been
//! written to its socket, which is what the harness waits for before it declares the watchers
//! parked, and it costs the single-threaded load generator little per connection.
//!
//! - [`mesh_watcher`]: `GET /v1/health/service/web?index=N&wait=..`, a Consul blocking query; the
//!   watcher is answered when `web` changes.
//! - [`etcd_watcher`]: `POST /v3/watch` with a `create_request` for key `web` on etcd's JSON
//!   gateway; the answer is a chunked stream of newline-separated JSON messages, the first
//!   `"created":true`, then one per batch of events.
//!
//! Every watcher connects from its own loopback source address ([`watcher_source`]), so no
//! source address carries more than a few dozen connections (and their `TIME_WAIT`s), and keeps
//! its connection open after its answer until the harness drops the outcome, so closing
//! connections is no part of the measured fan-out.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// First host byte of the watchers' source addresses (127.0.0.100..).
const FIRST_SOURCE: u8 = 100;
/// How many source addresses the watchers spread over (127.0.0.100 ..= 127.0.0.249). Clear of
/// the servers: 127.0.0.1 for one server, 127.0.0.41.. and ..51.. for clusters.
const SOURCES: usize = 150;
/// A response head larger than this is refused (ours are well under 1 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// The key every etcd watcher watches, and the Consul service every mesh watcher watches.
pub const WATCHED: &str = "web";

/// The loopback address watcher `i` connects from.
pub fn watcher_source(i: usize) -> Ipv4Addr {
    let host = usize::from(FIRST_SOURCE) + i % SOURCES;
    Ipv4Addr::new(
        127,
        0,
        0,
        u8::try_from(host).expect("the pool ends below 256"),
    )
}

/// Whether `ip` is one of the watchers' source addresses.
pub fn is_watcher_source(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    (a, b, c) == (127, 0, 0)
        && (FIRST_SOURCE..).contains(&d)
        && usize::from(d - FIRST_SOURCE) < SOURCES
}

/// What the watchers of one fan-out share with the harness.
#[derive(Debug)]
pub struct Shared {
    /// Bounds connects in flight, so the server's accept queue does not overflow (which would
    /// cost seconds of SYN retransmits, not measured but slow).
    connecting: Semaphore,
    /// Watchers whose request is completely written to the socket.
    pub written: AtomicUsize,
    /// etcd: watchers whose `"created":true` message has arrived.
    pub created: AtomicUsize,
    /// Watchers that failed (connect, write, read, a bad answer).
    pub failed: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(connects_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            connecting: Semaphore::new(connects_in_flight),
            written: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            first_error: Mutex::new(None),
        })
    }

    fn fail(&self, out: &mut Outcome, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .expect("no panics while holding the lock")
            .get_or_insert_with(|| error.clone());
        out.error = Some(error);
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .expect("no panics while holding the lock")
            .clone()
    }
}

/// What one watcher saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// When its whole request was written.
    pub written_at: Option<Instant>,
    /// mesh: when the whole blocking-query answer had arrived; etcd: when the first message
    /// with events had arrived.
    pub answered_at: Option<Instant>,
    /// mesh: the answer's `X-Consul-Index`.
    pub index: Option<u64>,
    pub error: Option<String>,
    /// Held open until the outcome is dropped.
    pub conn: Option<TcpStream>,
}

/// A TCP connection from `source` (any port) to `server`, without Nagle.
async fn connect_from(source: Ipv4Addr, server: SocketAddrV4) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let stream = socket.connect(server.into()).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects and writes `request`, holding a connect permit meanwhile.
async fn open(
    shared: &Shared,
    out: &mut Outcome,
    source: Ipv4Addr,
    server: SocketAddrV4,
    request: &[u8],
) -> Option<TcpStream> {
    let _permit = shared
        .connecting
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let mut stream = match connect_from(source, server).await {
        Ok(s) => s,
        Err(e) => {
            shared.fail(out, format!("connect {source} -> {server}: {e}"));
            return None;
        }
    };
    if let Err(e) = stream.write_all(request).await {
        shared.fail(out, format!("writing the request: {e}"));
        return None;
    }
    out.written_at = Some(Instant::now());
    shared.written.fetch_add(1, Ordering::Relaxed);
    Some(stream)
}

/// The request of a mesh watcher.
pub fn mesh_request(server: SocketAddrV4, index: u64, wait: &str) -> String {
    format!(
        "GET /v1/health/service/{WATCHED}?index={index}&wait={wait} HTTP/1.1\r\n\
         Host: {server}\r\nUser-Agent: mesh-bench\r\nAccept: */*\r\n\r\n"
    )
}

/// The request of an etcd watcher: a watch stream on exactly the key `web`.
pub fn etcd_request(server: SocketAddrV4) -> String {
    let body = format!(
        r#"{{"create_request":{{"key":"{}"}}}}"#,
        BASE64.encode(WATCHED)
    );
    format!(
        "POST /v3/watch HTTP/1.1\r\nHost: {server}\r\nUser-Agent: mesh-bench\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One mesh watcher: sends its blocking query and waits for the whole answer.
pub async fn mesh_watcher(
    shared: Arc<Shared>,
    source: Ipv4Addr,
    server: SocketAddrV4,
    request: Arc<String>,
) -> Outcome {
    let mut out = Outcome::default();
    let Some(mut stream) = open(&shared, &mut out, source, server, request.as_bytes()).await else {
        return out;
    };
    let mut buf = Vec::with_capacity(4096);
    let mut head: Option<ResponseHead> = None;
    let mut decoded = Vec::new();
    let mut chunked_raw = Vec::new();
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                shared.fail(
                    &mut out,
                    "connection closed before the answer was complete".into(),
                );
                return out;
            }
            Ok(_) => {}
            Err(e) => {
                shared.fail(&mut out, format!("reading the answer: {e}"));
                return out;
            }
        }
        if head.is_none() {
            match parse_head(&buf) {
                Ok(None) => continue,
                Ok(Some(h)) => {
                    buf.drain(..h.len);
                    head = Some(h);
                }
                Err(e) => {
                    shared.fail(&mut out, e);
                    return out;
                }
            }
        }
        let h = head.as_ref().expect("set above");
        let complete = if h.chunked {
            chunked_raw.append(&mut buf);
            match decode_chunks(&mut chunked_raw, &mut decoded) {
                Ok(done) => done,
                Err(e) => {
                    shared.fail(&mut out, e);
                    return out;
                }
            }
        } else {
            match h.content_length {
                Some(len) => buf.len() >= len,
                None => {
                    shared.fail(
                        &mut out,
                        "answer has neither Content-Length nor chunks".into(),
                    );
                    return out;
                }
            }
        };
        if complete {
            break;
        }
    }
    out.answered_at = Some(Instant::now());
    let h = head.expect("complete answers have a head");
    if h.status != 200 {
        let body = if h.chunked { &decoded } else { &buf };
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        shared.fail(&mut out, format!("HTTP {}: {}", h.status, text.trim()));
    }
    out.index = h.consul_index;
    out.conn = Some(stream);
    out
}

/// One etcd watcher: opens its watch stream, counts the `created` message, and waits for the
/// first message with events.
pub async fn etcd_watcher(
    shared: Arc<Shared>,
    source: Ipv4Addr,
    server: SocketAddrV4,
    request: Arc<String>,
) -> Outcome {
    let mut out = Outcome::default();
    let Some(mut stream) = open(&shared, &mut out, source, server, request.as_bytes()).await else {
        return out;
    };
    let mut buf = Vec::with_capacity(4096);
    let mut head_seen = false;
    let mut raw = Vec::new();
    let mut decoded = Vec::new();
    let mut created = false;
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                shared.fail(&mut out, "watch stream closed before an event".into());
                return out;
            }
            Ok(_) => {}
            Err(e) => {
                shared.fail(&mut out, format!("reading the watch stream: {e}"));
                return out;
            }
        }
        if !head_seen {
            match parse_head(&buf) {
                Ok(None) => continue,
                Ok(Some(h)) if h.status == 200 && h.chunked => {
                    buf.drain(..h.len);
                    head_seen = true;
                }
                Ok(Some(h)) => {
                    let body = &buf[h.len..];
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    shared.fail(
                        &mut out,
                        format!(
                            "watch answered HTTP {} (chunked: {}): {text}",
                            h.status, h.chunked
                        ),
                    );
                    return out;
                }
                Err(e) => {
                    shared.fail(&mut out, e);
                    return out;
                }
            }
        }
        raw.append(&mut buf);
        let ended = match decode_chunks(&mut raw, &mut decoded) {
            Ok(ended) => ended,
            Err(e) => {
                shared.fail(&mut out, e);
                return out;
            }
        };
        for line in take_lines(&mut decoded) {
            match classify_etcd(&line) {
                EtcdMessage::Created if !created => {
                    created = true;
                    shared.created.fetch_add(1, Ordering::Relaxed);
                }
                EtcdMessage::Created => {
                    shared.fail(&mut out, "a second created message".into());
                    return out;
                }
                EtcdMessage::Events(_) if created => {
                    out.answered_at = Some(Instant::now());
                    out.conn = Some(stream);
                    return out;
                }
                EtcdMessage::Progress => {}
                other => {
                    shared.fail(&mut out, format!("unexpected watch message: {other:?}"));
                    return out;
                }
            }
        }
        if ended {
            shared.fail(&mut out, "watch stream ended before an event".into());
            return out;
        }
    }
}

/// One request on `stream` (already connected) from a plain thread, timed independently of
/// the watchers' runtime: returns when the request was sent, when the whole answer had
/// arrived, its status and its body.
pub fn timed_exchange(
    mut stream: std::net::TcpStream,
    request: &[u8],
) -> Result<(Instant, Instant, u16, Vec<u8>), String> {
    use std::io::{Read as _, Write as _};
    let sent = Instant::now();
    stream
        .write_all(request)
        .map_err(|e| format!("writing the request: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut head: Option<ResponseHead> = None;
    let (mut raw, mut decoded) = (Vec::new(), Vec::new());
    loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err("connection closed before the answer was complete".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            let Some(h) = parse_head(&buf)? else { continue };
            buf.drain(..h.len);
            head = Some(h);
        }
        let h = head.as_ref().expect("set above");
        if h.chunked {
            raw.append(&mut buf);
            if decode_chunks(&mut raw, &mut decoded)? {
                return Ok((sent, Instant::now(), h.status, decoded));
            }
        } else {
            let len = h
                .content_length
                .ok_or("answer has neither Content-Length nor chunks")?;
            if buf.len() >= len {
                buf.truncate(len);
                return Ok((sent, Instant::now(), h.status, buf));
            }
        }
    }
}

/// The status line and headers of an HTTP/1.1 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Length of the head in bytes, the blank line included.
    pub len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub consul_index: Option<u64>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!(
                "no end of the response head in {} bytes",
                buf.len()
            ));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|e| format!("response head: {e}"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(format!("not an HTTP/1 status line: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("no status code in {status_line:?}"))?;
    let mut head = ResponseHead {
        status,
        len: end + 4,
        content_length: None,
        chunked: false,
        consul_index: None,
    };
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line {line:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        let number = |what: &str| {
            value
                .parse()
                .map_err(|_| format!("{what} {value:?} is not a number"))
        };
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(number("Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("x-consul-index") {
            head.consul_index = Some(number("X-Consul-Index")? as u64);
        }
    }
    Ok(Some(head))
}

/// Moves every complete chunk at the front of `raw` (a chunked body) into `out` and removes it
/// from `raw`. Returns `true` once the last, empty chunk has been read (trailers are ignored).
pub fn decode_chunks(raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<bool, String> {
    let mut pos = 0;
    let result = loop {
        let Some(line_len) = find(&raw[pos..], b"\r\n") else {
            if raw.len() - pos > 1024 {
                break Err("chunk size line longer than 1 KiB".to_owned());
            }
            break Ok(false);
        };
        let line = &raw[pos..pos + line_len];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let size_text = String::from_utf8_lossy(size_text);
        let Ok(size) = usize::from_str_radix(size_text.trim(), 16) else {
            break Err(format!("bad chunk size {size_text:?}"));
        };
        let data = pos + line_len + 2;
        if size == 0 {
            // Optional trailer lines, then an empty line.
            let Some(end) = find(&raw[pos + line_len..], b"\r\n\r\n") else {
                break Ok(false);
            };
            pos += line_len + end + 4;
            break Ok(true);
        }
        if raw.len() < data + size + 2 {
            break Ok(false);
        }
        if &raw[data + size..data + size + 2] != b"\r\n" {
            break Err("chunk data not followed by CRLF".to_owned());
        }
        out.extend_from_slice(&raw[data..data + size]);
        pos = data + size + 2;
    };
    raw.drain(..pos);
    result
}

/// Removes every complete `\n`-terminated line from the front of `buf` and returns them
/// without the newline; empty lines are dropped.
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let Some(last) = buf.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let lines = buf[..last]
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect();
    buf.drain(..=last);
    lines
}

/// One message of an etcd watch stream on the JSON gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdMessage {
    /// `{"result":{"header":..,"created":true}}`: the watch is registered.
    Created,
    /// A result with this many events.
    Events(usize),
    /// A result with neither (a progress notification).
    Progress,
    /// The watch was canceled, with the reason.
    Canceled(String),
    /// An error object or something else.
    Error(String),
}

/// Classifies one line of an etcd watch stream.
pub fn classify_etcd(line: &[u8]) -> EtcdMessage {
    let v: serde_json::Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return EtcdMessage::Error(format!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            ))
        }
    };
    let Some(result) = v.get("result") else {
        return EtcdMessage::Error(v.to_string());
    };
    if result.get("canceled").and_then(serde_json::Value::as_bool) == Some(true) {
        let reason = result
            .get("cancel_reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no reason given");
        return EtcdMessage::Canceled(reason.to_owned());
    }
    let events = result
        .get("events")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    if events > 0 {
        EtcdMessage::Events(events)
    } else if result.get("created").and_then(serde_json::Value::as_bool) == Some(true) {
        EtcdMessage::Created
    } else {
        EtcdMessage::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_the_pool_and_clear_of_the_servers() {
        assert_eq!(watcher_source(0), Ipv4Addr::new(127, 0, 0, 100));
        assert_eq!(watcher_source(149), Ipv4Addr::new(127, 0, 0, 249));
        assert_eq!(watcher_source(150), Ipv4Addr::new(127, 0, 0, 100));
        assert!((0..10_000).all(|i| is_watcher_source(watcher_source(i))));
        for not in [
            [127, 0, 0, 1],
            [127, 0, 0, 41],
            [127, 0, 0, 99],
            [127, 0, 0, 250],
            [10, 0, 0, 100],
        ] {
            assert!(!is_watcher_source(Ipv4Addr::from(not)), "{not:?}");
        }
    }

    #[test]
    fn heads_with_content_length_and_consul_index() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Consul-Index: 42\r\n\
                       content-length: 2\r\n\r\n[]";
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(
            head,
            ResponseHead {
                status: 200,
                len: answer.len() - 2,
                content_length: Some(2),
                chunked: false,
                consul_index: Some(42),
            }
        );
        assert_eq!(parse_head(&answer[..20]), Ok(None));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        let chunked = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(chunked.chunked);
        assert_eq!(chunked.content_length, None);
    }

    #[test]
    fn chunks_decode_across_any_split() {
        let first: Vec<u8> = (0..0x8d_u8).map(|i| b'a' + i % 26).chain([b'\n']).collect();
        let mut body = format!("{:x};ext=1\r\n", first.len()).into_bytes();
        body.extend_from_slice(&first);
        body.extend_from_slice(b"\r\n3\r\nxyz\r\n0\r\nTrailer: x\r\n\r\n");
        let expected: Vec<u8> = first.iter().chain(b"xyz").copied().collect();
        for split in 0..body.len() {
            let (mut raw, mut out) = (body[..split].to_vec(), Vec::new());
            assert!(!decode_chunks(&mut raw, &mut out).unwrap() || split == body.len());
            raw.extend_from_slice(&body[split..]);
            assert!(
                decode_chunks(&mut raw, &mut out).unwrap(),
                "split at {split}"
            );
            assert_eq!(out, expected, "split at {split}");
            assert!(raw.is_empty());
        }
        let (mut bad, mut out) = (b"zz\r\n".to_vec(), Vec::new());
        assert!(decode_chunks(&mut bad, &mut out).is_err());
        let (mut no_crlf, mut out) = (b"1\r\nabc".to_vec(), Vec::new());
        assert!(decode_chunks(&mut no_crlf, &mut out).is_err());
    }

    #[test]
    fn lines_are_taken_only_when_complete() {
        let mut buf = b"{\"a\":1}\n\n{\"b\":2}\n{\"c\"".to_vec();
        assert_eq!(
            take_lines(&mut buf),
            [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(buf, b"{\"c\"");
        assert!(take_lines(&mut buf).is_empty());
        buf.extend_from_slice(b":3}\n");
        assert_eq!(take_lines(&mut buf), [b"{\"c\":3}".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn etcd_messages_as_the_34_gateway_sends_them() {
        let header =
            r#""header":{"cluster_id":"1","member_id":"2","revision":"2","raft_term":"2"}"#;
        let created = format!(r#"{{"result":{{{header},"created":true}}}}"#);
        let event = format!(
            r#"{{"result":{{{header},"events":[{{"kv":{{"key":"d2Vi","mod_revision":"2","value":"eA=="}}}}]}}}}"#
        );
        let progress = format!(r#"{{"result":{{{header}}}}}"#);
        let canceled =
            format!(r#"{{"result":{{{header},"canceled":true,"cancel_reason":"compacted"}}}}"#);
        assert_eq!(classify_etcd(created.as_bytes()), EtcdMessage::Created);
        assert_eq!(classify_etcd(event.as_bytes()), EtcdMessage::Events(1));
        assert_eq!(classify_etcd(progress.as_bytes()), EtcdMessage::Progress);
        assert_eq!(
            classify_etcd(canceled.as_bytes()),
            EtcdMessage::Canceled("compacted".into())
        );
        assert!(matches!(
            classify_etcd(br#"{"error":{"grpc_code":14,"message":"unavailable"}}"#),
            EtcdMessage::Error(_)
        ));
        assert!(matches!(classify_etcd(b"nope"), EtcdMessage::Error(_)));
    }

    #[test]
    fn requests_name_the_watched_service_and_key() {
        let server: SocketAddrV4 = "127.0.0.1:8500".parse().unwrap();
        let mesh = mesh_request(server, 17, "5m");
        assert!(mesh.starts_with("GET /v1/health/service/web?index=17&wait=5m HTTP/1.1\r\n"));
        assert!(mesh.ends_with("\r\n\r\n"));
        let etcd = etcd_request(server);
        let (head, body) = etcd.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, r#"{"create_request":{"key":"d2Vi"}}"#);
    }
}
