//! Deposit addresses without keys: the account xpub and its derivation live in the wire
//! crate ([`tron_proto::hd`]), shared with the signer, whose policy names the same account.

pub use tron_proto::hd::{AccountXpub, DepositAddressError};
