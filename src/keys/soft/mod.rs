//! The soft backend: secp256k1 keys in locked process memory, unlocked from the encrypted
//! keystore file it owns ([`keystore`], format in docs/KEYSTORE.md).
//!
//! - [`key`]: [`SoftKey`], one key in memory.
//! - [`hd`]: [`HdAccount`](hd::HdAccount), an HD deposit account's seed and its derivation.
//! - [`keystore`]: the file format and the unlocked [`Keystore`](keystore::Keystore).
//! - [`signer`]: keystore keys as [`KeyBackend`](crate::keys::KeyBackend)s.
//! - [`commands`]: `keys generate | import | list` on a keystore, without the parsing.

pub mod commands;
pub mod hd;
pub mod key;
pub mod keystore;
pub mod signer;

pub use key::{SoftKey, SoftKeyError};
pub use signer::{add_to_ring, KeystoreKey, BACKEND};
