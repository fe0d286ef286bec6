//! Turning a token's raw `r || s` into a Tron signature, never trusting the token: the
//! signature is verified against the public key the key was loaded with (which also
//! yields v, identical to trial recovery), normalised to low S, and checked against the
//! key's address.

use k256::ecdsa::{Signature, VerifyingKey};
use k256::elliptic_curve::ops::{LinearCombination, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::{FieldBytes, ProjectivePoint, Scalar, U256};
use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

/// Low S, v, and verification in one step, then a check against `address`.
///
/// For a valid (r, s) over z by key Q, R = (z/s)·G + (r/s)·Q has x-coordinate r, and v is
/// R's y parity (flipped when s is replaced by n − s). Computing R once is exactly an
/// ECDSA verification; it yields the same v as trial recovery (the tests hold it to
/// [`complete_signature`](tron_proto::sig::complete_signature)) for a third of the
/// arithmetic, which matters because it shares the cores with the HSM client. Anything
/// that does not verify is an error, never an answer.
pub(super) fn finish_signature(
    txid: &[u8; 32],
    rs: &[u8],
    key: &VerifyingKey,
    address: &Address,
) -> Result<RecoverableSignature, String> {
    if Address::from_verifying_key(key) != *address {
        return Err("the public key is not the address's".into());
    }
    let sig = Signature::from_slice(rs).map_err(|_| format!("not a {}-byte r||s", 64))?;
    let (r, s) = sig.split_scalars();
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*txid));
    let s_inv = Option::<Scalar>::from(s.invert()).ok_or("s is not invertible")?;
    let q = ProjectivePoint::from(*key.as_affine());
    let big_r =
        ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &(z * s_inv), &q, &(*r * s_inv))
            .to_affine();
    if big_r.x() != r.to_bytes() {
        // Either not a signature by this key, or R.x ≥ n, which no Tron v can express.
        return Err("does not verify against the key's public key".into());
    }
    let mut y_odd = bool::from(big_r.y_is_odd());
    let sig = match sig.normalize_s() {
        Some(low) => {
            y_odd = !y_odd;
            low
        }
        None => sig,
    };
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = u8::from(y_odd);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use tron_proto::sig::{complete_signature, is_low_s, recover_address};

    fn key(b: u8) -> SigningKey {
        SigningKey::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn high_s_from_the_device_is_normalised_and_verified() {
        let k = key(7);
        let addr = Address::from_verifying_key(k.verifying_key());
        for i in 0u16..256 {
            let txid = tron_proto::txid(&i.to_be_bytes());
            let (sig, _) = k.sign_prehash_recoverable(&txid).unwrap();
            let high = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
            for rs in [sig.to_bytes(), high.to_bytes()] {
                let out = finish_signature(&txid, &rs, k.verifying_key(), &addr).unwrap();
                assert!(is_low_s(&out));
                assert_eq!(recover_address(&txid, &out).unwrap(), addr);
                // Same bytes as trial recovery would give.
                assert_eq!(
                    out,
                    complete_signature(&txid, &rs, k.verifying_key()).unwrap()
                );
            }
        }
    }

    #[test]
    fn signature_from_another_key_is_refused() {
        let k = key(7);
        let other = key(8);
        let addr = Address::from_verifying_key(k.verifying_key());
        let txid = tron_proto::txid(b"payout");
        let (sig, _) = other.sign_prehash_recoverable(&txid).unwrap();
        assert!(finish_signature(&txid, &sig.to_bytes(), k.verifying_key(), &addr).is_err());
        // A signature by the right key over another txid.
        let (sig2, _) = k.sign_prehash_recoverable(&[0x55; 32]).unwrap();
        assert!(finish_signature(&txid, &sig2.to_bytes(), k.verifying_key(), &addr).is_err());
        // Garbage and short answers too.
        assert!(finish_signature(&txid, &[0u8; 64], k.verifying_key(), &addr).is_err());
        assert!(finish_signature(&txid, &[1u8; 63], k.verifying_key(), &addr).is_err());
    }

    #[test]
    fn final_check_catches_a_public_key_that_is_not_the_address() {
        // The token's public key and the address the key was loaded as disagree: trial
        // recovery succeeds against the public key, the address check must still refuse.
        let k = key(7);
        let wrong_addr = Address::from_verifying_key(key(9).verifying_key());
        let txid = tron_proto::txid(b"payout");
        let (sig, _) = k.sign_prehash_recoverable(&txid).unwrap();
        let err =
            finish_signature(&txid, &sig.to_bytes(), k.verifying_key(), &wrong_addr).unwrap_err();
        assert!(err.contains("not the address"), "{err}");
    }
}
