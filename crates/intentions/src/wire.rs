//! Consul's JSON for intentions: what `/v1/connect/intentions*` return, how request bodies are
//! read, and how the `name` forms of the query parameters are split.
//!
//! Output is built as [`serde_json::Value`] in Go's field order with Go's `omitempty` rules.
//! Input follows Go's `encoding/json`: field names match case-insensitively (not snake_case:
//! these endpoints use the plain decoder), unknown fields are ignored, and `null` leaves a
//! field at its zero value.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::model::{Action, Intention, Permission, SourceType};
use crate::write::{HttpPermissionWrite, PermissionWrite};

// ---- output ------------------------------------------------------------------------------

/// One intention as Consul returns it (`GET /v1/connect/intentions/exact` and friends).
pub fn intention_json(ixn: &Intention) -> Value {
    let mut out = Map::new();
    // Go's MarshalJSON puts these two first and omits them when zero.
    if let Some(t) = &ixn.created_at {
        out.insert("CreatedAt".into(), json!(t));
    }
    if let Some(t) = &ixn.updated_at {
        out.insert("UpdatedAt".into(), json!(t));
    }
    if !ixn.id.is_empty() {
        out.insert("ID".into(), json!(ixn.id));
    }
    if !ixn.description.is_empty() {
        out.insert("Description".into(), json!(ixn.description));
    }
    out.insert("SourceNS".into(), json!(ixn.source_ns));
    out.insert("SourceName".into(), json!(ixn.source_name));
    out.insert("DestinationNS".into(), json!(ixn.destination_ns));
    out.insert("DestinationName".into(), json!(ixn.destination_name));
    out.insert("SourceType".into(), json!(ixn.source_type.as_str()));
    if let Some(action) = ixn.action {
        out.insert("Action".into(), json!(action.as_str()));
    }
    if !ixn.permissions.is_empty() {
        let perms: Vec<Value> = ixn.permissions.iter().map(permission_json).collect();
        out.insert("Permissions".into(), Value::Array(perms));
    }
    if !ixn.meta.is_empty() {
        out.insert("Meta".into(), json!(ixn.meta));
    }
    out.insert("Precedence".into(), json!(ixn.precedence));
    out.insert("CreateIndex".into(), json!(ixn.create_index));
    out.insert("ModifyIndex".into(), json!(ixn.modify_index));
    Value::Object(out)
}

/// A list of intentions (`[]` when empty, never `null`).
pub fn intentions_json<'a>(list: impl IntoIterator<Item = &'a Intention>) -> Value {
    Value::Array(list.into_iter().map(intention_json).collect())
}

fn permission_json(p: &Permission) -> Value {
    let raw = p.to_write();
    let mut out = Map::new();
    out.insert("Action".into(), json!(raw.action));
    if let Some(http) = &raw.http {
        out.insert("HTTP".into(), http_json(http));
    }
    Value::Object(out)
}

fn http_json(h: &HttpPermissionWrite) -> Value {
    let mut out = Map::new();
    for (key, value) in [
        ("PathExact", &h.path_exact),
        ("PathPrefix", &h.path_prefix),
        ("PathRegex", &h.path_regex),
    ] {
        if !value.is_empty() {
            out.insert(key.into(), json!(value));
        }
    }
    if !h.header.is_empty() {
        let headers = h
            .header
            .iter()
            .map(|hdr| {
                let mut o = Map::new();
                o.insert("Name".into(), json!(hdr.name));
                if hdr.present {
                    o.insert("Present".into(), json!(true));
                }
                for (key, value) in [
                    ("Exact", &hdr.exact),
                    ("Prefix", &hdr.prefix),
                    ("Suffix", &hdr.suffix),
                    ("Regex", &hdr.regex),
                ] {
                    if !value.is_empty() {
                        o.insert(key.into(), json!(value));
                    }
                }
                if hdr.invert {
                    o.insert("Invert".into(), json!(true));
                }
                Value::Object(o)
            })
            .collect();
        out.insert("Header".into(), Value::Array(headers));
    }
    if !h.methods.is_empty() {
        out.insert("Methods".into(), json!(h.methods));
    }
    Value::Object(out)
}

// ---- input -------------------------------------------------------------------------------

/// Why a body could not be read; `Display` is the decoder's message (`EOF` for an empty
/// body, as Go's). Consul prefixes it: `Request decode failed: …` (400) for exact and
/// update writes, `Failed to decode request body: …` (500) for a legacy create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Field names we read, in Go's spelling.
const FIELDS: &[&str] = &[
    "ID",
    "Description",
    "SourceNS",
    "SourceName",
    "DestinationNS",
    "DestinationName",
    "SourcePartition",
    "DestinationPartition",
    "SourcePeer",
    "SourceSamenessGroup",
    "SourceType",
    "Action",
    "Permissions",
    "HTTP",
    "JWT",
    "PathExact",
    "PathPrefix",
    "PathRegex",
    "Header",
    "Methods",
    "Name",
    "Present",
    "Exact",
    "Prefix",
    "Suffix",
    "Regex",
    "Invert",
    "Meta",
    "Precedence",
    "CreatedAt",
    "UpdatedAt",
    "CreateIndex",
    "ModifyIndex",
    "Target",
    "ClientCertURI",
    "ClientCertSerial",
    "Namespace",
    "Partition",
];

