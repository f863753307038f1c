//! `mesh-bench`: the benchmark driver behind `cargo xtask bench <area>`.
//!
//! Thin: parses the command line and hands each area to its module in the `bench` library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mesh-bench",
    about = "Benchmarks mesh against its peers (server CPU per op, RSS, throughput, latency)"
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
}

fn main() -> anyhow::Result<()> {
    let command = bench::machine::command_line(std::env::args());
    match Cli::parse().area {
        Area::Kv(args) => bench::kv::run(args, &command),
        Area::Catalog(args) => bench::catalog::run(args, &command),
    }
}
