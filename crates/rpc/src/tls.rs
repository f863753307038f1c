//! Agent TLS: rustls configurations (ring) built from the agent's PEM files (`tls.defaults`
//! in the configuration), for the HTTPS API and for server RPC, and the stream server RPC runs
//! over, plaintext or TLS.
//!
//! Server RPC makes one choice per agent ([`config::Tls::rpc_enabled`]): every connection it
//! accepts and every connection it dials is TLS, or none is. Consul instead reads a first byte
//! (`RPCTLS`) on each connection; mesh's server RPC is not wire-compatible with Consul's, so the
//! simpler all-or-nothing rule holds here. The dialing side is process-wide
//! ([`install_dialer`]): one agent process has one identity, and every path that dials a
//! server (raft, forwarding, formation, recovery, client agents) goes through [`crate::connect`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

mod auto_encrypt;

pub use auto_encrypt::{
    csr, request_agent_cert, AgentCert, AgentCertRequest, AgentSigner, Authorize, AGENT_CERT_DAYS,
};

/// How long a TLS handshake may take, on either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up from the configuration; every error names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {}: {reason}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Missing(&'static str),
    #[error("building the TLS configuration: {0}")]
    Build(String),
}

fn file_error(what: &'static str, path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        what,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The certificate chain in a PEM file, leaf first.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "certificate file";
    let pem = std::fs::read(path).map_err(|e| file_error(WHAT, path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(WHAT, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(WHAT, path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "key file";
    let pem = std::fs::read(path).map_err(|e| file_error(WHAT, path, e))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| file_error(WHAT, path, format!("no usable private key: {e}")))
}

/// The trust anchors in a CA PEM file.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    const WHAT: &str = "CA file";
    let certs = read_certs(path).map_err(|err| match err {
        TlsError::File { path, reason, .. } => TlsError::File {
            what: WHAT,
            path,
            reason,
        },
        other => other,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| file_error(WHAT, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// ring, with the TLS 1.2 suites restricted to `tls_cipher_suites` when it is set.
fn provider(tls: &config::Tls) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|suite| {
            suite.version() == &rustls::version::TLS13 || {
                let name = format!("{:?}", suite.suite());
                tls.cipher_suites.contains(&name)
            }
        });
    }
    Arc::new(provider)
}

const TLS12_AND_13: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(tls: &config::Tls) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match tls.min_version {
        config::TlsVersion::Tls12 => TLS12_AND_13,
        config::TlsVersion::Tls13 => TLS13_ONLY,
    }
}

const NO_CERT: &str = "TLS needs a certificate: set tls.defaults.cert_file and key_file";
const NO_CA: &str = "verifying certificates needs a CA: set tls.defaults.ca_file";

/// The configuration of a TLS listener with this agent's certificate; with `verify_clients`,
/// only clients with a certificate chaining to `ca_file` complete the handshake (or, with
/// `allow_anonymous`, clients with no certificate too, which the caller must then restrict).
pub fn server_config(
    tls: &config::Tls,
    verify_clients: bool,
    allow_anonymous: bool,
) -> Result<ServerConfig, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) else {
        return Err(TlsError::Missing(NO_CERT));
    };
    let chain = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    let provider = provider(tls);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(tls))
        .map_err(|e| TlsError::Build(e.to_string()))?;
    let builder = if verify_clients {
        let ca_file = tls.ca_file.as_ref().ok_or(TlsError::Missing(NO_CA))?;
        let roots = Arc::new(read_roots(ca_file)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
        let verifier = if allow_anonymous {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| file_error("CA file", ca_file, e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        file_error(
            "key file",
            key_file,
            format!("cannot be used with {}: {e}", cert_file.display()),
        )
    })
}

/// The configuration of a TLS client that trusts `ca_file` and presents this agent's
/// certificate when it has one. Without `check_name`, the server's certificate must chain to
/// the CA but may carry any name (Consul's `verify_outgoing` without `verify_server_hostname`).
pub fn client_config(tls: &config::Tls, check_name: bool) -> Result<ClientConfig, TlsError> {
    let ca_file = tls.ca_file.as_ref().ok_or(TlsError::Missing(NO_CA))?;
    let roots = Arc::new(read_roots(ca_file)?);
    let provider = provider(tls);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| file_error("CA file", ca_file, e))?;
    let verifier: Arc<dyn ServerCertVerifier> = if check_name {
        webpki
    } else {
        Arc::new(AnyName(webpki))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(tls))
        .map_err(|e| TlsError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => builder
            .with_client_auth_cert(read_certs(cert_file)?, read_key(key_file)?)
            .map_err(|e| {
                file_error(
                    "key file",
                    key_file,
                    format!("cannot be used with {}: {e}", cert_file.display()),
                )
            }),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Whether `cert_pem` (a leaf) chains to the CA in `ca_pem`, as a client certificate.
pub(crate) fn verify_chain(cert_pem: &str, ca_pem: &str) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// webpki's chain verification, with any name accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The name a server's certificate must carry for server RPC: `server.<datacenter>.<domain>`,
/// as Consul checks and `mesh-client tls cert create -server` writes.
pub fn server_name(datacenter: &str, domain: &str) -> String {
    format!("server.{datacenter}.{domain}")
}

/// How this agent dials server RPC over TLS.
#[derive(Clone)]
pub struct RpcDialer {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for RpcDialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcDialer")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Server RPC's TLS for one agent: the dialer, and on servers the listener's configuration.
#[derive(Debug, Clone)]
pub struct RpcTls {
    pub dialer: RpcDialer,
    /// Present on servers: what the RPC listener accepts with.
    pub acceptor: Option<ServerTls>,
}

/// A server's RPC listener TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// `server.<datacenter>.<domain>`: a peer whose certificate names it is a server; any
    /// other certified peer is an agent ([`PeerRole`]).
    pub server_name: String,
    /// `verify_incoming` with `auto_encrypt.allow_tls`: clients without a certificate complete
    /// the handshake, and may then only ask for one.
    pub anonymous_sign_only: bool,
    /// `auto_encrypt.allow_tls`: signs client agents' certificates.
    pub signer: Option<Arc<AgentSigner>>,
}

impl RpcTls {
    /// Server RPC's TLS as the configuration asks, or `None` when server RPC is plaintext.
    pub fn from_config(config: &config::Config) -> Result<Option<RpcTls>, TlsError> {
        let tls = &config.tls;
        if !tls.rpc_enabled() {
            return Ok(None);
        }
        let client = client_config(tls, tls.verify_server_hostname)?;
        let name = server_name(&config.datacenter, &config.dns.domain);
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| TlsError::Build(format!("server name {name:?}: {e}")))?;
        let acceptor = if config.server {
            let anonymous_sign_only = tls.rpc_verify_incoming && tls.auto_encrypt.allow_tls;
            Some(ServerTls {
                config: Arc::new(server_config(
                    tls,
                    tls.rpc_verify_incoming,
                    anonymous_sign_only,
                )?),
                anonymous_sign_only,
                signer: None,
                server_name: name.clone(),
            })
        } else {
            None
        };
        Ok(Some(RpcTls {
            dialer: RpcDialer {
                connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
                server_name,
            },
            acceptor,
        }))
    }
}

fn dialer_slot() -> &'static RwLock<Option<RpcDialer>> {
    static DIALER: OnceLock<RwLock<Option<RpcDialer>>> = OnceLock::new();
    DIALER.get_or_init(|| RwLock::new(None))
}

