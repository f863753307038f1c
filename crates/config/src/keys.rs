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
    /// What a value must be (the text of the error a bad one gets), for docs/configuration.md.
    pub(crate) kind: &'static str,
    /// One line on what the key sets, for docs/configuration.md.
    pub(crate) doc: &'static str,
    /// Parses a file value into the merged values; `Err` describes what was expected.
    set: fn(&mut Overrides, &Value) -> Result<(), &'static str>,
    /// Copies the flag's value if it was given, and says whether it was.
    take_flag: fn(&mut Overrides, &Overrides) -> bool,
}

/// `key!(path, flag, field, parse; doc)`: a key parsed by the function `parse`, whose
/// expected-value text (see [`expected!`]) is the key's kind.
macro_rules! key {
    ($path:literal, $flag:literal, $($field:ident).+, $parse:ident; $doc:literal) => {
        Key {
            path: $path,
            flag: $flag,
            kind: expected!($parse),
            doc: $doc,
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

/// The text a parse function's error gives as expected, by the function's name.
macro_rules! expected {
    (string) => {
        STRING_EXPECTED
    };
    (path) => {
        PATH_EXPECTED
    };
    (ip) => {
        IP_EXPECTED
    };
    (boolean) => {
        BOOLEAN_EXPECTED
    };
    (non_negative) => {
        NON_NEGATIVE_EXPECTED
    };
    (port) => {
        PORT_EXPECTED
    };
    (raft_multiplier) => {
        RAFT_MULTIPLIER_EXPECTED
    };
    (log_level) => {
        LOG_LEVEL_EXPECTED
    };
    (duration) => {
        DURATION_EXPECTED
    };
    (gossip_key) => {
        GOSSIP_KEY_EXPECTED
    };
    (dns_domain) => {
        DNS_DOMAIN_EXPECTED
    };
    (duration_map) => {
        DURATION_MAP_EXPECTED
    };
    (recursor_strategy) => {
        RECURSOR_STRATEGY_EXPECTED
    };
    (ca_provider) => {
        CA_PROVIDER_EXPECTED
    };
    (object) => {
        OBJECT_EXPECTED
    };
    (intention_policy) => {
        INTENTION_POLICY_EXPECTED
    };
    (acl_default_policy) => {
        ACL_POLICY_EXPECTED
    };
    (down_policy) => {
        DOWN_POLICY_EXPECTED
    };
    (acl_token_uuid) => {
        UUID_EXPECTED
    };
    (tls_version) => {
        TLS_VERSION_EXPECTED
    };
    (legacy_tls_version) => {
        LEGACY_TLS_VERSION_EXPECTED
    };
    (cipher_suites) => {
        CIPHER_SUITES_EXPECTED
    };
    (strings) => {
        STRINGS_EXPECTED
    };
    (ips) => {
        IPS_EXPECTED
    };
}

/// `service`/`services` and `check`/`checks`: one definition or a list of them, appended
/// across files and kept as written; the agent validates them when it starts. No flags.
macro_rules! definitions {
    ($path:literal, $field:ident; $doc:literal) => {
        Key {
            path: $path,
            flag: "",
            kind: DEFINITIONS_EXPECTED,
            doc: $doc,
            set: |values, value| append_definitions(&mut values.$field, value),
            take_flag: |_, _| false,
        }
    };
}

/// `accepted!(path, parse; doc)`: a Consul key whose value is checked with `parse` and then
/// dropped, because it concerns nothing mesh has (an update check, a web UI) or asks for what
/// mesh always does. Only for keys where either value leaves nobody believing something is on
/// that is not; everything else is in [`UNSUPPORTED`]. No flag.
macro_rules! accepted {
    ($path:literal, $parse:ident; $doc:literal) => {
        Key {
            path: $path,
            flag: "",
            kind: expected!($parse),
            doc: $doc,
            set: |_, value| ($parse)(value).map(drop),
            take_flag: |_, _| false,
        }
    };
}

pub(crate) const PORT_EXPECTED: &str = "a port number between 1 and 65535, or -1 to disable";
pub(crate) const RAFT_MULTIPLIER_EXPECTED: &str = "an integer between 1 and 10";
const STRING_EXPECTED: &str = "a string";
const PATH_EXPECTED: &str = "a non-empty path";
const IP_EXPECTED: &str = "an IP address";
const BOOLEAN_EXPECTED: &str = "a boolean (true or false)";
const NON_NEGATIVE_EXPECTED: &str = "a non-negative integer";
const LOG_LEVEL_EXPECTED: &str = "one of trace, debug, info, warn, err";
const DURATION_EXPECTED: &str = "a duration such as \"10s\" or \"1m30s\"";
const GOSSIP_KEY_EXPECTED: &str =
    "the base64 of 32 random bytes, as `mesh-client keygen` prints (16 or 24 bytes also work)";
const DNS_DOMAIN_EXPECTED: &str = "a DNS domain such as \"mesh\" or \"mesh.example.com\"";
const RECURSORS_EXPECTED: &str = "a list of IP addresses, each with an optional port";
const DURATION_MAP_EXPECTED: &str =
    "an object of service names to durations, such as {\"*\": \"5s\"}";
const RECURSOR_STRATEGY_EXPECTED: &str = "\"sequential\" or \"random\"";
const CA_PROVIDER_EXPECTED: &str = "\"consul\" (the built-in CA, the only provider)";
const OBJECT_EXPECTED: &str = "an object";
const INTENTION_POLICY_EXPECTED: &str = "\"allow\" or \"deny\"";
const DOWN_POLICY_EXPECTED: &str = "\"allow\", \"deny\", \"extend-cache\" or \"async-cache\"";
const ACL_POLICY_EXPECTED: &str = "\"allow\" or \"deny\"";
const UUID_EXPECTED: &str = "a UUID";
const STRINGS_EXPECTED: &str = "a list of strings";
const IPS_EXPECTED: &str = "a list of IP addresses";
const DEFINITIONS_EXPECTED: &str = "an object or a list of objects";
const TLS_VERSION_EXPECTED: &str = "\"TLSv1_2\" or \"TLSv1_3\" (older versions are not supported)";
const LEGACY_TLS_VERSION_EXPECTED: &str =
    "\"TLSv1_2\", \"TLSv1_3\", \"tls12\" or \"tls13\" (older versions are not supported)";
const CIPHER_SUITES_EXPECTED: &str = "a comma-separated list of TLS 1.2 suites among \
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305(_SHA256), TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305(_SHA256) \
    (the ones rustls implements)";

#[rustfmt::skip]
pub(crate) static KEYS: &[Key] = &[
    key!("datacenter", "-datacenter", datacenter, string;
        "The datacenter this agent is in; lowercased, then only letters, digits, `-` and `_`."),
    key!("node_name", "-node", node_name, string;
        "This node's name, unique in the datacenter."),
    key!("node_id", "-node-id", node_id, string;
        "This node's ID, a UUID (lowercased); when unset, one is generated and kept in `data_dir`."),
    key!("data_dir", "-data-dir", data_dir, path;
        "Where the agent keeps its state; required outside `-dev`."),
    key!("bind_addr", "-bind", bind_addr, ip;
        "The address the server RPC and gossip listeners bind to."),
    key!("advertise_addr", "-advertise", advertise_addr, ip;
        "The address other agents reach this one at (not 0.0.0.0 or ::); defaults to `bind_addr`, or `client_addr` on a server bound to 0.0.0.0."),
    key!("client_addr", "-client", client_addr, ip;
        "The address the HTTP API and DNS listeners bind to."),
    key!("ports.http", "-http-port", ports.http, port;
        "The HTTP API port."),
    key!("ports.https", "-https-port", ports.https, port;
        "The HTTPS API port (-1: off); needs `tls.defaults.cert_file` and `key_file`. Serves the same API as `ports.http`, beside it."),
    key!("ports.dns", "-dns-port", ports.dns, port;
        "The DNS port (UDP and TCP)."),
    key!("ports.server", "-server-port", ports.server, port;
        "The server RPC port (raft and forwarded requests)."),
    key!("ports.serf_lan", "-serf-lan-port", ports.serf_lan, port;
        "The LAN gossip port (UDP)."),
    key!("ports.grpc", "-grpc-port", ports.grpc, port;
        "Consul's gRPC port: checked, but mesh opens no gRPC listener."),
    key!("server", "-server", server, boolean;
        "Run as a server; mesh-server always sets it (its `-server` flag is accepted for Consul compatibility)."),
    key!("bootstrap_expect", "-bootstrap-expect", bootstrap_expect, non_negative;
        "How many servers to wait for before forming the datacenter (0: unset); needs `server`, excludes `bootstrap`."),
    key!("bootstrap", "-bootstrap", bootstrap, boolean;
        "Bootstrap a single-server datacenter; needs `server`."),
    Key {
        path: "retry_join",
        flag: "-retry-join",
        kind: STRINGS_EXPECTED,
        doc: "Gossip addresses of other agents to join (port 8301 by default); files append to each other, flags to the files.",
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
    definitions!("service", services;
        "A service definition to register, kept as written and validated by the agent when it starts; appended across files."),
    definitions!("services", services;
        "Service definitions, like `service`."),
    definitions!("check", checks;
        "A check definition to register, kept as written and validated by the agent when it starts; appended across files."),
    definitions!("checks", checks;
        "Check definitions, like `check`."),
    key!("enable_script_checks", "-enable-script-checks", enable_script_checks, boolean;
        "Allow script checks, from files and from the HTTP API."),
    key!("enable_local_script_checks", "-enable-local-script-checks", enable_local_script_checks, boolean;
        "Allow script checks from config files only."),
    key!("log_level", "-log-level", log_level, log_level;
        "Log verbosity (case-insensitive; `error` is accepted for `err`)."),
    key!("log_json", "-log-json", log_json, boolean;
        "Log in JSON."),
    key!("limits.kv_max_value_size", "-kv-max-value-size", limits.kv_max_value_size, non_negative;
        "The largest KV value, in bytes."),
    key!("limits.txn_max_req_len", "-txn-max-req-len", limits.txn_max_req_len, non_negative;
        "The largest transaction request body, in bytes."),
    key!("limits.http_max_conns_per_client", "-http-max-conns-per-client", limits.http_max_conns_per_client, non_negative;
        "Concurrent HTTP connections allowed per client IP."),
    key!("session_ttl_min", "-session-ttl-min", session_ttl_min, duration;
        "The shortest session TTL accepted."),
    key!("check_update_interval", "-check-update-interval", check_update_interval, duration;
        "How often a check whose output changed but whose status did not is synced to the catalog."),
    key!("ae_interval", "-ae-interval", ae_interval, duration;
        "The anti-entropy full sync period, before scaling by cluster size (mesh's key; Consul hard-codes 1m)."),
    key!("raft_snapshot_threshold", "-raft-snapshot-threshold", raft_snapshot_threshold, non_negative;
        "Raft log entries since the last snapshot that trigger a new one."),
    key!("raft_trailing_logs", "-raft-trailing-logs", raft_trailing_logs, non_negative;
        "Raft log entries kept after a snapshot."),
    key!("performance.raft_multiplier", "-raft-multiplier", performance.raft_multiplier, raft_multiplier;
        "Scales raft timing (1s election and heartbeat timeouts, 500ms lease); 1 is fastest."),
    key!("encrypt", "-encrypt", encrypt, gossip_key;
        "The gossip encryption key; gossip is plaintext without one."),
    key!("data_key_file", "", data_key_file, path;
        "Servers: a file of base64 AES-256 data keys, one per line, the first active, that encrypt the CA's private keys at rest; without it the `MESH_DATA_KEY` environment variable is read (mesh's key, not in Consul; see docs/security.md)."),
    key!("reconnect_timeout", "", reconnect_timeout, duration;
        "How long a failed member stays in the member list before it is reaped; at least 8h."),
    key!("domain", "-domain", dns.domain, dns_domain;
        "The DNS domain answered (a trailing dot is dropped)."),
    key!("alt_domain", "-alt-domain", dns.alt_domain, dns_domain;
        "A second DNS domain answered the same way."),
    Key {
        path: "recursors",
        flag: "-recursor",
        kind: RECURSORS_EXPECTED,
        doc: "Where DNS questions outside the mesh's domains go (`ip` or `ip:port`, port 53 by default); files append, then flags.",
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
    key!("dns_config.node_ttl", "", dns.node_ttl, duration;
        "TTL of node, NS and address answers."),
    key!("dns_config.service_ttl", "", dns.service_ttl, duration_map;
        "TTL of service answers by service name; names ending in `*` are prefixes, an exact name beats the longest prefix."),
    key!("dns_config.only_passing", "", dns.only_passing, boolean;
        "Leave out instances with a warning check too, not only critical ones."),
    key!("dns_config.udp_answer_limit", "", dns.udp_answer_limit, non_negative;
        "The most answers in a UDP response without EDNS."),
    key!("dns_config.a_record_limit", "", dns.a_record_limit, non_negative;
        "The most A/AAAA answers (0: no limit)."),
    key!("dns_config.enable_truncate", "", dns.enable_truncate, boolean;
        "Set TC when a UDP answer is cut, so resolvers retry over TCP (Consul's default is false)."),
    key!("dns_config.recursor_timeout", "", dns.recursor_timeout, duration;
        "How long a recursor may take to answer."),
    key!("dns_config.recursor_strategy", "", dns.recursor_strategy, recursor_strategy;
        "Ask recursors in the order configured or in a random order per question."),
    key!("dns_config.soa.refresh", "", dns.soa_refresh, non_negative;
        "The SOA record's refresh, in seconds."),
    key!("dns_config.soa.retry", "", dns.soa_retry, non_negative;
        "The SOA record's retry, in seconds."),
    key!("dns_config.soa.expire", "", dns.soa_expire, non_negative;
        "The SOA record's expire, in seconds."),
    key!("dns_config.soa.min_ttl", "", dns.soa_min_ttl, non_negative;
        "The SOA record's minimum TTL, in seconds."),
    key!("telemetry.prometheus_retention_time", "", prometheus_retention_time, duration;
        "Above zero, `/v1/agent/metrics?format=prometheus` answers in Prometheus' text format."),
    accepted!("telemetry.disable_hostname", boolean;
        "Accepted for Consul compatibility, with no effect: mesh never puts the hostname in metric names."),
    key!("connect.enabled", "", connect.enabled, boolean;
        "Enable Connect: the built-in CA and service identities."),
    key!("connect.ca_provider", "", connect.ca_provider, ca_provider;
        "The CA provider; only the built-in one exists."),
    key!("connect.ca_config", "", connect.ca_config, object;
        "The built-in CA's settings (`leaf_cert_ttl`, `root_cert_ttl`, `private_key`, `root_cert`, ...), used only when the CA is first created."),
    key!("default_intention_policy", "", default_intention_policy, intention_policy;
        "What intentions decide when none matches; when unset, the ACL default policy decides (allow while ACLs are off)."),
    key!("leave_on_terminate", "", leave_on_terminate, boolean;
        "Leave the datacenter gracefully on SIGTERM, so that the others record this agent as left, not failed."),
    key!("skip_leave_on_interrupt", "", skip_leave_on_interrupt, boolean;
        "Stop without leaving the datacenter on SIGINT."),
    accepted!("rejoin_after_leave", boolean;
        "Accepted for Consul compatibility, with no effect: mesh keeps no member snapshot to rejoin from, so a restarted agent always joins through `retry_join`."),
    accepted!("disable_update_check", boolean;
        "Accepted for Consul compatibility, with no effect: mesh never checks for updates."),
    accepted!("ui", boolean;
        "Consul's older spelling of `ui_config.enabled`; accepted, with no effect."),
    accepted!("ui_config.enabled", boolean;
        "Accepted for Consul compatibility, with no effect: mesh has no web UI (`ui_config`'s other keys are refused)."),
    key!("autopilot.cleanup_dead_servers", "", autopilot.cleanup_dead_servers, boolean;
        "Remove dead servers from raft when a new one joins, and periodically. Like every `autopilot` key, read when the datacenter is bootstrapped; later, `PUT /v1/operator/autopilot/configuration` changes it."),
    key!("autopilot.last_contact_threshold", "", autopilot.last_contact_threshold, duration;
        "How long a server may go without contact from the leader and still be healthy."),
    key!("autopilot.max_trailing_logs", "", autopilot.max_trailing_logs, non_negative;
        "How many raft log entries a server may trail the leader by and still be healthy."),
    key!("autopilot.min_quorum", "", autopilot.min_quorum, non_negative;
        "Dead servers are not removed below this many servers (0: no minimum)."),
    key!("autopilot.server_stabilization_time", "", autopilot.server_stabilization_time, duration;
        "How long a new server must be healthy before it counts as stable."),
    key!("acl.enabled", "", acl.enabled, boolean;
        "Turn ACLs on: every request is checked against its token."),
    key!("acl.default_policy", "", acl.default_deny, acl_default_policy;
        "What is decided when no rule matches."),
    key!("acl.tokens.initial_management", "", acl.initial_management, acl_token_uuid;
        "The secret of a management token the leader creates when none has it (empty: none)."),
    key!("acl.tokens.master", "", acl.master, acl_token_uuid;
        "Consul's deprecated name for `acl.tokens.initial_management`; when both are given, `initial_management` wins."),
    key!("acl.tokens.default", "", acl.default_token, string;
        "The token the agent uses for requests that carry none (empty: none)."),
    key!("acl.tokens.agent", "", acl.agent_token, string;
        "The token of the agent's own requests to servers (a client agent's certificate request with `auto_encrypt`); the default token when unset."),
    key!("acl.tokens.dns", "", acl.dns_token, string;
        "The token DNS answers with; the default token when unset."),
    key!("acl.down_policy", "", acl.down_policy, down_policy;
        "What a client agent decides about a token when no server answers: `extend-cache` (a token resolved before keeps its grant), `async-cache` (the same here), `allow` or `deny`."),
    key!("acl.enable_token_persistence", "", acl.enable_token_persistence, boolean;
        "Keep tokens set with `PUT /v1/agent/token/:type` in `data_dir` (`acl-tokens.json`) across restarts; they then win over these keys."),
    key!("tls.defaults.ca_file", "", tls.ca_file, path;
        "PEM file of the CA certificates that peers' certificates must chain to (HTTPS clients with `verify_incoming`, servers with `verify_outgoing`)."),
    key!("tls.defaults.cert_file", "", tls.cert_file, path;
        "PEM file of this agent's certificate chain, leaf first, for the HTTPS API and server RPC."),
    key!("tls.defaults.key_file", "", tls.key_file, path;
        "PEM file of `cert_file`'s private key (PKCS#8, SEC1 or PKCS#1)."),
    key!("tls.defaults.verify_incoming", "", tls.verify_incoming, boolean;
        "Require and check client certificates, on the HTTPS API and server RPC unless `tls.https` or `tls.internal_rpc` say otherwise; needs `ca_file`."),
    key!("tls.defaults.verify_outgoing", "", tls.verify_outgoing, boolean;
        "Server RPC is TLS and servers' certificates are checked against `ca_file` (mesh's server RPC is all TLS or all plaintext: set the same on every agent)."),
    key!("tls.defaults.tls_min_version", "", tls.min_version, tls_version;
        "The oldest TLS version accepted and offered."),
    key!("tls.defaults.tls_cipher_suites", "", tls.cipher_suites, cipher_suites;
        "The TLS 1.2 cipher suites allowed (empty: rustls' defaults); TLS 1.3 suites are not configurable."),
    key!("tls.https.verify_incoming", "", tls.https_verify_incoming, boolean;
        "The HTTPS API requires client certificates from `ca_file` (default: `tls.defaults.verify_incoming`)."),
    key!("tls.internal_rpc.verify_incoming", "", tls.rpc_verify_incoming, boolean;
        "Server RPC (raft, forwarding, client agents) is TLS and accepts only clients with a certificate from `ca_file` (default: `tls.defaults.verify_incoming`)."),
    key!("tls.internal_rpc.verify_server_hostname", "", tls.verify_server_hostname, boolean;
        "Outgoing server RPC checks that the server's certificate names `server.<datacenter>.<domain>`, as `mesh-client tls cert create -server` makes it; implies `verify_outgoing`."),
    key!("ca_file", "", tls.deprecated.ca_file, path;
        "Deprecated: `tls.defaults.ca_file`, which wins when both are set."),
    key!("cert_file", "", tls.deprecated.cert_file, path;
        "Deprecated: `tls.defaults.cert_file`, which wins when both are set."),
    key!("key_file", "", tls.deprecated.key_file, path;
        "Deprecated: `tls.defaults.key_file`, which wins when both are set."),
    key!("verify_incoming", "", tls.deprecated.verify_incoming, boolean;
        "Deprecated: `tls.defaults.verify_incoming`, which wins when both are set."),
    key!("verify_incoming_https", "", tls.deprecated.verify_incoming_https, boolean;
        "Deprecated: `tls.https.verify_incoming`, which wins when both are set."),
    key!("verify_incoming_rpc", "", tls.deprecated.verify_incoming_rpc, boolean;
        "Deprecated: `tls.internal_rpc.verify_incoming`, which wins when both are set."),
    key!("verify_outgoing", "", tls.deprecated.verify_outgoing, boolean;
        "Deprecated: `tls.defaults.verify_outgoing`, which wins when both are set."),
    key!("verify_server_hostname", "", tls.deprecated.verify_server_hostname, boolean;
        "Deprecated: `tls.internal_rpc.verify_server_hostname`, which wins when both are set."),
    key!("tls_min_version", "", tls.deprecated.min_version, legacy_tls_version;
        "Deprecated: `tls.defaults.tls_min_version`, which wins when both are set; Consul's older `tls12`/`tls13` are accepted."),
    key!("tls_cipher_suites", "", tls.deprecated.cipher_suites, cipher_suites;
        "Deprecated: `tls.defaults.tls_cipher_suites`, which wins when both are set."),
    key!("auto_encrypt.allow_tls", "", tls.auto_encrypt.allow_tls, boolean;
        "Servers: sign client agents' certificates (`client.<datacenter>.<domain>`) with `auto_encrypt.ca_key_file`; with ACLs on, the client's token needs `node:write` on its node. Needs TLS server RPC."),
    key!("auto_encrypt.ca_key_file", "", tls.auto_encrypt.ca_key_file, path;
        "Servers with `allow_tls`: PEM file of the private key of `tls.defaults.ca_file`'s CA, which signs client agents' certificates (mesh's key: Consul signs with its Connect CA)."),
    key!("auto_encrypt.tls", "", tls.auto_encrypt.tls, boolean;
        "Client agents: ask a server for a certificate at start (kept in `data_dir`) and use it for server RPC and HTTPS; needs `tls.defaults.ca_file`, excludes `cert_file`."),
    key!("auto_encrypt.dns_san", "", tls.auto_encrypt.dns_san, strings;
        "Client agents with `auto_encrypt.tls`: more DNS names for the certificate (no `server.` names)."),
    key!("auto_encrypt.ip_san", "", tls.auto_encrypt.ip_san, ips;
        "Client agents with `auto_encrypt.tls`: more IP addresses for the certificate."),
];

/// Keys whose values are secrets: a bad one is described by its length in errors, never shown.
static SECRET_KEYS: &[&str] = &[
    "acl.tokens.initial_management",
    "acl.tokens.master",
    "acl.tokens.default",
    "acl.tokens.agent",
    "acl.tokens.dns",
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
    "ui_config",
    "autopilot",
    "acl",
    "acl.tokens",
    "tls",
    "tls.defaults",
    "tls.https",
    "tls.internal_rpc",
    "auto_encrypt",
];

/// Sections of which mesh implements only some keys: the others are unsupported, not unknown.
/// (`dns_config.allow_stale`/`max_stale`/`use_cache` are among them: DNS always answers from
/// the agent's own view, kept current by blocking queries.)
static PARTLY_SUPPORTED: &[&str] = &[
    "telemetry",
    "dns_config",
    "connect",
    "ui_config",
    "autopilot",
    "tls",
    "tls.defaults",
    "tls.https",
    "tls.internal_rpc",
    "auto_encrypt",
];

/// Keys Consul accepts that mesh does not implement yet. Rejected, never ignored, so that
/// nobody believes e.g. gossip encryption is on when it is not.
static UNSUPPORTED: &[&str] = &[
    "acl.disabled_ttl",
    "acl.enable_key_list_policy",
    "acl.enable_token_replication",
    "acl.msp_disable_bootstrap",
    "acl.policy_ttl",
    "acl.role_ttl",
    "acl.token_ttl",
    "acl.tokens.agent_master",
    "acl.tokens.agent_recovery",
    "acl.tokens.config_file_service_registration",
    "acl.tokens.managed_service_provider",
    "acl.tokens.replication",
    "addresses",
    "auto_config",
    "ca_path",
    "check",
    "checks",
    "config_entries",
    "enable_central_service_config",
    "enable_syslog",
    "encrypt_verify_incoming",
    "encrypt_verify_outgoing",
    "http_config",
    "limits.rpc_max_burst",
    "limits.rpc_max_conns_per_client",
    "limits.rpc_rate",
    "log_file",
    "node_meta",
    "performance.leave_drain_time",
    "performance.rpc_hold_timeout",
    "pid_file",
    "ports.grpc_tls",
    "ports.serf_wan",
    "ports.sidecar_max_port",
    "ports.sidecar_min_port",
    "primary_datacenter",
    "raft_protocol",
    "retry_interval",
    "retry_join_wan",
    "retry_max",
    "service",
    "services",
    "start_join",
    "translate_wan_addrs",
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
                        got: if SECRET_KEYS.contains(&key.path) {
                            render_secret(value)
                        } else {
                            render(value)
                        },
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

/// A secret value as it appears in an error message: a string by its length only.
pub(crate) fn render_secret(value: &Value) -> String {
    match value {
        Value::String(text) => render(&format!("{} characters", text.len()).into()),
        other => render(other),
    }
}

fn append_definitions(list: &mut Vec<Value>, value: &Value) -> Result<(), &'static str> {
    const EXPECTED: &str = DEFINITIONS_EXPECTED;
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
    value.as_str().map(str::to_owned).ok_or(STRING_EXPECTED)
}

fn path(value: &Value) -> Result<PathBuf, &'static str> {
    match value.as_str() {
        Some(text) if !text.is_empty() => Ok(PathBuf::from(text)),
        _ => Err(PATH_EXPECTED),
    }
}

fn ip(value: &Value) -> Result<IpAddr, &'static str> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or(IP_EXPECTED)
}

fn boolean(value: &Value) -> Result<bool, &'static str> {
    value.as_bool().ok_or(BOOLEAN_EXPECTED)
}

fn non_negative<T: TryFrom<u64>>(value: &Value) -> Result<T, &'static str> {
    value
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or(NON_NEGATIVE_EXPECTED)
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
        .ok_or(LOG_LEVEL_EXPECTED)
}

fn duration(value: &Value) -> Result<std::time::Duration, &'static str> {
    value
        .as_str()
        .and_then(|text| parse_go_duration(text).ok())
        .ok_or(DURATION_EXPECTED)
}

