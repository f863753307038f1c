//! Mesh mTLS: rustls configurations (ring, TLS 1.3 only) built from the PEM material the agent
//! serves, with identities taken from SPIFFE URI SANs instead of DNS names.
//!
//! [`Identity`] holds the current leaf (`CertPEM` + `PrivateKeyPEM` of
//! `/v1/agent/connect/ca/leaf/:service`) and the current trusted roots (`/v1/agent/connect/ca/roots`).
//! The configurations it hands out never capture material: the certificate resolvers and the
//! verifiers read the holder at every handshake, so [`Identity::set_leaf`] and
//! [`Identity::set_roots`] apply to the next handshake, and established connections (whose
//! handshake is over) are untouched. Session resumption is off on both sides so that every
//! connection is verified against the roots current at its handshake.
//!
//! This module knows nothing about where the PEM comes from (agent API, files, tests).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use ca::SpiffeId;
use tokio_rustls::rustls;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

mod verify;

#[cfg(test)]
mod tests;

pub use verify::{peer_identity, IdentityError};

/// Why PEM material could not be turned into a leaf or a set of roots.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} PEM: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("the leaf certificate PEM holds no certificate")]
    EmptyChain,
    #[error("the private key cannot be used with the leaf certificate")]
    Key(#[source] rustls::Error),
    #[error("the leaf certificate carries no usable service identity")]
    LeafIdentity(#[source] IdentityError),
    #[error("root certificate {index} is not a usable trust anchor")]
    Root {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("no trusted root certificates were given")]
    NoRoots,
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider of all mesh TLS (ring); every configuration is restricted to TLS 1.3.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A service's leaf: its certificate chain (leaf, intermediate, and during a root rotation the
/// cross-signed new root) with the private key, and the identity its URI SAN names.
#[derive(Debug)]
pub struct LeafCert {
    key: Arc<CertifiedKey>,
    id: SpiffeId,
}

impl LeafCert {
    /// Reads `CertPEM` (the chain, leaf first) and `PrivateKeyPEM` (PKCS#8, SEC1 or PKCS#1) and
    /// checks that the key belongs to the leaf and that the leaf names a service.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<LeafCert, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "leaf certificate",
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::EmptyChain);
        }
        let id = peer_identity(&chain).map_err(TlsError::LeafIdentity)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "private key",
            reason: e.to_string(),
        })?;
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Key)?;
        Ok(LeafCert {
            key: Arc::new(key),
            id,
        })
    }

    /// The identity this leaf proves.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }
}

/// The CA roots peers' chains must end in, and the trust domain their identities must be in.
pub struct TrustedRoots {
    trust_domain: String,
    store: Arc<RootCertStore>,
    /// webpki's client-certificate path validation for exactly these roots, built once.
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedRoots")
            .field("trust_domain", &self.trust_domain)
            .field("roots", &self.store.len())
            .finish()
    }
}

