//! Consul's `Normalize` and `Validate` of the two kinds, in Consul's order and with its
//! texts, plus what mesh refuses on top: a protocol its proxies do not speak, and a proxy mode
//! Consul itself does not define.
//!
//! Consul checks many fields mesh keeps opaque (upstream overrides, envoy extensions, access
//! logs, failover policies); those are stored as sent and not validated here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ConfigEntryError;
use crate::go;
use crate::model::{ConfigEntry, ConfigEntryWrite, JsonObject, Kind, Mode, Protocol, PROXY_GLOBAL};

/// Consul's limits on `Meta` (`structs.metaMaxKeyPairs` and friends).
const META_MAX_PAIRS: usize = 64;
const META_KEY_MAX: usize = 128;
const META_VALUE_MAX: usize = 512;
/// Consul's bound on `Config.envoy_hcp_metrics_bind_socket_dir`.
const MAX_SOCKET_DIR: usize = 70;

/// The entry a write stores (its indexes still 0), or Consul's refusal.
pub(crate) fn normalize(write: &ConfigEntryWrite) -> Result<ConfigEntry, ConfigEntryError> {
    match write.kind {
        Kind::ServiceDefaults => service_defaults(write),
        Kind::ProxyDefaults => proxy_defaults(write),
    }
}

/// The name a delete of `name` refers to: a proxy-defaults' is `global` whether given or not
/// (Consul's `Normalize`, which a delete runs too).
pub(crate) fn delete_name(kind: Kind, name: &str) -> Result<String, ConfigEntryError> {
    match kind {
        Kind::ServiceDefaults => Ok(name.to_owned()),
        Kind::ProxyDefaults => proxy_name(name),
    }
}

fn service_defaults(w: &ConfigEntryWrite) -> Result<ConfigEntry, ConfigEntryError> {
    // Normalize.
    let protocol = w.protocol.to_lowercase();
    // Validate.
    if w.name.is_empty() {
        return Err(invalid("Name is required"));
    }
    if w.name == "*" {
        return Err(invalid(
            "service-defaults name must be the name of a service, and not a wildcard",
        ));
    }
    let mut errors = meta_errors(&w.meta);
    if let Some(balance) = w.other.get("BalanceInboundConnections") {
        let text = go::weak_string(balance).unwrap_or_else(|| go::value(balance));
        if !text.is_empty() && text != "exact_balance" {
            errors.push(format!(
                "invalid value for balance_inbound_connections: {text}"
            ));
        }
    }
    // Consul answers a bad TLS mode alone, before the list.
    check_mutual_tls(&w.other)?;
    if !errors.is_empty() {
        return Err(ConfigEntryError::Invalid(go::multierror(&errors)));
    }
    let protocol =
        Protocol::parse(&protocol).ok_or_else(|| invalid(&unsupported_protocol(&protocol)))?;
    Ok(entry(w, w.name.clone(), protocol, parse_mode(&w.mode)?))
}

fn proxy_defaults(w: &ConfigEntryWrite) -> Result<ConfigEntry, ConfigEntryError> {
    // Normalize.
    let name = proxy_name(&w.name)?;
    let protocol = compute_protocol(w.config.as_ref())?;
    // Validate.
    let errors = meta_errors(&w.meta);
    if !errors.is_empty() {
        return Err(ConfigEntryError::Invalid(go::multierror(&errors)));
    }
    if let Some(Value::String(dir)) = w
        .config
        .as_ref()
        .and_then(|c| c.get("envoy_hcp_metrics_bind_socket_dir"))
    {
        if dir.len() > MAX_SOCKET_DIR {
            return Err(ConfigEntryError::Invalid(format!(
                "Config: envoy_hcp_metrics_bind_socket_dir length {} exceeds max {MAX_SOCKET_DIR}",
                dir.len()
            )));
        }
    }
    check_mutual_tls(&w.other)?;
    let parsed = Protocol::parse(&protocol)
        .ok_or_else(|| invalid(&format!("Config: {}", unsupported_protocol(&protocol))))?;
    Ok(entry(w, name, parsed, parse_mode(&w.mode)?))
}

