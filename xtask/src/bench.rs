//! `cargo xtask bench <area> [args]`: builds the release binaries and runs `mesh-bench`.
//!
//! The measuring itself lives in `crates/bench` (binary `mesh-bench`); this module only builds
//! `mesh-server` and `mesh-bench` in release mode and replaces itself with
//! `mesh-bench <area> [args] --mesh-server <target>/release/mesh-server`.
//! Examples: `cargo xtask bench kv --rounds 3 --concurrency 1,16,64`,
//! `cargo xtask bench catalog --watchers 1000,10000`, `cargo xtask bench catalog --quick`.
//!
//! Target directory: `$CARGO_TARGET_DIR`, else `$HOME/.cache/mesh/target`, so the long RocksDB
//! build is shared with other clones and survives `cargo clean` in this one.

use anyhow::bail;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.is_empty() {
        bail!(
            "usage: cargo xtask bench <area> [args]; areas: kv, catalog \
             (see `cargo xtask bench <area> --help`)"
        );
    }
    // `--only etcd` measures no mesh-server, so it need not be built (nor RocksDB with it).
    let needs_server = !wants_only_peer(args) && !crate::is_help(args);
    crate::build_release_and_exec("bench", "mesh-bench", args, needs_server)
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
}
