//! Consul's JSON shapes for the CA endpoints, with Consul's field names. They never carry private
//! keys of the CA (Consul omits `SigningCert`/`SigningKey` from the roots response too).
//! Times are RFC 3339 strings in UTC, as Go marshals `time.Time`.

use serde::{Deserialize, Serialize};

/// `GET /v1/connect/ca/roots` (`structs.IndexedCARoots`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedCaRoots {
    #[serde(rename = "ActiveRootID")]
    pub active_root_id: String,
    #[serde(rename = "TrustDomain")]
    pub trust_domain: String,
    #[serde(rename = "Roots")]
    pub roots: Vec<CaRoot>,
}

/// One entry of `Roots` (`structs.CARoot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRoot {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "SerialNumber")]
    pub serial_number: u64,
    #[serde(rename = "SigningKeyID")]
    pub signing_key_id: String,
    #[serde(rename = "ExternalTrustDomain")]
    pub external_trust_domain: String,
    #[serde(rename = "NotBefore")]
    pub not_before: String,
    #[serde(rename = "NotAfter")]
    pub not_after: String,
    #[serde(rename = "RootCert")]
    pub root_cert: String,
    #[serde(rename = "IntermediateCerts")]
    pub intermediate_certs: Vec<String>,
    #[serde(rename = "Active")]
    pub active: bool,
    #[serde(rename = "PrivateKeyType")]
    pub private_key_type: String,
    #[serde(rename = "PrivateKeyBits")]
    pub private_key_bits: u32,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

/// `GET /v1/agent/connect/ca/leaf/:service` (`structs.IssuedCert` for a service). Empty strings
/// are omitted as Consul's `omitempty` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    #[serde(rename = "SerialNumber")]
    pub serial_number: String,
    #[serde(rename = "CertPEM", default, skip_serializing_if = "String::is_empty")]
    pub cert_pem: String,
    #[serde(
        rename = "PrivateKeyPEM",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub private_key_pem: String,
    #[serde(rename = "Service", default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    #[serde(
        rename = "ServiceURI",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub service_uri: String,
    #[serde(rename = "ValidAfter")]
    pub valid_after: String,
    #[serde(rename = "ValidBefore")]
    pub valid_before: String,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}
