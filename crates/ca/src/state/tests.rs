use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

use super::{CaState, CERT_DRIFT_BUFFER, ROOT_NAME};
use crate::certs;
use crate::config::CaConfig;
use crate::error::{CaError, VerifyError};
use crate::verify::verify_leaf;
use crate::{generate_key_and_csr, SpiffeId};

pub(crate) const CLUSTER: &str = "11111111-2222-3333-4444-555555555555";
pub(crate) const OTHER_CLUSTER: &str = "99999999-8888-7777-6666-555555555555";
const T0: u64 = 1_700_000_000;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

pub(crate) fn ca(cluster: &str) -> CaState {
    CaState::bootstrap(cluster, CaConfig::default(), at(0)).expect("bootstrap")
}

pub(crate) fn csr_for(state: &CaState, dc: &str, service: &str) -> String {
    generate_key_and_csr(&state.trust_domain, dc, service, &[])
        .expect("csr")
        .1
}

pub(crate) fn sign(state: &mut CaState, service: &str, now: SystemTime) -> crate::Leaf {
    let csr = csr_for(state, "dc1", service);
    state.sign_leaf(&csr, service, "dc1", now).expect("sign")
}

/// Every certificate in a PEM bundle, as DER.
pub(crate) fn ders(pem: &str) -> Vec<Vec<u8>> {
    certs::decode_certificates(pem).expect("PEM certificates")
}

fn x509(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).expect("x509").1
}

fn serial_of(der: &[u8]) -> u64 {
    super::low_u64(x509(der).raw_serial())
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().expect("san ext");
    san.map(|san| {
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect()
    })
    .unwrap_or_default()
}

fn key_ids(cert: &X509Certificate<'_>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut skid = None;
    let mut akid = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => skid = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(id) => {
                akid = id.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => {}
        }
    }
    (skid, akid)
}

#[test]
fn bootstrap_creates_a_root_and_a_signing_intermediate() {
    let state = ca(CLUSTER);
    assert_eq!(state.trust_domain, format!("{CLUSTER}.mesh"));
    assert_eq!(state.roots.len(), 1);
    let root = state.active_root().expect("active root");
    assert!(root.active);
    assert_eq!(root.name, ROOT_NAME);
    assert_eq!(root.external_trust_domain, CLUSTER);
    assert_eq!(root.serial_number, 1);
    assert_eq!(
        state.next_serial, 3,
        "root and intermediate took serials 1 and 2"
    );

    let root_der = &ders(&root.root_cert_pem)[0];
    let root_cert = x509(root_der);
    assert!(root_cert.is_ca());
    assert_eq!(root_cert.subject().as_raw(), root_cert.issuer().as_raw());
    assert!(root_cert.verify_signature(None).is_ok(), "self-signed");
    let usage = root_cert.key_usage().expect("ku").expect("present").value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
    assert_eq!(uris(&root_cert), vec![format!("spiffe://{CLUSTER}.mesh")]);
    assert_eq!(root.not_before, T0 - 60);
    assert_eq!(root.not_after, T0 + 87600 * HOUR);
    let (skid, akid) = key_ids(&root_cert);
    assert_eq!(
        skid.as_deref(),
        Some(certs::key_id(root_cert.public_key().raw).as_slice())
    );
    assert_eq!(skid, akid);
    // Root ID: Consul's CalculateCertFingerprint, colon-hex SHA-1 of the DER.
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, root_der);
    assert_eq!(root.id, certs::hex_string(sha1.as_ref()));
    assert_eq!(root.id.len(), 59);

    let int_der = &ders(&root.signing_cert_pem)[0];
    let int = x509(int_der);
    assert!(int.is_ca());
    let bc = int.basic_constraints().expect("bc").expect("present").value;
    assert_eq!(bc.path_len_constraint, Some(0));
    assert_eq!(int.issuer().as_raw(), root_cert.subject().as_raw());
    assert!(int.verify_signature(Some(root_cert.public_key())).is_ok());
    assert_eq!(serial_of(int_der), 2);
    assert_eq!(root.signing_not_after, T0 + 8760 * HOUR);
    let (int_skid, int_akid) = key_ids(&int);
    assert_eq!(int_akid, skid, "intermediate names the root's key");
    assert_eq!(
        root.signing_key_id,
        certs::hex_string(&int_skid.expect("intermediate SKID"))
    );
    assert_ne!(root_cert.subject().to_string(), int.subject().to_string());
}

