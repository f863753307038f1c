//! HTTP checks: one request on a fresh connection (HTTP/1.1, or HTTP/2 when a TLS server
//! picks `h2`), following up to 10 redirects unless disabled. 2xx is passing, 429 warning,
//! anything else critical; the output is Consul's `HTTP <method> <url>: <status> Output:
//! <body>`, keeping the last `output_max` bytes of the body. Transport errors read like Go's
//! `Get "<url>": <reason>`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT,
};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;
use url::{Position, Url};

use super::io::{error_chain, AbortOnDrop, Tail};
use super::tls::{self, Stream, TlsOptions};
use super::{HttpProbe, Outcome};

/// Consul's `User-Agent` for HTTP checks.
const USER_AGENT_VALUE: &str = "Consul Health Check";
/// Consul's default `Accept`.
const ACCEPT_VALUE: &str = "text/plain, text/*, */*";
/// Go's client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;

/// Runs an HTTP check.
pub(crate) async fn check(p: &HttpProbe, timeout: Duration, output_max: usize) -> Outcome {
    let deadline = Instant::now() + timeout;
    let method_text = if p.method.is_empty() {
        "GET"
    } else {
        p.method.as_str()
    };
    let Ok(method) = Method::from_bytes(method_text.as_bytes()) else {
        return Outcome::critical(format!("net/http: invalid method {method_text:?}"));
    };
    let url = match Url::parse(&p.url) {
        Ok(url) => url,
        Err(e) => return Outcome::critical(format!("parse {:?}: {e}", p.url)),
    };
    let op = url_error_op(method_text);
    let exchange = match tokio::time::timeout_at(deadline, exchange(p, method, url)).await {
        Ok(Ok(exchange)) => exchange,
        Ok(Err(failure)) => {
            return Outcome::critical(format!("{op} \"{}\": {}", failure.url, failure.text))
        }
        Err(_) => {
            return Outcome::critical(format!(
                "{op} \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                p.url
            ))
        }
    };
    let (response, _connection) = exchange;
    let status = status_text(&response);
    let code = response.status().as_u16();

    // Like Go's client timeout, the deadline covers reading the body too; whatever arrived
    // before it (or before a read error) is reported.
    let mut body = response.into_body();
    let mut tail = Tail::new(output_max);
    let _ = tokio::time::timeout_at(deadline, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                tail.push(data);
            }
        }
    })
    .await;

    let output = format!(
        "HTTP {method_text} {}: {status} Output: {}",
        p.url,
        tail.text()
    );
    match code {
        200..=299 => Outcome::passing(output),
        429 => Outcome::warning(output),
        _ => Outcome::critical(output),
    }
}

/// Why a request failed, and for which URL (Go's `url.Error`).
#[derive(Debug)]
struct Failure {
    url: String,
    text: String,
}

/// A response and the task driving its connection (aborted when dropped).
type Exchange = (Response<Incoming>, AbortOnDrop);

/// Sends the request, following redirects as Go's client does.
async fn exchange(p: &HttpProbe, mut method: Method, mut url: Url) -> Result<Exchange, Failure> {
    let original_host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let mut body = Bytes::from(p.body.clone());
    let mut host_override = p
        .headers
        .iter()
        .rev()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.clone());
    let mut redirects = 0;
    loop {
        let current_host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let keep_sensitive =
            current_host == original_host || current_host.ends_with(&format!(".{original_host}"));
        let request = Outgoing {
            url: &url,
            method: &method,
            headers: &p.headers,
            keep_sensitive,
            host_override: host_override.as_deref(),
            body: body.clone(),
        };
        let (response, connection) = send(request, p).await.map_err(|text| Failure {
            url: url.to_string(),
            text,
        })?;
        if p.disable_redirects {
            return Ok((response, connection));
        }
        let keep_method = match response.status().as_u16() {
            301..=303 => false,
            307 | 308 => true,
            _ => return Ok((response, connection)),
        };
        let Some(location) = response.headers().get(LOCATION) else {
            return Ok((response, connection));
        };
        let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
        let next = url.join(&location).map_err(|e| Failure {
            url: url.to_string(),
            text: format!("failed to parse Location header {location:?}: {e}"),
        })?;
        if redirects >= MAX_REDIRECTS {
            return Err(Failure {
                url: location,
                text: format!("stopped after {MAX_REDIRECTS} redirects"),
            });
        }
        redirects += 1;
        if !keep_method {
            if method != Method::GET && method != Method::HEAD {
                method = Method::GET;
            }
            body = Bytes::new();
        }
        if next.host_str() != url.host_str() || next.port() != url.port() {
            host_override = None;
        }
        url = next;
    }
}

