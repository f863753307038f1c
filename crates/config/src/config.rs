//! The resolved runtime configuration and its defaults (Consul's `agent/config/default.go`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The agent configuration after merging files, flags, `-dev` and defaults, and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Lowercase letters, digits, `-` and `_`; default "dc1".
    pub datacenter: String,
    /// Defaults to the machine's hostname ("dev" in `-dev` mode).
    pub node_name: String,
    /// A lowercase UUID if given.
    pub node_id: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Default 0.0.0.0.
    pub bind_addr: IpAddr,
    pub advertise_addr: Option<IpAddr>,
    /// Default 127.0.0.1.
    pub client_addr: IpAddr,
    pub ports: Ports,
    pub server: bool,
    /// 0 means unset.
    pub bootstrap_expect: u32,
    pub bootstrap: bool,
    /// Files append to each other, then flags append to the files, like Consul.
    pub retry_join: Vec<String>,
    /// `service`/`services` blocks, as written (JSON form), validated by the agent.
    pub services: Vec<serde_json::Value>,
    /// `check`/`checks` blocks, as written.
    pub checks: Vec<serde_json::Value>,
    pub enable_script_checks: bool,
    pub enable_local_script_checks: bool,
    pub log_level: LogLevel,
    pub log_json: bool,
    pub dev: bool,
    pub limits: Limits,
    /// Default 10s.
    pub session_ttl_min: Duration,
    /// How often an output-only check change reaches the catalog. Default 5m.
    pub check_update_interval: Duration,
    /// The agent's full anti-entropy sync period before scaling. Default 1m.
    pub ae_interval: Duration,
    /// Default 16384.
    pub raft_snapshot_threshold: u64,
    /// Default 10240.
    pub raft_trailing_logs: u64,
    pub performance: Performance,
    /// The gossip encryption key (base64 of 16, 24 or 32 bytes); gossip is plaintext without one.
    pub encrypt: Option<String>,
    /// Servers: the file of data keys that encrypt the CA's private keys at rest (mesh's key,
    /// not Consul's). Only the path: the server reads and checks the file when it starts, and
    /// reads `MESH_DATA_KEY` when this is unset.
    pub data_key_file: Option<PathBuf>,
    /// How long a failed member stays in the member list before it is reaped (72h; at least
    /// 8h, like Consul).
    pub reconnect_timeout: Duration,
    /// `telemetry.prometheus_retention_time`: above zero, `/v1/agent/metrics?format=prometheus`
    /// answers in Prometheus' text format (0, the default, leaves it off, as in Consul).
    pub prometheus_retention_time: Duration,
    /// The DNS interface.
    pub dns: Dns,
    /// Connect: the built-in CA and service identities.
    pub connect: Connect,
    /// What intentions decide when none matches (`default_intention_policy`); when unset, the
    /// ACL default policy decides (allow while ACLs are off). docs/security.md recommends deny.
    pub default_intention_policy: Option<IntentionPolicy>,
    /// Leave the datacenter gracefully on SIGTERM (Consul: on for clients, off for servers).
    pub leave_on_terminate: bool,
    /// Stop without leaving on SIGINT (Consul: on for servers, off for clients).
    pub skip_leave_on_interrupt: bool,
    /// The autopilot settings a new datacenter starts with (servers only).
    pub autopilot: Autopilot,
    /// Consul's `acl` block; off by default.
    pub acl: Acl,
    /// Agent TLS: the HTTPS API and server RPC (Consul's `tls` block and its deprecated
    /// top-level keys); off by default.
    pub tls: Tls,
    /// Where this configuration was read from (empty for one built in code).
    pub sources: crate::Sources,
}

/// Consul's `acl` block. Its `Debug` shows whether each token is set, never the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub enabled: bool,
    /// `default_policy = "deny"`.
    pub default_deny: bool,
    /// `tokens.initial_management` (or the deprecated `tokens.master`).
    pub initial_management: Option<String>,
    /// `tokens.default`.
    pub default_token: Option<String>,
    /// `tokens.agent`.
    pub agent_token: Option<String>,
    /// `tokens.dns`.
    pub dns_token: Option<String>,
    /// `enable_token_persistence`.
    pub enable_token_persistence: bool,
    /// `down_policy`.
    pub down_policy: DownPolicy,
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("enabled", &self.enabled)
            .field("default_deny", &self.default_deny)
            .field("initial_management", &Redacted(&self.initial_management))
            .field("default_token", &Redacted(&self.default_token))
            .field("agent_token", &Redacted(&self.agent_token))
            .field("dns_token", &Redacted(&self.dns_token))
            .field("enable_token_persistence", &self.enable_token_persistence)
            .field("down_policy", &self.down_policy)
            .finish()
    }
}

/// A secret in `Debug` output: `Some("(set)")` or `None`, never the secret.
pub(crate) struct Redacted<'a>(pub(crate) &'a Option<String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_ref().map(|_| "(set)").fmt(f)
    }
}

