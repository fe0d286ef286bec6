//! The in-memory view the service decides on: txids, payout ids and usage, covering both
//! committed entries and reservations still on their way to disk.
//!
//! Kept small on purpose (about 250 bytes per live entry): a txid maps to its audit sequence
//! number, expiration and payout key only; the full entry (signature included) stays on disk
//! and is read back for the rare replay. Payout ids are held as a SHA-256 of key and id, so
//! no string is allocated per entry.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use tron_proto::{Address, U256};

use super::entry::{Entry, PendingEntry};
use super::usage::UsageIndex;
use crate::decode::Asset;

/// Usage buckets older than the retention are dropped at most this often: a sweep looks at
/// every series, and an old bucket costs only memory (it is outside every window anyway).
const USAGE_SWEEP_EVERY_MS: i64 = 60_000;

/// What the in-memory state knows about a txid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Reserved by a request that has not finished.
    InFlight,
    /// Durable, under this audit sequence number (the entry's key in the `entries` table).
    Committed(u64),
}

/// What the ledger knows about a txid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Signed and durable: release this signature again, count nothing.
    Committed(Box<Entry>),
    /// Reserved by a request that has not finished; the caller should ask again shortly.
    InFlight,
}

/// The newest transaction issued (or being issued) for a payout id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutRef {
    pub txid: [u8; 32],
    pub expiration_ms: i64,
    pub in_flight: bool,
}

/// SHA-256 of the key's 21 bytes and the payout id: fixed length, so no two (key, id) pairs
/// share an input, and no collision can be found to make two payouts one.
type PayoutKey = [u8; 32];

pub(crate) fn payout_key(key: &Address, payout_id: &str) -> PayoutKey {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(payout_id.as_bytes());
    h.finalize().into()
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Audit sequence number of the committed entry; 0 while in flight (sequences start at 1).
    seq: u64,
    /// Which reservation holds it while in flight: with a shared ledger a txid voided by
    /// another signer can be reserved again here while the first reservation still exists,
    /// and that one's rollback must not undo the second.
    token: u64,
    expiration_ms: i64,
    payout: PayoutKey,
}

/// Every map here is a `BTreeMap`: it grows a node at a time. A hash map doubles and rehashes
/// the whole table in one insert, which at large sizes holds the state lock (and so every
/// request) for a long pause; a B-tree lookup costs little more (BENCHMARKS.md, ledger).
#[derive(Debug)]
pub(crate) struct State {
    txids: BTreeMap<[u8; 32], Slot>,
    /// Payout key -> the newest txid issued for it (whose slot is in `txids`).
    payouts: BTreeMap<PayoutKey, [u8; 32]>,
    /// Committed txids by expiration millisecond, so old ones can be forgotten in order.
    /// Grouped: Tron expirations are mostly a block time plus a constant, so many share one.
    expiry: BTreeMap<i64, Vec<[u8; 32]>>,
    usage: UsageIndex,
    retention_ms: u64,
    usage_swept_at_ms: i64,
    /// The latest signing time of any entry, durable or reserved: the clock a signer trusts
    /// least to have jumped. `None` before the first signature.
    latest_signed_ms: Option<i64>,
    /// The token of the next reservation.
    next_token: u64,
}

/// What a rollback needs to undo a reservation.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    pub entry: PendingEntry,
    /// The txid the payout id pointed at before this reservation took it over.
    pub prev_payout: Option<[u8; 32]>,
    /// The slot's token ([`Slot::token`]).
    pub token: u64,
}

impl State {
    pub(crate) fn new(retention_ms: u64, latest_signed_ms: Option<i64>) -> State {
        State {
            txids: BTreeMap::new(),
            payouts: BTreeMap::new(),
            expiry: BTreeMap::new(),
            usage: UsageIndex::default(),
            retention_ms,
            usage_swept_at_ms: i64::MIN,
            latest_signed_ms,
            next_token: 1,
        }
    }

    /// The latest time anything was signed (or reserved to be signed) at.
    pub(crate) fn latest_signed_ms(&self) -> Option<i64> {
        self.latest_signed_ms
    }

    /// Raises the latest signing time to `t` (another signer's, read from a shared ledger).
    pub(crate) fn note_latest_signed(&mut self, t: i64) {
        self.latest_signed_ms = Some(self.latest_signed_ms.map_or(t, |l| l.max(t)));
    }

    pub(crate) fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    pub(crate) fn find_txid(&self, txid: &[u8; 32]) -> Option<Found> {
        self.txids.get(txid).map(|slot| match slot.seq {
            0 => Found::InFlight,
            seq => Found::Committed(seq),
        })
    }

    pub(crate) fn find_payout(&self, key: &Address, payout_id: &str) -> Option<PayoutRef> {
        let txid = self.payouts.get(&payout_key(key, payout_id))?;
        let slot = self.txids.get(txid)?;
        Some(PayoutRef {
            txid: *txid,
            expiration_ms: slot.expiration_ms,
            in_flight: slot.seq == 0,
        })
    }

    /// What counts at `now_ms` for a lookback of window plus clock skew (`policy::landing`).
    pub(crate) fn used(
        &self,
        key: &Address,
        asset: Asset,
        dest: Option<&Address>,
        lookback_ms: u64,
        now_ms: i64,
    ) -> U256 {
        self.usage.used(key, asset, dest, lookback_ms, now_ms)
    }

