//! The table of config keys: how each file value is parsed, which flag overrides it, and
//! the walk that checks a parsed file against the table so that unknown keys are reported
//! with their full dotted path.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::config::LogLevel;
use crate::duration::parse_go_duration;
use crate::error::{ConfigError, ConfigSource};
use crate::overrides::Overrides;

/// One leaf key, e.g. `ports.http`.
pub(crate) struct Key {
    pub(crate) path: &'static str,
    pub(crate) flag: &'static str,
    /// Parses a file value into the merged values; `Err` describes what was expected.
    set: fn(&mut Overrides, &Value) -> Result<(), &'static str>,
    /// Copies the flag's value if it was given, and says whether it was.
    take_flag: fn(&mut Overrides, &Overrides) -> bool,
}

macro_rules! key {
    ($path:literal, $flag:literal, $($field:ident).+, $parse:expr) => {
        Key {
            path: $path,
            flag: $flag,
            set: |values, value| {
                values.$($field).+ = Some(($parse)(value)?);
                Ok(())
            },
            take_flag: |values, flags| match &flags.$($field).+ {
                Some(given) => {
                    values.$($field).+ = Some(given.clone());
                    true
                }
                None => false,
            },
        }
    };
}

/// `service`/`services` and `check`/`checks`: one definition or a list of them, appended
/// across files and kept as written; the agent validates them when it starts. No flags.
macro_rules! definitions {
    ($path:literal, $field:ident) => {
        Key {
            path: $path,
            flag: "",
            set: |values, value| append_definitions(&mut values.$field, value),
            take_flag: |_, _| false,
        }
    };
}

pub(crate) const PORT_EXPECTED: &str = "a port number between 1 and 65535, or -1 to disable";
pub(crate) const RAFT_MULTIPLIER_EXPECTED: &str = "an integer between 1 and 10";

