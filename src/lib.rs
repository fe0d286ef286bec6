//! tron-signer: decides on the exact bytes of an unsigned Tron transaction, then signs.
//!
//! Data flows one way: bytes ([`decode`]) to intent, intent to signature ([`keys`]).
#![forbid(unsafe_code)]

pub mod decode;
pub mod inspect;
pub mod keys;
pub mod ledger;
pub mod policy;
pub mod keystore;
pub mod secret_source;
