//! The receive side's durable state, in the broadcaster's database: invoices, the
//! payments credited to their addresses, the chain watcher's position, and the event
//! outbox. Every change the watcher makes for one block (or one settlement, or one expiry
//! sweep) is one fsynced transaction together with the events it causes, so a crash
//! leaves either all of it or none: a block is then processed again, and because payments
//! are keyed by txid and log index, again changes nothing.
//!
//! Tables (additive to schema 2, like the deposit tables in [`crate::store`]):
//! `invoices` (`<tenant>/<id>` → invoice), `invoices_open` (not yet closed → expiry, for
//! the expiry sweep), `credits_pending` (seen, not yet solid → invoice and block),
//! `credits_by_block` (block id → the payments credited from it, to un-see them),
//! `watch_state` (the tracker's blocks and solidified height), `events` (sequence →
//! event) and `event_seq`, and for the sweeper `sweep_due` (invoice → mark: a closed
//! invoice whose address received a settled payment, to look at) with its counter
//! `sweep_mark`.
//!
//! The sweeper's own top-ups (TRX from the gas key, payouts `<invoice>#gas<n>`) are not
//! recorded as payments: they are our funds on their way to pay the sweep's energy.

use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chain::BlockId;
use crate::credit::{Credit, CreditAsset};
use crate::invoice::{payment_key, Invoice, InvoiceStatus, Payment, PaymentState};
use crate::model::{scoped_key, Asset};
use crate::outbox;
use crate::store::{self, allocate_in, db_error as db, decode, encode, Store, StoreError};

const INVOICES: TableDefinition<&str, &[u8]> = TableDefinition::new("invoices");
const OPEN: TableDefinition<&str, i64> = TableDefinition::new("invoices_open");
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("credits_pending");
const BY_BLOCK: TableDefinition<&[u8], &[u8]> = TableDefinition::new("credits_by_block");
const WATCH: TableDefinition<&str, &[u8]> = TableDefinition::new("watch_state");
const WATCH_KEY: &str = "tracker";
/// Invoice key -> the mark it was last flagged with, for the sweeper.
const SWEEP_DUE: TableDefinition<&str, u64> = TableDefinition::new("sweep_due");
/// The last mark handed out, under [`SWEEP_MARK_KEY`].
const SWEEP_MARK: TableDefinition<&str, u64> = TableDefinition::new("sweep_mark");
const SWEEP_MARK_KEY: &str = "last";

/// What the watcher persists about the chain: the blocks the tracker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    pub solidified: u64,
    /// `(number, block id hex)`, contiguous, lowest first.
    pub blocks: Vec<(u64, String)>,
}

/// A seen payment awaiting solidification.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingCredit {
    invoice: String,
    block_number: u64,
    /// Its block, whose `credits_by_block` entry goes once the block is solid.
    block_id: String,
}

/// One entry of `credits_by_block`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlockCredit {
    payment: String,
    invoice: String,
}

pub use crate::outbox::Event;

/// What creating an invoice did.
#[derive(Debug)]
pub enum CreatedInvoice {
    New(Invoice),
    /// Same id, same request: the stored invoice.
    Existing(Invoice),
    /// Same id, different request: the stored invoice, untouched.
    Conflict(Invoice),
}

/// A credit with the time of its block, as the watcher hands it over.
#[derive(Debug, Clone)]
pub struct BlockCredits {
    pub credits: Vec<Credit>,
    pub block_timestamp_ms: i64,
}

/// The receive side's view of the shared database.
#[derive(Clone)]
pub struct ReceiveStore {
    store: Arc<Store>,
}

fn table_err<E: Into<redb::Error>>(e: E) -> StoreError {
    db(e)
}

impl ReceiveStore {
    /// Creates the tables if missing.
    pub fn open(store: Arc<Store>) -> Result<ReceiveStore, StoreError> {
        let tx = store.database().begin_write().map_err(table_err)?;
        tx.open_table(INVOICES).map_err(db)?;
        tx.open_table(OPEN).map_err(db)?;
        tx.open_table(PENDING).map_err(db)?;
        tx.open_table(BY_BLOCK).map_err(db)?;
        tx.open_table(WATCH).map_err(db)?;
        tx.open_table(SWEEP_DUE).map_err(db)?;
        tx.open_table(SWEEP_MARK).map_err(db)?;
        outbox::create_tables(&tx)?;
        tx.commit().map_err(db)?;
        Ok(ReceiveStore { store })
    }

