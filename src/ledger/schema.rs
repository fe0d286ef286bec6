//! The redb tables. One file so the whole on-disk layout can be read at a glance.
//!
//! - `entries`: audit sequence number -> encoded [`Entry`](super::Entry) (see `entry.rs` for
//!   the byte layout). Keyed by sequence, not txid, so every commit appends.
//! - `by_expiration`: (expiration_ms, audit sequence) -> (); lets a restart rebuild the
//!   in-memory index from a range read instead of scanning every entry ever signed.
//! - `audit`: sequence -> canonical record bytes followed by their 32-byte SHA-256.
//! - `meta`: "audit_head" -> last sequence (u64 BE) || last hash; "schema" -> version;
//!   "latest_signed_ms" -> the latest signing time (i64 BE ms); "policy_in_force" -> the
//!   revision and hash of the policy put in force last (see [`META_POLICY_IN_FORCE`]);
//!   "freeze" -> the administrators' freezes in force (see [`META_FREEZE`]); "audit_anchor" ->
//!   the sequence and hash of the last record pruned (see [`META_AUDIT_ANCHOR`]).

use redb::{ReadableTable, TableDefinition};

use super::error::LedgerError;

pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const BY_EXPIRATION: TableDefinition<(i64, u64), ()> =
    TableDefinition::new("by_expiration");
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(crate) const META_AUDIT_HEAD: &str = "audit_head";
pub(crate) const META_SCHEMA: &str = "schema";
/// The latest `signed_at` of any committed entry (i64 BE milliseconds), so that a clock that
/// jumped is noticed even after a restart (`clock_jump`).
pub(crate) const META_LATEST_SIGNED: &str = "latest_signed_ms";
/// The policy in force with the highest revision ever put in force here: revision (u64 BE)
/// || sha256 of its bytes. A policy with a lower revision is never put in force again.
pub(crate) const META_POLICY_IN_FORCE: &str = "policy_in_force";
/// The policy administrators' freezes in force, as the service encodes them (opaque here).
/// A policy mark with another hash removes it in the same transaction: a new policy in force
/// is what lifts a freeze.
pub(crate) const META_FREEZE: &str = "freeze";
/// Set by `audit prune` only: sequence (u64 BE) || stored hash of the last record it removed,
/// so the records left still verify link by link from it. Absent: the chain starts at genesis.
pub(crate) const META_AUDIT_ANCHOR: &str = "audit_anchor";
/// Version 2 keys entries by audit sequence (version 1, an earlier development format, keyed
/// them by txid and is refused).
pub(crate) const SCHEMA_VERSION: &[u8] = b"tron-signer-ledger/2";

/// The database file inside the data directory.
pub(crate) const DB_FILE: &str = "ledger.redb";

/// Chain head as stored in `meta`: last sequence number and the hash of that record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Head {
    pub(crate) const GENESIS: Head = Head {
        seq: 0,
        hash: [0u8; 32],
    };

    pub(crate) fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Head> {
        if bytes.len() != 40 {
            return None;
        }
        let seq = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let hash = bytes[8..].try_into().ok()?;
        Some(Head { seq, hash })
    }
}

/// The anchor stored by an earlier prune, or genesis.
pub(crate) fn read_anchor(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Head, LedgerError> {
    match meta
        .get(META_AUDIT_ANCHOR)
        .map_err(|e| LedgerError::storage("read the audit anchor", e))?
    {
        None => Ok(Head::GENESIS),
        Some(v) => Head::decode(v.value()).ok_or_else(|| LedgerError::corrupt("audit anchor")),
    }
}
