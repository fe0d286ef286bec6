//! The writer thread of the PostgreSQL ledger: the same group commit as the embedded one
//! (`ledger/writer.rs`), into the shared database.
//!
//! One batch is one transaction: the chain head's row `FOR UPDATE` (so the instances'
//! batches append one after the other to the one chain), the audit rows, the version rows of
//! the keys it signs for (locked in key order, so two instances' commits cannot deadlock)
//! bumped once each, the entries turned from reserved to signed (each must still be this
//! instance's reservation, at the version it was published at), the new head. No key's turn
//! lock is taken: turning a reservation into a signature changes no usage, so turns on those
//! keys go on meanwhile. The commit is synchronous (`synchronous_commit=on` for every
//! session); only after it is acknowledged are the submitters answered.
//!
//! A failed batch fails all of its submissions and drops the connection; health turns
//! failed, and the thread reconnects, on the next batch or on its own every
//! [`PROBE_EVERY`], and turns healthy again once a probe succeeds.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use postgres::{Client, NoTls, Statement};
use tokio::sync::watch;

use super::super::audit::seal_body;
use super::super::entry::encode_parts;
use super::super::error::LedgerError;
use super::super::schema::Head;
use super::super::state::Found;
use super::super::store::StoreHealth;
use super::super::writer::{injected_failure, settle, Job, MAX_BATCH};
use super::super::{PolicyMark, Shared};
use super::{lock_id, migrate, pg_detail, Abandoned};
use tron_proto::Address;

/// At most this many distinct keys in one batch: their version rows stay locked from the
/// bump to the commit (turns on those keys wait for them at publish), and a batch spanning
/// thousands of deposit keys must not hold them all.
const MAX_BATCH_KEYS: usize = 128;

/// While the database is unreachable, how often the writer tries it on its own.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the shared database holds that an instance loads at start.
pub(crate) struct OpenedChain {
    pub latest_signed_ms: Option<i64>,
    pub policy_mark: Option<PolicyMark>,
    pub freezes: Option<Vec<u8>>,
}

pub(crate) const META_LATEST_SIGNED: &str = "latest_signed_ms";
pub(crate) const META_POLICY_IN_FORCE: &str = "policy_in_force";
pub(crate) const META_FREEZE: &str = "freeze";

fn db(during: &'static str) -> impl Fn(postgres::Error) -> LedgerError {
    move |e| LedgerError::storage(during, pg_detail(&e))
}

pub(crate) struct PgWriter {
    cfg: postgres::Config,
    client: Option<Client>,
    instance: String,
    shared: Arc<Shared>,
    rx: Receiver<Job>,
    health: watch::Sender<StoreHealth>,
    fail_next: Arc<AtomicU32>,
    abandoned: Abandoned,
    /// A job taken from the queue that did not fit in the last batch.
    held: Option<Job>,
    /// The group commit's statements, prepared once per connection (each unprepared one
    /// costs a round trip more).
    stmts: HashMap<&'static str, Statement>,
}

impl PgWriter {
    /// Connects, applies the schema migrations, and reads what an instance starts from.
    pub(crate) fn connect(
        cfg: tokio_postgres::Config,
        instance: String,
        shared: Arc<Shared>,
        rx: Receiver<Job>,
        health: watch::Sender<StoreHealth>,
        fail_next: Arc<AtomicU32>,
        abandoned: Abandoned,
    ) -> Result<(PgWriter, OpenedChain), LedgerError> {
        let cfg = postgres::Config::from(cfg);
        let mut client = cfg.connect(NoTls).map_err(|e| LedgerError::Open {
            path: "[ledger] postgres".into(),
            detail: format!("cannot connect to PostgreSQL: {}", pg_detail(&e)),
        })?;
        migrate::apply(&mut client)?;
        let opened = read_opened(&mut client)?;
        Ok((
            PgWriter {
                cfg,
                client: Some(client),
                instance,
                shared,
                rx,
                health,
                fail_next,
                abandoned,
                held: None,
                stmts: HashMap::new(),
            },
            opened,
        ))
    }

