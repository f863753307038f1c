//! Sidecar tests' pieces: `mesh-sidecar` processes, and the two applications the sidecars
//! front (a TCP echo server that names itself, and an HTTP server), run inside the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::in_netns::Netns;
use crate::{binary, free_port_on};

/// A `mesh-sidecar` process, in this process's network namespace or another one, killed (by
/// PID) when dropped.
#[derive(Debug)]
pub struct SidecarProcess {
    child: Option<Child>,
    netns: Netns,
    args: Vec<String>,
    log: PathBuf,
    /// Where it serves `/metrics` (inside its namespace).
    pub metrics: SocketAddr,
}

impl SidecarProcess {
    /// Starts `mesh-sidecar -sidecar-for <service_id>` against the agent at `agent_http`,
    /// serving metrics on a free port of `metrics_ip`; the log goes to `<log_dir>/<id>.log`.
    pub fn sidecar_for(
        service_id: &str,
        agent_http: &str,
        metrics_ip: std::net::Ipv4Addr,
        log_dir: &Path,
    ) -> anyhow::Result<SidecarProcess> {
        let metrics = SocketAddr::from((metrics_ip, free_port_on(metrics_ip)?));
        SidecarProcess::sidecar_for_in(Netns::own(), service_id, agent_http, metrics, log_dir)
    }

    /// Starts `mesh-sidecar -sidecar-for <service_id>` inside `netns`, against the agent at
    /// `agent_http` and serving metrics at `metrics`, both as seen from inside it.
    pub fn sidecar_for_in(
        netns: Netns,
        service_id: &str,
        agent_http: &str,
        metrics: SocketAddr,
        log_dir: &Path,
    ) -> anyhow::Result<SidecarProcess> {
        Self::sidecar_for_with(netns, service_id, agent_http, metrics, log_dir, &[])
    }

    /// Like [`SidecarProcess::sidecar_for`], with the ACL token it sends the agent.
    pub fn sidecar_for_with_token(
        service_id: &str,
        agent_http: &str,
        metrics_ip: std::net::Ipv4Addr,
        log_dir: &Path,
        token: &str,
    ) -> anyhow::Result<SidecarProcess> {
        let metrics = SocketAddr::from((metrics_ip, free_port_on(metrics_ip)?));
        Self::sidecar_for_with(
            Netns::own(),
            service_id,
            agent_http,
            metrics,
            log_dir,
            &["-token", token],
        )
    }

    fn sidecar_for_with(
        netns: Netns,
        service_id: &str,
        agent_http: &str,
        metrics: SocketAddr,
        log_dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<SidecarProcess> {
        let mut args: Vec<String> = [
            "-sidecar-for",
            service_id,
            "-http-addr",
            agent_http,
            "-metrics-addr",
            &metrics.to_string(),
            "-drain-seconds",
            "2",
            "-log-level",
            "debug",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut process = SidecarProcess {
            child: None,
            netns,
            args,
            log: log_dir.join(format!("sidecar-{service_id}.log")),
            metrics,
        };
        process.spawn()?;
        Ok(process)
    }

    /// Starts an ad-hoc `mesh-sidecar -service <service> -upstream <name:port>...` (nothing
    /// registered) against the agent at `agent_http`.
    pub fn ad_hoc(
        service: &str,
        upstreams: &[String],
        agent_http: &str,
        metrics_ip: std::net::Ipv4Addr,
        log_dir: &Path,
    ) -> anyhow::Result<SidecarProcess> {
        let metrics = SocketAddr::from((metrics_ip, free_port_on(metrics_ip)?));
        let mut args: Vec<String> = ["-service", service, "-http-addr", agent_http]
            .map(str::to_owned)
            .to_vec();
        for upstream in upstreams {
            args.extend(["-upstream".to_owned(), upstream.clone()]);
        }
        args.extend(["-metrics-addr".to_owned(), metrics.to_string()]);
        let mut process = SidecarProcess {
            child: None,
            netns: Netns::own(),
            args,
            log: log_dir.join(format!("sidecar-ad-hoc-{service}.log")),
            metrics,
        };
        process.spawn()?;
        Ok(process)
    }

    /// Starts it (again) with the same flags.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .netns
            .command(&binary("mesh-sidecar")?)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mesh-sidecar")?;
        self.child = Some(child);
        Ok(())
    }

    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// The network namespace it runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one sample of `/metrics` (`name{labels}` as printed), if present.
    pub async fn metric(&self, series: &str) -> Option<u64> {
        let http = crate::Http::new(self.metrics);
        let text = http.get("/metrics").await.ok()?.body;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A TCP application that greets every connection with `<name>\n`, then echoes what it reads.
/// Stops when dropped.
#[derive(Debug)]
pub struct EchoApp {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoApp {
    pub async fn start(ip: std::net::Ipv4Addr, name: &str) -> anyhow::Result<EchoApp> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let greeting: Arc<[u8]> = format!("{name}\n").into_bytes().into();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let greeting = greeting.clone();
                tokio::spawn(async move {
                    if tcp.write_all(&greeting).await.is_err() {
                        return;
                    }
                    let (mut rd, mut wr) = tcp.split();
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                });
            }
        });
        Ok(EchoApp { addr, task })
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One exchange through an echo path: connect to `addr`, read the greeting, send a line and
/// read it back. Returns the name of the application that answered.
pub async fn echo_once(addr: SocketAddr, line: &str) -> anyhow::Result<String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tcp = BufReader::new(tcp);
        let mut name = String::new();
        tcp.read_line(&mut name).await?;
        anyhow::ensure!(
            name.ends_with('\n'),
            "the connection closed before a greeting"
        );
        let sent = format!("{line}\n");
        tcp.get_mut().write_all(sent.as_bytes()).await?;
        let mut back = vec![0; sent.len()];
        tcp.read_exact(&mut back).await?;
        anyhow::ensure!(back == sent.as_bytes(), "echoed {back:?}");
        Ok(name.trim_end().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("echo exchange timed out")?
}

/// An HTTP/1.1 application answering every request with `200` and `<name> <method> <path>`.
/// Stops when dropped.
#[derive(Debug)]
pub struct HttpApp {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpApp {
    pub async fn start(ip: std::net::Ipv4Addr, name: &str) -> anyhow::Result<HttpApp> {
        use http_body_util::Full;
        use hyper::body::{Bytes, Incoming};
        use hyper::{Request, Response};

        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let name: Arc<str> = name.into();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let name = name.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let body = format!("{name} {} {}", request.method(), request.uri().path());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(HttpApp { addr, task })
    }
}

impl Drop for HttpApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
