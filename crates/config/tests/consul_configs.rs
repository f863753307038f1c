//! Ordinary Consul agent configurations load (issue 9): the files in `tests/consul/` are shaped
//! like the servers, clients and dev agents of Consul's documentation and tutorials, and each
//! loads through [`config::load`] as the agents load theirs, with its values where they belong.
//! The ACL and gossip settings mesh does not implement yet are refused key by key as "not
//! supported yet", never as unknown and never silently; the agent TLS keys load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, ConfigError, LogLevel, Overrides};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    // The runtime value: a test binary reused from another checkout's build would carry a
    // compile-time path that may no longer exist.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("tests/consul")
}

fn fixture(name: &str) -> PathBuf {
    fixture_dir().join(name)
}

fn load(name: &str) -> Config {
    config::load(&[fixture(name)], &[], &Overrides::default())
        .unwrap_or_else(|e| panic!("tests/consul/{name} does not load: {e}"))
}

/// What each fixture must resolve to, for the settings every deployment has.
#[derive(Debug, PartialEq)]
struct Summary {
    datacenter: &'static str,
    node_name: &'static str,
    server: bool,
    bootstrap_expect: u32,
    bootstrap: bool,
    retry_join: Vec<&'static str>,
    encrypt: Option<&'static str>,
    /// http, dns, server, serf_lan, grpc
    ports: [i32; 5],
    log_level: LogLevel,
    connect: bool,
    /// The `name` of each service definition, in order.
    services: Vec<&'static str>,
    /// Node-level check definitions.
    checks: usize,
    leave_on_terminate: bool,
}

fn summary(config: &Config) -> Summary {
    // Leaked so that the summary compares against the table's `&'static str`s; a test process.
    let text = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    Summary {
        datacenter: text(&config.datacenter),
        node_name: text(&config.node_name),
        server: config.server,
        bootstrap_expect: config.bootstrap_expect,
        bootstrap: config.bootstrap,
        retry_join: config.retry_join.iter().map(|s| text(s)).collect(),
        encrypt: config.encrypt.as_deref().map(text),
        ports: [
            config.ports.http,
            config.ports.dns,
            config.ports.server,
            config.ports.serf_lan,
            config.ports.grpc,
        ],
        log_level: config.log_level,
        connect: config.connect.enabled,
        services: config
            .services
            .iter()
            .map(|s| text(s["name"].as_str().unwrap_or("<no name>")))
            .collect(),
        checks: config.checks.len(),
        leave_on_terminate: config.leave_on_terminate,
    }
}

const KEY_A: &str = "rMHNdfkAVGLRqzrrobElXoUL+aNNqGwP7gkypEPcE2Q=";
const KEY_B: &str = "gGT21UxZsfoS0/w4sTsT1/KEMhDGWhO6X0rtHLLdxLU=";

