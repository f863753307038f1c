//! The HAProxy pair's certificates: a CA and two leaves signed by it, EC P-256 with
//! ECDSA-SHA256 as mesh's Connect CA issues them, generated fresh for every run.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// The name the server-side proxy's certificate carries and the client side checks.
pub const SERVER_NAME: &str = "echo.bench.internal";
/// The client-side proxy's certificate's name.
pub const CLIENT_NAME: &str = "load.bench.internal";

/// PEM texts: the CA certificate, and each leaf's certificate followed by its private key
/// (the form HAProxy's `crt` takes).
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub client_pem: String,
    pub server_pem: String,
}

pub fn generate() -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mesh-bench proxy CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| -> anyhow::Result<String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
    };
    Ok(Pki {
        ca_pem: ca.pem(),
        client_pem: leaf(CLIENT_NAME, ExtendedKeyUsagePurpose::ClientAuth)?,
        server_pem: leaf(SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_carry_certificate_then_key() {
        let pki = generate().expect("generated");
        assert_eq!(pki.ca_pem.matches("BEGIN CERTIFICATE").count(), 1);
        for leaf in [&pki.client_pem, &pki.server_pem] {
            let cert = leaf.find("BEGIN CERTIFICATE").expect("a certificate");
            let key = leaf.find("BEGIN PRIVATE KEY").expect("a key");
            assert!(cert < key, "HAProxy reads the certificate first");
        }
        assert_ne!(pki.client_pem, pki.server_pem);
    }
}
