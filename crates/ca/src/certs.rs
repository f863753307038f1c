//! Certificate and key mechanics: EC P-256 keys, the root/intermediate/cross-signed/leaf
//! templates (modelled on Consul's `consul` provider, agent/connect/ca/provider_consul.go), CSR
//! decoding, and the encodings Consul uses (colon-hex serials and key IDs, SHA-1 fingerprints).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
use x509_parser::prelude::FromDer;

use crate::error::CaError;
use crate::spiffe::SpiffeId;

/// Every key the CA creates or accepts is EC P-256, signing with ECDSA SHA-256.
pub(crate) const ALG: &SignatureAlgorithm = &PKCS_ECDSA_P256_SHA256;

const PEM_LF: pem::EncodeConfig = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);

/// Consul's `connect.HexString`: lowercase hex bytes joined by ':' (serials, key IDs, root IDs).
pub fn hex_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A serial number's big-endian bytes without leading zeros (Go's `big.Int.Bytes`).
pub(crate) fn serial_bytes(serial: u64) -> Vec<u8> {
    let bytes = serial.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

/// Consul's `connect.CalculateCertFingerprint`: colon-hex SHA-1 of the certificate DER, used as
/// the root's `ID`.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    hex_string(digest.as_ref())
}

/// Consul's `connect.KeyId`: SHA-256 of the PKIX (SPKI DER) public key, used as subject and
/// authority key identifier.
pub(crate) fn key_id(spki_der: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, spki_der)
        .as_ref()
        .to_vec()
}

pub(crate) fn offset(unix: u64) -> OffsetDateTime {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    // Beyond year 9999 a certificate time cannot be encoded anyway; clamp to the RFC 5280 maximum.
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|_| rcgen::date_time_ymd(9999, 12, 31))
}

/// RFC 3339 in UTC, the way Go marshals a `time.Time` (`2024-05-01T10:00:00Z`).
pub(crate) fn rfc3339(unix: u64) -> String {
    offset(unix)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("@{unix}"))
}

pub(crate) fn pem_certificate(der: &[u8]) -> String {
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), PEM_LF)
}

/// The DER of every `CERTIFICATE` block in `text`, in order.
pub(crate) fn decode_certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| e.to_string())?;
    // `parse_many` skips blocks it cannot read; a truncated or corrupt block is an error here.
    let begun = text.matches("-----BEGIN ").count();
    if begun != blocks.len() {
        return Err(format!(
            "{} of {begun} PEM blocks could not be decoded",
            begun - blocks.len().min(begun)
        ));
    }
    blocks
        .into_iter()
        .map(|block| {
            if block.tag() == "CERTIFICATE" {
                Ok(block.into_contents())
            } else {
                Err(format!("unexpected PEM block {:?}", block.tag()))
            }
        })
        .collect()
}

pub(crate) fn generate_key() -> Result<KeyPair, CaError> {
    KeyPair::generate_for(ALG).map_err(CaError::crypto("generating an EC P-256 key"))
}

/// Loads an EC P-256 private key in PKCS#8 PEM ("PRIVATE KEY"), the format this crate writes.
pub(crate) fn load_key(pem_text: &str) -> Result<KeyPair, String> {
    let block = pem::parse(pem_text).map_err(|e| format!("private key is not PEM: {e}"))?;
    match block.tag() {
        "PRIVATE KEY" => KeyPair::from_pkcs8_pem_and_sign_algo(pem_text, ALG)
            .map_err(|e| format!("private key is not an EC P-256 PKCS#8 key: {e}")),
        "EC PRIVATE KEY" => Err(
            "EC PRIVATE KEY (SEC1) keys are not supported; convert it with \
             `openssl pkcs8 -topk8 -nocrypt` to a PKCS#8 PRIVATE KEY"
                .to_owned(),
        ),
        other => Err(format!(
            "unsupported private key type {other:?}; expected an EC P-256 PKCS#8 PRIVATE KEY"
        )),
    }
}

/// The inputs shared by root and intermediate certificates.
pub(crate) struct CaCertSpec<'a> {
    pub common_name: String,
    pub trust_domain: &'a str,
    pub serial: u64,
    pub not_before: u64,
    pub not_after: u64,
    /// `None` for a root (unconstrained); `Some(0)` for the leaf-signing intermediate, as Consul's
    /// `SignIntermediate` sets `MaxPathLenZero`.
    pub path_len: Option<u8>,
}