/// `encrypt`: the base64 of a 16-, 24- or 32-byte AES key (`keygen` prints 32), as Consul
/// accepts.
pub(crate) fn gossip_key(value: &Value) -> Result<String, &'static str> {
    use base64::Engine as _;
    const EXPECTED: &str = GOSSIP_KEY_EXPECTED;
    let text = value.as_str().ok_or(EXPECTED)?;
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(key) if [16, 24, 32].contains(&key.len()) => Ok(text.to_owned()),
        _ => Err(EXPECTED),
    }
}

/// A DNS domain: dot-separated labels of letters, digits and `-`; a trailing dot is dropped.
pub(crate) fn dns_domain(value: &Value) -> Result<String, &'static str> {
    const EXPECTED: &str = DNS_DOMAIN_EXPECTED;
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
    const EXPECTED: &str = RECURSORS_EXPECTED;
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
    const EXPECTED: &str = DURATION_MAP_EXPECTED;
    let map = value.as_object().ok_or(EXPECTED)?;
    map.iter()
        .map(|(name, ttl)| Ok((name.clone(), duration(ttl).map_err(|_| EXPECTED)?)))
        .collect()
}

fn recursor_strategy(value: &Value) -> Result<crate::RecursorStrategy, &'static str> {
    match value.as_str() {
        Some("sequential") => Ok(crate::RecursorStrategy::Sequential),
        Some("random") => Ok(crate::RecursorStrategy::Random),
        _ => Err(RECURSOR_STRATEGY_EXPECTED),
    }
}

