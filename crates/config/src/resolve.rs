//! Turning merged values into a [`Config`]: `-dev` defaults, built-in defaults, validation.

use std::net::IpAddr;

use serde_json::Value;

use crate::config::{
    Config, Limits, LogLevel, Performance, Ports, DEFAULT_BIND_ADDR, DEFAULT_CLIENT_ADDR,
    DEFAULT_DATACENTER, DEFAULT_RAFT_SNAPSHOT_THRESHOLD, DEFAULT_RAFT_TRAILING_LOGS,
    DEFAULT_SESSION_TTL_MIN, PORT_DISABLED,
};
use crate::error::{ConfigError, ConfigSource};
use crate::keys::{Layers, PORT_EXPECTED, RAFT_MULTIPLIER_EXPECTED};

/// Consul's `reconnect_timeout` default and floor.
const DEFAULT_RECONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(72 * 3600);
const MIN_RECONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8 * 3600);
const DEV_NODE_NAME: &str = "dev";
const DEV_GRPC_PORT: i32 = 8502;
const LOOPBACK: IpAddr = DEFAULT_CLIENT_ADDR;

/// `hostname` is called only when no node name was given.
pub(crate) fn resolve(
    mut layers: Layers,
    hostname: impl FnOnce() -> String,
) -> Result<Config, ConfigError> {
    let dev = layers.values.dev.unwrap_or(false);
    if dev {
        apply_dev_defaults(&mut layers);
    }
    let values = &layers.values;
    let ports = Ports::default();
    let limits = Limits::default();
    let server = values.server.unwrap_or(false);
    let config = Config {
        // Consul lowercases the datacenter before validating it.
        datacenter: values
            .datacenter
            .as_deref()
            .unwrap_or(DEFAULT_DATACENTER)
            .to_lowercase(),
        node_name: values.node_name.clone().unwrap_or_else(hostname),
        // Consul lowercases node IDs too.
        node_id: values.node_id.as_deref().map(str::to_lowercase),
        data_dir: values.data_dir.clone(),
        bind_addr: values.bind_addr.unwrap_or(DEFAULT_BIND_ADDR),
        advertise_addr: values.advertise_addr,
        client_addr: values.client_addr.unwrap_or(DEFAULT_CLIENT_ADDR),
        ports: Ports {
            http: values.ports.http.unwrap_or(ports.http),
            https: values.ports.https.unwrap_or(ports.https),
            dns: values.ports.dns.unwrap_or(ports.dns),
            server: values.ports.server.unwrap_or(ports.server),
            serf_lan: values.ports.serf_lan.unwrap_or(ports.serf_lan),
            grpc: values.ports.grpc.unwrap_or(ports.grpc),
        },
        server,
        bootstrap_expect: values.bootstrap_expect.unwrap_or(0),
        bootstrap: values.bootstrap.unwrap_or(false),
        retry_join: values.retry_join.clone(),
        services: values.services.clone(),
        checks: values.checks.clone(),
        enable_script_checks: values.enable_script_checks.unwrap_or(false),
        enable_local_script_checks: values.enable_local_script_checks.unwrap_or(false),
        log_level: values.log_level.unwrap_or_default(),
        log_json: values.log_json.unwrap_or(false),
        dev,
        limits: Limits {
            kv_max_value_size: values
                .limits
                .kv_max_value_size
                .unwrap_or(limits.kv_max_value_size),
            txn_max_req_len: values
                .limits
                .txn_max_req_len
                .unwrap_or(limits.txn_max_req_len),
            http_max_conns_per_client: values
                .limits
                .http_max_conns_per_client
                .unwrap_or(limits.http_max_conns_per_client),
        },
        session_ttl_min: values.session_ttl_min.unwrap_or(DEFAULT_SESSION_TTL_MIN),
        check_update_interval: values
            .check_update_interval
            .unwrap_or(std::time::Duration::from_secs(300)),
        ae_interval: values
            .ae_interval
            .unwrap_or(std::time::Duration::from_secs(60)),
        raft_snapshot_threshold: values
            .raft_snapshot_threshold
            .unwrap_or(DEFAULT_RAFT_SNAPSHOT_THRESHOLD),
        raft_trailing_logs: values
            .raft_trailing_logs
            .unwrap_or(DEFAULT_RAFT_TRAILING_LOGS),
        performance: Performance {
            raft_multiplier: values
                .performance
                .raft_multiplier
                .unwrap_or(Performance::default().raft_multiplier),
        },
        encrypt: values.encrypt.clone(),
        data_key_file: values.data_key_file.clone(),
        prometheus_retention_time: values.prometheus_retention_time.unwrap_or_default(),
        dns: dns(&values.dns),
        connect: crate::Connect {
            enabled: values.connect.enabled.unwrap_or(true),
            ca_config: values.connect.ca_config.clone().unwrap_or_default(),
        },
        default_intention_policy: values.default_intention_policy,
        reconnect_timeout: values
            .reconnect_timeout
            .unwrap_or(DEFAULT_RECONNECT_TIMEOUT),
        // Consul's defaults depend on the role: clients leave on SIGTERM, servers do not
        // (a server that leaves shrinks the raft quorum).
        leave_on_terminate: values.leave_on_terminate.unwrap_or(!server),
        skip_leave_on_interrupt: values.skip_leave_on_interrupt.unwrap_or(server),
        autopilot: autopilot(&values.autopilot),
        acl: acl(&values.acl),
        tls: tls(&values.tls),
        sources: crate::Sources::default(),
    };
    validate(&config, &layers)?;
    Ok(config)
}

