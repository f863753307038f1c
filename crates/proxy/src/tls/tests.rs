//! The verifiers driven directly, without sockets: chains from the `ca` crate and, for shapes
//! it does not issue (name constraints, foreign trust domains), from rcgen.

use std::sync::Arc;
use std::time::SystemTime;

use ca::{CaConfig, CaState, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use tokio_rustls::rustls;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::verify::{IdentityError, MeshClientVerifier, UpstreamVerifier};
use super::{peer_identity, provider, Identity, LeafCert, TlsError, TrustedRoots};

const CLUSTER: &str = "11111111-2222-3333-4444-555555555555";
const FOREIGN: &str = "99999999-8888-7777-6666-555555555555";

fn ca(cluster: &str) -> CaState {
    CaState::bootstrap(cluster, CaConfig::default(), SystemTime::now()).expect("bootstrap")
}

/// `(CertPEM, PrivateKeyPEM)` for `service` in dc1, as the agent would hand them out.
fn leaf_pem(ca: &mut CaState, service: &str) -> (String, String) {
    let (key, csr) =
        ca::generate_key_and_csr(&ca.trust_domain, "dc1", service, &[]).expect("key and CSR");
    let leaf = ca
        .sign_leaf(&csr, service, "dc1", SystemTime::now())
        .expect("sign");
    (leaf.cert_pem, key)
}

fn leaf(ca: &mut CaState, service: &str) -> LeafCert {
    let (cert, key) = leaf_pem(ca, service);
    LeafCert::from_pem(&cert, &key).expect("leaf")
}

fn roots(ca: &CaState) -> TrustedRoots {
    TrustedRoots::from_pem(&ca.trust_domain, &ca.trusted_roots()).expect("roots")
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM chain")
}

/// What a server holding `identity` makes of a client presenting `pem`.
fn client_check(identity: &Identity, pem: &str) -> Result<(), rustls::Error> {
    let chain = chain(pem);
    MeshClientVerifier::new(identity.current.clone(), provider())
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .map(|_| ())
}

/// What a client holding `identity` and expecting `service` makes of a server presenting `pem`.
fn server_check(identity: &Identity, service: &str, pem: &str) -> Result<(), rustls::Error> {
    let chain = chain(pem);
    let name = ServerName::try_from("ignored.example").expect("name");
    UpstreamVerifier::new(
        identity.current.clone(),
        service.to_owned(),
        "dc1".to_owned(),
        provider(),
    )
    .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
    .map(|_| ())
}

fn identity_error(e: rustls::Error) -> IdentityError {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other
            .0
            .downcast_ref::<IdentityError>()
            .cloned()
            .unwrap_or_else(|| panic!("not an identity error: {other:?}")),
        other => panic!("not an identity error: {other:?}"),
    }
}

#[test]
fn a_leaf_from_the_agent_carries_its_service_identity() {
    let mut ca = ca(CLUSTER);
    let web = leaf(&mut ca, "web");
    assert_eq!(web.id(), &SpiffeId::service(&ca.trust_domain, "dc1", "web"));
}

#[test]
fn unusable_pem_is_refused_with_the_reason() {
    let mut ca = ca(CLUSTER);
    let (cert, key) = leaf_pem(&mut ca, "web");
    let (_, other_key) = leaf_pem(&mut ca, "web");
    assert!(matches!(
        LeafCert::from_pem(&cert, &other_key),
        Err(TlsError::Key(_))
    ));
    assert!(matches!(
        LeafCert::from_pem("", &key),
        Err(TlsError::EmptyChain)
    ));
    assert!(matches!(
        LeafCert::from_pem(&cert, "not a key"),
        Err(TlsError::Pem { .. })
    ));
    // A CA certificate names the trust domain, not a service.
    let root = &ca.trusted_roots()[0];
    assert!(matches!(
        LeafCert::from_pem(root, &key),
        Err(TlsError::LeafIdentity(IdentityError::NotService(_)))
    ));
    assert!(matches!(
        TrustedRoots::from_pem(&ca.trust_domain, &["no PEM here"]),
        Err(TlsError::NoRoots)
    ));
}

#[test]
fn peers_of_the_mesh_verify_in_both_directions() {
    let mut ca = ca(CLUSTER);
    let (db_pem, _) = leaf_pem(&mut ca, "db");
    let (web_pem, _) = leaf_pem(&mut ca, "web");
    let web = Identity::new(leaf(&mut ca, "web"), roots(&ca));
    let db = Identity::new(leaf(&mut ca, "db"), roots(&ca));

    server_check(&web, "db", &db_pem).expect("web accepts db as db");
    client_check(&db, &web_pem).expect("db accepts web as a client");
}

