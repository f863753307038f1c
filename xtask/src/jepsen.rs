//! `cargo xtask jepsen [args]`: builds the release binaries and runs `mesh-jepsen`.
//!
//! The recording, the nemesis and the check live in `crates/jepsen` (binary `mesh-jepsen`) and
//! `crates/linearizability`; this module only builds `mesh-server` and `mesh-jepsen` in release
//! mode into the shared target directory and replaces itself with
//! `mesh-jepsen [args] --mesh-server <target>/release/mesh-server`.
//! Examples: `cargo xtask jepsen --duration-secs 10 --seed 7 --consistency stale`, and with
//! network partitions (servers in network namespaces; needs root and `ip`):
//! `cargo xtask jepsen --partitions --duration-secs 60`.
//! Exit status is mesh-jepsen's: 0 linearizable, 1 anomaly, 2 checker undecided, 3 run failed,
//! 4 partitions asked for but network namespaces unavailable here.

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let products: &[&str] = if crate::is_help(args) {
        &[]
    } else {
        &["mesh-server"]
    };
    crate::build_release_and_exec("jepsen", "mesh-jepsen", args, products)
}

#[cfg(test)]
mod tests {
    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn help_builds_nothing_else() {
        assert!(crate::is_help(&args("--help")));
        assert!(!crate::is_help(&args("--seed 3")));
    }
}