    pub(crate) fn run(mut self) {
        loop {
            let next = match self.held.take() {
                Some(job) => Ok(job),
                None => self.rx.recv_timeout(PROBE_EVERY),
            };
            let first = match next {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.probe();
                    self.void_abandoned();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let batch = self.drain(first);
            let started = Instant::now();
            let result = self.write(&batch);
            match &result {
                Ok(_) => self.healthy(),
                Err(e @ LedgerError::Storage { .. }) => self.failed(e),
                Err(_) => {}
            }
            if result.is_err() {
                // Nothing of the batch is durable: its reservations are given up here and in
                // the database.
                for job in &batch {
                    if let Job::Sign(job) = job {
                        let p = &job.undo.entry;
                        super::abandon(&self.abandoned, p.key, p.txid);
                    }
                }
            }
            settle(&self.shared, batch, &result, started.elapsed());
            self.void_abandoned();
        }
    }

    /// Voids, in the database, the reservations this instance gave up; those it could not
    /// void (the database is down) are kept for the next try.
    fn void_abandoned(&mut self) {
        let list = std::mem::take(&mut *self.abandoned.lock().unwrap_or_else(|p| p.into_inner()));
        if list.is_empty() || !self.health.borrow().is_healthy() {
            self.abandoned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(list);
            return;
        }
        if let Err(e) = self.void(&list) {
            tracing::warn!(
                code = e.code(),
                reservations = list.len(),
                "could not void abandoned reservations (their lease frees them): {e}"
            );
            let mut kept = self.abandoned.lock().unwrap_or_else(|p| p.into_inner());
            kept.extend(list);
        }
    }

    fn void(&mut self, list: &[(Address, [u8; 32])]) -> Result<(), LedgerError> {
        let instance = self.instance.clone();
        let shared = Arc::clone(&self.shared);
        let client = self.client()?;
        let mut tx = client.transaction().map_err(db("begin void"))?;
        let mut keys: BTreeMap<i64, [u8; 21]> = BTreeMap::new();
        for (key, _) in list {
            keys.insert(lock_id(key), *key.as_bytes());
        }
        for id in keys.keys() {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[id])
                .map_err(db("take a key's lock"))?;
        }
        // Under the keys' locks no turn is between reserving and publishing, so a txid in
        // flight here was reserved again since it was given up: leave that one alone.
        let gone: Vec<(&[u8], Vec<u8>)> = {
            let state = shared.lock();
            list.iter()
                .filter(|(_, t)| state.find_txid(t) != Some(Found::InFlight))
                .map(|(k, t)| (k.as_bytes().as_slice(), t.to_vec()))
                .collect()
        };
        if !gone.is_empty() {
            let key_list: Vec<&[u8]> = keys.values().map(|k| k.as_slice()).collect();
            let mut versions: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for row in tx
                .query(BUMP_VERSIONS, &[&key_list])
                .map_err(db("bump key versions"))?
            {
                versions.insert(row.get(0), row.get(1));
            }
            let (mut txids, mut kvers) = (Vec::new(), Vec::new());
            for (k, t) in &gone {
                if let Some(v) = versions.get(*k) {
                    txids.push(t.clone());
                    kvers.push(*v);
                }
            }
            tx.execute(
                "UPDATE entries e SET state = 'void', kver = u.v, lease_until = NULL \
                 FROM unnest($1::bytea[], $2::bigint[]) AS u(t, v) \
                 WHERE e.txid = u.t AND e.state = 'reserved' AND e.instance = $3",
                &[&txids, &kvers, &instance],
            )
            .map_err(db("void reservations"))?;
        }
        tx.commit().map_err(db("commit void"))?;
        Ok(())
    }

    /// The batch that starts with `first`: what is already waiting, up to [`MAX_BATCH`]
    /// jobs and [`MAX_BATCH_KEYS`] keys, a policy or freeze always alone. A job that does
    /// not fit is held for the next batch.
    fn drain(&mut self, first: Job) -> Vec<Job> {
        let mut batch = Vec::with_capacity(64);
        let singular = first.is_singular();
        let mut keys = std::collections::BTreeSet::new();
        if let Job::Sign(j) = &first {
            keys.insert(*j.undo.entry.key.as_bytes());
        }
        batch.push(first);
        while !singular && batch.len() < MAX_BATCH {
            let job = match self.rx.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
            let new_key = match &job {
                Job::Sign(j) => Some(*j.undo.entry.key.as_bytes()).filter(|k| !keys.contains(k)),
                _ => None,
            };
            if job.is_singular() || (new_key.is_some() && keys.len() >= MAX_BATCH_KEYS) {
                self.held = Some(job);
                break;
            }
            keys.extend(new_key);
            batch.push(job);
        }
        batch
    }