fn ca_provider(value: &Value) -> Result<String, &'static str> {
    match value.as_str() {
        Some("consul") => Ok("consul".to_owned()),
        _ => Err(CA_PROVIDER_EXPECTED),
    }
}

/// An object; HCL gives a repeated block as a list of objects, merged in order.
fn object(value: &Value) -> Result<Map<String, Value>, &'static str> {
    const EXPECTED: &str = OBJECT_EXPECTED;
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
        _ => Err(INTENTION_POLICY_EXPECTED),
    }
}

/// `acl.down_policy`.
fn down_policy(value: &Value) -> Result<crate::DownPolicy, &'static str> {
    match value.as_str() {
        Some("allow") => Ok(crate::DownPolicy::Allow),
        Some("deny") => Ok(crate::DownPolicy::Deny),
        Some("extend-cache") => Ok(crate::DownPolicy::ExtendCache),
        Some("async-cache") => Ok(crate::DownPolicy::AsyncCache),
        _ => Err(DOWN_POLICY_EXPECTED),
    }
}

/// `acl.default_policy`: whether it is "deny".
fn acl_default_policy(value: &Value) -> Result<bool, &'static str> {
    match value.as_str() {
        Some("allow") => Ok(false),
        Some("deny") => Ok(true),
        _ => Err(ACL_POLICY_EXPECTED),
    }
}

