//! `mesh-client`: the client agent on every node (`mesh-client agent ...`), and the operator
//! CLI (`mesh-client kv get ...`, Consul's commands). For the agent it parses flags and config
//! files, sets up logging, runs [`client::ClientAgent`] until SIGINT or SIGTERM, then shuts
//! down gracefully; operator commands live in [`cli`].
//!
//! Thin on purpose: no logic lives here that a test would need.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

mod cli;

/// jemalloc rather than the system allocator, as in `mesh-server`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "mesh-client", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the client agent.
    Agent(AgentArgs),
    /// Lists the members of the gossip pool as this agent sees them.
    Members(cli::MembersArgs),
    /// Joins the agent to the pool through other agents' gossip addresses.
    Join(cli::JoinArgs),
    /// Makes the agent leave the pool gracefully and exit.
    Leave(cli::LeaveArgs),
    /// Marks a failed member as left (with `-prune`, forgets it).
    ForceLeave(cli::ForceLeaveArgs),
    /// Lists, installs, uses or removes gossip encryption keys on every member.
    Keyring(cli::KeyringArgs),
    /// Fires a user event.
    Event(cli::EventArgs),
    /// Prints a new gossip encryption key.
    Keygen,
    /// Reads and writes the KV store.
    Kv {
        #[command(subcommand)]
        command: cli::kv::KvCommand,
    },
    /// Lists datacenters, nodes and services.
    Catalog {
        #[command(subcommand)]
        command: cli::catalog::CatalogCommand,
    },
    /// Registers and deregisters services with the local agent.
    Services {
        #[command(subcommand)]
        command: cli::services::ServicesCommand,
    },
    /// Creates, shows, checks and deletes Connect intentions.
    Intention {
        #[command(subcommand)]
        command: cli::intention::IntentionCommand,
    },
    /// Writes, reads, lists and deletes centralized config entries.
    Config {
        #[command(subcommand)]
        command: cli::config::ConfigCommand,
    },
    /// Connect: the CA's configuration.
    Connect {
        #[command(subcommand)]
        command: cli::connect::ConnectCommand,
    },
    /// The servers' raft peers and autopilot.
    Operator {
        #[command(subcommand)]
        command: cli::operator::OperatorCommand,
    },
    /// Saves, restores and inspects snapshots of the servers' state.
    Snapshot {
        #[command(subcommand)]
        command: cli::snapshot::SnapshotCommand,
    },
    /// Shows the local agent's stats.
    Info(cli::info::InfoArgs),
    /// Prints this build's version.
    Version(cli::info::VersionArgs),
    /// Makes the local agent reload its configuration files.
    Reload(cli::info::ReloadArgs),
    /// Puts the node or a service into maintenance mode, or out of it.
    Maint(cli::info::MaintArgs),
    /// Runs a command while holding a lock in the KV store.
    Lock(cli::lock::LockArgs),
    /// Runs a handler (or prints) each time a view of the catalog or KV store changes.
    Watch(cli::watch::WatchArgs),
    /// Checks configuration files and directories as an agent would load them.
    Validate(ValidateArgs),
    /// Creates the CA and certificates for agent TLS (files in the current directory).
    Tls {
        #[command(subcommand)]
        command: cli::tls::TlsCommand,
    },
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Print nothing on success.
    #[arg(long)]
    quiet: bool,
    /// Configuration files (JSON or HCL) and directories of them, loaded together.
    #[arg(required = true, value_name = "FILE_OR_DIRECTORY")]
    paths: Vec<PathBuf>,
}

/// `validate`: Consul's texts, status 1 on an invalid configuration.
fn validate(args: &ValidateArgs) -> ! {
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
        args.paths.iter().cloned().partition(|p| p.is_dir());
    match config::load(&files, &dirs, &config::Overrides::default()) {
        Ok(_) => {
            if !args.quiet {
                println!("Configuration is valid!");
            }
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("Config validation failed: {e}");
            std::process::exit(1)
        }
    }
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// A throwaway data directory and debug logging.
    #[arg(long)]
    dev: bool,
    #[arg(long = "config-file", value_name = "FILE")]
    config_files: Vec<PathBuf>,
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
    /// The gossip (LAN) port, UDP; 8301 by default.
    #[arg(long = "serf-lan-port")]
    serf_lan_port: Option<i32>,
    /// The gossip encryption key: the base64 of 32 bytes (`mesh-client keygen`; 16 or 24 also work).
    #[arg(long)]
    encrypt: Option<String>,
    /// Another agent's gossip address (port 8301 by default); repeatable. One reachable
    /// agent is enough: the servers are found through gossip.
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
    #[arg(long = "log-level")]
    log_level: Option<config::LogLevel>,
    #[arg(long = "log-json")]
    log_json: bool,
}

