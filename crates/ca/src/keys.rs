//! EC P-256 private keys in SEC 1 (`EC PRIVATE KEY`), the form Consul's `tls ca create` and
//! `tls cert create` write, beside PKCS #8, the only form ring (and so rcgen) reads. Just the
//! few DER structures these two forms need; no general ASN.1.

use rcgen::KeyPair;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// `key` as SEC 1 DER (Go's `x509.MarshalECPrivateKey`): version 1, the scalar, the named
/// curve and the public point. `None` when `key` is not a P-256 key in PKCS #8.
pub fn sec1_der(key: &KeyPair) -> Option<Vec<u8>> {
    let scalar = pkcs8_private_scalar(key.serialized_der())?;
    let mut content = der(0x02, &[1]);
    content.extend(der(0x04, scalar));
    content.extend(der(0xa0, &der(0x06, OID_P256)));
    let mut point = vec![0];
    point.extend_from_slice(key.public_key_raw());
    content.extend(der(0xa1, &der(0x03, &point)));
    Some(der(0x30, &content))
}

/// SEC 1 DER of a P-256 key wrapped as PKCS #8, which is what ring reads.
pub fn pkcs8_from_sec1(sec1: &[u8]) -> Vec<u8> {
    let mut algorithm = der(0x06, OID_EC_PUBLIC_KEY);
    algorithm.extend(der(0x06, OID_P256));
    let mut content = der(0x02, &[0]);
    content.extend(der(0x30, &algorithm));
    content.extend(der(0x04, sec1));
    der(0x30, &content)
}

/// One DER element: `tag`, the definite length (up to two bytes) and `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// The next element of `input`: its tag, content and what follows.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The private scalar of a P-256 PKCS #8 key (its inner ECPrivateKey's `privateKey`).
fn pkcs8_private_scalar(pkcs8: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = der_next(pkcs8)? else {
        return None;
    };
    let (0x02, _, rest) = der_next(info)? else {
        return None;
    };
    let (0x30, _, rest) = der_next(rest)? else {
        return None;
    };
    let (0x04, ec, _) = der_next(rest)? else {
        return None;
    };
    let (0x30, ec, _) = der_next(ec)? else {
        return None;
    };
    let (0x02, _, rest) = der_next(ec)? else {
        return None;
    };
    let (0x04, scalar, _) = der_next(rest)? else {
        return None;
    };
    Some(scalar)
}

#[cfg(test)]
mod tests {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

    use super::{pkcs8_from_sec1, sec1_der};

    #[test]
    fn sec1_round_trips_through_pkcs8() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let sec1 = sec1_der(&key).unwrap();
        let back = KeyPair::try_from(pkcs8_from_sec1(&sec1).as_slice()).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        assert_eq!(sec1_der(&back), Some(sec1));
    }
}
