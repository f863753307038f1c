//! Crate-wide invariants that are easier to check on the source than to keep by review.

use std::fs;
use std::path::{Path, PathBuf};

/// What the sans-IO core must never mention: a runtime, sockets, the clock, or ambient randomness.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "tokio",
    "UdpSocket",
    "std::net::UdpSocket",
    "SystemTime",
    "Instant::now",
    "rand::rng()",
    "rand::random",
    "thread_rng",
    "std::thread",
];

/// Modules allowed to do IO: the driver, and the simulator (which owns a simulated clock's origin).
fn is_io_module(path: &Path, src: &Path) -> bool {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or_default();
    matches!(first, "driver.rs" | "driver" | "sim.rs" | "sim")
        || relative.file_name().is_some_and(|name| name == "tests.rs")
}

/// The crate's directory, read at run time: a test binary reused from another checkout's build
/// (a shared target dir) carries a compile-time path that may no longer exist.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_is_sans_io() {
    let src = crate_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offences = Vec::new();
    for file in files.iter().filter(|file| !is_io_module(file, &src)) {
        let text = fs::read_to_string(file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN_IN_CORE.iter().filter(|word| code.contains(*word)) {
                offences.push(format!("{}:{}: {word}", file.display(), number + 1));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "IO in the core:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_crate_knows_nothing_of_raft_or_the_catalog() {
    let manifest = fs::read_to_string(crate_dir().join("Cargo.toml")).expect("manifest");
    for crate_name in ["raft-store", "openraft", "catalog", "rocksdb", "axum"] {
        assert!(
            !manifest.contains(crate_name),
            "gossip must not depend on {crate_name}"
        );
    }
}
