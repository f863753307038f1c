//! The fields of Consul's `ServiceConfigEntry` and `ProxyConfigEntry`, in Go's order: how a
//! request may spell them (the Go name in any case, or the `alias` tag Consul's decoder
//! translates, such as `mesh_gateway`) and how Go's `encoding/json` writes them back.

use crate::model::Kind;

/// How Go writes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Decoded and written by the model itself (`Name`, `Protocol`, `Meta`, ...).
    Modelled,
    /// A scalar with `omitempty`: left out when zero (`""`, `0`, `false`).
    Scalar,
    /// A pointer with `omitempty`: left out when absent.
    Pointer,
    /// A slice with `omitempty`: left out when absent or empty.
    Slice,
    /// A struct value: always written, `{}` when absent. Its own fields are known.
    Struct(&'static [Field]),
    /// A slice of structs with `omitempty`.
    StructSlice(&'static [Field]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// The Go field name, which is also its JSON name.
    pub name: &'static str,
    /// The `alias` tag (snake_case).
    pub alias: Option<&'static str>,
    pub shape: Shape,
}

const fn field(name: &'static str, alias: Option<&'static str>, shape: Shape) -> Field {
    Field { name, alias, shape }
}

const fn scalar(name: &'static str, alias: &'static str) -> Field {
    field(name, Some(alias), Shape::Scalar)
}

const TRANSPARENT_PROXY: &[Field] = &[
    scalar("OutboundListenerPort", "outbound_listener_port"),
    scalar("DialedDirectly", "dialed_directly"),
];

const MESH_GATEWAY: &[Field] = &[field("Mode", None, Shape::Scalar)];

const EXPOSE_PATH: &[Field] = &[
    scalar("ListenerPort", "listener_port"),
    field("Path", None, Shape::Scalar),
    scalar("LocalPathPort", "local_path_port"),
    field("Protocol", None, Shape::Scalar),
    scalar("ParsedFromCheck", "parsed_from_check"),
];

const EXPOSE: &[Field] = &[
    field("Checks", None, Shape::Scalar),
    field("Paths", None, Shape::StructSlice(EXPOSE_PATH)),
];

const ACCESS_LOGS: &[Field] = &[
    scalar("Enabled", "enabled"),
    scalar("DisableListenerLogs", "disable_listener_logs"),
    scalar("Type", "type"),
    scalar("Path", "path"),
    scalar("JSONFormat", "json_format"),
    scalar("TextFormat", "text_format"),
];

/// `structs.ServiceConfigEntry` (Consul 1.21, CE).
const SERVICE_DEFAULTS: &[Field] = &[
    field("Kind", None, Shape::Modelled),
    field("Name", None, Shape::Modelled),
    field("Protocol", None, Shape::Modelled),
    field("Mode", None, Shape::Modelled),
    field(
        "TransparentProxy",
        Some("transparent_proxy"),
        Shape::Struct(TRANSPARENT_PROXY),
    ),
    scalar("MutualTLSMode", "mutual_tls_mode"),
    field(
        "MeshGateway",
        Some("mesh_gateway"),
        Shape::Struct(MESH_GATEWAY),
    ),
    field("Expose", None, Shape::Struct(EXPOSE)),
    scalar("ExternalSNI", "external_sni"),
    field("UpstreamConfig", Some("upstream_config"), Shape::Pointer),
    field("Destination", None, Shape::Pointer),
    scalar("MaxInboundConnections", "max_inbound_connections"),
    scalar("LocalConnectTimeoutMs", "local_connect_timeout_ms"),
    scalar("LocalRequestTimeoutMs", "local_request_timeout_ms"),
    scalar("BalanceInboundConnections", "balance_inbound_connections"),
    field("RateLimits", Some("rate_limits"), Shape::Pointer),
    field("EnvoyExtensions", Some("envoy_extensions"), Shape::Slice),
    field("Meta", None, Shape::Modelled),
    field("Hash", None, Shape::Modelled),
];

/// `structs.ProxyConfigEntry` (Consul 1.21, CE). `Protocol` is computed from `Config` and
/// never written (`json:"-"`), but the decoder accepts it.
const PROXY_DEFAULTS: &[Field] = &[
    field("Kind", None, Shape::Modelled),
    field("Name", None, Shape::Modelled),
    field("Config", None, Shape::Modelled),
    field("Protocol", None, Shape::Modelled),
    field("Mode", None, Shape::Modelled),
    field(
        "TransparentProxy",
        Some("transparent_proxy"),
        Shape::Struct(TRANSPARENT_PROXY),
    ),
    scalar("MutualTLSMode", "mutual_tls_mode"),
    field(
        "MeshGateway",
        Some("mesh_gateway"),
        Shape::Struct(MESH_GATEWAY),
    ),
    field("Expose", None, Shape::Struct(EXPOSE)),
    field(
        "AccessLogs",
        Some("access_logs"),
        Shape::Struct(ACCESS_LOGS),
    ),
    field("EnvoyExtensions", Some("envoy_extensions"), Shape::Slice),
    field("FailoverPolicy", Some("failover_policy"), Shape::Pointer),
    field(
        "PrioritizeByLocality",
        Some("prioritize_by_locality"),
        Shape::Pointer,
    ),
    field("Meta", None, Shape::Modelled),
    field("Hash", None, Shape::Modelled),
];

/// The fields of an entry of `kind`, in Go's order.
pub(crate) fn of(kind: Kind) -> &'static [Field] {
    match kind {
        Kind::ServiceDefaults => SERVICE_DEFAULTS,
        Kind::ProxyDefaults => PROXY_DEFAULTS,
    }
}
