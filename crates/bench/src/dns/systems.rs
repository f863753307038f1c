//! The systems under test as processes: one `mesh-server` (and optionally one `mesh-client`
//! agent joined to it) holding the services in its catalog, or one `knotd` serving them from a
//! zone file. Each lives in its own temporary directory; every process is killed (SIGKILL, then
//! reaped) when its deployment drops, also on error or Ctrl-C, before the directory goes.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use http_body_util::Full;
use hyper::Request;

use super::records::{self, INSTANCES};
pub use crate::child::Proc;
use crate::load::HttpClient;
use crate::target::fetch;

/// Addresses: the mesh server, the mesh client agent, knotd. Every process has its own.
pub const MESH_SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);
pub const MESH_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 2);
pub const KNOT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 3);
/// mesh's default ports (each process has its own address).
pub const DNS_PORT: u16 = 8600;
const HTTP_PORT: u16 = 8500;
const SERF_LAN_PORT: u16 = 8301;
const SERVER_PORT: u16 = 8300;
/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 32;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A mesh-server holding the services, and optionally a client agent joined to it.
#[derive(Debug)]
pub struct Mesh {
    pub server: Proc,
    pub client: Option<Proc>,
    // Dropped after the processes.
    _dir: tempfile::TempDir,
}

impl Mesh {
    /// Starts the server, registers `services` services of [`INSTANCES`] instances each, and
    /// (with `client`) starts a client agent and waits until it reads the catalog.
    pub async fn start(
        server_bin: &Path,
        client_bin: Option<&Path>,
        services: usize,
        http: &HttpClient,
    ) -> anyhow::Result<Mesh> {
        let dir = tempfile::Builder::new()
            .prefix("mesh-bench-dns-mesh-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut cmd = Command::new(server_bin);
        mesh_flags(&mut cmd, "n1", MESH_SERVER_IP, &dir.path().join("server"));
        cmd.args(["-server-port", &SERVER_PORT.to_string()]).args([
            "-raft-multiplier",
            "1",
            "-bootstrap",
        ]);
        let server = Proc::spawn("mesh-server", cmd, dir.path().join("server.log"))?;
        let mut mesh = Mesh {
            server,
            client: None,
            _dir: dir,
        };
        let base = format!("http://{MESH_SERVER_IP}:{HTTP_PORT}");
        let started = Instant::now();
        let leader = format!("\"{MESH_SERVER_IP}:{SERVER_PORT}\"");
        wait_until(&mut mesh.server, "a leader", || async {
            let (status, body) = get(http, &format!("{base}/v1/status/leader")).await?;
            Ok(status.is_success() && body.as_ref() == leader.as_bytes())
        })
        .await?;
        eprintln!(
            "  mesh-server leads after {:.1} s; registering {} instances",
            started.elapsed().as_secs_f64(),
            services * INSTANCES
        );
        let started = Instant::now();
        register(http, &base, services).await?;
        eprintln!("  registered in {:.1} s", started.elapsed().as_secs_f64());

        if let Some(client_bin) = client_bin {
            let dir = mesh._dir.path();
            let mut cmd = Command::new(client_bin);
            cmd.arg("agent");
            mesh_flags(&mut cmd, "c1", MESH_CLIENT_IP, &dir.join("client"));
            cmd.args(["-retry-join", &format!("{MESH_SERVER_IP}:{SERF_LAN_PORT}")]);
            let client =
                mesh.client
                    .insert(Proc::spawn("mesh-client", cmd, dir.join("client.log"))?);
            let last = records::service_name(services - 1);
            let url = format!("http://{MESH_CLIENT_IP}:{HTTP_PORT}/v1/catalog/service/{last}");
            let started = Instant::now();
            wait_until(client, "the client agent to read the catalog", || async {
                let (status, body) = get(http, &url).await?;
                let rows: Vec<serde_json::Value> =
                    serde_json::from_slice(&body).unwrap_or_default();
                Ok(status.is_success() && rows.len() == INSTANCES)
            })
            .await?;
            eprintln!(
                "  mesh-client reads the catalog after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(mesh)
    }
}

/// The flags every mesh agent gets, as `ServerProcess::command` in test-support.
fn mesh_flags(cmd: &mut Command, node: &str, ip: Ipv4Addr, data_dir: &Path) {
    let ip = ip.to_string();
    cmd.args(["-node", node, "-bind", &ip, "-client", &ip])
        .arg("-data-dir")
        .arg(data_dir)
        .args(["-http-port", &HTTP_PORT.to_string()])
        .args(["-serf-lan-port", &SERF_LAN_PORT.to_string()])
        .args(["-dns-port", &DNS_PORT.to_string()]);
}

async fn get(http: &HttpClient, url: &str) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a GET is built from valid parts");
    tokio::time::timeout(Duration::from_secs(5), fetch(http, req))
        .await
        .map_err(|_| anyhow!("GET {url}: no answer in 5 s"))?
}

/// Polls `ready` every 100 ms until it says yes (errors count as no), the process exits, or
/// [`READY_TIMEOUT`] passes.
async fn wait_until<F, Fut>(proc: &mut Proc, what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        proc.ensure_running()?;
        let last = match ready().await {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet".to_owned(),
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

/// `PUT /v1/catalog/register` of every instance, [`REGISTER_CONCURRENCY`] at a time.
async fn register(http: &HttpClient, base: &str, services: usize) -> anyhow::Result<()> {
    let url = format!("{base}/v1/catalog/register");
    let all = (0..services).flat_map(|s| (0..INSTANCES).map(move |i| (s, i)));
    stream::iter(all)
        .map(|(s, i)| {
            let url = url.clone();
            async move {
                let body = records::registration(s, i).to_string();
                let req = Request::put(url.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("a PUT is built from valid parts");
                let (status, body) =
                    tokio::time::timeout(Duration::from_secs(30), fetch(http, req))
                        .await
                        .map_err(|_| anyhow!("registering svc-{s} #{i}: no answer in 30 s"))??;
                if !status.is_success() || body.as_ref() != b"true" {
                    bail!(
                        "registering svc-{s} #{i}: HTTP {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                Ok(())
            }
        })
        .buffer_unordered(REGISTER_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// knotd serving the same records from a zone file.
#[derive(Debug)]
pub struct Knot {
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// Writes the zone and the configuration and starts `knotd -c <conf>` in the foreground.
    /// Readiness is the caller's warm-up (the zone loads in the background).
    pub fn start(bin: &Path, services: usize) -> anyhow::Result<Knot> {
        let dir = tempfile::Builder::new()
            .prefix("mesh-bench-dns-knot-")
            .tempdir()
            .context("creating a temporary directory")?;
        let path = |name: &str| dir.path().join(name);
        let zone = path("mesh.zone");
        std::fs::write(&zone, records::zone_file(services, KNOT_IP))
            .with_context(|| format!("writing {}", zone.display()))?;
        let conf = path("knot.conf");
        let text = records::knot_conf(
            &dir.path().display().to_string(),
            KNOT_IP,
            DNS_PORT,
            &zone.display().to_string(),
        );
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&conf);
        let proc = Proc::spawn("knotd", cmd, path("knotd.log"))?;
        Ok(Knot { proc, _dir: dir })
    }
}

/// `knotd --version`'s `version 3.2.6` and the Debian package version.
pub fn knot_version(bin: &Path) -> String {
    let reported = Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    match crate::machine::package_version(crate::machine::KNOT_PACKAGE) {
        Some(v) => format!("Debian package knot {v} ({reported})"),
        None => reported,
    }
}