/// `acl.tokens.initial_management`: a UUID, as Consul requires (empty: none).
fn acl_token_uuid(value: &Value) -> Result<String, &'static str> {
    match value.as_str() {
        Some(text) if text.is_empty() || crate::resolve::is_uuid(text) => Ok(text.to_owned()),
        _ => Err(UUID_EXPECTED),
    }
}

fn tls_version(value: &Value) -> Result<crate::TlsVersion, &'static str> {
    match value.as_str() {
        Some("TLSv1_2") => Ok(crate::TlsVersion::Tls12),
        Some("TLSv1_3") => Ok(crate::TlsVersion::Tls13),
        _ => Err(TLS_VERSION_EXPECTED),
    }
}

/// The deprecated top-level `tls_min_version` also takes Consul's older names.
fn legacy_tls_version(value: &Value) -> Result<crate::TlsVersion, &'static str> {
    match value.as_str() {
        Some("TLSv1_2" | "tls12") => Ok(crate::TlsVersion::Tls12),
        Some("TLSv1_3" | "tls13") => Ok(crate::TlsVersion::Tls13),
        _ => Err(LEGACY_TLS_VERSION_EXPECTED),
    }
}

/// `tls_cipher_suites`: Consul's comma-separated string of Go's suite names, each one rustls
/// implements; Go's short ChaCha20 names become the `_SHA256` ones.
fn cipher_suites(value: &Value) -> Result<Vec<String>, &'static str> {
    const EXPECTED: &str = CIPHER_SUITES_EXPECTED;
    let text = value.as_str().ok_or(EXPECTED)?;
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let name = match name {
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
                | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
                    format!("{name}_SHA256")
                }
                other => other.to_owned(),
            };
            if crate::TLS_CIPHER_SUITES.contains(&name.as_str()) {
                Ok(name)
            } else {
                Err(EXPECTED)
            }
        })
        .collect()
}

