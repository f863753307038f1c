//! Agent TLS for tests: certificates made with rcgen at test time (a CA, server and client
//! certificates in a temp dir, as `mesh-client tls cert create` would make them), and an
//! HTTPS connector for [`Http`] that trusts a given CA and may present a client certificate.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::Http;

/// A CA and the certificates it signed, as PEM files in a temp dir.
pub struct TestCerts {
    dir: tempfile::TempDir,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
    /// The datacenter and domain server certificates name (`server.<dc>.<domain>`).
    datacenter: String,
    domain: String,
}

impl std::fmt::Debug for TestCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCerts")
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// A new CA (`ca.pem`) for servers named `server.<datacenter>.<domain>`.
    pub fn new(datacenter: &str, domain: &str) -> anyhow::Result<TestCerts> {
        let dir = tempfile::tempdir()?;
        let ca_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Test Agent CA {}", dir.path().display()),
        );
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key)?;
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem())?;
        std::fs::write(dir.path().join("ca-key.pem"), ca_key.serialize_pem())?;
        Ok(TestCerts {
            dir,
            ca_cert,
            ca_key,
            datacenter: datacenter.to_owned(),
            domain: domain.to_owned(),
        })
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA's private key (PKCS #8 PEM), for servers that sign agent certificates.
    pub fn ca_key_file(&self) -> PathBuf {
        self.dir.path().join("ca-key.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for `names` (DNS) and `ips`, usable by servers and clients alike, written
    /// as `<file>.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, names: &[String], ips: &[IpAddr]) -> anyhow::Result<CertFiles> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| file.to_owned()),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key)?;
        let files = CertFiles {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }

    /// A server certificate: `server.<dc>.<domain>`, `localhost` and `ips`.
    pub fn server(&self, file: &str, ips: &[IpAddr]) -> anyhow::Result<CertFiles> {
        let names = [
            format!("server.{}.{}", self.datacenter, self.domain),
            "localhost".to_owned(),
        ];
        self.issue(file, &names, ips)
    }

    /// A client agent's certificate: `client.<dc>.<domain>` and `localhost`.
    pub fn client(&self, file: &str) -> anyhow::Result<CertFiles> {
        let names = [
            format!("client.{}.{}", self.datacenter, self.domain),
            "localhost".to_owned(),
        ];
        self.issue(file, &names, &[])
    }
}

/// A rustls client configuration trusting the CA in `ca_file`, presenting `client` if given.
pub fn client_config(
    ca_file: &Path,
    client: Option<&CertFiles>,
) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading {}", ca_file.display()))?
    {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(files) => {
            let chain =
                CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(&files.key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// hyper's connector for `https://` URIs: TCP, then TLS with a fixed configuration; the name
/// checked is the URI's host (an IP address or a DNS name).
#[derive(Clone)]
pub struct HttpsConnector {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for HttpsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpsConnector")
    }
}

impl HttpsConnector {
    pub fn new(config: rustls::ClientConfig) -> Self {
        HttpsConnector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

impl tower::Service<Uri> for HttpsConnector {
    type Response = TokioIo<TlsConnection>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other("no host in the URI"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(TlsConnection(stream)))
        })
    }
}

/// A client TLS connection, as hyper's client wants it.
#[derive(Debug)]
pub struct TlsConnection(tokio_rustls::client::TlsStream<TcpStream>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Http<HttpsConnector> {
    /// An HTTPS client for `https://<host>:<port>` (`host` is what the server's certificate
    /// must name: an IP address or a DNS name).
    pub fn https(host: &str, port: u16, config: rustls::ClientConfig) -> Self {
        Http {
            base: format!("https://{host}:{port}"),
            client: Client::builder(TokioExecutor::new()).build(HttpsConnector::new(config)),
        }
    }
}
