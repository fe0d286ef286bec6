//! The event outbox: events appended inside the caller's write transaction, so an event
//! exists exactly when the state change it reports was committed. Payout status changes
//! ([`crate::store`]) and invoice changes ([`crate::receive_store`]) share it: one `seq`
//! orders every event of the database, and webhooks and `GET /v1/events` read from here.
//!
//! Below the stores (it imports neither), so both can write to it.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub const EVENT_SEQ: TableDefinition<&str, u64> = TableDefinition::new("event_seq");
const SEQ_KEY: &str = "last";

/// One event. `seq` orders all events; per invoice or payout they are in the order the
/// changes happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant: String,
    pub created_at: i64,
    /// `{"invoice": …}` or `{"payout": …}` as it was after the change.
    pub data: Value,
}

/// A database or decoding failure in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database error: {0}")]
    Db(String),
    #[error("outbox event {seq} is corrupt: {message}")]
    Corrupt { seq: u64, message: String },
}

fn db<E: Into<redb::Error>>(e: E) -> OutboxError {
    OutboxError::Db(e.into().to_string())
}

/// Creates the tables if missing.
pub fn create_tables(tx: &WriteTransaction) -> Result<(), OutboxError> {
    tx.open_table(EVENTS).map_err(db)?;
    tx.open_table(EVENT_SEQ).map_err(db)?;
    Ok(())
}

/// Appends an event in `tx` and returns it.
pub fn append(
    tx: &WriteTransaction,
    tenant: &str,
    kind: &str,
    data: Value,
    now_ms: i64,
) -> Result<Event, OutboxError> {
    let mut seq_t = tx.open_table(EVENT_SEQ).map_err(db)?;
    let seq = seq_t.get(SEQ_KEY).map_err(db)?.map_or(0, |v| v.value()) + 1;
    let e = Event {
        seq,
        id: format!("evt_{seq:016x}"),
        kind: kind.into(),
        tenant: tenant.into(),
        created_at: now_ms,
        data,
    };
    let bytes = serde_json::to_vec(&e).map_err(|e| OutboxError::Db(e.to_string()))?;
    tx.open_table(EVENTS)
        .map_err(db)?
        .insert(seq, bytes.as_slice())
        .map_err(db)?;
    seq_t.insert(SEQ_KEY, seq).map_err(db)?;
    Ok(e)
}

fn decode(seq: u64, bytes: &[u8]) -> Result<Event, OutboxError> {
    serde_json::from_slice(bytes).map_err(|e| OutboxError::Corrupt {
        seq,
        message: e.to_string(),
    })
}

/// Event `seq`, if written.
pub fn get(tx: &ReadTransaction, seq: u64) -> Result<Option<Event>, OutboxError> {
    let t = tx.open_table(EVENTS).map_err(db)?;
    match t.get(seq).map_err(db)? {
        Some(v) => Ok(Some(decode(seq, v.value())?)),
        None => Ok(None),
    }
}

/// `tenant`'s events with a `seq` above `after`, oldest first, at most `limit`.
pub fn after(
    tx: &ReadTransaction,
    tenant: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<Event>, OutboxError> {
    let t = tx.open_table(EVENTS).map_err(db)?;
    let mut out = Vec::new();
    let Some(start) = after.checked_add(1) else {
        return Ok(out);
    };
    for row in t.range(start..).map_err(db)? {
        let (k, v) = row.map_err(db)?;
        let e = decode(k.value(), v.value())?;
        if e.tenant == tenant {
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// `tenant`'s events after `after`: how many, and the first one's creation time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub count: u64,
    pub oldest_created_at: Option<i64>,
    /// The scan stopped at its row limit: there may be more.
    pub capped: bool,
}

/// Counts `tenant`'s events with a `seq` above `after`, reading at most `max_rows` rows
/// (of every tenant), so a scrape costs a bounded amount whatever the backlog.
pub fn pending(
    tx: &ReadTransaction,
    tenant: &str,
    after: u64,
    max_rows: usize,
) -> Result<Pending, OutboxError> {
    /// Only what the count needs; the rest of the event is skipped, not built.
    #[derive(Deserialize)]
    struct Head {
        tenant: String,
        created_at: i64,
    }
    let t = tx.open_table(EVENTS).map_err(db)?;
    let mut out = Pending::default();
    let Some(start) = after.checked_add(1) else {
        return Ok(out);
    };
    for (read, row) in t.range(start..).map_err(db)?.enumerate() {
        if read >= max_rows {
            out.capped = true;
            break;
        }
        let (k, v) = row.map_err(db)?;
        let h: Head = serde_json::from_slice(v.value()).map_err(|e| OutboxError::Corrupt {
            seq: k.value(),
            message: e.to_string(),
        })?;
        if h.tenant == tenant {
            out.count += 1;
            out.oldest_created_at.get_or_insert(h.created_at);
        }
    }
    Ok(out)
}
