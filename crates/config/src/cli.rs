//! What both agent binaries do with their command line and log output: Consul's single-dash
//! long flags (`-retry-join`) and logging at the configured level.

/// Rewrites Consul's single-dash long flags (`-data-dir`) to the double-dash form the
/// argument parser expects; the program name and short flags are left alone.
pub fn consul_style_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let single_dash_long = arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if i > 0 && single_dash_long {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

/// Logs to stderr at `level` (or as `RUST_LOG` says), as text or JSON lines.
pub fn init_logging(level: crate::LogLevel, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Our crates at the configured level; openraft's chatter and hickory's line per DNS
        // request quieter.
        tracing_subscriber::EnvFilter::new(format!(
            "{},openraft=warn,hickory_server=warn,hickory_proto=warn",
            level.as_str()
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = ["mesh", "-data-dir", "/x", "--dev", "-h", "-1"].map(String::from);
        assert_eq!(
            super::consul_style_args(args),
            ["mesh", "--data-dir", "/x", "--dev", "-h", "-1"]
        );
    }
}