impl TrustedRoots {
    /// `trust_domain` is the roots response's `TrustDomain`; each of `root_pems` (its `RootCert`s)
    /// may hold one or more certificates, all of which become trust anchors.
    pub fn from_pem(
        trust_domain: &str,
        root_pems: &[impl AsRef<str>],
    ) -> Result<TrustedRoots, TlsError> {
        let mut store = RootCertStore::empty();
        let mut index = 0;
        for pem in root_pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_ref().as_bytes()) {
                let cert = cert.map_err(|e| TlsError::Pem {
                    what: "root certificate",
                    reason: e.to_string(),
                })?;
                store
                    .add(cert)
                    .map_err(|source| TlsError::Root { index, source })?;
                index += 1;
            }
        }
        if store.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let store = Arc::new(store);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(store.clone(), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(TrustedRoots {
            // SPIFFE trust domains compare case-insensitively; `SpiffeId::parse` lowercases.
            trust_domain: trust_domain.to_ascii_lowercase(),
            store,
            client_verifier,
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// How many trust anchors there are.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

/// What one handshake uses: replaced whole, never mutated.
#[derive(Debug)]
struct Material {
    leaf: Arc<LeafCert>,
    roots: Arc<TrustedRoots>,
}

/// The slot every resolver and verifier reads at handshake time.
#[derive(Debug)]
struct Current(RwLock<Arc<Material>>);

impl Current {
    fn get(&self) -> Arc<Material> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&Material) -> Material) {
        let mut slot = self.0.write().unwrap_or_else(PoisonError::into_inner);
        *slot = Arc::new(f(&slot));
    }
}

/// A service's mesh identity as the sidecar currently holds it: leaf and trusted roots, both
/// replaceable at any time. Clones share the same slot.
#[derive(Debug, Clone)]
pub struct Identity {
    current: Arc<Current>,
    /// One client configuration per expected server identity; their verifiers read `current`,
    /// so they never need rebuilding.
    client_configs: Arc<ClientConfigs>,
}

/// Client configurations by expected (service, datacenter).
type ClientConfigs = Mutex<HashMap<(String, String), Arc<ClientConfig>>>;

impl Identity {
    pub fn new(leaf: LeafCert, roots: TrustedRoots) -> Identity {
        Identity {
            current: Arc::new(Current(RwLock::new(Arc::new(Material {
                leaf: Arc::new(leaf),
                roots: Arc::new(roots),
            })))),
            client_configs: Arc::default(),
        }
    }

    /// A new leaf (renewal, or after a root rotation) for the next handshakes, both directions.
    pub fn set_leaf(&self, leaf: LeafCert) {
        let leaf = Arc::new(leaf);
        self.current.update(|m| Material {
            leaf,
            roots: m.roots.clone(),
        });
    }

    /// New trusted roots for the next handshakes, both directions.
    pub fn set_roots(&self, roots: TrustedRoots) {
        let roots = Arc::new(roots);
        self.current.update(|m| Material {
            leaf: m.leaf.clone(),
            roots,
        });
    }

    /// The identity of the current leaf.
    pub fn id(&self) -> SpiffeId {
        self.current.get().leaf.id.clone()
    }

    pub fn trust_domain(&self) -> String {
        self.current.get().roots.trust_domain.clone()
    }

    /// The configuration of an inbound listener: TLS 1.3, a client certificate required and
    /// chained to the current roots, naming a service of the current trust domain; the current
    /// leaf presented.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(TLS13_ONLY)
            .expect("ring's provider supports TLS 1.3")
            .with_client_cert_verifier(Arc::new(verify::MeshClientVerifier::new(
                self.current.clone(),
                provider(),
            )))
            .with_cert_resolver(Arc::new(CurrentLeaf(self.current.clone())));
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Arc::new(config)
    }

    /// The configuration for connecting to an instance of `service` in `datacenter`: its chain
    /// must end in the current roots and its URI SAN must be exactly
    /// `spiffe://<trust-domain>/ns/default/dc/<datacenter>/svc/<service>`; the current leaf is
    /// presented as the client certificate.
    pub fn client_config(&self, service: &str, datacenter: &str) -> Arc<ClientConfig> {
        let mut configs = self
            .client_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (service.to_owned(), datacenter.to_owned());
        if let Some(config) = configs.get(&key) {
            return config.clone();
        }
        let verifier = verify::UpstreamVerifier::new(
            self.current.clone(),
            service.to_owned(),
            datacenter.to_owned(),
            provider(),
        );
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(TLS13_ONLY)
            .expect("ring's provider supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(CurrentLeaf(self.current.clone())));
        config.resumption = Resumption::disabled();
        let config = Arc::new(config);
        configs.insert(key, config.clone());
        config
    }

    /// The server name to send for an instance of `service`: Consul's SNI for it
    /// (`<service>.default.<dc>.internal.<trust-domain>`), which identifies the destination to
    /// anything routing on SNI. Verification never looks at it. A name that is not a valid DNS
    /// name becomes an IP address server name, for which rustls sends no SNI.
    pub fn server_name(&self, service: &str, datacenter: &str) -> ServerName<'static> {
        let sni = format!(
            "{service}.default.{datacenter}.internal.{}",
            self.current.get().roots.trust_domain
        );
        ServerName::try_from(sni).unwrap_or(ServerName::IpAddress(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
        ))
    }
}

/// Presents the current leaf, as server and as client.
#[derive(Debug)]
struct CurrentLeaf(Arc<Current>);

impl rustls::server::ResolvesServerCert for CurrentLeaf {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get().leaf.key.clone())
    }
}

impl rustls::client::ResolvesClientCert for CurrentLeaf {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get().leaf.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
