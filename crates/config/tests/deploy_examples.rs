//! The example configurations in `deploy/config/` stay true to the config crate: with their
//! placeholders filled in, each loads through [`config::load`] (so it has no unknown or
//! unsupported key and no bad value) and says what docs/deploy.md says it does; left unfilled,
//! the agent configurations refuse to load, so a half-edited file never runs unencrypted.
//!
//! The service definitions inside `service { ... }` blocks are kept as written by this crate
//! and validated by the agent when it starts; here only their shape is checked.

use std::path::{Path, PathBuf};

use config::{ConfigError, IntentionPolicy, Overrides};
use serde_json::Value;

/// Every placeholder the examples use, with the value a test fills in.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("THIS_HOST_PRIVATE_IP", "127.0.0.1"),
    ("SERVER_1_IP", "127.0.0.1"),
    ("SERVER_2_IP", "127.0.0.2"),
    ("SERVER_3_IP", "127.0.0.3"),
    // 32 bytes, base64: what `mesh-client keygen` prints.
    ("GOSSIP_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    // A UUID, as `acl.tokens.initial_management` must be.
    ("MANAGEMENT_TOKEN", "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"),
    ("CLIENT_TOKEN", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0c"),
];

/// The examples docs/deploy.md and deploy/install.sh rely on.
const EXPECTED: &[&str] = &["client.hcl", "db.hcl", "server.hcl", "web.hcl"];

fn deploy_config_dir() -> PathBuf {
    // The runtime value: a test binary reused from another checkout's build would carry a
    // compile-time path that may no longer exist.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("../../deploy/config")
}

/// Every `*.hcl` and `*.json` file in deploy/config, by name.
fn examples() -> Vec<PathBuf> {
    let dir = deploy_config_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "hcl" || ext == "json")
        })
        .collect();
    files.sort();
    files
}

