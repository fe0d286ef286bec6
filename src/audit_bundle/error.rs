//! Why a bundle could not be made, read or verified, each with a stable code. Whether the
//! evidence itself failed (exit 1) or the command could not get that far (exit 2) is
//! [`BundleError::is_evidence_failure`].

use crate::config::ConfigError;
use crate::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The ledger could not be read, or holds no such stretch.
    #[error("{0}")]
    Ledger(LedgerError),
    /// The stretch of the chain does not verify (in the ledger when bundling, in the bundle
    /// when verifying): the same errors `audit verify` reports.
    #[error("{0}")]
    Chain(LedgerError),
    /// A record names a policy hash that is not a SHA-256, so no archive can hold its text.
    #[error("audit record {seq} names policy hash {hash:?}, which is not 64 hex digits")]
    RecordPolicyHash { seq: u64, hash: String },
    /// The policy archive under the data directory cannot give a policy a record names.
    #[error("policy {hash}, named by audit record {seq}, is not in the archive: {detail}")]
    PolicyUnavailable {
        seq: u64,
        hash: String,
        detail: String,
    },
    /// An archived signature is not an SSH signature the bundle can name the key of.
    #[error("archived signature of policy {hash} by {admin:?}: {detail}")]
    SignatureUnreadable {
        hash: String,
        admin: String,
        detail: String,
    },
    #[error("{path} exists; a bundle never replaces a file")]
    Exists { path: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{what} is {size} bytes; a bundle is at most {max} bytes")]
    TooLarge { what: String, size: u64, max: u64 },
    /// Not a bundle of this format; nothing in it was checked.
    #[error("not a well-formed audit bundle: {what}")]
    Malformed { what: String },
    #[error("{0}")]
    Config(ConfigError),
    #[error("{path}: no [policy_admins] section, so it names no administrators to check policy signatures against")]
    NoAdmins { path: String },
    /// A record names a policy the bundle does not carry.
    #[error("audit record {seq} names policy {hash}, which the bundle does not hold")]
    PolicyAbsent { seq: u64, hash: String },
    /// The bundle carries a policy no record names.
    #[error("policy {hash} is in the bundle but no record in it names that policy")]
    PolicyUnnamed { hash: String },
    /// A policy text does not hash to the hash it is carried under (and the records name).
    #[error("policy {hash}: the text in the bundle hashes to {found}, so it is not the policy the records name (edited)")]
    PolicyAltered { hash: String, found: String },
    /// A policy whose `[policy_admins]` is needed does not load with this signer's loader.
    #[error("policy {hash} does not load, so the administrators it names are unknown ({problems} problem(s), the first: {first})")]
    PolicyInvalid {
        hash: String,
        problems: usize,
        first: String,
    },
    /// A policy signature does not verify, or not as the bundle says.
    #[error("policy {hash}: the signature by {admin:?} does not count: {detail}")]
    SignatureInvalid {
        hash: String,
        admin: String,
        detail: String,
    },
    /// The administrators given (`--config`) did not put a policy in force by these
    /// signatures.
    #[error("policy {hash}: {detail}")]
    QuorumNotMet { hash: String, detail: String },
}

impl BundleError {
    /// Stable code, printed as `error [code]`.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::Ledger(e) | BundleError::Chain(e) => e.code(),
            BundleError::RecordPolicyHash { .. } => "audit_bundle_record_policy_hash",
            BundleError::PolicyUnavailable { .. } => "audit_bundle_policy_unavailable",
            BundleError::SignatureUnreadable { .. } => "audit_bundle_signature_unreadable",
            BundleError::Exists { .. } => "audit_bundle_exists",
            BundleError::Write { .. } => "audit_bundle_write",
            BundleError::Read { .. } => "audit_bundle_unreadable",
            BundleError::TooLarge { .. } => "audit_bundle_too_large",
            BundleError::Malformed { .. } => "audit_bundle_malformed",
            BundleError::Config(e) => e.code(),
            BundleError::NoAdmins { .. } => "audit_bundle_no_admins",
            BundleError::PolicyAbsent { .. } => "audit_bundle_policy_absent",
            BundleError::PolicyUnnamed { .. } => "audit_bundle_policy_unnamed",
            BundleError::PolicyAltered { .. } => "audit_bundle_policy_altered",
            BundleError::PolicyInvalid { .. } => "audit_bundle_policy_invalid",
            BundleError::SignatureInvalid { .. } => "audit_bundle_signature_invalid",
            BundleError::QuorumNotMet { .. } => "audit_bundle_quorum_not_met",
        }
    }

    /// Whether the evidence was checked and found wanting (exit 1), rather than not
    /// checked at all: unreadable, malformed, a bad range or flag (exit 2).
    pub fn is_evidence_failure(&self) -> bool {
        matches!(
            self,
            BundleError::Chain(_)
                | BundleError::PolicyAbsent { .. }
                | BundleError::PolicyUnnamed { .. }
                | BundleError::PolicyAltered { .. }
                | BundleError::PolicyInvalid { .. }
                | BundleError::SignatureInvalid { .. }
                | BundleError::QuorumNotMet { .. }
        )
    }
}
