//! The embedded database (redb): payouts. Every write is one fsynced transaction, so a
//! state written before a side effect (a broadcast) survives a crash.
//!
//! Every payout status change (creation included) appends its `payout.<status>` event to
//! the [`crate::outbox`] in the same transaction.
//!
//! Payouts are keyed by [`Payout::key`] (`<tenant>/<id>`), so each tenant has its own id
//! space and a tenant's payouts are one contiguous key range. API keys live in their own
//! file ([`crate::apikeys`]), which `api-keys` commands can change while `serve` runs.
//!
//! Deposit indexes (issue 15): each invoice gets the next child index of the account xpub,
//! allocated in the same fsynced transaction that records the invoice and the address, so
//! an address is never handed out before its index is durable, and a restart or crash
//! never hands the same index out again. The tables are additive to schema 2 (an older
//! version ignores them and never allocates), so the schema number is unchanged.

use std::path::Path;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::model::{scoped_key, Payout, PayoutKind, Status};
use crate::outbox::{self, OutboxError};

/// Schema 2: payouts keyed per tenant, API keys outside the database.
const SCHEMA: &str = "2";
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const PAYOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_payouts");
/// The next unallocated deposit index, under the key [`NEXT_INDEX`].
const DEPOSIT_NEXT: TableDefinition<&str, u32> = TableDefinition::new("deposit_next_index");
const NEXT_INDEX: &str = "next";
/// Deposit index -> the allocation (JSON [`Deposit`]).
pub(crate) const DEPOSITS: TableDefinition<u32, &[u8]> = TableDefinition::new("deposit_indexes");
/// `<tenant>/<invoice>` -> its deposit index, so asking again returns the same address.
const DEPOSIT_INVOICES: TableDefinition<&str, u32> = TableDefinition::new("deposit_invoices");
/// Deposit address (21 bytes, `41…`) -> its index: what the chain watcher looks payments up by.
pub(crate) const DEPOSIT_ADDRESSES: TableDefinition<&[u8], u32> =
    TableDefinition::new("deposit_addresses");
/// Child indexes at or above this are hardened and cannot be derived from an xpub.
const DEPOSIT_INDEX_LIMIT: u32 = 1 << 31;
/// Payouts per status (`Status::as_str` -> count), kept in the same transaction as every
/// payout write so a scrape reads eight rows instead of decoding every payout.
const STATUS_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("payout_status_counts");
/// Tables of schema 1 (payouts keyed by bare id, without owner; API keys in the database).
const OLD_TABLES: [&str; 2] = ["payouts", "api_keys"];

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is open in another process (stop `tron-broadcaster serve` first)")]
    Locked,
    #[error("database error: {0}")]
    Db(String),
    #[error("stored record {key:?} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    #[error("payout {0:?} not found")]
    NotFound(String),
    #[error(
        "the database holds schema-1 data (table {0:?}: payouts without a tenant, API keys inside the database), \
         which this version does not read: finish those payouts with the previous version, then start \
         on a new database file with new API keys (README, \"Upgrading to tenants\")"
    )]
    OldSchema(String),
    #[error("the database has schema {0:?}, which this version does not know")]
    UnknownSchema(String),
    #[error("all 2^31 deposit indexes of the account are allocated")]
    DepositIndexesExhausted,
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Locked => "database_locked",
            StoreError::Db(_) => "database_error",
            StoreError::Corrupt { .. } => "database_corrupt",
            StoreError::NotFound(_) => "payout_not_found",
            StoreError::OldSchema(_) => "database_old_schema",
            StoreError::UnknownSchema(_) => "database_unknown_schema",
            StoreError::DepositIndexesExhausted => "deposit_indexes_exhausted",
        }
    }
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked,
        other => StoreError::Db(other.to_string()),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.into(),
        message: e.to_string(),
    })
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Db(e.to_string()))
}

/// What creating a payout did.
#[derive(Debug)]
pub enum Created {
    New(Payout),
    /// Same id, same request: the stored payout.
    Existing(Payout),
    /// Same id, different request: the stored payout, untouched.
    Conflict(Payout),
}

