use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::*;

const HOST: &str = "test-host";

/// Config files in a temp dir; paths in error messages are shown relative to it.
struct Files {
    root: TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            root: TempDir::new().expect("create temp dir"),
        }
    }

    fn add(&self, name: &str, contents: &str) -> &Self {
        let path = self.root.path().join(name);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create dir");
        fs::write(path, contents).expect("write config file");
        self
    }

    fn mkdir(&self, name: &str) -> &Self {
        fs::create_dir_all(self.root.path().join(name)).expect("create dir");
        self
    }

    fn load(&self, files: &[&str], dirs: &[&str], overrides: &Overrides) -> Result<Config, String> {
        let abs = |names: &[&str]| -> Vec<PathBuf> {
            names.iter().map(|n| self.root.path().join(n)).collect()
        };
        // Where a configuration came from is tested on its own; leave it out of comparisons.
        load_with_hostname(&abs(files), &abs(dirs), overrides, || HOST.to_owned())
            .map(|config| Config {
                sources: Sources::default(),
                ..config
            })
            .map_err(|e| {
                e.to_string()
                    .replace(&format!("{}/", self.root.path().display()), "")
            })
    }

    fn load_file(&self, name: &str, contents: &str) -> Result<Config, String> {
        self.add(name, contents)
            .load(&[name], &[], &Overrides::default())
    }
}

fn load_one(name: &str, contents: &str) -> Result<Config, String> {
    Files::new().load_file(name, contents)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("valid IP in test")
}

/// The documented defaults, with the hostname stubbed.
fn defaults() -> Config {
    Config {
        datacenter: "dc1".into(),
        node_name: HOST.into(),
        node_id: None,
        data_dir: None,
        bind_addr: ip("0.0.0.0"),
        advertise_addr: None,
        client_addr: ip("127.0.0.1"),
        ports: Ports {
            http: 8500,
            https: -1,
            dns: 8600,
            server: 8300,
            serf_lan: 8301,
            grpc: -1,
        },
        server: false,
        bootstrap_expect: 0,
        bootstrap: false,
        retry_join: vec![],
        log_level: LogLevel::Info,
        log_json: false,
        dev: false,
        limits: Limits {
            kv_max_value_size: 524_288,
            txn_max_req_len: 524_288,
            http_max_conns_per_client: 200,
        },
        session_ttl_min: Duration::from_secs(10),
        check_update_interval: Duration::from_secs(300),
        ae_interval: Duration::from_secs(60),
        services: Vec::new(),
        checks: Vec::new(),
        enable_script_checks: false,
        enable_local_script_checks: false,
        raft_snapshot_threshold: 16384,
        raft_trailing_logs: 10240,
        performance: Performance { raft_multiplier: 5 },
        encrypt: None,
        data_key_file: None,
        reconnect_timeout: Duration::from_secs(72 * 3600),
        prometheus_retention_time: Duration::ZERO,
        dns: Dns::default(),
        connect: Connect::default(),
        default_intention_policy: None,
        leave_on_terminate: true,
        skip_leave_on_interrupt: false,
        autopilot: Autopilot::default(),
        acl: Acl::default(),
        tls: Tls::default(),
        sources: Sources::default(),
    }
}

#[test]
fn no_sources_gives_defaults() {
    assert_eq!(
        Files::new().load(&[], &[], &Overrides::default()),
        Ok(defaults())
    );
}

#[test]
fn default_node_name_is_the_hostname() {
    let config = load(&[], &[], &Overrides::default()).expect("defaults are valid");
    assert_eq!(config.node_name, hostname());
    assert!(!config.node_name.is_empty());
}

/// `c` as a server: `server` on, and the defaults that follow the role.
fn as_server(c: &mut Config) {
    c.server = true;
    c.leave_on_terminate = false;
    c.skip_leave_on_interrupt = true;
}