fn example(name: &str) -> PathBuf {
    deploy_config_dir().join(name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `text` with every placeholder replaced.
fn fill(text: &str) -> String {
    PLACEHOLDERS
        .iter()
        .fold(text.to_owned(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        })
}

/// `text` with the settings that are only suggested in comments (`# recursors = [...]`)
/// switched on, so that they are checked too.
fn uncomment_suggestions(text: &str) -> String {
    text.lines()
        .map(|line| match suggested_setting(line) {
            Some(setting) => setting,
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` from a comment line `# key = value` whose key is a config key's spelling.
fn suggested_setting(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("# ")?;
    let (key, _) = rest.split_once('=')?;
    let key = key.trim_end();
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    is_key.then_some(rest)
}

/// Writes `text` into `dir` under the example's own file name (the format follows the
/// extension) and returns the new path.
fn write_copy(dir: &Path, example: &Path, text: &str) -> PathBuf {
    let path = dir.join(file_name(example));
    std::fs::write(&path, text).expect("writing a copy");
    path
}

fn load_files(files: &[PathBuf]) -> Result<config::Config, ConfigError> {
    config::load(files, &[], &Overrides::default())
}

/// The example, placeholders filled, loaded on its own.
fn load_filled(name: &str) -> config::Config {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = example(name);
    let copy = write_copy(dir.path(), &path, &fill(&read(&path)));
    load_files(&[copy]).unwrap_or_else(|e| panic!("deploy/config/{name}: {e}"))
}

#[test]
fn the_examples_the_docs_name_exist() {
    let names: Vec<String> = examples().iter().map(|path| file_name(path)).collect();
    for expected in EXPECTED {
        assert!(
            names.iter().any(|name| name == expected),
            "deploy/config/{expected} is missing (found {names:?})"
        );
    }
}

#[test]
fn every_example_loads_with_its_placeholders_filled() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for path in examples() {
        let copy = write_copy(dir.path(), &path, &fill(&read(&path)));
        if let Err(e) = load_files(&[copy]) {
            panic!("deploy/config/{}: {e}", file_name(&path));
        }
    }
}

#[test]
fn settings_suggested_in_comments_are_real_keys_too() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut suggested = 0;
    for path in examples() {
        let text = read(&path);
        suggested += text
            .lines()
            .filter(|line| suggested_setting(line).is_some())
            .count();
        let copy = write_copy(dir.path(), &path, &uncomment_suggestions(&fill(&text)));
        if let Err(e) = load_files(&[copy]) {
            panic!(
                "deploy/config/{} with its commented-out settings on: {e}",
                file_name(&path)
            );
        }
    }
    assert!(suggested > 0, "the examples suggest no optional settings");
}

#[test]
fn every_placeholder_is_one_the_docs_and_installer_know() {
    for path in examples() {
        for (number, line) in read(&path).lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            // The odd pieces of a split on quotes are the quoted strings.
            for quoted in line.split('"').skip(1).step_by(2) {
                let looks_like_placeholder = quoted.chars().any(|c| c.is_ascii_uppercase())
                    && quoted
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                assert!(
                    !looks_like_placeholder
                        || PLACEHOLDERS.iter().any(|(known, _)| *known == quoted),
                    "deploy/config/{}:{}: unknown placeholder {quoted:?}",
                    file_name(&path),
                    number + 1
                );
            }
        }
    }
}

#[test]
fn the_server_example_is_a_gossip_encrypted_server_of_three_that_denies_by_default() {
    let config = load_filled("server.hcl");
    assert!(config.server);
    assert_eq!(config.bootstrap_expect, 3);
    assert!(!config.bootstrap);
    assert_eq!(config.retry_join, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert!(config.encrypt.is_some(), "gossip encryption is on");
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/var/lib/mesh")));
    assert_eq!(config.bind_addr.to_string(), "127.0.0.1");
    assert_eq!(
        config.advertise_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1")
    );
    assert!(config.client_addr.is_loopback(), "the HTTP API stays local");
    assert!(config.connect.enabled);
    assert_eq!(config.default_intention_policy, Some(IntentionPolicy::Deny));
    // The firewall table in docs/deploy.md.
    assert_eq!(
        (
            config.ports.http,
            config.ports.dns,
            config.ports.server,
            config.ports.serf_lan
        ),
        (8500, 8600, 8300, 8301)
    );
}

#[test]
fn the_client_example_is_a_gossip_encrypted_client_that_denies_by_default() {
    let config = load_filled("client.hcl");
    assert!(!config.server);
    assert_eq!(config.bootstrap_expect, 0);
    assert_eq!(config.retry_join.len(), 3);
    assert!(config.encrypt.is_some(), "gossip encryption is on");
    assert_eq!(config.data_dir.as_deref(), Some(Path::new("/var/lib/mesh")));
    assert!(config.client_addr.is_loopback(), "the HTTP API stays local");
    assert_eq!(config.default_intention_policy, Some(IntentionPolicy::Deny));
    assert_eq!(
        (config.ports.http, config.ports.dns, config.ports.serf_lan),
        (8500, 8600, 8301)
    );
}

/// How docs/deploy.md deploys them: the client config and the service definitions side by
/// side in /etc/mesh/client.d, read as a config dir.
#[test]
fn the_service_examples_load_beside_the_client_config_as_a_config_dir() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in ["client.hcl", "web.hcl", "db.hcl"] {
        let path = example(name);
        write_copy(dir.path(), &path, &fill(&read(&path)));
    }
    let config = config::load(&[], &[dir.path().to_owned()], &Overrides::default())
        .unwrap_or_else(|e| panic!("client.d with the examples: {e}"));
    let service = |name: &str| -> &Value {
        config
            .services
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no service {name:?} in {:?}", config.services))
    };

    let web = service("web");
    assert_eq!(web["port"], 8080);
    let upstreams = &web["connect"]["sidecar_service"]["proxy"]["upstreams"];
    assert_eq!(
        upstreams,
        &serde_json::json!([{"destination_name": "db", "local_bind_port": 9191}]),
        "web's sidecar reaches db on 127.0.0.1:9191, as docs/deploy.md says"
    );

    let db = service("db");
    assert_eq!(db["port"], 5432);
    assert!(
        db["connect"]["sidecar_service"].is_object(),
        "db has a sidecar"
    );
}

#[test]
fn unfilled_agent_examples_refuse_to_load() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for name in ["server.hcl", "client.hcl"] {
        let path = example(name);
        let text = read(&path);

        let untouched = write_copy(dir.path(), &path, &text);
        let err = load_files(&[untouched]).expect_err("placeholders do not load");
        assert!(
            matches!(
                err,
                ConfigError::InvalidValue {
                    key: "bind_addr",
                    ..
                }
            ),
            "{name} as shipped: {err}"
        );

        // Addresses filled in, the key forgotten: still refused, never unencrypted.
        let without_key = text
            .replace("THIS_HOST_PRIVATE_IP", "127.0.0.1")
            .replace("SERVER_1_IP", "127.0.0.1");
        let half = write_copy(dir.path(), &path, &without_key);
        let err = load_files(&[half]).expect_err("a placeholder key does not load");
        assert!(
            matches!(err, ConfigError::InvalidValue { key: "encrypt", .. }),
            "{name} without its key: {err}"
        );
    }
}

#[test]
fn the_acl_examples_deny_by_default_and_seal_the_ca_keys() {
    let server = load_filled("server-acl.hcl");
    assert!(server.acl.enabled && server.acl.default_deny);
    assert!(server.acl.initial_management.is_some());
    assert_eq!(
        server.data_key_file.as_deref(),
        Some(Path::new("/etc/mesh/data.key"))
    );
    let client = load_filled("client-acl.hcl");
    assert!(client.acl.enabled && client.acl.default_deny);
    assert!(client.acl.default_token.is_some());
    // Left unfilled, the server's refuses to load: the token is not a UUID.
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = example("server-acl.hcl");
    let copy = write_copy(dir.path(), &path, &read(&path));
    assert!(load_files(&[copy]).is_err());
}
