//! tron-signer: decides on the exact bytes of an unsigned Tron transaction, then signs.
//!
//! Data flows one way: bytes ([`decode`]) to intent, intent to decision ([`policy`]),
//! decision to durable record ([`ledger`]), record to signature ([`keys`]); [`service`]
//! runs that path for gRPC callers.
#![forbid(unsafe_code)]

pub mod batch;
pub mod config;
pub mod decode;
pub mod dev;
pub mod durable_file;
pub mod inspect;
pub mod keys;
pub mod keystore;
pub mod ledger;
pub mod no_dumps;
pub mod policy;
pub mod reason;
pub mod secret_source;
pub mod service;
#[cfg(test)]
mod test_util;