/// Every key, once from JSON and once from HCL, starting from the defaults.
#[test]
fn every_key_from_json_and_hcl() {
    type Change = fn(&mut Config);
    let cases: &[(&str, &str, Change)] = &[
        (
            r#"{"datacenter": "east-1_a"}"#,
            r#"datacenter = "east-1_a""#,
            |c| c.datacenter = "east-1_a".into(),
        ),
        (r#"{"datacenter": "DC2"}"#, r#"datacenter = "DC2""#, |c| {
            c.datacenter = "dc2".into()
        }),
        (r#"{"node_name": "n1"}"#, r#"node_name = "n1""#, |c| {
            c.node_name = "n1".into()
        }),
        (
            r#"{"node_id": "ADF4238A-882B-9DDC-4A9D-5B6758E4159E"}"#,
            r#"node_id = "ADF4238A-882B-9DDC-4A9D-5B6758E4159E""#,
            |c| c.node_id = Some("adf4238a-882b-9ddc-4a9d-5b6758e4159e".into()),
        ),
        (
            r#"{"data_dir": "/var/lib/mesh"}"#,
            r#"data_dir = "/var/lib/mesh""#,
            |c| c.data_dir = Some("/var/lib/mesh".into()),
        ),
        (
            r#"{"bind_addr": "10.0.0.1"}"#,
            r#"bind_addr = "10.0.0.1""#,
            |c| c.bind_addr = ip("10.0.0.1"),
        ),
        (
            r#"{"advertise_addr": "fd00::2"}"#,
            r#"advertise_addr = "fd00::2""#,
            |c| c.advertise_addr = Some(ip("fd00::2")),
        ),
        (
            r#"{"client_addr": "0.0.0.0"}"#,
            r#"client_addr = "0.0.0.0""#,
            |c| c.client_addr = ip("0.0.0.0"),
        ),
        (
            r#"{"ports": {"http": 8501}}"#,
            "ports { http = 8501 }",
            |c| c.ports.http = 8501,
        ),
        (r#"{"ports": {"http": -1}}"#, "ports = { http = -1 }", |c| {
            c.ports.http = -1
        }),
        (
            r#"{"ports": {"https": 8443}, "tls": {"defaults": {"cert_file": "a.pem", "key_file": "a-key.pem"}}}"#,
            "ports {\n  https = 8443\n}\ntls {\n  defaults {\n    cert_file = \"a.pem\"\n    key_file = \"a-key.pem\"\n  }\n}",
            |c| {
                c.ports.https = 8443;
                c.tls.cert_file = Some("a.pem".into());
                c.tls.key_file = Some("a-key.pem".into());
            },
        ),
        (r#"{"ports": {"dns": 53}}"#, "ports = { dns = 53 }", |c| {
            c.ports.dns = 53
        }),
        (
            r#"{"ports": {"server": 9300}}"#,
            "ports { server = 9300 }",
            |c| c.ports.server = 9300,
        ),
        (
            r#"{"ports": {"serf_lan": 9301}}"#,
            "ports { serf_lan = 9301 }",
            |c| c.ports.serf_lan = 9301,
        ),
        (
            r#"{"ports": {"grpc": 8502}}"#,
            "ports { grpc = 8502 }",
            |c| c.ports.grpc = 8502,
        ),
        (
            r#"{"ports": [{"http": 1}, {"dns": 2, "http": 3}]}"#,
            "ports { http = 1 }\nports {\n  dns = 2\n  http = 3\n}",
            |c| (c.ports.http, c.ports.dns) = (3, 2),
        ),
        (r#"{"server": true}"#, "server = true", as_server),
        (
            r#"{"server": true, "bootstrap_expect": 3}"#,
            "server = true\nbootstrap_expect = 3",
            |c| {
                as_server(c);
                c.bootstrap_expect = 3;
            },
        ),
        (
            r#"{"server": true, "bootstrap": true}"#,
            "server = true\nbootstrap = true",
            |c| {
                as_server(c);
                c.bootstrap = true;
            },
        ),
        (
            r#"{"retry_join": ["127.0.0.2", "provider=aws tag_key=k tag_value=v"]}"#,
            r#"retry_join = ["127.0.0.2", "provider=aws tag_key=k tag_value=v"]"#,
            |c| {
                c.retry_join = vec![
                    "127.0.0.2".into(),
                    "provider=aws tag_key=k tag_value=v".into(),
                ]
            },
        ),
        (r#"{"log_level": "TRACE"}"#, r#"log_level = "TRACE""#, |c| {
            c.log_level = LogLevel::Trace
        }),
        (r#"{"log_level": "debug"}"#, r#"log_level = "debug""#, |c| {
            c.log_level = LogLevel::Debug
        }),
        (r#"{"log_level": "WARN"}"#, r#"log_level = "WARN""#, |c| {
            c.log_level = LogLevel::Warn
        }),
        (r#"{"log_level": "ERR"}"#, r#"log_level = "ERR""#, |c| {
            c.log_level = LogLevel::Error
        }),
        (r#"{"log_level": "error"}"#, r#"log_level = "error""#, |c| {
            c.log_level = LogLevel::Error
        }),
        (r#"{"log_json": true}"#, "log_json = true", |c| {
            c.log_json = true
        }),
        (
            r#"{"limits": {"kv_max_value_size": 1048576}}"#,
            "limits { kv_max_value_size = 1048576 }",
            |c| c.limits.kv_max_value_size = 1_048_576,
        ),
        (
            r#"{"limits": {"txn_max_req_len": 1024}}"#,
            "limits = { txn_max_req_len = 1024 }",
            |c| c.limits.txn_max_req_len = 1024,
        ),
        (
            r#"{"limits": {"http_max_conns_per_client": 0}}"#,
            "limits { http_max_conns_per_client = 0 }",
            |c| c.limits.http_max_conns_per_client = 0,
        ),
        (
            r#"{"session_ttl_min": "1m30s"}"#,
            r#"session_ttl_min = "1m30s""#,
            |c| c.session_ttl_min = Duration::from_secs(90),
        ),
        (
            r#"{"check_update_interval": "30s"}"#,
            r#"check_update_interval = "30s""#,
            |c| c.check_update_interval = Duration::from_secs(30),
        ),
        (
            r#"{"enable_script_checks": true}"#,
            "enable_script_checks = true",
            |c| c.enable_script_checks = true,
        ),
        (
            r#"{"enable_local_script_checks": true}"#,
            "enable_local_script_checks = true",
            |c| c.enable_local_script_checks = true,
        ),
        (
            r#"{"service": {"name": "web", "port": 80}}"#,
            "service {\n name = \"web\"\n port = 80\n}",
            |c| c.services = vec![serde_json::json!({"name": "web", "port": 80})],
        ),
        (
            r#"{"services": [{"name": "a"}, {"name": "b"}]}"#,
            "services = [{ name = \"a\" }, { name = \"b\" }]",
            |c| {
                c.services = vec![
                    serde_json::json!({"name": "a"}),
                    serde_json::json!({"name": "b"}),
                ]
            },
        ),
        (
            r#"{"check": {"name": "disk", "ttl": "30s"}}"#,
            "check {\n name = \"disk\"\n ttl = \"30s\"\n}",
            |c| c.checks = vec![serde_json::json!({"name": "disk", "ttl": "30s"})],
        ),
        (
            r#"{"checks": [{"name": "a", "ttl": "1s"}]}"#,
            "checks = [{ name = \"a\", ttl = \"1s\" }]",
            |c| c.checks = vec![serde_json::json!({"name": "a", "ttl": "1s"})],
        ),
        (r#"{"ae_interval": "2s"}"#, r#"ae_interval = "2s""#, |c| {
            c.ae_interval = Duration::from_secs(2)
        }),
        (
            r#"{"data_key_file": "/etc/mesh/data.key"}"#,
            r#"data_key_file = "/etc/mesh/data.key""#,
            |c| c.data_key_file = Some(PathBuf::from("/etc/mesh/data.key")),
        ),
        (
            r#"{"raft_snapshot_threshold": 1}"#,
            "raft_snapshot_threshold = 1",
            |c| c.raft_snapshot_threshold = 1,
        ),
        (
            r#"{"raft_trailing_logs": 20}"#,
            "raft_trailing_logs = 20",
            |c| c.raft_trailing_logs = 20,
        ),
        (
            r#"{"performance": {"raft_multiplier": 1}}"#,
            "performance { raft_multiplier = 1 }",
            |c| c.performance.raft_multiplier = 1,
        ),
        (
            r#"{"performance": {"raft_multiplier": 10}}"#,
            "performance = { raft_multiplier = 10 }",
            |c| c.performance.raft_multiplier = 10,
        ),
        (
            r#"{"encrypt": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="}"#,
            r#"encrypt = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=""#,
            |c| c.encrypt = Some("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=".into()),
        ),
        (
            r#"{"telemetry": {"prometheus_retention_time": "60s"}}"#,
            r#"telemetry { prometheus_retention_time = "60s" }"#,
            |c| c.prometheus_retention_time = Duration::from_secs(60),
        ),
        (
            r#"{"domain": "Consul.", "alt_domain": "mesh.example.com"}"#,
            r#"domain = "Consul."
alt_domain = "mesh.example.com""#,
            |c| {
                c.dns.domain = "consul".into();
                c.dns.alt_domain = Some("mesh.example.com".into());
            },
        ),
        (
            r#"{"recursors": ["8.8.8.8", "[::1]:53"]}"#,
            r#"recursors = ["8.8.8.8", "[::1]:53"]"#,
            |c| c.dns.recursors = vec!["8.8.8.8".into(), "[::1]:53".into()],
        ),
        (
            r#"{"dns_config": {"node_ttl": "10s", "service_ttl": {"*": "5s", "web": "30s"},
                "only_passing": true, "udp_answer_limit": 10, "a_record_limit": 4,
                "enable_truncate": false, "recursor_timeout": "1s",
                "recursor_strategy": "random", "soa": {"min_ttl": 30, "refresh": 7200}}}"#,
            r#"dns_config {
  node_ttl = "10s"
  service_ttl = { "*" = "5s", "web" = "30s" }
  only_passing = true
  udp_answer_limit = 10
  a_record_limit = 4
  enable_truncate = false
  recursor_timeout = "1s"
  recursor_strategy = "random"
  soa {
    min_ttl = 30
    refresh = 7200
  }
}"#,
            |c| {
                c.dns.node_ttl = Duration::from_secs(10);
                c.dns.service_ttl = [
                    ("*".to_owned(), Duration::from_secs(5)),
                    ("web".to_owned(), Duration::from_secs(30)),
                ]
                .into();
                c.dns.only_passing = true;
                c.dns.udp_answer_limit = 10;
                c.dns.a_record_limit = 4;
                c.dns.enable_truncate = false;
                c.dns.recursor_timeout = Duration::from_secs(1);
                c.dns.recursor_strategy = RecursorStrategy::Random;
                c.dns.soa.min_ttl = 30;
                c.dns.soa.refresh = 7200;
            },
        ),
        (
            r#"{"reconnect_timeout": "24h"}"#,
            r#"reconnect_timeout = "24h""#,
            |c| c.reconnect_timeout = Duration::from_secs(24 * 3600),
        ),
        (
            r#"{"connect": {"enabled": false, "ca_provider": "consul",
                "ca_config": {"leaf_cert_ttl": "1h", "csr_max_per_second": 5}}}"#,
            r#"connect {
                enabled = false
                ca_provider = "consul"
                ca_config {
                    leaf_cert_ttl = "1h"
                    csr_max_per_second = 5
                }
            }"#,
            |c| {
                c.connect.enabled = false;
                c.connect.ca_config =
                    serde_json::json!({"leaf_cert_ttl": "1h", "csr_max_per_second": 5})
                        .as_object()
                        .expect("object")
                        .clone();
            },
        ),
        (
            r#"{"default_intention_policy": "deny"}"#,
            r#"default_intention_policy = "deny""#,
            |c| c.default_intention_policy = Some(IntentionPolicy::Deny),
        ),
        (
            r#"{"leave_on_terminate": false, "skip_leave_on_interrupt": true}"#,
            "leave_on_terminate = false\nskip_leave_on_interrupt = true",
            |c| {
                c.leave_on_terminate = false;
                c.skip_leave_on_interrupt = true;
            },
        ),
        // Accepted for Consul compatibility, with no effect.
        (
            r#"{"rejoin_after_leave": true, "disable_update_check": true, "ui": true,
                "ui_config": {"enabled": true}, "telemetry": {"disable_hostname": true}}"#,
            r#"rejoin_after_leave = true
               disable_update_check = true
               ui = true
               ui_config { enabled = true }
               telemetry { disable_hostname = true }"#,
            |_| {},
        ),
        (
            r#"{"autopilot": {"cleanup_dead_servers": false, "last_contact_threshold": "1s",
                "max_trailing_logs": 500, "min_quorum": 3, "server_stabilization_time": "30s"}}"#,
            r#"autopilot {
                cleanup_dead_servers = false
                last_contact_threshold = "1s"
                max_trailing_logs = 500
                min_quorum = 3
                server_stabilization_time = "30s"
            }"#,
            |c| {
                c.autopilot = Autopilot {
                    cleanup_dead_servers: false,
                    last_contact_threshold: Duration::from_secs(1),
                    max_trailing_logs: 500,
                    min_quorum: 3,
                    server_stabilization_time: Duration::from_secs(30),
                }
            },
        ),
        (
            r#"{"acl": {"enabled": true, "default_policy": "deny", "tokens": {
                "initial_management": "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f",
                "default": "anonymous-ish"}}}"#,
            r#"acl {
                enabled = true
                default_policy = "deny"
                tokens {
                    initial_management = "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f"
                    default = "anonymous-ish"
                }
            }"#,
            |c| {
                c.acl = Acl {
                    enabled: true,
                    default_deny: true,
                    initial_management: Some("8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f".into()),
                    default_token: Some("anonymous-ish".into()),
                    ..Acl::default()
                }
            },
        ),
        // Consul's deprecated name for `initial_management`; `allow` is the default.
        (
            r#"{"acl": {"default_policy": "allow",
                "tokens": {"master": "ABCDEF01-2345-6789-abcd-ef0123456789"}}}"#,
            r#"acl = {
                default_policy = "allow"
                tokens = { master = "ABCDEF01-2345-6789-abcd-ef0123456789" }
            }"#,
            |c| c.acl.initial_management = Some("ABCDEF01-2345-6789-abcd-ef0123456789".into()),
        ),
        // The agent's own tokens, and keeping API-set tokens across restarts.
        (
            r#"{"acl": {"down_policy": "deny"}}"#,
            r#"acl { down_policy = "deny" }"#,
            |c| c.acl.down_policy = DownPolicy::Deny,
        ),
        (
            r#"{"acl": {"enable_token_persistence": true,
                "tokens": {"agent": "agent-secret", "dns": "dns-secret"}}}"#,
            r#"acl {
                enable_token_persistence = true
                tokens {
                    agent = "agent-secret"
                    dns = "dns-secret"
                }
            }"#,
            |c| {
                c.acl.enable_token_persistence = true;
                c.acl.agent_token = Some("agent-secret".into());
                c.acl.dns_token = Some("dns-secret".into());
            },
        ),
        // An empty token is no token, as in Consul.
        (
            r#"{"acl": {"tokens": {"initial_management": "", "default": ""}}}"#,
            r#"acl {
                tokens = { initial_management = "", default = "" }
            }"#,
            |_| {},
        ),
        // Consul's `tls` block: each protocol falls back to the defaults.
        (
            r#"{"server": true, "tls": {
                "defaults": {"ca_file": "ca.pem", "cert_file": "s.pem", "key_file": "s-key.pem",
                    "verify_incoming": true, "verify_outgoing": true,
                    "tls_min_version": "TLSv1_3",
                    "tls_cipher_suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"},
                "https": {"verify_incoming": false},
                "internal_rpc": {"verify_server_hostname": true}}}"#,
            r#"server = true
            tls {
                defaults {
                    ca_file = "ca.pem"
                    cert_file = "s.pem"
                    key_file = "s-key.pem"
                    verify_incoming = true
                    verify_outgoing = true
                    tls_min_version = "TLSv1_3"
                    tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
                }
                https { verify_incoming = false }
                internal_rpc { verify_server_hostname = true }
            }"#,
            |c| {
                as_server(c);
                c.tls = Tls {
                    ca_file: Some("ca.pem".into()),
                    cert_file: Some("s.pem".into()),
                    key_file: Some("s-key.pem".into()),
                    min_version: TlsVersion::Tls13,
                    cipher_suites: vec![
                        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
                        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into(),
                    ],
                    https_verify_incoming: false,
                    rpc_verify_incoming: true,
                    verify_outgoing: true,
                    verify_server_hostname: true,
                    auto_encrypt: AutoEncrypt::default(),
                }
            },
        ),
        // auto_encrypt on a server: it signs client agents' certificates.
        (
            r#"{"server": true,
                "tls": {"defaults": {"ca_file": "ca.pem", "cert_file": "s.pem", "key_file": "s-key.pem"}},
                "auto_encrypt": {"allow_tls": true, "ca_key_file": "ca-key.pem"}}"#,
            r#"server = true
            tls {
                defaults {
                    ca_file = "ca.pem"
                    cert_file = "s.pem"
                    key_file = "s-key.pem"
                }
            }
            auto_encrypt {
                allow_tls = true
                ca_key_file = "ca-key.pem"
            }"#,
            |c| {
                as_server(c);
                c.tls.ca_file = Some("ca.pem".into());
                c.tls.cert_file = Some("s.pem".into());
                c.tls.key_file = Some("s-key.pem".into());
                c.tls.auto_encrypt.allow_tls = true;
                c.tls.auto_encrypt.ca_key_file = Some("ca-key.pem".into());
            },
        ),
        // auto_encrypt on a client agent: the CA is all it has.
        (
            r#"{"ca_file": "ca.pem", "verify_outgoing": true,
                "auto_encrypt": {"tls": true, "dns_san": ["web.example"], "ip_san": ["10.0.0.7"]}}"#,
            r#"ca_file = "ca.pem"
            verify_outgoing = true
            auto_encrypt {
                tls = true
                dns_san = ["web.example"]
                ip_san = ["10.0.0.7"]
            }"#,
            |c| {
                c.tls.ca_file = Some("ca.pem".into());
                c.tls.verify_outgoing = true;
                c.tls.auto_encrypt.tls = true;
                c.tls.auto_encrypt.dns_san = vec!["web.example".into()];
                c.tls.auto_encrypt.ip_san = vec![ip("10.0.0.7")];
            },
        ),
        // The deprecated top-level keys, which the block overrides key by key.
        (
            r#"{"ca_file": "old-ca.pem", "cert_file": "old.pem", "key_file": "old-key.pem",
                "verify_incoming": true, "verify_incoming_https": false,
                "verify_incoming_rpc": true, "verify_outgoing": false,
                "verify_server_hostname": true, "tls_min_version": "tls12",
                "tls_cipher_suites": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "tls": {"defaults": {"ca_file": "ca.pem"}, "internal_rpc": {"verify_incoming": false}}}"#,
            r#"ca_file = "old-ca.pem"
            cert_file = "old.pem"
            key_file = "old-key.pem"
            verify_incoming = true
            verify_incoming_https = false
            verify_incoming_rpc = true
            verify_outgoing = false
            verify_server_hostname = true
            tls_min_version = "tls12"
            tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            tls {
                defaults { ca_file = "ca.pem" }
                internal_rpc { verify_incoming = false }
            }"#,
            |c| {
                c.tls = Tls {
                    ca_file: Some("ca.pem".into()),
                    cert_file: Some("old.pem".into()),
                    key_file: Some("old-key.pem".into()),
                    min_version: TlsVersion::Tls12,
                    cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into()],
                    https_verify_incoming: false,
                    rpc_verify_incoming: false,
                    // verify_server_hostname implies it.
                    verify_outgoing: true,
                    verify_server_hostname: true,
                    auto_encrypt: AutoEncrypt::default(),
                }
            },
        ),
    ];
    for (json, hcl, change) in cases {
        let mut expected = defaults();
        change(&mut expected);
        assert_eq!(
            load_one("config.json", json),
            Ok(expected.clone()),
            "JSON: {json}"
        );
        assert_eq!(load_one("config.hcl", hcl), Ok(expected), "HCL: {hcl}");
    }
}