    /// Reconnects if the connection was lost and checks the database answers.
    fn probe(&mut self) {
        let ok = match self.client() {
            Ok(c) => c.simple_query("SELECT 1").map_err(db("probe")),
            Err(e) => Err(e),
        };
        match ok {
            Ok(_) => self.healthy(),
            Err(e) => self.failed(&e),
        }
    }

    fn healthy(&mut self) {
        if !self.health.borrow().is_healthy() {
            tracing::info!("PostgreSQL ledger reachable again; commits resume");
            self.health.send_replace(StoreHealth::Healthy);
        }
    }

    fn failed(&mut self, e: &LedgerError) {
        // The connection may be broken or mid-transaction: start over on the next batch.
        self.client = None;
        let detail = e.to_string();
        let was = self.health.borrow().is_healthy();
        if was {
            tracing::error!(
                code = e.code(),
                "PostgreSQL ledger write failed: {e}; refusing every request that must be \
                 recorded until it answers again"
            );
        }
        self.health.send_replace(StoreHealth::Failed { detail });
    }

    fn client(&mut self) -> Result<&mut Client, LedgerError> {
        if self.client.is_none() {
            self.stmts.clear();
            let c = self
                .cfg
                .connect(NoTls)
                .map_err(db("reconnect to PostgreSQL"))?;
            self.client = Some(c);
        }
        self.client.as_mut().ok_or(LedgerError::WriterStopped)
    }