/// Agent TLS, resolved from Consul's `tls { defaults, https, internal_rpc }` block and the
/// deprecated top-level keys it replaces (the block wins). Files are only paths: the agent
/// reads and checks them when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the CA certificates peers' certificates must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM file of this agent's certificate (chain, leaf first).
    pub cert_file: Option<PathBuf>,
    /// PEM file of `cert_file`'s private key.
    pub key_file: Option<PathBuf>,
    /// The oldest TLS version accepted or offered (TLS 1.2 by default).
    pub min_version: TlsVersion,
    /// TLS 1.2 suites allowed, by Consul's (Go's) names; empty: rustls' defaults. TLS 1.3
    /// suites are not configurable, as in Consul.
    pub cipher_suites: Vec<String>,
    /// The HTTPS API asks for and checks client certificates.
    pub https_verify_incoming: bool,
    /// Server RPC accepts only clients with a certificate from `ca_file`.
    pub rpc_verify_incoming: bool,
    /// Outgoing server RPC is TLS and checks the server's certificate against `ca_file`.
    pub verify_outgoing: bool,
    /// Outgoing server RPC also checks that the server's certificate names
    /// `server.<datacenter>.<domain>` (implies `verify_outgoing`).
    pub verify_server_hostname: bool,
    /// Consul's `auto_encrypt` block.
    pub auto_encrypt: AutoEncrypt,
}

/// `auto_encrypt`: servers sign client agents' certificates, so that a client agent needs
/// only the CA certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoEncrypt {
    /// Servers: sign client agents' certificates with `ca_key_file`.
    pub allow_tls: bool,
    /// Client agents: ask a server for a certificate at start and use it for server RPC and
    /// HTTPS.
    pub tls: bool,
    /// Client agents: more DNS names for the certificate.
    pub dns_san: Vec<String>,
    /// Client agents: more IP addresses for the certificate.
    pub ip_san: Vec<IpAddr>,
    /// Servers: the agent CA's private key, which signs (mesh's key: Consul signs with its
    /// Connect CA).
    pub ca_key_file: Option<PathBuf>,
}

impl Tls {
    /// Whether server RPC is TLS on this agent, listening and dialing alike: mesh makes one
    /// choice per agent instead of Consul's per-connection first byte, so every agent of a
    /// datacenter must make the same one.
    pub fn rpc_enabled(&self) -> bool {
        self.rpc_verify_incoming
            || self.verify_outgoing
            || self.verify_server_hostname
            || self.auto_encrypt.tls
            || self.auto_encrypt.allow_tls
    }
}

/// `tls_min_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Consul's name of the version.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1_2",
            TlsVersion::Tls13 => "TLSv1_3",
        }
    }
}

/// The TLS 1.2 cipher suites `tls_cipher_suites` accepts: Consul's (Go's) names of the ECDHE
/// AES-GCM and ChaCha20 suites, which rustls implements; Go's short ChaCha20 names are
/// accepted too and mean the `_SHA256` ones.
pub const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Consul's `autopilot` block: the settings the servers' replicated autopilot configuration
/// starts with when the datacenter is bootstrapped; afterwards
/// `PUT /v1/operator/autopilot/configuration` changes it and these are not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autopilot {
    /// Remove dead servers from raft when a new one joins or periodically. Default true.
    pub cleanup_dead_servers: bool,
    /// How long a server may go without contact from the leader and stay healthy. Default 200ms.
    pub last_contact_threshold: Duration,
    /// How many log entries a server may trail the leader by and stay healthy. Default 250.
    pub max_trailing_logs: u64,
    /// Dead servers are not removed below this many servers (0: no minimum).
    pub min_quorum: u32,
    /// How long a new server must be healthy before it counts as stable. Default 10s.
    pub server_stabilization_time: Duration,
}

impl Default for Autopilot {
    fn default() -> Self {
        Autopilot {
            cleanup_dead_servers: true,
            last_contact_threshold: Duration::from_millis(200),
            max_trailing_logs: 250,
            min_quorum: 0,
            server_stabilization_time: Duration::from_secs(10),
        }
    }
}

/// Listener ports. `-1` disables a listener, like Consul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub http: i32,
    pub https: i32,
    pub dns: i32,
    pub server: i32,
    pub serf_lan: i32,
    pub grpc: i32,
}

/// Marks a disabled listener in [`Ports`].
pub const PORT_DISABLED: i32 = -1;

impl Default for Ports {
    fn default() -> Self {
        Ports {
            http: 8500,
            https: PORT_DISABLED,
            dns: 8600,
            server: 8300,
            serf_lan: 8301,
            grpc: PORT_DISABLED,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest KV value in bytes; default 512 KiB.
    pub kv_max_value_size: u64,
    /// Largest transaction request body in bytes; default 512 KiB.
    pub txn_max_req_len: u64,
    /// Concurrent HTTP connections per client IP; default 200.
    pub http_max_conns_per_client: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            kv_max_value_size: 512 * 1024,
            txn_max_req_len: 512 * 1024,
            http_max_conns_per_client: 200,
        }
    }
}

