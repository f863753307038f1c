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
}

fn main() -> anyhow::Result<()> {
    let command = bench::machine::command_line(std::env::args());
    match Cli::parse().area {
        Area::Kv(args) => bench::kv::run(args, &command),
    }
}
