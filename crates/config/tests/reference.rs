//! docs/configuration.md is generated from the config crate's key table and must stay equal
//! to [`config::reference_markdown`]. `MESH_UPDATE_DOCS=1 cargo test -p config` rewrites it.

use std::path::PathBuf;

fn reference_path() -> PathBuf {
    // The runtime value: a test binary reused from another checkout's build would carry a
    // compile-time path that may no longer exist.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("../../docs/configuration.md")
}

#[test]
fn configuration_reference_is_up_to_date() {
    let path = reference_path();
    let expected = config::reference_markdown();
    if std::env::var_os("MESH_UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()))
            + 1;
        panic!(
            "{} is out of date with crates/config/src/keys.rs (first difference at line {line}); \
             regenerate it with `MESH_UPDATE_DOCS=1 cargo test -p config`",
            path.display()
        );
    }
}