pub(crate) static KEYS: &[Key] = &[
    key!("datacenter", "-datacenter", datacenter, string),
    key!("node_name", "-node", node_name, string),
    key!("node_id", "-node-id", node_id, string),
    key!("data_dir", "-data-dir", data_dir, path),
    key!("bind_addr", "-bind", bind_addr, ip),
    key!("advertise_addr", "-advertise", advertise_addr, ip),
    key!("client_addr", "-client", client_addr, ip),
    key!("ports.http", "-http-port", ports.http, port),
    key!("ports.https", "-https-port", ports.https, port),
    key!("ports.dns", "-dns-port", ports.dns, port),
    key!("ports.server", "-server-port", ports.server, port),
    key!("ports.serf_lan", "-serf-lan-port", ports.serf_lan, port),
    key!("ports.grpc", "-grpc-port", ports.grpc, port),
    key!("server", "-server", server, boolean),
    key!(
        "bootstrap_expect",
        "-bootstrap-expect",
        bootstrap_expect,
        non_negative
    ),
    key!("bootstrap", "-bootstrap", bootstrap, boolean),
    Key {
        path: "retry_join",
        flag: "-retry-join",
        // Lists append across files and flags, like Consul.
        set: |values, value| {
            values.retry_join.extend(strings(value)?);
            Ok(())
        },
        take_flag: |values, flags| {
            values.retry_join.extend(flags.retry_join.iter().cloned());
            !flags.retry_join.is_empty()
        },
    },
    definitions!("service", services),
    definitions!("services", services),
    definitions!("check", checks),
    definitions!("checks", checks),
    key!(
        "enable_script_checks",
        "-enable-script-checks",
        enable_script_checks,
        boolean
    ),
    key!(
        "enable_local_script_checks",
        "-enable-local-script-checks",
        enable_local_script_checks,
        boolean
    ),
    key!("log_level", "-log-level", log_level, log_level),
    key!("log_json", "-log-json", log_json, boolean),
    key!(
        "limits.kv_max_value_size",
        "-kv-max-value-size",
        limits.kv_max_value_size,
        non_negative
    ),
    key!(
        "limits.txn_max_req_len",
        "-txn-max-req-len",
        limits.txn_max_req_len,
        non_negative
    ),
    key!(
        "limits.http_max_conns_per_client",
        "-http-max-conns-per-client",
        limits.http_max_conns_per_client,
        non_negative
    ),
    key!(
        "session_ttl_min",
        "-session-ttl-min",
        session_ttl_min,
        duration
    ),
    key!(
        "check_update_interval",
        "-check-update-interval",
        check_update_interval,
        duration
    ),
    key!("ae_interval", "-ae-interval", ae_interval, duration),
    key!(
        "raft_snapshot_threshold",
        "-raft-snapshot-threshold",
        raft_snapshot_threshold,
        non_negative
    ),
    key!(
        "raft_trailing_logs",
        "-raft-trailing-logs",
        raft_trailing_logs,
        non_negative
    ),
    key!(
        "performance.raft_multiplier",
        "-raft-multiplier",
        performance.raft_multiplier,
        raft_multiplier
    ),
    key!("encrypt", "-encrypt", encrypt, gossip_key),
    key!("reconnect_timeout", "", reconnect_timeout, duration),
    key!("domain", "-domain", dns.domain, dns_domain),
    key!("alt_domain", "-alt-domain", dns.alt_domain, dns_domain),
    Key {
        path: "recursors",
        flag: "-recursor",
        // Lists append across files and flags, like Consul.
        set: |values, value| {
            values.dns.recursors.extend(recursors(value)?);
            Ok(())
        },
        take_flag: |values, flags| {
            values
                .dns
                .recursors
                .extend(flags.dns.recursors.iter().cloned());
            !flags.dns.recursors.is_empty()
        },
    },
    key!("dns_config.node_ttl", "", dns.node_ttl, duration),
    key!("dns_config.service_ttl", "", dns.service_ttl, duration_map),
    key!("dns_config.only_passing", "", dns.only_passing, boolean),
    key!(
        "dns_config.udp_answer_limit",
        "",
        dns.udp_answer_limit,
        non_negative
    ),
    key!(
        "dns_config.a_record_limit",
        "",
        dns.a_record_limit,
        non_negative
    ),
    key!(
        "dns_config.enable_truncate",
        "",
        dns.enable_truncate,
        boolean
    ),
    key!(
        "dns_config.recursor_timeout",
        "",
        dns.recursor_timeout,
        duration
    ),
    key!(
        "dns_config.recursor_strategy",
        "",
        dns.recursor_strategy,
        recursor_strategy
    ),
    key!("dns_config.soa.refresh", "", dns.soa_refresh, non_negative),
    key!("dns_config.soa.retry", "", dns.soa_retry, non_negative),
    key!("dns_config.soa.expire", "", dns.soa_expire, non_negative),
    key!("dns_config.soa.min_ttl", "", dns.soa_min_ttl, non_negative),
    key!(
        "telemetry.prometheus_retention_time",
        "",
        prometheus_retention_time,
        duration
    ),
    key!("connect.enabled", "", connect.enabled, boolean),
    key!("connect.ca_provider", "", connect.ca_provider, ca_provider),
    key!("connect.ca_config", "", connect.ca_config, object),
    key!(
        "default_intention_policy",
        "",
        default_intention_policy,
        intention_policy
    ),
];

/// Keys that hold other keys; a file gives each as an object (or, after HCL repeats a
/// block, a list of objects applied in order).
static SECTIONS: &[&str] = &[
    "ports",
    "limits",
    "performance",
    "telemetry",
    "dns_config",
    "dns_config.soa",
    "connect",
];

/// Sections of which mesh implements only some keys: the others are unsupported, not unknown.
/// (`dns_config.allow_stale`/`max_stale`/`use_cache` are among them: DNS always answers from
/// the agent's own view, kept current by blocking queries.)
static PARTLY_SUPPORTED: &[&str] = &["telemetry", "dns_config", "connect"];

/// Keys Consul accepts that mesh does not implement yet. Rejected, never ignored, so that
/// nobody believes e.g. gossip encryption is on when it is not.
static UNSUPPORTED: &[&str] = &[
    "acl",
    "addresses",
    "autopilot",
    "check",
    "checks",
    "ports.serf_wan",
    "service",
    "services",
    "tls",
    "ui_config",
];

/// Values merged so far, and which file or flag set each key last.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) values: Overrides,
    sources: BTreeMap<&'static str, ConfigSource>,
}

impl Layers {
    pub(crate) fn source(&self, key: &str) -> ConfigSource {
        self.sources
            .get(key)
            .cloned()
            .unwrap_or(ConfigSource::Default)
    }

