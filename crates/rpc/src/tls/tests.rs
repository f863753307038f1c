use std::net::{IpAddr, Ipv4Addr};

use test_support::tls::{CertFiles, TestCerts};
use tokio::net::TcpListener;

use super::*;
use crate::frame;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// RPC TLS as a datacenter's agents set it: mutual, with the server name checked.
fn tls(ca: &TestCerts, files: &CertFiles) -> config::Tls {
    config::Tls {
        ca_file: Some(ca.ca_file()),
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
        rpc_verify_incoming: true,
        verify_outgoing: true,
        verify_server_hostname: true,
        ..config::Tls::default()
    }
}

fn agent(tls: config::Tls, server: bool) -> config::Config {
    let mut config =
        config::load(&[], &[], &config::Overrides::default()).expect("the defaults are valid");
    config.server = server;
    config.tls = tls;
    config
}

/// One frame each way between a client agent set up with `client` and a server set up with
/// `server`; the error text of whichever side failed first.
async fn round_trip(server: config::Tls, client: config::Tls) -> Result<String, String> {
    let acceptor = RpcTls::from_config(&agent(server, true))
        .expect("server TLS")
        .expect("TLS is on")
        .acceptor
        .expect("a server accepts")
        .config;
    let dialer = RpcTls::from_config(&agent(client, false))
        .expect("client TLS")
        .expect("TLS is on")
        .dialer;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("local address");
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut stream = accept(&acceptor, tcp).await.map_err(|e| e.to_string())?;
        let ping: Option<String> = frame::read(&mut stream).await.map_err(|e| e.to_string())?;
        frame::write(&mut stream, &format!("{} pong", ping.unwrap_or_default()))
            .await
            .map_err(|e| e.to_string())
    });
    let calling = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut stream = dialer.handshake(tcp).await.map_err(|e| e.to_string())?;
        frame::write(&mut stream, &"ping".to_owned())
            .await
            .map_err(|e| e.to_string())?;
        frame::read::<_, String>(&mut stream)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "closed".to_owned())
    };
    let answer = calling.await;
    let served = serving.await.expect("the server task");
    match (answer, served) {
        (Ok(answer), Ok(())) => Ok(answer),
        (Err(client), Err(server)) => Err(format!("client: {client}; server: {server}")),
        (Err(client), Ok(())) => Err(format!("client: {client}")),
        (Ok(_), Err(server)) => Err(format!("server: {server}")),
    }
}

#[tokio::test]
async fn mutual_tls_with_certificates_from_the_ca() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let server = ca.server("server", &[LOCALHOST]).unwrap();
    let client = ca.client("client").unwrap();
    assert_eq!(
        round_trip(tls(&ca, &server), tls(&ca, &client)).await,
        Ok("ping pong".to_owned())
    );
    // TLS 1.3 only on one side still meets TLS 1.2-or-later on the other.
    let mut tls13 = tls(&ca, &client);
    tls13.min_version = config::TlsVersion::Tls13;
    assert_eq!(
        round_trip(tls(&ca, &server), tls13).await,
        Ok("ping pong".to_owned())
    );
}

#[tokio::test]
async fn the_server_name_is_checked_only_with_verify_server_hostname() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    // A certificate from the CA, but not a server's of this datacenter.
    let stray = ca
        .issue("stray", &["server.dc2.mesh".to_owned()], &[LOCALHOST])
        .unwrap();
    let client = ca.client("client").unwrap();
    let refused = round_trip(tls(&ca, &stray), tls(&ca, &client)).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("not valid for name \"server.dc1.mesh\"")),
        "{refused:?}"
    );
    let mut chain_only = tls(&ca, &client);
    chain_only.verify_server_hostname = false;
    assert_eq!(
        round_trip(tls(&ca, &stray), chain_only).await,
        Ok("ping pong".to_owned())
    );
}

#[tokio::test]
async fn peers_without_a_certificate_from_the_ca_are_refused() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let other = TestCerts::new("dc1", "mesh").unwrap();
    let server = ca.server("server", &[LOCALHOST]).unwrap();
    let client = ca.client("client").unwrap();

    // A client with no certificate.
    let mut anonymous = tls(&ca, &client);
    anonymous.cert_file = None;
    anonymous.key_file = None;
    let refused = round_trip(tls(&ca, &server), anonymous).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("server: TLS handshake failed")),
        "{refused:?}"
    );

    // A client whose certificate another CA signed.
    let foreign_client = other.client("client").unwrap();
    let mut foreign = tls(&other, &foreign_client);
    foreign.ca_file = Some(ca.ca_file());
    let refused = round_trip(tls(&ca, &server), foreign).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("server: TLS handshake failed")),
        "{refused:?}"
    );

    // A server whose certificate another CA signed.
    let foreign_server = other.server("server", &[LOCALHOST]).unwrap();
    let mut rogue = tls(&other, &foreign_server);
    rogue.ca_file = Some(ca.ca_file());
    let refused = round_trip(rogue, tls(&ca, &client)).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("client: TLS handshake failed") && e.contains("UnknownIssuer")),
        "{refused:?}"
    );
}