/// The DNS interface: Consul's `domain`, `alt_domain`, `recursors` and `dns_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// Names under it are the mesh's; "mesh" by default (Consul's is "consul").
    pub domain: String,
    /// A second domain answered the same way.
    pub alt_domain: Option<String>,
    /// Where other names go: `ip` or `ip:port` (port 53 by default).
    pub recursors: Vec<String>,
    /// TTL of node, NS and addr answers (0 by default, as in Consul).
    pub node_ttl: Duration,
    /// TTL of service answers by service name; `*` entries are prefixes (`"*"` for all), an
    /// exact name beats the longest prefix.
    pub service_ttl: std::collections::BTreeMap<String, Duration>,
    /// Drop instances with a warning check too, not only critical ones.
    pub only_passing: bool,
    /// Most answers in a UDP response without EDNS (3).
    pub udp_answer_limit: u32,
    /// Most A/AAAA answers (0: no limit).
    pub a_record_limit: u32,
    /// Set TC when a UDP answer is cut. On by default in mesh (Consul leaves it off, so stub
    /// resolvers never retry over TCP and miss instances).
    pub enable_truncate: bool,
    /// How long a recursor may take (2s).
    pub recursor_timeout: Duration,
    pub recursor_strategy: RecursorStrategy,
    pub soa: Soa,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            domain: "mesh".into(),
            alt_domain: None,
            recursors: Vec::new(),
            node_ttl: Duration::ZERO,
            service_ttl: std::collections::BTreeMap::new(),
            only_passing: false,
            udp_answer_limit: 3,
            a_record_limit: 0,
            enable_truncate: true,
            recursor_timeout: Duration::from_secs(2),
            recursor_strategy: RecursorStrategy::Sequential,
            soa: Soa::default(),
        }
    }
}

/// Consul's `connect` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// On by default (Consul needs `connect { enabled = true }` on its servers).
    pub enabled: bool,
    /// `connect.ca_config`: the built-in provider's settings (`leaf_cert_ttl`, `root_cert_ttl`,
    /// `intermediate_cert_ttl`, `private_key`, `root_cert`, `csr_max_per_second`, ...), used
    /// only when the CA is first created; afterwards `PUT /v1/connect/ca/configuration`
    /// changes it. The server validates it when it starts.
    pub ca_config: serde_json::Map<String, serde_json::Value>,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            enabled: true,
            ca_config: serde_json::Map::new(),
        }
    }
}

/// What a client agent decides about a token when no server answers (`acl.down_policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DownPolicy {
    /// Every token may do everything.
    Allow,
    /// Every token is refused.
    Deny,
    /// A token resolved before keeps its grant; others are refused (Consul's default).
    #[default]
    ExtendCache,
    /// As `ExtendCache`; Consul also refreshes in the background, which changes nothing here.
    AsyncCache,
}

/// The decision when no intention matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentionPolicy {
    Allow,
    Deny,
}

/// In which order recursors are asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecursorStrategy {
    /// In the order configured.
    #[default]
    Sequential,
    /// In a random order per question.
    Random,
}

/// The SOA record's timers, in seconds (Consul's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soa {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub min_ttl: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Soa {
            refresh: 3600,
            retry: 600,
            expire: 86400,
            min_ttl: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Performance {
    /// Scales raft timeouts (1s election/heartbeat, 500ms lease); 1..=10, default 5.
    pub raft_multiplier: u8,
}

impl Default for Performance {
    fn default() -> Self {
        Performance { raft_multiplier: 5 }
    }
}

/// Log verbosity. Parsed case-insensitively from Consul's names (`TRACE`, `DEBUG`, `INFO`,
/// `WARN`, `ERR`, also `error`); displayed as a `tracing` filter directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The `tracing` / `EnvFilter` directive for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log level {0:?}: expected one of trace, debug, info, warn, err")]
pub struct ParseLogLevelError(pub String);

impl FromStr for LogLevel {
    type Err = ParseLogLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "err" | "error" => Ok(LogLevel::Error),
            _ => Err(ParseLogLevelError(s.to_owned())),
        }
    }
}

pub(crate) const DEFAULT_DATACENTER: &str = "dc1";
pub(crate) const DEFAULT_BIND_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
pub(crate) const DEFAULT_CLIENT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub(crate) const DEFAULT_SESSION_TTL_MIN: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_RAFT_SNAPSHOT_THRESHOLD: u64 = 16384;
pub(crate) const DEFAULT_RAFT_TRAILING_LOGS: u64 = 10240;
pub(crate) const FALLBACK_NODE_NAME: &str = "mesh";
