//! Key backends. Each turns a txid into a low-S `r || s || v` signature without ever
//! exposing the private key; the service only sees [`KeyBackend`].
//!
//! Each backend owns everything about itself: [`soft`] the encrypted keystore file and its
//! commands, [`pkcs11`] (behind the `pkcs11` Cargo feature) its token configuration,
//! session pool and commands. Neither knows the other, and this module only names them.

mod backend;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
mod ring;
pub mod soft;

pub use backend::{DepositKeys, KeyBackend, KeyError, SignFuture};
pub use ring::KeyRing;
pub use soft::SoftKey;
