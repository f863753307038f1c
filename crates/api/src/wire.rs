//! Consul's JSON shapes, kept apart from the domain types so each can change on its own.
//!
//! Requests are decoded like Go's `encoding/json`: field names match case-insensitively and
//! unknown fields are ignored.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// `DirEntry`, in Consul's field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DirEntry<'a> {
    pub lock_index: u64,
    pub key: &'a str,
    pub flags: u64,
    /// Base64; `null` for an empty value, as Go marshals a nil byte slice.
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> DirEntry<'a> {
    pub fn new(entry: &'a kv::DirEntry) -> Self {
        DirEntry {
            lock_index: entry.lock_index,
            key: &entry.key,
            flags: entry.flags,
            value: (!entry.value.is_empty()).then(|| B64.encode(&entry.value)),
            session: entry.session.as_deref(),
            create_index: entry.create_index,
            modify_index: entry.modify_index,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceCheck<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    #[serde(rename = "Namespace")]
    pub namespace: &'a str,
}

/// `Session`, in Consul's field order. `LockDelay` is integer nanoseconds on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Session<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    pub name: &'a str,
    pub node: &'a str,
    pub lock_delay: u64,
    pub behavior: &'static str,
    #[serde(rename = "TTL")]
    pub ttl: String,
    pub node_checks: Vec<&'a str>,
    pub service_checks: Option<Vec<ServiceCheck<'a>>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl<'a> Session<'a> {
    pub fn new(s: &'a kv::Session) -> Self {
        Session {
            id: &s.id,
            name: &s.name,
            node: &s.node,
            lock_delay: s.lock_delay_ns,
            behavior: match s.behavior {
                kv::Behavior::Release => "release",
                kv::Behavior::Delete => "delete",
            },
            ttl: s.ttl.map(config::format_go_duration).unwrap_or_default(),
            node_checks: s.node_checks.iter().map(String::as_str).collect(),
            service_checks: (!s.service_checks.is_empty()).then(|| {
                s.service_checks
                    .iter()
                    .map(|c| ServiceCheck {
                        id: &c.id,
                        namespace: &c.namespace,
                    })
                    .collect()
            }),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// Parses a request body as JSON, with Consul's 400 text on failure.
pub fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("Request decode failed: {err}")))
}

/// Looks a field up the way Go's `encoding/json` does: exact match first, then any case.
pub fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A string field; absent or `null` gives `None`, a non-string is a decode error.
pub fn string_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Request decode failed: field {name}: expected a string, got {other}"
        ))),
    }
}

/// An unsigned integer field.
pub fn u64_field(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Request decode failed: field {name}: expected an unsigned integer, got {v}"
            ))
        }),
    }
}

/// A list of strings field.
pub fn strings_field(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(ApiError::BadRequest(format!(
                    "Request decode failed: field {name}: expected strings, got {other}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Request decode failed: field {name}: expected a list, got {other}"
        ))),
    }
}

pub fn decode_base64(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    B64.decode(value)
}

/// RFC 3339 in UTC with millisecond precision, from Unix milliseconds (`2026-11-24T16:02:00.123Z`).
pub fn rfc3339_from_unix_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}
