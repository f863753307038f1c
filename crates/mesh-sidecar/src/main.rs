//! `mesh-sidecar`: the native sidecar proxy beside each application, configured only by its
//! local agent (`-sidecar-for web`), or ad hoc from flags (`-service web -upstream db:9191`)
//! like `consul connect proxy`. Parses flags, sets up logging, runs [`sidecar::Sidecar`] until
//! SIGINT or SIGTERM, then drains its connections.
//!
//! Thin on purpose: no logic lives here that a test would need.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sidecar::{AgentApi, Mode, Options, Sidecar};

#[derive(Debug, Parser)]
#[command(
    name = "mesh-sidecar",
    version,
    about = "The mesh's sidecar proxy: mTLS in and out, intentions, failover, metrics"
)]
struct Cli {
    /// The ID of the service this sidecar fronts; its connect proxy registration (the
    /// service's `sidecar_service`) configures everything.
    #[arg(long = "sidecar-for", value_name = "SERVICE-ID", conflicts_with_all = ["proxy_id", "service"])]
    sidecar_for: Option<String>,
    /// The ID of a connect proxy registration to serve.
    #[arg(long = "proxy-id", value_name = "ID", conflicts_with = "service")]
    proxy_id: Option<String>,
    /// Ad hoc: the service whose identity the sidecar carries; nothing needs registering.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// Ad hoc: an upstream as NAME:PORT, served on 127.0.0.1:PORT; repeatable.
    #[arg(long = "upstream", value_name = "NAME:PORT", requires = "service")]
    upstreams: Vec<String>,
    /// Ad hoc: the public mTLS listener's address.
    #[arg(long, value_name = "ADDR:PORT", requires = "service")]
    listen: Option<SocketAddr>,
    /// Ad hoc: where the application listens (needed with -listen).
    #[arg(long = "service-addr", value_name = "ADDR:PORT", requires = "listen")]
    service_addr: Option<SocketAddr>,
    /// Ad hoc: the protocol of the listeners: tcp, http, http2 or grpc (default: what the
    /// config entries say, else tcp).
    #[arg(long, requires = "service")]
    protocol: Option<String>,
    /// The local agent's HTTP API (default: MESH_HTTP_ADDR, CONSUL_HTTP_ADDR, or
    /// 127.0.0.1:8500).
    #[arg(long = "http-addr", value_name = "ADDR")]
    http_addr: Option<String>,
    /// The ACL token for the agent (default: MESH_HTTP_TOKEN or CONSUL_HTTP_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Serve Prometheus metrics on ADDR:PORT at /metrics (overrides the registration's
    /// `prometheus_bind_addr`).
    #[arg(long = "metrics-addr", value_name = "ADDR:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// How long established connections may finish after SIGTERM, in seconds.
    #[arg(long = "drain-seconds", default_value_t = 30)]
    drain_seconds: u64,
    #[arg(long = "log-level", default_value = "info")]
    log_level: config::LogLevel,
    #[arg(long = "log-json")]
    log_json: bool,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

impl Cli {
    fn options(&self) -> anyhow::Result<Options> {
        let addr = self
            .http_addr
            .clone()
            .or_else(|| env(&["MESH_HTTP_ADDR", "CONSUL_HTTP_ADDR"]))
            .unwrap_or_else(|| "127.0.0.1:8500".to_owned());
        let token = self
            .token
            .clone()
            .or_else(|| env(&["MESH_HTTP_TOKEN", "CONSUL_HTTP_TOKEN"]));
        let mode = match (&self.sidecar_for, &self.proxy_id, &self.service) {
            (Some(id), _, _) => Mode::SidecarFor(id.clone()),
            (None, Some(id), _) => Mode::ProxyId(id.clone()),
            (None, None, Some(service)) => {
                let protocol = match &self.protocol {
                    None => None,
                    Some(text) => Some(proxy::Protocol::parse(text).with_context(|| {
                        format!("-protocol {text:?}: expected tcp, http, http2 or grpc")
                    })?),
                };
                Mode::AdHoc(sidecar::config::ad_hoc(
                    service,
                    self.listen,
                    self.service_addr,
                    &self.upstreams,
                    protocol,
                )?)
            }
            (None, None, None) => {
                anyhow::bail!("say which proxy to run: -sidecar-for, -proxy-id or -service")
            }
        };
        Ok(Options {
            agent: AgentApi::new(&addr, token)?,
            mode,
            metrics_addr: self.metrics_addr,
            drain_grace: Duration::from_secs(self.drain_seconds),
        })
    }
}

fn main() {
    let cli = Cli::parse_from(config::cli::consul_style_args(std::env::args()));
    config::cli::init_logging(cli.log_level, cli.log_json);
    if let Err(e) = run(&cli) {
        tracing::error!("{e:#}");
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let options = cli.options()?;
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let sidecar = Sidecar::start(options).await?;
        until_stopped().await?;
        tracing::info!("draining connections");
        sidecar.shutdown().await;
        Ok(())
    })
}

/// Each proxied connection holds two descriptors: lift the soft limit to the hard one.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

async fn until_stopped() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
