//! The deployment under test: one `mesh-server -bootstrap` on 127.0.4.1 and one
//! `mesh-client agent` on 127.0.4.2 joined to it, in a temporary directory. Every process is
//! killed by PID (SIGKILL through its `Child`, then reaped) when the deployment drops, also on
//! error or Ctrl-C, before the directory goes.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

pub use crate::child::Proc;
use crate::load::HttpClient;
use crate::target::fetch;

/// Every process on its own loopback address, with mesh's default ports.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 2);
const HTTP_PORT: u16 = 8500;
const SERF_LAN_PORT: u16 = 8301;
const SERVER_PORT: u16 = 8300;
const DNS_PORT: u16 = 8600;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Per request of the start-up probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The base URL of an agent's HTTP API.
pub fn base_url(ip: Ipv4Addr) -> String {
    format!("http://{ip}:{HTTP_PORT}")
}

/// The server's `connect.ca_config.csr_max_per_second`: `None` leaves it at the default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsrLimit(pub Option<f64>);

/// The configuration file that sets the limit, `None` for the default.
pub fn server_config(limit: CsrLimit) -> Option<String> {
    limit.0.map(|rate| {
        serde_json::json!({"connect": {"ca_config": {"csr_max_per_second": rate}}}).to_string()
    })
}

/// A mesh-server that has created the CA and a client agent that has read its roots.
#[derive(Debug)]
pub struct Mesh {
    pub server: Proc,
    pub client: Proc,
    /// The CA's trust domain (`<cluster-id>.mesh`), for SPIFFE URIs.
    pub trust_domain: String,
    /// `CSRMaxPerSecond` as the server reports it.
    pub csr_max_per_second: Option<f64>,
    // Dropped after the processes.
    _dir: tempfile::TempDir,
}

impl Mesh {
    pub async fn start(
        server_bin: &Path,
        client_bin: &Path,
        limit: CsrLimit,
        http: &HttpClient,
    ) -> anyhow::Result<Mesh> {
        let dir = tempfile::Builder::new()
            .prefix("mesh-bench-ca-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut cmd = Command::new(server_bin);
        agent_flags(&mut cmd, "n1", SERVER_IP, &dir.path().join("server"));
        if let Some(text) = server_config(limit) {
            let path = dir.path().join("server.json");
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            cmd.arg("-config-file").arg(path);
        }
        cmd.args(["-server-port", &SERVER_PORT.to_string()]).args([
            "-raft-multiplier",
            "1",
            "-bootstrap",
        ]);
        let mut server = Proc::spawn("mesh-server", cmd, dir.path().join("server.log"))?;

        let server_url = base_url(SERVER_IP);
        let started = Instant::now();
        let leader = format!("\"{SERVER_IP}:{SERVER_PORT}\"");
        wait_for(&mut server, "leader", || async {
            let (status, body) = get(http, &format!("{server_url}/v1/status/leader")).await?;
            Ok((status.is_success() && body.as_ref() == leader.as_bytes()).then_some(()))
        })
        .await?;
        let trust_domain = wait_for(&mut server, "CA", || async {
            let (status, body) = get(http, &format!("{server_url}/v1/connect/ca/roots")).await?;
            Ok(parse_trust_domain(status, &body))
        })
        .await?;
        let config_url = format!("{server_url}/v1/connect/ca/configuration");
        let csr_max_per_second = match get(http, &config_url).await {
            Ok((status, body)) if status.is_success() => parse_csr_max_per_second(&body),
            _ => None,
        };
        eprintln!(
            "  mesh-server leads with a CA ({trust_domain}, CSRMaxPerSecond {}) after {:.1} s",
            csr_max_per_second.map_or("unknown".to_owned(), |r| r.to_string()),
            started.elapsed().as_secs_f64()
        );

        let mut cmd = Command::new(client_bin);
        cmd.arg("agent");
        agent_flags(&mut cmd, "c1", CLIENT_IP, &dir.path().join("client"));
        cmd.args(["-retry-join", &format!("{SERVER_IP}:{SERF_LAN_PORT}")]);
        let mut client = Proc::spawn("mesh-client", cmd, dir.path().join("client.log"))?;
        let roots = format!("{}/v1/agent/connect/ca/roots", base_url(CLIENT_IP));
        let started = Instant::now();
        let result = wait_for(&mut client, "roots", || async {
            let (status, body) = get(http, &roots).await?;
            Ok(parse_trust_domain(status, &body).filter(|t| *t == trust_domain))
        })
        .await;
        if let Err(e) = result {
            // The server's log says why a client got nothing (no leader, no CA, RPC errors).
            bail!("{e:#}\nmesh-server log tail:\n{}", server.log_tail(20));
        }
        eprintln!(
            "  mesh-client has the roots after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Mesh {
            server,
            client,
            trust_domain,
            csr_max_per_second,
            _dir: dir,
        })
    }