fn ips(value: &Value) -> Result<Vec<IpAddr>, &'static str> {
    value
        .as_array()
        .ok_or(IPS_EXPECTED)?
        .iter()
        .map(|item| ip(item).map_err(|_| IPS_EXPECTED))
        .collect()
}

fn strings(value: &Value) -> Result<Vec<String>, &'static str> {
    const EXPECTED: &str = STRINGS_EXPECTED;
    value
        .as_array()
        .ok_or(EXPECTED)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or(EXPECTED))
        .collect()
}

/// Flags of `mesh-server` that override a key (a test checks them against its source).
pub(crate) static SERVER_FLAGS: &[&str] = &[
    "-datacenter",
    "-node",
    "-node-id",
    "-data-dir",
    "-bind",
    "-advertise",
    "-client",
    "-http-port",
    "-dns-port",
    "-server-port",
    "-serf-lan-port",
    "-server",
    "-bootstrap-expect",
    "-bootstrap",
    "-retry-join",
    "-log-level",
    "-log-json",
    "-raft-multiplier",
    "-encrypt",
    "-domain",
    "-alt-domain",
    "-recursor",
];

/// Flags of `mesh-client agent` that override a key (a test checks them against its source).
pub(crate) static CLIENT_FLAGS: &[&str] = &[
    "-datacenter",
    "-node",
    "-node-id",
    "-data-dir",
    "-bind",
    "-advertise",
    "-client",
    "-http-port",
    "-dns-port",
    "-serf-lan-port",
    "-retry-join",
    "-log-level",
    "-log-json",
    "-encrypt",
    "-domain",
    "-alt-domain",
    "-recursor",
];