    /// Writes the batch in one transaction; returns the sequence number of its first record.
    fn write(&mut self, batch: &[Job]) -> Result<u64, LedgerError> {
        let instance = self.instance.clone();
        let inject = Arc::clone(&self.fail_next);
        self.client()?;
        let (Some(client), stmts) = (self.client.as_mut(), &mut self.stmts) else {
            return Err(LedgerError::WriterStopped);
        };
        prepare(client, stmts, &WRITE_SQL)?;
        let stmts = &*stmts;
        let mut tx = client.transaction().map_err(db("begin write"))?;

        // Every key this batch signs for. No key's turn lock is taken: signing changes no
        // usage, and the versions are bumped under their rows' locks (in key order) at the
        // end, so turns on these keys proceed meanwhile.
        let mut keys: std::collections::BTreeSet<[u8; 21]> = std::collections::BTreeSet::new();
        for job in batch {
            if let Job::Sign(job) = job {
                keys.insert(*job.undo.entry.key.as_bytes());
            }
        }
        let head = tx
            .query_one(&stmts[LOCK_HEAD], &[])
            .map_err(db("lock the chain head"))?;
        let mut head = Head {
            seq: u64::try_from(head.get::<_, i64>(0))
                .map_err(|_| LedgerError::corrupt("chain head sequence"))?,
            hash: head
                .get::<_, &[u8]>(1)
                .try_into()
                .map_err(|_| LedgerError::corrupt("chain head hash"))?,
        };
        let first = head.seq + 1;

        let mut seqs = Vec::with_capacity(batch.len());
        let mut prevs = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        let (mut txids, mut bodies, mut entry_seqs, mut sign_keys, mut published) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut latest: Option<i64> = None;
        for job in batch {
            let seq = head.seq + 1;
            let seq_i = i64::try_from(seq).map_err(|_| LedgerError::corrupt("audit sequence"))?;
            let body = match job {
                Job::Sign(job) => {
                    let p = &job.undo.entry;
                    latest = Some(latest.map_or(p.signed_at_ms, |t| t.max(p.signed_at_ms)));
                    sign_keys.push(*p.key.as_bytes());
                    // Published by this signer; without it the row cannot be checked.
                    published.push(job.published.unwrap_or(-1));
                    txids.push(p.txid.to_vec());
                    bodies.push(encode_parts(p, &job.signature, seq));
                    entry_seqs.push(seq_i);
                    &job.audit_body
                }
                Job::Audit { body, .. } => body,
                Job::Policy { body, mark, .. } => {
                    put_policy(&mut tx, mark)?;
                    body
                }
                Job::Freeze {
                    body,
                    freezes,
                    before,
                    ..
                } => {
                    put_freeze(&mut tx, freezes, before.as_deref())?;
                    body
                }
            };
            let (row, hash) = seal_body(body, seq, &head.hash);
            seqs.push(seq_i);
            prevs.push(head.hash.to_vec());
            rows.push(row);
            head = Head { seq, hash };
        }
        tx.execute(&stmts[APPEND_AUDIT], &[&seqs, &prevs, &rows, &instance])
            .map_err(db("append audit records"))?;
        if !txids.is_empty() {
            // Each key's next version, bumped once for the whole batch.
            let list: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            let mut versions: BTreeMap<[u8; 21], i64> = BTreeMap::new();
            for row in tx
                .query(&stmts[BUMP_VERSIONS], &[&list])
                .map_err(db("bump key versions"))?
            {
                let k: &[u8] = row.get(0);
                let k: [u8; 21] = k
                    .try_into()
                    .map_err(|_| LedgerError::corrupt("key_versions key"))?;
                versions.insert(k, row.get(1));
            }
            let kvers = sign_keys
                .iter()
                .map(|k| {
                    versions.get(k).copied().ok_or_else(|| {
                        LedgerError::storage(
                            "commit a signature",
                            "a key has no version row: its reservation is gone",
                        )
                    })
                })
                .collect::<Result<Vec<i64>, _>>()?;
            let n = tx
                .execute(
                    &stmts[RECORD_SIGNED],
                    &[&txids, &bodies, &entry_seqs, &kvers, &instance, &published],
                )
                .map_err(db("record signatures"))?;
            if n != txids.len() as u64 {
                // A reservation outlived its lease and was voided (and perhaps reserved again
                // since): its usage was given back, so its signature must not be recorded or
                // released.
                return Err(LedgerError::storage(
                    "record signatures",
                    format!(
                        "{} of {} reservations were no longer held by this signer (voided \
                         after their lease)",
                        txids.len() as u64 - n,
                        txids.len()
                    ),
                ));
            }
        }
        let head_seq = i64::try_from(head.seq).map_err(|_| LedgerError::corrupt("head"))?;
        tx.execute(&stmts[MOVE_HEAD], &[&head_seq, &head.hash.as_slice()])
            .map_err(db("update head"))?;
        if let Some(t) = latest {
            // Big-endian bytes of a non-negative time order like the time.
            tx.execute(
                &stmts[RAISE_LATEST],
                &[&META_LATEST_SIGNED, &t.max(0).to_be_bytes().as_slice()],
            )
            .map_err(db("update latest signing time"))?;
        }
        if injected_failure(&inject) {
            // Dropping the transaction rolls it back, exactly like a failed commit.
            drop(tx);
            return Err(LedgerError::Injected);
        }
        tx.commit().map_err(db("commit"))?;
        Ok(first)
    }
}

/// The group commit's statements (see [`PgWriter::stmts`]).
const LOCK_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id FOR UPDATE";
/// Locks the keys' version rows in key order (so two signers' commits cannot deadlock on
/// them), then bumps each.
const BUMP_VERSIONS: &str = "UPDATE key_versions v SET kver = v.kver + 1 \
     FROM (SELECT key FROM key_versions WHERE key = ANY($1) ORDER BY key FOR UPDATE) l \
     WHERE v.key = l.key RETURNING v.key, v.kver";
const APPEND_AUDIT: &str = "INSERT INTO audit (seq, prev_hash, row, instance) \
             SELECT s, p, r, $4 FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(s, p, r)";
const RECORD_SIGNED: &str = "UPDATE entries e SET state = 'signed', body = u.b, audit_seq = u.s, \
                       kver = u.v, lease_until = NULL \
                     FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[], \
                                 $6::bigint[]) AS u(t, b, s, v, r) \
                     WHERE e.txid = u.t AND e.state = 'reserved' AND e.instance = $5 \
                       AND e.kver = u.r";
const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id";
const RAISE_LATEST: &str = "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) \
                 DO UPDATE SET value = GREATEST(meta.value, EXCLUDED.value)";
