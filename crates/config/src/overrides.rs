//! Command-line overrides: every config field as an `Option`, `None` meaning "not given".

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::LogLevel;

/// Values from command-line flags; they win over every file. Each field's doc names the
/// flag that error messages attribute it to (Consul's flag name where Consul has one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-datacenter`
    pub datacenter: Option<String>,
    /// `-node`
    pub node_name: Option<String>,
    /// `-node-id`
    pub node_id: Option<String>,
    /// `-data-dir`
    pub data_dir: Option<PathBuf>,
    /// `-bind`
    pub bind_addr: Option<IpAddr>,
    /// `-advertise`
    pub advertise_addr: Option<IpAddr>,
    /// `-client`
    pub client_addr: Option<IpAddr>,
    pub ports: PortsOverrides,
    /// `-server`
    pub server: Option<bool>,
    /// `-bootstrap-expect`
    pub bootstrap_expect: Option<u32>,
    /// `-bootstrap`
    pub bootstrap: Option<bool>,
    /// `-retry-join`, repeatable; appended after the files' addresses (empty = none given).
    pub retry_join: Vec<String>,
    /// Service definitions from files (no flag).
    pub services: Vec<serde_json::Value>,
    /// Check definitions from files (no flag).
    pub checks: Vec<serde_json::Value>,
    pub enable_script_checks: Option<bool>,
    pub enable_local_script_checks: Option<bool>,
    /// `-log-level`
    pub log_level: Option<LogLevel>,
    /// `-log-json`
    pub log_json: Option<bool>,
    /// `-dev`; flag only, not a file key.
    pub dev: Option<bool>,
    pub limits: LimitsOverrides,
    pub dns: DnsOverrides,
    /// `-session-ttl-min` (no Consul flag)
    pub session_ttl_min: Option<Duration>,
    /// `check_update_interval` (no Consul flag)
    pub check_update_interval: Option<Duration>,
    /// `ae_interval`: our key for the anti-entropy period (Consul hard-codes 1m)
    pub ae_interval: Option<Duration>,
    /// `-raft-snapshot-threshold` (no Consul flag)
    pub raft_snapshot_threshold: Option<u64>,
    /// `-raft-trailing-logs` (no Consul flag)
    pub raft_trailing_logs: Option<u64>,
    pub performance: PerformanceOverrides,
    /// `-encrypt`
    pub encrypt: Option<String>,
    /// `data_key_file` (no flag; mesh's key)
    pub data_key_file: Option<PathBuf>,
    /// `reconnect_timeout` (no flag)
    pub reconnect_timeout: Option<Duration>,
    /// `telemetry.prometheus_retention_time` (no flag)
    pub prometheus_retention_time: Option<Duration>,
    pub connect: ConnectOverrides,
    /// `default_intention_policy` (no flag)
    pub default_intention_policy: Option<crate::IntentionPolicy>,
    /// `leave_on_terminate` (no flag)
    pub leave_on_terminate: Option<bool>,
    /// `skip_leave_on_interrupt` (no flag)
    pub skip_leave_on_interrupt: Option<bool>,
    pub autopilot: AutopilotOverrides,
    pub acl: AclOverrides,
    pub tls: TlsOverrides,
}

/// Consul's `tls` block and the deprecated top-level keys it replaces (no flags). Each
/// deprecated key is kept apart so that the block wins whatever order they were given in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOverrides {
    /// `tls.defaults.ca_file`
    pub ca_file: Option<PathBuf>,
    /// `tls.defaults.cert_file`
    pub cert_file: Option<PathBuf>,
    /// `tls.defaults.key_file`
    pub key_file: Option<PathBuf>,
    /// `tls.defaults.verify_incoming`
    pub verify_incoming: Option<bool>,
    /// `tls.defaults.verify_outgoing`
    pub verify_outgoing: Option<bool>,
    /// `tls.defaults.tls_min_version`
    pub min_version: Option<crate::TlsVersion>,
    /// `tls.defaults.tls_cipher_suites`
    pub cipher_suites: Option<Vec<String>>,
    /// `tls.https.verify_incoming`
    pub https_verify_incoming: Option<bool>,
    /// `tls.internal_rpc.verify_incoming`
    pub rpc_verify_incoming: Option<bool>,
    /// `tls.internal_rpc.verify_server_hostname`
    pub verify_server_hostname: Option<bool>,
    /// The deprecated top-level keys.
    pub deprecated: DeprecatedTlsOverrides,
    pub auto_encrypt: AutoEncryptOverrides,
}