const REFERENCE_INTRO: &str = "\
# Configuration reference

<!-- Generated from crates/config/src/keys.rs by `MESH_UPDATE_DOCS=1 cargo test -p config`;
     do not edit by hand. -->

`mesh-server` and `mesh-client agent` read configuration files in JSON or HCL with Consul's
key names, passed with `-config-file FILE` (repeatable, later files win) or `-config-dir DIR`
(its `*.json` and `*.hcl` files in name order; other files are ignored). Command-line flags
override every file; `retry_join` and `recursors` append instead (files to each other, then
flags). `-dev` fills in its defaults for whatever nothing else set. An unknown key, a Consul key
mesh does not implement, or a bad value stops the agent with an error naming the file (or flag)
and the full dotted key. A few Consul keys about things mesh has no use for (an update check,
a web UI) are checked and then have no effect, so that Consul's usual configurations load; their
descriptions say so. `mesh-client validate FILE_OR_DIRECTORY...` checks files without starting
anything.

Sections (`ports`, `dns_config`, ...) are objects in JSON and blocks in HCL:

```hcl
datacenter = \"dc1\"
data_dir   = \"/var/lib/mesh\"
ports {
  http = 8500
}
dns_config {
  service_ttl = { \"*\" = \"5s\" }
}
```

The Flag column names the flag that overrides a key, with the binary when only one of
`mesh-server` and `mesh-client agent` takes it; keys without one are set in files only. A
default marked `-dev` applies in `-dev` mode.
";

