//! HD deposit accounts, public side: the account-level extended public key
//! (`m/44'/195'/a'`) and the deposit addresses it derives along the non-hardened external
//! chain `0/i`. Shared by the receive side (which hands out addresses and holds nothing
//! else) and the signer (whose policy names the account by this key and checks that a
//! deposit key it derives is the address the request names).
//!
//! Why watch-only: an extended public key lets the online side hand out fresh addresses,
//! but it cannot spend from them; the matching private keys stay in the signer. For the
//! same reason an extended *private* key is refused outright, with an error that names the
//! mistake and never echoes the text: pasting an `xprv` where an xpub belongs is a security
//! error, not a typo.
//!
//! Why so strict about the key: an xpub for the wrong network, the wrong depth or a
//! non-hardened parent would still derive valid-looking addresses, only not ones the
//! signer's HD account can spend. Every such key is refused by its own error code rather
//! than producing addresses nobody holds keys for.
//!
//! The derivation is BIP-32 public child derivation (the `bip32` crate, on the workspace's
//! k256); the address is Tron's `0x41 || keccak256(x || y)[12..]` of the uncompressed child
//! key ([`Address::from_verifying_key`]).

use std::fmt;

use crate::Address;
use bip32::{ChildNumber, ExtendedKey, Prefix, XPub};

/// The longest text looked at: a Base58Check extended key of 78 bytes is 111 characters.
/// Longer input is refused before decoding, whose cost grows with the length.
const MAX_XPUB_TEXT_LEN: usize = ExtendedKey::MAX_BASE58_SIZE;
/// Depth of `m/44'/195'/account'`.
const ACCOUNT_DEPTH: u8 = 3;
/// The external (receiving) chain under the account, `.../0/i`.
const EXTERNAL_CHAIN: u32 = 0;

/// Why an extended key or a child index was refused. The messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepositAddressError {
    #[error("the extended key is empty")]
    Empty,
    #[error("the extended key is {len} characters long, longer than any extended key")]
    TooLong { len: usize },
    #[error("the extended key is not a valid Base58Check extended key")]
    Malformed,
    /// An `xprv` (or any key whose payload is a private key): never accepted here.
    #[error(
        "this is an extended PRIVATE key; the receive side takes only the account's extended \
         public key (xpub): discard this copy and export the xpub from the signer"
    )]
    PrivateKey,
    #[error(
        "the extended key has version {version:#010x}, not a mainnet xpub (0x0488b21e); \
         tpub/ypub/zpub keys are not accepted"
    )]
    WrongVersion { version: u32 },
    #[error("the extended key is at depth {depth}, not 3 (the account level m/44'/195'/0')")]
    WrongDepth { depth: u8 },
    #[error("the extended key's own child number is not hardened, so it is not an account key")]
    NotHardenedAccount,
    #[error("deposit index {index} is at or above 2^31 (only non-hardened children exist)")]
    IndexTooLarge { index: u32 },
    /// The vanishingly rare BIP-32 case of an invalid child (probability below 2^-127).
    #[error("deposit index {index} derives no valid key; use the next index")]
    InvalidChild { index: u32 },
}

impl DepositAddressError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DepositAddressError::Empty => "xpub_empty",
            DepositAddressError::TooLong { .. } => "xpub_too_long",
            DepositAddressError::Malformed => "xpub_malformed",
            DepositAddressError::PrivateKey => "xpub_is_private",
            DepositAddressError::WrongVersion { .. } => "xpub_wrong_version",
            DepositAddressError::WrongDepth { .. } => "xpub_wrong_depth",
            DepositAddressError::NotHardenedAccount => "xpub_not_account_level",
            DepositAddressError::IndexTooLarge { .. } => "deposit_index_too_large",
            DepositAddressError::InvalidChild { .. } => "deposit_index_invalid_child",
        }
    }
}

/// The account's extended public key, already stepped down to the external chain `0`, so
/// each address costs one public derivation.
#[derive(Clone)]
pub struct AccountXpub {
    /// The account key (`m/44'/195'/a'`), kept to report its fingerprint.
    account: XPub,
    /// `m/44'/195'/a'/0`.
    external: XPub,
}

impl fmt::Debug for AccountXpub {
    // Public, but shown by fingerprint only: it is enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountXpub")
            .field("fingerprint", &hex::encode(self.account.fingerprint()))
            .field("account", &self.account_number())
            .finish()
    }
}

