//! Consul's KV API over HTTP/1 (hyper), reduced to what the history needs: read a key's value
//! and `ModifyIndex`, write, and `?cas=` write, each with a deadline and a classified failure.
//!
//! A client reaches its server either directly (loopback mode) or, when the servers run in
//! network namespaces, over sockets opened inside the server's namespace: a short-lived thread
//! `setns`es into it and creates the socket there, so the connection goes to 127.0.0.1 of that
//! namespace whatever the state of the bridge (the same path `ip netns exec ... curl` takes);
//! the connector is `test_support::in_netns`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use linearizability::Value;
use test_support::in_netns::Connector;

/// How long opening a connection may take before the request counts as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a server's HTTP API is, as seen from this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The network namespace (its `/var/run/netns/<name>` file) whose `addr` this is; `None`
    /// for this process's own namespace.
    pub netns: Option<PathBuf>,
}

/// Why a request has no definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Definitely not applied: the connection was refused, or the server answered 4xx.
    Refused(String),
    /// May or may not have been applied: timeout, 5xx (including "No cluster leader", which a
    /// follower reports after forwarding may already have reached the leader), connection lost.
    Indeterminate(String),
}

/// A key as read: its value and `ModifyIndex`, or absent.
pub type Read = Option<(Value, u64)>;

/// A keep-alive client for one server.
#[derive(Debug, Clone)]
pub struct KvClient {
    base: String,
    http: Client<Connector, Full<Bytes>>,
}

impl KvClient {
    pub fn new(endpoint: &Endpoint) -> Self {
        let connector = Connector::new(endpoint.netns.clone(), CONNECT_TIMEOUT);
        KvClient {
            base: format!("http://{}", endpoint.addr),
            http: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .body(Full::new(body))
            .map_err(|e| Failure::Refused(format!("building the request: {e}")))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| {
                if e.is_connect() {
                    Failure::Refused(format!("connect: {e}"))
                } else {
                    Failure::Indeterminate(format!("connection: {e}"))
                }
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::Indeterminate(format!("reading the body: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Failure::Indeterminate(format!("no answer within {timeout:?}")))??;
        let text = || String::from_utf8_lossy(&body).trim().to_owned();
        if status.is_server_error() {
            return Err(Failure::Indeterminate(format!("{status}: {}", text())));
        }
        if status.is_client_error() && status != StatusCode::NOT_FOUND {
            return Err(Failure::Refused(format!("{status}: {}", text())));
        }
        Ok((status, body))
    }

    /// `GET /v1/kv/<key>` with `consistency` (`""`, `"consistent"` or `"stale"`).
    pub async fn read(
        &self,
        key: &str,
        consistency: &str,
        timeout: Duration,
    ) -> Result<Read, Failure> {
        let query = if consistency.is_empty() {
            String::new()
        } else {
            format!("?{consistency}")
        };
        let (status, body) = self
            .request(
                Method::GET,
                &format!("/v1/kv/{key}{query}"),
                Bytes::new(),
                timeout,
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        parse_entry(&body)
            .map(Some)
            .map_err(|e| Failure::Indeterminate(format!("unexpected GET body: {e}")))
    }

    /// `PUT /v1/kv/<key>[?cas=<index>]` with `value`; the server's `true`/`false`.
    pub async fn write(
        &self,
        key: &str,
        value: Value,
        cas_index: Option<u64>,
        timeout: Duration,
    ) -> Result<bool, Failure> {
        let query = cas_index.map_or_else(String::new, |i| format!("?cas={i}"));
        let (status, body) = self
            .request(
                Method::PUT,
                &format!("/v1/kv/{key}{query}"),
                Bytes::from(value.to_string()),
                timeout,
            )
            .await?;
        match (status, body.as_ref()) {
            (StatusCode::OK, b"true") => Ok(true),
            (StatusCode::OK, b"false") => Ok(false),
            _ => Err(Failure::Indeterminate(format!(
                "unexpected PUT answer {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// The leader's RPC address as this server reports it (`?stale`), if it knows one.
    pub async fn leader(&self) -> Option<String> {
        let (status, body) = self
            .request(
                Method::GET,
                "/v1/status/leader?stale",
                Bytes::new(),
                Duration::from_millis(500),
            )
            .await
            .ok()?;
        let leader: String = serde_json::from_slice(&body).ok()?;
        (status == StatusCode::OK && !leader.is_empty()).then_some(leader)
    }
}

/// `[{"Value": base64("<decimal>"), "ModifyIndex": n, ...}]` → `(value, n)`.
fn parse_entry(body: &[u8]) -> Result<(Value, u64), String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let entry = json.get(0).ok_or("not a one-entry array")?;
    let index = entry["ModifyIndex"].as_u64().ok_or("no ModifyIndex")?;
    let encoded = entry["Value"].as_str().ok_or("no Value")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| e.to_string())?;
    let value = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("value {raw:?} is not a number this harness wrote"))?;
    Ok((value, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_to_value_and_index() {
        let body = br#"[{"Key":"k","Value":"NDI=","ModifyIndex":17,"CreateIndex":3}]"#;
        assert_eq!(parse_entry(body), Ok((42, 17)));
        assert!(parse_entry(b"[]").is_err());
        assert!(parse_entry(br#"[{"Value":"eA==","ModifyIndex":1}]"#).is_err());
    }

    #[tokio::test]
    async fn a_namespace_that_cannot_be_entered_refuses_the_request() {
        let client = KvClient::new(&Endpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], 8500)),
            netns: Some(PathBuf::from("/nonexistent/netns/mesh-jepsen-test")),
        });
        let read = client.read("k", "", Duration::from_secs(5)).await;
        assert!(matches!(read, Err(Failure::Refused(_))), "{read:?}");
        // Nothing was sent, so a write is definitely not applied either.
        let write = client.write("k", 1, None, Duration::from_secs(5)).await;
        assert!(matches!(write, Err(Failure::Refused(_))), "{write:?}");
    }
}
