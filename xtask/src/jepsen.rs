//! `cargo xtask jepsen [args]`: builds the release binaries and runs `mesh-jepsen`.
//!
//! The recording, the nemesis and the check live in `crates/jepsen` (binary `mesh-jepsen`) and
//! `crates/linearizability`; this module only builds `mesh-server` and `mesh-jepsen` in release
//! mode into the shared target directory and replaces itself with
//! `mesh-jepsen [args] --mesh-server <target>/release/mesh-server`.
//! Example: `cargo xtask jepsen --duration-secs 10 --seed 7 --consistency stale`.
//! Exit status is mesh-jepsen's: 0 linearizable, 1 anomaly, 2 checker undecided, 3 run failed.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::Context as _;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let help = is_help(args);
    if !help {
        crate::prereqs::ensure()?;
    }
    let target_dir = crate::target_dir();
    let mut build = crate::cargo();
    build.args(["build", "--release", "-p", "jepsen"]);
    if !help {
        build.args(["-p", "mesh-server"]);
    }
    eprintln!("building release binaries into {}", target_dir.display());
    crate::run(&mut build)?;

    let release = target_dir.join("release");
    let mut jepsen = Command::new(release.join("mesh-jepsen"));
    jepsen.args(args);
    if !help && !has_server_arg(args) {
        jepsen.arg("--mesh-server").arg(release.join("mesh-server"));
    }
    // `exec` returns only on failure; on success mesh-jepsen's exit status is ours.
    let err = jepsen.exec();
    Err(err).with_context(|| format!("running {}", release.join("mesh-jepsen").display()))
}

fn has_server_arg(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--mesh-server" || a.starts_with("--mesh-server="))
}

fn is_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h") || args.first().is_some_and(|a| a == "help")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_given_server_binary_is_kept_and_help_builds_nothing_else() {
        assert!(has_server_arg(&args("--mesh-server /x --seed 1")));
        assert!(has_server_arg(&args("--mesh-server=/x")));
        assert!(!has_server_arg(&args("--duration-secs 10")));
        assert!(is_help(&args("--help")));
        assert!(!is_help(&args("--seed 3")));
    }
}
