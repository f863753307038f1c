//! The operator commands' way to the local agent: Consul's HTTP API at `-http-addr`, else
//! `MESH_HTTP_ADDR` or `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500, with the token from
//! `MESH_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN`.

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
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

impl Api {
    /// The API at `flag`, or where the environment says.
    pub fn new(flag: Option<&str>) -> anyhow::Result<Api> {
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
            token: env(&["MESH_HTTP_TOKEN", "CONSUL_HTTP_TOKEN"]),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request; the body of a 200, else an error with the agent's status and text.
    pub async fn call(&self, method: Method, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        let request = request
            .body(Full::new(body))
            .context("building the request")?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("connecting to the agent at {}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "Unexpected response code: {} ({})",
                status.as_u16(),
                String::from_utf8_lossy(&body).trim()
            );
        }
        Ok(body)
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let body = self.call(Method::GET, path, Bytes::new()).await?;
        serde_json::from_slice(&body).context("reading the agent's answer")
    }
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
}