#[test]
fn every_file_key_is_covered_by_a_test_case() {
    // Keep `every_key_from_json_and_hcl` honest when keys are added.
    let covered = [
        "datacenter",
        "node_name",
        "node_id",
        "data_dir",
        "bind_addr",
        "advertise_addr",
        "client_addr",
        "ports.http",
        "ports.https",
        "ports.dns",
        "ports.server",
        "ports.serf_lan",
        "ports.grpc",
        "server",
        "bootstrap_expect",
        "bootstrap",
        "retry_join",
        "service",
        "services",
        "check",
        "checks",
        "enable_script_checks",
        "enable_local_script_checks",
        "log_level",
        "log_json",
        "limits.kv_max_value_size",
        "limits.txn_max_req_len",
        "limits.http_max_conns_per_client",
        "session_ttl_min",
        "check_update_interval",
        "ae_interval",
        "raft_snapshot_threshold",
        "raft_trailing_logs",
        "performance.raft_multiplier",
        "encrypt",
        "data_key_file",
        "reconnect_timeout",
        "domain",
        "alt_domain",
        "recursors",
        "dns_config.node_ttl",
        "dns_config.service_ttl",
        "dns_config.only_passing",
        "dns_config.udp_answer_limit",
        "dns_config.a_record_limit",
        "dns_config.enable_truncate",
        "dns_config.recursor_timeout",
        "dns_config.recursor_strategy",
        "dns_config.soa.refresh",
        "dns_config.soa.retry",
        "dns_config.soa.expire",
        "dns_config.soa.min_ttl",
        "telemetry.prometheus_retention_time",
        "telemetry.disable_hostname",
        "connect.enabled",
        "connect.ca_provider",
        "connect.ca_config",
        "default_intention_policy",
        "leave_on_terminate",
        "skip_leave_on_interrupt",
        "rejoin_after_leave",
        "disable_update_check",
        "ui",
        "ui_config.enabled",
        "autopilot.cleanup_dead_servers",
        "autopilot.last_contact_threshold",
        "autopilot.max_trailing_logs",
        "autopilot.min_quorum",
        "autopilot.server_stabilization_time",
        "acl.enabled",
        "acl.default_policy",
        "acl.tokens.initial_management",
        "acl.tokens.master",
        "acl.tokens.default",
        "acl.tokens.agent",
        "acl.tokens.dns",
        "acl.down_policy",
        "acl.enable_token_persistence",
        "tls.defaults.ca_file",
        "tls.defaults.cert_file",
        "tls.defaults.key_file",
        "tls.defaults.verify_incoming",
        "tls.defaults.verify_outgoing",
        "tls.defaults.tls_min_version",
        "tls.defaults.tls_cipher_suites",
        "tls.https.verify_incoming",
        "tls.internal_rpc.verify_incoming",
        "tls.internal_rpc.verify_server_hostname",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_incoming",
        "verify_incoming_https",
        "verify_incoming_rpc",
        "verify_outgoing",
        "verify_server_hostname",
        "tls_min_version",
        "tls_cipher_suites",
        "auto_encrypt.allow_tls",
        "auto_encrypt.ca_key_file",
        "auto_encrypt.tls",
        "auto_encrypt.dns_san",
        "auto_encrypt.ip_san",
    ];
    let table: Vec<&str> = keys::KEYS.iter().map(|k| k.path).collect();
    assert_eq!(table, covered);
    // Keys without a flag (service and check definitions) have an empty one.
    let with_flag: Vec<&str> = keys::KEYS
        .iter()
        .map(|k| k.flag)
        .filter(|f| !f.is_empty())
        .collect();
    let mut flags = with_flag.clone();
    flags.sort_unstable();
    flags.dedup();
    assert_eq!(flags.len(), with_flag.len(), "flag names are unique");
}