#[test]
fn bootstrap_rejects_bad_input() {
    let err = CaState::bootstrap("Not A UUID", CaConfig::default(), at(0)).expect_err("bad id");
    assert!(matches!(err, CaError::InvalidClusterId(_)));
    let mut config = CaConfig::default();
    config.config.private_key_type = "rsa".to_owned();
    assert!(matches!(
        CaState::bootstrap(CLUSTER, config, at(0)),
        Err(CaError::InvalidConfig(_))
    ));
}

#[test]
fn signed_leaf_chains_to_the_root_and_has_consul_fields() {
    let mut state = ca(CLUSTER);
    let (_key, csr) = generate_key_and_csr(
        &state.trust_domain,
        "dc1",
        "web",
        &["web.service.consul".to_owned()],
    )
    .expect("csr");
    let leaf = state
        .sign_leaf(&csr, "web", "dc1", at(100))
        .expect("signed");

    assert_eq!(leaf.serial, 3);
    assert_eq!(leaf.serial_number, "03");
    assert_eq!(leaf.service, "web");
    assert_eq!(
        leaf.service_uri,
        format!("spiffe://{CLUSTER}.mesh/ns/default/dc/dc1/svc/web")
    );
    assert_eq!(leaf.valid_after, T0 + 100 - CERT_DRIFT_BUFFER.as_secs());
    assert_eq!(leaf.valid_before, T0 + 100 + 72 * HOUR);

    let chain = ders(&leaf.cert_pem);
    assert_eq!(chain.len(), 2, "leaf + intermediate");
    let cert = x509(&chain[0]);
    assert!(!cert.is_ca());
    let bc = cert
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert!(!bc.ca, "CA:false is explicit");
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = cert.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    assert_eq!(uris(&cert), vec![leaf.service_uri.clone()]);
    let san = cert
        .subject_alternative_name()
        .expect("san")
        .expect("present");
    assert!(san
        .value
        .general_names
        .contains(&GeneralName::DNSName("web.service.consul")));
    assert_eq!(cert.subject().to_string(), "CN=web");
    let int = x509(&chain[1]);
    let (_, akid) = key_ids(&cert);
    assert_eq!(akid, key_ids(&int).0, "leaf AKID = intermediate SKID");

    let id = verify_leaf(&leaf.cert_pem, &state.trusted_roots(), at(200)).expect("verifies");
    assert_eq!(id, SpiffeId::service(&state.trust_domain, "dc1", "web"));

    let issued = serde_json::to_value(leaf.to_issued_cert("KEY", 42)).expect("json");
    let keys: Vec<&str> = issued
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "SerialNumber",
            "CertPEM",
            "PrivateKeyPEM",
            "Service",
            "ServiceURI",
            "ValidAfter",
            "ValidBefore",
            "CreateIndex",
            "ModifyIndex"
        ]
    );
    assert_eq!(issued["ValidBefore"], "2023-11-17T22:15:00Z");
    assert_eq!(issued["CreateIndex"], 42);
}