/// Rewrites known field names to Go's spelling (exact match first, then ignoring ASCII case,
/// as Go does) and drops `null` members. `Meta` keys are user data and kept verbatim.
pub fn normalize_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if value.is_null() {
                    continue;
                }
                let key = canonical(&key).map_or(key, str::to_owned);
                let value = if key == "Meta" {
                    opaque(value)
                } else {
                    normalize_keys(value)
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

/// A string map from the user: keys untouched, `null` values are Go's zero value.
fn opaque(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, if v.is_null() { json!("") } else { v }))
                .collect(),
        ),
        other => other,
    }
}

fn canonical(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|f| **f == key)
        .or_else(|| FIELDS.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

/// Reads a request body the way Go's `encoding/json` would into Consul's struct: an
/// [`IntentionWrite`](crate::IntentionWrite) or an [`AuthorizeRequest`](crate::AuthorizeRequest).
/// A `null` body reads as `{}`.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError("EOF".to_owned()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError(e.to_string()))?;
    let value = if value.is_null() { json!({}) } else { value };
    serde_json::from_value(normalize_keys(value)).map_err(|e| DecodeError(e.to_string()))
}

/// Consul's intention JSON as read back (a `match` or list answer fetched by a sidecar).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IntentionJson {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Description")]
    description: String,
    #[serde(rename = "SourceNS")]
    source_ns: String,
    #[serde(rename = "SourceName")]
    source_name: String,
    #[serde(rename = "DestinationNS")]
    destination_ns: String,
    #[serde(rename = "DestinationName")]
    destination_name: String,
    #[serde(rename = "SourceType")]
    source_type: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Permissions")]
    permissions: Vec<PermissionWrite>,
    #[serde(rename = "Meta")]
    meta: BTreeMap<String, String>,
    #[serde(rename = "Precedence")]
    precedence: u32,
    #[serde(rename = "CreatedAt")]
    created_at: Option<String>,
    #[serde(rename = "UpdatedAt")]
    updated_at: Option<String>,
    #[serde(rename = "CreateIndex")]
    create_index: u64,
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

/// An intention from Consul's JSON (the inverse of [`intention_json`]).
pub fn parse_intention(value: Value) -> Result<Intention, DecodeError> {
    let raw: IntentionJson =
        serde_json::from_value(normalize_keys(value)).map_err(|e| DecodeError(e.to_string()))?;
    let permissions = raw
        .permissions
        .iter()
        .map(Permission::from_write)
        .collect::<Result<Vec<_>, _>>()
        .map_err(DecodeError)?;
    let action = match (raw.action.as_str(), permissions.is_empty()) {
        ("", false) => None,
        (text, _) => Some(
            Action::parse(text)
                .ok_or_else(|| DecodeError(format!("invalid intention action {text:?}")))?,
        ),
    };
    if !matches!(raw.source_type.as_str(), "" | "consul") {
        return Err(DecodeError(format!(
            "unsupported SourceType {:?}",
            raw.source_type
        )));
    }
    Ok(Intention {
        id: raw.id,
        description: raw.description,
        source_ns: raw.source_ns,
        source_name: raw.source_name,
        destination_ns: raw.destination_ns,
        destination_name: raw.destination_name,
        source_type: SourceType::Consul,
        action,
        permissions,
        meta: raw.meta,
        precedence: raw.precedence,
        created_at: raw.created_at,
        updated_at: raw.updated_at,
        create_index: raw.create_index,
        modify_index: raw.modify_index,
    })
}

// ---- query parameters ----------------------------------------------------------------------

/// A `source`/`destination`/`name` query value split like Consul's
/// `parseIntentionStringComponent`: `name`, `ns/name`, `partition/ns/name`, and (where
/// allowed) `peer:P/name`, `peer:P/ns/name`. Empty parts mean "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntentionName {
    pub peer: String,
    pub partition: String,
    pub namespace: String,
    pub name: String,
}

/// Splits a name; the error is Consul's text, which the caller wraps as
/// `source "…" is invalid: …`.
pub fn parse_name(input: &str, allow_peer: bool) -> Result<IntentionName, String> {
    if input.starts_with("peer:") && !allow_peer {
        return Err("cannot specify a peer here".to_owned());
    }
    let parts: Vec<&str> = input.split('/').collect();
    let peer = |p: &str| p.strip_prefix("peer:").map(str::to_owned);
    let name = |peer: String, partition: &str, namespace: &str, name: &str| IntentionName {
        peer,
        partition: partition.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    match parts.as_slice() {
        [only] => {
            if only.starts_with("peer:") {
                return Err("need to specify the service name as well".to_owned());
            }
            Ok(name(String::new(), "", "", only))
        }
        [first, svc] => Ok(match peer(first) {
            Some(p) => name(p, "", "", svc),
            None => name(String::new(), "", first, svc),
        }),
        [first, ns, svc] => Ok(match peer(first) {
            Some(p) => name(p, "", ns, svc),
            None => name(String::new(), first, ns, svc),
        }),
        _ => Err("input can contain at most two '/'".to_owned()),
    }
}

#[cfg(test)]
mod tests;
