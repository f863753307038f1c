//! Verification of a presented leaf chain against trusted roots, for sidecars and tests: path
//! building from the leaf through the chain's intermediates (in any order, extra certificates
//! allowed) to a trusted root, checking each signature, validity window, CA flag, key usage and
//! path length, then reading the leaf's SPIFFE ID. Name constraints and revocation are not
//! checked (Consul's CA issues neither).

use std::time::SystemTime;

use x509_parser::prelude::X509Certificate;

use crate::certs;
use crate::error::VerifyError;
use crate::spiffe::SpiffeId;
use crate::state::unix;

#[cfg(test)]
mod tests;

/// Longest chain accepted, leaf and root included.
const MAX_CHAIN: usize = 8;

/// Verifies that `chain_pem` (leaf first, then intermediates) chains to one of `trusted_roots`
/// (PEM, one or more certificates each) at `now`, and returns the leaf's service identity.
pub fn verify_leaf(
    chain_pem: &str,
    trusted_roots: &[String],
    now: SystemTime,
) -> Result<SpiffeId, VerifyError> {
    let chain_der = certs::decode_certificates(chain_pem).map_err(VerifyError::Decode)?;
    let mut roots_der = Vec::new();
    for root in trusted_roots {
        roots_der.extend(certs::decode_certificates(root).map_err(VerifyError::Decode)?);
    }
    let chain = parse_all(&chain_der)?;
    let roots = parse_all(&roots_der)?;
    let Some(leaf) = chain.first() else {
        return Err(VerifyError::EmptyChain);
    };
    if roots.is_empty() {
        return Err(VerifyError::NoTrustedRoots);
    }
    let now = i64::try_from(unix(now)).unwrap_or(i64::MAX);

    check_validity(leaf, now)?;
    if leaf.is_ca() {
        return Err(VerifyError::LeafIsCa(leaf.subject().to_string()));
    }
    let id = spiffe_id(leaf)?;

    let mut used = vec![false; chain.len()];
    used[0] = true;
    let mut current = leaf;
    // CA certificates between the certificate being checked and the leaf.
    let mut cas_below = 0;
    for _ in 0..MAX_CHAIN {
        let mut bad_signature = false;
        for root in &roots {
            if !issued_by_name(current, root) {
                continue;
            }
            if current.verify_signature(Some(root.public_key())).is_ok() {
                check_validity(root, now)?;
                check_issuer(root, cas_below)?;
                return Ok(id);
            }
            bad_signature = true;
        }
        let next = chain.iter().enumerate().skip(1).find(|(i, candidate)| {
            if used[*i] || !issued_by_name(current, candidate) {
                return false;
            }
            let verified = current
                .verify_signature(Some(candidate.public_key()))
                .is_ok();
            bad_signature |= !verified;
            verified
        });
        let Some((i, issuer)) = next else {
            let (subject, issuer) = (current.subject().to_string(), current.issuer().to_string());
            return Err(if bad_signature {
                VerifyError::BadSignature { subject, issuer }
            } else {
                VerifyError::UntrustedIssuer { subject, issuer }
            });
        };
        check_validity(issuer, now)?;
        check_issuer(issuer, cas_below)?;
        used[i] = true;
        current = issuer;
        cas_below += 1;
    }
    Err(VerifyError::ChainTooLong(MAX_CHAIN))
}

fn parse_all(ders: &[Vec<u8>]) -> Result<Vec<X509Certificate<'_>>, VerifyError> {
    ders.iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, cert)| cert)
                .map_err(|e| VerifyError::Decode(e.to_string()))
        })
        .collect()
}

fn issued_by_name(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw()
}

fn check_validity(cert: &X509Certificate<'_>, now: i64) -> Result<(), VerifyError> {
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(VerifyError::NotYetValid {
            subject: cert.subject().to_string(),
            not_before: certs::rfc3339(u64::try_from(validity.not_before.timestamp()).unwrap_or(0)),
        });
    }
    if now > validity.not_after.timestamp() {
        return Err(VerifyError::Expired {
            subject: cert.subject().to_string(),
            not_after: certs::rfc3339(u64::try_from(validity.not_after.timestamp()).unwrap_or(0)),
        });
    }
    Ok(())
}

fn check_issuer(cert: &X509Certificate<'_>, cas_below: u32) -> Result<(), VerifyError> {
    let subject = || cert.subject().to_string();
    let constraints = cert
        .basic_constraints()
        .map_err(|e| VerifyError::Decode(e.to_string()))?;
    let Some(constraints) = constraints.filter(|bc| bc.value.ca) else {
        return Err(VerifyError::NotCa(subject()));
    };
    if let Some(max) = constraints.value.path_len_constraint {
        if cas_below > max {
            return Err(VerifyError::PathLength(subject()));
        }
    }
    let usage = cert
        .key_usage()
        .map_err(|e| VerifyError::Decode(e.to_string()))?;
    if usage.is_some_and(|ku| !ku.value.key_cert_sign()) {
        return Err(VerifyError::CannotSign(subject()));
    }
    Ok(())
}

fn spiffe_id(leaf: &X509Certificate<'_>) -> Result<SpiffeId, VerifyError> {
    use x509_parser::extensions::GeneralName;
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| VerifyError::Decode(e.to_string()))?;
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
        return Err(VerifyError::SpiffeIdCount(uris.len()));
    };
    SpiffeId::parse(uri).map_err(|e| VerifyError::SpiffeId(e.to_string()))
}