const WRITE_SQL: [&str; 6] = [
    LOCK_HEAD,
    BUMP_VERSIONS,
    APPEND_AUDIT,
    RECORD_SIGNED,
    MOVE_HEAD,
    RAISE_LATEST,
];

/// Prepares each of `sqls` on the writer's connection, once per connection.
fn prepare(
    client: &mut Client,
    stmts: &mut HashMap<&'static str, Statement>,
    sqls: &[&'static str],
) -> Result<(), LedgerError> {
    for sql in sqls {
        if !stmts.contains_key(sql) {
            let st = client.prepare(sql).map_err(db("prepare a statement"))?;
            stmts.insert(sql, st);
        }
    }
    Ok(())
}

fn put_meta(
    tx: &mut postgres::Transaction<'_>,
    name: &str,
    value: &[u8],
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&name, &value],
    )
    .map_err(db("write a ledger value"))?;
    Ok(())
}

/// The value of `name`, locked until the transaction ends.
fn locked_meta(
    tx: &mut postgres::Transaction<'_>,
    name: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(tx
        .query_opt(
            "SELECT value FROM meta WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .map_err(db("read a ledger value"))?
        .map(|r| r.get(0)))
}

/// Records the freezes in force, if the set recorded is still the one they were made from.
fn put_freeze(
    tx: &mut postgres::Transaction<'_>,
    freezes: &[u8],
    before: Option<&[u8]>,
) -> Result<(), LedgerError> {
    // Serialises freezes (and policies) of every signer on the policy row, which always
    // exists once a signer has started.
    locked_meta(tx, META_POLICY_IN_FORCE)?;
    let recorded = locked_meta(tx, META_FREEZE)?;
    if recorded.as_deref() != before {
        return Err(LedgerError::Conflict {
            what: "another signer recorded a freeze meanwhile; nothing was recorded, retry \
                   (the retry adds to the freezes now in force)"
                .into(),
        });
    }
    put_meta(tx, META_FREEZE, freezes)
}

/// Records the policy in force, if it may follow the one recorded (the same policy or a
/// higher revision, as `policy_gate` checks against this signer's own mark); another policy
/// than the one marked before lifts every freeze.
fn put_policy(tx: &mut postgres::Transaction<'_>, mark: &[u8; 40]) -> Result<(), LedgerError> {
    let before = locked_meta(tx, META_POLICY_IN_FORCE)?;
    let prev = match &before {
        None => None,
        Some(b) => {
            Some(PolicyMark::decode(b).ok_or_else(|| LedgerError::corrupt("policy in force"))?)
        }
    };
    let next = PolicyMark::decode(mark).ok_or_else(|| LedgerError::corrupt("policy mark"))?;
    if let Some(m) = prev.filter(|_| !next.may_follow(prev)) {
        return Err(LedgerError::Conflict {
            what: format!(
                "policy {} (revision {}) is in force on the shared ledger, put there by \
                 another signer; policy {} (revision {}) may not follow it: a policy is \
                 never rolled back",
                hex::encode(m.hash),
                m.revision,
                hex::encode(next.hash),
                next.revision
            ),
        });
    }
    put_meta(tx, META_POLICY_IN_FORCE, mark)?;
    // Bytes 8.. are the policy hash.
    if before.as_deref().and_then(|b| b.get(8..)) != mark.get(8..) {
        tx.execute("DELETE FROM meta WHERE name = $1", &[&META_FREEZE])
            .map_err(db("lift the freezes"))?;
    }
    Ok(())
}

fn read_opened(client: &mut Client) -> Result<OpenedChain, LedgerError> {
    let mut meta = |name: &str| -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(client
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
            .map_err(db("read a ledger value"))?
            .map(|r| r.get(0)))
    };
    let latest_signed_ms = match meta(META_LATEST_SIGNED)? {
        None => None,
        Some(v) => Some(i64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| LedgerError::corrupt("latest signing time"))?,
        )),
    };
    let policy_mark = match meta(META_POLICY_IN_FORCE)? {
        None => None,
        Some(v) => {
            Some(PolicyMark::decode(&v).ok_or_else(|| LedgerError::corrupt("policy in force"))?)
        }
    };
    let freezes = meta(META_FREEZE)?;
    Ok(OpenedChain {
        latest_signed_ms,
        policy_mark,
        freezes,
    })
}
