//! The shared PostgreSQL ledger, for several signer instances serving at once (docs/HA.md).
//!
//! Each instance decides on the same in-memory [`State`] as with the embedded store. What
//! keeps it exact across instances is the per-key turn: before a request for key K is
//! decided, the instance opens a transaction, takes K's advisory lock
//! (`pg_advisory_xact_lock`), and applies every change any instance made to K's entries since
//! the version of K it saw last (`key_versions`). Every change to K's entries bumps that
//! version under the version row's lock, in the same transaction, so versions follow commit
//! order: a turn that read version N finds every row at or below N committed. Every change
//! that moves usage (a reservation, a void) is also made under K's advisory lock, so after
//! the catch-up the state counts exactly what the database counts for K. The reservation is
//! then written, still under the lock, and the transaction commits (synchronously) before the
//! lock is released; only then is the key signed with. All of a request's state is per key
//! (the owner address is inside the signed bytes, so a txid and its payout id belong to one
//! key), so one lock covers the txid, the payout id and every window.
//!
//! The signature and its audit record are committed by the instance's writer thread
//! (`writer.rs`), which appends to the one audit chain under the chain head's row lock.
//!
//! A reservation an instance never completed (it was killed) holds its usage until its lease
//! ends ([`LEASE`]); the next turn on that key voids it. A lease is generous on purpose: a
//! void reservation can no longer be committed, so an instance that was merely slow fails
//! its commit and releases nothing.

mod chain;
mod migrate;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tron_proto::Address;

use super::entry::{encode_parts, Entry, PendingEntry};
use super::error::LedgerError;
use super::state::{payout_key, Found, State};
use super::store::StoreHealth;
use super::PolicyMark;

pub(crate) use chain::{each_record, verify};
pub(crate) use writer::PgWriter;

/// How long a reservation may wait for its commit before another instance may void it.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// How long a request waits for a pooled connection, for a new one, or for a statement.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Options every connection runs with: commits are acknowledged only once durable
/// (whatever the server's default), and no statement or lock wait hangs a request forever.
const SESSION_OPTIONS: &str =
    "-c synchronous_commit=on -c lock_timeout=5000 -c statement_timeout=15000";

/// The connection settings from a `postgres://` URL or a `key=value` string, with the
/// signer's session options. The text itself may hold a password: it never reaches an
/// error or a log, only the parser's own message does, which quotes nothing of it.
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config, LedgerError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| LedgerError::Open {
        path: "[ledger] postgres".into(),
        detail: format!("the PostgreSQL connection string does not parse: {e}"),
    })?;
    let options = match cfg.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {SESSION_OPTIONS}"),
        _ => SESSION_OPTIONS.to_owned(),
    };
    cfg.options(&options);
    cfg.connect_timeout(CONNECT_TIMEOUT);
    if cfg.get_application_name().is_none() {
        cfg.application_name("tron-signer");
    }
    Ok(cfg)
}

pub(crate) fn abandon(list: &Abandoned, key: Address, txid: [u8; 32]) {
    let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() < ABANDONED_MAX {
        list.push((key, txid));
    }
}

/// Stripes of the per-key local wait (see [`Pg`]).
const KEY_STRIPES: usize = 256;

fn build_pool(cfg: tokio_postgres::Config, size: usize) -> Result<Pool, LedgerError> {
    let mgr = Manager::from_config(
        cfg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| LedgerError::Open {
            path: "[ledger] postgres".into(),
            detail: format!("connection pool: {e}"),
        })
}

