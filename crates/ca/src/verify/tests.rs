use std::time::Duration;

use super::verify_leaf;
use crate::certs;
use crate::error::VerifyError;
use crate::state::tests::{at, ca, csr_for, ders, sign, CLUSTER, OTHER_CLUSTER};

const HOUR: u64 = 3600;

#[test]
fn expired_and_not_yet_valid_leaves_are_rejected() {
    let mut state = ca(CLUSTER);
    let csr = csr_for(&state, "dc1", "web");
    let leaf = state
        .sign_leaf_with_ttl(&csr, "web", "dc1", at(HOUR), Duration::from_secs(HOUR))
        .expect("signed");
    let roots = state.trusted_roots();
    assert!(
        verify_leaf(&leaf.cert_pem, &roots, at(2 * HOUR)).is_ok(),
        "last second"
    );
    let err = verify_leaf(&leaf.cert_pem, &roots, at(2 * HOUR + 1)).expect_err("expired");
    assert_eq!(
        err,
        VerifyError::Expired {
            subject: "CN=web".to_owned(),
            not_after: "2023-11-15T00:13:20Z".to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate CN=web expired at 2023-11-15T00:13:20Z"
    );
    // Valid from one minute before signing (clock drift allowance), not earlier.
    assert!(verify_leaf(&leaf.cert_pem, &roots, at(HOUR - 60)).is_ok());
    assert!(matches!(
        verify_leaf(&leaf.cert_pem, &roots, at(HOUR - 61)),
        Err(VerifyError::NotYetValid { .. })
    ));
}

#[test]
fn leaves_of_a_foreign_ca_are_rejected() {
    let mut ours = ca(CLUSTER);
    let mut theirs = ca(OTHER_CLUSTER);
    let foreign = sign(&mut theirs, "web", at(10));
    let err = verify_leaf(&foreign.cert_pem, &ours.trusted_roots(), at(20)).expect_err("foreign");
    assert!(
        matches!(err, VerifyError::UntrustedIssuer { .. }),
        "{err:?}"
    );

    // Appending our root to their chain does not help: names and signatures must match.
    let own = sign(&mut ours, "web", at(10));
    let mut mixed = foreign.cert_pem.clone();
    mixed.push_str(&ours.active_root().expect("root").root_cert_pem);
    assert!(verify_leaf(&mixed, &ours.trusted_roots(), at(20)).is_err());
    assert!(verify_leaf(&own.cert_pem, &ours.trusted_roots(), at(20)).is_ok());
}

#[test]
fn broken_signatures_are_rejected() {
    let mut state = ca(CLUSTER);
    let leaf = sign(&mut state, "web", at(10));
    let chain = ders(&leaf.cert_pem);

    // Flip a bit in the leaf's signature.
    let mut bad_leaf = chain[0].clone();
    let last = bad_leaf.len() - 1;
    bad_leaf[last] ^= 0x01;
    let pem = certs::pem_certificate(&bad_leaf) + &certs::pem_certificate(&chain[1]);
    let err = verify_leaf(&pem, &state.trusted_roots(), at(20)).expect_err("bad signature");
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");

    // Swap the intermediate for another CA's intermediate with the same name: impossible to
    // build, so instead replace it by a tampered copy of itself.
    let mut bad_int = chain[1].clone();
    let last = bad_int.len() - 1;
    bad_int[last] ^= 0x01;
    let pem = certs::pem_certificate(&chain[0]) + &certs::pem_certificate(&bad_int);
    let err = verify_leaf(&pem, &state.trusted_roots(), at(20)).expect_err("bad intermediate");
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
}

#[test]
fn malformed_chains_are_rejected() {
    let mut state = ca(CLUSTER);
    let roots = state.trusted_roots();
    let leaf = sign(&mut state, "web", at(10));
    let chain = ders(&leaf.cert_pem);

    assert_eq!(
        verify_leaf("", &roots, at(20)),
        Err(VerifyError::EmptyChain)
    );
    assert_eq!(
        verify_leaf(&leaf.cert_pem, &[], at(20)),
        Err(VerifyError::NoTrustedRoots)
    );
    assert!(matches!(
        verify_leaf("-----BEGIN CERTIFICATE-----\nnot base64\n", &roots, at(20)),
        Err(VerifyError::Decode(_))
    ));
    // The intermediate presented as if it were a leaf.
    let int_first = certs::pem_certificate(&chain[1]);
    assert!(matches!(
        verify_leaf(&int_first, &roots, at(20)),
        Err(VerifyError::LeafIsCa(_))
    ));
    // Leaf without its intermediate.
    assert!(matches!(
        verify_leaf(&certs::pem_certificate(&chain[0]), &roots, at(20)),
        Err(VerifyError::UntrustedIssuer { .. })
    ));
}
