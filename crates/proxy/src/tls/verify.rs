//! Verifying mesh peers: the presented chain must end in the current roots (webpki path
//! building, so intermediates and cross-signed roots may come in any order), then the identity is
//! the leaf's single SPIFFE URI SAN. DNS SANs and the TLS server name are never consulted.
//!
//! webpki checks the chain and any name constraints; it does not understand SPIFFE IDs, so the
//! identity checks are ours. Consul's roots carry a permitted DNS subtree for the trust domain,
//! which webpki applies to DNS names only and skips for URI SANs; a root with a *URI* name
//! constraint would make webpki fail closed (it implements none).

use std::slice;
use std::sync::Arc;

use ca::{SpiffeError, SpiffeId};
use tokio_rustls::rustls;
use x509_parser::extensions::GeneralName;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::Current;

/// Why a certificate does not prove the identity it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no certificate was presented")]
    NoCertificate,
    #[error("the certificate cannot be decoded: {0}")]
    Decode(String),
    #[error("the certificate has {0} URI SANs; a mesh identity is exactly one")]
    UriSanCount(usize),
    #[error("the certificate's URI SAN is not a service identity")]
    NotService(#[source] SpiffeError),
    #[error("the peer is in trust domain {presented:?}, expected {expected:?}")]
    TrustDomain { expected: String, presented: String },
    /// URIs of the identities.
    #[error("the peer is {presented}, expected {expected}")]
    Mismatch { expected: String, presented: String },
}

/// The service identity in the URI SAN of the first certificate of `chain` (a peer's chain as
/// rustls reports it, or a leaf's). Does not verify anything else.
pub fn peer_identity(chain: &[CertificateDer<'_>]) -> Result<SpiffeId, IdentityError> {
    let leaf = chain.first().ok_or(IdentityError::NoCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| IdentityError::Decode(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Decode(e.to_string()))?;
    let uris: Vec<&str> = san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(IdentityError::UriSanCount(uris.len()));
    };
    SpiffeId::parse(uri).map_err(IdentityError::NotService)
}

fn invalid(e: IdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// Server side: a client certificate is required, must chain to the current roots (webpki's
/// client-auth verification, EKU clientAuth) and must name a service of the current trust
/// domain. Whether that service may connect is the authorizer's business, after the handshake.
#[derive(Debug)]
pub(super) struct MeshClientVerifier {
    current: Arc<Current>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshClientVerifier {
    pub(super) fn new(current: Arc<Current>, provider: Arc<CryptoProvider>) -> Self {
        MeshClientVerifier {
            current,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: every sidecar has exactly one leaf to offer.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let material = self.current.get();
        material
            .roots
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = peer_identity(slice::from_ref(end_entity)).map_err(invalid)?;
        if id.trust_domain != material.roots.trust_domain {
            return Err(invalid(IdentityError::TrustDomain {
                expected: material.roots.trust_domain.clone(),
                presented: id.trust_domain,
            }));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Client side: the server's chain must end in the current roots, and its identity must be
/// exactly the upstream service expected, in the current trust domain. The server name rustls
/// passes in is ignored: mesh identities are URI SANs, not DNS names.
#[derive(Debug)]
pub(super) struct UpstreamVerifier {
    current: Arc<Current>,
    service: String,
    datacenter: String,
    algorithms: WebPkiSupportedAlgorithms,
}

impl UpstreamVerifier {
    pub(super) fn new(
        current: Arc<Current>,
        service: String,
        datacenter: String,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        UpstreamVerifier {
            current,
            service,
            datacenter,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let material = self.current.get();
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &material.roots.store,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let presented = peer_identity(slice::from_ref(end_entity)).map_err(invalid)?;
        let expected = SpiffeId::service(
            &material.roots.trust_domain,
            &self.datacenter,
            &self.service,
        );
        if presented != expected {
            return Err(invalid(IdentityError::Mismatch {
                expected: expected.uri(),
                presented: presented.uri(),
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
