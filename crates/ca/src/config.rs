//! The CA configuration, in the JSON shape of Consul's `GET/PUT /v1/connect/ca/configuration`
//! (`structs.CAConfiguration` with the `consul` provider's `Config` map), with Consul's defaults
//! (agent/structs/connect_ca.go) and its validation rules and texts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde_go;
use crate::error::{go, invalid_config, CaError};

#[cfg(test)]
mod tests;

/// The only provider: the CA built into the servers.
pub const PROVIDER_CONSUL: &str = "consul";

const HOUR: Duration = Duration::from_secs(3600);
/// Consul's `MinLeafCertTTL`.
const MIN_LEAF_CERT_TTL: Duration = HOUR;
/// Consul's `MaxLeafCertTTL` (365 * 24h).
const MAX_LEAF_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Consul's `IntermediateCertRenewInterval`; intermediates must live at least three of them.
const INTERMEDIATE_RENEW_INTERVAL: Duration = HOUR;

/// `{Provider, Config, ForceWithoutCrossSigning, CreateIndex, ModifyIndex}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CaConfig {
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub config: ProviderConfig,
    /// Rotate without having the old root cross-sign the new one. The built-in provider can
    /// always cross-sign, so this only skips it (Consul skips it too when it is set).
    #[serde(default, alias = "force_without_cross_signing")]
    pub force_without_cross_signing: bool,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

/// The provider's `Config` map. Missing keys take Consul's defaults; unknown keys are ignored
/// (Consul decodes the map without rejecting unused keys). Durations are Go duration strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    #[serde(rename = "LeafCertTTL", alias = "leaf_cert_ttl", with = "serde_go")]
    pub leaf_cert_ttl: Duration,
    #[serde(
        rename = "IntermediateCertTTL",
        alias = "intermediate_cert_ttl",
        with = "serde_go"
    )]
    pub intermediate_cert_ttl: Duration,
    #[serde(rename = "RootCertTTL", alias = "root_cert_ttl", with = "serde_go")]
    pub root_cert_ttl: Duration,
    /// Accepted and echoed for compatibility; Consul's built-in provider ignores it too.
    #[serde(
        rename = "RotationPeriod",
        alias = "rotation_period",
        with = "serde_go"
    )]
    pub rotation_period: Duration,
    #[serde(rename = "PrivateKeyType", alias = "private_key_type")]
    pub private_key_type: String,
    #[serde(rename = "PrivateKeyBits", alias = "private_key_bits")]
    pub private_key_bits: u32,
    /// CSRs signed per second by each server; 0 disables the limit (Consul's default is 50).
    #[serde(
        rename = "CSRMaxPerSecond",
        alias = "csr_max_per_second",
        serialize_with = "whole_numbers_as_integers"
    )]
    pub csr_max_per_second: f64,
    /// Accepted and echoed; only used by callers when `csr_max_per_second` is 0, as in Consul.
    #[serde(rename = "CSRMaxConcurrent", alias = "csr_max_concurrent")]
    pub csr_max_concurrent: u32,
    /// A PEM private key (PKCS#8, EC P-256) to use for the root instead of generating one.
    #[serde(
        rename = "PrivateKey",
        alias = "private_key",
        skip_serializing_if = "String::is_empty"
    )]
    pub private_key: String,
    /// A PEM root certificate matching `private_key`, to import an existing CA.
    #[serde(
        rename = "RootCert",
        alias = "root_cert",
        skip_serializing_if = "String::is_empty"
    )]
    pub root_cert: String,
}

fn default_provider() -> String {
    PROVIDER_CONSUL.to_owned()
}