/// `auto_encrypt.*` (no flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoEncryptOverrides {
    pub allow_tls: Option<bool>,
    pub tls: Option<bool>,
    pub dns_san: Option<Vec<String>>,
    pub ip_san: Option<Vec<IpAddr>>,
    /// `auto_encrypt.ca_key_file` (mesh's key)
    pub ca_key_file: Option<PathBuf>,
}

/// Consul's deprecated top-level TLS keys (`ca_file`, `verify_incoming_rpc`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeprecatedTlsOverrides {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub verify_incoming: Option<bool>,
    pub verify_incoming_https: Option<bool>,
    pub verify_incoming_rpc: Option<bool>,
    pub verify_outgoing: Option<bool>,
    pub verify_server_hostname: Option<bool>,
    pub min_version: Option<crate::TlsVersion>,
    pub cipher_suites: Option<Vec<String>>,
}

/// `acl.*` (no flags). Its `Debug` shows whether each token is set, never the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AclOverrides {
    pub enabled: Option<bool>,
    /// `acl.default_policy`: whether it is "deny".
    pub default_deny: Option<bool>,
    /// `acl.tokens.initial_management`
    pub initial_management: Option<String>,
    /// `acl.tokens.master`, the deprecated name of `initial_management`, which wins over it.
    pub master: Option<String>,
    /// `acl.tokens.default`
    pub default_token: Option<String>,
    /// `acl.tokens.agent`
    pub agent_token: Option<String>,
    /// `acl.tokens.dns`
    pub dns_token: Option<String>,
    /// `acl.enable_token_persistence`
    pub enable_token_persistence: Option<bool>,
    /// `acl.down_policy`
    pub down_policy: Option<crate::DownPolicy>,
}

/// `autopilot.*` (no flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutopilotOverrides {
    pub cleanup_dead_servers: Option<bool>,
    pub last_contact_threshold: Option<Duration>,
    pub max_trailing_logs: Option<u64>,
    pub min_quorum: Option<u32>,
    pub server_stabilization_time: Option<Duration>,
}

/// `connect.*` (no flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOverrides {
    pub enabled: Option<bool>,
    /// `connect.ca_provider`: only "consul" is accepted, so nothing is kept.
    pub ca_provider: Option<String>,
    pub ca_config: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortsOverrides {
    /// `-http-port`
    pub http: Option<i32>,
    /// `-https-port`
    pub https: Option<i32>,
    /// `-dns-port`
    pub dns: Option<i32>,
    /// `-server-port`
    pub server: Option<i32>,
    /// `-serf-lan-port`
    pub serf_lan: Option<i32>,
    /// `-grpc-port`
    pub grpc: Option<i32>,
}

/// The DNS interface: `domain`, `alt_domain`, `recursors` and `dns_config.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOverrides {
    /// `-domain`
    pub domain: Option<String>,
    /// `-alt-domain`
    pub alt_domain: Option<String>,
    /// `-recursor`, repeatable; lists append like `retry_join`.
    pub recursors: Vec<String>,
    pub node_ttl: Option<Duration>,
    pub service_ttl: Option<std::collections::BTreeMap<String, Duration>>,
    pub only_passing: Option<bool>,
    pub udp_answer_limit: Option<u32>,
    pub a_record_limit: Option<u32>,
    pub enable_truncate: Option<bool>,
    pub recursor_timeout: Option<Duration>,
    pub recursor_strategy: Option<crate::RecursorStrategy>,
    pub soa_refresh: Option<u32>,
    pub soa_retry: Option<u32>,
    pub soa_expire: Option<u32>,
    pub soa_min_ttl: Option<u32>,
}

/// No Consul flags exist for these; the names are ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsOverrides {
    /// `-kv-max-value-size`
    pub kv_max_value_size: Option<u64>,
    /// `-txn-max-req-len`
    pub txn_max_req_len: Option<u64>,
    /// `-http-max-conns-per-client`
    pub http_max_conns_per_client: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerformanceOverrides {
    /// `-raft-multiplier` (no Consul flag)
    pub raft_multiplier: Option<u8>,
}

impl std::fmt::Debug for AclOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::config::Redacted;
        f.debug_struct("AclOverrides")
            .field("enabled", &self.enabled)
            .field("default_deny", &self.default_deny)
            .field("initial_management", &Redacted(&self.initial_management))
            .field("master", &Redacted(&self.master))
            .field("default_token", &Redacted(&self.default_token))
            .field("agent_token", &Redacted(&self.agent_token))
            .field("dns_token", &Redacted(&self.dns_token))
            .field("enable_token_persistence", &self.enable_token_persistence)
            .field("down_policy", &self.down_policy)
            .finish()
    }
}