/// A deposit index given to one invoice of one tenant, with the address derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Deposit {
    pub index: u32,
    pub tenant: String,
    pub invoice: String,
    /// Base58 (`T…`): recorded so a later change of the account xpub is noticed, not
    /// silently mapped to other addresses.
    pub address: String,
}

/// What allocating a deposit index did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocated {
    New(Deposit),
    /// The invoice already had an index: the stored allocation, no new index used.
    Existing(Deposit),
}

impl Allocated {
    pub fn deposit(&self) -> &Deposit {
        match self {
            Allocated::New(d) | Allocated::Existing(d) => d,
        }
    }
}

/// The database handle. One process at a time (redb locks the file).
pub struct Store {
    db: Database,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(e.to_string()))?;
        }
        let database = Database::create(path).map_err(db)?;
        let tx = database.begin_write().map_err(db_err)?;
        {
            let mut meta = tx.open_table(META).map_err(db)?;
            let schema = meta
                .get("schema")
                .map_err(db)?
                .map(|v| v.value().to_owned());
            match schema.as_deref() {
                Some(SCHEMA) => {}
                Some(other) => return Err(StoreError::UnknownSchema(other.to_owned())),
                None => {
                    // A new file, or one a schema-1 version wrote: its data has no tenant
                    // to give it, so it is refused rather than guessed; empty old tables go.
                    let old: Vec<String> = tx
                        .list_tables()
                        .map_err(db)?
                        .map(|t| t.name().to_owned())
                        .filter(|n| OLD_TABLES.contains(&n.as_str()))
                        .collect();
                    for name in old {
                        let def: TableDefinition<&str, &[u8]> = TableDefinition::new(&name);
                        let empty = tx.open_table(def).map_err(db)?.is_empty().map_err(db)?;
                        if !empty {
                            return Err(StoreError::OldSchema(name));
                        }
                        tx.delete_table(def).map_err(db)?;
                    }
                    meta.insert("schema", SCHEMA).map_err(db)?;
                }
            }
        }
        tx.open_table(PAYOUTS).map_err(db)?;
        recount_if_needed(&tx)?;
        tx.open_table(DEPOSIT_NEXT).map_err(db)?;
        tx.open_table(DEPOSITS).map_err(db)?;
        tx.open_table(DEPOSIT_INVOICES).map_err(db)?;
        tx.open_table(DEPOSIT_ADDRESSES).map_err(db)?;
        outbox::create_tables(&tx)?;
        tx.commit().map_err(db)?;
        Ok(Store { db: database })
    }

    /// The database, for the receive side's own tables ([`crate::receive_store`]), which
    /// must commit together with deposit allocations.
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts a new payout unless its tenant already has that id; atomic with the check.
    pub fn create_payout(&self, p: Payout) -> Result<Created, StoreError> {
        let key = p.key();
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = {
            let mut t = tx.open_table(PAYOUTS).map_err(db)?;
            let existing = match t.get(key.as_str()).map_err(db)? {
                Some(v) => Some(decode::<Payout>(&key, v.value())?),
                None => None,
            };
            match existing {
                Some(e) if e.same_request(p.asset, &p.to, p.amount_units) => Created::Existing(e),
                Some(e) => Created::Conflict(e),
                None => {
                    t.insert(key.as_str(), encode(&p)?.as_slice()).map_err(db)?;
                    count_change(&tx, None, p.status)?;
                    payout_event(&tx, &p)?;
                    Created::New(p)
                }
            }
        };
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// The payout with [`Payout::key`] `key`.
    pub fn get(&self, key: &str) -> Result<Option<Payout>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PAYOUTS).map_err(db)?;
        match t.get(key).map_err(db)? {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Payout `id` of `tenant`.
    pub fn get_for(&self, tenant: &str, id: &str) -> Result<Option<Payout>, StoreError> {
        self.get(&scoped_key(tenant, id))
    }

    /// `tenant`'s merchant payouts (every tenant's if `None`) in id order, optionally only
    /// those with `status`, at most `limit`: what the payouts API lists. The sweeper's
    /// gas and sweep payouts are left out (their invoice shows them).
    pub fn list(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<Payout>, StoreError> {
        self.scan(
            tenant,
            |p| p.kind == PayoutKind::Merchant && status.is_none_or(|s| p.status == s),
            limit,
        )
    }

    /// [`Store::list`] with every kind of payout (approvers see sweeps too).
    pub fn list_all(
        &self,
        tenant: Option<&str>,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<Payout>, StoreError> {
        self.scan(tenant, |p| status.is_none_or(|s| p.status == s), limit)
    }

    /// Every payout that is not final: the pipeline's work list.
    pub fn active(&self) -> Result<Vec<Payout>, StoreError> {
        self.scan(None, |p| !p.status.is_final(), usize::MAX)
    }

    fn scan(
        &self,
        tenant: Option<&str>,
        keep: impl Fn(&Payout) -> bool,
        limit: usize,
    ) -> Result<Vec<Payout>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PAYOUTS).map_err(db)?;
        // A tenant's keys share the prefix `<tenant>/`, so they are one contiguous range.
        let prefix = tenant.map(|t| scoped_key(t, ""));
        let rows = match &prefix {
            Some(p) => t.range(p.as_str()..).map_err(db)?,
            None => t.iter().map_err(db)?,
        };
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(db)?;
            if prefix.as_deref().is_some_and(|p| !k.value().starts_with(p)) {
                break;
            }
            let p: Payout = decode(k.value(), v.value())?;
            if keep(&p) {
                out.push(p);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Read-modify-write of the payout with [`Payout::key`] `key` in one durable
    /// transaction. If `f` fails nothing is written.
    pub fn update<E: From<StoreError>>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Payout) -> Result<(), E>,
    ) -> Result<Payout, E> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let p = {
            let mut t = tx.open_table(PAYOUTS).map_err(db)?;
            let mut p: Payout = match t.get(key).map_err(db)? {
                Some(v) => decode(key, v.value())?,
                None => return Err(StoreError::NotFound(key.into()).into()),
            };
            let before = p.status;
            f(&mut p)?;
            t.insert(key, encode(&p)?.as_slice()).map_err(db)?;
            if p.status != before {
                count_change(&tx, Some(before), p.status)?;
                payout_event(&tx, &p)?;
            }
            p
        };
        tx.commit().map_err(db)?;
        Ok(p)
    }

    /// Gives `tenant`'s `invoice` the next deposit index, or returns the one it already has.
    ///
    /// `derive` turns the index into its address (base58); it runs inside the write
    /// transaction, and the counter, the allocation and the invoice's entry are committed
    /// (fsynced) together before this returns, so the caller hands out only an address
    /// whose index is durable. If `derive` fails nothing is written and the index stays
    /// free. An index is never reused: the counter only grows, even if an allocation's
    /// invoice is later abandoned.
    pub fn allocate_deposit<E: From<StoreError>>(
        &self,
        tenant: &str,
        invoice: &str,
        derive: impl FnOnce(u32) -> Result<String, E>,
    ) -> Result<Allocated, E> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = allocate_in(&tx, tenant, invoice, derive)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }

    /// The allocation of deposit index `index`.
    pub fn deposit(&self, index: u32) -> Result<Option<Deposit>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(DEPOSITS).map_err(db)?;
        match t.get(index).map_err(db)? {
            Some(v) => Ok(Some(decode(&format!("deposit {index}"), v.value())?)),
            None => Ok(None),
        }
    }

    /// How many payouts (of every kind) are in each status: eight reads, for the metrics
    /// listener's scrape.
    pub fn status_counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(STATUS_COUNTS).map_err(db)?;
        Status::ALL
            .iter()
            .map(|s| Ok((*s, t.get(s.as_str()).map_err(db)?.map_or(0, |v| v.value()))))
            .collect()
    }

    /// The index the next new invoice will get.
    pub fn next_deposit_index(&self) -> Result<u32, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(DEPOSIT_NEXT).map_err(db)?;
        Ok(t.get(NEXT_INDEX).map_err(db)?.map_or(0, |v| v.value()))
    }
}

