//! Reading config files and dirs into a generic JSON value tree, whatever their format.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Hcl,
}

/// Like Consul, the extension alone decides the format (case-sensitive).
fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "hcl" => Some(Format::Hcl),
        _ => None,
    }
}

/// Reads and parses one file; HCL blocks become nested objects as in HCL's JSON form.
pub(crate) fn read(path: &Path) -> Result<Value, ConfigError> {
    let format = format_of(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(format, &text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

fn parse(format: Format, text: &str) -> Result<Value, String> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        Format::Hcl => hcl_to_json(text),
    }
}

/// HCL text as the JSON value tree Consul reads it as: blocks become nested objects, and
/// expressions such as `-1` are evaluated (with no variables). Errors are one line.
pub fn hcl_to_json(text: &str) -> Result<Value, String> {
    hcl::eval::from_str(text, &hcl::eval::Context::new()).map_err(|e| match e {
        // The parser's own Display spans several lines; keep one.
        hcl::Error::Parse(e) => format!(
            "line {}, column {}: {}",
            e.location().line(),
            e.location().column(),
            e.message()
        ),
        other => other.to_string(),
    })
}

/// The `*.json` and `*.hcl` files in `dir`, in lexical order of their names. Other files
/// and subdirectories are skipped, like Consul.
pub(crate) fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir_error = |error| ConfigError::ReadDir {
        path: dir.to_owned(),
        error,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        if format_of(&path).is_none() {
            continue;
        }
        // `fs::metadata` follows symlinks, so a link to a file counts as a file.
        let metadata = fs::metadata(&path).map_err(|error| ConfigError::Read {
            path: path.clone(),
            error,
        })?;
        if metadata.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