    /// The invoice stored under `key` (`<tenant>/<id>`).
    pub fn invoice_by_key(&self, key: &str) -> Result<Option<Invoice>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let t = tx.open_table(INVOICES).map_err(db)?;
        match t.get(key).map_err(db)? {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// The invoices the sweeper should look at, with the mark each was flagged with.
    pub fn sweep_due(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let t = tx.open_table(SWEEP_DUE).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push((k.value().to_owned(), v.value()));
        }
        Ok(out)
    }

    /// Takes `key` off the sweeper's list if it is still flagged with `mark`: a payment
    /// settled since then flags it anew, and then it stays. Returns whether it went.
    pub fn clear_sweep_due(&self, key: &str, mark: u64) -> Result<bool, StoreError> {
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let cleared = {
            let mut t = tx.open_table(SWEEP_DUE).map_err(db)?;
            let current = t.get(key).map_err(db)?.map(|v| v.value());
            if current == Some(mark) {
                t.remove(key).map_err(db)?;
                true
            } else {
                false
            }
        };
        tx.commit().map_err(db)?;
        Ok(cleared)
    }

    /// Read-modify-write of invoice `key`'s sweeps in one durable transaction, with the
    /// event `f` names (`invoice.swept`, …) appended in the same transaction. If `f`
    /// fails nothing is written.
    pub fn update_sweeps<E: From<StoreError>>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Invoice) -> Result<Option<&'static str>, E>,
    ) -> Result<Invoice, E> {
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let inv = {
            let mut t = tx.open_table(INVOICES).map_err(db)?;
            let mut inv: Invoice = match t.get(key).map_err(db)? {
                Some(v) => decode(key, v.value())?,
                None => {
                    return Err(StoreError::Corrupt {
                        key: key.into(),
                        message: "the sweeper names an invoice that does not exist".into(),
                    }
                    .into())
                }
            };
            let event = f(&mut inv)?;
            t.insert(key, encode(&inv)?.as_slice()).map_err(db)?;
            if let Some(kind) = event {
                let now = inv
                    .sweeps
                    .last()
                    .map_or(inv.updated_at_ms, |s| s.updated_at_ms);
                outbox::append(
                    &tx,
                    &inv.tenant,
                    kind,
                    json!({ "invoice": inv.view() }),
                    now,
                )
                .map_err(StoreError::from)?;
            }
            inv
        };
        tx.commit().map_err(db)?;
        Ok(inv)
    }

    /// Stores a new invoice with a fresh deposit address, in one transaction with the
    /// index allocation; or returns the stored one for the same id.
    pub fn create_invoice<E: From<StoreError>>(
        &self,
        invoice: Invoice,
        derive: impl FnOnce(u32) -> Result<String, E>,
    ) -> Result<CreatedInvoice, E> {
        let key = invoice.key();
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let out = {
            let mut t = tx.open_table(INVOICES).map_err(db)?;
            let existing: Option<Invoice> = match t.get(key.as_str()).map_err(db)? {
                Some(v) => Some(decode(&key, v.value())?),
                None => None,
            };
            match existing {
                Some(e) if e.same_request(&invoice) => return Ok(CreatedInvoice::Existing(e)),
                Some(e) => return Ok(CreatedInvoice::Conflict(e)),
                None => {}
            }
            let allocated = allocate_in(&tx, &invoice.tenant, &invoice.id, derive)?;
            let d = allocated.deposit();
            let invoice = Invoice {
                deposit_index: d.index,
                address: d.address.clone(),
                ..invoice
            };
            t.insert(key.as_str(), encode(&invoice)?.as_slice())
                .map_err(db)?;
            tx.open_table(OPEN)
                .map_err(db)?
                .insert(key.as_str(), invoice.expires_at_ms)
                .map_err(db)?;
            CreatedInvoice::New(invoice)
        };
        tx.commit().map_err(db)?;
        Ok(out)
    }

    pub fn get_invoice(&self, tenant: &str, id: &str) -> Result<Option<Invoice>, StoreError> {
        let key = scoped_key(tenant, id);
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let t = tx.open_table(INVOICES).map_err(db)?;
        match t.get(key.as_str()).map_err(db)? {
            Some(v) => Ok(Some(decode(&key, v.value())?)),
            None => Ok(None),
        }
    }

    /// `tenant`'s invoices in id order after `after` (exclusive), those that `keep`, at
    /// most `limit`.
    pub fn list_invoices(
        &self,
        tenant: &str,
        after: Option<&str>,
        keep: impl Fn(&Invoice) -> bool,
        limit: usize,
    ) -> Result<Vec<Invoice>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let t = tx.open_table(INVOICES).map_err(db)?;
        let prefix = scoped_key(tenant, "");
        let start = match after {
            Some(a) => scoped_key(tenant, a),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for row in t.range(start.as_str()..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            if after.is_some() && k.value() == start {
                continue;
            }
            let inv: Invoice = decode(k.value(), v.value())?;
            if keep(&inv) {
                out.push(inv);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn watch_state(&self) -> Result<Option<WatchState>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let t = tx.open_table(WATCH).map_err(db)?;
        match t.get(WATCH_KEY).map_err(db)? {
            Some(v) => Ok(Some(decode(WATCH_KEY, v.value())?)),
            None => Ok(None),
        }
    }

    /// Saves the tracker without other changes (its first start, a settlement of no
    /// payments).
    pub fn save_watch_state(&self, state: &WatchState) -> Result<(), StoreError> {
        let tx = self.store.database().begin_write().map_err(table_err)?;
        put_watch(&tx, state)?;
        tx.commit().map_err(db)
    }

    /// A snapshot of the deposit addresses, for the watcher to ask "is this ours?".
    pub fn deposit_addresses(&self) -> Result<DepositAddresses, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        let table = tx.open_table(store::DEPOSIT_ADDRESSES).map_err(db)?;
        Ok(DepositAddresses {
            table,
            error: std::cell::RefCell::new(None),
        })
    }

    /// One block's worth of changes: un-see the payments of `unseen` blocks, record
    /// `credits` (each must be to a deposit address), save `state`. Returns the events.
    pub fn apply_block(
        &self,
        unseen: &[BlockId],
        block: Option<&BlockCredits>,
        state: &WatchState,
        now_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let mut touched = Touched::default();
        {
            let mut by_block = tx.open_table(BY_BLOCK).map_err(db)?;
            let mut pending = tx.open_table(PENDING).map_err(db)?;
            for id in unseen {
                let list: Vec<BlockCredit> = match by_block.remove(id.as_slice()).map_err(db)? {
                    Some(v) => decode("credits_by_block", v.value())?,
                    None => continue,
                };
                for c in list {
                    pending.remove(c.payment.as_str()).map_err(db)?;
                    let inv = touched.load(&tx, &c.invoice)?;
                    inv.set_payment_state(&c.payment, PaymentState::Unseen);
                }
            }
            if let Some(b) = block {
                let by_address = tx.open_table(store::DEPOSIT_ADDRESSES).map_err(db)?;
                for c in &b.credits {
                    let Some(index) = by_address.get(c.to.as_bytes().as_slice()).map_err(db)?
                    else {
                        return Err(StoreError::Corrupt {
                            key: c.to.to_base58(),
                            message: "credited address is not a deposit address".into(),
                        });
                    };
                    let deposit = deposit_in(&tx, index.value())?;
                    if c.asset == CreditAsset::Trx
                        && store::topup_txids_in(&tx, &deposit.tenant, &deposit.invoice)?
                            .contains(&hex::encode(c.txid))
                    {
                        continue;
                    }
                    let invoice_key = scoped_key(&deposit.tenant, &deposit.invoice);
                    let pkey = payment_key(&c.txid, c.log_index);
                    let payment = Payment {
                        key: pkey.clone(),
                        txid: hex::encode(c.txid),
                        log_index: c.log_index,
                        asset: match c.asset {
                            CreditAsset::Trx => Asset::Trx,
                            CreditAsset::Token => Asset::Usdt,
                        },
                        amount_units: c.amount,
                        block_number: c.block_number,
                        block_id: hex::encode(c.block_id),
                        block_timestamp_ms: b.block_timestamp_ms,
                        state: PaymentState::Seen,
                        after_close: false,
                        first_seen_ms: now_ms,
                    };
                    let inv = touched.load(&tx, &invoice_key)?;
                    let (_, after_close) = inv.upsert_payment(payment);
                    if after_close {
                        touched
                            .after_close
                            .push((invoice_key.clone(), pkey.clone()));
                    }
                    pending
                        .insert(
                            pkey.as_str(),
                            encode(&PendingCredit {
                                invoice: invoice_key.clone(),
                                block_number: c.block_number,
                                block_id: hex::encode(c.block_id),
                            })?
                            .as_slice(),
                        )
                        .map_err(db)?;
                    let mut list: Vec<BlockCredit> =
                        match by_block.get(c.block_id.as_slice()).map_err(db)? {
                            Some(v) => decode("credits_by_block", v.value())?,
                            None => Vec::new(),
                        };
                    if !list.iter().any(|e| e.payment == pkey) {
                        list.push(BlockCredit {
                            payment: pkey,
                            invoice: invoice_key,
                        });
                    }
                    by_block
                        .insert(c.block_id.as_slice(), encode(&list)?.as_slice())
                        .map_err(db)?;
                }
            }
        }
        let events = touched.commit_into(&tx, now_ms)?;
        put_watch(&tx, state)?;
        tx.commit().map_err(db)?;
        Ok(events)
    }

    /// Settles every pending payment in a block at or below `height` (which the caller
    /// has checked is on the node's solidified chain), and saves `state`.
    pub fn settle(
        &self,
        height: u64,
        state: &WatchState,
        now_ms: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let mut touched = Touched::default();
        {
            let mut pending = tx.open_table(PENDING).map_err(db)?;
            let mut due = Vec::new();
            for row in pending.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let p: PendingCredit = decode(k.value(), v.value())?;
                if p.block_number <= height {
                    due.push((k.value().to_owned(), p));
                }
            }
            // A solid block is never replaced: its un-see list is no longer needed.
            let mut by_block = tx.open_table(BY_BLOCK).map_err(db)?;
            for (pkey, p) in due {
                pending.remove(pkey.as_str()).map_err(db)?;
                if let Ok(id) = hex::decode(&p.block_id) {
                    by_block.remove(id.as_slice()).map_err(db)?;
                }
                let inv = touched.load(&tx, &p.invoice)?;
                inv.set_payment_state(&pkey, PaymentState::Settled);
            }
        }
        let events = touched.commit_into(&tx, now_ms)?;
        put_watch(&tx, state)?;
        tx.commit().map_err(db)?;
        Ok(events)
    }

    /// Re-evaluates open invoices whose expiry has passed.
    pub fn expire(&self, now_ms: i64) -> Result<Vec<Event>, StoreError> {
        // Looked at every poll: a read first, so a poll with nothing due writes nothing.
        {
            let tx = self.store.database().begin_read().map_err(table_err)?;
            let open = tx.open_table(OPEN).map_err(db)?;
            let mut any = false;
            for row in open.iter().map_err(db)? {
                if row.map_err(db)?.1.value() <= now_ms {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(Vec::new());
            }
        }
        let tx = self.store.database().begin_write().map_err(table_err)?;
        let mut touched = Touched::default();
        {
            let open = tx.open_table(OPEN).map_err(db)?;
            let mut due = Vec::new();
            for row in open.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                if v.value() <= now_ms {
                    due.push(k.value().to_owned());
                }
            }
            drop(open);
            for key in due {
                touched.load(&tx, &key)?;
            }
        }
        let events = touched.commit_into(&tx, now_ms)?;
        tx.commit().map_err(db)?;
        Ok(events)
    }

    /// Event `seq`, if written.
    pub fn event(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        Ok(outbox::get(&tx, seq)?)
    }

    /// How many of `tenant`'s events come after `after` (see [`outbox::pending`]).
    pub fn pending_events(
        &self,
        tenant: &str,
        after: u64,
        max_rows: usize,
    ) -> Result<outbox::Pending, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        Ok(outbox::pending(&tx, tenant, after, max_rows)?)
    }

    /// `tenant`'s events with a sequence number above `after`, oldest first, at most
    /// `limit`.
    pub fn events_after(
        &self,
        tenant: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let tx = self.store.database().begin_read().map_err(table_err)?;
        Ok(outbox::after(&tx, tenant, after, limit)?)
    }
}

