//! HD deposit accounts in the keystore: a 32-byte BIP-32 seed, from which the signer holds
//! the account's external chain `m/44'/195'/0'/0` and derives the deposit key of one index
//! when a sweep asks for it. The account xpub (`m/44'/195'/0'`) is what the receive side
//! and the policy know; with any one child private key it reveals every key of the account,
//! so child keys are derived for the request that needs them and never leave the signer.

use std::fmt;

use bip32::{ChildNumber, XPrv};
use secrecy::SecretBox;
use tron_proto::hd::AccountXpub;
use zeroize::Zeroize;

use super::key::SoftKey;

/// BIP-44 purpose and SLIP-44 coin type of Tron, then the account (all hardened).
const ACCOUNT_PATH: [u32; 3] = [44, 195, 0];
/// The external (receiving) chain under the account.
const EXTERNAL_CHAIN: u32 = 0;

/// Why an HD account or one of its keys could not be derived. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HdError {
    /// The BIP-32 probability-2^-127 case, or a seed that derives no valid master key.
    #[error("the seed derives no valid account key")]
    InvalidSeed,
    #[error("deposit index {0} is at or above 2^31 (only non-hardened children exist)")]
    IndexTooLarge(u32),
    #[error("deposit index {0} derives no valid key")]
    InvalidChild(u32),
}

/// One HD account, unlocked. The seed is wiped on drop (the `SigningKey` inside the
/// extended key wipes itself); `Debug` shows the account fingerprint only.
pub struct HdAccount {
    seed: [u8; 32],
    external: XPrv,
    xpub: AccountXpub,
}

impl fmt::Debug for HdAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdAccount")
            .field("xpub", &self.xpub)
            .finish()
    }
}

impl Drop for HdAccount {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

fn hardened(i: u32) -> Result<ChildNumber, HdError> {
    ChildNumber::new(i, true).map_err(|_| HdError::InvalidSeed)
}

impl HdAccount {
    /// Derives the account `m/44'/195'/0'` of `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<HdAccount, HdError> {
        let mut key = XPrv::new(seed).map_err(|_| HdError::InvalidSeed)?;
        for i in ACCOUNT_PATH {
            key = key
                .derive_child(hardened(i)?)
                .map_err(|_| HdError::InvalidSeed)?;
        }
        let text = key
            .public_key()
            .to_extended_key(bip32::Prefix::XPUB)
            .to_string();
        let xpub = AccountXpub::parse(&text).map_err(|_| HdError::InvalidSeed)?;
        let chain = ChildNumber::new(EXTERNAL_CHAIN, false).map_err(|_| HdError::InvalidSeed)?;
        let external = key.derive_child(chain).map_err(|_| HdError::InvalidSeed)?;
        Ok(HdAccount {
            seed: *seed,
            external,
            xpub,
        })
    }

    /// The account's extended public key, as the policy and the receive side name it.
    pub fn xpub(&self) -> &AccountXpub {
        &self.xpub
    }

    /// The deposit key `m/44'/195'/0'/0/index`.
    pub fn derive(&self, index: u32) -> Result<SoftKey, HdError> {
        let child = ChildNumber::new(index, false).map_err(|_| HdError::IndexTooLarge(index))?;
        let key = self
            .external
            .derive_child(child)
            .map_err(|_| HdError::InvalidChild(index))?;
        let secret = SecretBox::<[u8; 32]>::init_with_mut(|b| {
            let mut bytes = key.private_key().to_bytes();
            b.copy_from_slice(&bytes);
            let raw: &mut [u8] = &mut bytes;
            raw.zeroize();
        });
        SoftKey::from_secret(&secret).map_err(|_| HdError::InvalidChild(index))
    }

    /// Writes the seed into `out` (the keystore's locked buffer when saving).
    pub(crate) fn write_seed(&self, out: &mut [u8; 32]) {
        out.copy_from_slice(&self.seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_the_addresses_the_xpub_derives() {
        let account = HdAccount::from_seed(&[7u8; 32]).unwrap();
        for i in [0u32, 1, 99_999, (1 << 31) - 1] {
            let key = account.derive(i).unwrap();
            assert_eq!(key.address(), account.xpub().address(i).unwrap(), "{i}");
        }
        assert_eq!(
            account.derive(1 << 31).unwrap_err(),
            HdError::IndexTooLarge(1 << 31)
        );
        let other = HdAccount::from_seed(&[8u8; 32]).unwrap();
        assert!(!other.xpub().same_account(account.xpub()));
    }

    #[test]
    fn debug_shows_no_seed() {
        let account = HdAccount::from_seed(&[7u8; 32]).unwrap();
        let shown = format!("{account:?}");
        assert!(shown.contains("fingerprint"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }
}
