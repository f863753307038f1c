//! A config entry as a client writes it ([`ConfigEntryWrite`]) and as the store keeps it
//! ([`ConfigEntry`]).
//!
//! These types travel in raft commands and snapshots, encoded with postcard, which is not
//! self-describing: they use no serde feature that needs the format to describe itself, and
//! the opaque JSON parts are carried as JSON text ([`JsonObject`]).

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::ConfigEntryError;

/// The only name a `proxy-defaults` entry may have.
pub const PROXY_GLOBAL: &str = "global";

/// The kinds of config entry mesh serves. The order is Consul's listing order (by kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `proxy-defaults`: the one global entry (`global`) with defaults for every proxy.
    ProxyDefaults,
    /// `service-defaults`: the defaults of one service, its protocol first of all.
    ServiceDefaults,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::ProxyDefaults, Kind::ServiceDefaults];

    /// A kind as Consul spells it (exactly); any other is Consul's `invalid config entry kind`.
    pub fn parse(kind: &str) -> Result<Kind, ConfigEntryError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| ConfigEntryError::UnknownKind(kind.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ProxyDefaults => "proxy-defaults",
            Kind::ServiceDefaults => "service-defaults",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol a service speaks, which decides whether its sidecar proxies at L4 or L7.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// Not set here: the next layer decides (proxy-defaults, then `tcp`).
    #[default]
    Unset,
    Tcp,
    Http,
    Http2,
    Grpc,
}

impl Protocol {
    /// The protocols mesh's proxies speak, as Consul spells them (lower case).
    pub const SUPPORTED: [Protocol; 4] = [
        Protocol::Tcp,
        Protocol::Http,
        Protocol::Http2,
        Protocol::Grpc,
    ];

    /// A protocol in any case (`HTTP` is `http`, as Consul lower-cases it); `None` for one mesh
    /// does not speak.
    pub fn parse(text: &str) -> Option<Protocol> {
        if text.is_empty() {
            return Some(Protocol::Unset);
        }
        Protocol::SUPPORTED
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Unset => "",
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
        }
    }

    /// Whether requests are seen (and L7 intentions apply).
    pub fn is_l7(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// How a proxy's listeners are dialed (Consul's `ProxyMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Not set here: the next layer decides.
    #[default]
    Default,
    Direct,
    Transparent,
}

impl Mode {
    /// Consul's `ValidateProxyMode`: exact spellings only.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "" => Some(Mode::Default),
            "direct" => Some(Mode::Direct),
            "transparent" => Some(Mode::Transparent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Default => "",
            Mode::Direct => "direct",
            Mode::Transparent => "transparent",
        }
    }
}

/// A JSON object kept as the client sent it. Encoded as JSON text, so postcard can carry it
/// and it reads back exactly (key order included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map(JsonObject)
            .map_err(D::Error::custom)
    }
}

/// The body of `PUT /v1/config` after Consul's `DecodeConfigEntry`: names matched, types
/// decoded, unknown fields refused; not yet normalized nor validated, so that the server can
/// answer with Consul's texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntryWrite {
    pub kind: Kind,
    pub name: String,
    /// service-defaults' `Protocol`, as sent. (A proxy-defaults' protocol is in `config`.)
    pub protocol: String,
    pub mode: String,
    /// proxy-defaults' `Config`, opaque; `None` when absent (Go's nil map).
    pub config: Option<JsonObject>,
    pub meta: BTreeMap<String, String>,
    /// Every other field, under its Go name (nested field names of the structs mesh knows the
    /// shape of are Go's too).
    pub other: JsonObject,
}

impl ConfigEntryWrite {
    /// An entry of `kind` named `name` with nothing else set.
    pub fn new(kind: Kind, name: &str) -> Self {
        ConfigEntryWrite {
            kind,
            name: name.to_owned(),
            protocol: String::new(),
            mode: String::new(),
            config: None,
            meta: BTreeMap::new(),
            other: JsonObject::default(),
        }
    }
}

/// A stored config entry: normalized, validated, with the raft indexes of its creation and
/// last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub kind: Kind,
    /// As last written (lookups ignore case).
    pub name: String,
    /// service-defaults: its `Protocol`. proxy-defaults: its `Config.protocol` (Consul's
    /// `ComputeProtocol`), which Consul does not show as a field of its own.
    pub protocol: Protocol,
    pub mode: Mode,
    /// proxy-defaults' `Config`, as sent.
    pub config: Option<JsonObject>,
    pub meta: BTreeMap<String, String>,
    /// The other fields, as in [`ConfigEntryWrite::other`].
    pub other: JsonObject,
    pub create_index: u64,
    pub modify_index: u64,
}