    /// Fails if either process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.server.ensure_running()?;
        self.client.ensure_running()
    }
}

/// The flags both agents get, as `ServerProcess::command` in test-support.
fn agent_flags(cmd: &mut Command, node: &str, ip: Ipv4Addr, data_dir: &Path) {
    let ip = ip.to_string();
    cmd.args(["-node", node, "-bind", &ip, "-client", &ip])
        .arg("-data-dir")
        .arg(data_dir)
        .args(["-http-port", &HTTP_PORT.to_string()])
        .args(["-serf-lan-port", &SERF_LAN_PORT.to_string()])
        .args(["-dns-port", &DNS_PORT.to_string()])
        .args(["-log-level", "warn"]);
}

/// `TrustDomain` of a `/v1/connect/ca/roots` answer that lists a root.
pub fn parse_trust_domain(status: StatusCode, body: &[u8]) -> Option<String> {
    if !status.is_success() {
        return None;
    }
    let roots: serde_json::Value = serde_json::from_slice(body).ok()?;
    let has_root = roots["Roots"].as_array().is_some_and(|r| !r.is_empty());
    let domain = roots["TrustDomain"].as_str().filter(|d| !d.is_empty())?;
    has_root.then(|| domain.to_owned())
}

/// `Config.CSRMaxPerSecond` of a `/v1/connect/ca/configuration` answer.
pub fn parse_csr_max_per_second(body: &[u8]) -> Option<f64> {
    let config: serde_json::Value = serde_json::from_slice(body).ok()?;
    config["Config"]["CSRMaxPerSecond"].as_f64()
}

pub async fn get(http: &HttpClient, url: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a GET is built from valid parts");
    tokio::time::timeout(PROBE_TIMEOUT, fetch(http, req))
        .await
        .map_err(|_| anyhow!("GET {url}: no answer in {PROBE_TIMEOUT:?}"))?
}

/// Polls `ready` every 100 ms until it gives a value (errors count as none), the process
/// exits, or [`READY_TIMEOUT`] passes.
async fn wait_for<T, F, Fut>(proc: &mut Proc, what: &str, mut ready: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        proc.ensure_running()?;
        let last = match ready().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{} (pid {}): no {what} within {READY_TIMEOUT:?} (last: {last}); log tail:\n{}",
                proc.name,
                proc.pid,
                proc.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sets_the_limit_only_when_asked() {
        assert_eq!(server_config(CsrLimit(None)), None);
        let text = server_config(CsrLimit(Some(0.0))).expect("a file");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["connect"]["ca_config"]["csr_max_per_second"], 0.0);
    }

    #[test]
    fn trust_domain_needs_a_root() {
        let ok = br#"{"ActiveRootID":"a","TrustDomain":"x.mesh","Roots":[{"ID":"a"}]}"#;
        assert_eq!(
            parse_trust_domain(StatusCode::OK, ok),
            Some("x.mesh".to_owned())
        );
        let none = br#"{"ActiveRootID":"","TrustDomain":"","Roots":[]}"#;
        assert_eq!(parse_trust_domain(StatusCode::OK, none), None);
        assert_eq!(
            parse_trust_domain(StatusCode::INTERNAL_SERVER_ERROR, ok),
            None
        );
        assert_eq!(parse_trust_domain(StatusCode::OK, b"not json"), None);
    }

    #[test]
    fn csr_limit_from_the_configuration() {
        let body = br#"{"Provider":"consul","Config":{"CSRMaxPerSecond":50,"LeafCertTTL":"72h"}}"#;
        assert_eq!(parse_csr_max_per_second(body), Some(50.0));
        assert_eq!(parse_csr_max_per_second(b"{}"), None);
    }
}
