//! A stretch of the audit chain exactly as stored, read from a live ledger without disturbing
//! the service (read-only, like `audit verify`), and checked again wherever it is carried:
//! the offline evidence `audit bundle` writes and `audit verify --bundle` checks.

use std::path::Path;

use redb::ReadableDatabase;

use super::error::LedgerError;
use super::schema::{Head, AUDIT, META, META_AUDIT_HEAD};
use super::verify::{check_next, open_ro};

/// One stored record: its canonical bytes and the SHA-256 stored after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub sequence: u64,
    pub canonical: Vec<u8>,
    pub hash: [u8; 32],
}

/// Records `from..=to` and the anchor they link to: the stored hash of record `from - 1`,
/// or the genesis value (32 zero bytes) when `from` is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    pub anchor: [u8; 32],
    pub records: Vec<StoredRecord>,
}

/// What a record of a stretch that checked out names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StretchRecord {
    pub sequence: u64,
    /// As the record holds it (hex).
    pub policy_hash: String,
    /// How many approvals it keeps, each re-verified; `None` when it keeps none.
    pub approvals: Option<usize>,
}

/// The genesis value a chain starts from.
pub const GENESIS_HASH: [u8; 32] = Head::GENESIS.hash;

/// Reads records `from..=to` as stored. Refuses a range that is empty, starts at 0 or ends
/// beyond the recorded head, and one whose rows take more than `max_bytes` (a single row
/// more than `max_row_bytes`). Rows are copied, not judged: [`check_stretch`] judges them.
pub fn read_stretch(
    dir: &Path,
    from: u64,
    to: u64,
    max_row_bytes: usize,
    max_bytes: usize,
) -> Result<Stretch, LedgerError> {
    let refuse = |why: String| LedgerError::AuditRange { from, to, why };
    if from == 0 {
        return Err(refuse("sequence numbers start at 1".into()));
    }
    if from > to {
        return Err(refuse("the first record is after the last".into()));
    }
    let db = open_ro(dir)?;
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    let head = match meta
        .get(META_AUDIT_HEAD)
        .map_err(|e| LedgerError::storage("read head", e))?
    {
        None => Head::GENESIS,
        Some(v) => Head::decode(v.value()).ok_or(LedgerError::AuditHeadInvalid { seq: 0 })?,
    };
    if to > head.seq {
        return Err(refuse(format!(
            "the chain ends at record {} (its head)",
            head.seq
        )));
    }
    let audit = rtx
        .open_table(AUDIT)
        .map_err(|e| LedgerError::storage("open audit", e))?;
    let split = |seq: u64, row: &[u8]| -> Result<(Vec<u8>, [u8; 32]), LedgerError> {
        let cut = row
            .len()
            .checked_sub(32)
            .ok_or(LedgerError::AuditModified { seq })?;
        let (canonical, hash) = row.split_at(cut);
        let hash = hash
            .try_into()
            .map_err(|_| LedgerError::AuditModified { seq })?;
        Ok((canonical.to_vec(), hash))
    };
    let pruned = super::schema::read_anchor(&meta)?;
    if from <= pruned.seq {
        return Err(refuse(format!(
            "records through {} were pruned from this ledger (they are in its archive)",
            pruned.seq
        )));
    }
    let anchor = if from == 1 {
        GENESIS_HASH
    } else if from - 1 == pruned.seq {
        pruned.hash
    } else {
        let seq = from - 1;
        let row = audit
            .get(seq)
            .map_err(|e| LedgerError::storage("read audit", e))?
            .ok_or(LedgerError::AuditDeleted { seq })?;
        split(seq, row.value())?.1
    };
    let mut records = Vec::new();
    let mut total = 0usize;
    for item in audit
        .range(from..=to)
        .map_err(|e| LedgerError::storage("iterate audit", e))?
    {
        let (k, v) = item.map_err(|e| LedgerError::storage("read audit", e))?;
        let (seq, row) = (k.value(), v.value());
        if row.len() > max_row_bytes {
            return Err(refuse(format!(
                "record {seq} is {} bytes, more than the {max_row_bytes} a bundle holds",
                row.len()
            )));
        }
        total = total.saturating_add(row.len());
        if total > max_bytes {
            return Err(refuse(format!(
                "the records take more than {max_bytes} bytes; take a shorter stretch"
            )));
        }
        let (canonical, hash) = split(seq, row)?;
        records.push(StoredRecord {
            sequence: seq,
            canonical,
            hash,
        });
    }
    Ok(Stretch { anchor, records })
}

/// Checks `stretch`, which should hold records `from..=to`, link by link from its anchor
/// exactly as `audit verify` checks the ledger (the same errors, naming the first bad
/// sequence number), and says what each record names.
pub fn check_stretch(
    stretch: &Stretch,
    from: u64,
    to: u64,
) -> Result<Vec<StretchRecord>, LedgerError> {
    let Some(before) = from.checked_sub(1) else {
        return Err(LedgerError::AuditRange {
            from,
            to,
            why: "sequence numbers start at 1".into(),
        });
    };
    let mut prev = Head {
        seq: before,
        hash: stretch.anchor,
    };
    let mut out = Vec::with_capacity(stretch.records.len());
    for r in &stretch.records {
        let mut row = Vec::with_capacity(r.canonical.len() + 32);
        row.extend_from_slice(&r.canonical);
        row.extend_from_slice(&r.hash);
        let checked = check_next(prev, r.sequence, &row)?;
        out.push(StretchRecord {
            sequence: r.sequence,
            policy_hash: checked.policy_hash,
            approvals: checked.approvals,
        });
        prev = checked.head;
    }
    if prev.seq < to {
        return Err(LedgerError::AuditTruncated {
            seq: prev.seq + 1,
            head: to,
        });
    }
    if prev.seq > to {
        return Err(LedgerError::AuditBeyondHead {
            seq: to + 1,
            head: to,
        });
    }
    Ok(out)
}