#[test]
fn csrs_for_another_identity_are_rejected() {
    let mut state = ca(CLUSTER);
    let other = ca(OTHER_CLUSTER);
    let before = state.clone();

    let for_db = csr_for(&state, "dc1", "db");
    let err = state
        .sign_leaf(&for_db, "web", "dc1", at(0))
        .expect_err("wrong service");
    assert_eq!(
        err.to_string(),
        format!(
            "CSR SAN does not match the requested service: the CSR asks for \
             spiffe://{CLUSTER}.mesh/ns/default/dc/dc1/svc/db \
             (expected spiffe://{CLUSTER}.mesh/ns/default/dc/dc1/svc/web)"
        )
    );

    let foreign = csr_for(&other, "dc1", "web");
    let err = state
        .sign_leaf(&foreign, "web", "dc1", at(0))
        .expect_err("other domain");
    assert_eq!(
        err.to_string(),
        format!(
            "SPIFFE ID in CSR from a different trust domain: {OTHER_CLUSTER}.mesh, we are {CLUSTER}.mesh"
        )
    );

    let dc2 = csr_for(&state, "dc2", "web");
    let err = state
        .sign_leaf(&dc2, "web", "dc1", at(0))
        .expect_err("other dc");
    assert_eq!(
        err.to_string(),
        "SPIFFE ID in CSR from a different datacenter: dc2, we are dc1"
    );

    // A CSR with only a DNS name.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let params = rcgen::CertificateParams::new(vec!["web.example".to_owned()]).expect("params");
    let no_uri = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let err = state
        .sign_leaf(&no_uri, "web", "dc1", at(0))
        .expect_err("no uri");
    assert!(err.to_string().contains("the CSR has no URI SAN"), "{err}");

    // A P-384 key is not accepted.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        state
            .service_id("dc1", "web")
            .uri()
            .try_into()
            .expect("ascii"),
    )];
    let p384 = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let err = state
        .sign_leaf(&p384, "web", "dc1", at(0))
        .expect_err("p384");
    assert!(matches!(err, CaError::InvalidCsr(_)), "{err:?}");

    // A CSR whose signature was tampered with.
    let good = csr_for(&state, "dc1", "web");
    let block = pem::parse(&good).expect("pem");
    let mut der = block.contents().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    let err = state
        .sign_leaf(&tampered, "web", "dc1", at(0))
        .expect_err("tampered");
    assert!(matches!(err, CaError::CsrSignature), "{err:?}");

    assert!(matches!(
        state.sign_leaf("not a csr", "web", "dc1", at(0)),
        Err(CaError::InvalidCsr(_))
    ));
    assert!(matches!(
        state.sign_leaf(&good, "we/b", "dc1", at(0)),
        Err(CaError::InvalidName { .. })
    ));

    assert_eq!(
        state, before,
        "rejected CSRs use no serial and change nothing"
    );
}

#[test]
fn rotation_keeps_old_leaves_valid_and_cross_signs_new_ones() {
    let mut state = ca(CLUSTER);
    let old_root = state.active_root().expect("root").clone();
    let old_leaf = sign(&mut state, "web", at(10));

    let note = state.rotate(at(HOUR)).expect("rotated");
    assert_eq!(note.old_root_id, old_root.id);
    assert!(note.cross_signed);
    assert_eq!(state.roots.len(), 2);
    let new_root = state.active_root().expect("new root").clone();
    assert_eq!(new_root.id, note.new_root_id);
    assert_ne!(new_root.id, old_root.id);
    let old_kept = state
        .roots
        .iter()
        .find(|r| r.id == old_root.id)
        .expect("old root kept");
    assert!(!old_kept.active);
    assert_eq!(old_kept.rotated_out_at, Some(T0 + HOUR));
    assert_eq!(
        new_root.intermediate_certs().len(),
        2,
        "cross-signed + intermediate"
    );

    // The cross-signed certificate: the new root's subject and key, issued by the old root.
    let cross_der = &ders(&new_root.cross_signed.as_ref().expect("cross").cert_pem)[0];
    let cross = x509(cross_der);
    let new_root_der = &ders(&new_root.root_cert_pem)[0];
    let new_root_cert = x509(new_root_der);
    let old_root_der = &ders(&old_root.root_cert_pem)[0];
    let old_root_cert = x509(old_root_der);
    assert_eq!(cross.subject().as_raw(), new_root_cert.subject().as_raw());
    assert_eq!(cross.public_key().raw, new_root_cert.public_key().raw);
    assert_eq!(cross.issuer().as_raw(), old_root_cert.subject().as_raw());
    assert_eq!(key_ids(&cross).1, key_ids(&old_root_cert).0);
    assert_eq!(
        cross.validity().not_after.timestamp() as u64,
        T0 + HOUR + 7 * DAY
    );

    let new_leaf = sign(&mut state, "web", at(2 * HOUR));
    assert_eq!(
        ders(&new_leaf.cert_pem).len(),
        3,
        "leaf + intermediate + cross-signed"
    );

    let old_only = [old_root.root_cert_pem.clone()];
    let new_only = [new_root.root_cert_pem.clone()];
    let both = state.trusted_roots();
    let now = at(3 * HOUR);
    for (leaf, roots) in [
        (&old_leaf, &old_only[..]),
        (&old_leaf, &both[..]),
        (&new_leaf, &new_only[..]),
        (&new_leaf, &both[..]),
        // A peer that has not learnt the new root yet accepts the new leaf via the cross-sign.
        (&new_leaf, &old_only[..]),
    ] {
        let id = verify_leaf(&leaf.cert_pem, roots, now).expect("verifies");
        assert_eq!(id.service, "web");
    }
    // A peer that only trusts the new root does not accept leaves of the old one.
    assert!(matches!(
        verify_leaf(&old_leaf.cert_pem, &new_only, now),
        Err(VerifyError::UntrustedIssuer { .. })
    ));
}