impl From<OutboxError> for StoreError {
    fn from(e: OutboxError) -> StoreError {
        match e {
            OutboxError::Db(m) => StoreError::Db(m),
            OutboxError::Corrupt { seq, message } => StoreError::Corrupt {
                key: format!("event {seq}"),
                message,
            },
        }
    }
}

/// The `payout.<status>` event of a merchant payout's change, in the same transaction.
/// The sweeper's payouts have none: the merchant asked for none of them, and their
/// invoice's `invoice.swept` reports the outcome.
fn payout_event(tx: &WriteTransaction, p: &Payout) -> Result<(), StoreError> {
    if p.kind != PayoutKind::Merchant {
        return Ok(());
    }
    let data = serde_json::json!({ "payout": {
        "id": p.id,
        "status": p.status,
        "asset": p.asset,
        "to": p.to,
        "amount_units": p.amount_units.to_string(),
        "txid": p.current().map(|a| a.txid.clone()),
        "block_number": p.block_number,
        "denial": p.denial,
        "failure": p.failure,
        "updated_at": p.updated_at_ms,
    }});
    let kind = format!("payout.{}", p.status.as_str());
    outbox::append(tx, &p.tenant, &kind, data, p.updated_at_ms)?;
    Ok(())
}

/// One payout entered `to` (from `from`, or newly created): the counts move in `tx`.
fn count_change(tx: &WriteTransaction, from: Option<Status>, to: Status) -> Result<(), StoreError> {
    let mut t = tx.open_table(STATUS_COUNTS).map_err(db)?;
    if let Some(from) = from {
        let n = t.get(from.as_str()).map_err(db)?.map_or(0, |v| v.value());
        t.insert(from.as_str(), n.saturating_sub(1)).map_err(db)?;
    }
    let n = t.get(to.as_str()).map_err(db)?.map_or(0, |v| v.value());
    t.insert(to.as_str(), n.saturating_add(1)).map_err(db)?;
    Ok(())
}