#[test]
fn a_server_with_another_identity_is_refused() {
    let mut ca = ca(CLUSTER);
    let (api_pem, _) = leaf_pem(&mut ca, "api");
    let web = Identity::new(leaf(&mut ca, "web"), roots(&ca));
    let err = identity_error(server_check(&web, "db", &api_pem).expect_err("api is not db"));
    assert_eq!(
        err,
        IdentityError::Mismatch {
            expected: SpiffeId::service(&ca.trust_domain, "dc1", "db").uri(),
            presented: SpiffeId::service(&ca.trust_domain, "dc1", "api").uri(),
        }
    );
    // The datacenter is part of the identity.
    let other_dc = UpstreamVerifier::new(
        web.current.clone(),
        "api".to_owned(),
        "dc2".to_owned(),
        provider(),
    );
    let chain = chain(&api_pem);
    let name = ServerName::try_from("api").expect("name");
    assert!(other_dc
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .is_err());
}

#[test]
fn certificates_of_another_ca_are_refused_both_ways() {
    let mut ca = ca(CLUSTER);
    let mut foreign = self::ca(FOREIGN);
    let (foreign_web, _) = leaf_pem(&mut foreign, "web");
    let (foreign_db, _) = leaf_pem(&mut foreign, "db");
    let web = Identity::new(leaf(&mut ca, "web"), roots(&ca));

    let refused = |result: Result<(), rustls::Error>| match result {
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {}
        other => panic!("expected UnknownIssuer, got {other:?}"),
    };
    refused(client_check(&web, &foreign_web));
    refused(server_check(&web, "db", &foreign_db));
}

#[test]
fn roots_and_leaf_reload_for_the_next_verification() {
    let mut ca = ca(CLUSTER);
    let mut foreign = self::ca(FOREIGN);
    let (foreign_web, _) = leaf_pem(&mut foreign, "web");
    let db = Identity::new(leaf(&mut ca, "db"), roots(&ca));
    assert!(client_check(&db, &foreign_web).is_err());

    db.set_roots(roots(&foreign));
    client_check(&db, &foreign_web).expect("the new roots are used");
    assert_eq!(db.trust_domain(), foreign.trust_domain);

    // A new leaf with the same identity replaces the old one.
    let before = db.current.get().leaf.key.clone();
    db.set_leaf(leaf(&mut ca, "db"));
    assert!(!Arc::ptr_eq(&before, &db.current.get().leaf.key));
    assert_eq!(db.id(), SpiffeId::service(&ca.trust_domain, "dc1", "db"));
}

#[test]
fn after_a_root_rotation_the_cross_signed_chain_reaches_the_old_root() {
    let mut ca = ca(CLUSTER);
    let old_roots = roots(&ca);
    ca.rotate(SystemTime::now()).expect("rotate");
    let (new_db, _) = leaf_pem(&mut ca, "db");
    let (new_web, _) = leaf_pem(&mut ca, "web");
    assert_eq!(
        chain(&new_db).len(),
        3,
        "leaf, intermediate, cross-signed root"
    );

    let web = Identity::new(leaf(&mut ca, "web"), old_roots);
    server_check(&web, "db", &new_db).expect("the client trusts only the old root");
    client_check(&web, &new_web).expect("the server trusts only the old root");

    // Without the cross-signed certificate the new chain does not reach the old root.
    let without_cross: String = new_db
        .split_inclusive("-----END CERTIFICATE-----\n")
        .take(2)
        .collect();
    assert_eq!(chain(&without_cross).len(), 2);
    assert!(server_check(&web, "db", &without_cross).is_err());
}

/// A CA shaped like Consul's own: the root carries a permitted DNS subtree for the trust
/// domain. webpki applies DNS constraints to DNS names only, so URI-SAN leaves pass.
struct RcgenCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl RcgenCa {
    fn new(trust_domain: &str, constrained: bool) -> RcgenCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Consul CA 7");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.subject_alt_names = vec![uri(&format!("spiffe://{trust_domain}"))];
        if constrained {
            params.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![GeneralSubtree::DnsName(trust_domain.to_owned())],
                excluded_subtrees: Vec::new(),
            });
        }
        let cert = params.self_signed(&key).expect("root");
        RcgenCa { cert, key }
    }

    /// A leaf with the given URI SANs (and DNS SANs).
    fn leaf(&self, uris: &[&str], dns: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "svc");
        params.subject_alt_names = uris.iter().map(|u| uri(u)).collect();
        for name in dns {
            params.subject_alt_names.push(SanType::DnsName(
                (*name).to_owned().try_into().expect("DNS name"),
            ));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn identity(&self, trust_domain: &str, service: &str) -> Identity {
        let id = format!("spiffe://{trust_domain}/ns/default/dc/dc1/svc/{service}");
        let (cert, key) = self.leaf(&[&id], &[]);
        let roots = TrustedRoots::from_pem(trust_domain, &[self.cert.pem()]).expect("roots");
        Identity::new(LeafCert::from_pem(&cert, &key).expect("leaf"), roots)
    }
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.to_owned().try_into().expect("ASCII URI"))
}

