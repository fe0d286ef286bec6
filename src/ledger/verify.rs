//! Offline verification and export of the audit chain.
//!
//! Opens the database read-only (in redb's single-writer mode, so it also works beside a
//! running service). A database that needs crash recovery is refused read-only; starting the
//! service once repairs it.

use std::io::Write;
use std::path::Path;

use redb::{ReadOnlyDatabase, ReadableDatabase, ReadableTable};

use super::audit::open_row;
use super::error::LedgerError;
use super::schema::{Head, AUDIT, DB_FILE, META, META_AUDIT_HEAD};

/// A chain that verified: how many records, and the hash of the last one (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked: those after the anchor, up to the head.
    pub records: u64,
    /// Where the check started: the last record `audit prune` removed (sequence and stored
    /// hash), or `None` on a ledger never pruned (the check started at genesis).
    pub anchor: Option<(u64, String)>,
    pub head_hash: String,
    /// How many records keep approvals, each re-verified.
    pub with_approvals: u64,
}

pub(super) fn open_ro(dir: &Path) -> Result<ReadOnlyDatabase, LedgerError> {
    let path = dir.join(DB_FILE);
    if !path.is_file() {
        return Err(LedgerError::Open {
            path: path.display().to_string(),
            detail: "no ledger database here".into(),
        });
    }
    redb::Builder::new()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .open_read_only(&path)
        .map_err(|e| {
            // A read-only open cannot run redb's crash recovery: say what does.
            let hint = if matches!(e, redb::DatabaseError::RepairAborted) {
                "; the file was not closed cleanly (the signer was killed or lost power) and \
                 needs the recovery only a writer runs: start the signer once (it repairs the \
                 file at open, losing nothing committed), then run this again, beside it or \
                 after it stopped"
            } else {
                ""
            };
            LedgerError::Open {
                path: path.display().to_string(),
                detail: format!("{e}{hint}"),
            }
        })
}

/// Walks every record in key order and checks each with [`check_next`]. Then the last
/// record must be the recorded head (truncated / beyond head / head invalid).
pub(crate) fn verify(dir: &Path) -> Result<VerifyReport, LedgerError> {
    let db = open_ro(dir)?;
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    let audit = rtx
        .open_table(AUDIT)
        .map_err(|e| LedgerError::storage("open audit", e))?;
    let head = meta
        .get(META_AUDIT_HEAD)
        .map_err(|e| LedgerError::storage("read head", e))?
        .map(|v| Head::decode(v.value()));

    let anchor = super::schema::read_anchor(&meta)?;
    let mut prev = anchor;
    let mut report_approvals = 0u64;
    for item in audit
        .iter()
        .map_err(|e| LedgerError::storage("iterate audit", e))?
    {
        let (k, v) = item.map_err(|e| LedgerError::storage("read audit", e))?;
        let checked = check_next(prev, k.value(), v.value())?;
        if checked.approvals.is_some() {
            report_approvals += 1;
        }
        prev = checked.head;
    }

    conclude(anchor, prev, head, report_approvals)
}

/// The chain walked from `anchor` ended at `prev`; checks that against the recorded head
/// (`None`: no head recorded; `Some(None)`: one that does not decode).
pub(crate) fn conclude(
    anchor: Head,
    prev: Head,
    head: Option<Option<Head>>,
    with_approvals: u64,
) -> Result<VerifyReport, LedgerError> {
    let head = match head {
        None if prev.seq == 0 => Head::GENESIS,
        None => return Err(LedgerError::AuditHeadInvalid { seq: prev.seq }),
        Some(None) => return Err(LedgerError::AuditHeadInvalid { seq: prev.seq }),
        Some(Some(h)) => h,
    };
    if prev.seq < head.seq {
        return Err(LedgerError::AuditTruncated {
            seq: prev.seq + 1,
            head: head.seq,
        });
    }
    if prev.seq > head.seq {
        return Err(LedgerError::AuditBeyondHead {
            seq: head.seq + 1,
            head: head.seq,
        });
    }
    if prev.hash != head.hash {
        return Err(LedgerError::AuditHeadInvalid { seq: head.seq });
    }
    Ok(VerifyReport {
        records: prev.seq - anchor.seq,
        anchor: (anchor.seq > 0).then(|| (anchor.seq, hex::encode(anchor.hash))),
        head_hash: hex::encode(prev.hash),
        with_approvals,
    })
}

