//! The operator commands' way to the local agent: Consul's HTTP API at `-http-addr`, else
//! `MESH_HTTP_ADDR` or `CONSUL_HTTP_ADDR`, else 127.0.0.1:8500, with the token from
//! `MESH_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN`.
//!
//! HTTPS when the address says `https://` (or has no scheme and `CONSUL_HTTP_SSL` is true):
//! the agent's certificate is checked against `-ca-file` (`CONSUL_CACERT`), else the system's
//! roots, for the address's host or `-tls-server-name`; `-client-cert`/`-client-key`
//! (`CONSUL_CLIENT_CERT`/`CONSUL_CLIENT_KEY`) are presented to an agent that verifies clients.
//! Every `CONSUL_` variable has a `MESH_` twin, which wins.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

const DEFAULT_ADDR: &str = "127.0.0.1:8500";

/// The agent's HTTP API.
pub struct Api {
    base: String,
    token: Option<String>,
    client: Client<AgentConnector, Full<Bytes>>,
}

/// The TLS flags of every command that talks to the agent; unset ones come from the
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `-ca-file`
    pub ca_file: Option<PathBuf>,
    /// `-client-cert`
    pub client_cert: Option<PathBuf>,
    /// `-client-key`
    pub client_key: Option<PathBuf>,
    /// `-tls-server-name`
    pub server_name: Option<String>,
}

/// The first of `names` set to something in the environment.
fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

impl TlsOptions {
    /// The flags, with what they leave unset taken from the environment.
    fn with_env(&self) -> TlsOptions {
        let path = |flag: &Option<PathBuf>, names: &[&str]| {
            flag.clone().or_else(|| env(names).map(PathBuf::from))
        };
        TlsOptions {
            ca_file: path(&self.ca_file, &["MESH_CACERT", "CONSUL_CACERT"]),
            client_cert: path(
                &self.client_cert,
                &["MESH_CLIENT_CERT", "CONSUL_CLIENT_CERT"],
            ),
            client_key: path(&self.client_key, &["MESH_CLIENT_KEY", "CONSUL_CLIENT_KEY"]),
            server_name: self
                .server_name
                .clone()
                .or_else(|| env(&["MESH_TLS_SERVER_NAME", "CONSUL_TLS_SERVER_NAME"])),
        }
    }