/// Two keys are equal when they name the same account ([`AccountXpub::same_account`]).
impl PartialEq for AccountXpub {
    fn eq(&self, other: &AccountXpub) -> bool {
        self.same_account(other)
    }
}

impl Eq for AccountXpub {}

impl AccountXpub {
    /// Parses a mainnet `xpub…` at depth 3 with a hardened child number.
    ///
    /// Checks in this order: empty, length, Base58Check, private key, version, depth,
    /// hardened account, then the point itself.
    pub fn parse(text: &str) -> Result<AccountXpub, DepositAddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DepositAddressError::Empty);
        }
        if text.len() > MAX_XPUB_TEXT_LEN {
            return Err(DepositAddressError::TooLong { len: text.len() });
        }
        let key: ExtendedKey = text.parse().map_err(|_| DepositAddressError::Malformed)?;
        // A private payload starts with 0x00; checked apart from the prefix so that a
        // private key under a relabelled version is refused as private, not as a version.
        if key.prefix.is_private() || key.key_bytes[0] == 0 {
            return Err(DepositAddressError::PrivateKey);
        }
        if key.prefix.version() != Prefix::XPUB.version() {
            return Err(DepositAddressError::WrongVersion {
                version: key.prefix.version(),
            });
        }
        if key.attrs.depth != ACCOUNT_DEPTH {
            return Err(DepositAddressError::WrongDepth {
                depth: key.attrs.depth,
            });
        }
        if !key.attrs.child_number.is_hardened() {
            return Err(DepositAddressError::NotHardenedAccount);
        }
        let account = XPub::try_from(key).map_err(|_| DepositAddressError::Malformed)?;
        let chain =
            ChildNumber::new(EXTERNAL_CHAIN, false).map_err(|_| DepositAddressError::Malformed)?;
        let external = account
            .derive_child(chain)
            .map_err(|_| DepositAddressError::Malformed)?;
        Ok(AccountXpub { account, external })
    }

    /// The key as text (`xpub…`), as the policy and the receive side's config write it.
    pub fn to_text(&self) -> String {
        self.account.to_extended_key(Prefix::XPUB).to_string()
    }

    /// Whether both name the same account: same public key and chain code (the metadata
    /// around them, such as the parent fingerprint, is not part of what derives addresses).
    pub fn same_account(&self, other: &AccountXpub) -> bool {
        self.account.to_bytes() == other.account.to_bytes()
            && self.account.attrs().chain_code == other.account.attrs().chain_code
    }

    /// The account number `a` of `m/44'/195'/a'` (without the hardened flag).
    pub fn account_number(&self) -> u32 {
        self.account.attrs().child_number.index()
    }

    /// The account key's BIP-32 fingerprint (first 4 bytes of HASH160 of its public key).
    pub fn fingerprint(&self) -> [u8; 4] {
        self.account.fingerprint()
    }

    /// The deposit address `m/44'/195'/a'/0/index`.
    pub fn address(&self, index: u32) -> Result<Address, DepositAddressError> {
        if index >= ChildNumber::HARDENED_FLAG {
            return Err(DepositAddressError::IndexTooLarge { index });
        }
        let child = ChildNumber::new(index, false)
            .map_err(|_| DepositAddressError::IndexTooLarge { index })?;
        let key = self
            .external
            .derive_child(child)
            .map_err(|_| DepositAddressError::InvalidChild { index })?;
        Ok(Address::from_verifying_key(key.public_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bip32::{DerivationPath, XPrv};

    /// The BIP-39 seed of the test mnemonic "abandon abandon ... about" (all-zero entropy,
    /// 12 words) with an empty passphrase. bip32 0.5's own mnemonic type takes only 24
    /// words, so the seed is given; the published addresses below confirm it.
    const SEED: &str = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                        9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
    /// Published for that mnemonic at m/44'/195'/0'/0/0 and /1 (Ian Coleman's BIP-39 tool,
    /// the Ledger Tron app's test script, several wallets' test suites agree).
    const ADDRESS_0: &str = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH";
    const ADDRESS_1: &str = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK";

    fn seed() -> Vec<u8> {
        hex::decode(SEED).unwrap()
    }

    fn xprv(path: &str) -> XPrv {
        XPrv::derive_from_path(seed(), &path.parse::<DerivationPath>().unwrap()).unwrap()
    }

    fn account_xpub_text() -> String {
        xprv("m/44'/195'/0'").public_key().to_string(Prefix::XPUB)
    }

    #[test]
    fn published_vectors() {
        let acct = AccountXpub::parse(&account_xpub_text()).unwrap();
        assert_eq!(acct.address(0).unwrap().to_base58(), ADDRESS_0);
        assert_eq!(acct.address(1).unwrap().to_base58(), ADDRESS_1);
        assert_eq!(acct.account_number(), 0);
    }

    #[test]
    fn public_derivation_matches_the_private_path() {
        let acct = AccountXpub::parse(&account_xpub_text()).unwrap();
        for i in [0u32, 1, 2, 7, 1000, (1 << 31) - 1] {
            let private = xprv(&format!("m/44'/195'/0'/0/{i}"));
            let expected = Address::from_verifying_key(private.private_key().verifying_key());
            assert_eq!(acct.address(i).unwrap(), expected, "index {i}");
        }
    }

    #[test]
    fn a_private_key_is_refused_and_never_echoed() {
        let text = xprv("m/44'/195'/0'").to_string(Prefix::XPRV);
        let e = AccountXpub::parse(&text).unwrap_err();
        assert_eq!(e.code(), "xpub_is_private");
        assert!(!e.to_string().contains(&text[4..20]));
        // The private payload under a public version is still private.
        let mut relabelled = xprv("m/44'/195'/0'").to_extended_key(Prefix::XPRV);
        relabelled.prefix = Prefix::XPUB;
        assert_eq!(
            AccountXpub::parse(&relabelled.to_string())
                .unwrap_err()
                .code(),
            "xpub_is_private"
        );
    }

    #[test]
    fn refusals_by_code() {
        let account = xprv("m/44'/195'/0'").public_key();
        for prefix in [Prefix::TPUB, Prefix::YPUB, Prefix::ZPUB] {
            let e = AccountXpub::parse(&account.to_string(prefix)).unwrap_err();
            assert_eq!(e.code(), "xpub_wrong_version", "{}", prefix.as_str());
        }
        for (path, depth) in [("m", 0), ("m/44'/195'", 2), ("m/44'/195'/0'/0", 4)] {
            let text = xprv(path).public_key().to_string(Prefix::XPUB);
            assert_eq!(
                AccountXpub::parse(&text).unwrap_err(),
                DepositAddressError::WrongDepth { depth },
                "{path}"
            );
        }
        let soft = xprv("m/44'/195'/0").public_key().to_string(Prefix::XPUB);
        assert_eq!(
            AccountXpub::parse(&soft).unwrap_err().code(),
            "xpub_not_account_level"
        );
        let good = account.to_string(Prefix::XPUB);
        let mut broken = good.clone().into_bytes();
        broken[50] = if broken[50] == b'a' { b'b' } else { b'a' };
        let broken = String::from_utf8(broken).unwrap();
        assert_eq!(
            AccountXpub::parse(&broken).unwrap_err().code(),
            "xpub_malformed"
        );
        assert_eq!(AccountXpub::parse("  ").unwrap_err().code(), "xpub_empty");
        assert_eq!(
            AccountXpub::parse(&"x".repeat(10_000)).unwrap_err().code(),
            "xpub_too_long"
        );
        let acct = AccountXpub::parse(&good).unwrap();
        for index in [1u32 << 31, u32::MAX] {
            assert_eq!(
                acct.address(index).unwrap_err(),
                DepositAddressError::IndexTooLarge { index }
            );
        }
    }

    #[test]
    fn text_round_trips_and_accounts_compare_by_key() {
        let text = account_xpub_text();
        let acct = AccountXpub::parse(&text).unwrap();
        assert_eq!(acct.to_text(), text);
        assert!(acct.same_account(&AccountXpub::parse(&text).unwrap()));
        let other = xprv("m/44'/195'/1'").public_key().to_string(Prefix::XPUB);
        assert!(!acct.same_account(&AccountXpub::parse(&other).unwrap()));
    }

    #[test]
    fn debug_shows_the_fingerprint_only() {
        let text = account_xpub_text();
        let shown = format!("{:?}", AccountXpub::parse(&text).unwrap());
        assert!(shown.contains("fingerprint"), "{shown}");
        assert!(!shown.contains(&text[4..20]), "{shown}");
    }
}