#[test]
fn a_dns_name_constrained_root_like_consuls_is_accepted() {
    let td = "11111111.consul";
    let ca = RcgenCa::new(td, true);
    let web = ca.identity(td, "web");
    let (db_pem, _) = ca.leaf(&[&format!("spiffe://{td}/ns/default/dc/dc1/svc/db")], &[]);
    server_check(&web, "db", &db_pem).expect("URI SANs are outside DNS constraints");
    client_check(&web, &db_pem).expect("the same for client certificates");

    // DNS SANs, though, are held to the constraint.
    let (outside, _) = ca.leaf(
        &[&format!("spiffe://{td}/ns/default/dc/dc1/svc/db")],
        &["db.example.com"],
    );
    assert!(server_check(&web, "db", &outside).is_err());
}

#[test]
fn a_verified_certificate_must_name_exactly_one_service_of_the_trust_domain() {
    let td = "11111111.mesh";
    let ca = RcgenCa::new(td, false);
    let db = ca.identity(td, "db");

    let (other_domain, _) = ca.leaf(&["spiffe://elsewhere.mesh/ns/default/dc/dc1/svc/web"], &[]);
    assert_eq!(
        identity_error(client_check(&db, &other_domain).expect_err("foreign trust domain")),
        IdentityError::TrustDomain {
            expected: td.to_owned(),
            presented: "elsewhere.mesh".to_owned(),
        }
    );
    let (none, _) = ca.leaf(&[], &["web.example"]);
    assert_eq!(
        identity_error(client_check(&db, &none).expect_err("no URI SAN")),
        IdentityError::UriSanCount(0)
    );
    let web = format!("spiffe://{td}/ns/default/dc/dc1/svc/web");
    let api = format!("spiffe://{td}/ns/default/dc/dc1/svc/api");
    let (two, _) = ca.leaf(&[&web, &api], &[]);
    assert_eq!(
        identity_error(client_check(&db, &two).expect_err("two identities")),
        IdentityError::UriSanCount(2)
    );
    let (agent, _) = ca.leaf(&[&format!("spiffe://{td}/agent/client/dc/dc1/id/n1")], &[]);
    assert!(matches!(
        identity_error(client_check(&db, &agent).expect_err("not a service")),
        IdentityError::NotService(_)
    ));
    let (ok, _) = ca.leaf(&[&web], &[]);
    client_check(&db, &ok).expect("one service of the trust domain");
    assert_eq!(
        peer_identity(&chain(&ok)).expect("identity"),
        SpiffeId::parse(&web).expect("spiffe id")
    );
}

/// Moves everything `from` has to send into `to`, and lets `to` process it.
fn transfer(
    from: &mut rustls::ConnectionCommon<impl rustls::SideData>,
    to: &mut rustls::ConnectionCommon<impl rustls::SideData>,
) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write to memory");
    }
    let mut slice = wire.as_slice();
    while !slice.is_empty() {
        to.read_tls(&mut slice).expect("read from memory");
        to.process_new_packets()?;
    }
    Ok(())
}

/// Handshakes in memory; returns the server side's error, if any.
fn handshake(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        transfer(client, server)?;
        // The client's view of the server's answer is not what these tests look at.
        let _ = transfer(server, client);
    }
    panic!("the handshake did not finish");
}

#[test]
fn mesh_traffic_is_tls_1_3_only() {
    let mut ca = ca(CLUSTER);
    let db = Identity::new(leaf(&mut ca, "db"), roots(&ca));
    let web = Identity::new(leaf(&mut ca, "web"), roots(&ca));

    let mut client =
        rustls::ClientConnection::new(web.client_config("db", "dc1"), web.server_name("db", "dc1"))
            .expect("client");
    let mut server = rustls::ServerConnection::new(db.server_config()).expect("server");
    handshake(&mut client, &mut server).expect("a mesh handshake");
    assert_eq!(
        server.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let presented = server.peer_certificates().expect("a client certificate");
    assert_eq!(peer_identity(presented).expect("identity"), web.id());

    // A client that offers only TLS 1.2 finds no common version.
    let tls12 = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2 is built in")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UpstreamVerifier::new(
            web.current.clone(),
            "db".to_owned(),
            "dc1".to_owned(),
            provider(),
        )))
        .with_client_cert_resolver(Arc::new(super::CurrentLeaf(web.current.clone())));
    let mut client = rustls::ClientConnection::new(Arc::new(tls12), web.server_name("db", "dc1"))
        .expect("client");
    let mut server = rustls::ServerConnection::new(db.server_config()).expect("server");
    assert!(matches!(
        handshake(&mut client, &mut server),
        Err(rustls::Error::PeerIncompatible(_))
    ));
}