/// Rebuilds the status counts from the payouts when they do not add up to the payouts
/// table's length (a database from before the counts, or one an older version added
/// payouts to): one scan at open, then every write keeps them in step. Status changes an
/// older version made without adding payouts are not noticed.
fn recount_if_needed(tx: &WriteTransaction) -> Result<(), StoreError> {
    let payouts = tx.open_table(PAYOUTS).map_err(db)?;
    let mut counts = tx.open_table(STATUS_COUNTS).map_err(db)?;
    let mut sum = 0u64;
    for row in counts.iter().map_err(db)? {
        let (_, v) = row.map_err(db)?;
        sum = sum.saturating_add(v.value());
    }
    if sum == payouts.len().map_err(db)? {
        return Ok(());
    }
    let mut by_status = std::collections::HashMap::<Status, u64>::new();
    for row in payouts.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let p: Payout = decode(k.value(), v.value())?;
        *by_status.entry(p.status).or_default() += 1;
    }
    for s in Status::ALL {
        counts
            .insert(s.as_str(), by_status.get(&s).copied().unwrap_or(0))
            .map_err(db)?;
    }
    Ok(())
}

fn db_err(e: redb::TransactionError) -> StoreError {
    db(e)
}

pub(crate) fn db_error<E: Into<redb::Error>>(e: E) -> StoreError {
    db(e)
}

/// The txids of every transaction built for the sweeper's top-ups of `tenant`'s
/// `invoice` (payout ids `<invoice>#gas<n>`), in the caller's transaction: the watcher
/// leaves them out of the invoice's payments (they are our TRX, not the customer's).
pub(crate) fn topup_txids_in(
    tx: &WriteTransaction,
    tenant: &str,
    invoice: &str,
) -> Result<Vec<String>, StoreError> {
    let t = tx.open_table(PAYOUTS).map_err(db)?;
    let prefix = scoped_key(tenant, &format!("{invoice}#gas"));
    let mut out = Vec::new();
    for row in t.range(prefix.as_str()..).map_err(db)? {
        let (k, v) = row.map_err(db)?;
        if !k.value().starts_with(&prefix) {
            break;
        }
        let p: Payout = decode(k.value(), v.value())?;
        if p.kind == PayoutKind::Gas {
            out.extend(p.attempts.into_iter().map(|a| a.txid));
        }
    }
    Ok(out)
}