/// The advisory lock id of a signing key: the first 8 bytes of a domain-separated hash.
fn lock_id(key: &Address) -> i64 {
    let mut h = Sha256::new();
    h.update(b"tron-signer/key-lock\0");
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

fn db(during: &'static str) -> impl Fn(tokio_postgres::Error) -> LedgerError {
    move |e| LedgerError::storage(during, pg_detail(&e))
}

/// A driver error as text: the server's message and its SQLSTATE when it sent one.
pub(crate) fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// Reservations this instance gave up (the key failed to sign, or the commit failed), to be
/// voided in the database by the writer so that other signers stop counting them at once
/// rather than when their lease ends.
pub(crate) type Abandoned = Arc<Mutex<Vec<(Address, [u8; 32])>>>;

/// At most this many abandoned reservations wait to be voided; past it the lease alone
/// frees them (they still count meanwhile, which errs on the side of refusing).
const ABANDONED_MAX: usize = 65_536;

/// The request side of the PostgreSQL ledger: the pool, this instance's name, and the
/// version of each key it has caught up to.
pub(crate) struct Pg {
    pool: Pool,
    admin: Pool,
    /// Requests of this signer for one key wait here, holding no connection, rather than
    /// each holding one while it waits for the key's lock in the database; striped, so
    /// memory stays bounded whatever the number of keys.
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
    pub(crate) instance: String,
    abandoned: Abandoned,
    seen: Mutex<HashMap<[u8; 21], i64>>,
    health: watch::Receiver<StoreHealth>,
    retention_ms: u64,
    lease: Duration,
}

impl Pg {
    pub(crate) fn new(
        cfg: tokio_postgres::Config,
        pool_size: usize,
        instance: String,
        abandoned: Abandoned,
        health: watch::Receiver<StoreHealth>,
        retention_ms: u64,
        lease: Duration,
    ) -> Result<Pg, LedgerError> {
        let pool = build_pool(cfg.clone(), pool_size.max(1))?;
        // Administrators' reads (a freeze) never wait behind a flood of requests.
        let admin = build_pool(cfg, 2)?;
        Ok(Pg {
            pool,
            admin,
            stripes: (0..KEY_STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
            instance,
            abandoned,
            seen: Mutex::new(HashMap::new()),
            health,
            retention_ms,
            lease,
        })
    }

    /// Notes a reservation of this instance that will never be committed.
    pub(crate) fn abandon(&self, key: Address, txid: [u8; 32]) {
        abandon(&self.abandoned, key, txid);
    }

    pub(crate) fn health(&self) -> watch::Receiver<StoreHealth> {
        self.health.clone()
    }

    fn seen(&self, key: &Address) -> i64 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(key.as_bytes()).copied().unwrap_or(0)
    }

    fn saw(&self, key: &Address, version: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let v = seen.entry(*key.as_bytes()).or_insert(0);
        *v = (*v).max(version);
    }

    /// The policy in force and the freezes as recorded now.
    pub(crate) async fn recorded(&self) -> Result<Recorded, LedgerError> {
        let c = self.admin.get().await.map_err(|e| LedgerError::Storage {
            during: "connect to PostgreSQL",
            detail: e.to_string(),
        })?;
        let row = c
            .query_one(
                &c.prepare_cached(
                    "SELECT (SELECT value FROM meta WHERE name = $1), \
                        (SELECT value FROM meta WHERE name = $2)",
                )
                .await
                .map_err(db("prepare a statement"))?,
                &[&writer::META_POLICY_IN_FORCE, &writer::META_FREEZE],
            )
            .await
            .map_err(db("read the policy in force and the freezes"))?;
        recorded_from(row.get(0), row.get(1))
    }

    /// Opens key `key`'s turn: its lock taken, expired reservations voided, and the state
    /// caught up (under the state lock, briefly). `txid`'s row is read too, so that a replay
    /// can be answered without another round trip.
    pub(crate) async fn turn(
        self: &Arc<Self>,
        shared: &super::Shared,
        key: &Address,
        txid: &[u8; 32],
        now_ms: i64,
    ) -> Result<Turn, LedgerError> {
        let stripe = (lock_id(key) as u64 % KEY_STRIPES as u64) as usize;
        let local = Arc::clone(&self.stripes[stripe]).lock_owned().await;
        let client = self.pool.get().await.map_err(|e| LedgerError::Storage {
            during: "connect to PostgreSQL",
            detail: e.to_string(),
        })?;
        let mut turn = Turn {
            pg: Arc::clone(self),
            client: Some(client),
            _local: local,
            key: *key,
            version: 0,
            replay: None,
            shared: None,
        };
        turn.open(shared, txid, now_ms).await?;
        Ok(turn)
    }
}

/// One key's turn: an open transaction holding the key's advisory lock. Dropping it rolls
/// the transaction back (releasing the lock); [`Turn::publish`] and [`Turn::finish`] commit.
pub(crate) struct Turn {
    pg: Arc<Pg>,
    client: Option<deadpool_postgres::Object>,
    /// This signer's own turn on the key's stripe, held as long as the database lock.
    _local: tokio::sync::OwnedMutexGuard<()>,
    key: Address,
    /// The key's version in the database as this turn left it.
    version: i64,
    /// `txid`'s entry, if it is signed.
    pub(crate) replay: Option<Entry>,
    /// What the database recorded for every signer, as this turn read it.
    pub(crate) shared: Option<Recorded>,
}

/// The policy in force and the freezes, as the shared database records them: another
/// signer may have changed either since this one last did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub policy_mark: Option<PolicyMark>,
    pub freezes: Option<Vec<u8>>,
}

