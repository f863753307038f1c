//! The short version of `cargo xtask e2e` in CI: the README's story on three servers, three
//! client agents and two applications with sidecars, each host in its own network namespace
//! (DNS, KV, intentions, kill -9 of the leader and of a client agent, snapshots), through the
//! `e2e` crate, against the debug binaries `cargo xtask test` builds. Where namespaces cannot
//! be created (not root), the run says so and falls back to 127.0.9.0/24; `MESH_E2E_LOOPBACK=1`
//! asks for that layout. `MESH_E2E_KEEP_LOGS=DIR` keeps the processes' logs and the run's
//! transcript there.

use test_support::binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_story_runs_end_to_end() -> anyhow::Result<()> {
    let server = binary("mesh-server")?;
    let bin_dir = server
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", server.display()))?;
    let report = ::e2e::run(::e2e::Options {
        short: true,
        keep_logs: std::env::var_os("MESH_E2E_KEEP_LOGS").map(Into::into),
        bin_dir,
        loopback: std::env::var_os("MESH_E2E_LOOPBACK").is_some_and(|v| v == "1"),
    })
    .await?;
    println!("{report}");
    Ok(())
}
