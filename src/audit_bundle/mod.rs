//! Offline evidence for auditors: `tron-signer audit bundle` writes one file holding a
//! stretch of the audit chain with every policy text its records name, the administrators'
//! signatures over each, and (inside the records) the approvals; `tron-signer audit verify
//! --bundle` checks all of it on a machine with no access to the signer.
//!
//! The file is one JSON document ([`format::FORMAT`], at most [`format::MAX_BUNDLE_BYTES`]):
//!
//! ```text
//! { "format": "tron-signer-audit-bundle/1", "from": F, "to": T,
//!   "anchor": hex of the stored hash of record F-1 (64 zeros when F is 1),
//!   "records": [ { "sequence": N, "canonical": hex of the record's canonical bytes,
//!                  "hash": hex of the SHA-256 stored after them } … ],
//!   "policies": [ { "hash": hex SHA-256 of the text, "text": the exact policy text,
//!                   "signatures": [ { "admin": name, "key": OpenSSH public key line,
//!                                     "signature": armored SSHSIG } … ] } … ] }
//! ```
//!
//! Records are carried as the ledger stores them, so they verify as `audit verify` checks
//! the ledger; the readable view of them is `audit export`. The anchor is what ties the
//! stretch to the chain before it: compare it with record F-1's hash in an earlier bundle.
//!
//! [`write`] makes a bundle, [`verify`] checks one; [`format`] is the file; [`error`] the
//! codes of both.

pub mod error;
pub mod format;
pub mod verify;
pub mod write;

pub use error::BundleError;
pub use format::Bundle;
pub use verify::{verify, Admins, Report};
pub use write::{check_new, make, save};

use std::path::Path;

/// Reads a bundle file: its size is checked before a byte of it is read.
pub fn read(path: &Path) -> Result<Bundle, BundleError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let io = |e: std::io::Error| BundleError::Read {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > format::MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge {
            what: shown.clone(),
            size,
            max: format::MAX_BUNDLE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // A file that grew since: never more than the bound.
    file.take(format::MAX_BUNDLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Bundle::parse(&bytes)
}

/// The administrators in a signer config's `[policy_admins]`, to check a bundle's policy
/// signatures against.
pub fn admins_from_config(path: &Path) -> Result<crate::governance::AdminSet, BundleError> {
    let cfg = crate::config::Config::load(path).map_err(BundleError::Config)?;
    cfg.policy_admins
        .map(|a| a.0)
        .ok_or_else(|| BundleError::NoAdmins {
            path: path.display().to_string(),
        })
}
