//! The embedded database (redb): payouts and API keys. Every write is one fsynced
//! transaction, so a state written before a side effect (a broadcast) survives a crash.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use crate::model::{Payout, Status};

const PAYOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("payouts");
const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

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
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Locked => "database_locked",
            StoreError::Db(_) => "database_error",
            StoreError::Corrupt { .. } => "database_corrupt",
            StoreError::NotFound(_) => "payout_not_found",
        }
    }
}

fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked,
        other => StoreError::Db(other.to_string()),
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.into(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
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
        tx.open_table(PAYOUTS).map_err(db)?;
        tx.open_table(API_KEYS).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Store { db: database })
    }

    /// Inserts a new payout unless the id exists; atomic with the existence check.
    pub fn create_payout(&self, p: Payout) -> Result<Created, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let out = {
            let mut t = tx.open_table(PAYOUTS).map_err(db)?;
            let existing = match t.get(p.id.as_str()).map_err(db)? {
                Some(v) => Some(decode::<Payout>(&p.id, v.value())?),
                None => None,
            };
            match existing {
                Some(e) if e.same_request(p.asset, &p.to, p.amount_units) => Created::Existing(e),
                Some(e) => Created::Conflict(e),
                None => {
                    t.insert(p.id.as_str(), encode(&p)?.as_slice())
                        .map_err(db)?;
                    Created::New(p)
                }
            }
        };
        tx.commit().map_err(db)?;
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<Payout>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PAYOUTS).map_err(db)?;
        match t.get(id).map_err(db)? {
            Some(v) => Ok(Some(decode(id, v.value())?)),
            None => Ok(None),
        }
    }

    /// Payouts in id order, optionally only those with `status`, at most `limit`.
    pub fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<Payout>, StoreError> {
        self.scan(|p| status.is_none_or(|s| p.status == s), limit)
    }

    /// Every payout that is not final: the pipeline's work list.
    pub fn active(&self) -> Result<Vec<Payout>, StoreError> {
        self.scan(|p| !p.status.is_final(), usize::MAX)
    }

    fn scan(
        &self,
        keep: impl Fn(&Payout) -> bool,
        limit: usize,
    ) -> Result<Vec<Payout>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(PAYOUTS).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
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

    /// Read-modify-write of one payout in one durable transaction. If `f` fails nothing
    /// is written.
    pub fn update<E: From<StoreError>>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Payout) -> Result<(), E>,
    ) -> Result<Payout, E> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let p = {
            let mut t = tx.open_table(PAYOUTS).map_err(db)?;
            let mut p: Payout = match t.get(id).map_err(db)? {
                Some(v) => decode(id, v.value())?,
                None => return Err(StoreError::NotFound(id.into()).into()),
            };
            f(&mut p)?;
            t.insert(id, encode(&p)?.as_slice()).map_err(db)?;
            p
        };
        tx.commit().map_err(db)?;
        Ok(p)
    }

    pub fn put_api_key<T: Serialize>(&self, id: &str, record: &T) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(API_KEYS).map_err(db)?;
            t.insert(id, encode(record)?.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    pub fn get_api_key<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(API_KEYS).map_err(db)?;
        match t.get(id).map_err(db)? {
            Some(v) => Ok(Some(decode(id, v.value())?)),
            None => Ok(None),
        }
    }

    pub fn list_api_keys<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(API_KEYS).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }
}

fn db_err(e: redb::TransactionError) -> StoreError {
    db(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Asset;

    const TO: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

    #[test]
    fn create_is_idempotent_and_detects_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        let p = Payout::new("p1".into(), Asset::Trx, TO.into(), 5, 1);
        assert!(matches!(
            s.create_payout(p.clone()).unwrap(),
            Created::New(_)
        ));
        assert!(matches!(
            s.create_payout(p.clone()).unwrap(),
            Created::Existing(_)
        ));
        let other = Payout::new("p1".into(), Asset::Trx, TO.into(), 6, 2);
        assert!(matches!(
            s.create_payout(other).unwrap(),
            Created::Conflict(_)
        ));
        assert_eq!(s.get("p1").unwrap().unwrap().amount_units, 5);
    }

    #[test]
    fn survives_reopen_and_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        {
            let s = Store::open(&path).unwrap();
            let p = Payout::new("p1".into(), Asset::Usdt, TO.into(), 7, 1);
            s.create_payout(p).unwrap();
            s.update::<StoreError>("p1", |p| {
                p.transition(Status::Signing, 2, "x");
                Ok(())
            })
            .unwrap();
            assert_eq!(Store::open(&path).err().unwrap().code(), "database_locked");
        }
        let s = Store::open(&path).unwrap();
        let p = s.get("p1").unwrap().unwrap();
        assert_eq!(p.status, Status::Signing);
        assert_eq!(p.history.len(), 2);
        assert_eq!(s.active().unwrap().len(), 1);
        assert_eq!(s.list(Some(Status::Queued), 10).unwrap().len(), 0);
    }

    #[test]
    fn failed_update_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("b.redb")).unwrap();
        s.create_payout(Payout::new("p1".into(), Asset::Trx, TO.into(), 5, 1))
            .unwrap();
        let r = s.update::<StoreError>("p1", |p| {
            p.transition(Status::Failed, 3, "x");
            Err(StoreError::Db("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.get("p1").unwrap().unwrap().status, Status::Queued);
        assert_eq!(
            s.update::<StoreError>("nope", |_| Ok(()))
                .unwrap_err()
                .code(),
            "payout_not_found"
        );
    }
}