/// Deposit address lookups for one block. A lookup that fails answers "not ours" and is
/// remembered; the watcher checks [`DepositAddresses::failure`] before using the answer, so
/// a storage error never silently drops a payment.
pub struct DepositAddresses {
    table: redb::ReadOnlyTable<&'static [u8], u32>,
    error: std::cell::RefCell<Option<StoreError>>,
}

impl DepositAddresses {
    pub fn contains(&self, a: &tron_proto::Address) -> bool {
        match self.table.get(a.as_bytes().as_slice()) {
            Ok(v) => v.is_some(),
            Err(e) => {
                self.error.borrow_mut().get_or_insert(db(e));
                false
            }
        }
    }

    /// The first lookup error, if any happened.
    pub fn failure(&self) -> Option<StoreError> {
        self.error.borrow_mut().take()
    }
}

fn put_watch(tx: &WriteTransaction, state: &WatchState) -> Result<(), StoreError> {
    tx.open_table(WATCH)
        .map_err(db)?
        .insert(WATCH_KEY, encode(state)?.as_slice())
        .map_err(db)?;
    Ok(())
}

fn deposit_in(tx: &WriteTransaction, index: u32) -> Result<store::Deposit, StoreError> {
    let t = tx.open_table(store::DEPOSITS).map_err(db)?;
    let v = t
        .get(index)
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt {
            key: format!("deposit {index}"),
            message: "indexed address without an allocation".into(),
        })?;
    decode(&format!("deposit {index}"), v.value())
}