fn ca_params(spec: &CaCertSpec<'_>, subject_key: &KeyPair) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(&spec.common_name);
    params.serial_number = Some(SerialNumber::from_slice(&serial_bytes(spec.serial)));
    params.not_before = offset(spec.not_before);
    params.not_after = offset(spec.not_after);
    // Consul puts the trust domain's signing SPIFFE ID on its CA certificates.
    params.subject_alt_names = vec![uri_san(&format!("spiffe://{}", spec.trust_domain))?];
    params.is_ca = IsCa::Ca(match spec.path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id(&subject_key.public_key_der()));
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A self-signed root; returns its PEM.
pub(crate) fn self_signed_root(spec: &CaCertSpec<'_>, key: &KeyPair) -> Result<String, CaError> {
    let cert = ca_params(spec, key)?
        .self_signed(key)
        .map_err(CaError::crypto("self-signing the root"))?;
    Ok(cert.pem())
}

/// An intermediate CA certificate for `subject_key`, issued by the CA in `issuer_pem`.
pub(crate) fn intermediate(
    spec: &CaCertSpec<'_>,
    subject_key: &KeyPair,
    issuer_pem: &str,
    issuer_key: &KeyPair,
) -> Result<String, CaError> {
    let issuer = issuer(issuer_pem, issuer_key)?;
    let cert = ca_params(spec, subject_key)?
        .signed_by(subject_key, &issuer, issuer_key)
        .map_err(CaError::crypto("signing the intermediate"))?;
    Ok(cert.pem())
}

/// Consul's `CrossSignCA`: the certificate in `cert_pem` (a new root) re-issued with the same
/// subject, key, SANs and extensions but signed by another CA, with a fresh serial and validity.
pub(crate) fn cross_sign(
    cert_pem: &str,
    cert_key: &KeyPair,
    serial: u64,
    not_before: u64,
    not_after: u64,
    issuer_pem: &str,
    issuer_key: &KeyPair,
) -> Result<String, CaError> {
    let issuer = issuer(issuer_pem, issuer_key)?;
    let mut params = CertificateParams::from_ca_cert_pem(cert_pem)
        .map_err(CaError::crypto("reading the certificate to cross-sign"))?;
    params.serial_number = Some(SerialNumber::from_slice(&serial_bytes(serial)));
    params.not_before = offset(not_before);
    params.not_after = offset(not_after);
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(cert_key, &issuer, issuer_key)
        .map_err(CaError::crypto("cross-signing the new root"))?;
    Ok(cert.pem())
}

/// rcgen signs "by a certificate": rebuild one from the stored PEM, keeping its subject name and
/// subject key ID so issued certificates name it exactly and carry the right authority key ID.
pub(crate) fn issuer(cert_pem: &str, key: &KeyPair) -> Result<rcgen::Certificate, CaError> {
    let params = CertificateParams::from_ca_cert_pem(cert_pem)
        .map_err(CaError::crypto("reading the issuing CA certificate"))?;
    params
        .self_signed(key)
        .map_err(CaError::crypto("loading the issuing CA"))
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn uri_san(uri: &str) -> Result<SanType, CaError> {
    let ia5 = uri
        .to_owned()
        .try_into()
        .map_err(|_| CaError::InvalidCsr(format!("URI {uri:?} is not ASCII")))?;
    Ok(SanType::URI(ia5))
}

/// The public key of a CSR, in the form rcgen writes into the certificate.
#[derive(Debug)]
pub(crate) struct CsrKey {
    /// The subject public key bits (the uncompressed EC point).
    point: Vec<u8>,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        ALG
    }
}

/// What the CA takes from a CSR: the key (its self-signature verified) and the requested SANs.
#[derive(Debug)]
pub(crate) struct Csr {
    pub key: CsrKey,
    /// SHA-256 of the CSR's SPKI, the leaf's subject key ID (as Consul's `connect.KeyId`).
    pub key_id: Vec<u8>,
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

pub(crate) fn parse_csr(csr_pem: &str) -> Result<Csr, CaError> {
    let invalid = |reason: String| CaError::InvalidCsr(reason);
    let block = pem::parse(csr_pem).map_err(|e| invalid(format!("not PEM: {e}")))?;
    if !matches!(
        block.tag(),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
    ) {
        return Err(invalid(format!(
            "PEM block is {:?}, expected CERTIFICATE REQUEST",
            block.tag()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| invalid(format!("cannot decode PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing data after the request".to_owned()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let is_p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256);
    if !is_p256 {
        return Err(invalid(
            "the key must be an EC P-256 key (PrivateKeyType \"ec\", 256 bits)".to_owned(),
        ));
    }
    csr.verify_signature().map_err(|_| CaError::CsrSignature)?;

    let mut out = Csr {
        key: CsrKey {
            point: spki.subject_public_key.data.to_vec(),
        },
        key_id: key_id(spki.raw),
        uris: Vec::new(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for name in &san.general_names {
            match name {
                GeneralName::URI(uri) => out.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => out.dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    out.ip_addresses.push(ip(bytes).ok_or_else(|| {
                        invalid(format!("IP address SAN of {} bytes", bytes.len()))
                    })?)
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported SAN {other:?}: only URI, DNS and IP SANs are accepted"
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The inputs of a leaf certificate.
pub(crate) struct LeafSpec<'a> {
    pub id: &'a SpiffeId,
    pub serial: u64,
    pub not_before: u64,
    pub not_after: u64,
}

/// A leaf for the CSR's key, signed by the intermediate. Fields follow Consul's `Sign`: the CSR's
/// URI, DNS and IP SANs, CA:false, digitalSignature|keyEncipherment|dataEncipherment|
/// keyAgreement, serverAuth+clientAuth, subject key ID from the CSR key, authority key ID of
/// the intermediate; the subject CN is the service name.
pub(crate) fn leaf(
    spec: &LeafSpec<'_>,
    csr: &Csr,
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
) -> Result<Vec<u8>, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(&spec.id.service);
    params.serial_number = Some(SerialNumber::from_slice(&serial_bytes(spec.serial)));
    params.not_before = offset(spec.not_before);
    params.not_after = offset(spec.not_after);
    params.subject_alt_names.push(uri_san(&spec.id.uri())?);
    for dns in &csr.dns_names {
        let ia5 = dns
            .clone()
            .try_into()
            .map_err(|_| CaError::InvalidCsr(format!("DNS SAN {dns:?} is not ASCII")))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    for ip in &csr.ip_addresses {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(csr.key_id.clone());
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&csr.key, issuer, issuer_key)
        .map_err(CaError::crypto("signing the leaf"))?;
    Ok(cert.der().to_vec())
}

/// Agent side: a fresh EC P-256 key and a CSR for `service`'s SPIFFE ID (plus `dns_sans`).
/// Returns `(private_key_pem, csr_pem)`; the key never leaves the agent.
pub fn generate_key_and_csr(
    trust_domain: &str,
    datacenter: &str,
    service: &str,
    dns_sans: &[String],
) -> Result<(String, String), CaError> {
    let id = SpiffeId::service(trust_domain, datacenter, service);
    let key = generate_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(service);
    params.subject_alt_names.push(uri_san(&id.uri())?);
    for dns in dns_sans {
        let ia5 = dns
            .clone()
            .try_into()
            .map_err(|_| CaError::InvalidCsr(format!("DNS SAN {dns:?} is not ASCII")))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    let csr = params
        .serialize_request(&key)
        .map_err(CaError::crypto("creating the CSR"))?;
    let csr_pem = csr.pem().map_err(CaError::crypto("encoding the CSR"))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// 8 base-36 characters derived from a public key, to make CA common names unique the way
/// Consul's `CompactUID` does, without hidden randomness.
pub(crate) fn compact_uid(spki_der: &[u8]) -> String {
    let digest = key_id(spki_der);
    let mut n = u64::from_be_bytes(
        <[u8; 8]>::try_from(&digest[..8]).expect("SHA-256 is longer than 8 bytes"),
    );
    let mut out = String::with_capacity(8);
    for _ in 0..8 {
        let d = (n % 36) as u32;
        out.push(char::from_digit(d, 36).expect("digit below 36"));
        n /= 36;
    }
    out
}