impl AgentArgs {
    fn overrides(&self) -> config::Overrides {
        let mut o = config::Overrides {
            datacenter: self.datacenter.clone(),
            node_name: self.node_name.clone(),
            node_id: self.node_id.clone(),
            data_dir: self.data_dir.clone(),
            bind_addr: self.bind_addr,
            advertise_addr: self.advertise_addr,
            client_addr: self.client_addr,
            // mesh-client always runs a client agent.
            server: Some(false),
            retry_join: self.retry_join.clone(),
            log_level: self.log_level,
            log_json: self.log_json.then_some(true),
            ..Default::default()
        };
        o.ports.http = self.http_port;
        o.ports.dns = self.dns_port;
        o.ports.serf_lan = self.serf_lan_port;
        o.encrypt = self.encrypt.clone();
        o.dns.domain = self.domain.clone();
        o.dns.alt_domain = self.alt_domain.clone();
        o.dns.recursors = self.recursors.clone();
        o
    }
}

fn main() -> anyhow::Result<()> {
    // Built, so that clap's own `help` subcommand is known too.
    let mut command = Cli::command();
    command.build();
    let args = cli::args::go_style(&command, std::env::args().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // Help and version go to stdout with status 0; a bad command line is status 1, as
        // Consul's flag errors are.
        Err(err) => {
            let _ = err.print();
            std::process::exit(if err.use_stderr() { 1 } else { 0 });
        }
    };
    let args = match cli.command {
        Command::Agent(args) => args,
        Command::Keygen => {
            cli::keygen();
            return Ok(());
        }
        Command::Validate(args) => validate(&args),
        command => return operator(command),
    };
    let mut config = config::load(&args.config_files, &args.config_dirs, &args.overrides())?;
    // `-dev` for a client means a throwaway data dir, not a dev server.
    config.dev = args.dev;
    config::cli::init_logging(config.log_level, config.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run(config))
}

/// Runs an operator command against the local agent. Errors end it as Consul's commands end:
/// [`cli::Exit`] with its own line and status, anything else as `Error: ...` and status 1.
fn operator(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async {
        match command {
            Command::Members(args) => cli::members(args).await,
            Command::Join(args) => cli::join(args).await,
            Command::Leave(args) => cli::leave(args).await,
            Command::ForceLeave(args) => cli::force_leave(args).await,
            Command::Keyring(args) => cli::keyring(args).await,
            Command::Event(args) => cli::event(args).await,
            Command::Kv { command } => cli::kv::run(command).await,
            Command::Catalog { command } => cli::catalog::run(command).await,
            Command::Services { command } => cli::services::run(command).await,
            Command::Intention { command } => cli::intention::run(command).await,
            Command::Config { command } => cli::config::run(command).await,
            Command::Connect { command } => cli::connect::run(command).await,
            Command::Operator { command } => cli::operator::run(command).await,
            Command::Snapshot { command } => cli::snapshot::run(command).await,
            Command::Info(args) => cli::info::info(args).await,
            Command::Version(args) => cli::info::version(args),
            Command::Reload(args) => cli::info::reload(args).await,
            Command::Maint(args) => cli::info::maint(args).await,
            Command::Lock(args) => cli::lock::run(args).await,
            Command::Watch(args) => cli::watch::run(args).await,
            Command::Tls { command } => cli::tls::run(command),
            Command::Agent(_) | Command::Keygen | Command::Validate(_) => {
                unreachable!("handled by main")
            }
        }
    });
    if let Err(err) = result {
        let code = match err.downcast_ref::<cli::Exit>() {
            Some(exit) => {
                if let Some(message) = &exit.message {
                    eprintln!("{message}");
                }
                exit.code
            }
            None => {
                eprintln!("Error: {err:#}");
                1
            }
        };
        cli::flush_stdout();
        std::process::exit(code);
    }
    Ok(())
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let agent = client::ClientAgent::start(config.clone()).await?;
    tokio::select! {
        stop = agent::signals::until_stopped(agent.agent()) => {
            let stop = stop.context("installing the signal handlers")?;
            if stop.leaves(&config) {
                tracing::info!(signal = ?stop, "leaving the datacenter before stopping");
                if let Err(err) = agent.leave().await {
                    tracing::warn!(%err, "leaving the datacenter failed");
                }
            }
        }
        () = agent.agent().left() => tracing::info!("left the datacenter"),
    }
    tracing::info!("shutting down: finishing in-flight requests");
    agent.shutdown().await;
    Ok(())
}
