//! `cargo xtask bench <area> [args]`: builds the release binaries and runs `mesh-bench`.
//!
//! The measuring itself lives in `crates/bench` (binary `mesh-bench`); this module only builds
//! `mesh-bench` and the product binaries the area runs (`mesh-server`; for `gossip`, `dns` and `ca`
//! also `mesh-client`; for `proxy` also `mesh-sidecar`) in release mode and replaces itself with
//! `mesh-bench <area> [args] --mesh-server <target>/release/mesh-server [--mesh-client ...]`.
//! Examples: `cargo xtask bench kv --rounds 3 --concurrency 1,16,64`,
//! `cargo xtask bench catalog --watchers 1000,10000`, `cargo xtask bench catalog --quick`,
//! `cargo xtask bench gossip --sizes 20,50`, `cargo xtask bench gossip --quick`,
//! `cargo xtask bench dns`, `cargo xtask bench dns --quick --qps 20000`,
//! `cargo xtask bench ca`, `cargo xtask bench ca --quick`, `cargo xtask bench proxy`,
//! `cargo xtask bench proxy --quick`, `cargo xtask bench proxy --only haproxy`.
//!
//! Target directory: `$CARGO_TARGET_DIR`, else `$HOME/.cache/mesh/target`, so the long RocksDB
//! build is shared with other clones and survives `cargo clean` in this one.

use anyhow::bail;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.is_empty() {
        bail!(
            "usage: cargo xtask bench <area> [args]; areas: kv, catalog, gossip, dns, ca, proxy \
             (see `cargo xtask bench <area> --help`)"
        );
    }
    crate::build_release_and_exec("bench", "mesh-bench", args, products(args))
}

/// The product binaries an invocation runs, so they are built and passed to `mesh-bench`.
/// `--only etcd` (or `--only serf`, `--only haproxy`) measures no mesh binary, so none need be
/// built (nor RocksDB with them); the gossip, dns and ca areas run client agents besides the
/// server (`dns --no-client` does not), the proxy area runs sidecars configured by the server.
fn products(args: &[String]) -> &'static [&'static str] {
    if wants_only_peer(args) || crate::is_help(args) {
        &[]
    } else if args.first().is_some_and(|a| a == "proxy") {
        &["mesh-server", "mesh-sidecar"]
    } else if args.first().is_some_and(|a| a == "gossip" || a == "ca")
        || (args.first().is_some_and(|a| a == "dns") && !args.iter().any(|a| a == "--no-client"))
    {
        &["mesh-server", "mesh-client"]
    } else {
        &["mesh-server"]
    }
}

fn wants_only_peer(args: &[String]) -> bool {
    args.windows(2).any(|w| w[0] == "--only" && w[1] != "mesh")
        || args
            .iter()
            .any(|a| a.strip_prefix("--only=").is_some_and(|v| v != "mesh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn only_peer_skips_the_server_build() {
        assert!(wants_only_peer(&args("kv --only etcd")));
        assert!(wants_only_peer(&args("kv --rounds 1 --only=etcd")));
        assert!(!wants_only_peer(&args("kv --only mesh")));
        assert!(!wants_only_peer(&args("kv --rounds 3")));
        assert!(wants_only_peer(&args("catalog --quick --only etcd")));
        assert!(!wants_only_peer(&args("catalog --watchers 1000,10000")));
        assert!(crate::is_help(&args("kv --help")));
        assert!(!crate::is_help(&args("kv --rounds 3")));
    }

    #[test]
    fn gossip_also_builds_the_client_agent() {
        assert_eq!(products(&args("kv --rounds 3")), ["mesh-server"]);
        assert_eq!(
            products(&args("gossip --quick")),
            ["mesh-server", "mesh-client"]
        );
        assert!(products(&args("gossip --only serf")).is_empty());
        assert!(products(&args("gossip --help")).is_empty());
        assert_eq!(
            products(&args("dns --quick")),
            ["mesh-server", "mesh-client"]
        );
        assert_eq!(products(&args("dns --no-client")), ["mesh-server"]);
        assert_eq!(
            products(&args("ca --quick")),
            ["mesh-server", "mesh-client"]
        );
        assert!(products(&args("dns --only knot")).is_empty());
        assert_eq!(
            products(&args("proxy --quick")),
            ["mesh-server", "mesh-sidecar"]
        );
        assert!(products(&args("proxy --only haproxy")).is_empty());
        assert!(products(&args("proxy --only direct")).is_empty());
    }
}
