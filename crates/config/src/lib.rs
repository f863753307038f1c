//! Agent configuration: loads Consul-style JSON and HCL config files, config dirs and
//! command-line overrides into one validated [`Config`], using Consul's key names
//! (`bootstrap_expect`, `ports { http = 8500 }`, ...). Every error names the file (or flag)
//! and the full dotted key it is about; unknown keys are errors, never ignored.
//!
//! Also home to Go duration text ([`parse_go_duration`], [`format_go_duration`]), which other
//! crates reuse for Consul's wire format.
//!
//! Also the command-line conventions both agent binaries share ([`cli`]).
//!
//! This crate reads files and nothing else: it never depends on tokio, raft or HTTP.

pub mod cli;
mod config;
mod duration;
mod error;
mod file;
mod keys;
mod overrides;
mod resolve;

use std::fs;
use std::path::PathBuf;

pub use crate::config::{
    Acl, AutoEncrypt, Autopilot, Config, Connect, Dns, DownPolicy, IntentionPolicy, Limits,
    LogLevel, ParseLogLevelError, Performance, Ports, RecursorStrategy, Soa, Tls, TlsVersion,
    PORT_DISABLED, TLS_CIPHER_SUITES,
};
pub use crate::duration::{format_go_duration, parse_go_duration, DurationError};
pub use crate::error::{ConfigError, ConfigSource};
pub use crate::file::hcl_to_json;
pub use crate::keys::reference_markdown;
pub use crate::overrides::{
    AclOverrides, AutoEncryptOverrides, AutopilotOverrides, ConnectOverrides,
    DeprecatedTlsOverrides, DnsOverrides, LimitsOverrides, Overrides, PerformanceOverrides,
    PortsOverrides, TlsOverrides,
};

/// Loads the agent configuration.
///
/// Order, later winning: built-in defaults, `files` in the order given, then each of `dirs`
/// with its `*.json` and `*.hcl` files in lexical order (other files are ignored, like
/// Consul), then `overrides`. `retry_join` lists append instead of replacing. If
/// `overrides.dev` is set, `-dev` defaults fill whatever nothing else set: server and
/// bootstrap on, bind and client 127.0.0.1, node name "dev", raft multiplier 1, debug
/// logging, gRPC port 8502. The result is then validated.
pub fn load(
    files: &[PathBuf],
    dirs: &[PathBuf],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    load_with_hostname(files, dirs, overrides, hostname)
}

fn load_with_hostname(
    files: &[PathBuf],
    dirs: &[PathBuf],
    overrides: &Overrides,
    hostname: impl FnOnce() -> String,
) -> Result<Config, ConfigError> {
    let mut layers = keys::Layers::default();
    let mut paths = files.to_vec();
    for dir in dirs {
        paths.extend(file::dir_files(dir)?);
    }
    for path in &paths {
        let root = file::read(path)?;
        layers.apply_file(path, &root)?;
    }
    layers.apply_flags(overrides);
    layers.values.dev = overrides.dev;
    let mut config = resolve::resolve(layers, hostname)?;
    config.sources = Sources {
        files: files.to_vec(),
        dirs: dirs.to_vec(),
        overrides: overrides.clone(),
    };
    Ok(config)
}

/// Where a configuration was read from, so that it can be read again (`/v1/agent/reload`,
/// SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub files: Vec<PathBuf>,
    pub dirs: Vec<PathBuf>,
    pub overrides: Overrides,
}

impl Sources {
    /// Reads the configuration again, as [`load`] did the first time.
    pub fn load(&self) -> Result<Config, ConfigError> {
        load(&self.files, &self.dirs, &self.overrides)
    }
}

/// The machine's hostname, the default node name like in Consul.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| {
            let name = fs::read_to_string(path).ok()?.trim().to_owned();
            (!name.is_empty()).then_some(name)
        })
        .unwrap_or_else(|| config::FALLBACK_NODE_NAME.to_owned())
}

#[cfg(test)]
mod tests;