/// Every fixture that loads, with what it must resolve to.
fn loading_fixtures() -> Vec<(&'static str, Summary)> {
    vec![
        (
            "server.hcl",
            Summary {
                datacenter: "us-east-1",
                node_name: "consul-server-1",
                server: true,
                bootstrap_expect: 3,
                bootstrap: false,
                retry_join: vec!["10.0.1.11", "10.0.1.12", "10.0.1.13"],
                encrypt: Some(KEY_A),
                ports: [8500, 8600, 8300, 8301, 8502],
                log_level: LogLevel::Info,
                connect: true,
                services: vec![],
                checks: 0,
                leave_on_terminate: false,
            },
        ),
        (
            "server.json",
            Summary {
                datacenter: "eu-west-2",
                node_name: "consul-server-b",
                server: true,
                bootstrap_expect: 3,
                bootstrap: false,
                retry_join: vec!["172.31.16.10", "172.31.16.11", "172.31.16.12"],
                encrypt: Some(KEY_B),
                ports: [8500, 8600, 8300, 8301, -1],
                log_level: LogLevel::Warn,
                connect: true,
                services: vec![],
                checks: 0,
                leave_on_terminate: false,
            },
        ),
        (
            "client.hcl",
            Summary {
                datacenter: "us-east-1",
                node_name: "web-01",
                server: false,
                bootstrap_expect: 0,
                bootstrap: false,
                retry_join: vec!["10.0.1.11", "10.0.1.12", "10.0.1.13"],
                encrypt: Some(KEY_A),
                ports: [8500, 8600, 8300, 8301, 8502],
                log_level: LogLevel::Info,
                connect: true,
                services: vec!["web", "node-exporter"],
                checks: 1,
                leave_on_terminate: true,
            },
        ),
        (
            "client.json",
            Summary {
                datacenter: "eu-west-2",
                node_name: "api-07",
                server: false,
                bootstrap_expect: 0,
                bootstrap: false,
                retry_join: vec!["172.31.16.10", "172.31.16.11", "172.31.16.12"],
                encrypt: Some(KEY_B),
                ports: [8500, 8600, 8300, 8301, 8502],
                log_level: LogLevel::Info,
                connect: true,
                services: vec!["api", "postgres", "redis"],
                checks: 0,
                leave_on_terminate: true,
            },
        ),
        (
            "dev.hcl",
            Summary {
                datacenter: "dc1",
                node_name: "laptop",
                server: true,
                bootstrap_expect: 0,
                bootstrap: true,
                retry_join: vec![],
                encrypt: None,
                ports: [8500, 8600, 8300, 8301, 8502],
                log_level: LogLevel::Debug,
                connect: true,
                services: vec!["counting", "dashboard"],
                checks: 0,
                leave_on_terminate: false,
            },
        ),
        (
            "dev.json",
            Summary {
                datacenter: "dc1",
                node_name: "dev",
                server: true,
                bootstrap_expect: 1,
                bootstrap: false,
                retry_join: vec![],
                encrypt: None,
                ports: [8500, 8600, 8300, 8301, 8502],
                log_level: LogLevel::Debug,
                connect: true,
                services: vec!["web"],
                checks: 0,
                leave_on_terminate: false,
            },
        ),
    ]
}

/// The fixtures with Consul's security settings, which mesh refuses (for the ACL and gossip
/// settings it does not implement yet).
const REFUSED_FIXTURES: &[&str] = &["server-security.hcl"];

/// Fixtures whose every key mesh implements, checked by their own tests.
const SECURE_FIXTURES: &[&str] = &["client-security.json"];

/// The keys of those fixtures that mesh implements: agent TLS, auto_encrypt and ACLs.
const IMPLEMENTED_KEYS: &[&str] = &[
    "acl",
    "tls",
    "auto_encrypt",
    "ca_file",
    "verify_incoming",
    "verify_outgoing",
    "verify_server_hostname",
];

#[test]
fn every_fixture_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("reading tests/consul")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "hcl" || ext == "json")
        })
        .map(|path| file_name(&path))
        .collect();
    on_disk.sort();
    let mut tested: Vec<String> = loading_fixtures()
        .iter()
        .map(|(name, _)| *name)
        .chain(REFUSED_FIXTURES.iter().copied())
        .chain(SECURE_FIXTURES.iter().copied())
        .map(str::to_owned)
        .collect();
    tested.sort();
    assert_eq!(on_disk, tested);
}

#[test]
fn ordinary_consul_configs_load_with_their_values() {
    for (name, expected) in loading_fixtures() {
        let config = load(name);
        assert_eq!(summary(&config), expected, "tests/consul/{name}");
        // A server that leaves shrinks the quorum: no fixture's server leaves on SIGTERM.
        assert_eq!(
            config.skip_leave_on_interrupt, config.server,
            "tests/consul/{name}: skip_leave_on_interrupt"
        );
    }
}