#[test]
fn every_cipher_suite_the_configuration_accepts_is_one_rustls_has() {
    let all = rustls::crypto::ring::default_provider();
    let names: Vec<String> = all
        .cipher_suites
        .iter()
        .map(|suite| format!("{:?}", suite.suite()))
        .collect();
    for name in config::TLS_CIPHER_SUITES {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    let chosen = config::Tls {
        cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
        ..config::Tls::default()
    };
    let tls12: Vec<String> = provider(&chosen)
        .cipher_suites
        .iter()
        .filter(|suite| suite.version() == &rustls::version::TLS12)
        .map(|suite| format!("{:?}", suite.suite()))
        .collect();
    assert_eq!(tls12, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
}

#[test]
fn errors_name_the_file() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let server = ca.server("server", &[LOCALHOST]).unwrap();
    let other = ca.server("other", &[LOCALHOST]).unwrap();

    let mut missing = tls(&ca, &server);
    missing.cert_file = Some(ca.dir().join("nope.pem"));
    let err = server_config(&missing, true, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "certificate file {}: ",
            ca.dir().join("nope.pem").display()
        )),
        "{err}"
    );

    let mut not_a_cert = tls(&ca, &server);
    not_a_cert.ca_file = Some(server.key.clone());
    let err = server_config(&not_a_cert, true, false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "CA file {}: holds no CERTIFICATE block",
            server.key.display()
        )
    );

    let mut mismatched = tls(&ca, &server);
    mismatched.key_file = Some(other.key.clone());
    let err = server_config(&mismatched, false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "key file {}: cannot be used with {}",
            other.key.display(),
            server.cert.display()
        )),
        "{err}"
    );
}

#[test]
fn plaintext_when_the_configuration_asks_for_no_rpc_tls() {
    let config = agent(config::Tls::default(), true);
    assert!(RpcTls::from_config(&config).unwrap().is_none());
}

fn signer(ca: &TestCerts, authorize: Authorize) -> Result<AgentSigner, TlsError> {
    AgentSigner::from_files(&ca.ca_file(), &ca.ca_key_file(), "dc1", "mesh", authorize)
}

fn request(dns_san: Vec<String>) -> AgentCertRequest {
    let (csr_pem, _key) = csr("web-1", "dc1", "mesh").unwrap();
    AgentCertRequest {
        node: "web-1".into(),
        token: "secret".into(),
        csr_pem,
        dns_san,
        ip_san: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
    }
}

#[test]
fn auto_encrypt_signs_client_certificates_that_chain_to_the_agent_ca() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let signer = signer(&ca, Box::new(|_, _| Ok(()))).unwrap();
    let signed = signer.sign(&request(vec!["web.example".into()])).unwrap();
    verify_chain(&signed.cert_pem, &signed.ca_pem).unwrap();
    assert_eq!(
        signed.ca_pem,
        std::fs::read_to_string(ca.ca_file()).unwrap()
    );
    // A client's name, never a server's: it cannot pass verify_server_hostname.
    let der = CertificateDer::from_pem_slice(signed.cert_pem.as_bytes()).unwrap();
    let text = String::from_utf8_lossy(der.as_ref());
    assert!(text.contains("client.dc1.mesh") && text.contains("web.example"));
    assert!(!text.contains("server.dc1.mesh"));

    for name in ["server.dc1.mesh", "node-1.SERVER.dc1.mesh"] {
        assert_eq!(
            signer.sign(&request(vec![name.into()])),
            Err(format!("{name:?} is a server's name"))
        );
    }
}

#[test]
fn auto_encrypt_asks_the_acl_check_and_refuses_bad_keys() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let refusing = signer(
        &ca,
        Box::new(|token, node| Err(format!("{token} may not have {node}"))),
    )
    .unwrap();
    assert_eq!(
        refusing.sign(&request(Vec::new())),
        Err("secret may not have web-1".to_owned())
    );

    // Another CA's key with this CA's certificate signs nothing anybody accepts.
    let other = TestCerts::new("dc1", "mesh").unwrap();
    let err = AgentSigner::from_files(
        &ca.ca_file(),
        &other.ca_key_file(),
        "dc1",
        "mesh",
        Box::new(|_, _| Ok(())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "CA key file {}: is not the key of {}",
            other.ca_key_file().display(),
            ca.ca_file().display()
        )),
        "{err}"
    );
}

/// The role an accepted connection's peer gets from the certificate it dialed with.
async fn role_of(ca: &TestCerts, server: &CertFiles, client: &CertFiles) -> PeerRole {
    let server_tls = RpcTls::from_config(&agent(tls(ca, server), true))
        .expect("server TLS")
        .expect("TLS is on")
        .acceptor
        .expect("a server accepts");
    let dialer = RpcTls::from_config(&agent(tls(ca, client), false))
        .expect("client TLS")
        .expect("TLS is on")
        .dialer;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binding");
    let addr = listener.local_addr().expect("local address");
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accepting");
        let stream = accept(&server_tls.config, tcp).await.expect("handshake");
        stream.peer_role(&server_tls.server_name)
    });
    let tcp = TcpStream::connect(addr).await.expect("connecting");
    let _stream = dialer.handshake(tcp).await.expect("handshake");
    serving.await.expect("the server task")
}

#[tokio::test]
async fn a_peer_is_a_server_only_with_a_server_certificate() {
    let ca = TestCerts::new("dc1", "mesh").unwrap();
    let server = ca.server("server", &[LOCALHOST]).unwrap();
    let other_server = ca.server("other", &[LOCALHOST]).unwrap();
    let client = ca.client("client").unwrap();
    assert_eq!(role_of(&ca, &server, &other_server).await, PeerRole::Server);
    assert_eq!(role_of(&ca, &server, &client).await, PeerRole::Agent);
}