/// `-dev` supplies defaults, not overrides: anything a file or flag set still wins, so
/// `-dev -client 0.0.0.0` works as in Consul.
fn apply_dev_defaults(layers: &mut Layers) {
    macro_rules! dev_default {
        ($key:literal, $($field:ident).+, $value:expr) => {
            if layers.values.$($field).+.is_none() {
                layers.values.$($field).+ = Some($value);
                layers.set_source($key, ConfigSource::Dev);
            }
        };
    }
    dev_default!("server", server, true);
    dev_default!("bootstrap", bootstrap, true);
    dev_default!("bind_addr", bind_addr, LOOPBACK);
    dev_default!("client_addr", client_addr, LOOPBACK);
    dev_default!("node_name", node_name, DEV_NODE_NAME.to_owned());
    dev_default!(
        "performance.raft_multiplier",
        performance.raft_multiplier,
        1
    );
    dev_default!("log_level", log_level, LogLevel::Debug);
    dev_default!("ports.grpc", ports.grpc, DEV_GRPC_PORT);
}

fn validate(config: &Config, layers: &Layers) -> Result<(), ConfigError> {
    let invalid = |key: &'static str, expected: &'static str, got: Value| {
        Err(ConfigError::InvalidValue {
            origin: layers.source(key),
            key,
            expected,
            got: crate::keys::render(&got),
        })
    };

    let datacenter_ok = !config.datacenter.is_empty()
        && config
            .datacenter
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
    if !datacenter_ok {
        return invalid(
            "datacenter",
            "only letters, digits, '-' and '_'",
            config.datacenter.clone().into(),
        );
    }
    if config.node_name.is_empty() {
        return invalid("node_name", "a non-empty node name", "".into());
    }
    if let Some(id) = &config.node_id {
        if !is_uuid(id) {
            return invalid(
                "node_id",
                "a UUID such as \"adf4238a-882b-9ddc-4a9d-5b6758e4159e\"",
                id.clone().into(),
            );
        }
    }
    if let Some(addr) = config.advertise_addr {
        if addr.is_unspecified() {
            return invalid(
                "advertise_addr",
                "a specific IP address, not 0.0.0.0 or ::",
                addr.to_string().into(),
            );
        }
    }

    if let Some(key) = &config.encrypt {
        // Files are checked as they are read; the `-encrypt` flag is checked here. The key
        // itself is a secret and stays out of the message.
        if let Err(expected) = crate::keys::gossip_key(&key.clone().into()) {
            return invalid(
                "encrypt",
                expected,
                format!("{} characters", key.len()).into(),
            );
        }
    }

    // Flags are checked here (files as they are read), with the same rules.
    let domains = [
        ("domain", Some(&config.dns.domain)),
        ("alt_domain", config.dns.alt_domain.as_ref()),
    ];
    for (key, domain) in domains {
        let Some(domain) = domain else { continue };
        if let Err(expected) = crate::keys::dns_domain(&domain.clone().into()) {
            return invalid(key, expected, domain.clone().into());
        }
    }
    let recursors = Value::from(config.dns.recursors.clone());
    if let Err(expected) = crate::keys::recursors(&recursors) {
        return invalid("recursors", expected, recursors);
    }

    let ports = [
        ("ports.http", config.ports.http),
        ("ports.https", config.ports.https),
        ("ports.dns", config.ports.dns),
        ("ports.server", config.ports.server),
        ("ports.serf_lan", config.ports.serf_lan),
        ("ports.grpc", config.ports.grpc),
    ];
    for (key, port) in ports {
        if port != PORT_DISABLED && !(1..=65535).contains(&port) {
            return invalid(key, PORT_EXPECTED, port.into());
        }
    }

    if !(1..=10).contains(&config.performance.raft_multiplier) {
        return invalid(
            "performance.raft_multiplier",
            RAFT_MULTIPLIER_EXPECTED,
            config.performance.raft_multiplier.into(),
        );
    }

    if config.reconnect_timeout < MIN_RECONNECT_TIMEOUT {
        return invalid(
            "reconnect_timeout",
            "a duration of at least 8h",
            crate::format_go_duration(config.reconnect_timeout).into(),
        );
    }

    validate_tls(config, layers)?;

    if config.bootstrap_expect > 0 && !config.server {
        return Err(ConfigError::Requires {
            origin: layers.source("bootstrap_expect"),
            key: "bootstrap_expect",
            requirement: "\"server\" to be true",
        });
    }
    if config.bootstrap && !config.server {
        return Err(ConfigError::Requires {
            origin: layers.source("bootstrap"),
            key: "bootstrap",
            requirement: "\"server\" to be true",
        });
    }
    if config.bootstrap_expect > 0 && config.bootstrap {
        return Err(ConfigError::Conflict {
            origin: layers.source("bootstrap_expect"),
            key: "bootstrap_expect",
            other: "bootstrap",
            other_origin: layers.source("bootstrap"),
        });
    }
    Ok(())
}