    pub(crate) fn set_source(&mut self, key: &'static str, source: ConfigSource) {
        self.sources.insert(key, source);
    }

    /// Applies one parsed file on top of what is merged so far.
    pub(crate) fn apply_file(&mut self, file: &Path, root: &Value) -> Result<(), ConfigError> {
        let Value::Object(map) = root else {
            return Err(ConfigError::Parse {
                path: file.to_owned(),
                message: format!("expected an object at the top level, got {}", render(root)),
            });
        };
        self.apply_object(file, "", map)
    }

    fn apply_object(
        &mut self,
        file: &Path,
        prefix: &str,
        map: &Map<String, Value>,
    ) -> Result<(), ConfigError> {
        for (name, value) in map {
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(key) = KEYS.iter().find(|key| key.path == full) {
                (key.set)(&mut self.values, value).map_err(|expected| {
                    ConfigError::InvalidValue {
                        origin: ConfigSource::File(file.to_owned()),
                        key: key.path,
                        expected,
                        got: render(value),
                    }
                })?;
                self.set_source(key.path, ConfigSource::File(file.to_owned()));
            } else if let Some(section) = SECTIONS.iter().find(|section| **section == full) {
                self.apply_section(file, section, value)?;
            } else if UNSUPPORTED.contains(&full.as_str()) || PARTLY_SUPPORTED.contains(&prefix) {
                return Err(ConfigError::UnsupportedKey {
                    path: file.to_owned(),
                    key: full,
                });
            } else {
                return Err(ConfigError::UnknownKey {
                    path: file.to_owned(),
                    key: full,
                });
            }
        }
        Ok(())
    }

    fn apply_section(
        &mut self,
        file: &Path,
        section: &'static str,
        value: &Value,
    ) -> Result<(), ConfigError> {
        match value {
            Value::Object(map) => self.apply_object(file, section, map),
            Value::Array(items) if items.iter().all(Value::is_object) => items
                .iter()
                .try_for_each(|item| self.apply_section(file, section, item)),
            _ => Err(ConfigError::InvalidValue {
                origin: ConfigSource::File(file.to_owned()),
                key: section,
                expected: "an object",
                got: render(value),
            }),
        }
    }

    /// Applies command-line overrides on top of every file.
    pub(crate) fn apply_flags(&mut self, flags: &Overrides) {
        for key in KEYS {
            if (key.take_flag)(&mut self.values, flags) {
                self.set_source(key.path, ConfigSource::Flag(key.flag));
            }
        }
    }
}

/// A value as it appears in an error message: JSON, shortened if long.
pub(crate) fn render(value: &Value) -> String {
    const MAX_CHARS: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        return text;
    }
    let short: String = text.chars().take(MAX_CHARS).collect();
    format!("{short}...")
}

fn append_definitions(list: &mut Vec<Value>, value: &Value) -> Result<(), &'static str> {
    const EXPECTED: &str = "an object or a list of objects";
    match value {
        Value::Object(_) => list.push(value.clone()),
        Value::Array(items) if items.iter().all(Value::is_object) => {
            list.extend(items.iter().cloned())
        }
        _ => return Err(EXPECTED),
    }
    Ok(())
}

fn string(value: &Value) -> Result<String, &'static str> {
    value.as_str().map(str::to_owned).ok_or("a string")
}

fn path(value: &Value) -> Result<PathBuf, &'static str> {
    match value.as_str() {
        Some(text) if !text.is_empty() => Ok(PathBuf::from(text)),
        _ => Err("a non-empty path"),
    }
}

fn ip(value: &Value) -> Result<IpAddr, &'static str> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or("an IP address")
}

fn boolean(value: &Value) -> Result<bool, &'static str> {
    value.as_bool().ok_or("a boolean (true or false)")
}

fn non_negative<T: TryFrom<u64>>(value: &Value) -> Result<T, &'static str> {
    value
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or("a non-negative integer")
}

fn port(value: &Value) -> Result<i32, &'static str> {
    value
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or(PORT_EXPECTED)
}

fn raft_multiplier(value: &Value) -> Result<u8, &'static str> {
    value
        .as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(RAFT_MULTIPLIER_EXPECTED)
}

