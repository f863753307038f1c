//! auto_encrypt: servers sign client agents' TLS certificates, so that a client agent is
//! given only the CA certificate.
//!
//! mesh signs with the agent CA's own key (`auto_encrypt.ca_key_file` on servers), where
//! Consul signs with its Connect CA: the certificates then chain to `tls.defaults.ca_file`,
//! which every agent already trusts, and nothing about server RPC's verification changes. A
//! signed certificate names `client.<datacenter>.<domain>` (never a `server.` name, so it
//! cannot pass `verify_server_hostname`) and only the public key of the client's CSR is used.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};

use super::{file_error, TlsError};

/// How long a signed agent certificate is valid. Client agents ask for one at every start and
/// do not renew it while they run.
pub const AGENT_CERT_DAYS: i64 = 365;

/// A client agent's request for its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCertRequest {
    /// The client's node name (what ACLs check `node:write` on).
    pub node: String,
    /// The ACL token the client presents (empty: the anonymous token).
    pub token: String,
    /// The CSR; only its public key is used.
    pub csr_pem: String,
    /// `auto_encrypt.dns_san`.
    pub dns_san: Vec<String>,
    /// `auto_encrypt.ip_san`.
    pub ip_san: Vec<IpAddr>,
}

/// A signed agent certificate and the CA that signed it (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCert {
    pub cert_pem: String,
    pub ca_pem: String,
}

/// Decides whether the token (first argument) may have a certificate for the node (second).
pub type Authorize = Box<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// The server side of auto_encrypt: the agent CA, its key, and the ACL check.
pub struct AgentSigner {
    ca_pem: String,
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
    datacenter: String,
    domain: String,
    authorize: Authorize,
}

impl std::fmt::Debug for AgentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSigner")
            .field("datacenter", &self.datacenter)
            .field("domain", &self.domain)
            .finish()
    }
}

impl AgentSigner {
    /// Reads the CA certificate and its key; errors name the file.
    pub fn from_files(
        ca_file: &Path,
        ca_key_file: &Path,
        datacenter: &str,
        domain: &str,
        authorize: Authorize,
    ) -> Result<AgentSigner, TlsError> {
        let ca_pem =
            std::fs::read_to_string(ca_file).map_err(|e| file_error("CA file", ca_file, e))?;
        let key_pem = std::fs::read_to_string(ca_key_file)
            .map_err(|e| file_error("CA key file", ca_key_file, e))?;
        let issuer_key = signing_key(&key_pem)
            .map_err(|e| file_error("CA key file", ca_key_file, format!("no usable key: {e}")))?;
        // rcgen signs with a certificate object; one made from the CA's own fields and key
        // carries the same subject, which is what chains the leaves to the real CA.
        let issuer = CertificateParams::from_ca_cert_pem(&ca_pem)
            .and_then(|params| params.self_signed(&issuer_key))
            .map_err(|e| file_error("CA file", ca_file, format!("not a usable CA: {e}")))?;
        let signer = AgentSigner {
            ca_pem,
            issuer,
            issuer_key,
            datacenter: datacenter.to_owned(),
            domain: domain.to_owned(),
            authorize,
        };
        // A key that is not the CA's would sign certificates nobody accepts: refuse it now.
        let probe = csr("probe", datacenter, domain)
            .map_err(|e| TlsError::Build(format!("making a probe CSR: {e}")))?;
        let signed = signer
            .sign_unchecked(&probe.0, &[], &[])
            .map_err(|e| file_error("CA key file", ca_key_file, e))?;
        super::verify_chain(&signed.cert_pem, &signer.ca_pem).map_err(|e| {
            file_error(
                "CA key file",
                ca_key_file,
                format!("is not the key of {}: {e}", ca_file.display()),
            )
        })?;
        Ok(signer)
    }

    /// Signs the request's key for `client.<dc>.<domain>`, if the token may have it.
    pub fn sign(&self, req: &AgentCertRequest) -> Result<AgentCert, String> {
        (self.authorize)(&req.token, &req.node)?;
        self.sign_unchecked(&req.csr_pem, &req.dns_san, &req.ip_san)
    }

    fn sign_unchecked(
        &self,
        csr_pem: &str,
        dns_san: &[String],
        ip_san: &[IpAddr],
    ) -> Result<AgentCert, String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("the CSR is not valid: {e}"))?;
        let name = format!("client.{}.{}", self.datacenter, self.domain);
        let servers = format!("server.{}.{}", self.datacenter, self.domain);
        for extra in dns_san {
            let lower = extra.to_ascii_lowercase();
            if lower == servers || lower.ends_with(&format!(".{servers}")) {
                return Err(format!("{extra:?} is a server's name"));
            }
        }
        let mut names = vec![name.clone(), "localhost".to_owned()];
        names.extend(dns_san.iter().cloned());
        let mut params =
            CertificateParams::new(names).map_err(|e| format!("the certificate's names: {e}"))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        params
            .subject_alt_names
            .extend(ip_san.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Client agents serve HTTPS with it too, as with Consul's auto-encrypt certificates.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(AGENT_CERT_DAYS);
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| "no randomness for a serial number".to_owned())?;
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&csr.public_key, &self.issuer, &self.issuer_key)
            .map_err(|e| format!("signing: {e}"))?;
        Ok(AgentCert {
            cert_pem: cert.pem(),
            ca_pem: self.ca_pem.clone(),
        })
    }
}

/// The CA's key from PEM: PKCS #8, or SEC 1 (`EC PRIVATE KEY`) as `mesh-client tls ca
/// create` and Consul write it, for P-256 (ring reads only PKCS #8, so SEC 1 is wrapped).
fn signing_key(pem: &str) -> Result<KeyPair, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::rustls;
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
    let pkcs8 = match &der {
        PrivateKeyDer::Pkcs8(pkcs8) => pkcs8.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Sec1(sec1) => ca::keys::pkcs8_from_sec1(sec1.secret_sec1_der()),
        _ => return Err("not an EC key (PKCS #8 or SEC 1 expected)".to_owned()),
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(|e| e.to_string())
}

/// A new key and a CSR for this client agent: (CSR PEM, key PEM).
pub fn csr(node: &str, datacenter: &str, domain: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![format!("client.{datacenter}.{domain}")])?;
    params.distinguished_name.push(DnType::CommonName, node);
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// Asks the servers at `addrs`, in turn, to sign `req`; the first certificate, or the last
/// error. Each attempt is a fresh connection (dialed as the process's dialer says: TLS,
/// without a certificate of this agent's yet).
pub async fn request_agent_cert(
    addrs: &[String],
    req: &AgentCertRequest,
) -> Result<AgentCert, String> {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    let mut last = "no server known yet".to_owned();
    for addr in addrs {
        match crate::call(addr, &crate::Request::SignAgentCert(req.clone()), TIMEOUT).await {
            Ok(crate::Response::SignAgentCert(Ok(cert))) => return Ok(cert),
            Ok(crate::Response::SignAgentCert(Err(why))) => last = format!("{addr}: {why}"),
            Ok(_) => last = format!("{addr} answered with an unexpected message"),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}