    /// Loads a committed entry at open. Newest audit sequence wins a payout id.
    pub(crate) fn load(&mut self, entry: &Entry) {
        let p = &entry.pending;
        let pk = payout_key(&p.key, &p.payout_id);
        let replace = match self.payouts.get(&pk).and_then(|t| self.txids.get(t)) {
            Some(existing) => existing.seq < entry.audit_seq,
            None => true,
        };
        if replace {
            self.payouts.insert(pk, p.txid);
        }
        self.usage
            .insert(p.key, p.asset, p.destination, p.expiration_ms, p.amount);
        self.expiry.entry(p.expiration_ms).or_default().push(p.txid);
        self.txids.insert(
            p.txid,
            Slot {
                seq: entry.audit_seq,
                token: 0,
                expiration_ms: p.expiration_ms,
                payout: pk,
            },
        );
    }

    /// Counts the entry in usage and marks its txid and payout id as in flight.
    pub(crate) fn reserve(&mut self, entry: PendingEntry) -> Undo {
        // The service checked this clock against the latest signature (`clock_jump`), so
        // it may move the latest signing time on and prune by it.
        self.latest_signed_ms = Some(
            self.latest_signed_ms
                .map_or(entry.signed_at_ms, |t| t.max(entry.signed_at_ms)),
        );
        self.prune(entry.signed_at_ms);
        let pk = payout_key(&entry.key, &entry.payout_id);
        let prev_payout = self.payouts.insert(pk, entry.txid);
        self.usage.insert(
            entry.key,
            entry.asset,
            entry.destination,
            entry.expiration_ms,
            entry.amount,
        );
        let token = self.next_token;
        self.next_token += 1;
        self.txids.insert(
            entry.txid,
            Slot {
                seq: 0,
                token,
                expiration_ms: entry.expiration_ms,
                payout: pk,
            },
        );
        Undo {
            entry,
            prev_payout,
            token,
        }
    }

    /// After a durable commit under audit sequence `seq`: the reservation becomes committed.
    pub(crate) fn mark_committed(&mut self, txid: &[u8; 32], seq: u64) {
        if let Some(slot) = self.txids.get_mut(txid) {
            slot.seq = seq;
            self.expiry
                .entry(slot.expiration_ms)
                .or_default()
                .push(*txid);
        }
    }

    /// Undoes a reservation that will never be committed. Only touches what is still its own:
    /// a payout id that has meanwhile moved on to another txid is left alone.
    pub(crate) fn rollback(&mut self, undo: &Undo) {
        let p = &undo.entry;
        let pk = match self.txids.get(&p.txid) {
            Some(slot) if slot.seq == 0 && slot.token == undo.token => slot.payout,
            _ => return,
        };
        self.txids.remove(&p.txid);
        self.usage
            .remove(p.key, p.asset, p.destination, p.expiration_ms, p.amount);
        if self.payouts.get(&pk) == Some(&p.txid) {
            match undo.prev_payout {
                Some(prev) if self.txids.contains_key(&prev) => {
                    self.payouts.insert(pk, prev);
                }
                _ => {
                    self.payouts.remove(&pk);
                }
            }
        }
    }

    /// Undoes whichever reservation holds `entry`'s txid in flight: another signer's that
    /// was voided, or this signer's own voided by another's lease check.
    pub(crate) fn rollback_in_flight(&mut self, entry: &PendingEntry) {
        let Some(token) = self
            .txids
            .get(&entry.txid)
            .filter(|s| s.seq == 0)
            .map(|s| s.token)
        else {
            return;
        };
        self.rollback(&Undo {
            entry: entry.clone(),
            prev_payout: None,
            token,
        });
    }

    /// Forgets committed entries whose expiration is older than `now - retention`: they no
    /// longer count in any window the ledger was opened for (a policy's windows plus its
    /// clock skew fit in the retention, which the policy loader checks), and their payout ids
    /// are free. `now` is never taken later than the latest signing time: a clock that
    /// jumped ahead (and is refused `clock_jump`) must not make the ledger forget usage that
    /// counts again once the clock is back.
    fn prune(&mut self, now_ms: i64) {
        let now_ms = self.latest_signed_ms.map_or(now_ms, |t| t.min(now_ms));
        let cutoff = now_ms.saturating_sub(i64::try_from(self.retention_ms).unwrap_or(i64::MAX));
        while let Some(entry) = self.expiry.first_entry() {
            if *entry.key() >= cutoff {
                break;
            }
            for txid in entry.remove() {
                let Some(slot) = self.txids.remove(&txid) else {
                    continue;
                };
                if self.payouts.get(&slot.payout) == Some(&txid) {
                    self.payouts.remove(&slot.payout);
                }
            }
        }
        // Concurrent requests read the clock before taking the lock, so `now` arrives slightly
        // out of order; only a clock a whole period ahead of the last sweep sweeps again.
        if now_ms >= self.usage_swept_at_ms.saturating_add(USAGE_SWEEP_EVERY_MS) {
            self.usage.prune(cutoff);
            self.usage_swept_at_ms = now_ms;
        }
    }

    #[cfg(test)]
    pub(crate) fn live_entries(&self) -> usize {
        self.txids.len()
    }

    #[cfg(test)]
    pub(crate) fn usage_series(&self) -> usize {
        self.usage.series_count()
    }
}