fn log_level(value: &Value) -> Result<LogLevel, &'static str> {
    value
        .as_str()
        .and_then(|text| LogLevel::from_str(text).ok())
        .ok_or("one of trace, debug, info, warn, err")
}

fn duration(value: &Value) -> Result<std::time::Duration, &'static str> {
    value
        .as_str()
        .and_then(|text| parse_go_duration(text).ok())
        .ok_or("a duration such as \"10s\" or \"1m30s\"")
}

/// `encrypt`: the base64 of a 32-byte AES-256 key (what `keygen` prints).
pub(crate) fn gossip_key(value: &Value) -> Result<String, &'static str> {
    use base64::Engine as _;
    const EXPECTED: &str = "the base64 of 32 random bytes, as `mesh-client keygen` prints";
    let text = value.as_str().ok_or(EXPECTED)?;
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(key) if key.len() == 32 => Ok(text.to_owned()),
        _ => Err(EXPECTED),
    }
}

/// A DNS domain: dot-separated labels of letters, digits and `-`; a trailing dot is dropped.
pub(crate) fn dns_domain(value: &Value) -> Result<String, &'static str> {
    const EXPECTED: &str = "a DNS domain such as \"mesh\" or \"mesh.example.com\"";
    let text = value.as_str().ok_or(EXPECTED)?.trim_end_matches('.');
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if text.is_empty() || !text.split('.').all(label_ok) {
        return Err(EXPECTED);
    }
    Ok(text.to_ascii_lowercase())
}

/// `recursors`: a list of `ip` or `ip:port` (a single string is accepted too).
pub(crate) fn recursors(value: &Value) -> Result<Vec<String>, &'static str> {
    const EXPECTED: &str = "a list of IP addresses, each with an optional port";
    let list = match value {
        Value::String(one) => vec![one.clone()],
        _ => strings(value).map_err(|_| EXPECTED)?,
    };
    let valid = |addr: &String| {
        addr.parse::<IpAddr>().is_ok() || addr.parse::<std::net::SocketAddr>().is_ok()
    };
    if list.iter().all(valid) {
        Ok(list)
    } else {
        Err(EXPECTED)
    }
}

/// `dns_config.service_ttl`: service name (or `*` prefix) to duration.
fn duration_map(
    value: &Value,
) -> Result<std::collections::BTreeMap<String, std::time::Duration>, &'static str> {
    const EXPECTED: &str = "an object of service names to durations, such as {\"*\": \"5s\"}";
    let map = value.as_object().ok_or(EXPECTED)?;
    map.iter()
        .map(|(name, ttl)| Ok((name.clone(), duration(ttl).map_err(|_| EXPECTED)?)))
        .collect()
}

fn recursor_strategy(value: &Value) -> Result<crate::RecursorStrategy, &'static str> {
    match value.as_str() {
        Some("sequential") => Ok(crate::RecursorStrategy::Sequential),
        Some("random") => Ok(crate::RecursorStrategy::Random),
        _ => Err("\"sequential\" or \"random\""),
    }
}

fn ca_provider(value: &Value) -> Result<String, &'static str> {
    match value.as_str() {
        Some("consul") => Ok("consul".to_owned()),
        _ => Err("\"consul\" (the built-in CA, the only provider)"),
    }
}

/// An object; HCL gives a repeated block as a list of objects, merged in order.
fn object(value: &Value) -> Result<Map<String, Value>, &'static str> {
    const EXPECTED: &str = "an object";
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::Array(items) => items.iter().try_fold(Map::new(), |mut merged, item| {
            merged.extend(item.as_object().ok_or(EXPECTED)?.clone());
            Ok(merged)
        }),
        _ => Err(EXPECTED),
    }
}

fn intention_policy(value: &Value) -> Result<crate::IntentionPolicy, &'static str> {
    match value.as_str() {
        Some("allow") => Ok(crate::IntentionPolicy::Allow),
        Some("deny") => Ok(crate::IntentionPolicy::Deny),
        _ => Err("\"allow\" or \"deny\""),
    }
}

fn strings(value: &Value) -> Result<Vec<String>, &'static str> {
    const EXPECTED: &str = "a list of strings";
    value
        .as_array()
        .ok_or(EXPECTED)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or(EXPECTED))
        .collect()
}
