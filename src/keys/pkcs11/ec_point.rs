//! Public keys as tokens report them in CKA_EC_POINT.
//!
//! PKCS#11 2.40 says the attribute is the DER encoding of an OCTET STRING holding the
//! point, but several modules (older OpenSC drivers, some vendor libraries) return the raw
//! point. Both are accepted; anything else is refused rather than guessed at.

use k256::ecdsa::VerifyingKey;
use tron_proto::Address;

use super::error::Pkcs11Error;

/// DER of the secp256k1 named-curve OID 1.3.132.0.10, as CKA_EC_PARAMS carries it.
pub const SECP256K1_EC_PARAMS: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

const UNCOMPRESSED_LEN: usize = 65;

/// Extracts the 65-byte uncompressed point from either accepted CKA_EC_POINT form.
pub fn uncompressed_point(ec_point: &[u8]) -> Result<[u8; 65], Pkcs11Error> {
    let raw = match ec_point {
        // OCTET STRING, short-form length 65, then the point.
        [0x04, 0x41, rest @ ..] if rest.len() == UNCOMPRESSED_LEN => rest,
        raw if raw.len() == UNCOMPRESSED_LEN => raw,
        other => return Err(Pkcs11Error::EcPointFormat { len: other.len() }),
    };
    if raw[0] != 0x04 {
        return Err(Pkcs11Error::EcPointFormat {
            len: ec_point.len(),
        });
    }
    let mut out = [0u8; 65];
    out.copy_from_slice(raw);
    Ok(out)
}

/// The public key and Tron address behind a CKA_EC_POINT value; the point must be on
/// secp256k1.
pub fn public_key(ec_point: &[u8]) -> Result<(VerifyingKey, Address), Pkcs11Error> {
    let point = uncompressed_point(ec_point)?;
    let key = VerifyingKey::from_sec1_bytes(&point).map_err(|_| Pkcs11Error::EcPointInvalid)?;
    Ok((key, Address::from_uncompressed_pubkey(&point)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    fn point() -> ([u8; 65], Address) {
        let k = SigningKey::from_slice(&[0x42; 32]).unwrap();
        let enc = k.verifying_key().to_encoded_point(false);
        let mut p = [0u8; 65];
        p.copy_from_slice(enc.as_bytes());
        (p, Address::from_verifying_key(k.verifying_key()))
    }

    #[test]
    fn der_wrapped_and_raw_forms_agree() {
        let (p, addr) = point();
        let mut der = vec![0x04, 0x41];
        der.extend_from_slice(&p);
        assert_eq!(der.len(), 67);
        let (k1, a1) = public_key(&der).unwrap();
        let (k2, a2) = public_key(&p).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(a1, addr);
        assert_eq!(a2, addr);
    }

    #[test]
    fn other_forms_refused() {
        let (p, _) = point();
        // Compressed point (33 bytes) and its DER wrapping.
        let k = VerifyingKey::from_sec1_bytes(&p).unwrap();
        let compressed = k.to_encoded_point(true);
        assert_eq!(
            public_key(compressed.as_bytes()),
            Err(Pkcs11Error::EcPointFormat { len: 33 })
        );
        let mut der_c = vec![0x04, 0x21];
        der_c.extend_from_slice(compressed.as_bytes());
        assert_eq!(
            public_key(&der_c),
            Err(Pkcs11Error::EcPointFormat { len: 35 })
        );
        // Long-form DER length (04 81 41 ...) is not what any module emits for 65 bytes.
        let mut long = vec![0x04, 0x81, 0x41];
        long.extend_from_slice(&p);
        assert_eq!(
            public_key(&long),
            Err(Pkcs11Error::EcPointFormat { len: 68 })
        );
        // 67 bytes whose header is not OCTET STRING/65.
        let mut wrong_tag = vec![0x03, 0x41];
        wrong_tag.extend_from_slice(&p);
        assert_eq!(
            public_key(&wrong_tag),
            Err(Pkcs11Error::EcPointFormat { len: 67 })
        );
        // 65 bytes that are not an uncompressed point.
        let mut hybrid = p;
        hybrid[0] = 0x06;
        assert_eq!(
            public_key(&hybrid),
            Err(Pkcs11Error::EcPointFormat { len: 65 })
        );
        assert_eq!(public_key(&[]), Err(Pkcs11Error::EcPointFormat { len: 0 }));
    }

    #[test]
    fn off_curve_point_refused() {
        let (mut p, _) = point();
        p[64] ^= 1;
        assert_eq!(public_key(&p), Err(Pkcs11Error::EcPointInvalid));
        let mut der = vec![0x04, 0x41];
        der.extend_from_slice(&p);
        assert_eq!(public_key(&der), Err(Pkcs11Error::EcPointInvalid));
    }
}