/// docs/configuration.md: every key of [`KEYS`] with its flag, value, default and meaning,
/// one table per section (keys outside a section are under "General").
pub fn reference_markdown() -> String {
    const HOSTNAME: &str = "<hostname>";
    let defaults = crate::resolve::resolve(Layers::default(), || HOSTNAME.to_owned())
        .expect("the built-in defaults are valid");
    let mut dev_layers = Layers::default();
    dev_layers.values.dev = Some(true);
    let dev = crate::resolve::resolve(dev_layers, || HOSTNAME.to_owned())
        .expect("the -dev defaults are valid");

    let mut groups: Vec<&str> = Vec::new();
    for key in KEYS {
        let group = group_of(key.path);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }

    let mut out = String::from(REFERENCE_INTRO);
    for group in groups {
        if group.is_empty() {
            out.push_str("\n## General\n\n");
        } else {
            out.push_str(&format!("\n## `{group}`\n\n"));
        }
        out.push_str("| Key | Flag | Value | Default | Description |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for key in KEYS.iter().filter(|key| group_of(key.path) == group) {
            let default = default_text(&defaults, key.path);
            let dev_default = default_text(&dev, key.path);
            let default = match (default, dev_default) {
                (None, None) => "none".to_owned(),
                (Some(normal), None) => normal,
                (normal, Some(dev)) if normal.as_ref() == Some(&dev) => dev,
                (None, Some(dev)) => format!("none (`-dev`: {dev})"),
                (Some(normal), Some(dev)) => format!("{normal} (`-dev`: {dev})"),
            };
            let default = default.replace(&format!("`{HOSTNAME}`"), "the hostname");
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                key.path,
                flag_text(key.flag),
                cell(key.kind),
                cell(&default),
                cell(key.doc),
            ));
        }
    }
    out
}

/// A key's section: the part of its path before the first dot ("" for a top-level key).
fn group_of(path: &str) -> &str {
    path.split_once('.').map_or("", |(first, _)| first)
}

fn flag_text(flag: &str) -> String {
    match (SERVER_FLAGS.contains(&flag), CLIENT_FLAGS.contains(&flag)) {
        (true, true) => format!("`{flag}`"),
        (true, false) => format!("`{flag}` (mesh-server)"),
        (false, true) => format!("`{flag}` (mesh-client)"),
        (false, false) => String::new(),
    }
}

