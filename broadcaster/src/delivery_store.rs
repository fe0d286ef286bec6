//! Where each webhook endpoint stands, in the broadcaster's database: the last event it
//! has had (delivered, or given up on), the retry state of the event in flight, the
//! events given up on, and redeliveries asked for by API.
//!
//! Why one cursor per endpoint and one event in flight: events go out in `seq` order and
//! the next waits until the current one is delivered or given up, so a receiver sees each
//! invoice's events in the order they happened, even after being down for a while.
//! Delivery is at least once (a crash after the receiver answered but before the cursor
//! moved sends the event again, with the same event id).

use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{db_error as db, decode, encode, Store, StoreError};

const CURSOR: TableDefinition<&str, u64> = TableDefinition::new("webhook_cursor");
const IN_FLIGHT: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_in_flight");
/// `<endpoint>/<seq as 16 hex digits>` → [`Attempt`] of a given-up event.
const FAILED: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_failed");
/// `<endpoint>/<seq as 16 hex digits>` → [`Attempt`] of a redelivery asked for.
const REDELIVER: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_redeliver");

/// The delivery state of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub seq: u64,
    /// Attempts made so far.
    pub attempts: u32,
    pub first_at_ms: i64,
    /// Not before this time.
    pub next_at_ms: i64,
    pub last_error: Option<String>,
}

impl Attempt {
    pub fn new(seq: u64, now_ms: i64) -> Attempt {
        Attempt {
            seq,
            attempts: 0,
            first_at_ms: now_ms,
            next_at_ms: now_ms,
            last_error: None,
        }
    }
}

fn key(endpoint: &str, seq: u64) -> String {
    format!("{endpoint}/{seq:016x}")
}

#[derive(Clone)]
pub struct DeliveryStore {
    store: Arc<Store>,
}

impl DeliveryStore {
    pub fn open(store: Arc<Store>) -> Result<DeliveryStore, StoreError> {
        let tx = store.database().begin_write().map_err(db)?;
        tx.open_table(CURSOR).map_err(db)?;
        tx.open_table(IN_FLIGHT).map_err(db)?;
        tx.open_table(FAILED).map_err(db)?;
        tx.open_table(REDELIVER).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(DeliveryStore { store })
    }

    /// The seq of the last event `endpoint` has had; 0 for a new endpoint (so it gets
    /// every event of its tenant from the first).
    pub fn cursor(&self, endpoint: &str) -> Result<u64, StoreError> {
        let tx = self.store.database().begin_read().map_err(db)?;
        let t = tx.open_table(CURSOR).map_err(db)?;
        Ok(t.get(endpoint).map_err(db)?.map_or(0, |v| v.value()))
    }

    pub fn in_flight(&self, endpoint: &str) -> Result<Option<Attempt>, StoreError> {
        let tx = self.store.database().begin_read().map_err(db)?;
        let t = tx.open_table(IN_FLIGHT).map_err(db)?;
        match t.get(endpoint).map_err(db)? {
            Some(v) => Ok(Some(decode(endpoint, v.value())?)),
            None => Ok(None),
        }
    }

    /// Records a failed attempt of the event in flight.
    pub fn retry_later(&self, endpoint: &str, a: &Attempt) -> Result<(), StoreError> {
        let tx = self.store.database().begin_write().map_err(db)?;
        tx.open_table(IN_FLIGHT)
            .map_err(db)?
            .insert(endpoint, encode(a)?.as_slice())
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// The event in flight is done: delivered, or (`gave_up`) recorded as failed.
    pub fn done(&self, endpoint: &str, a: &Attempt, gave_up: bool) -> Result<(), StoreError> {
        let tx = self.store.database().begin_write().map_err(db)?;
        {
            let mut cursor = tx.open_table(CURSOR).map_err(db)?;
            let at = cursor.get(endpoint).map_err(db)?.map_or(0, |v| v.value());
            cursor.insert(endpoint, at.max(a.seq)).map_err(db)?;
            tx.open_table(IN_FLIGHT)
                .map_err(db)?
                .remove(endpoint)
                .map_err(db)?;
            if gave_up {
                tx.open_table(FAILED)
                    .map_err(db)?
                    .insert(key(endpoint, a.seq).as_str(), encode(a)?.as_slice())
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Events given up on for `endpoint`, oldest first.
    pub fn failed(&self, endpoint: &str) -> Result<Vec<Attempt>, StoreError> {
        self.scan(FAILED, endpoint)
    }

    /// Asks for event `seq` to be sent to `endpoint` again, out of order.
    pub fn redeliver(&self, endpoint: &str, seq: u64, now_ms: i64) -> Result<(), StoreError> {
        let tx = self.store.database().begin_write().map_err(db)?;
        tx.open_table(REDELIVER)
            .map_err(db)?
            .insert(
                key(endpoint, seq).as_str(),
                encode(&Attempt::new(seq, now_ms))?.as_slice(),
            )
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Redeliveries waiting for `endpoint`, oldest event first.
    pub fn redeliveries(&self, endpoint: &str) -> Result<Vec<Attempt>, StoreError> {
        self.scan(REDELIVER, endpoint)
    }

    /// A redelivery attempt failed (`Some`: its new state) or succeeded (`None`: gone).
    pub fn redelivery_result(
        &self,
        endpoint: &str,
        seq: u64,
        retry: Option<&Attempt>,
    ) -> Result<(), StoreError> {
        let tx = self.store.database().begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(REDELIVER).map_err(db)?;
            let k = key(endpoint, seq);
            match retry {
                Some(a) => {
                    t.insert(k.as_str(), encode(a)?.as_slice()).map_err(db)?;
                }
                None => {
                    t.remove(k.as_str()).map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)
    }

    fn scan(
        &self,
        table: TableDefinition<&str, &[u8]>,
        endpoint: &str,
    ) -> Result<Vec<Attempt>, StoreError> {
        let tx = self.store.database().begin_read().map_err(db)?;
        let t = tx.open_table(table).map_err(db)?;
        let prefix = format!("{endpoint}/");
        let mut out = Vec::new();
        for row in t.range(prefix.as_str()..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_in_flight_failures_and_redeliveries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.redb");
        {
            let s = DeliveryStore::open(Arc::new(Store::open(&path).unwrap())).unwrap();
            assert_eq!(s.cursor("shop").unwrap(), 0);
            let mut a = Attempt::new(3, 10);
            a.attempts = 1;
            a.last_error = Some("HTTP 503".into());
            s.retry_later("shop", &a).unwrap();
            assert_eq!(s.in_flight("shop").unwrap(), Some(a.clone()));
            s.done("shop", &a, true).unwrap();
            s.redeliver("shop", 3, 20).unwrap();
            s.redeliver("shop-2", 9, 20).unwrap();
        }
        // Survives a restart.
        let s = DeliveryStore::open(Arc::new(Store::open(&path).unwrap())).unwrap();
        assert_eq!(s.cursor("shop").unwrap(), 3);
        assert_eq!(s.in_flight("shop").unwrap(), None);
        assert_eq!(s.failed("shop").unwrap()[0].seq, 3);
        assert_eq!(s.redeliveries("shop").unwrap().len(), 1, "not shop-2's");
        s.redelivery_result("shop", 3, None).unwrap();
        assert!(s.redeliveries("shop").unwrap().is_empty());
        // The cursor never goes back.
        s.done("shop", &Attempt::new(2, 30), false).unwrap();
        assert_eq!(s.cursor("shop").unwrap(), 3);
    }
}