/// One request to send.
#[derive(Debug)]
struct Outgoing<'a> {
    url: &'a Url,
    method: &'a Method,
    headers: &'a [(String, String)],
    /// Send `Authorization`/`Cookie` (Go drops them on redirects to other domains).
    keep_sensitive: bool,
    host_override: Option<&'a str>,
    body: Bytes,
}

/// Sends one request on a new connection.
async fn send(request: Outgoing<'_>, p: &HttpProbe) -> Result<Exchange, String> {
    let url = request.url;
    let tls = match url.scheme() {
        "http" => None,
        "https" => Some(TlsOptions {
            server_name: &p.tls_server_name,
            skip_verify: p.tls_skip_verify,
            alpn: &[b"h2", b"http/1.1"],
        }),
        other => return Err(format!("unsupported protocol scheme {other:?}")),
    };
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err("http: no Host in request URL".to_owned()),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = tls::open(&format!("{host}:{port}"), tls).await?;
    let h2 = stream.alpn() == Some(b"h2".as_slice());
    let req = build_request(&request, h2)?;
    if h2 {
        send_h2(stream, req).await
    } else {
        send_h1(stream, req).await
    }
}

async fn send_h1(stream: Stream, req: Request<Full<Bytes>>) -> Result<Exchange, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| error_chain(&e))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| error_chain(&e))?;
    Ok((response, driver))
}

async fn send_h2(stream: Stream, req: Request<Full<Bytes>>) -> Result<Exchange, String> {
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| error_chain(&e))?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| error_chain(&e))?;
    Ok((response, driver))
}

/// Headers Go never copies from the user's header map.
const MANAGED: &[&str] = &["host", "content-length", "transfer-encoding", "trailer"];
/// Connection-specific headers HTTP/2 forbids.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
];
/// Headers Go drops when redirected to another domain.
const SENSITIVE: &[&str] = &["authorization", "www-authenticate", "cookie", "cookie2"];

fn build_request(request: &Outgoing<'_>, h2: bool) -> Result<Request<Full<Bytes>>, String> {
    let url = request.url;
    let authority = match request.host_override {
        Some(host) => host.to_owned(),
        None => authority_of(url),
    };
    let path_and_query = &url[Position::BeforePath..Position::AfterQuery];
    let uri = if h2 {
        format!("{}://{authority}{path_and_query}", url.scheme())
    } else {
        path_and_query.to_owned()
    };
    let uri =
        Uri::try_from(uri.as_str()).map_err(|e| format!("invalid request URI {uri:?}: {e}"))?;

    let mut req = Request::new(Full::new(request.body.clone()));
    *req.method_mut() = request.method.clone();
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    for (name, value) in request.headers {
        let lower = name.to_ascii_lowercase();
        if MANAGED.contains(&lower.as_str())
            || (h2 && HOP_BY_HOP.contains(&lower.as_str()))
            || (!request.keep_sensitive && SENSITIVE.contains(&lower.as_str()))
        {
            continue;
        }
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("net/http: invalid header field value for {name:?}"))?;
        headers.append(header, value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
    }
    if !h2 {
        let host = HeaderValue::from_str(&authority)
            .map_err(|_| format!("http: invalid Host header {authority:?}"))?;
        headers.insert(HOST, host);
        // Consul's client disables keep-alives.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let method = request.method;
    if !request.body.is_empty()
        || *method == Method::POST
        || *method == Method::PUT
        || *method == Method::PATCH
    {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
    }
    Ok(req)
}

/// `host[:port]` as the URL spells it (the port only when not the scheme's default).
fn authority_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Go's `resp.Status`: the code and the server's reason phrase (or the standard one).
fn status_text(response: &Response<Incoming>) -> String {
    let code = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| code.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    format!("{} {reason}", code.as_u16())
}

/// Go's `url.Error` operation name for a method: `Get`, `Post`, ...
fn url_error_op(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => std::iter::once(first)
            .chain(chars.map(|c| c.to_ascii_lowercase()))
            .collect(),
        None => "Get".to_owned(),
    }
}

#[cfg(test)]
mod tests;