/// (file name, contents, exact error message)
fn check_errors(cases: &[(&str, &str, &str)]) {
    for (name, contents, message) in cases {
        assert_eq!(
            load_one(name, contents),
            Err((*message).to_owned()),
            "{name}: {contents}"
        );
    }
}

#[test]
fn unknown_keys_are_errors_with_full_path() {
    check_errors(&[
        (
            "config.hcl",
            "portz { http = 1 }",
            r#"config.hcl: unknown key "portz""#,
        ),
        (
            "config.json",
            r#"{"portz": {"http": 1}}"#,
            r#"config.json: unknown key "portz""#,
        ),
        (
            "config.hcl",
            "ports { htp = 1 }",
            r#"config.hcl: unknown key "ports.htp""#,
        ),
        (
            "config.json",
            r#"{"ports": {"htp": 1}}"#,
            r#"config.json: unknown key "ports.htp""#,
        ),
        (
            "config.hcl",
            "ports \"x\" { http = 1 }",
            r#"config.hcl: unknown key "ports.x""#,
        ),
        (
            "config.json",
            r#"{"performance": {"raft_multiplier": 1, "x": 2}}"#,
            r#"config.json: unknown key "performance.x""#,
        ),
        (
            "config.json",
            r#"{"limits": [{"nope": 1}]}"#,
            r#"config.json: unknown key "limits.nope""#,
        ),
        (
            "config.hcl",
            "acl { nonsense = true }",
            r#"config.hcl: unknown key "acl.nonsense""#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": {"nonsense": "x"}}}"#,
            r#"config.json: unknown key "acl.tokens.nonsense""#,
        ),
        // `dev` is a flag only, as in Consul; so are camel-cased names.
        (
            "config.json",
            r#"{"dev": true}"#,
            r#"config.json: unknown key "dev""#,
        ),
        (
            "config.json",
            r#"{"NodeName": "n1"}"#,
            r#"config.json: unknown key "NodeName""#,
        ),
    ]);
}

#[test]
fn consul_keys_not_supported_yet_are_distinct_errors() {
    check_errors(&[
        (
            "config.hcl",
            r#"acl { role_ttl = "30s" }"#,
            r#"config.hcl: key "acl.role_ttl" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"acl": {"enabled": true, "token_ttl": "30s"}}"#,
            r#"config.json: key "acl.token_ttl" is not supported yet"#,
        ),
        (
            "config.hcl",
            r#"acl { tokens = { replication = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9" } }"#,
            r#"config.hcl: key "acl.tokens.replication" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": {"agent_recovery": "x"}}}"#,
            r#"config.json: key "acl.tokens.agent_recovery" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"connect": {"enable_mesh_gateway_wan_federation": true}}"#,
            r#"config.json: key "connect.enable_mesh_gateway_wan_federation" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"ui_config": {"enabled": true, "content_path": "/ui/"}}"#,
            r#"config.json: key "ui_config.content_path" is not supported yet"#,
        ),
        (
            "config.hcl",
            "autopilot { redundancy_zone_tag = \"zone\" }",
            r#"config.hcl: key "autopilot.redundancy_zone_tag" is not supported yet"#,
        ),
        // Consul's TLS settings mesh does not implement, and its other security keys.
        (
            "config.hcl",
            r#"tls {
              grpc { verify_incoming = true }
            }"#,
            r#"config.hcl: key "tls.grpc" is not supported yet"#,
        ),
        (
            "config.hcl",
            r#"tls {
              defaults { ca_path = "/etc/certs" }
            }"#,
            r#"config.hcl: key "tls.defaults.ca_path" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"tls": {"https": {"cert_file": "other.pem"}}}"#,
            r#"config.json: key "tls.https.cert_file" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"ca_path": "/etc/certs"}"#,
            r#"config.json: key "ca_path" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"auto_config": {"enabled": true}}"#,
            r#"config.json: key "auto_config" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"auto_encrypt": {"nonsense": true}}"#,
            r#"config.json: key "auto_encrypt.nonsense" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"limits": {"rpc_rate": 100}}"#,
            r#"config.json: key "limits.rpc_rate" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"node_meta": {"rack": "r1"}}"#,
            r#"config.json: key "node_meta" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"telemetry": {"statsd_address": "127.0.0.1:8125"}}"#,
            r#"config.json: key "telemetry.statsd_address" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"dns_config": {"allow_stale": false}}"#,
            r#"config.json: key "dns_config.allow_stale" is not supported yet"#,
        ),
        (
            "config.json",
            r#"{"ports": {"serf_wan": 8302}}"#,
            r#"config.json: key "ports.serf_wan" is not supported yet"#,
        ),
    ]);
}

