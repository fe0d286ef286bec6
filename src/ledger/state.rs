//! The in-memory view the service decides on: txids, payout ids and usage, covering both
//! committed entries and reservations still on their way to disk.

use std::collections::{BTreeSet, HashMap};

use tron_proto::{Address, U256};

use super::entry::{Entry, PendingEntry};
use super::usage::UsageIndex;
use crate::decode::Asset;

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

#[derive(Debug)]
enum Slot {
    InFlight(PendingEntry),
    Committed(Entry),
}

impl Slot {
    fn pending(&self) -> &PendingEntry {
        match self {
            Slot::InFlight(p) => p,
            Slot::Committed(e) => &e.pending,
        }
    }
}

#[derive(Debug)]
pub(crate) struct State {
    txids: HashMap<[u8; 32], Slot>,
    payouts: HashMap<Address, HashMap<String, PayoutRef>>,
    /// Committed entries by expiration, so old ones can be forgotten in order.
    expiry: BTreeSet<(i64, [u8; 32])>,
    usage: UsageIndex,
    retention_ms: u64,
}

/// What a rollback needs to undo a reservation.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    pub entry: PendingEntry,
    pub prev_payout: Option<PayoutRef>,
}

impl State {
    pub(crate) fn new(retention_ms: u64) -> State {
        State {
            txids: HashMap::new(),
            payouts: HashMap::new(),
            expiry: BTreeSet::new(),
            usage: UsageIndex::default(),
            retention_ms,
        }
    }

    pub(crate) fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    pub(crate) fn find_txid(&self, txid: &[u8; 32]) -> Option<Lookup> {
        self.txids.get(txid).map(|slot| match slot {
            Slot::InFlight(_) => Lookup::InFlight,
            Slot::Committed(e) => Lookup::Committed(Box::new(e.clone())),
        })
    }

    pub(crate) fn find_payout(&self, key: &Address, payout_id: &str) -> Option<PayoutRef> {
        self.payouts.get(key)?.get(payout_id).copied()
    }

    pub(crate) fn used(
        &self,
        key: &Address,
        asset: Asset,
        dest: Option<&Address>,
        window_ms: u64,
        now_ms: i64,
    ) -> U256 {
        self.usage.used(key, asset, dest, window_ms, now_ms)
    }

    /// Loads a committed entry at open. Newest audit sequence wins a payout id.
    pub(crate) fn load(&mut self, entry: Entry) {
        let p = &entry.pending;
        let replace = match self.find_payout(&p.key, &p.payout_id) {
            Some(existing) => match self.txids.get(&existing.txid) {
                Some(Slot::Committed(old)) => old.audit_seq < entry.audit_seq,
                _ => true,
            },
            None => true,
        };
        if replace {
            self.set_payout(
                p.key,
                &p.payout_id,
                PayoutRef {
                    txid: p.txid,
                    expiration_ms: p.expiration_ms,
                    in_flight: false,
                },
            );
        }
        self.usage.insert(
            p.key,
            p.asset,
            p.destination,
            p.expiration_ms,
            p.txid,
            p.amount,
        );
        self.expiry.insert((p.expiration_ms, p.txid));
        self.txids.insert(p.txid, Slot::Committed(entry));
    }

    /// Counts the entry in usage and marks its txid and payout id as in flight.
    pub(crate) fn reserve(&mut self, entry: PendingEntry) -> Undo {
        self.prune(entry.signed_at_ms);
        let prev_payout = self.find_payout(&entry.key, &entry.payout_id);
        self.set_payout(
            entry.key,
            &entry.payout_id,
            PayoutRef {
                txid: entry.txid,
                expiration_ms: entry.expiration_ms,
                in_flight: true,
            },
        );
        self.usage.insert(
            entry.key,
            entry.asset,
            entry.destination,
            entry.expiration_ms,
            entry.txid,
            entry.amount,
        );
        self.txids.insert(entry.txid, Slot::InFlight(entry.clone()));
        Undo { entry, prev_payout }
    }

    /// After a durable commit: the reservation becomes a committed entry.
    pub(crate) fn mark_committed(&mut self, entry: Entry) {
        let p = &entry.pending;
        if let Some(r) = self
            .payouts
            .get_mut(&p.key)
            .and_then(|m| m.get_mut(p.payout_id.as_str()))
        {
            if r.txid == p.txid {
                r.in_flight = false;
            }
        }
        self.expiry.insert((p.expiration_ms, p.txid));
        self.txids.insert(p.txid, Slot::Committed(entry));
    }

    /// Undoes a reservation that will never be committed. Only touches what is still its own:
    /// a payout id that has meanwhile moved on to another txid is left alone.
    pub(crate) fn rollback(&mut self, undo: &Undo) {
        let p = &undo.entry;
        match self.txids.get(&p.txid) {
            Some(Slot::InFlight(_)) => {}
            _ => return,
        }
        self.txids.remove(&p.txid);
        self.usage
            .remove(p.key, p.asset, p.destination, p.expiration_ms, p.txid);
        let ours = self
            .find_payout(&p.key, &p.payout_id)
            .is_some_and(|r| r.txid == p.txid);
        if ours {
            match undo.prev_payout {
                Some(prev) if self.txids.contains_key(&prev.txid) => {
                    self.set_payout(p.key, &p.payout_id, prev)
                }
                _ => self.remove_payout(&p.key, &p.payout_id),
            }
        }
    }

    /// Forgets committed entries whose expiration is older than `now - retention`: they no
    /// longer count in any window the ledger was opened for, and their payout ids are free.
    fn prune(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(i64::try_from(self.retention_ms).unwrap_or(i64::MAX));
        while let Some(&(exp, txid)) = self.expiry.first() {
            if exp >= cutoff {
                break;
            }
            self.expiry.pop_first();
            let Some(slot) = self.txids.remove(&txid) else {
                continue;
            };
            let p = slot.pending();
            self.usage
                .remove(p.key, p.asset, p.destination, p.expiration_ms, p.txid);
            if self
                .find_payout(&p.key, &p.payout_id)
                .is_some_and(|r| r.txid == txid)
            {
                let (key, id) = (p.key, p.payout_id.clone());
                self.remove_payout(&key, &id);
            }
        }
    }

    fn set_payout(&mut self, key: Address, payout_id: &str, r: PayoutRef) {
        let map = self.payouts.entry(key).or_default();
        match map.get_mut(payout_id) {
            Some(slot) => *slot = r,
            None => {
                map.insert(payout_id.to_owned(), r);
            }
        }
    }

    fn remove_payout(&mut self, key: &Address, payout_id: &str) {
        if let Some(map) = self.payouts.get_mut(key) {
            map.remove(payout_id);
            if map.is_empty() {
                self.payouts.remove(key);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn live_entries(&self) -> usize {
        self.txids.len()
    }
}