/// Hands every audit record, in order, to `each` (read-only, beside a running service);
/// stops at the first record `each` returns `false` for. Returns how many were read.
pub(crate) fn each_record(
    dir: &Path,
    each: &mut dyn FnMut(super::ChainedRecord) -> bool,
) -> Result<u64, LedgerError> {
    let db = open_ro(dir)?;
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let audit = rtx
        .open_table(AUDIT)
        .map_err(|e| LedgerError::storage("open audit", e))?;
    let mut n = 0u64;
    for item in audit
        .iter()
        .map_err(|e| LedgerError::storage("iterate audit", e))?
    {
        let (k, v) = item.map_err(|e| LedgerError::storage("read audit", e))?;
        let opened = open_row(k.value(), v.value())?;
        n += 1;
        if !each(opened.record) {
            break;
        }
    }
    Ok(n)
}

/// What one record that checked out says: its place in the chain, the policy it names and
/// how many approvals it keeps (each re-verified), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedRecord {
    pub head: Head,
    pub policy_hash: String,
    pub approvals: Option<usize>,
}

/// Checks the row stored under `key` as the record after `prev`: no gap before it
/// (deleted), its hash over its own bytes (modified), its stored sequence equals `key`
/// (reordered), its previous-hash is `prev`'s (chain broken), and the approvals it keeps
/// re-verify. `audit verify` runs this on the ledger, `audit verify --bundle` on a bundle.
pub(crate) fn check_next(prev: Head, key: u64, row: &[u8]) -> Result<CheckedRecord, LedgerError> {
    let expected = prev.seq + 1;
    if key != expected {
        return Err(LedgerError::AuditDeleted { seq: expected });
    }
    let opened = open_row(key, row)?;
    if !opened.hash_ok {
        return Err(LedgerError::AuditModified { seq: key });
    }
    if opened.seq != key {
        return Err(LedgerError::AuditReordered { seq: key });
    }
    if opened.prev != prev.hash {
        return Err(LedgerError::AuditChainBroken {
            seq: key,
            prev: prev.seq,
        });
    }
    let r = &opened.record;
    let approvals = match &r.approvals {
        None => None,
        Some(kept) => {
            let fields = crate::approval::evidence::RecordFields {
                txid: r.txid.as_deref(),
                payout_id: r.payout_id.as_deref(),
                policy_hash: &r.policy_hash,
            };
            let n = crate::approval::evidence::verify_kept(kept, fields)
                .map_err(|detail| LedgerError::AuditApprovalInvalid { seq: key, detail })?;
            Some(n)
        }
    };
    Ok(CheckedRecord {
        head: Head {
            seq: key,
            hash: opened.hash,
        },
        policy_hash: opened.record.policy_hash,
        approvals,
    })
}

pub(crate) fn export(dir: &Path, out: &mut dyn Write) -> Result<u64, LedgerError> {
    export_from(&mut |each| each_record(dir, each), out)
}

/// A source of audit records in order: hands each to the callback until it returns `false`.
pub(crate) type Records<'a> =
    dyn FnMut(&mut dyn FnMut(super::ChainedRecord) -> bool) -> Result<u64, LedgerError> + 'a;

/// Writes the records `records` yields as JSON lines to `out`.
pub(crate) fn export_from(
    records: &mut Records<'_>,
    out: &mut dyn Write,
) -> Result<u64, LedgerError> {
    let output = |e: &dyn std::fmt::Display| LedgerError::Output {
        detail: e.to_string(),
    };
    let mut failed = None;
    let n = records(&mut |record| {
        let written = serde_json::to_string(&record)
            .map_err(|e| output(&e))
            .and_then(|line| writeln!(out, "{line}").map_err(|e| output(&e)));
        match written {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush().map_err(|e| output(&e))?;
    Ok(n)
}