#[test]
fn the_production_server_keeps_its_tuning() {
    let config = load("server.hcl");
    assert_eq!(config.bind_addr.to_string(), "10.0.1.11");
    assert_eq!(
        config.advertise_addr.map(|a| a.to_string()).as_deref(),
        Some("10.0.1.11")
    );
    assert!(config.client_addr.is_unspecified());
    assert_eq!(
        config.data_dir.as_deref(),
        Some(Path::new("/opt/consul/data"))
    );
    assert!(config.log_json);
    assert_eq!(config.performance.raft_multiplier, 1);
    assert_eq!(config.prometheus_retention_time, Duration::from_secs(60));
    assert_eq!(config.dns.recursors, ["10.0.0.2", "1.1.1.1:53"]);
    assert_eq!(config.dns.node_ttl, Duration::from_secs(30));
    assert!(config.dns.only_passing);
    assert_eq!(config.dns.udp_answer_limit, 5);
    assert_eq!(config.dns.service_ttl["*"], Duration::from_secs(10));
    assert_eq!(config.limits.http_max_conns_per_client, 400);
    let autopilot = config.autopilot;
    assert!(autopilot.cleanup_dead_servers);
    assert_eq!(autopilot.last_contact_threshold, Duration::from_millis(500));
    assert_eq!(autopilot.max_trailing_logs, 500);
    assert_eq!(autopilot.min_quorum, 3);
    assert_eq!(autopilot.server_stabilization_time, Duration::from_secs(15));
    assert!(config.skip_leave_on_interrupt);
    assert_eq!(
        config.acl,
        config::Acl {
            enabled: true,
            default_deny: true,
            initial_management: Some("8d2a0c1e-3f4b-4c5d-9e6f-7a8b9c0d1e2f".into()),
            default_token: None,
            ..config::Acl::default()
        }
    );
}

#[test]
fn the_json_server_keeps_its_dns_ca_and_acl_settings() {
    let config = load("server.json");
    assert_eq!(config.dns.domain, "consul");
    assert_eq!(config.dns.service_ttl["web"], Duration::from_secs(30));
    assert_eq!(config.dns.recursor_timeout, Duration::from_secs(3));
    assert_eq!(config.connect.ca_config["leaf_cert_ttl"], "72h");
    assert_eq!(config.reconnect_timeout, Duration::from_secs(8 * 3600));
    assert_eq!(
        config.autopilot,
        config::Autopilot::default(),
        "server.json states autopilot's defaults"
    );
    // ACLs on but allowing, with the deprecated name of the initial management token.
    assert_eq!(
        config.acl,
        config::Acl {
            enabled: true,
            default_deny: false,
            initial_management: Some("b1e0c7a2-44f5-4d3e-9a6b-0c8d7e6f5a4b".into()),
            default_token: Some("0c2f7a4e-5d6b-4e3a-8f1c-2b9d0e7a6c5f".into()),
            ..config::Acl::default()
        }
    );
}

/// Service definitions are kept as written (the agent validates them when it starts): HCL's
/// repeated blocks and JSON's lists arrive in the same shape.
#[test]
fn client_services_keep_their_checks_and_sidecars() {
    let hcl = load("client.hcl");
    let web = &hcl.services[0];
    assert_eq!(web["port"], 8080);
    assert_eq!(web["check"]["http"], "http://127.0.0.1:8080/health");
    assert_eq!(
        web["connect"]["sidecar_service"]["proxy"]["upstreams"],
        serde_json::json!([{"destination_name": "api", "local_bind_port": 9091}])
    );
    assert_eq!(hcl.services[1]["checks"].as_array().map(Vec::len), Some(2));
    assert_eq!(hcl.checks[0]["id"], "disk");
    assert!(hcl.enable_local_script_checks && !hcl.enable_script_checks);

    let json = load("client.json");
    let api = &json.services[0];
    assert_eq!(
        api["connect"]["sidecar_service"]["proxy"]["upstreams"][0]["destination_name"],
        "postgres"
    );
    assert_eq!(
        json.services[1]["connect"]["sidecar_service"],
        serde_json::json!({})
    );
    assert_eq!(json.services[2]["check"]["ttl"], "30s");
}