fn recorded_from(mark: Option<Vec<u8>>, freezes: Option<Vec<u8>>) -> Result<Recorded, LedgerError> {
    let policy_mark = match mark {
        None => None,
        Some(b) => {
            Some(PolicyMark::decode(&b).ok_or_else(|| LedgerError::corrupt("policy in force"))?)
        }
    };
    Ok(Recorded {
        policy_mark,
        freezes,
    })
}

/// One changed row of a key's entries.
struct Changed {
    state: String,
    entry: Entry,
    /// Whether this very instance wrote the row.
    own: bool,
}

impl Turn {
    fn client(&self) -> Result<&deadpool_postgres::Object, LedgerError> {
        self.client.as_ref().ok_or(LedgerError::WriterStopped)
    }

    async fn open(
        &mut self,
        shared: &super::Shared,
        txid: &[u8; 32],
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let key = self.key.as_bytes().as_slice();
        let c = self.client()?;
        // One round trip: the lock id is a number we made, not input.
        c.batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({})",
            lock_id(&self.key)
        ))
        .await
        .map_err(db("take the key's lock"))?;
        // In one statement: the key's version; what every signer shares besides entries (the
        // policy recorded in force, the freezes, the latest signing time); whether a
        // reservation of the key outlived its lease; and `txid`'s signed entry, if any.
        let row = c
            .query_one(
                &c.prepare_cached(
                    "SELECT (SELECT kver FROM key_versions WHERE key = $1), \
                        (SELECT value FROM meta WHERE name = $2), \
                        (SELECT value FROM meta WHERE name = $3), \
                        (SELECT value FROM meta WHERE name = $4), \
                        EXISTS (SELECT 1 FROM entries WHERE key = $1 AND state = 'reserved' \
                                AND lease_until < clock_timestamp()), \
                        (SELECT body FROM entries WHERE txid = $5 AND state = 'signed')",
                )
                .await
                .map_err(db("prepare a statement"))?,
                &[
                    &key,
                    &writer::META_POLICY_IN_FORCE,
                    &writer::META_FREEZE,
                    &writer::META_LATEST_SIGNED,
                    &txid.as_slice(),
                ],
            )
            .await
            .map_err(db("read the key's version"))?;
        let expired: bool = row.get(4);
        let replay: Option<Vec<u8>> = row.get(5);
        let mut version: i64 = row.get::<_, Option<i64>>(0).unwrap_or(0);
        let recorded = recorded_from(row.get(1), row.get(2))?;
        // The latest any signer signed at: the clock check judges this signer's clock by it.
        if let Some(t) = row.get::<_, Option<&[u8]>>(3) {
            let t =
                <[u8; 8]>::try_from(t).map_err(|_| LedgerError::corrupt("latest signing time"))?;
            shared.lock().note_latest_signed(i64::from_be_bytes(t));
        }
        let seen = self.pg.seen(&self.key);
        if version < seen {
            return Err(LedgerError::corrupt(format!(
                "the database holds version {version} of key {}'s entries, older than the \
                 {seen} this signer saw; was the database restored from a backup?",
                self.key
            )));
        }
        // Reservations whose instance did not complete them in time: void, so they count no
        // more and can never be committed.
        if expired {
            // A new version for the voids (relative: a group commit may have moved it since
            // it was read; the row lock taken here is held until this turn ends).
            version = c
                .query_one(
                    &c.prepare_cached(
                        "UPDATE key_versions SET kver = kver + 1 WHERE key = $1 RETURNING kver",
                    )
                    .await
                    .map_err(db("prepare a statement"))?,
                    &[&key],
                )
                .await
                .map_err(db("bump the key's version"))?
                .get(0);
            let reaped = c
                .execute(
                    &c.prepare_cached(
                        "UPDATE entries SET state = 'void', kver = $2, lease_until = NULL \
                         WHERE key = $1 AND state = 'reserved' \
                           AND lease_until < clock_timestamp()",
                    )
                    .await
                    .map_err(db("prepare a statement"))?,
                    &[&key, &version],
                )
                .await
                .map_err(db("void expired reservations"))?;
            tracing::warn!(
                key = %self.key,
                reservations = reaped,
                "voided reservations whose signer did not complete them within the lease"
            );
        }
        // As the state prunes: never by a clock later than the latest signature, so a clock
        // that jumped ahead (refused `clock_jump` later) cannot skip rows a window still
        // needs once the clock is back.
        let latest = shared.lock().latest_signed_ms();
        let judged_at = latest.map_or(now_ms, |t| t.min(now_ms));
        let cutoff =
            judged_at.saturating_sub(i64::try_from(self.pg.retention_ms).unwrap_or(i64::MAX));
        let mut changed = Vec::new();
        if version > seen {
            for row in c
                .query(
                    &c.prepare_cached(
                        "SELECT state, body, instance = $4 FROM entries \
                     WHERE key = $1 AND kver > $2 AND expiration_ms >= $3 ORDER BY kver",
                    )
                    .await
                    .map_err(db("prepare a statement"))?,
                    &[&key, &seen, &cutoff, &self.pg.instance],
                )
                .await
                .map_err(db("read the key's changes"))?
            {
                let state: String = row.get(0);
                let body: Vec<u8> = row.get(1);
                changed.push(Changed {
                    state,
                    entry: Entry::decode(&body)?,
                    own: row.get::<_, Option<bool>>(2).unwrap_or(false),
                });
            }
        }
        self.replay = match replay {
            Some(body) => {
                let entry = Entry::decode(&body)?;
                if &entry.pending.txid != txid {
                    return Err(LedgerError::corrupt("entry does not match its txid"));
                }
                Some(entry)
            }
            None => None,
        };
        let mut state = shared.lock();
        for c in &changed {
            apply(&mut state, c);
        }
        self.version = version;
        self.shared = Some(recorded);
        Ok(())
    }

    /// Writes the reservation this turn decided on and commits; the lock is released with
    /// the commit. Only then may the key sign.
    /// Returns the key version the reservation was written at: its commit must find the
    /// row still at it (not voided, not reserved again since).
    pub(crate) async fn publish(mut self, entry: &PendingEntry) -> Result<i64, LedgerError> {
        let key = self.key.as_bytes().as_slice();
        let body = encode_parts(entry, &[0u8; 65], 0);
        let pk = payout_key(&entry.key, &entry.payout_id);
        let lease = self.pg.lease.as_secs_f64();
        let c = self.client()?;
        // The version is bumped relative to the database's (a group commit may have moved it
        // since this turn read it) and the row written at it, in one statement. A txid can
        // be reserved again once void, or when this instance's own earlier reservation of it
        // was abandoned (its state no longer holds it); otherwise no row comes back.
        let insert = c
            .prepare_cached(
                "WITH v AS ( \
                   INSERT INTO key_versions (key, kver) VALUES ($2, 1) \
                   ON CONFLICT (key) DO UPDATE SET kver = key_versions.kver + 1 \
                   RETURNING kver) \
                 INSERT INTO entries \
                   (txid, key, kver, state, expiration_ms, payout_key, body, instance, \
                    lease_until) \
                 SELECT $1, $2, v.kver, 'reserved', $3, $4, $5, $6, \
                        clock_timestamp() + make_interval(secs => $7) FROM v \
                 ON CONFLICT (txid) DO UPDATE SET \
                   kver = EXCLUDED.kver, state = 'reserved', body = EXCLUDED.body, \
                   payout_key = EXCLUDED.payout_key, expiration_ms = EXCLUDED.expiration_ms, \
                   instance = EXCLUDED.instance, lease_until = EXCLUDED.lease_until \
                 WHERE entries.state = 'void' \
                    OR (entries.state = 'reserved' AND entries.instance = EXCLUDED.instance) \
                 RETURNING kver",
            )
            .await
            .map_err(db("prepare a statement"))?;
        let rows = c
            .query(
                &insert,
                &[
                    &entry.txid.as_slice(),
                    &key,
                    &entry.expiration_ms,
                    &pk.as_slice(),
                    &body,
                    &self.pg.instance,
                    &lease,
                ],
            )
            .await
            .map_err(db("write the reservation"))?;
        let (n, version) = match rows.first() {
            Some(r) => (rows.len(), r.get::<_, i64>(0)),
            None => (0, 0),
        };
        if n != 1 {
            return Err(LedgerError::Duplicate {
                txid: hex::encode(entry.txid),
            });
        }
        c.batch_execute("COMMIT")
            .await
            .map_err(db("commit the reservation"))?;
        // Seen: what this turn read (every row at or below it was committed when it was
        // read). Its own row, above that, is read again next time and changes nothing.
        self.pg.saw(&self.key, self.version);
        self.client = None;
        Ok(version)
    }

    /// Ends a turn that reserved nothing (Evaluate, a refusal): commits what the catch-up
    /// voided, and releases the lock.
    pub(crate) async fn finish(mut self) -> Result<(), LedgerError> {
        let c = self.client()?;
        c.batch_execute("COMMIT").await.map_err(db("end a turn"))?;
        self.pg.saw(&self.key, self.version);
        self.client = None;
        Ok(())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // The lock is held until the transaction ends: roll back on the runtime, or, with no
        // runtime to do it on, close the connection (which rolls back on the server).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        let _ = deadpool_postgres::Object::take(client);
                    }
                });
            }
            Err(_) => drop(deadpool_postgres::Object::take(client)),
        }
    }
}

