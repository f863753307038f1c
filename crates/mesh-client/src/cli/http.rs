//! The operator commands' way to the local agent: Consul's HTTP API at `-http-addr`, else
//! `MESH_HTTP_ADDR` or `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500, with the token from
//! `MESH_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN`.

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const DEFAULT_ADDR: &str = "127.0.0.1:8500";

/// The agent's HTTP API.
pub struct Api {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer of any status, with the raft index of what it shows (`X-Consul-Index`).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub index: Option<u64>,
    pub body: Bytes,
}

impl Reply {
    /// The body of a 2xx answer, else Consul's API client error.
    pub fn ok(self) -> anyhow::Result<Bytes> {
        if !self.status.is_success() {
            bail!(unexpected(self.status, &self.body));
        }
        Ok(self.body)
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("reading the agent's answer")
    }
}

/// The error text of Consul's Go API client for a non-2xx answer.
fn unexpected(status: StatusCode, body: &[u8]) -> String {
    format!(
        "Unexpected response code: {} ({})",
        status.as_u16(),
        String::from_utf8_lossy(body).trim()
    )
}

impl Api {
    /// The API at `flag`, or where the environment says, with `token` or the environment's.
    pub fn new(flag: Option<&str>, token: Option<&str>) -> anyhow::Result<Api> {
        let env = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        let addr = flag
            .map(str::to_owned)
            .or_else(|| env(&["MESH_HTTP_ADDR", "CONSUL_HTTP_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        Ok(Api {
            base: base_url(&addr)?,
            token: token
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .or_else(|| env(&["MESH_HTTP_TOKEN", "CONSUL_HTTP_TOKEN"])),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    async fn start(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Response<Incoming>> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        let request = request
            .body(Full::new(body))
            .context("building the request")?;
        self.client
            .request(request)
            .await
            .with_context(|| format!("connecting to the agent at {}", self.base))
    }

    /// Sends a request; the answer whatever its status.
    pub async fn send(&self, method: Method, path: &str, body: Bytes) -> anyhow::Result<Reply> {
        let response = self.start(method, path, body).await?;
        let status = response.status();
        let index = index_of(&response);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            index,
            body,
        })
    }

    /// Sends a request; the body of a 2xx, else an error with the agent's status and text.
    pub async fn call(&self, method: Method, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        self.send(method, path, body).await?.ok()
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let body = self.call(Method::GET, path, Bytes::new()).await?;
        serde_json::from_slice(&body).context("reading the agent's answer")
    }

    /// A write with a JSON body; the answer's body.
    pub async fn put_json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<Bytes> {
        self.call(method, path, Bytes::from(body.to_string())).await
    }

    /// A GET whose (large) body goes to `sink` chunk by chunk, with the byte count so far
    /// after each; returns the answer's index.
    pub async fn download(
        &self,
        path: &str,
        mut sink: impl FnMut(&[u8], u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<u64>> {
        let response = self.start(Method::GET, path, Bytes::new()).await?;
        let status = response.status();
        let index = index_of(&response);
        let mut body = response.into_body();
        if !status.is_success() {
            let text = body.collect().await?.to_bytes();
            bail!(unexpected(status, &text));
        }
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(chunk) = frame?.into_data() {
                total += chunk.len() as u64;
                sink(&chunk, total)?;
            }
        }
        Ok(index)
    }
}

fn index_of(response: &Response<Incoming>) -> Option<u64> {
    response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `http://host:port` from `host:port`, `http://host:port` or `unix://` (refused).
fn base_url(addr: &str) -> anyhow::Result<String> {
    let addr = addr.trim_end_matches('/');
    if let Some(rest) = addr.strip_prefix("http://") {
        return Ok(format!("http://{rest}"));
    }
    if addr.starts_with("https://") || addr.starts_with("unix://") {
        bail!("{addr}: only http:// agent addresses are supported by this command yet");
    }
    Ok(format!("http://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_consuls_forms() {
        assert_eq!(base_url("127.0.0.1:8500").unwrap(), "http://127.0.0.1:8500");
        assert_eq!(
            base_url("http://10.0.0.1:8500/").unwrap(),
            "http://10.0.0.1:8500"
        );
        assert!(base_url("https://10.0.0.1:8501").is_err());
    }

    #[test]
    fn errors_read_like_consuls_api_client() {
        let reply = Reply {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            index: None,
            body: Bytes::from_static(b"no leader\n"),
        };
        assert_eq!(
            reply.ok().unwrap_err().to_string(),
            "Unexpected response code: 500 (no leader)"
        );
    }
}