#[test]
fn rotation_without_cross_signing() {
    let mut state = ca(CLUSTER);
    let old_root = state.active_root().expect("root").root_cert_pem.clone();
    let mut config = state.config.clone();
    config.force_without_cross_signing = true;
    config.config.private_key = certs::generate_key().expect("key").serialize_pem();
    let note = state
        .set_config(config, at(10))
        .expect("valid")
        .expect("rotated");
    assert!(!note.cross_signed);
    let leaf = sign(&mut state, "web", at(20));
    assert_eq!(ders(&leaf.cert_pem).len(), 2);
    assert!(matches!(
        verify_leaf(&leaf.cert_pem, &[old_root], at(30)),
        Err(VerifyError::UntrustedIssuer { .. })
    ));
}

#[test]
fn serials_are_monotonic_across_signings_and_rotations() {
    let mut state = ca(CLUSTER);
    let mut seen = vec![1, 2];
    for round in 0..3u64 {
        for i in 0..3 {
            let leaf = sign(&mut state, "web", at(round * DAY + i));
            seen.push(leaf.serial);
            assert_eq!(serial_of(&ders(&leaf.cert_pem)[0]), leaf.serial);
        }
        state.rotate(at(round * DAY + 100)).expect("rotate");
        let root = state.active_root().expect("root");
        seen.push(serial_of(&ders(&root.root_cert_pem)[0]));
        seen.push(serial_of(&ders(&root.signing_cert_pem)[0]));
        let cross = root.cross_signed.as_ref().expect("cross-signed");
        seen.push(serial_of(&ders(&cross.cert_pem)[0]));
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no serial is reused: {seen:?}");
    assert_eq!(*sorted.last().expect("serials"), state.next_serial - 1);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "allocated in increasing order"
    );
    assert_eq!(seen.len() as u64, state.next_serial - 1, "no gaps either");
}

