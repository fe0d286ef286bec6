//! tron-signer: decides on the exact bytes of an unsigned Tron transaction, then signs.
//!
//! Data flows one way: bytes ([`decode`]) to intent, intent to decision ([`policy`]),
//! decision to durable record ([`ledger`]), record to signature ([`keys`]); [`service`]
//! runs that path for gRPC callers and [`batch`] for batch files; [`approve`] is an
//! approver's side of [`approval`]s; [`audit_bundle`] is offline evidence for auditors;
//! [`cli`] is the command line. Modules only the command line uses (`dev`, `inspect`, `no_dumps`) are private.
#![forbid(unsafe_code)]

pub mod approval;
pub mod approve;
pub mod audit_bundle;
pub mod batch;
pub mod cli;
pub mod config;
pub mod decode;
mod dev;
mod dev_pki;
pub mod durable_file;
pub mod freeze;
pub mod governance;
mod inspect;
pub mod keys;
pub mod ledger;
pub mod metrics;
mod no_dumps;
pub mod policy;
pub mod private_file;
pub mod reason;
pub mod replay;
pub mod retention;
pub mod secret_source;
pub mod service;
pub mod sshsig;
#[cfg(test)]
mod test_util;

/// The soft backend's keystore file, at the path benchmarks and tools have always used.
pub use keys::soft::keystore;
