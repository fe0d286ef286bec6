//! Retention: removing from a stopped signer's ledger the audit records (and the signature
//! entries among them) that no window, idempotency or payout-id check can need any more,
//! once they are archived, so that the file does not grow for ever while every record ever
//! written stays verifiable: the archive verifies on its own from genesis (or the previous
//! archive), and what is left verifies from the anchor the prune stores.
//!
//! What may go: records `first..=through`, where `first` follows the stored anchor (1 on a
//! ledger never pruned) and `through` is below the chain head, when
//! - the archive holds each of them byte for byte as stored (canonical bytes and hash), and
//!   the stored chain checks link by link over them, so the anchor written is one the
//!   archive ends on;
//! - none is the entry of a transaction that expires within `retention_ms` of the latest
//!   signing time the ledger recorded: the same horizon the service keeps in memory, so
//!   nothing it would load at its next start is removed. The signer's own latest signing
//!   time is used, never this machine's clock.
//!
//! It all happens in one write transaction, or not at all, and then the file is compacted.
//! The service must be stopped: its exclusive lock on the file makes the open fail.

use std::path::Path;

use redb::{Database, ReadableTable};

use super::entry::Entry;
use super::error::LedgerError;
use super::range::StoredRecord;
use super::schema::{
    read_anchor, Head, AUDIT, BY_EXPIRATION, DB_FILE, ENTRIES, META, META_AUDIT_ANCHOR,
    META_LATEST_SIGNED,
};
use super::store::{open_db, read_head};
use super::verify::check_next;

/// What a prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// The first and last audit sequence numbers removed.
    pub from: u64,
    pub through: u64,
    /// Signature entries removed with them.
    pub entries: u64,
    /// The stored hash of record `through`: where the records left now start.
    pub anchor_hash: String,
    /// The database file's size before and after compaction.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn refuse(why: impl Into<String>) -> LedgerError {
    LedgerError::PruneRefused { why: why.into() }
}

/// Removes records up to `through` that `archived` holds exactly as stored (see the module
/// doc for every condition); refuses, removing nothing, when any condition fails.
pub fn prune(
    dir: &Path,
    through: u64,
    archived: &[StoredRecord],
    retention_ms: u64,
) -> Result<PruneReport, LedgerError> {
    let path = dir.join(DB_FILE);
    if !path.is_file() {
        return Err(LedgerError::Open {
            path: path.display().to_string(),
            detail: "no ledger here".into(),
        });
    }
    let bytes_before = file_len(&path)?;
    let mut db = open_db(&path).map_err(|e| match e {
        LedgerError::Open { detail, .. } if detail.contains("already open") => {
            refuse("the ledger is open in another process (a running signer): stop it first")
        }
        other => other,
    })?;
    let head = read_head(&db)?;
    let (from, entries, anchor) = remove(&db, head, through, archived, retention_ms)?;
    // Compaction gives the freed pages back to the filesystem; it repeats until nothing moves.
    loop {
        match db.compact() {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => return Err(LedgerError::storage("compact", e)),
        }
    }
    drop(db);
    Ok(PruneReport {
        from,
        through,
        entries,
        anchor_hash: hex::encode(anchor.hash),
        bytes_before,
        bytes_after: file_len(&path)?,
    })
}

fn file_len(path: &Path) -> Result<u64, LedgerError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| LedgerError::storage("stat the ledger file", e))
}

