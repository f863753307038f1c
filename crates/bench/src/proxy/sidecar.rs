//! Ours: two `mesh-sidecar`s configured by a `mesh-server -dev` on 127.0.6.10.
//!
//! The server (started once per run: [`Control`]) gets, through its agent HTTP API, the
//! service `echo` (the backend) with a sidecar on 127.0.6.21, the service `load` with a sidecar
//! on 127.0.6.22 whose upstream `echo` listens on 127.0.6.23, and an intention allowing
//! `load → echo`. Each round then starts `mesh-sidecar -sidecar-for echo` and
//! `mesh-sidecar -sidecar-for load` ([`start`]): the load generator connects in plain TCP to
//! `load`'s upstream listener, which connects over mTLS to `echo`'s sidecar, which forwards in
//! plain TCP to the backend.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::pair::{
    Pair, System, BACKEND, ECHO_SIDECAR, LOAD_APP, LOAD_SIDECAR, LOAD_UPSTREAM, MESH_SERVER_IP,
};
use crate::child::Proc;
use crate::load::HttpClient;
use crate::target::fetch;

/// mesh's default ports on the server's own address.
const HTTP_PORT: u16 = 8500;
const SERVER_PORT: u16 = 8300;
const SERF_LAN_PORT: u16 = 8301;
const DNS_PORT: u16 = 8600;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The agent's HTTP address, as `-http-addr` takes it.
pub fn http_addr() -> String {
    format!("{MESH_SERVER_IP}:{HTTP_PORT}")
}

/// `echo`: the backend, with a sidecar whose public listener is `public`. As in Consul, a
/// sidecar forwards to 127.0.0.1 unless told otherwise, so the backend's own address is given
/// as `LocalServiceAddress`.
pub fn echo_registration(backend: SocketAddr, public: SocketAddr) -> Value {
    json!({
        "Name": "echo",
        "ID": "echo",
        "Address": backend.ip().to_string(),
        "Port": backend.port(),
        "Connect": {"SidecarService": {
            "Address": public.ip().to_string(),
            "Port": public.port(),
            "Proxy": {
                "LocalServiceAddress": backend.ip().to_string(),
                "LocalServicePort": backend.port(),
            },
        }},
    })
}

/// `load`: the load generator's service, whose sidecar has the upstream `echo` on `upstream`.
pub fn load_registration(app: SocketAddr, public: SocketAddr, upstream: SocketAddr) -> Value {
    json!({
        "Name": "load",
        "ID": "load",
        "Address": app.ip().to_string(),
        "Port": app.port(),
        "Connect": {"SidecarService": {
            "Address": public.ip().to_string(),
            "Port": public.port(),
            "Proxy": {"Upstreams": [{
                "DestinationName": "echo",
                "LocalBindAddress": upstream.ip().to_string(),
                "LocalBindPort": upstream.port(),
            }]},
        }},
    })
}

/// The `mesh-server -dev` the sidecars are configured by, with the services registered.
#[derive(Debug)]
pub struct Control {
    pub server: Proc,
    // Dropped after the process.
    _dir: tempfile::TempDir,
}