#[test]
fn roots_json_has_consul_shape_and_no_keys() {
    let mut state = ca(CLUSTER);
    state.rotate(at(HOUR)).expect("rotate");
    state.stamp_index(7);
    let json = state.roots_json();
    let top: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["ActiveRootID", "TrustDomain", "Roots"]);
    assert_eq!(json["TrustDomain"], format!("{CLUSTER}.mesh"));
    assert_eq!(json["ActiveRootID"], state.active_root_id.as_str());
    let roots = json["Roots"].as_array().expect("roots");
    assert_eq!(roots.len(), 2);
    for root in roots {
        let keys: Vec<&str> = root
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "ID",
                "Name",
                "SerialNumber",
                "SigningKeyID",
                "ExternalTrustDomain",
                "NotBefore",
                "NotAfter",
                "RootCert",
                "IntermediateCerts",
                "Active",
                "PrivateKeyType",
                "PrivateKeyBits",
                "CreateIndex",
                "ModifyIndex"
            ]
        );
        assert_eq!(root["Name"], "Consul CA Primary Cert");
        assert_eq!(root["PrivateKeyType"], "ec");
        assert_eq!(root["PrivateKeyBits"], 256);
        assert_eq!(root["CreateIndex"], 7);
        assert!(root["SerialNumber"].is_u64());
        assert!(root["IntermediateCerts"].is_array());
    }
    let first = &roots[0];
    assert_eq!(first["NotBefore"], "2023-11-14T22:12:20Z");
    assert_eq!(first["NotAfter"], "2033-11-11T22:13:20Z");
    assert_eq!(first["Active"], false);
    assert_eq!(roots[1]["Active"], true);
    assert_eq!(
        roots[1]["IntermediateCerts"]
            .as_array()
            .expect("list")
            .len(),
        2
    );
    let text = json.to_string();
    assert!(
        !text.contains("PRIVATE KEY"),
        "no private key is ever served"
    );

    // ?pem: every root followed by its intermediates.
    let pem = state.roots_pem();
    assert_eq!(ders(&pem).len(), 1 + 1 + 1 + 2);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(!pem.contains("\n\n"));
    assert!(!pem.contains('\r'));
}

#[test]
fn config_changes_apply_or_rotate() {
    let mut state = ca(CLUSTER);
    state.stamp_index(3);
    let mut config = state.config.clone();
    config.config.leaf_cert_ttl = Duration::from_secs(24 * HOUR);
    assert_eq!(state.set_config(config, at(10)).expect("valid"), None);
    assert_eq!(state.config.create_index, 3, "create index kept");
    assert_eq!(state.config.modify_index, 0, "awaiting stamp");
    let leaf = sign(&mut state, "web", at(100));
    assert_eq!(leaf.valid_before, T0 + 100 + 24 * HOUR);

    // An invalid configuration changes nothing.
    let before = state.clone();
    let mut bad = state.config.clone();
    bad.config.leaf_cert_ttl = Duration::from_secs(60);
    assert!(state.set_config(bad, at(200)).is_err());
    assert_eq!(state, before);

    // A key that does not belong to the certificate: refused, nothing changes.
    let mut mismatched = state.config.clone();
    let (cert_pem, _key_pem) = external_root("not-the-key");
    mismatched.config.root_cert = cert_pem;
    mismatched.config.private_key = certs::generate_key().expect("key").serialize_pem();
    let err = state.set_config(mismatched, at(300)).expect_err("mismatch");
    assert_eq!(
        err.to_string(),
        "cannot use the supplied CA: PrivateKey does not match the public key of RootCert"
    );
    assert_eq!(state, before);

    // A supplied private key becomes the new root's key.
    let key = certs::generate_key().expect("key");
    let mut with_key = state.config.clone();
    with_key.config.private_key = key.serialize_pem();
    let note = state
        .set_config(with_key.clone(), at(400))
        .expect("valid")
        .expect("rotated");
    let root = state.active_root().expect("root");
    assert_eq!(root.id, note.new_root_id);
    let root_der = &ders(&root.root_cert_pem)[0];
    assert_eq!(
        x509(root_der).public_key().raw,
        key.public_key_der().as_slice()
    );
    // The same configuration again is not a change.
    assert_eq!(state.set_config(with_key, at(500)).expect("valid"), None);

    // Importing an external root (RootCert + PrivateKey): it becomes the active root itself.
    let (cert_pem, key_pem) = external_root("Example Corp Root");
    let mut import = state.config.clone();
    import.config.root_cert = cert_pem.clone();
    import.config.private_key = key_pem;
    let note = state
        .set_config(import, at(600))
        .expect("valid")
        .expect("rotated");
    assert!(note.cross_signed);
    let root = state.active_root().expect("root");
    assert_eq!(ders(&root.root_cert_pem), ders(&cert_pem));
    let leaf = sign(&mut state, "web", at(700));
    verify_leaf(&leaf.cert_pem, &[cert_pem], at(800)).expect("chains to the imported root");
}

