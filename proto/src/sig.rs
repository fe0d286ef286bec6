//! Recoverable secp256k1 signatures over a txid, as Tron nodes check them.
//!
//! Pure functions only: producing a signature needs a key and lives in the signer's key
//! backends; checking and normalising one is shared with the broadcaster.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

use crate::Address;

/// A 65-byte `r || s || v` signature with v in {0, 1} and low S.
pub type RecoverableSignature = [u8; 65];

/// Why a signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature is {len} bytes, expected {expected}")]
    BadLength { len: usize, expected: usize },
    #[error("recovery byte v={v} is not one of 0, 1, 27, 28")]
    BadRecoveryId { v: u8 },
    #[error("r or s is zero or not below the curve order")]
    BadScalar,
    #[error("no public key can be recovered from this signature")]
    RecoveryFailed,
    #[error("the signature does not belong to the expected public key")]
    KeyMismatch,
}

impl SignatureError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::BadLength { .. } => "signature_bad_length",
            SignatureError::BadRecoveryId { .. } => "signature_bad_v",
            SignatureError::BadScalar => "signature_bad_scalar",
            SignatureError::RecoveryFailed => "signature_recovery_failed",
            SignatureError::KeyMismatch => "signature_key_mismatch",
        }
    }
}

fn parse_v(v: u8) -> Result<RecoveryId, SignatureError> {
    let bit = match v {
        0 | 1 => v,
        27 | 28 => v - 27,
        _ => return Err(SignatureError::BadRecoveryId { v }),
    };
    RecoveryId::from_byte(bit).ok_or(SignatureError::BadRecoveryId { v })
}

/// Recovers the public key that produced `signature` (65 bytes, v in 0/1/27/28) over `txid`.
pub fn recover_key(txid: &[u8; 32], signature: &[u8]) -> Result<VerifyingKey, SignatureError> {
    if signature.len() != 65 {
        return Err(SignatureError::BadLength {
            len: signature.len(),
            expected: 65,
        });
    }
    let recid = parse_v(signature[64])?;
    let sig = Signature::from_slice(&signature[..64]).map_err(|_| SignatureError::BadScalar)?;
    VerifyingKey::recover_from_prehash(txid, &sig, recid)
        .map_err(|_| SignatureError::RecoveryFailed)
}

/// Recovers the Tron address that signed `txid`, as a node does.
pub fn recover_address(txid: &[u8; 32], signature: &[u8]) -> Result<Address, SignatureError> {
    recover_key(txid, signature).map(|k| Address::from_verifying_key(&k))
}

/// Turns a bare 64-byte `r || s` (as an HSM returns it, possibly high-S) into a low-S
/// `r || s || v` by trial recovery against the key that is known to have signed.
pub fn complete_signature(
    txid: &[u8; 32],
    rs: &[u8],
    expected: &VerifyingKey,
) -> Result<RecoverableSignature, SignatureError> {
    if rs.len() != 64 {
        return Err(SignatureError::BadLength {
            len: rs.len(),
            expected: 64,
        });
    }
    let sig = Signature::from_slice(rs).map_err(|_| SignatureError::BadScalar)?;
    let sig = sig.normalize_s().unwrap_or(sig);
    for bit in 0u8..2 {
        let Some(recid) = RecoveryId::from_byte(bit) else {
            continue;
        };
        if let Ok(key) = VerifyingKey::recover_from_prehash(txid, &sig, recid) {
            if &key == expected {
                let mut out = [0u8; 65];
                out[..64].copy_from_slice(&sig.to_bytes());
                out[64] = bit;
                return Ok(out);
            }
        }
    }
    Err(SignatureError::KeyMismatch)
}

/// True when s is in the lower half of the curve order, as Tron and Ethereum expect.
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() >= 64
        && Signature::from_slice(&signature[..64])
            .map(|s| s.normalize_s().is_none())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[0x11; 32]).unwrap()
    }

    #[test]
    fn recovers_with_every_v_convention() {
        let k = key();
        let txid = crate::txid(b"hello");
        let (sig, recid) = k.sign_prehash_recoverable(&txid).unwrap();
        let mut full = [0u8; 65];
        full[..64].copy_from_slice(&sig.to_bytes());
        for v in [recid.to_byte(), recid.to_byte() + 27] {
            full[64] = v;
            let addr = recover_address(&txid, &full).unwrap();
            assert_eq!(addr, Address::from_verifying_key(k.verifying_key()));
        }
        full[64] = 2;
        assert_eq!(
            recover_address(&txid, &full),
            Err(SignatureError::BadRecoveryId { v: 2 })
        );
        full[64] = 29;
        assert_eq!(
            recover_address(&txid, &full),
            Err(SignatureError::BadRecoveryId { v: 29 })
        );
        assert_eq!(
            recover_address(&txid, &full[..64]),
            Err(SignatureError::BadLength {
                len: 64,
                expected: 65
            })
        );
    }

    #[test]
    fn zero_scalars_refused() {
        let txid = [7u8; 32];
        let mut sig = [0u8; 65];
        assert_eq!(recover_key(&txid, &sig), Err(SignatureError::BadScalar));
        sig[..32].fill(0xff); // r above the curve order
        sig[63] = 1;
        assert_eq!(recover_key(&txid, &sig), Err(SignatureError::BadScalar));
    }

    #[test]
    fn completes_high_s_signature() {
        let k = key();
        for i in 0u8..16 {
            let txid = crate::txid(&[i]);
            let (sig, recid) = k.sign_prehash_recoverable(&txid).unwrap();
            // Flip to high S, as an HSM may return it.
            let high = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
            assert!(!is_low_s(&high.to_bytes()));
            let done = complete_signature(&txid, &high.to_bytes(), k.verifying_key()).unwrap();
            assert!(is_low_s(&done));
            assert_eq!(done[..64], sig.to_bytes()[..]);
            assert_eq!(done[64], recid.to_byte());
            assert_eq!(
                recover_address(&txid, &done).unwrap(),
                Address::from_verifying_key(k.verifying_key())
            );
        }
    }

    #[test]
    fn complete_refuses_other_key() {
        let k = key();
        let other = SigningKey::from_slice(&[0x22; 32]).unwrap();
        let txid = crate::txid(b"x");
        let (sig, _) = k.sign_prehash_recoverable(&txid).unwrap();
        assert_eq!(
            complete_signature(&txid, &sig.to_bytes(), other.verifying_key()),
            Err(SignatureError::KeyMismatch)
        );
        assert_eq!(
            complete_signature(&txid, &sig.to_bytes()[..63], k.verifying_key()),
            Err(SignatureError::BadLength {
                len: 63,
                expected: 64
            })
        );
        assert_eq!(
            complete_signature(&txid, &[0u8; 64], k.verifying_key()),
            Err(SignatureError::BadScalar)
        );
    }
}