/// The 8-4-4-4-12 hex form that Consul's `uuid.ParseUUID` accepts.
pub(crate) fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The DNS settings: what was given over Consul's defaults (mesh's domain is `mesh`).
fn dns(values: &crate::DnsOverrides) -> crate::Dns {
    let defaults = crate::Dns::default();
    let soa = crate::Soa {
        refresh: values.soa_refresh.unwrap_or(defaults.soa.refresh),
        retry: values.soa_retry.unwrap_or(defaults.soa.retry),
        expire: values.soa_expire.unwrap_or(defaults.soa.expire),
        min_ttl: values.soa_min_ttl.unwrap_or(defaults.soa.min_ttl),
    };
    // A domain from a flag is normalized here like one from a file (a bad one is left as it
    // is, for `validate` to refuse).
    let normalized = |domain: &String| {
        crate::keys::dns_domain(&domain.clone().into()).unwrap_or_else(|_| domain.clone())
    };
    crate::Dns {
        domain: values.domain.as_ref().map_or(defaults.domain, normalized),
        alt_domain: values.alt_domain.as_ref().map(normalized),
        recursors: values.recursors.clone(),
        node_ttl: values.node_ttl.unwrap_or(defaults.node_ttl),
        service_ttl: values.service_ttl.clone().unwrap_or_default(),
        only_passing: values.only_passing.unwrap_or(defaults.only_passing),
        udp_answer_limit: values.udp_answer_limit.unwrap_or(defaults.udp_answer_limit),
        a_record_limit: values.a_record_limit.unwrap_or(defaults.a_record_limit),
        enable_truncate: values.enable_truncate.unwrap_or(defaults.enable_truncate),
        recursor_timeout: values.recursor_timeout.unwrap_or(defaults.recursor_timeout),
        recursor_strategy: values.recursor_strategy.unwrap_or_default(),
        soa,
    }
}