impl Control {
    pub async fn start(server_bin: &Path, http: &HttpClient) -> anyhow::Result<Control> {
        let dir = tempfile::Builder::new()
            .prefix("mesh-bench-proxy-server-")
            .tempdir()
            .context("creating a temporary directory")?;
        let ip = MESH_SERVER_IP.to_string();
        let mut cmd = Command::new(server_bin);
        cmd.args(["-dev", "-node", "bench", "-bind", &ip, "-client", &ip])
            .arg("-data-dir")
            .arg(dir.path().join("data"))
            .args(["-http-port", &HTTP_PORT.to_string()])
            .args(["-server-port", &SERVER_PORT.to_string()])
            .args(["-serf-lan-port", &SERF_LAN_PORT.to_string()])
            .args(["-dns-port", &DNS_PORT.to_string()])
            .args(["-log-level", "warn"]);
        let mut server = Proc::spawn("mesh-server", cmd, dir.path().join("server.log"))?;
        let base = format!("http://{}", http_addr());
        let started = Instant::now();
        loop {
            server.ensure_running()?;
            let last = match get(http, &format!("{base}/v1/connect/ca/roots")).await {
                Ok((status, body)) if has_root(status, &body) => break,
                Ok((status, _)) => format!("HTTP {status}"),
                Err(e) => format!("{e:#}"),
            };
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "mesh-server: no CA root within {READY_TIMEOUT:?} (last: {last}); log \
                     tail:\n{}",
                    server.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let register = format!("{base}/v1/agent/service/register");
        for body in [
            echo_registration(BACKEND, ECHO_SIDECAR),
            load_registration(LOAD_APP, LOAD_SIDECAR, LOAD_UPSTREAM),
        ] {
            put(http, &register, body.to_string()).await?;
        }
        let intention = format!("{base}/v1/connect/intentions/exact?source=load&destination=echo");
        put(http, &intention, json!({"Action": "allow"}).to_string()).await?;
        eprintln!(
            "  mesh-server -dev has a CA, the services and the intention after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Control { server, _dir: dir })
    }
}

/// Starts `echo`'s sidecar, then `load`'s. Readiness is the caller's (a request through them).
pub fn start(sidecar_bin: &Path, control: &Control) -> anyhow::Result<Pair> {
    let dir = tempfile::Builder::new()
        .prefix("mesh-bench-proxy-sidecars-")
        .tempdir()
        .context("creating a temporary directory")?;
    let spawn = |name: &'static str, service: &str| {
        let mut cmd = Command::new(sidecar_bin);
        cmd.args(["-sidecar-for", service, "-http-addr", &http_addr()]);
        // HAProxy is given no log either: neither writes a line per connection.
        cmd.args(["-log-level", "warn"]);
        Proc::spawn(name, cmd, dir.path().join(format!("{service}.log")))
    };
    let echo = spawn("mesh-sidecar echo", "echo")?;
    let load = spawn("mesh-sidecar load", "load")?;
    Ok(Pair {
        system: System::Mesh,
        entry: LOAD_UPSTREAM,
        proxies: vec![load, echo],
        agent_pid: Some(control.server.pid),
        _dir: Some(dir),
    })
}

fn has_root(status: StatusCode, body: &[u8]) -> bool {
    status.is_success()
        && serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["Roots"].as_array().map(|r| !r.is_empty()))
            .unwrap_or(false)
}

async fn get(http: &HttpClient, url: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a GET is built from valid parts");
    tokio::time::timeout(PROBE_TIMEOUT, fetch(http, req))
        .await
        .map_err(|_| anyhow!("GET {url}: no answer in {PROBE_TIMEOUT:?}"))?
}

async fn put(http: &HttpClient, url: &str, body: String) -> anyhow::Result<()> {
    let req = Request::put(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a PUT is built from valid parts");
    let (status, answer) = tokio::time::timeout(PROBE_TIMEOUT, fetch(http, req))
        .await
        .map_err(|_| anyhow!("PUT {url}: no answer in {PROBE_TIMEOUT:?}"))??;
    if !status.is_success() {
        bail!(
            "PUT {url}: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_in_consuls_casing() {
        let echo = echo_registration(BACKEND, ECHO_SIDECAR);
        assert_eq!(
            echo,
            json!({"Name":"echo","ID":"echo","Address":"127.0.6.20","Port":8080,
                   "Connect":{"SidecarService":{"Address":"127.0.6.21","Port":21000,
                       "Proxy":{"LocalServiceAddress":"127.0.6.20","LocalServicePort":8080}}}})
        );
        let load = load_registration(LOAD_APP, LOAD_SIDECAR, LOAD_UPSTREAM);
        let upstream = &load["Connect"]["SidecarService"]["Proxy"]["Upstreams"][0];
        assert_eq!(upstream["DestinationName"], "echo");
        assert_eq!(upstream["LocalBindAddress"], "127.0.6.23");
        assert_eq!(upstream["LocalBindPort"], 9191);
        assert_eq!(load["Connect"]["SidecarService"]["Address"], "127.0.6.22");
        assert_eq!(http_addr(), "127.0.6.10:8500");
    }

    #[test]
    fn roots_need_one_root() {
        assert!(has_root(StatusCode::OK, br#"{"Roots":[{"ID":"a"}]}"#));
        assert!(!has_root(StatusCode::OK, br#"{"Roots":[]}"#));
        assert!(!has_root(StatusCode::OK, b"nope"));
        assert!(!has_root(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"Roots":[{"ID":"a"}]}"#
        ));
    }
}