/// Applies one changed row to the state. Idempotent: a row applied twice changes nothing
/// the second time, so a turn that rolled back may be caught up again.
fn apply(state: &mut State, c: &Changed) {
    let p = &c.entry.pending;
    let known = state.find_txid(&p.txid);
    match (c.state.as_str(), known) {
        // Another instance's reservation: it counts at once, and its txid and payout id are
        // in flight here too.
        ("reserved", None) if !c.own => {
            let _ = state.reserve(p.clone());
        }
        // This instance's own, which its state no longer holds: it gave it up (the key failed
        // to sign, or the commit failed) and the writer has yet to void it. It can never be
        // committed, so here it counts for nothing; a retry of the same transaction may
        // reserve it again at once rather than meet it in flight until its lease ends.
        ("reserved", None) => {}
        ("signed", Some(Found::InFlight)) => {
            state.note_latest_signed(p.signed_at_ms);
            state.mark_committed(&p.txid, c.entry.audit_seq)
        }
        ("signed", None) => {
            state.note_latest_signed(p.signed_at_ms);
            state.load(&c.entry)
        }
        ("void", Some(Found::InFlight)) => state.rollback_in_flight(p),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn lock_ids_differ_by_key_and_are_stable() {
        let a = Address::from_bytes(&[0x41; 21]).unwrap();
        let b = Address::from_bytes(&[
            0x41, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ])
        .unwrap();
        assert_eq!(lock_id(&a), lock_id(&a));
        assert_ne!(lock_id(&a), lock_id(&b));
    }

    #[test]
    fn a_connection_string_keeps_its_options_and_gets_ours() {
        let c = config("host=/tmp dbname=x options='-c work_mem=4MB'").unwrap();
        let o = c.get_options().unwrap();
        assert!(o.starts_with("-c work_mem=4MB"), "{o}");
        assert!(o.contains("synchronous_commit=on"), "{o}");
        let e = config("postgres://u:hunter2@[::1").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
