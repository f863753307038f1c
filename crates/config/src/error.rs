//! Errors from loading configuration; every one names the file or flag a value came from.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Built-in default.
    Default,
    /// A `-dev` mode default.
    Dev,
    /// A config file, as given or as found in a config dir (`dir/a.json`).
    File(PathBuf),
    /// A command-line flag, e.g. `-bootstrap-expect`.
    Flag(&'static str),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Default => f.write_str("default"),
            ConfigSource::Dev => f.write_str("-dev"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Flag(flag) => f.write_str(flag),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{}: cannot read config dir: {error}", path.display())]
    ReadDir { path: PathBuf, error: io::Error },
    #[error("{}: unknown config format: the file name must end in .json or .hcl", path.display())]
    UnknownFormat { path: PathBuf },
    /// `message` is the parser's, with line and column.
    #[error("{}: parse error: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// `key` is the full dotted path, e.g. `ports.htp`.
    #[error("{}: unknown key \"{key}\"", path.display())]
    UnknownKey { path: PathBuf, key: String },
    /// A key Consul knows but mesh does not implement yet.
    #[error("{}: key \"{key}\" is not supported yet", path.display())]
    UnsupportedKey { path: PathBuf, key: String },
    /// `got` is the offending value rendered as JSON.
    #[error("{origin}: invalid value for \"{key}\": expected {expected}, got {got}")]
    InvalidValue {
        origin: ConfigSource,
        key: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("{origin}: \"{key}\" requires {requirement}")]
    Requires {
        origin: ConfigSource,
        key: &'static str,
        requirement: &'static str,
    },
    #[error("{origin}: \"{key}\" and \"{other}\" are mutually exclusive (\"{other}\" set by {other_origin})")]
    Conflict {
        origin: ConfigSource,
        key: &'static str,
        other: &'static str,
        other_origin: ConfigSource,
    },
}