#[test]
fn bad_values_name_file_key_and_value() {
    const PORT: &str = "a port number between 1 and 65535, or -1 to disable";
    let port_error = |file: &str, got: &str| {
        format!(r#"{file}: invalid value for "ports.http": expected {PORT}, got {got}"#)
    };
    check_errors(&[
        (
            "config.json",
            r#"{"domain": "my_domain"}"#,
            r#"config.json: invalid value for "domain": expected a DNS domain such as "mesh" or "mesh.example.com", got "my_domain""#,
        ),
        (
            "config.json",
            r#"{"recursors": ["dns.example.com"]}"#,
            r#"config.json: invalid value for "recursors": expected a list of IP addresses, each with an optional port, got ["dns.example.com"]"#,
        ),
        (
            "config.json",
            r#"{"dns_config": {"recursor_strategy": "fastest"}}"#,
            r#"config.json: invalid value for "dns_config.recursor_strategy": expected "sequential" or "random", got "fastest""#,
        ),
        // Keys accepted with no effect still have their values checked.
        (
            "config.json",
            r#"{"disable_update_check": "yes"}"#,
            r#"config.json: invalid value for "disable_update_check": expected a boolean (true or false), got "yes""#,
        ),
        (
            "config.hcl",
            "ui_config { enabled = 1 }",
            r#"config.hcl: invalid value for "ui_config.enabled": expected a boolean (true or false), got 1"#,
        ),
        (
            "config.json",
            r#"{"autopilot": {"last_contact_threshold": "soon"}}"#,
            r#"config.json: invalid value for "autopilot.last_contact_threshold": expected a duration such as "10s" or "1m30s", got "soon""#,
        ),
        (
            "config.json",
            r#"{"bootstrap_expect": "three"}"#,
            r#"config.json: invalid value for "bootstrap_expect": expected a non-negative integer, got "three""#,
        ),
        (
            "config.json",
            r#"{"bootstrap_expect": -1}"#,
            r#"config.json: invalid value for "bootstrap_expect": expected a non-negative integer, got -1"#,
        ),
        (
            "config.hcl",
            "bootstrap_expect = 1.5",
            r#"config.hcl: invalid value for "bootstrap_expect": expected a non-negative integer, got 1.5"#,
        ),
        (
            "config.json",
            r#"{"bootstrap_expect": 4294967296}"#,
            r#"config.json: invalid value for "bootstrap_expect": expected a non-negative integer, got 4294967296"#,
        ),
        (
            "config.json",
            r#"{"server": "true"}"#,
            r#"config.json: invalid value for "server": expected a boolean (true or false), got "true""#,
        ),
        (
            "config.hcl",
            "log_json = 1",
            r#"config.hcl: invalid value for "log_json": expected a boolean (true or false), got 1"#,
        ),
        (
            "config.json",
            r#"{"datacenter": 1}"#,
            r#"config.json: invalid value for "datacenter": expected a string, got 1"#,
        ),
        (
            "config.json",
            r#"{"node_name": null}"#,
            r#"config.json: invalid value for "node_name": expected a string, got null"#,
        ),
        (
            "config.json",
            r#"{"data_dir": ""}"#,
            r#"config.json: invalid value for "data_dir": expected a non-empty path, got """#,
        ),
        (
            "config.hcl",
            r#"bind_addr = "localhost""#,
            r#"config.hcl: invalid value for "bind_addr": expected an IP address, got "localhost""#,
        ),
        (
            "config.json",
            r#"{"client_addr": ["127.0.0.1"]}"#,
            r#"config.json: invalid value for "client_addr": expected an IP address, got ["127.0.0.1"]"#,
        ),
        (
            "config.json",
            r#"{"retry_join": "127.0.0.2"}"#,
            r#"config.json: invalid value for "retry_join": expected a list of strings, got "127.0.0.2""#,
        ),
        (
            "config.hcl",
            r#"retry_join = ["a", 1]"#,
            r#"config.hcl: invalid value for "retry_join": expected a list of strings, got ["a",1]"#,
        ),
        (
            "config.json",
            r#"{"log_level": "loud"}"#,
            r#"config.json: invalid value for "log_level": expected one of trace, debug, info, warn, err, got "loud""#,
        ),
        (
            "config.json",
            r#"{"session_ttl_min": 10}"#,
            r#"config.json: invalid value for "session_ttl_min": expected a duration such as "10s" or "1m30s", got 10"#,
        ),
        (
            "config.hcl",
            r#"session_ttl_min = "10""#,
            r#"config.hcl: invalid value for "session_ttl_min": expected a duration such as "10s" or "1m30s", got "10""#,
        ),
        (
            "config.json",
            r#"{"limits": {"kv_max_value_size": "1MB"}}"#,
            r#"config.json: invalid value for "limits.kv_max_value_size": expected a non-negative integer, got "1MB""#,
        ),
        (
            "config.json",
            r#"{"raft_trailing_logs": true}"#,
            r#"config.json: invalid value for "raft_trailing_logs": expected a non-negative integer, got true"#,
        ),
        (
            "config.json",
            r#"{"performance": {"raft_multiplier": 300}}"#,
            r#"config.json: invalid value for "performance.raft_multiplier": expected an integer between 1 and 10, got 300"#,
        ),
        (
            "config.json",
            r#"{"ports": 8500}"#,
            r#"config.json: invalid value for "ports": expected an object, got 8500"#,
        ),
        (
            "config.hcl",
            r#"limits = "none""#,
            r#"config.hcl: invalid value for "limits": expected an object, got "none""#,
        ),
        (
            "config.hcl",
            r#"acl { default_policy = "extend-cache" }"#,
            r#"config.hcl: invalid value for "acl.default_policy": expected "allow" or "deny", got "extend-cache""#,
        ),
        (
            "config.json",
            r#"{"acl": {"enabled": "yes"}}"#,
            r#"config.json: invalid value for "acl.enabled": expected a boolean (true or false), got "yes""#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": 1}}"#,
            r#"config.json: invalid value for "acl.tokens": expected an object, got 1"#,
        ),
        // Tokens are secrets: a bad one is described, never shown.
        (
            "config.hcl",
            r#"acl { tokens = { initial_management = "root-secret" } }"#,
            r#"config.hcl: invalid value for "acl.tokens.initial_management": expected a UUID, got "11 characters""#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": {"master": "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2"}}}"#,
            r#"config.json: invalid value for "acl.tokens.master": expected a UUID, got "35 characters""#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": {"initial_management": 7}}}"#,
            r#"config.json: invalid value for "acl.tokens.initial_management": expected a UUID, got 7"#,
        ),
        (
            "config.json",
            r#"{"acl": {"tokens": {"default": false}}}"#,
            r#"config.json: invalid value for "acl.tokens.default": expected a string, got false"#,
        ),
        (
            "config.json",
            r#"{"node_id": "c0ffee"}"#,
            r#"config.json: invalid value for "node_id": expected a UUID such as "adf4238a-882b-9ddc-4a9d-5b6758e4159e", got "c0ffee""#,
        ),
    ]);
    // Ports are checked for type while parsing and for range while validating, same message.
    for (name, contents, got) in [
        ("config.json", r#"{"ports": {"http": "8500"}}"#, r#""8500""#),
        (
            "config.json",
            r#"{"ports": {"http": 99999999999}}"#,
            "99999999999",
        ),
        ("config.hcl", "ports { http = 65536 }", "65536"),
        ("config.hcl", "ports { http = 0 }", "0"),
        ("config.json", r#"{"ports": {"http": -2}}"#, "-2"),
    ] {
        assert_eq!(
            load_one(name, contents),
            Err(port_error(name, got)),
            "{contents}"
        );
    }
}

#[test]
fn long_bad_values_are_shortened() {
    let long = "x".repeat(100);
    let got = load_one("config.json", &format!(r#"{{"bind_addr": "{long}"}}"#));
    let expected = format!(
        r#"config.json: invalid value for "bind_addr": expected an IP address, got "{}..."#,
        &long[..59]
    );
    assert_eq!(got, Err(expected));
}

#[test]
fn parse_errors_carry_the_parser_position() {
    check_errors(&[
        ("config.json", "{\n  \"server\": }", "config.json: parse error: expected value at line 2 column 13"),
        ("config.json", "", "config.json: parse error: EOF while parsing a value at line 1 column 0"),
        ("config.json", "[1]", "config.json: parse error: expected an object at the top level, got [1]"),
        ("config.hcl", "server = true\nports {\n  http = \n}", "config.hcl: parse error: line 3, column 10: invalid expression; expected `\"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit"),
        ("config.hcl", r#"node_name = "${name}""#, "config.hcl: parse error: eval error: undefined variable `name` in expression `\"${name}\"`"),
        // hcl-rs panics on this one (found by the config_parse fuzz target): an error instead,
        // in templates too.
        ("config.hcl", "ports {\n  http = 8 % 00\n}", "config.hcl: parse error: the remainder operator `%` is not supported"),
        ("config.hcl", r#"node_name = "a${8 % 0}""#, "config.hcl: parse error: the remainder operator `%` is not supported"),
    ]);
}

#[test]
fn empty_hcl_file_sets_nothing() {
    assert_eq!(load_one("config.hcl", ""), Ok(defaults()));
}

#[test]
fn file_errors() {
    let files = Files::new();
    files.add("config.yaml", "server: true");
    assert_eq!(
        files.load(&["config.yaml"], &[], &Overrides::default()),
        Err("config.yaml: unknown config format: the file name must end in .json or .hcl".into())
    );
    assert_eq!(
        files.load(&["missing.json"], &[], &Overrides::default()),
        Err("missing.json: cannot read: No such file or directory (os error 2)".into())
    );
    assert_eq!(
        files.load(&[], &["missing.d"], &Overrides::default()),
        Err("missing.d: cannot read config dir: No such file or directory (os error 2)".into())
    );
}

#[test]
fn files_then_dirs_in_lexical_order_then_flags() {
    let files = Files::new();
    files
        .add(
            "main.json",
            r#"{"datacenter": "main", "node_name": "n1", "retry_join": ["main"]}"#,
        )
        .add(
            "conf.d/b.json",
            r#"{"datacenter": "b", "retry_join": ["b"], "log_level": "warn"}"#,
        )
        .add(
            "conf.d/a.hcl",
            "datacenter = \"a\"\nretry_join = [\"a\"]\nlog_json = true",
        )
        .add(
            "conf.d/10-first.json",
            r#"{"datacenter": "first", "server": true}"#,
        )
        // Not config: other extensions and subdirectories are skipped, like Consul.
        .add("conf.d/c.txt", "not config at all")
        .add("conf.d/z.json.bak", "{")
        .mkdir("conf.d/d.json")
        .add(
            "more.d/x.json",
            r#"{"retry_join": ["x"], "log_level": "debug"}"#,
        );

    let config = files
        .load(&["main.json"], &["conf.d", "more.d"], &Overrides::default())
        .expect("valid config");
    assert_eq!(config.datacenter, "b");
    assert_eq!(config.node_name, "n1");
    assert!(config.server);
    assert!(config.log_json);
    assert_eq!(config.log_level, LogLevel::Debug);
    assert_eq!(config.retry_join, ["main", "a", "b", "x"]);

    let flags = Overrides {
        datacenter: Some("flag".into()),
        log_level: Some(LogLevel::Error),
        retry_join: vec!["flag".into()],
        ..Overrides::default()
    };
    let config = files
        .load(&["main.json"], &["conf.d", "more.d"], &flags)
        .expect("valid config");
    assert_eq!(config.datacenter, "flag");
    assert_eq!(config.log_level, LogLevel::Error);
    assert_eq!(config.node_name, "n1");
    assert_eq!(config.retry_join, ["main", "a", "b", "x", "flag"]);
}

#[test]
fn a_bad_encrypt_flag_is_refused_without_echoing_the_key() {
    // 20 bytes: neither AES-128, -192 nor -256.
    let flags = Overrides {
        encrypt: Some("QUFBQUFBQUFBQUFBQUFBQUFBQUE=".into()),
        ..Overrides::default()
    };
    let err = Files::new().load(&[], &[], &flags).unwrap_err();
    assert!(err.contains("-encrypt"), "{err}");
    assert!(err.contains("32 random bytes"), "{err}");
    assert!(!err.contains("QUFB"), "{err}");
    // 16 bytes (AES-128), as older Consul tutorials' keys are: accepted.
    let flags = Overrides {
        encrypt: Some("QUFBQUFBQUFBQUFBQUFBQQ==".into()),
        ..Overrides::default()
    };
    let config = Files::new()
        .load(&[], &[], &flags)
        .expect("a 16-byte key loads");
    assert_eq!(config.encrypt.as_deref(), Some("QUFBQUFBQUFBQUFBQUFBQQ=="));
}

#[test]
fn dns_flags_are_checked_and_normalized_like_keys() {
    let flags = |dns: DnsOverrides| Overrides {
        dns,
        ..Overrides::default()
    };
    let bad_domain = DnsOverrides {
        domain: Some("bad_domain".into()),
        ..DnsOverrides::default()
    };
    let err = Files::new().load(&[], &[], &flags(bad_domain)).unwrap_err();
    assert!(
        err.contains("-domain") && err.contains("DNS domain"),
        "{err}"
    );
    let bad_recursor = DnsOverrides {
        recursors: vec!["dns.example".into()],
        ..DnsOverrides::default()
    };
    let err = Files::new()
        .load(&[], &[], &flags(bad_recursor))
        .unwrap_err();
    assert!(
        err.contains("-recursor") && err.contains("IP addresses"),
        "{err}"
    );
    let upper = DnsOverrides {
        domain: Some("Mesh.Example.".into()),
        ..DnsOverrides::default()
    };
    let config = Files::new().load(&[], &[], &flags(upper)).unwrap();
    assert_eq!(config.dns.domain, "mesh.example");
}

#[test]
fn errors_in_dir_files_name_the_file_in_the_dir() {
    let files = Files::new();
    files
        .add("dir/a.json", r#"{"ports": {"htp": 1}}"#)
        .add("dir/b.json", r#"{"ports": {"http": 1}}"#);
    assert_eq!(
        files.load(&[], &["dir"], &Overrides::default()),
        Err(r#"dir/a.json: unknown key "ports.htp""#.into())
    );
}

/// A value for every key, in a file and as a flag: the flags win everywhere.
#[test]
fn flags_win_over_files_for_every_key() {
    let files = Files::new();
    files.add(
        "config.hcl",
        r#"
        datacenter = "file"
        node_name = "file"
        node_id = "11111111-1111-1111-1111-111111111111"
        data_dir = "/file"
        bind_addr = "10.0.0.1"
        advertise_addr = "10.0.0.1"
        client_addr = "10.0.0.1"
        ports {
          http = 1
          https = 1
          dns = 1
          server = 1
          serf_lan = 1
          grpc = 1
        }
        server = false
        bootstrap_expect = 0
        bootstrap = false
        retry_join = ["file"]
        log_level = "trace"
        log_json = false
        limits {
          kv_max_value_size = 1
          txn_max_req_len = 1
          http_max_conns_per_client = 1
        }
        session_ttl_min = "1s"
        raft_snapshot_threshold = 1
        raft_trailing_logs = 1
        performance {
          raft_multiplier = 1
        }
        encrypt = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
        domain = "file.example"
        recursors = ["10.0.0.1:5353"]
        tls {
          defaults {
            cert_file = "c.pem"
            key_file = "k.pem"
          }
        }
        "#,
    );
    let flags = Overrides {
        datacenter: Some("flag".into()),
        node_name: Some("flag".into()),
        node_id: Some("22222222-2222-2222-2222-222222222222".into()),
        data_dir: Some("/flag".into()),
        bind_addr: Some(ip("10.0.0.2")),
        advertise_addr: Some(ip("10.0.0.2")),
        client_addr: Some(ip("10.0.0.2")),
        ports: PortsOverrides {
            http: Some(2),
            https: Some(2),
            dns: Some(2),
            server: Some(2),
            serf_lan: Some(2),
            grpc: Some(2),
        },
        server: Some(true),
        bootstrap_expect: Some(2),
        bootstrap: Some(false),
        retry_join: vec!["flag".into()],
        log_level: Some(LogLevel::Warn),
        log_json: Some(true),
        dev: None,
        limits: LimitsOverrides {
            kv_max_value_size: Some(2),
            txn_max_req_len: Some(2),
            http_max_conns_per_client: Some(2),
        },
        session_ttl_min: Some(Duration::from_secs(2)),
        check_update_interval: None,
        ae_interval: None,
        services: Vec::new(),
        checks: Vec::new(),
        enable_script_checks: None,
        enable_local_script_checks: None,
        raft_snapshot_threshold: Some(2),
        raft_trailing_logs: Some(2),
        performance: PerformanceOverrides {
            raft_multiplier: Some(2),
        },
        encrypt: Some("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=".into()),
        data_key_file: None,
        reconnect_timeout: None,
        prometheus_retention_time: None,
        dns: DnsOverrides {
            domain: Some("flag.example".into()),
            recursors: vec!["10.0.0.53".into()],
            ..DnsOverrides::default()
        },
        connect: ConnectOverrides::default(),
        default_intention_policy: None,
        leave_on_terminate: None,
        skip_leave_on_interrupt: None,
        autopilot: AutopilotOverrides::default(),
        // No flags.
        acl: AclOverrides::default(),
        tls: TlsOverrides::default(),
    };
    let expected = Config {
        datacenter: "flag".into(),
        node_name: "flag".into(),
        node_id: Some("22222222-2222-2222-2222-222222222222".into()),
        data_dir: Some("/flag".into()),
        bind_addr: ip("10.0.0.2"),
        advertise_addr: Some(ip("10.0.0.2")),
        client_addr: ip("10.0.0.2"),
        ports: Ports {
            http: 2,
            https: 2,
            dns: 2,
            server: 2,
            serf_lan: 2,
            grpc: 2,
        },
        server: true,
        bootstrap_expect: 2,
        bootstrap: false,
        retry_join: vec!["file".into(), "flag".into()],
        log_level: LogLevel::Warn,
        log_json: true,
        dev: false,
        limits: Limits {
            kv_max_value_size: 2,
            txn_max_req_len: 2,
            http_max_conns_per_client: 2,
        },
        session_ttl_min: Duration::from_secs(2),
        check_update_interval: Duration::from_secs(300),
        ae_interval: Duration::from_secs(60),
        services: Vec::new(),
        checks: Vec::new(),
        enable_script_checks: false,
        enable_local_script_checks: false,
        raft_snapshot_threshold: 2,
        raft_trailing_logs: 2,
        performance: Performance { raft_multiplier: 2 },
        encrypt: Some("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=".into()),
        data_key_file: None,
        reconnect_timeout: Duration::from_secs(72 * 3600),
        prometheus_retention_time: Duration::ZERO,
        dns: Dns {
            domain: "flag.example".into(),
            recursors: vec!["10.0.0.1:5353".into(), "10.0.0.53".into()],
            ..Dns::default()
        },
        connect: Connect::default(),
        default_intention_policy: None,
        // A server (by the flag) by default stays on SIGTERM and does not leave on SIGINT.
        leave_on_terminate: false,
        skip_leave_on_interrupt: true,
        autopilot: Autopilot::default(),
        acl: Acl::default(),
        tls: Tls {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            ..Tls::default()
        },
        sources: Sources::default(),
    };
    assert_eq!(files.load(&["config.hcl"], &[], &flags), Ok(expected));
}

#[test]
fn leaving_on_signals_defaults_by_role_like_consul() {
    let client = load_one("client.json", "{}").expect("loads");
    assert!(client.leave_on_terminate && !client.skip_leave_on_interrupt);
    let server = load_one("server.json", r#"{"server": true}"#).expect("loads");
    assert!(!server.leave_on_terminate && server.skip_leave_on_interrupt);
    // mesh-server sets `server` with its flag; the role default follows it.
    let flags = Overrides {
        server: Some(true),
        ..Overrides::default()
    };
    let server = Files::new()
        .add("server.json", r#"{"leave_on_terminate": true}"#)
        .load(&["server.json"], &[], &flags)
        .expect("loads");
    assert!(server.leave_on_terminate && server.skip_leave_on_interrupt);
}

#[test]
fn dev_mode_defaults() {
    let dev = Overrides {
        dev: Some(true),
        ..Overrides::default()
    };
    let mut expected = defaults();
    expected.dev = true;
    as_server(&mut expected);
    expected.bootstrap = true;
    expected.bind_addr = ip("127.0.0.1");
    expected.client_addr = ip("127.0.0.1");
    expected.node_name = "dev".into();
    expected.performance.raft_multiplier = 1;
    expected.log_level = LogLevel::Debug;
    expected.ports.grpc = 8502;
    assert_eq!(Files::new().load(&[], &[], &dev), Ok(expected));
}

#[test]
fn dev_mode_yields_to_files_and_flags() {
    let files = Files::new();
    files.add(
        "dev.hcl",
        "client_addr = \"0.0.0.0\"\nnode_name = \"n1\"\nperformance { raft_multiplier = 3 }",
    );
    let flags = Overrides {
        dev: Some(true),
        log_level: Some(LogLevel::Info),
        ..Overrides::default()
    };
    let config = files.load(&["dev.hcl"], &[], &flags).expect("valid config");
    assert_eq!(config.client_addr, ip("0.0.0.0"));
    assert_eq!(config.node_name, "n1");
    assert_eq!(config.performance.raft_multiplier, 3);
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.bind_addr, ip("127.0.0.1"));
    assert!(config.server && config.bootstrap && config.dev);
}

#[test]
fn validation_errors_name_where_the_value_came_from() {
    check_errors(&[
        (
            "config.json",
            r#"{"bootstrap_expect": 3}"#,
            r#"config.json: "bootstrap_expect" requires "server" to be true"#,
        ),
        (
            "config.hcl",
            "bootstrap = true",
            r#"config.hcl: "bootstrap" requires "server" to be true"#,
        ),
        (
            "config.json",
            r#"{"server": true, "bootstrap": true, "bootstrap_expect": 3}"#,
            r#"config.json: "bootstrap_expect" and "bootstrap" are mutually exclusive ("bootstrap" set by config.json)"#,
        ),
        (
            "config.json",
            r#"{"datacenter": "dc 1"}"#,
            r#"config.json: invalid value for "datacenter": expected only letters, digits, '-' and '_', got "dc 1""#,
        ),
        (
            "config.json",
            r#"{"datacenter": "dc.1"}"#,
            r#"config.json: invalid value for "datacenter": expected only letters, digits, '-' and '_', got "dc.1""#,
        ),
        (
            "config.hcl",
            r#"datacenter = """#,
            r#"config.hcl: invalid value for "datacenter": expected only letters, digits, '-' and '_', got """#,
        ),
        (
            "config.json",
            r#"{"node_name": ""}"#,
            r#"config.json: invalid value for "node_name": expected a non-empty node name, got """#,
        ),
        (
            "config.json",
            r#"{"node_id": "adf4238a-882b-9ddc-4a9d-5b6758e4159g"}"#,
            r#"config.json: invalid value for "node_id": expected a UUID such as "adf4238a-882b-9ddc-4a9d-5b6758e4159e", got "adf4238a-882b-9ddc-4a9d-5b6758e4159g""#,
        ),
        (
            "config.json",
            r#"{"advertise_addr": "0.0.0.0"}"#,
            r#"config.json: invalid value for "advertise_addr": expected a specific IP address, not 0.0.0.0 or ::, got "0.0.0.0""#,
        ),
        (
            "config.hcl",
            "performance { raft_multiplier = 0 }",
            r#"config.hcl: invalid value for "performance.raft_multiplier": expected an integer between 1 and 10, got 0"#,
        ),
        (
            "config.hcl",
            "performance { raft_multiplier = 11 }",
            r#"config.hcl: invalid value for "performance.raft_multiplier": expected an integer between 1 and 10, got 11"#,
        ),
    ]);
}

#[test]
fn tls_settings_that_cannot_work_are_refused() {
    check_errors(&[
        (
            "config.hcl",
            r#"tls {
              defaults { cert_file = "a.pem" }
            }"#,
            r#"config.hcl: "tls.defaults.cert_file" requires "tls.defaults.key_file" (or "key_file") to be set too"#,
        ),
        (
            "config.json",
            r#"{"key_file": "a-key.pem"}"#,
            r#"config.json: "key_file" requires "tls.defaults.cert_file" (or "cert_file") to be set too"#,
        ),
        (
            "config.hcl",
            "ports { https = 8501 }",
            r#"config.hcl: "ports.https" requires a certificate: "tls.defaults.cert_file" and "tls.defaults.key_file""#,
        ),
        (
            "config.hcl",
            r#"ports { https = 8501 }
            tls {
                defaults {
                    cert_file = "a.pem"
                    key_file = "a-key.pem"
                }
                https { verify_incoming = true }
            }"#,
            r#"config.hcl: "tls.https.verify_incoming" requires a CA: "tls.defaults.ca_file" (or "ca_file")"#,
        ),
        (
            "config.json",
            r#"{"verify_incoming_rpc": true}"#,
            r#"config.json: "verify_incoming_rpc" requires a CA: "tls.defaults.ca_file" (or "ca_file")"#,
        ),
        (
            "config.hcl",
            "tls {\n  internal_rpc { verify_server_hostname = true }\n}",
            r#"config.hcl: "tls.internal_rpc.verify_server_hostname" requires a CA: "tls.defaults.ca_file" (or "ca_file")"#,
        ),
        (
            "config.hcl",
            r#"server = true
            tls {
                defaults {
                    ca_file = "ca.pem"
                    verify_incoming = true
                }
            }"#,
            r#"config.hcl: "tls.defaults.verify_incoming" requires a certificate on a server, which serves RPC over TLS: "tls.defaults.cert_file" and "tls.defaults.key_file""#,
        ),
        (
            "config.hcl",
            r#"tls {
              defaults { tls_min_version = "TLSv1_1" }
            }"#,
            r#"config.hcl: invalid value for "tls.defaults.tls_min_version": expected "TLSv1_2" or "TLSv1_3" (older versions are not supported), got "TLSv1_1""#,
        ),
        (
            "config.json",
            r#"{"tls_min_version": "tls10"}"#,
            r#"config.json: invalid value for "tls_min_version": expected "TLSv1_2", "TLSv1_3", "tls12" or "tls13" (older versions are not supported), got "tls10""#,
        ),
    ]);
    check_errors(&[
        (
            "config.hcl",
            "auto_encrypt {\n  allow_tls = true\n}",
            r#"config.hcl: "auto_encrypt.allow_tls" requires "server" to be true"#,
        ),
        (
            "config.hcl",
            r#"server = true
            ca_file = "ca.pem"
            auto_encrypt {
                allow_tls = true
            }"#,
            r#"config.hcl: "auto_encrypt.allow_tls" requires the CA's key to sign with: "auto_encrypt.ca_key_file""#,
        ),
        (
            "config.hcl",
            "server = true\nauto_encrypt {\n  tls = true\n}",
            r#"config.hcl: "auto_encrypt.tls" requires "server" to be false (servers need a certificate of their own)"#,
        ),
        (
            "config.json",
            r#"{"auto_encrypt": {"tls": true}}"#,
            r#"config.json: "auto_encrypt.tls" requires a CA: "tls.defaults.ca_file" (or "ca_file")"#,
        ),
        (
            "config.json",
            r#"{"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem", "auto_encrypt": {"tls": true}}"#,
            r#"config.json: "auto_encrypt.tls" and "cert_file" are mutually exclusive ("cert_file" set by config.json)"#,
        ),
        (
            "config.json",
            r#"{"auto_encrypt": {"ip_san": ["not-an-ip"]}}"#,
            r#"config.json: invalid value for "auto_encrypt.ip_san": expected a list of IP addresses, got ["not-an-ip"]"#,
        ),
    ]);
    // A suite rustls does not implement (CBC, RSA key exchange) is refused, listing the ones
    // it does.
    let err = load_one(
        "config.hcl",
        r#"tls {
              defaults { tls_cipher_suites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA" }
            }"#,
    )
    .expect_err("a CBC suite is refused");
    assert!(
        err.starts_with(r#"config.hcl: invalid value for "tls.defaults.tls_cipher_suites": expected a comma-separated list of TLS 1.2 suites among TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"#),
        "{err}"
    );
    // A client may verify servers without a certificate of its own.
    let config = load_one(
        "config.hcl",
        r#"tls {
            defaults {
                ca_file = "ca.pem"
                verify_outgoing = true
            }
        }"#,
    )
    .expect("a client needs no certificate to verify servers");
    assert!(config.tls.rpc_enabled() && !config.tls.rpc_verify_incoming);
}

#[test]
fn validation_errors_name_the_flag() {
    let cases: Vec<(Overrides, &str)> = vec![
        (
            Overrides {
                ports: PortsOverrides {
                    http: Some(70000),
                    ..Default::default()
                },
                ..Default::default()
            },
            r#"-http-port: invalid value for "ports.http": expected a port number between 1 and 65535, or -1 to disable, got 70000"#,
        ),
        (
            Overrides {
                bootstrap_expect: Some(3),
                ..Default::default()
            },
            r#"-bootstrap-expect: "bootstrap_expect" requires "server" to be true"#,
        ),
        (
            Overrides {
                dev: Some(true),
                bootstrap_expect: Some(3),
                ..Default::default()
            },
            r#"-bootstrap-expect: "bootstrap_expect" and "bootstrap" are mutually exclusive ("bootstrap" set by -dev)"#,
        ),
        (
            Overrides {
                datacenter: Some("dc/1".into()),
                ..Default::default()
            },
            r#"-datacenter: invalid value for "datacenter": expected only letters, digits, '-' and '_', got "dc/1""#,
        ),
        (
            Overrides {
                performance: PerformanceOverrides {
                    raft_multiplier: Some(0),
                },
                ..Default::default()
            },
            r#"-raft-multiplier: invalid value for "performance.raft_multiplier": expected an integer between 1 and 10, got 0"#,
        ),
    ];
    for (flags, message) in cases {
        assert_eq!(
            Files::new().load(&[], &[], &flags),
            Err(message.to_owned()),
            "{flags:?}"
        );
    }
}

#[test]
fn a_file_value_overridden_by_a_flag_is_blamed_on_the_flag() {
    let files = Files::new();
    files.add("config.json", r#"{"server": true, "bootstrap_expect": 3}"#);
    let flags = Overrides {
        bootstrap: Some(true),
        ..Overrides::default()
    };
    assert_eq!(
        files.load(&["config.json"], &[], &flags),
        Err(r#"config.json: "bootstrap_expect" and "bootstrap" are mutually exclusive ("bootstrap" set by -bootstrap)"#.into())
    );
}

#[test]
fn log_level_parses_consul_names() {
    for (text, level) in [
        ("trace", LogLevel::Trace),
        ("DEBUG", LogLevel::Debug),
        ("Info", LogLevel::Info),
        ("WARN", LogLevel::Warn),
        ("ERR", LogLevel::Error),
        ("error", LogLevel::Error),
    ] {
        assert_eq!(text.parse(), Ok(level), "{text}");
    }
    assert_eq!(
        "warning".parse::<LogLevel>().map_err(|e| e.to_string()),
        Err(r#"invalid log level "warning": expected one of trace, debug, info, warn, err"#.into())
    );
    assert_eq!(LogLevel::Error.to_string(), "error");
}

#[test]
fn a_configuration_can_be_read_again_from_its_sources() {
    let files = Files::new();
    files.add("a.json", r#"{"datacenter": "one"}"#);
    let dir = files.root.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("b.hcl"), "node_name = \"first\"").unwrap();
    let overrides = Overrides {
        log_json: Some(true),
        ..Overrides::default()
    };
    let path = files.root.path().join("a.json");
    let config = load(
        std::slice::from_ref(&path),
        std::slice::from_ref(&dir),
        &overrides,
    )
    .unwrap();
    assert_eq!(
        (config.datacenter.as_str(), config.node_name.as_str()),
        ("one", "first")
    );
    std::fs::write(&path, r#"{"datacenter": "two"}"#).unwrap();
    std::fs::write(dir.join("b.hcl"), "node_name = \"second\"").unwrap();
    let again = config.sources.load().unwrap();
    assert_eq!(
        (again.datacenter.as_str(), again.node_name.as_str()),
        ("two", "second")
    );
    assert!(again.log_json, "flags apply again too");
    assert_eq!(again.sources, config.sources);
}

#[test]
fn gossip_settings() {
    let config = load_one(
        "a.json",
        r#"{"encrypt": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", "reconnect_timeout": "8h"}"#,
    )
    .unwrap();
    assert_eq!(
        config.encrypt.as_deref(),
        Some("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    );
    assert_eq!(config.reconnect_timeout, Duration::from_secs(8 * 3600));
    for (body, key) in [
        (r#"{"encrypt": "c2hvcnQ="}"#, "encrypt"),
        (r#"{"encrypt": "not base64!"}"#, "encrypt"),
        (r#"{"reconnect_timeout": "1h"}"#, "reconnect_timeout"),
    ] {
        let err = load_one("a.json", body).unwrap_err();
        assert!(err.contains(key), "{body}: {err}");
    }
}

/// The flags docs/configuration.md lists per binary are the ones their sources declare:
/// every key flag of `mesh-server`'s `Args` and `mesh-client`'s `AgentArgs`, and no other.
#[test]
fn reference_flags_match_the_binaries() {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let declared = |file: &str, strukt: &str| -> Vec<String> {
        let path = crate_dir.join("..").join(file);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let start = source
            .find(&format!("struct {strukt} {{"))
            .unwrap_or_else(|| panic!("no struct {strukt} in {file}"));
        let body = &source[start..];
        let body = &body[..body.find("\n}").expect("the struct ends")];
        let lines: Vec<&str> = body.lines().map(str::trim).collect();
        let mut flags = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("#[arg(long") {
                continue;
            }
            let name = match line.split_once("long = \"") {
                Some((_, rest)) => rest.split('"').next().unwrap_or_default().to_owned(),
                None => lines[i + 1..]
                    .iter()
                    .find(|l| !l.starts_with("#[") && !l.starts_with("///"))
                    .and_then(|field| field.split(':').next())
                    .unwrap_or_default()
                    .replace('_', "-"),
            };
            flags.push(format!("-{name}"));
        }
        let mut key_flags: Vec<String> = keys::KEYS
            .iter()
            .map(|key| key.flag.to_owned())
            .filter(|flag| flags.contains(flag))
            .collect();
        key_flags.sort();
        key_flags
    };
    let sorted = |list: &[&str]| {
        let mut list: Vec<String> = list.iter().map(|f| (*f).to_owned()).collect();
        list.sort();
        list
    };
    assert_eq!(
        declared("mesh-server/src/main.rs", "Args"),
        sorted(keys::SERVER_FLAGS)
    );
    assert_eq!(
        declared("mesh-client/src/main.rs", "AgentArgs"),
        sorted(keys::CLIENT_FLAGS)
    );
}

#[test]
fn acl_initial_management_wins_over_master_in_any_order() {
    const INITIAL: &str = "11111111-2222-3333-4444-555555555555";
    const MASTER: &str = "66666666-7777-8888-9999-000000000000";
    let hcl =
        format!(
        "acl {{\n  tokens {{\n    master = \"{MASTER}\"\n    initial_management = \"{INITIAL}\"\n  }}\n}}\n"
    );
    let config = load_one("config.hcl", &hcl).expect("valid config");
    assert_eq!(config.acl.initial_management.as_deref(), Some(INITIAL));

    // Across files too: a later `master` does not replace an earlier `initial_management`.
    let files = Files::new();
    files.add(
        "a.json",
        &format!(r#"{{"acl": {{"tokens": {{"initial_management": "{INITIAL}"}}}}}}"#),
    );
    files.add(
        "b.json",
        &format!(r#"{{"acl": {{"tokens": {{"master": "{MASTER}"}}}}}}"#),
    );
    for order in [["a.json", "b.json"], ["b.json", "a.json"]] {
        let config = files
            .load(&order, &[], &Overrides::default())
            .expect("valid config");
        assert_eq!(
            config.acl.initial_management.as_deref(),
            Some(INITIAL),
            "{order:?}"
        );
    }
}

#[test]
fn acl_tokens_stay_out_of_debug_output_and_the_reference() {
    const SECRET: &str = "8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f";
    let config = load_one(
        "config.json",
        &format!(
            r#"{{"acl": {{"enabled": true, "tokens": {{"initial_management": "{SECRET}",
                "default": "{SECRET}"}}}}}}"#
        ),
    )
    .expect("valid config");
    assert_eq!(config.acl.default_token.as_deref(), Some(SECRET));
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(
        debug.contains("initial_management: Some(\"(set)\")"),
        "{debug}"
    );
    let overrides = AclOverrides {
        master: Some(SECRET.into()),
        ..AclOverrides::default()
    };
    assert!(!format!("{overrides:?}").contains(SECRET));
    assert_eq!(
        keys::default_text(&config, "acl.tokens.initial_management").as_deref(),
        Some("(set)")
    );
    assert_eq!(
        keys::default_text(&config, "acl.tokens.default").as_deref(),
        Some("(set)")
    );
    assert_eq!(keys::default_text(&defaults(), "acl.tokens.default"), None);
}
