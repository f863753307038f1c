//! `mesh-server`: the server agent binary. Parses flags and config files, sets up logging,
//! runs [`server::Server`] until SIGINT or SIGTERM, then shuts down gracefully.
//!
//! Thin on purpose: no logic lives here that a test would need.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// jemalloc rather than the system allocator: a write that wakes thousands of blocking queries
/// allocates and frees their responses all at once, where glibc's malloc spent ~40% of the
/// fan-out's CPU time (see docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A mesh server agent (Consul-compatible HTTP API). Flags may be written with one dash, as
/// Consul's are (`-dev`), or two.
#[derive(Debug, Parser)]
#[command(name = "mesh-server", version)]
struct Args {
    /// Single in-memory-fast dev server on 127.0.0.1 (data in a temporary directory).
    #[arg(long)]
    dev: bool,
    /// A JSON or HCL config file; repeatable, later files win.
    #[arg(long = "config-file", value_name = "FILE")]
    config_files: Vec<PathBuf>,
    /// A directory of *.json and *.hcl config files, loaded in name order; repeatable.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dirs: Vec<PathBuf>,
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    #[arg(long = "node")]
    node_name: Option<String>,
    #[arg(long = "node-id")]
    node_id: Option<String>,
    #[arg(long)]
    datacenter: Option<String>,
    #[arg(long = "bind")]
    bind_addr: Option<IpAddr>,
    #[arg(long = "advertise")]
    advertise_addr: Option<IpAddr>,
    #[arg(long = "client")]
    client_addr: Option<IpAddr>,
    #[arg(long = "http-port")]
    http_port: Option<i32>,
    #[arg(long = "dns-port")]
    dns_port: Option<i32>,
    #[arg(long = "server-port")]
    server_port: Option<i32>,
    /// The gossip (LAN) port, UDP; 8301 by default.
    #[arg(long = "serf-lan-port")]
    serf_lan_port: Option<i32>,
    /// The gossip encryption key: the base64 of 32 bytes (`mesh-client keygen`).
    #[arg(long)]
    encrypt: Option<String>,
    /// Accepted for Consul compatibility; mesh-server always runs as a server.
    #[arg(long)]
    server: bool,
    /// Bootstrap a single-server datacenter.
    #[arg(long)]
    bootstrap: bool,
    #[arg(long = "bootstrap-expect")]
    bootstrap_expect: Option<u32>,
    /// Another agent's gossip address (port 8301 by default); repeatable. Servers find each
    /// other through gossip and form the datacenter once `bootstrap_expect` of them meet.
    #[arg(long = "retry-join")]
    retry_join: Vec<String>,
    /// The DNS domain answered (default "mesh").
    #[arg(long)]
    domain: Option<String>,
    /// A second DNS domain answered the same way.
    #[arg(long = "alt-domain")]
    alt_domain: Option<String>,
    /// Where DNS questions outside the mesh's domains go (`ip` or `ip:port`); repeatable.
    #[arg(long = "recursor")]
    recursors: Vec<String>,
    /// trace, debug, info, warn or err.
    #[arg(long = "log-level")]
    log_level: Option<config::LogLevel>,
    #[arg(long = "log-json")]
    log_json: bool,
    #[arg(long = "raft-multiplier")]
    raft_multiplier: Option<u8>,
    /// Quorum-loss recovery: make this (stopped) server the only voter of a new configuration,
    /// then exit. See docs/operations.md.
    #[arg(long)]
    recover: bool,
    /// With -recover: another surviving server's RPC address to compare logs with; repeatable.
    #[arg(long = "survivor", requires = "recover")]
    survivors: Vec<String>,
    /// With -recover: proceed even if a survivor has more log or cannot be asked.
    #[arg(long = "recover-force", requires = "recover")]
    recover_force: bool,
}

impl Args {
    fn overrides(&self) -> config::Overrides {
        let mut o = config::Overrides {
            datacenter: self.datacenter.clone(),
            node_name: self.node_name.clone(),
            node_id: self.node_id.clone(),
            data_dir: self.data_dir.clone(),
            bind_addr: self.bind_addr,
            advertise_addr: self.advertise_addr,
            client_addr: self.client_addr,
            // mesh-server is always a server agent (mesh-client runs client agents).
            server: Some(true),
            bootstrap_expect: self.bootstrap_expect,
            bootstrap: self.bootstrap.then_some(true),
            retry_join: self.retry_join.clone(),
            log_level: self.log_level,
            log_json: self.log_json.then_some(true),
            dev: self.dev.then_some(true),
            ..Default::default()
        };
        o.ports.http = self.http_port;
        o.ports.dns = self.dns_port;
        o.ports.server = self.server_port;
        o.ports.serf_lan = self.serf_lan_port;
        o.encrypt = self.encrypt.clone();
        o.dns.domain = self.domain.clone();
        o.dns.alt_domain = self.alt_domain.clone();
        o.dns.recursors = self.recursors.clone();
        o.performance.raft_multiplier = self.raft_multiplier;
        o
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse_from(config::cli::consul_style_args(std::env::args()));
    let config = config::load(&args.config_files, &args.config_dirs, &args.overrides())?;
    config::cli::init_logging(config.log_level, config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(run(config, &args));
    // Dropping the runtime drops every task still holding the store, so RocksDB closes here,
    // before process exit, and not concurrently with it.
    drop(runtime);
    result
}

async fn run(config: config::Config, args: &Args) -> anyhow::Result<()> {
    if args.recover {
        let report = server::recover(&config, &args.survivors, args.recover_force).await?;
        println!("{report}");
        return Ok(());
    }
    let server = server::Server::start(config.clone()).await?;
    tokio::select! {
        stop = agent::signals::until_stopped(server.agent()) => {
            let stop = stop.context("installing the signal handlers")?;
            if stop.leaves(&config) {
                tracing::info!(signal = ?stop, "leaving the datacenter before stopping");
                match server.leave().await {
                    Ok(()) => server.left().await,
                    Err(err) => tracing::warn!(%err, "leaving the datacenter failed"),
                }
            }
        }
        () = server.left() => tracing::info!("left the datacenter"),
    }
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}
