//! A secp256k1 key held in process memory (the encrypted keystore's backend).

use std::fmt;

use k256::ecdsa::SigningKey;
use secrecy::{ExposeSecret, SecretBox};
use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

/// Why a software key could not be loaded or used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoftKeyError {
    #[error("private key is not a valid secp256k1 scalar (zero or not below the curve order)")]
    InvalidKey,
    #[error("signing failed")]
    SignFailed,
}

/// A private key in memory. `SigningKey` zeroizes its scalar on drop; `Debug` shows only
/// the address.
pub struct SoftKey {
    key: SigningKey,
    address: Address,
}

impl SoftKey {
    /// Loads a key from its 32-byte big-endian scalar.
    pub fn from_secret(secret: &SecretBox<[u8; 32]>) -> Result<Self, SoftKeyError> {
        let key = SigningKey::from_bytes(secret.expose_secret().into())
            .map_err(|_| SoftKeyError::InvalidKey)?;
        let address = Address::from_verifying_key(key.verifying_key());
        Ok(SoftKey { key, address })
    }

    /// Writes the 32-byte scalar into `out` (the keystore's locked buffer when saving) and
    /// wipes the temporary copy. Crate-private: key bytes never leave the signer.
    pub(crate) fn write_secret(&self, out: &mut [u8; 32]) {
        use zeroize::Zeroize;
        let mut bytes = self.key.to_bytes();
        out.copy_from_slice(&bytes);
        let raw: &mut [u8] = &mut bytes;
        raw.zeroize();
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn verifying_key(&self) -> &k256::ecdsa::VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs the 32-byte txid itself (Tron adds no prefix): RFC 6979, low S, v in {0, 1}.
    pub fn sign_txid(&self, txid: &[u8; 32]) -> Result<RecoverableSignature, SoftKeyError> {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(txid)
            .map_err(|_| SoftKeyError::SignFailed)?;
        // k256 already emits low S; keep the rule explicit so a dependency change cannot
        // silently break it.
        let (sig, recid) = match sig.normalize_s() {
            Some(low) => (
                low,
                k256::ecdsa::RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()),
            ),
            None => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte();
        Ok(out)
    }
}

impl fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tron_proto::sig::{is_low_s, recover_address};

    fn key(hex_scalar: &str) -> SoftKey {
        let mut b = [0u8; 32];
        hex::decode_to_slice(hex_scalar, &mut b).unwrap();
        SoftKey::from_secret(&SecretBox::new(Box::new(b))).unwrap()
    }

    #[test]
    fn known_vectors() {
        let k = key("279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e");
        assert_eq!(
            k.address().to_base58(),
            "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
        );
        assert_eq!(
            k.address().to_hex(),
            "4194a15629b2b2bbd3a5453e6d6696b2875278633b"
        );
        let one = key("0000000000000000000000000000000000000000000000000000000000000001");
        assert_eq!(
            one.address().to_base58(),
            "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
        );
    }

    #[test]
    fn invalid_scalars_refused() {
        for bad in [[0u8; 32], [0xff; 32]] {
            assert_eq!(
                SoftKey::from_secret(&SecretBox::new(Box::new(bad))).unwrap_err(),
                SoftKeyError::InvalidKey
            );
        }
    }

    #[test]
    fn signatures_are_low_s_deterministic_and_recover() {
        let k = key("279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e");
        for i in 0u32..64 {
            let txid = tron_proto::txid(&i.to_be_bytes());
            let s = k.sign_txid(&txid).unwrap();
            assert!(is_low_s(&s));
            assert!(s[64] <= 1);
            assert_eq!(s, k.sign_txid(&txid).unwrap());
            assert_eq!(recover_address(&txid, &s).unwrap(), k.address());
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let k = key("279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e");
        let dbg = format!("{k:?}");
        assert!(dbg.contains("TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"));
        assert!(!dbg.to_lowercase().contains("279ff36d"));
    }
}