/// [`Store::allocate_deposit`] inside the caller's write transaction, so the invoice that
/// gets the address commits with it (or neither does).
pub(crate) fn allocate_in<E: From<StoreError>>(
    tx: &WriteTransaction,
    tenant: &str,
    invoice: &str,
    derive: impl FnOnce(u32) -> Result<String, E>,
) -> Result<Allocated, E> {
    let key = scoped_key(tenant, invoice);
    let mut invoices = tx.open_table(DEPOSIT_INVOICES).map_err(db)?;
    let mut deposits = tx.open_table(DEPOSITS).map_err(db)?;
    let existing = invoices.get(key.as_str()).map_err(db)?.map(|v| v.value());
    if let Some(index) = existing {
        let bytes = deposits
            .get(index)
            .map_err(db)?
            .ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                message: format!("deposit index {index} has no allocation record"),
            })?;
        return Ok(Allocated::Existing(decode(&key, bytes.value())?));
    }
    let mut next_table = tx.open_table(DEPOSIT_NEXT).map_err(db)?;
    let index = next_table
        .get(NEXT_INDEX)
        .map_err(db)?
        .map_or(0, |v| v.value());
    if index >= DEPOSIT_INDEX_LIMIT {
        return Err(StoreError::DepositIndexesExhausted.into());
    }
    // A record at the counter would mean the counter went backwards: refuse rather than
    // hand the index out twice.
    if deposits.get(index).map_err(db)?.is_some() {
        return Err(StoreError::Corrupt {
            key: NEXT_INDEX.into(),
            message: format!("deposit index {index} is already allocated"),
        }
        .into());
    }
    let deposit = Deposit {
        index,
        tenant: tenant.into(),
        invoice: invoice.into(),
        address: derive(index)?,
    };
    let address =
        tron_proto::Address::from_base58(&deposit.address).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            message: format!("derived address is not Base58: {e}"),
        })?;
    let mut by_address = tx.open_table(DEPOSIT_ADDRESSES).map_err(db)?;
    if by_address
        .insert(address.as_bytes().as_slice(), index)
        .map_err(db)?
        .is_some()
    {
        return Err(StoreError::Corrupt {
            key: deposit.address.clone(),
            message: "this address already belongs to another deposit index".into(),
        }
        .into());
    }
    deposits
        .insert(index, encode(&deposit)?.as_slice())
        .map_err(db)?;
    invoices.insert(key.as_str(), index).map_err(db)?;
    next_table.insert(NEXT_INDEX, index + 1).map_err(db)?;
    Ok(Allocated::New(deposit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Asset, Owner};

    const TO: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

    fn owner(tenant: &str) -> Owner {
        Owner {
            tenant: tenant.into(),
            key_id: "00112233aabbccdd".into(),
        }
    }

    #[test]
    fn create_is_idempotent_and_detects_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        let p = Payout::new(&owner("a"), "p1".into(), Asset::Trx, TO.into(), 5, 1);
        assert!(matches!(
            s.create_payout(p.clone()).unwrap(),
            Created::New(_)
        ));
        assert!(matches!(
            s.create_payout(p.clone()).unwrap(),
            Created::Existing(_)
        ));
        let other = Payout::new(&owner("a"), "p1".into(), Asset::Trx, TO.into(), 6, 2);
        assert!(matches!(
            s.create_payout(other).unwrap(),
            Created::Conflict(_)
        ));
        assert_eq!(s.get("a/p1").unwrap().unwrap().amount_units, 5);
    }

    #[test]
    fn survives_reopen_and_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = Store::open(&path).unwrap();
            let p = Payout::new(&owner("a"), "p1".into(), Asset::Usdt, TO.into(), 7, 1);
            s.create_payout(p).unwrap();
            s.update::<StoreError>("a/p1", |p| {
                p.transition(Status::Signing, 2, "x");
                Ok(())
            })
            .unwrap();
            assert_eq!(Store::open(&path).err().unwrap().code(), "database_locked");
        }
        let s = Store::open(&path).unwrap();
        let p = s.get("a/p1").unwrap().unwrap();
        assert_eq!(p.status, Status::Signing);
        assert_eq!(p.history.len(), 2);
        assert_eq!(s.active().unwrap().len(), 1);
        assert_eq!(
            s.list(Some("a"), Some(Status::Queued), 10).unwrap().len(),
            0
        );
    }

    #[test]
    fn each_status_change_appends_a_payout_event_in_the_same_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        let p = Payout::new(&owner("a"), "p1".into(), Asset::Trx, TO.into(), 5, 1);
        s.create_payout(p.clone()).unwrap();
        s.create_payout(p).unwrap(); // the same again: no new event
        s.update::<StoreError>("a/p1", |p| {
            p.transition(Status::Signing, 2, "x");
            Ok(())
        })
        .unwrap();
        s.update::<StoreError>("a/p1", |p| {
            p.updated_at_ms = 3; // no status change: no event
            Ok(())
        })
        .unwrap();
        // A failed update writes no event either.
        let _ = s.update::<StoreError>("a/p1", |p| {
            p.transition(Status::Failed, 4, "x");
            Err(StoreError::Db("boom".into()))
        });
        let tx = s.db.begin_read().unwrap();
        let events = outbox::after(&tx, "a", 0, 10).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["payout.queued", "payout.signing"]);
        assert_eq!(events[1].data["payout"]["status"], "signing");
        assert_eq!(events[1].data["payout"]["id"], "p1");
        assert!(outbox::after(&tx, "b", 0, 10).unwrap().is_empty());
    }

    fn counts(s: &Store) -> Vec<(Status, u64)> {
        s.status_counts()
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    #[test]
    fn status_counts_follow_every_write_and_are_rebuilt_when_they_do_not_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(counts(&s).is_empty());
            for id in ["p1", "p2", "p3"] {
                let p = Payout::new(&owner("a"), id.into(), Asset::Trx, TO.into(), 5, 1);
                s.create_payout(p.clone()).unwrap();
                s.create_payout(p).unwrap(); // the same again: counted once
            }
            let conflict = Payout::new(&owner("a"), "p1".into(), Asset::Trx, TO.into(), 9, 1);
            assert!(matches!(
                s.create_payout(conflict).unwrap(),
                Created::Conflict(_)
            ));
            assert_eq!(counts(&s), [(Status::Queued, 3)]);
            s.update::<StoreError>("a/p1", |p| {
                p.transition(Status::Signing, 2, "x");
                Ok(())
            })
            .unwrap();
            s.update::<StoreError>("a/p1", |p| {
                p.updated_at_ms = 3; // no status change
                Ok(())
            })
            .unwrap();
            s.update::<StoreError>("a/p2", |p| {
                p.transition(Status::AwaitingApproval, 2, "x");
                Ok(())
            })
            .unwrap();
            // A failed update moves nothing.
            let _ = s.update::<StoreError>("a/p3", |p| {
                p.transition(Status::Failed, 4, "x");
                Err(StoreError::Db("boom".into()))
            });
            assert_eq!(
                counts(&s),
                [
                    (Status::Queued, 1),
                    (Status::Signing, 1),
                    (Status::AwaitingApproval, 1)
                ]
            );
        }
        // Kept across a reopen; counts that do not add up (a database written without
        // them) are rebuilt from the payouts.
        assert_eq!(counts(&Store::open(&path).unwrap()).len(), 3);
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.delete_table(STATUS_COUNTS).unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            counts(&s),
            [
                (Status::Queued, 1),
                (Status::Signing, 1),
                (Status::AwaitingApproval, 1)
            ]
        );
    }

    #[test]
    fn failed_update_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        s.create_payout(Payout::new(
            &owner("a"),
            "p1".into(),
            Asset::Trx,
            TO.into(),
            5,
            1,
        ))
        .unwrap();
        let r = s.update::<StoreError>("a/p1", |p| {
            p.transition(Status::Failed, 3, "x");
            Err(StoreError::Db("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.get("a/p1").unwrap().unwrap().status, Status::Queued);
        assert_eq!(
            s.update::<StoreError>("nope", |_| Ok(()))
                .unwrap_err()
                .code(),
            "payout_not_found"
        );
    }

    #[test]
    fn ids_are_scoped_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        // Tenants whose names sort around each other's `<tenant>/` prefix.
        for (tenant, units) in [("a", 1), ("a-b", 2), ("a0", 3), ("b", 4)] {
            let p = Payout::new(&owner(tenant), "p1".into(), Asset::Trx, TO.into(), units, 1);
            assert!(matches!(s.create_payout(p).unwrap(), Created::New(_)));
        }
        for (tenant, units) in [("a", 1), ("a-b", 2), ("a0", 3), ("b", 4)] {
            let listed = s.list(Some(tenant), None, 10).unwrap();
            assert_eq!(listed.len(), 1, "{tenant}");
            assert_eq!(listed[0].amount_units, units);
            assert_eq!(
                s.get_for(tenant, "p1").unwrap().unwrap().amount_units,
                units
            );
        }
        assert_eq!(s.list(None, None, 10).unwrap().len(), 4);
        assert!(s.get_for("c", "p1").unwrap().is_none());
    }

    fn derive(i: u32) -> Result<String, StoreError> {
        let mut body = [0u8; 20];
        body[16..].copy_from_slice(&i.to_be_bytes());
        Ok(tron_proto::Address::from_evm(body).to_base58())
    }

    #[test]
    fn deposit_indexes_are_sequential_idempotent_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = Store::open(&path).unwrap();
            let a = s.allocate_deposit("t1", "inv1", derive).unwrap();
            assert!(
                matches!(&a, Allocated::New(d) if d.index == 0 && d.address == derive(0).unwrap())
            );
            let b = s.allocate_deposit("t2", "inv1", derive).unwrap();
            assert!(matches!(&b, Allocated::New(d) if d.index == 1 && d.tenant == "t2"));
            // Asking again for the same invoice uses no new index.
            let again = s.allocate_deposit("t1", "inv1", derive).unwrap();
            assert_eq!(again, Allocated::Existing(a.deposit().clone()));
            assert_eq!(s.next_deposit_index().unwrap(), 2);
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.next_deposit_index().unwrap(), 2);
        let c = s.allocate_deposit("t1", "inv2", derive).unwrap();
        assert_eq!(c.deposit().index, 2);
        assert_eq!(s.deposit(1).unwrap().unwrap().invoice, "inv1");
        assert_eq!(s.deposit(0).unwrap().unwrap().tenant, "t1");
        assert!(s.deposit(3).unwrap().is_none());
    }

    #[test]
    fn a_failed_derivation_uses_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        let r = s.allocate_deposit("t", "inv", |_| -> Result<String, StoreError> {
            Err(StoreError::Db("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.next_deposit_index().unwrap(), 0);
        assert!(s.deposit(0).unwrap().is_none());
        assert_eq!(
            s.allocate_deposit("t", "inv", derive)
                .unwrap()
                .deposit()
                .index,
            0
        );
    }

    #[test]
    fn an_index_is_never_handed_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = Store::open(&path).unwrap();
            s.allocate_deposit("t", "inv0", derive).unwrap();
        }
        // A counter that went backwards (restored from an old copy, a bug) is refused.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(DEPOSIT_NEXT)
                .unwrap()
                .insert(NEXT_INDEX, 0)
                .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let e = s.allocate_deposit("t", "inv1", derive).unwrap_err();
        assert_eq!(e.code(), "database_corrupt");
        drop(s);
        // The last index is allocated; after it the account is exhausted.
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(DEPOSIT_NEXT)
                .unwrap()
                .insert(NEXT_INDEX, DEPOSIT_INDEX_LIMIT - 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        let last = s.allocate_deposit("t", "last", derive).unwrap();
        assert_eq!(last.deposit().index, DEPOSIT_INDEX_LIMIT - 1);
        assert_eq!(
            s.allocate_deposit("t", "more", derive).unwrap_err().code(),
            "deposit_indexes_exhausted"
        );
    }

    #[test]
    fn a_schema_1_database_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            let old: TableDefinition<&str, &[u8]> = TableDefinition::new("payouts");
            tx.open_table(old)
                .unwrap()
                .insert("p1", b"{}".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Store::open(&path).err().unwrap();
        assert_eq!(e.code(), "database_old_schema");
        assert!(e.to_string().contains("Upgrading to tenants"), "{e}");
        // Refused again (nothing was changed by the first attempt).
        assert_eq!(
            Store::open(&path).err().unwrap().code(),
            "database_old_schema"
        );
    }
}