/// `consul agent -dev -config-file dev.hcl`: the file's settings win over `-dev`'s defaults.
/// (dev.json's `bootstrap_expect = 1` conflicts with `-dev`'s `bootstrap`, in Consul too.)
#[test]
fn the_dev_config_also_loads_in_dev_mode() {
    let dev = Overrides {
        dev: Some(true),
        ..Overrides::default()
    };
    let config = config::load(&[fixture("dev.hcl")], &[], &dev)
        .unwrap_or_else(|e| panic!("tests/consul/dev.hcl with -dev: {e}"));
    assert!(config.dev && config.server && config.bootstrap);
    assert_eq!(config.node_name, "laptop");
    assert!(config.client_addr.is_unspecified());
    assert!(config.enable_script_checks);
}

/// A client agent secured as Consul's guides do: TLS through auto-encrypt with only the CA,
/// and ACLs that deny by default with its default and agent tokens, kept across restarts.
#[test]
fn the_secured_client_loads_with_its_tls_and_acl_settings() {
    let config = load("client-security.json");
    assert!(config.tls.auto_encrypt.tls);
    assert!(config.tls.verify_outgoing && config.tls.verify_server_hostname);
    assert!(config.tls.ca_file.is_some());
    let acl = &config.acl;
    assert!(acl.enabled && acl.default_deny && acl.enable_token_persistence);
    assert_eq!(
        acl.default_token.as_deref(),
        Some("0c2f7a4e-5d6b-4e3a-8f1c-2b9d0e7a6c5f")
    );
    assert_eq!(acl.agent_token, acl.default_token);
}

/// Each top-level key of a refused fixture but the implemented ones, alone in a file, is refused as not
/// supported yet (never as unknown), and the whole file is refused naming itself.
#[test]
fn consul_security_settings_are_refused_as_not_supported_yet() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in REFUSED_FIXTURES {
        let path = fixture(name);
        let err = config::load(std::slice::from_ref(&path), &[], &Overrides::default())
            .expect_err("security settings are refused");
        assert!(
            matches!(&err, ConfigError::UnsupportedKey { path: p, .. } if *p == path),
            "tests/consul/{name}: {err}"
        );

        let Value::Object(keys) = parse(&path) else {
            panic!("tests/consul/{name}: not an object at the top level");
        };
        assert!(!keys.is_empty(), "tests/consul/{name} is empty");
        for (key, value) in keys {
            let single = dir.path().join(format!("{key}.json"));
            let text = serde_json::json!({ key.clone(): value }).to_string();
            std::fs::write(&single, text).expect("writing a one-key file");
            let loaded = config::load(&[single], &[], &Overrides::default());
            if IMPLEMENTED_KEYS.contains(&key.as_str()) {
                // Implemented: alone, a key loads or fails validation (a CA it needs is in
                // another key), but is never refused as unknown or unsupported.
                if let Err(err) = loaded {
                    assert!(
                        matches!(err, ConfigError::Requires { .. }),
                        "tests/consul/{name}: {key}: {err}"
                    );
                }
                continue;
            }
            let err = loaded.expect_err("a security setting is refused");
            match &err {
                ConfigError::UnsupportedKey { key: refused, .. } => assert!(
                    refused == &key || refused.starts_with(&format!("{key}.")),
                    "tests/consul/{name}: {key} refused as {refused}"
                ),
                other => panic!("tests/consul/{name}: {key}: {other}"),
            }
        }
    }
}

/// Consul's deployment guide keeps the security settings beside the rest in one config dir:
/// mesh refuses the dir, naming the security file.
#[test]
fn a_config_dir_with_the_security_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in ["server.hcl", "server-security.hcl"] {
        std::fs::copy(fixture(name), dir.path().join(name)).expect("copying a fixture");
    }
    let err = config::load(&[], &[dir.path().to_owned()], &Overrides::default())
        .expect_err("the security file is refused");
    let message = err.to_string();
    assert!(
        message.contains("server-security.hcl") && message.contains("is not supported yet"),
        "{message}"
    );

    std::fs::remove_file(dir.path().join("server-security.hcl")).expect("removing a file");
    let config = config::load(&[], &[dir.path().to_owned()], &Overrides::default())
        .unwrap_or_else(|e| panic!("the server's dir without its security file: {e}"));
    assert_eq!(config.bootstrap_expect, 3);
}

fn parse(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if path.extension().is_some_and(|ext| ext == "hcl") {
        config::hcl_to_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}