/// The checks and the removal, in one write transaction. Returns the first record removed,
/// the entries removed and the new anchor.
fn remove(
    db: &Database,
    head: Head,
    through: u64,
    archived: &[StoredRecord],
    retention_ms: u64,
) -> Result<(u64, u64, Head), LedgerError> {
    let txn = db
        .begin_write()
        .map_err(|e| LedgerError::storage("begin write", e))?;
    let (first, entries, anchor) = {
        let mut meta = txn
            .open_table(META)
            .map_err(|e| LedgerError::storage("open meta", e))?;
        let mut audit = txn
            .open_table(AUDIT)
            .map_err(|e| LedgerError::storage("open audit", e))?;
        let mut entries = txn
            .open_table(ENTRIES)
            .map_err(|e| LedgerError::storage("open entries", e))?;
        let mut by_exp = txn
            .open_table(BY_EXPIRATION)
            .map_err(|e| LedgerError::storage("open by_expiration", e))?;

        let old_anchor = read_anchor(&meta)?;
        let first = old_anchor.seq + 1;
        if through < first {
            return Err(refuse(format!(
                "records through {} were pruned already; this ledger starts at record {first}",
                old_anchor.seq
            )));
        }
        if through >= head.seq {
            return Err(refuse(format!(
                "record {through} is not below the chain head {}; the head always stays",
                head.seq
            )));
        }

        // The archive must hold first..=through exactly as stored, and the stored chain must
        // check over them from the old anchor.
        let mut held = archived
            .iter()
            .filter(|r| (first..=through).contains(&r.sequence))
            .collect::<Vec<_>>();
        held.sort_by_key(|r| r.sequence);
        held.dedup_by_key(|r| r.sequence);
        if held.len() as u64 != through - first + 1 {
            let missing = (first..=through)
                .find(|s| held.binary_search_by_key(s, |r| r.sequence).is_err())
                .unwrap_or(first);
            return Err(refuse(format!(
                "the archive does not hold record {missing} (it must hold {first} to {through})"
            )));
        }
        let mut prev = old_anchor;
        for (seq, r) in (first..=through).zip(held.iter()) {
            let row = audit
                .get(seq)
                .map_err(|e| LedgerError::storage("read audit", e))?
                .ok_or(LedgerError::AuditDeleted { seq })?;
            let stored = row.value();
            let same = stored.len() == r.canonical.len() + 32
                && stored[..r.canonical.len()] == r.canonical[..]
                && stored[r.canonical.len()..] == r.hash[..];
            if !same {
                return Err(refuse(format!(
                    "record {seq} in the archive differs from the one stored here"
                )));
            }
            prev = check_next(prev, seq, stored)?.head;
        }
        let anchor = prev;

        // Nothing inside the retention horizon goes.
        if let Some(latest) = meta
            .get(META_LATEST_SIGNED)
            .map_err(|e| LedgerError::storage("read latest signing time", e))?
        {
            let bytes: [u8; 8] = latest
                .value()
                .try_into()
                .map_err(|_| LedgerError::corrupt("latest signing time"))?;
            let latest_ms = i64::from_be_bytes(bytes);
            let cutoff = latest_ms.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
            let mut oldest_live: Option<(u64, i64)> = None;
            for item in by_exp
                .range((cutoff, 0u64)..)
                .map_err(|e| LedgerError::storage("range by_expiration", e))?
            {
                let (k, _) = item.map_err(|e| LedgerError::storage("read by_expiration", e))?;
                let (expiration_ms, seq) = k.value();
                if oldest_live.is_none_or(|(s, _)| seq < s) {
                    oldest_live = Some((seq, expiration_ms));
                }
            }
            if let Some((seq, expiration_ms)) = oldest_live.filter(|(s, _)| *s <= through) {
                return Err(refuse(format!(
                    "record {seq} signed a transaction expiring at {expiration_ms} ms, within \
                     the {retention_ms} ms the signer still counts back from its latest \
                     signature at {latest_ms} ms; prune through at most {}",
                    seq - 1
                )));
            }
        }

        // The removal.
        let mut removed_entries = 0u64;
        let mut doomed = Vec::new();
        for item in entries
            .range(first..=through)
            .map_err(|e| LedgerError::storage("range entries", e))?
        {
            let (k, v) = item.map_err(|e| LedgerError::storage("read entry", e))?;
            let entry = Entry::decode(v.value())?;
            doomed.push((k.value(), entry.pending.expiration_ms));
        }
        for (seq, expiration_ms) in doomed {
            entries
                .remove(seq)
                .map_err(|e| LedgerError::storage("remove entry", e))?;
            by_exp
                .remove((expiration_ms, seq))
                .map_err(|e| LedgerError::storage("remove expiration", e))?;
            removed_entries += 1;
        }
        for seq in first..=through {
            audit
                .remove(seq)
                .map_err(|e| LedgerError::storage("remove audit record", e))?;
        }
        meta.insert(META_AUDIT_ANCHOR, anchor.encode().as_slice())
            .map_err(|e| LedgerError::storage("write the audit anchor", e))?;
        (first, removed_entries, anchor)
    };
    txn.commit()
        .map_err(|e| LedgerError::storage("commit prune", e))?;
    Ok((first, entries, anchor))
}