/// Makes every server RPC connection this process dials TLS (`Some`) or plaintext (`None`,
/// the default). Set once by the agent at start, before it dials anything.
pub fn install_dialer(dialer: Option<RpcDialer>) {
    *dialer_slot().write().expect("RPC dialer poisoned") = dialer;
}

pub(crate) fn dialer() -> Option<RpcDialer> {
    dialer_slot().read().expect("RPC dialer poisoned").clone()
}

impl RpcDialer {
    /// The TLS handshake over a connected socket, bounded by [`HANDSHAKE_TIMEOUT`].
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> io::Result<Stream> {
        let connect = self.connector.connect(self.server_name.clone(), tcp);
        let tls = bounded_handshake(connect).await?;
        Ok(Stream::Client(Box::new(tls)))
    }
}

/// The TLS handshake of an accepted server RPC connection, bounded by [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn accept(acceptor: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Stream> {
    let accept = tokio_rustls::TlsAcceptor::from(acceptor.clone()).accept(tcp);
    let tls = bounded_handshake(accept).await?;
    Ok(Stream::Server(Box::new(tls)))
}

/// A TLS handshake given [`HANDSHAKE_TIMEOUT`] to finish; its errors say it was the handshake.
async fn bounded_handshake<S>(
    handshake: impl std::future::Future<Output = io::Result<S>>,
) -> io::Result<S> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(err)) => Err(io::Error::new(
            err.kind(),
            format!("TLS handshake failed: {err}"),
        )),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// A server RPC connection: plaintext TCP, or TLS on either side. The framing reads and writes
/// it without knowing which.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Who is at the other end of an accepted server RPC connection, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// A server (its certificate names `server.<dc>.<domain>`), or any peer of plaintext RPC,
    /// where the network is trusted.
    Server,
    /// A client agent: a certificate from the CA that does not name a server.
    Agent,
    /// A TLS client without a certificate (let through for auto-encrypt).
    Anonymous,
}

impl Stream {
    /// The role of an accepted connection's peer: [`PeerRole::Server`] for plaintext and for
    /// the dialing side (nothing to prove there).
    pub fn peer_role(&self, server_name: &str) -> PeerRole {
        let Stream::Server(tls) = self else {
            return PeerRole::Server;
        };
        match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            None => PeerRole::Anonymous,
            Some(leaf) if names_dns(leaf, server_name) => PeerRole::Server,
            Some(_) => PeerRole::Agent,
        }
    }
}

/// Whether the certificate's subject alternative names include DNS name `name`.
fn names_dns(cert: &CertificateDer<'_>, name: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return false;
    };
    san.value
        .general_names
        .iter()
        .any(|n| matches!(n, GeneralName::DNSName(dns) if dns.eq_ignore_ascii_case(name)))
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