/// A root made outside the CA, as an operator would bring one.
fn external_root(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Corp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.not_before = certs::offset(T0 - DAY);
    params.not_after = certs::offset(T0 + 3650 * DAY);
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn pruning_waits_for_the_old_roots_leaves() {
    let mut state = ca(CLUSTER);
    let old_id = state.active_root_id.clone();
    // A leaf with a longer TTL than the configured 72h keeps its root around longer.
    let csr = csr_for(&state, "dc1", "web");
    let long = state
        .sign_leaf_with_ttl(&csr, "web", "dc1", at(0), Duration::from_secs(100 * HOUR))
        .expect("signed");
    assert_eq!(long.valid_before, T0 + 100 * HOUR);
    state.rotate(at(HOUR)).expect("rotate");
    state.stamp_index(5);

    assert!(state.prune(at(2 * HOUR)).is_empty());
    assert!(
        state.prune(at(HOUR + 72 * HOUR + 1)).is_empty(),
        "old leaf still valid"
    );
    assert!(
        state.prune(at(100 * HOUR)).is_empty(),
        "valid through its last second"
    );
    assert_eq!(state.roots_modify_index, 5, "nothing changed");

    assert_eq!(state.prune(at(100 * HOUR + 1)), vec![old_id]);
    assert_eq!(state.roots.len(), 1);
    let root = state.active_root().expect("root");
    assert!(
        root.cross_signed.is_none(),
        "cross-signature dropped with its issuer"
    );
    assert_eq!(root.intermediate_certs().len(), 1);
    assert_eq!(state.roots_modify_index, 0, "roots changed");
    let leaf = sign(&mut state, "web", at(101 * HOUR));
    assert_eq!(ders(&leaf.cert_pem).len(), 2);

    // Without leaves, a rotated-out root is kept for one LeafCertTTL.
    let mut quiet = ca(CLUSTER);
    quiet.rotate(at(0)).expect("rotate");
    assert!(quiet.prune(at(72 * HOUR)).is_empty());
    assert_eq!(quiet.prune(at(72 * HOUR + 1)).len(), 1);
    // The active root is never pruned.
    assert!(quiet.prune(at(10_000 * DAY)).is_empty());
}

#[test]
fn intermediates_renew_after_half_their_life_and_bound_leaves() {
    let mut state = ca(CLUSTER);
    let first = state.active_root().expect("root").clone();
    let old_leaf = sign(&mut state, "web", at(0));
    assert!(!state.renew_intermediate(at(100 * DAY)).expect("checked"));
    assert!(state.renew_intermediate(at(183 * DAY)).expect("renewed"));
    let renewed = state.active_root().expect("root").clone();
    assert_eq!(renewed.id, first.id, "same root");
    assert_ne!(renewed.signing_cert_pem, first.signing_cert_pem);
    assert_ne!(renewed.signing_key_id, first.signing_key_id);
    assert_eq!(renewed.signing_not_after, T0 + 183 * DAY + 8760 * HOUR);

    let now = at(184 * DAY);
    let new_leaf = sign(&mut state, "web", now);
    verify_leaf(&new_leaf.cert_pem, &state.trusted_roots(), now).expect("new chain");
    // Leaves of the previous intermediate still verify while they are valid.
    verify_leaf(&old_leaf.cert_pem, &state.trusted_roots(), at(HOUR)).expect("old chain");

    // A leaf never outlives the intermediate that signs it; after it, signing fails clearly.
    let expiry = renewed.signing_not_after;
    let near = UNIX_EPOCH + Duration::from_secs(expiry - HOUR);
    let clamped = sign(&mut state, "web", near);
    assert_eq!(clamped.valid_before, expiry);
    let after = UNIX_EPOCH + Duration::from_secs(expiry + 1);
    let csr = csr_for(&state, "dc1", "web");
    assert!(matches!(
        state.sign_leaf(&csr, "web", "dc1", after),
        Err(CaError::IntermediateExpired { .. })
    ));
}

#[test]
fn reservations_replicate_deterministically() {
    let mut leader = ca(CLUSTER);
    leader.stamp_index(1);
    let mut replica = leader.clone();

    let csr = csr_for(&leader, "dc1", "web");
    let checked = leader.check_csr(&csr, "web", "dc1").expect("checked");
    let reservation = leader.reserve_leaf(at(10), None).expect("reserved");
    replica
        .reserve_leaf(at(10), None)
        .expect("same command on a replica");
    assert_eq!(leader, replica, "reserving is deterministic");

    let leaf = leader
        .issue_leaf(&checked, &reservation, None)
        .expect("issued");
    assert_eq!(leaf.reservation(), reservation);
    // Recording the same leaf again (e.g. a retried command) changes nothing.
    let snapshot = leader.clone();
    leader.note_issued(&leaf.reservation());
    assert_eq!(leader, snapshot);
    assert_eq!(
        leader.roots_modify_index, 1,
        "leaf signing does not touch the roots index"
    );

    // A replica that only hears about a leaf signed elsewhere catches up.
    let mut lagging = ca(CLUSTER);
    let signed_elsewhere = sign(&mut lagging.clone(), "web", at(10));
    lagging.note_issued(&signed_elsewhere.reservation());
    assert_eq!(lagging.next_serial, signed_elsewhere.serial + 1);
}

#[test]
fn state_round_trips_through_serde() {
    let mut state = ca(CLUSTER);
    state.rotate(at(HOUR)).expect("rotate");
    state.stamp_index(9);
    let bytes = serde_json::to_vec(&state).expect("serialize");
    let mut back: CaState = serde_json::from_slice(&bytes).expect("deserialize");
    assert_eq!(back, state);
    let leaf = sign(&mut back, "api", at(2 * HOUR));
    verify_leaf(&leaf.cert_pem, &state.trusted_roots(), at(2 * HOUR)).expect("verifies");
}

#[test]
fn index_follows_roots_and_configuration_not_leaves() {
    let mut state = ca(CLUSTER);
    state.stamp_index(5);
    assert_eq!(state.index(), 5);
    state.reserve_leaf(at(HOUR), None).expect("reserve");
    assert_eq!(state.index(), 5);
    state.rotate(at(HOUR)).expect("rotate");
    state.stamp_index(9);
    assert_eq!(state.index(), 9);
}

// ----- encryption at rest -----

fn data_keys(bytes: &[u8]) -> crate::seal::DataKeys {
    crate::seal::DataKeys::new(bytes.iter().map(|b| [*b; 32]).collect()).expect("keys")
}

/// Reserves and signs a leaf for `web` the way a server does, opening keys with `keys`.
fn issue(
    state: &mut CaState,
    keys: Option<&crate::seal::DataKeys>,
    now: SystemTime,
) -> Result<crate::Leaf, CaError> {
    let csr = csr_for(state, "dc1", "web");
    let checked = state.check_csr(&csr, "web", "dc1").expect("checked");
    let reservation = state.reserve_leaf(now, None).expect("reserved");
    state.issue_leaf(&checked, &reservation, keys)
}

fn sealed_ids(state: &CaState) -> Vec<Option<&str>> {
    state
        .key_fields()
        .map(|(_, stored)| crate::seal::sealed_with(stored))
        .collect()
}

#[test]
fn a_sealed_state_holds_no_plaintext_key_and_still_signs_leaves() {
    let keys = data_keys(&[1]);
    let mut config = CaConfig::default();
    config.config.private_key = certs::generate_key().expect("key").serialize_pem();
    let plain = CaState::bootstrap(CLUSTER, config, at(0)).expect("bootstrap");
    let mut state = plain.clone();
    assert!(state.needs_sealing(&keys));
    assert!(state.seal_keys(&keys).expect("sealed"));
    let json = serde_json::to_string(&state).expect("json");
    assert!(!json.contains("PRIVATE KEY"), "{json}");
    assert_eq!(sealed_ids(&state), vec![Some(keys.active_id()); 3]);
    assert!(!state.needs_sealing(&keys));
    assert!(
        !state.seal_keys(&keys).expect("nothing to do"),
        "idempotent"
    );
    // The imported key is still hidden from readers of the configuration.
    assert_eq!(state.config.redacted().config.private_key, "hidden");

    let leaf = issue(&mut state, Some(&keys), at(100)).expect("signed");
    verify_leaf(&leaf.cert_pem, &state.trusted_roots(), at(200)).expect("verifies");

    let mut opened = state.clone();
    assert!(opened.unseal_keys(&keys).expect("opened"));
    let mut expected = plain;
    expected.next_serial = opened.next_serial;
    expected.roots[0].leaves_valid_until = opened.roots[0].leaves_valid_until;
    assert_eq!(opened, expected, "unsealing gives back the keys");
}

#[test]
fn a_state_sealed_by_an_old_data_key_signs_until_it_is_resealed_by_the_new_one() {
    let old = data_keys(&[1]);
    let rotated = data_keys(&[2, 1]);
    let new_only = data_keys(&[2]);
    let mut state = ca(CLUSTER);
    state.seal_keys(&old).expect("sealed");

    issue(&mut state, Some(&rotated), at(100)).expect("the old key still opens");
    assert!(state.needs_sealing(&rotated));
    // A server that starts without the old key (no signer cached yet) cannot open it.
    let mut fresh: CaState =
        serde_json::from_str(&serde_json::to_string(&state).expect("json")).expect("state");
    let err = issue(&mut fresh, Some(&new_only), at(100)).expect_err("old key removed too soon");
    assert!(
        matches!(
            err,
            CaError::Sealed {
                what: "intermediate",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(old.active_id()), "{err}");

    assert!(state.seal_keys(&rotated).expect("resealed"));
    assert_eq!(sealed_ids(&state), vec![Some(rotated.active_id()); 2]);
    assert!(!state.needs_sealing(&rotated));
    let mut fresh: CaState =
        serde_json::from_str(&serde_json::to_string(&state).expect("json")).expect("state");
    let leaf = issue(&mut fresh, Some(&new_only), at(100)).expect("the new key alone opens");
    verify_leaf(&leaf.cert_pem, &state.trusted_roots(), at(200)).expect("verifies");
    // Resealing a plaintext key among sealed ones seals only what needs it.
    let before = state.roots[0].root_key_pem.clone();
    state.roots[0].signing_key_pem = certs::generate_key().expect("key").serialize_pem();
    assert!(state.seal_keys(&new_only).expect("sealed"));
    assert_eq!(state.roots[0].root_key_pem, before);
}

#[test]
fn a_sealed_state_without_a_data_key_says_so() {
    let keys = data_keys(&[1]);
    let mut state = ca(CLUSTER);
    state.seal_keys(&keys).expect("sealed");
    let text = "the CA keys are encrypted at rest and this server has no data key \
                (data_key_file / MESH_DATA_KEY)";
    let err = issue(&mut state, None, at(100)).expect_err("no key");
    assert!(matches!(err, CaError::NoDataKey));
    assert_eq!(err.to_string(), text);
    let half_life = at(200 * DAY);
    assert!(matches!(
        state.clone().renew_intermediate(half_life),
        Err(CaError::NoDataKey)
    ));
    assert!(matches!(
        state.clone().rotate(at(100)),
        Err(CaError::NoDataKey)
    ));
    // Opened first (as a server with the key does before changing the CA), both work.
    state.unseal_keys(&keys).expect("opened");
    assert!(state
        .clone()
        .renew_intermediate(half_life)
        .expect("renewed"));
    state.rotate(at(100)).expect("rotated");
}
