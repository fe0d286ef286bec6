//! Everything that can go wrong in the ledger, each with a stable code.

use thiserror::Error;

/// Errors are `Clone` because one failed group commit is reported to every submitter in it;
/// storage errors are therefore carried as text, never as the original `redb` value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LedgerError {
    /// The data directory or database file could not be created or opened.
    #[error("cannot open the ledger at {path}: {detail}")]
    Open { path: String, detail: String },
    /// A read or write against the store failed; nothing from the failed transaction is durable.
    #[error("ledger storage failure during {during}: {detail}")]
    Storage {
        during: &'static str,
        detail: String,
    },
    /// A stored row does not decode; the database was damaged or written by something else.
    #[error("ledger row is corrupt ({what})")]
    Corrupt { what: String },
    /// With a shared ledger: another signer changed what this change was made from (a
    /// freeze recorded meanwhile, a newer policy in force); nothing was recorded.
    #[error("{what}")]
    Conflict { what: String },
    /// The writer thread has stopped; no further commits are possible in this process.
    #[error("the ledger writer has stopped")]
    WriterStopped,
    /// `reserve` was asked for a txid the ledger already holds (committed or in flight); the
    /// service must look the txid up first.
    #[error("txid {txid} is already in the ledger")]
    Duplicate { txid: String },
    /// A payout id too long to store (over 65535 bytes).
    #[error("payout id is {len} bytes, the ledger stores at most 65535")]
    PayoutIdTooLong { len: usize },
    /// The writer's queue stayed full for the whole wait: the disk is not keeping up.
    /// Nothing was written; retrying later may work.
    #[error("the ledger writer's queue stayed full for {waited_ms} ms; retry later")]
    QueueFull { waited_ms: u64 },
    /// An earlier write failed and the database has not been reopened yet (a full disk, an
    /// I/O error): nothing is recorded, so nothing is signed, until it is.
    #[error("the ledger database failed and is not reopened yet ({detail}); retry later")]
    StoreFailed { detail: String },
    /// A write failure requested by a test through the fault-injection hook.
    #[error("injected ledger write failure")]
    Injected,
    /// At open, the chain head row disagrees with the last audit record.
    #[error("audit chain head (seq {head_seq}) does not match the last record (seq {last_seq})")]
    HeadMismatch { head_seq: u64, last_seq: u64 },
    /// Audit verification: the record's hash does not match its contents.
    #[error("audit record {seq} was modified (its hash does not match its contents)")]
    AuditModified { seq: u64 },
    /// Audit verification: a sequence number is missing.
    #[error("audit record {seq} was deleted (sequence gap)")]
    AuditDeleted { seq: u64 },
    /// Audit verification: a record sits under the wrong sequence number.
    #[error("audit record {seq} was reordered (stored under a different sequence number)")]
    AuditReordered { seq: u64 },
    /// Audit verification: a record's previous-hash does not match the record before it, so
    /// one of the two was rewritten (with a recomputed hash) or replaced.
    #[error("audit record {seq} does not link to record {prev} (one of them was rewritten)")]
    AuditChainBroken { seq: u64, prev: u64 },
    /// Audit verification: the records end before the recorded chain head.
    #[error("audit log truncated: record {seq} is missing, the head is at {head}")]
    AuditTruncated { seq: u64, head: u64 },
    /// Audit verification: records exist past the recorded chain head.
    #[error("audit record {seq} lies beyond the recorded head {head}")]
    AuditBeyondHead { seq: u64, head: u64 },
    /// Audit verification: the chain head row is missing or its hash disagrees with the last record.
    #[error("audit chain head is missing or does not match record {seq}")]
    AuditHeadInvalid { seq: u64 },
    /// Audit verification: a record's approvals do not verify (a signature over other text,
    /// another key than the record names, or a statement for another request).
    #[error("audit record {seq} keeps approvals that do not verify: {detail}")]
    AuditApprovalInvalid { seq: u64, detail: String },
    /// A stretch of the chain was asked for that it does not hold (`audit bundle`).
    #[error("cannot take audit records {from} to {to}: {why}")]
    AuditRange { from: u64, to: u64, why: String },
    /// `audit prune` would remove something still needed, or something its archive does not
    /// hold exactly as stored; nothing was removed.
    #[error("nothing pruned: {why}")]
    PruneRefused { why: String },
    /// Writing the export or the verification report failed.
    #[error("cannot write output: {detail}")]
    Output { detail: String },
}

impl LedgerError {
    /// Stable machine-readable code, for logs, exit statuses and tests.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Conflict { .. } => "ledger_conflict",
            LedgerError::Open { .. } => "ledger_open",
            LedgerError::Storage { .. } => "ledger_storage",
            LedgerError::Corrupt { .. } => "ledger_corrupt",
            LedgerError::WriterStopped => "ledger_writer_stopped",
            LedgerError::Duplicate { .. } => "ledger_duplicate_txid",
            LedgerError::PayoutIdTooLong { .. } => "ledger_payout_id_too_long",
            LedgerError::QueueFull { .. } => "ledger_queue_full",
            LedgerError::StoreFailed { .. } => "ledger_store_failed",
            LedgerError::Injected => "ledger_injected_failure",
            LedgerError::HeadMismatch { .. } => "ledger_head_mismatch",
            LedgerError::AuditModified { .. } => "audit_modified",
            LedgerError::AuditDeleted { .. } => "audit_deleted",
            LedgerError::AuditReordered { .. } => "audit_reordered",
            LedgerError::AuditChainBroken { .. } => "audit_chain_broken",
            LedgerError::AuditTruncated { .. } => "audit_truncated",
            LedgerError::AuditBeyondHead { .. } => "audit_beyond_head",
            LedgerError::AuditHeadInvalid { .. } => "audit_head_invalid",
            LedgerError::AuditApprovalInvalid { .. } => "audit_approval_invalid",
            LedgerError::AuditRange { .. } => "audit_range",
            LedgerError::PruneRefused { .. } => "audit_prune_refused",
            LedgerError::Output { .. } => "output",
        }
    }

    /// The first bad sequence number, for the audit verification variants.
    pub fn bad_sequence(&self) -> Option<u64> {
        match self {
            LedgerError::AuditModified { seq }
            | LedgerError::AuditDeleted { seq }
            | LedgerError::AuditReordered { seq }
            | LedgerError::AuditTruncated { seq, .. }
            | LedgerError::AuditBeyondHead { seq, .. }
            | LedgerError::AuditHeadInvalid { seq }
            | LedgerError::AuditApprovalInvalid { seq, .. } => Some(*seq),
            LedgerError::AuditChainBroken { prev, .. } => Some(*prev),
            _ => None,
        }
    }

    pub(crate) fn storage(during: &'static str, e: impl std::fmt::Display) -> Self {
        LedgerError::Storage {
            during,
            detail: e.to_string(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        LedgerError::Corrupt { what: what.into() }
    }
}
