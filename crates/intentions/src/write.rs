//! An intention as a client writes it: the body of `POST /v1/connect/intentions`,
//! `PUT /v1/connect/intentions/:id` and `PUT /v1/connect/intentions/exact`.
//!
//! Values are kept exactly as sent (an unknown action is a string, not a parse error) so that
//! validation can answer with Consul's texts, and an empty string means "not set", as in Go.
//! These types travel in raft commands, so they use no serde feature that a
//! non-self-describing format cannot replay; the field names are Consul's, and
//! [`crate::wire::decode`] makes JSON decoding case-insensitive and null-tolerant like Go's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Consul's `structs.Intention` as a request body. Read-only fields (`Precedence`,
/// `CreatedAt`, `CreateIndex`, …) are ignored, as Consul ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntentionWrite {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "SourceNS")]
    pub source_ns: String,
    #[serde(rename = "SourceName")]
    pub source_name: String,
    #[serde(rename = "DestinationNS")]
    pub destination_ns: String,
    #[serde(rename = "DestinationName")]
    pub destination_name: String,
    #[serde(rename = "SourcePartition")]
    pub source_partition: String,
    #[serde(rename = "DestinationPartition")]
    pub destination_partition: String,
    #[serde(rename = "SourcePeer")]
    pub source_peer: String,
    #[serde(rename = "SourceType")]
    pub source_type: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Permissions")]
    pub permissions: Vec<PermissionWrite>,
    #[serde(rename = "Meta")]
    pub meta: BTreeMap<String, String>,
}

/// Consul's `IntentionPermission` (the `JWT` part is not supported and ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionWrite {
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "HTTP")]
    pub http: Option<HttpPermissionWrite>,
}

/// Consul's `IntentionHTTPPermission`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpPermissionWrite {
    #[serde(rename = "PathExact")]
    pub path_exact: String,
    #[serde(rename = "PathPrefix")]
    pub path_prefix: String,
    #[serde(rename = "PathRegex")]
    pub path_regex: String,
    #[serde(rename = "Header")]
    pub header: Vec<HeaderPermissionWrite>,
    #[serde(rename = "Methods")]
    pub methods: Vec<String>,
}

/// Consul's `IntentionHTTPHeaderPermission`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeaderPermissionWrite {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Present")]
    pub present: bool,
    #[serde(rename = "Exact")]
    pub exact: String,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Suffix")]
    pub suffix: String,
    #[serde(rename = "Regex")]
    pub regex: String,
    #[serde(rename = "Invert")]
    pub invert: bool,
}