fn whole_numbers_as_integers<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            leaf_cert_ttl: 72 * HOUR,
            intermediate_cert_ttl: 8760 * HOUR,
            root_cert_ttl: 87600 * HOUR,
            rotation_period: 2160 * HOUR,
            private_key_type: "ec".to_owned(),
            private_key_bits: 256,
            csr_max_per_second: crate::limiter::DEFAULT_CSR_MAX_PER_SECOND,
            csr_max_concurrent: 0,
            private_key: String::new(),
            root_cert: String::new(),
        }
    }
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            provider: default_provider(),
            config: ProviderConfig::default(),
            force_without_cross_signing: false,
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl CaConfig {
    /// Checks the configuration the way Consul's `CommonCAProviderConfig.Validate` does, plus the
    /// limits of this implementation (EC P-256 only, one provider).
    pub fn validate(&self) -> Result<(), CaError> {
        if !self.provider.is_empty() && self.provider != PROVIDER_CONSUL {
            return Err(CaError::UnsupportedProvider(self.provider.clone()));
        }
        self.config.validate()
    }

    /// The same configuration without the root's private key, for callers that display it.
    pub fn redacted(&self) -> CaConfig {
        let mut out = self.clone();
        if !out.config.private_key.is_empty() {
            out.config.private_key = "hidden".to_owned();
        }
        out
    }
}

impl ProviderConfig {
    pub fn validate(&self) -> Result<(), CaError> {
        let (leaf, int, root) = (
            self.leaf_cert_ttl,
            self.intermediate_cert_ttl,
            self.root_cert_ttl,
        );
        if root < int {
            return Err(invalid_config(format!(
                "root cert TTL is set and is not greater than intermediate cert ttl. root cert ttl: {}, intermediate cert ttl: {}",
                go(root),
                go(int)
            )));
        }
        if leaf < MIN_LEAF_CERT_TTL {
            return Err(invalid_config(format!(
                "leaf cert TTL must be greater or equal than {}",
                go(MIN_LEAF_CERT_TTL)
            )));
        }
        if leaf > MAX_LEAF_CERT_TTL {
            return Err(invalid_config(format!(
                "leaf cert TTL must be less than {}",
                go(MAX_LEAF_CERT_TTL)
            )));
        }
        if int < 3 * INTERMEDIATE_RENEW_INTERVAL {
            return Err(invalid_config(format!(
                "Intermediate Cert TTL must be greater or equal than {}h",
                3 * INTERMEDIATE_RENEW_INTERVAL.as_secs() / 3600
            )));
        }
        if int < 3 * leaf {
            return Err(invalid_config(format!(
                "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>={}).",
                go(3 * leaf)
            )));
        }
        match (self.private_key_type.as_str(), self.private_key_bits) {
            ("ec", 256) => {}
            ("ec", 224 | 384 | 521) => {
                return Err(invalid_config(format!(
                    "EC key length {} is not supported: only 256 (NIST P-256) is",
                    self.private_key_bits
                )))
            }
            ("ec", _) => {
                return Err(invalid_config(
                    "EC key length must be one of (224, 256, 384, 521) bits",
                ))
            }
            ("rsa", _) => {
                return Err(invalid_config(
                    "private key type \"rsa\" is not supported: only \"ec\" (NIST P-256) is",
                ))
            }
            _ => {
                return Err(invalid_config(
                    "private key type must be either 'ec' or 'rsa'",
                ))
            }
        }
        if !self.csr_max_per_second.is_finite() || self.csr_max_per_second < 0.0 {
            return Err(invalid_config(format!(
                "CSRMaxPerSecond must be a non-negative number, got {}",
                self.csr_max_per_second
            )));
        }
        if !self.root_cert.is_empty() && self.private_key.is_empty() {
            return Err(invalid_config(
                "RootCert was given without PrivateKey: the built-in CA needs the root's key to sign",
            ));
        }
        Ok(())
    }

    /// Whether moving from `self` to `new` replaces the root (Consul rotates when the provider's
    /// key material or key type changes, since those change the provider's identity).
    pub(crate) fn root_changes(&self, new: &ProviderConfig) -> bool {
        self.private_key != new.private_key
            || self.root_cert != new.root_cert
            || self.private_key_type != new.private_key_type
            || self.private_key_bits != new.private_key_bits
    }
}