/// Invoices loaded in one transaction, written back with their events at the end.
#[derive(Default)]
struct Touched {
    invoices: Vec<(String, Invoice)>,
    /// (invoice key, payment key) of payments that arrived after the invoice closed.
    after_close: Vec<(String, String)>,
}

impl Touched {
    fn load(&mut self, tx: &WriteTransaction, key: &str) -> Result<&mut Invoice, StoreError> {
        if let Some(i) = self.invoices.iter().position(|(k, _)| k == key) {
            return Ok(&mut self.invoices[i].1);
        }
        let t = tx.open_table(INVOICES).map_err(db)?;
        let v = t.get(key).map_err(db)?.ok_or_else(|| StoreError::Corrupt {
            key: key.into(),
            message: "a deposit or credit names an invoice that does not exist".into(),
        })?;
        let inv: Invoice = decode(key, v.value())?;
        drop(v);
        drop(t);
        self.invoices.push((key.to_owned(), inv));
        let last = self.invoices.len() - 1;
        Ok(&mut self.invoices[last].1)
    }

    /// Re-evaluates every loaded invoice, writes it, keeps `invoices_open` in step, and
    /// appends the events (status changes, payments after close) to the outbox.
    fn commit_into(self, tx: &WriteTransaction, now_ms: i64) -> Result<Vec<Event>, StoreError> {
        let mut t = tx.open_table(INVOICES).map_err(db)?;
        let mut open = tx.open_table(OPEN).map_err(db)?;
        let mut due = tx.open_table(SWEEP_DUE).map_err(db)?;
        let mut marks = tx.open_table(SWEEP_MARK).map_err(db)?;
        let mut events = Vec::new();
        for (key, mut inv) in self.invoices {
            let mut kinds: Vec<&'static str> = Vec::new();
            if self.after_close.iter().any(|(k, _)| *k == key) {
                kinds.push("invoice.payment_after_close");
            }
            if let Some(status) = inv.refresh(now_ms) {
                kinds.push(status.event_type());
            }
            inv.updated_at_ms = now_ms;
            t.insert(key.as_str(), encode(&inv)?.as_slice())
                .map_err(db)?;
            if inv.status.is_closed() || inv.status == InvoiceStatus::Seen {
                open.remove(key.as_str()).map_err(db)?;
            } else {
                open.insert(key.as_str(), inv.expires_at_ms).map_err(db)?;
            }
            // A closed invoice whose address holds settled funds: the sweeper looks.
            let settled = inv
                .payments
                .iter()
                .any(|p| p.state == PaymentState::Settled);
            if inv.status.is_closed() && settled {
                let mark = marks
                    .get(SWEEP_MARK_KEY)
                    .map_err(db)?
                    .map_or(0, |v| v.value())
                    + 1;
                marks.insert(SWEEP_MARK_KEY, mark).map_err(db)?;
                due.insert(key.as_str(), mark).map_err(db)?;
            }
            for kind in kinds {
                let data = json!({ "invoice": inv.view() });
                events.push(outbox::append(tx, &inv.tenant, kind, data, now_ms)?);
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoice::{ExpiryRequest, StatusChange};
    use redb::ReadableTableMetadata;
    use tron_proto::{Address, U256};

    fn address(i: u32) -> String {
        let mut body = [0u8; 20];
        body[16..].copy_from_slice(&i.to_be_bytes());
        Address::from_evm(body).to_base58()
    }

    fn invoice(id: &str, expires_at_ms: i64) -> Invoice {
        Invoice {
            tenant: "shop".into(),
            id: id.into(),
            created_by: "k".into(),
            asset: Asset::Usdt,
            amount_units: 100,
            tolerance_units: 0,
            expiry: ExpiryRequest::At(expires_at_ms),
            expires_at_ms,
            reference: None,
            metadata: json!({}),
            deposit_index: 0,
            address: String::new(),
            status: InvoiceStatus::New,
            created_at_ms: 0,
            updated_at_ms: 0,
            payments: vec![],
            history: vec![StatusChange {
                status: InvoiceStatus::New,
                at_ms: 0,
            }],
            sweeps: vec![],
        }
    }

    fn credit(to: &str, block: u8, amount: u32) -> Credit {
        let mut block_id = [block; 32];
        block_id[..8].copy_from_slice(&u64::from(block).to_be_bytes());
        Credit {
            txid: [0x11; 32],
            log_index: Some(0),
            to: to.parse().unwrap(),
            asset: CreditAsset::Token,
            amount: U256::from(amount),
            block_number: u64::from(block),
            block_id,
        }
    }

    fn state(n: u64) -> WatchState {
        WatchState {
            solidified: n,
            blocks: vec![(n, "00".repeat(32))],
        }
    }

    fn setup() -> (tempfile::TempDir, ReceiveStore) {
        let dir = tempfile::tempdir().unwrap();
        let s =
            ReceiveStore::open(Arc::new(Store::open(&dir.path().join("r.redb")).unwrap())).unwrap();
        (dir, s)
    }

    fn kinds(e: &[Event]) -> Vec<&str> {
        e.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn the_same_block_twice_credits_once_and_unseeing_takes_it_back() {
        let (_d, s) = setup();
        let inv = match s
            .create_invoice::<StoreError>(invoice("i", i64::MAX), |i| Ok(address(i)))
            .unwrap()
        {
            CreatedInvoice::New(i) => i,
            other => panic!("{other:?}"),
        };
        let c = credit(&inv.address, 5, 100);
        let b = BlockCredits {
            credits: vec![c.clone()],
            block_timestamp_ms: 1,
        };
        assert_eq!(
            kinds(&s.apply_block(&[], Some(&b), &state(4), 10).unwrap()),
            ["invoice.seen"]
        );
        // A crash after commit, the block processed again: nothing new.
        assert!(s
            .apply_block(&[], Some(&b), &state(4), 11)
            .unwrap()
            .is_empty());
        let got = s.get_invoice("shop", "i").unwrap().unwrap();
        assert_eq!(got.payments.len(), 1);
        // Un-seeing a block nobody credited from changes nothing; the credited one does.
        assert!(s
            .apply_block(&[[9; 32]], None, &state(4), 12)
            .unwrap()
            .is_empty());
        assert_eq!(
            kinds(&s.apply_block(&[c.block_id], None, &state(4), 13).unwrap()),
            ["invoice.new"]
        );
        let got = s.get_invoice("shop", "i").unwrap().unwrap();
        assert_eq!(got.payments[0].state, PaymentState::Unseen);
        // Nothing pending any more: settling does nothing.
        assert!(s.settle(10, &state(10), 14).unwrap().is_empty());
        // Events are numbered in order and read back per tenant.
        let all = s.events_after("shop", 0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(s.events_after("shop", 1, 10).unwrap().len(), 1);
        assert!(s.events_after("other", 0, 10).unwrap().is_empty());
        assert!(s.events_after("shop", u64::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn settling_forgets_the_blocks_un_see_lists() {
        let (_d, s) = setup();
        let inv = match s
            .create_invoice::<StoreError>(invoice("i", i64::MAX), |i| Ok(address(i)))
            .unwrap()
        {
            CreatedInvoice::New(i) => i,
            other => panic!("{other:?}"),
        };
        let c = credit(&inv.address, 5, 100);
        let b = BlockCredits {
            credits: vec![c.clone()],
            block_timestamp_ms: 1,
        };
        s.apply_block(&[], Some(&b), &state(4), 1).unwrap();
        assert_eq!(
            kinds(&s.settle(4, &state(4), 2).unwrap()),
            Vec::<&str>::new(),
            "block 5 is above 4"
        );
        assert_eq!(kinds(&s.settle(5, &state(5), 3).unwrap()), ["invoice.paid"]);
        let tx = s.store.database().begin_read().unwrap();
        let t = tx.open_table(BY_BLOCK).unwrap();
        assert!(t.get(c.block_id.as_slice()).unwrap().is_none());
        assert!(tx.open_table(PENDING).unwrap().is_empty().unwrap());
    }

    #[test]
    fn expiry_sweeps_open_invoices_once() {
        let (_d, s) = setup();
        s.create_invoice::<StoreError>(invoice("late", 100), |i| Ok(address(i)))
            .unwrap();
        assert!(s.expire(99).unwrap().is_empty());
        assert_eq!(kinds(&s.expire(100).unwrap()), ["invoice.expired"]);
        assert!(s.expire(200).unwrap().is_empty(), "closed: no longer swept");
    }

    #[test]
    fn closed_invoices_with_settled_funds_are_flagged_for_the_sweeper_by_mark() {
        let (_d, s) = setup();
        let inv = match s
            .create_invoice::<StoreError>(invoice("i", i64::MAX), |i| Ok(address(i)))
            .unwrap()
        {
            CreatedInvoice::New(i) => i,
            other => panic!("{other:?}"),
        };
        let b = BlockCredits {
            credits: vec![credit(&inv.address, 5, 100)],
            block_timestamp_ms: 1,
        };
        s.apply_block(&[], Some(&b), &state(4), 1).unwrap();
        assert!(
            s.sweep_due().unwrap().is_empty(),
            "seen, not settled: not yet"
        );
        s.settle(5, &state(5), 2).unwrap();
        let due = s.sweep_due().unwrap();
        assert_eq!(due.len(), 1);
        let (key, mark) = due[0].clone();
        assert_eq!(key, "shop/i");
        // A later settled payment flags it anew: the old mark no longer clears it.
        let mut later = credit(&inv.address, 6, 5);
        later.txid = [0x22; 32];
        let b = BlockCredits {
            credits: vec![later],
            block_timestamp_ms: 2,
        };
        s.apply_block(&[], Some(&b), &state(5), 3).unwrap();
        s.settle(6, &state(6), 4).unwrap();
        assert!(!s.clear_sweep_due(&key, mark).unwrap());
        let (_, newer) = s.sweep_due().unwrap()[0].clone();
        assert!(newer > mark);
        assert!(s.clear_sweep_due(&key, newer).unwrap());
        assert!(s.sweep_due().unwrap().is_empty());
        // The sweeper's record and its event go in one transaction.
        let got = s
            .update_sweeps::<StoreError>(&key, |inv| {
                inv.updated_at_ms = 9;
                Ok(Some("invoice.swept"))
            })
            .unwrap();
        assert_eq!(got.updated_at_ms, 9);
        let events = s.events_after("shop", 0, 100).unwrap();
        assert_eq!(
            events.last().map(|e| e.kind.as_str()),
            Some("invoice.swept")
        );
        assert_eq!(
            s.update_sweeps::<StoreError>("shop/nope", |_| Ok(None))
                .unwrap_err()
                .code(),
            "database_corrupt"
        );
    }

    #[test]
    fn a_credit_to_an_address_that_is_not_a_deposit_is_refused() {
        let (_d, s) = setup();
        let b = BlockCredits {
            credits: vec![credit(&address(7), 5, 1)],
            block_timestamp_ms: 1,
        };
        let e = s.apply_block(&[], Some(&b), &state(4), 1).unwrap_err();
        assert_eq!(e.code(), "database_corrupt");
        assert_eq!(s.watch_state().unwrap(), None, "nothing written");
    }
}
