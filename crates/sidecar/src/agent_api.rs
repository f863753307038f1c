//! The sidecar's only source of configuration: the local agent's HTTP API, read with Consul's
//! blocking queries (`?index=` for catalog, CA and intentions reads, `?hash=` for the proxy's
//! own registration), so a change reaches the sidecar as soon as the agent knows it.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one blocking read may wait at the agent before it answers unchanged.
pub const BLOCKING_WAIT: Duration = Duration::from_secs(300);
/// Beyond [`BLOCKING_WAIT`]: the agent adds up to 1/16 of jitter, then the answer travels.
const BLOCKING_SLACK: Duration = Duration::from_secs(30);
/// A plain (non-blocking) read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot reach the agent at {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the agent did not answer {path} within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("reading the agent's answer to {path}: {reason}")]
    Body { path: String, reason: String },
    #[error("{path}: Unexpected response code: {status} ({text})")]
    Status {
        path: String,
        status: u16,
        text: String,
    },
    #[error("{path}: the agent's answer is not JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("bad agent address {0:?}: expected host:port or http://host:port")]
    Address(String),
}

impl AgentError {
    /// Whether the agent said the thing does not exist (as opposed to failing to answer).
    pub fn is_not_found(&self) -> bool {
        matches!(self, AgentError::Status { status: 404, .. })
    }

    /// Whether the agent refused the request's token (403).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AgentError::Status { status: 403, .. })
    }
}

/// Where a blocking read resumes: the index (`X-Consul-Index`) or content hash
/// (`X-Consul-ContentHash`) of the last answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Version {
    /// Not read yet: answer at once.
    #[default]
    None,
    Index(u64),
    Hash(String),
}

/// One answer of the agent.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Value,
    pub version: Version,
}

/// The local agent's HTTP API.
#[derive(Debug, Clone)]
pub struct AgentApi {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl AgentApi {
    /// `addr` is `host:port` or `http://host:port`.
    pub fn new(addr: &str, token: Option<String>) -> Result<AgentApi, AgentError> {
        let host = match addr.strip_prefix("http://") {
            Some(rest) => rest,
            None if !addr.contains("://") => addr,
            None => return Err(AgentError::Address(addr.to_owned())),
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(AgentError::Address(addr.to_owned()));
        }
        let base = format!("http://{host}");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(AgentApi {
            base,
            token: token.filter(|t| !t.is_empty()),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A plain read of `path` (which may carry a query).
    pub async fn get(&self, path: &str) -> Result<Answer, AgentError> {
        self.fetch(path.to_owned(), READ_TIMEOUT).await
    }

    /// A blocking read of `path`: answers when what `path` names differs from `since`, or after
    /// [`BLOCKING_WAIT`] with the same version.
    pub async fn watch(&self, path: &str, since: &Version) -> Result<Answer, AgentError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let wait = BLOCKING_WAIT.as_secs();
        let full = match since {
            Version::None => return self.get(path).await,
            Version::Index(index) => format!("{path}{separator}index={index}&wait={wait}s"),
            Version::Hash(hash) => format!("{path}{separator}hash={hash}&wait={wait}s"),
        };
        self.fetch(full, BLOCKING_WAIT + BLOCKING_SLACK).await
    }

    async fn fetch(&self, path: String, timeout: Duration) -> Result<Answer, AgentError> {
        let mut request = Request::get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| AgentError::Address(e.to_string()))?;
        let exchange =
            async {
                let response = self.client.request(request).await.map_err(|source| {
                    AgentError::Unreachable {
                        addr: self.base.clone(),
                        source,
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| AgentError::Body {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?
                    .to_bytes();
                Ok::<_, AgentError>((parts, body))
            };
        let (parts, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| AgentError::Timeout {
                path: path.clone(),
                timeout,
            })??;
        if parts.status != StatusCode::OK {
            return Err(AgentError::Status {
                path,
                status: parts.status.as_u16(),
                text: String::from_utf8_lossy(&body).trim().to_owned(),
            });
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let version = if let Some(hash) = header("X-Consul-ContentHash") {
            Version::Hash(hash)
        } else if let Some(index) = header("X-Consul-Index").and_then(|i| i.parse().ok()) {
            Version::Index(index)
        } else {
            Version::None
        };
        let body = serde_json::from_slice(&body).map_err(|source| AgentError::Json {
            path: path.clone(),
            source,
        })?;
        Ok(Answer { body, version })
    }
}

/// The pause before the `attempt`-th retry of a failed read: doubling from 100 ms to 10 s,
/// with the upper half randomized (`jitter` in 0..1) so sidecars do not retry in step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(7));
    let capped = base.min(Duration::from_secs(10));
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_consuls_forms() {
        for (input, base) in [
            ("127.0.0.1:8500", "http://127.0.0.1:8500"),
            ("http://127.0.0.2:8500/", "http://127.0.0.2:8500"),
        ] {
            assert_eq!(AgentApi::new(input, None).unwrap().base(), base);
        }
        for bad in [
            "",
            "https://127.0.0.1:8501",
            "unix:///tmp/agent.sock",
            "http://",
        ] {
            assert!(AgentApi::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert_eq!(backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(5));
    }
}