/// Text for a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A key's value in `config` as the docs show it; `None` when unset or empty.
pub(crate) fn default_text(config: &crate::Config, path: &str) -> Option<String> {
    use crate::format_go_duration as go;
    let code = |text: String| Some(format!("`{text}`"));
    let flag = |on: bool| code(on.to_string());
    let number = |n: u64| code(n.to_string());
    let duration = |d: std::time::Duration| code(go(d));
    let port = |p: i32| {
        if p == crate::PORT_DISABLED {
            Some("`-1` (disabled)".to_owned())
        } else {
            code(p.to_string())
        }
    };
    let file = |file: &Option<PathBuf>| file.as_ref().and_then(|f| code(f.display().to_string()));
    let dns = &config.dns;
    match path {
        "datacenter" => code(config.datacenter.clone()),
        "node_name" => code(config.node_name.clone()),
        "node_id" => config.node_id.clone().and_then(code),
        "data_dir" => config
            .data_dir
            .as_ref()
            .and_then(|dir| code(dir.display().to_string())),
        "bind_addr" => code(config.bind_addr.to_string()),
        "advertise_addr" => config.advertise_addr.and_then(|a| code(a.to_string())),
        "client_addr" => code(config.client_addr.to_string()),
        "ports.http" => port(config.ports.http),
        "ports.https" => port(config.ports.https),
        "ports.dns" => port(config.ports.dns),
        "ports.server" => port(config.ports.server),
        "ports.serf_lan" => port(config.ports.serf_lan),
        "ports.grpc" => port(config.ports.grpc),
        "server" => flag(config.server),
        "bootstrap_expect" => number(config.bootstrap_expect.into()),
        "bootstrap" => flag(config.bootstrap),
        "retry_join" | "service" | "services" | "check" | "checks" | "recursors" => None,
        "enable_script_checks" => flag(config.enable_script_checks),
        "enable_local_script_checks" => flag(config.enable_local_script_checks),
        "log_level" => code(match config.log_level {
            crate::LogLevel::Error => "err".to_owned(),
            level => level.to_string(),
        }),
        "log_json" => flag(config.log_json),
        "limits.kv_max_value_size" => number(config.limits.kv_max_value_size),
        "limits.txn_max_req_len" => number(config.limits.txn_max_req_len),
        "limits.http_max_conns_per_client" => {
            number(config.limits.http_max_conns_per_client.into())
        }
        "session_ttl_min" => duration(config.session_ttl_min),
        "check_update_interval" => duration(config.check_update_interval),
        "ae_interval" => duration(config.ae_interval),
        "raft_snapshot_threshold" => number(config.raft_snapshot_threshold),
        "raft_trailing_logs" => number(config.raft_trailing_logs),
        "performance.raft_multiplier" => number(config.performance.raft_multiplier.into()),
        "encrypt" => config.encrypt.is_some().then(|| "(set)".to_owned()),
        "data_key_file" => config
            .data_key_file
            .as_ref()
            .and_then(|file| code(file.display().to_string())),
        "reconnect_timeout" => duration(config.reconnect_timeout),
        "domain" => code(dns.domain.clone()),
        "alt_domain" => dns.alt_domain.clone().and_then(code),
        "dns_config.node_ttl" => duration(dns.node_ttl),
        "dns_config.service_ttl" => (!dns.service_ttl.is_empty()).then(|| "(set)".to_owned()),
        "dns_config.only_passing" => flag(dns.only_passing),
        "dns_config.udp_answer_limit" => number(dns.udp_answer_limit.into()),
        "dns_config.a_record_limit" => number(dns.a_record_limit.into()),
        "dns_config.enable_truncate" => flag(dns.enable_truncate),
        "dns_config.recursor_timeout" => duration(dns.recursor_timeout),
        "dns_config.recursor_strategy" => code(
            match dns.recursor_strategy {
                crate::RecursorStrategy::Sequential => "sequential",
                crate::RecursorStrategy::Random => "random",
            }
            .to_owned(),
        ),
        "dns_config.soa.refresh" => number(dns.soa.refresh.into()),
        "dns_config.soa.retry" => number(dns.soa.retry.into()),
        "dns_config.soa.expire" => number(dns.soa.expire.into()),
        "dns_config.soa.min_ttl" => number(dns.soa.min_ttl.into()),
        "telemetry.prometheus_retention_time" => duration(config.prometheus_retention_time),
        "telemetry.disable_hostname"
        | "rejoin_after_leave"
        | "disable_update_check"
        | "ui"
        | "ui_config.enabled" => None,
        "connect.enabled" => flag(config.connect.enabled),
        "connect.ca_provider" => code("consul".to_owned()),
        "connect.ca_config" => None,
        "default_intention_policy" => {
            config
                .default_intention_policy
                .and_then(|policy| match policy {
                    crate::IntentionPolicy::Allow => code("allow".to_owned()),
                    crate::IntentionPolicy::Deny => code("deny".to_owned()),
                })
        }
        // Consul's defaults, by role rather than by `server`'s default.
        "leave_on_terminate" => Some("`true` on clients, `false` on servers".to_owned()),
        "skip_leave_on_interrupt" => Some("`false` on clients, `true` on servers".to_owned()),
        "autopilot.cleanup_dead_servers" => flag(config.autopilot.cleanup_dead_servers),
        "autopilot.last_contact_threshold" => duration(config.autopilot.last_contact_threshold),
        "autopilot.max_trailing_logs" => number(config.autopilot.max_trailing_logs),
        "autopilot.min_quorum" => number(config.autopilot.min_quorum.into()),
        "autopilot.server_stabilization_time" => {
            duration(config.autopilot.server_stabilization_time)
        }
        "acl.enabled" => flag(config.acl.enabled),
        "acl.default_policy" => code(
            if config.acl.default_deny {
                "deny"
            } else {
                "allow"
            }
            .to_owned(),
        ),
        // Secrets: only whether they are set.
        "acl.tokens.initial_management" | "acl.tokens.master" => config
            .acl
            .initial_management
            .is_some()
            .then(|| "(set)".to_owned()),
        "acl.tokens.default" => config
            .acl
            .default_token
            .is_some()
            .then(|| "(set)".to_owned()),
        "acl.tokens.agent" => config.acl.agent_token.is_some().then(|| "(set)".to_owned()),
        "acl.tokens.dns" => config.acl.dns_token.is_some().then(|| "(set)".to_owned()),
        "acl.enable_token_persistence" => flag(config.acl.enable_token_persistence),
        "acl.down_policy" => code(
            match config.acl.down_policy {
                crate::DownPolicy::Allow => "allow",
                crate::DownPolicy::Deny => "deny",
                crate::DownPolicy::ExtendCache => "extend-cache",
                crate::DownPolicy::AsyncCache => "async-cache",
            }
            .to_owned(),
        ),
        "tls.defaults.ca_file" | "ca_file" => file(&config.tls.ca_file),
        "tls.defaults.cert_file" | "cert_file" => file(&config.tls.cert_file),
        "tls.defaults.key_file" | "key_file" => file(&config.tls.key_file),
        "tls.defaults.verify_incoming" | "verify_incoming" => flag(false),
        "tls.https.verify_incoming" | "verify_incoming_https" => {
            flag(config.tls.https_verify_incoming)
        }
        "tls.internal_rpc.verify_incoming" | "verify_incoming_rpc" => {
            flag(config.tls.rpc_verify_incoming)
        }
        "tls.defaults.verify_outgoing" | "verify_outgoing" => flag(config.tls.verify_outgoing),
        "tls.internal_rpc.verify_server_hostname" | "verify_server_hostname" => {
            flag(config.tls.verify_server_hostname)
        }
        "tls.defaults.tls_min_version" | "tls_min_version" => {
            code(config.tls.min_version.as_str().to_owned())
        }
        "tls.defaults.tls_cipher_suites" | "tls_cipher_suites" => None,
        "auto_encrypt.allow_tls" => flag(config.tls.auto_encrypt.allow_tls),
        "auto_encrypt.tls" => flag(config.tls.auto_encrypt.tls),
        "auto_encrypt.ca_key_file" => file(&config.tls.auto_encrypt.ca_key_file),
        "auto_encrypt.dns_san" | "auto_encrypt.ip_san" => None,
        other => panic!("no default known for key {other:?}: add it to keys::default_text"),
    }
}
