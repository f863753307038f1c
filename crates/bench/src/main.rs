//! `mesh-bench`: the benchmark driver behind `cargo xtask bench <area>`.
//!
//! Thin: parses the command line and hands each area to its module in the `bench` library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mesh-bench",
    about = "Benchmarks mesh against its peers (CPU, RSS, throughput, latency)"
)]
struct Cli {
    #[command(subcommand)]
    area: Area,
}

#[derive(Debug, Subcommand)]
enum Area {
    /// KV: mesh's Consul KV API against etcd 3.4, interleaved rounds.
    Kv(bench::kv::KvArgs),
    /// Catalog: registrations, and blocking-query fan-out to 1,000s of watchers against etcd
    /// watch streams, interleaved rounds.
    Catalog(bench::catalog::CatalogArgs),
    /// Gossip: mesh's membership (one mesh-server and N-1 mesh-client agents) against serf 0.9
    /// agents, interleaved rounds: join and failure-detection times, per-agent CPU, RSS and
    /// UDP traffic, false failures; plus a simulated thousand-node pool.
    Gossip(bench::gossip::GossipArgs),
    /// DNS: mesh's DNS interface (a mesh-server and a client agent) against Knot DNS serving
    /// the same records from a static zone, loaded by dnsperf, interleaved rounds.
    Dns(bench::dns::DnsArgs),
    /// Connect CA: leaf signings through a client agent (server and agent CPU per signing)
    /// and authorize decisions from the agent's cache, plus a burst at the default CSR limit.
    Ca(bench::ca::CaArgs),
    /// Proxy: mesh's sidecar pair (mTLS) against an HAProxy pair (TLS) and no proxy, on
    /// loopback, interleaved rounds: CPU per request, per handshake and per MB over both
    /// proxies, RSS idle and with 1,000s of connections, throughput and added latency.
    Proxy(bench::proxy::ProxyArgs),
}

fn main() -> anyhow::Result<()> {
    let command = bench::machine::command_line(std::env::args());
    match Cli::parse().area {
        Area::Kv(args) => bench::kv::run(args, &command),
        Area::Catalog(args) => bench::catalog::run(args, &command),
        Area::Gossip(args) => bench::gossip::run(args, &command),
        Area::Dns(args) => bench::dns::run(args, &command),
        Area::Ca(args) => bench::ca::run(args, &command),
        Area::Proxy(args) => bench::proxy::run(args, &command),
    }
}