/// The TLS settings: Consul's `tls` block over its deprecated top-level keys; each protocol's
/// `verify_incoming` falls back to the defaults'.
fn tls(values: &crate::TlsOverrides) -> crate::Tls {
    let old = &values.deprecated;
    let verify_incoming = values.verify_incoming.or(old.verify_incoming);
    let verify_server_hostname = values
        .verify_server_hostname
        .or(old.verify_server_hostname)
        .unwrap_or(false);
    crate::Tls {
        ca_file: values.ca_file.clone().or_else(|| old.ca_file.clone()),
        cert_file: values.cert_file.clone().or_else(|| old.cert_file.clone()),
        key_file: values.key_file.clone().or_else(|| old.key_file.clone()),
        min_version: values.min_version.or(old.min_version).unwrap_or_default(),
        cipher_suites: values
            .cipher_suites
            .clone()
            .or_else(|| old.cipher_suites.clone())
            .unwrap_or_default(),
        https_verify_incoming: values
            .https_verify_incoming
            .or(old.verify_incoming_https)
            .or(verify_incoming)
            .unwrap_or(false),
        rpc_verify_incoming: values
            .rpc_verify_incoming
            .or(old.verify_incoming_rpc)
            .or(verify_incoming)
            .unwrap_or(false),
        verify_outgoing: values
            .verify_outgoing
            .or(old.verify_outgoing)
            .unwrap_or(false)
            || verify_server_hostname,
        verify_server_hostname,
        auto_encrypt: crate::AutoEncrypt {
            allow_tls: values.auto_encrypt.allow_tls.unwrap_or(false),
            tls: values.auto_encrypt.tls.unwrap_or(false),
            dns_san: values.auto_encrypt.dns_san.clone().unwrap_or_default(),
            ip_san: values.auto_encrypt.ip_san.clone().unwrap_or_default(),
            ca_key_file: values.auto_encrypt.ca_key_file.clone(),
        },
    }
}

const CERT_KEYS: &[&str] = &["tls.defaults.cert_file", "cert_file"];
const KEY_KEYS: &[&str] = &["tls.defaults.key_file", "key_file"];
const HTTPS_VERIFY_KEYS: &[&str] = &[
    "tls.https.verify_incoming",
    "verify_incoming_https",
    "tls.defaults.verify_incoming",
    "verify_incoming",
];
const RPC_VERIFY_KEYS: &[&str] = &[
    "tls.internal_rpc.verify_incoming",
    "verify_incoming_rpc",
    "tls.defaults.verify_incoming",
    "verify_incoming",
];
const OUTGOING_KEYS: &[&str] = &[
    "tls.defaults.verify_outgoing",
    "verify_outgoing",
    "tls.internal_rpc.verify_server_hostname",
    "verify_server_hostname",
];

/// TLS settings that cannot work: a certificate without its key, HTTPS without a
/// certificate, verification without a CA, TLS server RPC on a server without a certificate.
fn validate_tls(config: &Config, layers: &Layers) -> Result<(), ConfigError> {
    // The key among `keys` that was set, to blame it (the first one when none was).
    let set_by = |keys: &[&'static str]| {
        keys.iter()
            .map(|key| (*key, layers.source(key)))
            .find(|(_, source)| *source != ConfigSource::Default)
            .unwrap_or((keys[0], ConfigSource::Default))
    };
    let requires = |keys: &[&'static str], requirement: &'static str| {
        let (key, origin) = set_by(keys);
        Err(ConfigError::Requires {
            origin,
            key,
            requirement,
        })
    };
    let tls = &config.tls;
    validate_auto_encrypt(config, layers)?;
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => {
            return requires(
                CERT_KEYS,
                "\"tls.defaults.key_file\" (or \"key_file\") to be set too",
            )
        }
        (None, Some(_)) => {
            return requires(
                KEY_KEYS,
                "\"tls.defaults.cert_file\" (or \"cert_file\") to be set too",
            )
        }
        _ => {}
    }
    // With auto_encrypt, the certificate comes from the servers at start.
    if config.ports.https != PORT_DISABLED && tls.cert_file.is_none() && !tls.auto_encrypt.tls {
        return requires(
            &["ports.https"],
            "a certificate: \"tls.defaults.cert_file\" and \"tls.defaults.key_file\"",
        );
    }
    const NEEDS_CA: &str = "a CA: \"tls.defaults.ca_file\" (or \"ca_file\")";
    if tls.ca_file.is_none() {
        if tls.https_verify_incoming && config.ports.https != PORT_DISABLED {
            return requires(HTTPS_VERIFY_KEYS, NEEDS_CA);
        }
        if tls.rpc_verify_incoming {
            return requires(RPC_VERIFY_KEYS, NEEDS_CA);
        }
        if tls.verify_outgoing {
            return requires(OUTGOING_KEYS, NEEDS_CA);
        }
    }
    if config.server && tls.rpc_enabled() && tls.cert_file.is_none() {
        if tls.auto_encrypt.allow_tls && !tls.rpc_verify_incoming && !tls.verify_outgoing {
            return requires(
                &["auto_encrypt.allow_tls"],
                "a certificate on a server, which serves RPC over TLS: \"tls.defaults.cert_file\" and \"tls.defaults.key_file\"",
            );
        }
        let keys = if tls.rpc_verify_incoming {
            RPC_VERIFY_KEYS
        } else {
            OUTGOING_KEYS
        };
        return requires(
            keys,
            "a certificate on a server, which serves RPC over TLS: \"tls.defaults.cert_file\" and \"tls.defaults.key_file\"",
        );
    }
    Ok(())
}