    /// rustls' client configuration for these options.
    fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |path: &Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading certificates from {}", path.display()))?;
            if certs.is_empty() {
                bail!("{}: no certificate in the file", path.display());
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(ca_file) => {
                for cert in certs(ca_file)? {
                    roots
                        .add(cert)
                        .with_context(|| format!("{}: not a usable CA", ca_file.display()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .with_context(|| format!("reading the private key in {}", key.display()))?;
                builder.with_client_auth_cert(chain, key).with_context(|| {
                    format!(
                        "{} does not match {}",
                        key_name(&self.client_key),
                        cert.display()
                    )
                })?
            }
            (Some(_), None) => bail!("-client-cert needs -client-key"),
            (None, Some(_)) => bail!("-client-key needs -client-cert"),
            (None, None) => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn key_name(key: &Option<PathBuf>) -> String {
    key.as_ref()
        .map_or_else(String::new, |key| key.display().to_string())
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
    /// The API at `flag`, or where the environment says, with `token` or the environment's,
    /// over HTTPS with `tls` (and the environment) when the address asks for it.
    pub fn new(flag: Option<&str>, token: Option<&str>, tls: &TlsOptions) -> anyhow::Result<Api> {
        let addr = flag
            .map(str::to_owned)
            .or_else(|| env(&["MESH_HTTP_ADDR", "CONSUL_HTTP_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let ssl = env(&["MESH_HTTP_SSL", "CONSUL_HTTP_SSL"])
            .map(|v| parse_bool(&v))
            .transpose()
            .context("CONSUL_HTTP_SSL")?
            .unwrap_or(false);
        let base = base_url(&addr, ssl)?;
        let mut connector = AgentConnector {
            http: HttpConnector::new(),
            tls: None,
        };
        connector.http.enforce_http(false);
        connector.http.set_nodelay(true);
        if base.starts_with("https://") {
            let tls = tls.with_env();
            let config = tls.client_config()?;
            let server_name = tls
                .server_name
                .map(|name| {
                    rustls::pki_types::ServerName::try_from(name.clone())
                        .with_context(|| format!("-tls-server-name {name:?}"))
                })
                .transpose()?;
            connector.tls = Some(HttpsSettings {
                connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                server_name,
            });
        }
        Ok(Api {
            base,
            token: token
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .or_else(|| env(&["MESH_HTTP_TOKEN", "CONSUL_HTTP_TOKEN"])),
            client: Client::builder(TokioExecutor::new()).build(connector),
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

/// The base URL from `host:port` (`https://` when `ssl`), `http://host:port`,
/// `https://host:port` or `unix://` (refused).
fn base_url(addr: &str, ssl: bool) -> anyhow::Result<String> {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return Ok(addr.to_owned());
    }
    if addr.starts_with("unix://") {
        bail!(
            "{addr}: only http:// and https:// agent addresses are supported by this command yet"
        );
    }
    let scheme = if ssl { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}"))
}

/// Go's `strconv.ParseBool`, which Consul reads `CONSUL_HTTP_SSL` with.
fn parse_bool(text: &str) -> anyhow::Result<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => bail!("{other:?} is not a boolean"),
    }
}

/// TLS toward the agent: the configuration, and the name to check instead of the host.
#[derive(Clone)]
struct HttpsSettings {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// hyper's connector to the agent: TCP, then TLS for `https://` addresses.
#[derive(Clone)]
pub struct AgentConnector {
    http: HttpConnector,
    tls: Option<HttpsSettings>,
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<AgentStream>>> + Send>>;

impl tower::Service<Uri> for AgentConnector {
    type Response = TokioIo<AgentStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        self.http.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        let tcp = self.http.call(uri.clone());
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = tcp.await.map_err(io::Error::other)?.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(AgentStream::Plain(tcp)));
            };
            let name = match tls.server_name {
                Some(name) => name,
                None => {
                    let host = uri.host().unwrap_or_default();
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    rustls::pki_types::ServerName::try_from(host.to_owned())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                }
            };
            let stream = tls.connector.connect(name, tcp).await?;
            Ok(TokioIo::new(AgentStream::Tls(Box::new(stream))))
        })
    }
}

/// A connection to the agent, plaintext or TLS.
pub enum AgentStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for AgentStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for AgentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AgentStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_flush(cx),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AgentStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            AgentStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_consuls_forms() {
        assert_eq!(
            base_url("127.0.0.1:8500", false).unwrap(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            base_url("127.0.0.1:8501", true).unwrap(),
            "https://127.0.0.1:8501"
        );
        assert_eq!(
            base_url("http://10.0.0.1:8500/", true).unwrap(),
            "http://10.0.0.1:8500"
        );
        assert_eq!(
            base_url("https://10.0.0.1:8501", false).unwrap(),
            "https://10.0.0.1:8501"
        );
        assert!(base_url("unix:///tmp/consul.sock", false).is_err());
    }

    #[test]
    fn ssl_takes_gos_booleans() {
        for yes in ["1", "t", "true", "TRUE", "True"] {
            assert!(parse_bool(yes).unwrap(), "{yes}");
        }
        for no in ["0", "f", "false", "FALSE"] {
            assert!(!parse_bool(no).unwrap(), "{no}");
        }
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let options = TlsOptions {
            client_cert: Some("cert.pem".into()),
            ..TlsOptions::default()
        };
        assert_eq!(
            options.client_config().unwrap_err().to_string(),
            "-client-cert needs -client-key"
        );
        let options = TlsOptions {
            client_key: Some("key.pem".into()),
            ..TlsOptions::default()
        };
        assert_eq!(
            options.client_config().unwrap_err().to_string(),
            "-client-key needs -client-cert"
        );
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
