//! System prerequisites a fresh Debian machine lacks: libclang for RocksDB's bindgen step.
//! Installed with apt-get when missing (the developer machines and CI run as root).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Where Debian's libclang packages put the shared library bindgen loads.
const LIBCLANG_GLOBS: &[&str] = &[
    "/usr/lib/llvm-",
    "/usr/lib/x86_64-linux-gnu/",
    "/usr/lib/aarch64-linux-gnu/",
];

fn has_libclang() -> bool {
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH") {
        return Path::new(&dir).exists();
    }
    let llvm_dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().starts_with(LIBCLANG_GLOBS[0]))
        .map(|p| p.join("lib"));
    let lib_dirs = LIBCLANG_GLOBS[1..]
        .iter()
        .map(|d| Path::new(d).to_path_buf());
    llvm_dirs.chain(lib_dirs).any(|dir| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libclang")
                    && name.contains(".so")
                    && !name.starts_with("libclang-cpp")
            })
    })
}

pub fn ensure() -> anyhow::Result<()> {
    if has_libclang() {
        return Ok(());
    }
    eprintln!("xtask: libclang is missing (RocksDB's bindgen needs it); installing libclang-dev");
    apt_install(&["libclang-dev"])
}

pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let install = |cmd: &mut Command| -> anyhow::Result<bool> {
        Ok(cmd
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {cmd:?}"))?
            .success())
    };
    let mut apt = Command::new("apt-get");
    apt.args(["install", "-y", "-q"]).args(packages);
    if install(&mut apt)? {
        return Ok(());
    }
    // A fresh machine has no package lists yet.
    install(Command::new("apt-get").args(["update", "-q"]))?;
    let mut retry = Command::new("apt-get");
    retry.args(["install", "-y", "-q"]).args(packages);
    if !install(&mut retry)? {
        bail!("could not install {packages:?} with apt-get; install them and retry");
    }
    Ok(())
}