/// auto_encrypt's settings that cannot work: signing without the CA and its key, or on a
/// client; asking for a certificate on a server, without a CA to check servers with, or
/// beside a certificate of one's own.
fn validate_auto_encrypt(config: &Config, layers: &Layers) -> Result<(), ConfigError> {
    let auto = &config.tls.auto_encrypt;
    let requires = |key: &'static str, requirement: &'static str| {
        Err(ConfigError::Requires {
            origin: layers.source(key),
            key,
            requirement,
        })
    };
    if auto.allow_tls {
        if !config.server {
            return requires("auto_encrypt.allow_tls", "\"server\" to be true");
        }
        if config.tls.ca_file.is_none() {
            return requires(
                "auto_encrypt.allow_tls",
                "a CA: \"tls.defaults.ca_file\" (or \"ca_file\")",
            );
        }
        if auto.ca_key_file.is_none() {
            return requires(
                "auto_encrypt.allow_tls",
                "the CA's key to sign with: \"auto_encrypt.ca_key_file\"",
            );
        }
    }
    if auto.tls {
        if config.server {
            return requires(
                "auto_encrypt.tls",
                "\"server\" to be false (servers need a certificate of their own)",
            );
        }
        if config.tls.ca_file.is_none() {
            return requires(
                "auto_encrypt.tls",
                "a CA: \"tls.defaults.ca_file\" (or \"ca_file\")",
            );
        }
        if config.tls.cert_file.is_some() {
            let (key, other) = ("auto_encrypt.tls", "tls.defaults.cert_file");
            let other = if layers.source(other) == ConfigSource::Default {
                "cert_file"
            } else {
                other
            };
            return Err(ConfigError::Conflict {
                origin: layers.source(key),
                key,
                other,
                other_origin: layers.source(other),
            });
        }
    }
    Ok(())
}

/// The ACL settings; an empty token is no token, and `initial_management` wins over its
/// deprecated name `master` whatever the order they were given in.
fn acl(values: &crate::AclOverrides) -> crate::Acl {
    let token = |value: &Option<String>| value.clone().filter(|token| !token.is_empty());
    crate::Acl {
        enabled: values.enabled.unwrap_or(false),
        default_deny: values.default_deny.unwrap_or(false),
        initial_management: token(&values.initial_management).or_else(|| token(&values.master)),
        default_token: token(&values.default_token),
        agent_token: token(&values.agent_token),
        dns_token: token(&values.dns_token),
        enable_token_persistence: values.enable_token_persistence.unwrap_or(false),
        down_policy: values.down_policy.unwrap_or_default(),
    }
}

/// The autopilot settings: what was given over Consul's defaults.
fn autopilot(values: &crate::AutopilotOverrides) -> crate::Autopilot {
    let defaults = crate::Autopilot::default();
    crate::Autopilot {
        cleanup_dead_servers: values
            .cleanup_dead_servers
            .unwrap_or(defaults.cleanup_dead_servers),
        last_contact_threshold: values
            .last_contact_threshold
            .unwrap_or(defaults.last_contact_threshold),
        max_trailing_logs: values
            .max_trailing_logs
            .unwrap_or(defaults.max_trailing_logs),
        min_quorum: values.min_quorum.unwrap_or(defaults.min_quorum),
        server_stabilization_time: values
            .server_stabilization_time
            .unwrap_or(defaults.server_stabilization_time),
    }
}