fn entry(w: &ConfigEntryWrite, name: String, protocol: Protocol, mode: Mode) -> ConfigEntry {
    ConfigEntry {
        kind: w.kind,
        name,
        protocol,
        mode,
        config: w.config.clone(),
        meta: w.meta.clone(),
        other: w.other.clone(),
        create_index: 0,
        modify_index: 0,
    }
}

fn proxy_name(name: &str) -> Result<String, ConfigEntryError> {
    match name {
        "" | PROXY_GLOBAL => Ok(PROXY_GLOBAL.to_owned()),
        other => Err(ConfigEntryError::Invalid(format!(
            "invalid name ({}), only {} is supported",
            go::quote(other),
            go::quote(PROXY_GLOBAL)
        ))),
    }
}

/// Consul's `ComputeProtocol`: `Config.protocol` (the key in any case), weakly decoded.
fn compute_protocol(config: Option<&JsonObject>) -> Result<String, ConfigEntryError> {
    let Some(config) = config else {
        return Ok(String::new());
    };
    let value = config
        .get("protocol")
        .or_else(|| {
            config
                .0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("protocol"))
                .map(|(_, v)| v)
        })
        .unwrap_or(&Value::Null);
    // No decode hook unwraps a list here.
    match value {
        Value::Array(_) | Value::Object(_) => {
            Err(ConfigEntryError::Invalid(go::mapstructure_error(&[
                go::unconvertible("protocol", value),
            ])))
        }
        other => Ok(go::weak_string(other).unwrap_or_default()),
    }
}

/// Consul's `validateConfigEntryMeta` (keys in order, where Go's map order is random).
fn meta_errors(meta: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    if meta.len() > META_MAX_PAIRS {
        errors.push(format!(
            "Meta exceeds maximum element count {META_MAX_PAIRS}"
        ));
    }
    for (key, value) in meta {
        if key.len() > META_KEY_MAX {
            errors.push(format!(
                "Meta key {} exceeds maximum length {META_KEY_MAX}",
                go::quote(key)
            ));
        }
        if value.len() > META_VALUE_MAX {
            errors.push(format!(
                "Meta value for key {} exceeds maximum length {META_VALUE_MAX}",
                go::quote(key)
            ));
        }
    }
    errors
}

/// Consul's `MutualTLSMode.validate`.
fn check_mutual_tls(other: &JsonObject) -> Result<(), ConfigEntryError> {
    let Some(value) = other.get("MutualTLSMode") else {
        return Ok(());
    };
    let mode = go::weak_string(value).unwrap_or_else(|| go::value(value));
    if matches!(mode.as_str(), "" | "strict" | "permissive") {
        return Ok(());
    }
    Err(ConfigEntryError::Invalid(format!(
        "Invalid MutualTLSMode {}. Must be one of \"\", \"strict\", or \"permissive\".",
        go::quote(&mode)
    )))
}

/// Consul's `ValidateProxyMode`, which its own config entries do not run: a mode no proxy
/// knows is refused here rather than stored.
fn parse_mode(mode: &str) -> Result<Mode, ConfigEntryError> {
    Mode::parse(mode).ok_or_else(|| {
        ConfigEntryError::Invalid(format!("Invalid Proxy Mode: {}", go::quote(mode)))
    })
}

/// mesh's own refusal: Consul stores any protocol and its proxies treat an unknown one as
/// `tcp`; mesh's sidecars would silently do the same, so the mistake is caught at the write.
fn unsupported_protocol(protocol: &str) -> String {
    format!(
        "invalid protocol {}: mesh supports \"tcp\", \"http\", \"http2\" and \"grpc\"",
        go::quote(protocol)
    )
}

fn invalid(text: &str) -> ConfigEntryError {
    ConfigEntryError::Invalid(text.to_owned())
}

#[cfg(test)]
mod tests;
