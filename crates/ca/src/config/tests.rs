use std::time::Duration;

use serde_json::json;

use super::{CaConfig, ProviderConfig};
use crate::error::CaError;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn defaults_serialize_like_consul() {
    let json = serde_json::to_value(CaConfig::default()).expect("serializes");
    assert_eq!(
        json,
        json!({
            "Provider": "consul",
            "Config": {
                "LeafCertTTL": "72h",
                "IntermediateCertTTL": "8760h",
                "RootCertTTL": "87600h",
                "RotationPeriod": "2160h",
                "PrivateKeyType": "ec",
                "PrivateKeyBits": 256,
                "CSRMaxPerSecond": 50,
                "CSRMaxConcurrent": 0
            },
            "ForceWithoutCrossSigning": false,
            "CreateIndex": 0,
            "ModifyIndex": 0
        })
    );
    assert_eq!(
        CaConfig::default().validate().map_err(|e| e.to_string()),
        Ok(())
    );
}

#[test]
fn partial_bodies_take_defaults_and_accept_consul_spellings() {
    let body = json!({
        "Provider": "consul",
        "Config": {"LeafCertTTL": "24h", "csr_max_per_second": 0, "SomethingElse": true},
        "force_without_cross_signing": true
    });
    let config: CaConfig = serde_json::from_value(body).expect("decodes");
    assert_eq!(config.config.leaf_cert_ttl, 24 * HOUR);
    assert_eq!(config.config.intermediate_cert_ttl, 8760 * HOUR);
    assert_eq!(config.config.csr_max_per_second, 0.0);
    assert!(config.force_without_cross_signing);

    // Consul decodes durations weakly: a bare number is nanoseconds.
    let config: CaConfig =
        serde_json::from_value(json!({"Config": {"LeafCertTTL": 7_200_000_000_000u64}}))
            .expect("decodes");
    assert_eq!(config.config.leaf_cert_ttl, 2 * HOUR);
    assert_eq!(config.provider, "consul");

    let bad = serde_json::from_value::<CaConfig>(json!({"Config": {"LeafCertTTL": "3 days"}}));
    assert!(bad.is_err());
}

fn check(edit: impl FnOnce(&mut ProviderConfig), expected: &str) {
    let mut config = CaConfig::default();
    edit(&mut config.config);
    let err = config
        .validate()
        .expect_err("configuration should be invalid");
    assert!(matches!(err, CaError::InvalidConfig(_)), "{err:?}");
    assert_eq!(err.to_string(), expected);
}

#[test]
fn validation_follows_consul() {
    check(
        |c| c.leaf_cert_ttl = HOUR / 2,
        "leaf cert TTL must be greater or equal than 1h0m0s",
    );
    check(
        |c| c.leaf_cert_ttl = 8761 * HOUR,
        "leaf cert TTL must be less than 8760h0m0s",
    );
    check(
        |c| {
            c.leaf_cert_ttl = HOUR;
            c.intermediate_cert_ttl = 2 * HOUR;
        },
        "Intermediate Cert TTL must be greater or equal than 3h",
    );
    check(
        |c| c.intermediate_cert_ttl = 100 * HOUR,
        "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=216h0m0s).",
    );
    check(
        |c| c.root_cert_ttl = 100 * HOUR,
        "root cert TTL is set and is not greater than intermediate cert ttl. root cert ttl: 100h0m0s, intermediate cert ttl: 8760h0m0s",
    );
    check(
        |c| c.private_key_type = "rsa".to_owned(),
        "private key type \"rsa\" is not supported: only \"ec\" (NIST P-256) is",
    );
    check(
        |c| c.private_key_type = "dsa".to_owned(),
        "private key type must be either 'ec' or 'rsa'",
    );
    check(
        |c| c.private_key_bits = 384,
        "EC key length 384 is not supported: only 256 (NIST P-256) is",
    );
    check(
        |c| c.private_key_bits = 2048,
        "EC key length must be one of (224, 256, 384, 521) bits",
    );
    check(
        |c| c.csr_max_per_second = -1.0,
        "CSRMaxPerSecond must be a non-negative number, got -1",
    );
    check(
        |c| c.root_cert = "-----BEGIN CERTIFICATE-----".to_owned(),
        "RootCert was given without PrivateKey: the built-in CA needs the root's key to sign",
    );

    // The limits themselves are allowed.
    let mut edge = CaConfig::default();
    edge.config.leaf_cert_ttl = 8760 * HOUR;
    edge.config.intermediate_cert_ttl = 3 * 8760 * HOUR;
    assert!(edge.validate().is_ok());

    let vault = CaConfig {
        provider: "vault".to_owned(),
        ..CaConfig::default()
    };
    assert_eq!(
        vault.validate().map_err(|e| e.to_string()),
        Err(
            "CA provider \"vault\" is not supported; the only supported provider is \"consul\""
                .to_owned()
        )
    );
}

#[test]
fn redaction_hides_the_private_key_only() {
    let mut config = CaConfig::default();
    config.config.private_key = "-----BEGIN PRIVATE KEY-----...".to_owned();
    let shown = serde_json::to_value(config.redacted()).expect("serializes");
    assert_eq!(shown["Config"]["PrivateKey"], "hidden");
    assert_eq!(shown["Config"]["LeafCertTTL"], "72h");
}
