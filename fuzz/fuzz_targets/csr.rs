//! CSRs as the servers read them from agents: `ca::CaState::check_csr` (PEM decoding, the DER
//! parser, the self-signature, the SPIFFE identity against the requested service), then for a
//! CSR that passes, `reserve_leaf` and `issue_leaf` on a copy of the CA and `ca::verify_leaf` on
//! the chain issued. Also certificate chains as a sidecar verifies them (`ca::verify_leaf` on
//! arbitrary PEM text) and SPIFFE IDs (`ca::SpiffeId::parse`).
//!
//! The first byte picks: 0 the rest is a CSR's DER (wrapped in PEM here, so the fuzzer works on
//! the structure rather than on base64), 1 the rest is PEM text (a CSR, then a chain), 2 a
//! SPIFFE URI. The CA is bootstrapped once, at a fixed time, for cluster
//! [`CLUSTER_ID`]; CSRs for `web` in `dc1` pass.
//!
//! Properties: a CSR that passes gets a leaf that verifies against the CA's roots as the
//! identity asked for; a SPIFFE ID prints as a URI that parses back to it.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use ca::{CaConfig, CaState, SpiffeId};
use libfuzzer_sys::fuzz_target;

/// The cluster the seed CSRs were made for (trust domain `<id>.mesh`).
const CLUSTER_ID: &str = "11111111-2222-3333-4444-555555555555";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

static CA: LazyLock<CaState> = LazyLock::new(|| {
    CaState::bootstrap(CLUSTER_ID, CaConfig::default(), now()).expect("the fixed CA bootstraps")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            let base64 = base64::engine::general_purpose::STANDARD.encode(body);
            let lines: Vec<&str> = base64
                .as_bytes()
                .chunks(64)
                .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
                .collect();
            let pem = format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                lines.join("\n")
            );
            csr(&pem);
        }
        1 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            csr(text);
            let _ = ca::verify_leaf(text, &CA.trusted_roots(), now());
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            let Ok(id) = SpiffeId::parse(text) else {
                return;
            };
            let uri = id.uri();
            let again = SpiffeId::parse(&uri).unwrap_or_else(|e| {
                panic!("{text:?} prints as {uri:?}, which does not parse: {e}")
            });
            assert_eq!(again, id, "{text:?} prints as {uri:?}");
        }
    }
});

fn csr(pem: &str) {
    let Ok(checked) = CA.check_csr(pem, "web", "dc1") else {
        return;
    };
    let expected = CA.service_id("dc1", "web");
    assert_eq!(
        checked.spiffe_id(),
        &expected,
        "a CSR passed as another identity"
    );
    let mut ca = CA.clone();
    let reservation = ca
        .reserve_leaf(now(), None)
        .expect("the fixed CA reserves a leaf");
    let leaf = ca
        .issue_leaf(&checked, &reservation, None)
        .unwrap_or_else(|e| panic!("a CSR that passed is not signed: {e}\n{pem}"));
    let id = ca::verify_leaf(&leaf.cert_pem, &ca.trusted_roots(), now())
        .unwrap_or_else(|e| panic!("a leaf issued does not verify: {e}\n{pem}"));
    assert_eq!(id, expected, "a leaf verifies as another identity");
}
