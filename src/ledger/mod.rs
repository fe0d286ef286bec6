//! Durable ledger of issued signatures and the hash-chained audit log (DESIGN invariants 4,
//! 5 and 7).
//!
//! The service holds [`Ledger::state`] while it looks a request up and checks policy against
//! [`StateGuard::used`], then [`StateGuard::reserve`]s the entry, which counts it in usage at
//! once so that concurrent requests cannot both pass a limit. It drops the guard, signs, and
//! calls [`Reservation::commit`]; the signature may leave the process only after that returned
//! `Ok`, i.e. after the entry and its audit record were fsynced. A reservation dropped without
//! a successful commit is rolled back.
//!
//! The writer's queue is bounded by bytes ([`QUEUE_BYTES`]): a submission waits for room
//! (back pressure) for at most [`QUEUE_WAIT`], then fails with [`LedgerError::QueueFull`],
//! so a flood of requests cannot grow the signer's memory without limit.
//!
//! `retention_ms` given at open must be at least the longest usage window the policy asks
//! for: entries whose expiration is older than `now - retention` are not loaded at open and
//! are forgotten in memory as time moves on, so a longer window would undercount.

mod audit;
mod commands;
mod entry;
mod error;
mod intent_json;
mod pg;
mod prune;
mod range;
mod schema;
mod state;
mod store;
mod usage;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tron_proto::{Address, U256};

pub use audit::{AuditRecord, ChainedRecord, Decision};
pub use commands::{run_audit, AuditCommand};
pub use entry::{Entry, PendingEntry};
pub use error::LedgerError;
pub use intent_json::{decoded_of, intent_json, intent_value};
pub use pg::Recorded;
pub use prune::PruneReport;
pub use range::{check_stretch, read_stretch, StoredRecord, Stretch, StretchRecord, GENESIS_HASH};
pub use state::{Lookup, PayoutRef};
pub use store::StoreHealth;
pub use verify::VerifyReport;

use crate::decode::Asset;
use schema::{AUDIT, BY_EXPIRATION, DB_FILE, ENTRIES, META, META_LATEST_SIGNED, META_SCHEMA};
use state::{Found, State, Undo};
use store::open_err;
use writer::{Job, SignJob, Writer};

/// Where a stopped or running signer's audit chain is read from, for the commands that read
/// it (`audit verify | export`, `policy replay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded ledger in this data directory.
    Dir(std::path::PathBuf),
    /// The shared PostgreSQL ledger at this connection string (a secret: never printed).
    Postgres(String),
}

impl Source {
    /// Hands every audit record, in order, to `each` until it returns `false`.
    pub fn each_audit_record(
        &self,
        each: &mut dyn FnMut(ChainedRecord) -> bool,
    ) -> Result<u64, LedgerError> {
        match self {
            Source::Dir(dir) => Ledger::each_audit_record(dir, each),
            Source::Postgres(url) => Ledger::each_audit_record_postgres(url, each),
        }
    }
}

/// State shared by the handles and the writer thread.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Rollbacks of reservations dropped while the state lock was busy (possibly held by the
    /// very thread dropping them); applied by whoever takes the lock next. Until then the
    /// reservation still counts, which errs on the side of refusing.
    deferred: Mutex<Vec<Undo>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave State half-updated in a way
        // that over-grants: every mutation either counts more or is a whole rollback.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::apply_deferred(&self.deferred, &mut state);
        state
    }

    fn apply_deferred(deferred: &Mutex<Vec<Undo>>, state: &mut State) {
        let undos = std::mem::take(&mut *deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for undo in &undos {
            state.rollback(undo);
        }
    }

    fn rollback_soon(&self, undo: Undo) {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(undo);
        if let Ok(mut state) = self.state.try_lock() {
            Self::apply_deferred(&self.deferred, &mut state);
        }
    }
}

/// Where the ledger keeps its entries and chain.
enum Backend {
    /// The embedded redb file in the data directory (one signer).
    Redb(Arc<store::Store>),
    /// A PostgreSQL database shared by several signers (`pg`).
    Postgres(Arc<pg::Pg>),
}

struct Inner {
    dir: std::path::PathBuf,
    backend: Backend,
    shared: Arc<Shared>,
    tx: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Room in the writer's queue, in bytes; a job holds its share until it is answered.
    queue: Arc<Semaphore>,
    #[cfg_attr(not(any(test, feature = "fault-injection")), allow(dead_code))]
    fail_next: Arc<AtomicU32>,
    /// The policy recorded in force last (`META_POLICY_IN_FORCE`).
    policy_mark: Mutex<Option<PolicyMark>>,
    /// The freezes in force as recorded (`META_FREEZE`), opaque to the ledger.
    freezes: Mutex<Option<Vec<u8>>>,
}

/// The policy put in force last, as the ledger records it: no policy with a lower revision
/// (or the same revision and other bytes) is put in force after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyMark {
    pub revision: u64,
    /// sha256 of the policy file's bytes.
    pub hash: [u8; 32],
}

impl PolicyMark {
    /// Whether this policy may be put in force after `prev`: the same policy again, or a
    /// higher revision (two policies that both state no revision may follow each other,
    /// as with one signer without administrators).
    pub(crate) fn may_follow(&self, prev: Option<PolicyMark>) -> bool {
        match prev {
            None => true,
            Some(m) => {
                m.hash == self.hash
                    || (m.revision == 0 && self.revision == 0)
                    || self.revision > m.revision
            }
        }
    }

    fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.revision.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    fn decode(bytes: &[u8]) -> Option<PolicyMark> {
        let revision = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let hash = bytes.get(8..)?.try_into().ok()?;
        Some(PolicyMark { revision, hash })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish the batch it has and exit; joining it
        // releases the database file before a reopen in the same process.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Bytes of submissions that may wait for the writer at once (audit bodies, plus a fixed
/// share per signature entry). Far above what group commit drains between two fsyncs.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// How long a submission waits for room in a full queue before it fails.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What a signature's entry costs in the queue on top of its audit body.
const ENTRY_QUEUE_BYTES: usize = 512;

impl Inner {
    /// Waits (at most [`QUEUE_WAIT`]) for `bytes` of room in the writer's queue. A job larger
    /// than the whole queue takes all of it rather than never getting in.
    async fn admit(&self, bytes: usize) -> Result<OwnedSemaphorePermit, LedgerError> {
        let n = u32::try_from(bytes.clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        // The usual case, room at once, takes no timer.
        if let Ok(permit) = Arc::clone(&self.queue).try_acquire_many_owned(n) {
            return Ok(permit);
        }
        let acquire = Arc::clone(&self.queue).acquire_many_owned(n);
        match tokio::time::timeout(QUEUE_WAIT, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; should it be, nothing more can be written.
            Ok(Err(_)) => Err(LedgerError::WriterStopped),
            Err(_) => Err(LedgerError::QueueFull {
                waited_ms: QUEUE_WAIT.as_millis() as u64,
            }),
        }
    }

    /// Hands a job to the writer; gives it back if the writer is gone.
    fn send(&self, job: Job) -> Result<(), Box<Job>> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(job)),
        }
    }
}

/// Handle on the ledger; cheap to clone, all clones share one database and one writer thread.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

/// Exclusive access to the in-memory state. Not `Send`: it cannot be held across an `.await`
/// in a spawned task, which keeps the writer (which also takes this lock) from being starved.
pub struct StateGuard<'a> {
    state: MutexGuard<'a, State>,
    inner: &'a Arc<Inner>,
    /// In a PostgreSQL turn: the request's txid's signed entry, read under the key's lock.
    replay: Option<&'a Entry>,
}

/// A request's turn on its key (see [`Ledger::turn`]).
#[must_use = "a turn holds its key's lock until published, finished or dropped"]
pub struct KeyTurn {
    pg: Option<pg::Turn>,
}

impl KeyTurn {
    /// Makes `reservation` visible to every signer sharing the ledger, durably, and ends the
    /// turn. Only after `Ok` may the key sign. A no-op on the embedded store.
    pub async fn publish(self, reservation: &mut Reservation) -> Result<(), LedgerError> {
        match (self.pg, reservation.undo.as_ref()) {
            (None, _) => Ok(()),
            (Some(turn), Some(undo)) => {
                reservation.published = Some(turn.publish(&undo.entry).await?);
                Ok(())
            }
            (Some(_), None) => Err(LedgerError::WriterStopped),
        }
    }

    /// With a shared ledger: the policy in force and the freezes as the database recorded
    /// them when this turn began (another signer may have changed them). `None` on the
    /// embedded store, where this signer alone changes them.
    pub fn recorded(&self) -> Option<&Recorded> {
        self.pg.as_ref().and_then(|t| t.shared.as_ref())
    }

    /// Publishes `entry` as if the state had reserved it (tests of the database's own
    /// constraints).
    #[cfg(test)]
    pub(crate) async fn publish_entry_for_test(
        self,
        entry: &PendingEntry,
    ) -> Result<(), LedgerError> {
        match self.pg {
            None => Ok(()),
            Some(turn) => turn.publish(entry).await.map(|_| ()),
        }
    }

    /// Ends a turn that reserved nothing.
    pub async fn finish(self) -> Result<(), LedgerError> {
        match self.pg {
            None => Ok(()),
            Some(turn) => turn.finish().await,
        }
    }
}

/// A name for this signer process among those sharing a ledger: host, pid and a random
/// suffix (so a restarted process is another instance).
fn instance_name() -> String {
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("{host}/{}/{}", std::process::id(), hex::encode(r))
}

/// A counted but not yet durable entry. Dropping it, or a failed commit, rolls it back.
#[must_use = "dropping a reservation rolls it back"]
pub struct Reservation {
    inner: Arc<Inner>,
    undo: Option<Undo>,
    /// With a shared ledger: the key version it was published at ([`KeyTurn::publish`]).
    published: Option<i64>,
}

impl Ledger {
    /// Opens (creating if missing) `dir/ledger.redb` and rebuilds the in-memory index from the
    /// entries whose expiration is at or after `now_ms - retention_ms`.
    pub fn open(dir: &Path, retention_ms: u64, now_ms: i64) -> Result<Ledger, LedgerError> {
        crate::durable_file::create_dir_private(dir).map_err(|e| open_err(dir, e))?;
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        let store = Arc::new(store::Store::open(&path)?);
        let db = store.db()?;
        if !existed {
            // Make the new file's directory entry durable too; best effort where the platform
            // cannot open directories.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        init_tables(&db)?;
        let head = store::read_head(&db)?;
        let latest_signed_ms = read_latest_signed(&db)?;
        let policy_mark = read_policy_mark(&db)?;
        let freezes = read_meta(&db, schema::META_FREEZE, "the freezes in force")?;
        let mut state = State::new(retention_ms, latest_signed_ms);
        // Judged by the later of the two clocks' earlier reading: a clock that jumped ahead
        // before this start must not make the ledger forget usage a window still counts.
        let load_now = latest_signed_ms.map_or(now_ms, |t| t.min(now_ms));
        load_live(&db, &mut state, retention_ms, load_now)?;
        drop(db);

        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            deferred: Mutex::new(Vec::new()),
        });
        let fail_next = Arc::new(AtomicU32::new(0));
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(
            Arc::clone(&store),
            shared.clone(),
            head,
            latest_signed_ms,
            rx,
            fail_next.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| open_err(&path, e))?;
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                backend: Backend::Redb(store),
                shared,
                tx: Some(tx),
                writer: Some(handle),
                queue: Arc::new(Semaphore::new(QUEUE_BYTES)),
                fail_next,
                policy_mark: Mutex::new(policy_mark),
                freezes: Mutex::new(freezes),
            }),
        })
    }

    /// Opens the shared ledger in the PostgreSQL database `url` names (migrating its schema
    /// first), for a signer whose own files are in `dir`. Blocks until connected; the
    /// connections themselves are made on a thread of their own.
    pub fn open_postgres(
        url: &str,
        pool_size: usize,
        dir: &Path,
        retention_ms: u64,
    ) -> Result<Ledger, LedgerError> {
        Ledger::open_postgres_leased(url, pool_size, dir, retention_ms, pg::LEASE)
    }

    /// [`Ledger::open_postgres`] with reservations leased for `lease` (tests shorten it).
    pub(crate) fn open_postgres_leased(
        url: &str,
        pool_size: usize,
        dir: &Path,
        retention_ms: u64,
        lease: std::time::Duration,
    ) -> Result<Ledger, LedgerError> {
        crate::durable_file::create_dir_private(dir).map_err(|e| open_err(dir, e))?;
        let cfg = pg::config(url)?;
        let instance = instance_name();
        let (tx, rx) = mpsc::channel();
        let (health_tx, health_rx) = tokio::sync::watch::channel(StoreHealth::Healthy);
        let fail_next = Arc::new(AtomicU32::new(0));
        let abandoned: pg::Abandoned = Arc::default();
        let (opened_tx, opened_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(retention_ms, None)),
            deferred: Mutex::new(Vec::new()),
        });
        let (thread_cfg, thread_instance, thread_shared, thread_fail, thread_abandoned) = (
            cfg.clone(),
            instance.clone(),
            Arc::clone(&shared),
            Arc::clone(&fail_next),
            Arc::clone(&abandoned),
        );
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                match pg::PgWriter::connect(
                    thread_cfg,
                    thread_instance,
                    thread_shared,
                    rx,
                    health_tx,
                    thread_fail,
                    thread_abandoned,
                ) {
                    Ok((writer, opened)) => {
                        let _ = opened_tx.send(Ok(opened));
                        writer.run();
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| open_err(dir, e))?;
        let opened = opened_rx
            .recv()
            .map_err(|_| LedgerError::WriterStopped)
            .and_then(|r| r);
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                drop(tx);
                let _ = handle.join();
                return Err(e);
            }
        };
        if let Some(t) = opened.latest_signed_ms {
            shared.lock().note_latest_signed(t);
        }
        let pg = pg::Pg::new(
            cfg,
            pool_size,
            instance,
            abandoned,
            health_rx,
            retention_ms,
            lease,
        )?;
        tracing::info!(instance = %pg.instance, "ledger on PostgreSQL");
        Ok(Ledger {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                backend: Backend::Postgres(Arc::new(pg)),
                shared,
                tx: Some(tx),
                writer: Some(handle),
                queue: Arc::new(Semaphore::new(QUEUE_BYTES)),
                fail_next,
                policy_mark: Mutex::new(opened.policy_mark),
                freezes: Mutex::new(opened.freezes),
            }),
        })
    }

    /// With a shared ledger: the policy in force and the freezes as recorded right now.
    /// `None` on the embedded store.
    pub async fn recorded_now(&self) -> Result<Option<Recorded>, LedgerError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(None),
            Backend::Postgres(pg) => pg.recorded().await.map(Some),
        }
    }

    /// Whether the ledger is shared with other signers (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// Starts deciding a request for `key`: with the embedded store, nothing to do; with
    /// PostgreSQL, the key's lock taken and the state caught up with every instance's
    /// changes to it (see `pg`). Take [`Ledger::state_in`] with it, then
    /// [`KeyTurn::publish`] a reservation or [`KeyTurn::finish`].
    pub async fn turn(
        &self,
        key: &Address,
        txid: &[u8; 32],
        now_ms: i64,
    ) -> Result<KeyTurn, LedgerError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(KeyTurn { pg: None }),
            Backend::Postgres(pg) => Ok(KeyTurn {
                pg: Some(pg.turn(&self.inner.shared, key, txid, now_ms).await?),
            }),
        }
    }

    /// [`Ledger::state`] within a key's turn.
    pub fn state_in<'a>(&'a self, turn: &'a KeyTurn) -> StateGuard<'a> {
        StateGuard {
            state: self.inner.shared.lock(),
            inner: &self.inner,
            replay: turn.pg.as_ref().and_then(|t| t.replay.as_ref()),
        }
    }

    /// The data directory the ledger lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Follows whether the ledger can record (and so whether anything can be signed).
    pub fn health(&self) -> tokio::sync::watch::Receiver<StoreHealth> {
        match &self.inner.backend {
            Backend::Redb(store) => store.health(),
            Backend::Postgres(pg) => pg.health(),
        }
    }

    /// Whether the ledger can record right now.
    pub fn store_health(&self) -> StoreHealth {
        match &self.inner.backend {
            Backend::Redb(store) => store.current_health(),
            Backend::Postgres(pg) => pg.health().borrow().clone(),
        }
    }

    /// Takes the state lock. Hold it for lookup, policy and reserve; never across signing.
    pub fn state(&self) -> StateGuard<'_> {
        StateGuard {
            state: self.inner.shared.lock(),
            inner: &self.inner,
            replay: None,
        }
    }

    /// The retention the ledger was opened with; the service should refuse a policy whose
    /// longest window exceeds it.
    pub fn retention_ms(&self) -> u64 {
        self.inner.shared.lock().retention_ms()
    }

    /// Appends an audit record on its own (a denial, an Evaluate, a reload), durably.
    /// Returns its sequence number.
    pub async fn audit(&self, rec: AuditRecord) -> Result<u64, LedgerError> {
        let body = rec.body();
        let seq = self
            .submit(body.len(), |reply, queued| Job::Audit {
                body,
                reply,
                _queued: queued,
            })
            .await?;
        counted(&rec, seq);
        Ok(seq)
    }

    /// Queues the job `make` builds (holding `bytes` of the writer's queue until it is
    /// answered) and waits for its commit; returns its first sequence number.
    async fn submit(
        &self,
        bytes: usize,
        make: impl FnOnce(writer::Reply, OwnedSemaphorePermit) -> Job,
    ) -> Result<u64, LedgerError> {
        let queued = self.inner.admit(bytes).await?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .send(make(reply, queued))
            .map_err(|_| LedgerError::WriterStopped)?;
        rx.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// The policy recorded in force last, if any was.
    pub fn policy_mark(&self) -> Option<PolicyMark> {
        *self
            .inner
            .policy_mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `mark` as the policy in force, with its audit record, in one durable commit.
    /// Returns the record's sequence number.
    pub async fn put_policy(&self, rec: AuditRecord, mark: PolicyMark) -> Result<u64, LedgerError> {
        let body = rec.body();
        let seq = self
            .submit(body.len(), |reply, queued| Job::Policy {
                body,
                mark: mark.encode(),
                reply,
                _queued: queued,
            })
            .await?;
        counted(&rec, seq);
        let before = self
            .inner
            .policy_mark
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(mark);
        if before.map(|m| m.hash) != Some(mark.hash) {
            // The writer removed them in the same commit.
            *self.freezes_slot() = None;
        }
        Ok(seq)
    }

    /// The freezes in force as last recorded ([`Ledger::put_freeze`]); cleared when a policy
    /// other than the one marked before is put in force.
    pub fn freezes(&self) -> Option<Vec<u8>> {
        self.freezes_slot().clone()
    }

    /// Records `freezes` (the whole set in force) with the audit record of the freeze that
    /// changed it, in one durable commit. Returns the record's sequence number.
    /// `before` is the set recorded when this one was made from it: a shared ledger refuses
    /// ([`LedgerError::Conflict`]) if another signer recorded another since.
    pub async fn put_freeze(
        &self,
        rec: AuditRecord,
        freezes: Vec<u8>,
        before: Option<Vec<u8>>,
    ) -> Result<u64, LedgerError> {
        let body = rec.body();
        let stored = freezes.clone();
        let seq = self
            .submit(body.len() + freezes.len(), |reply, queued| Job::Freeze {
                body,
                freezes: stored,
                before,
                reply,
                _queued: queued,
            })
            .await?;
        counted(&rec, seq);
        *self.freezes_slot() = Some(freezes);
        Ok(seq)
    }

    fn freezes_slot(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.inner
            .freezes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The audit record at `seq`, read from the open ledger (`None` past the head).
    pub fn audit_record(&self, seq: u64) -> Result<Option<ChainedRecord>, LedgerError> {
        let Backend::Redb(store) = &self.inner.backend else {
            return Err(LedgerError::corrupt(
                "single records are read from the embedded ledger only",
            ));
        };
        read_row(store, AUDIT, seq, ("open audit", "read audit"))?
            .map(|row| audit::open_row(seq, &row).map(|o| o.record))
            .transpose()
    }

    /// Removes archived records no window needs any more from a stopped signer's ledger;
    /// see `prune.rs` for every condition. `retention_ms` is the horizon the service keeps.
    pub fn prune_archived(
        dir: &Path,
        through: u64,
        archived: &[StoredRecord],
        retention_ms: u64,
    ) -> Result<PruneReport, LedgerError> {
        prune::prune(dir, through, archived, retention_ms)
    }

    /// Offline check of the whole audit chain; see [`VerifyReport`].
    pub fn verify_audit(dir: &Path) -> Result<VerifyReport, LedgerError> {
        verify::verify(dir)
    }

    /// Hands every audit record of the ledger in `dir`, in order, to `each`, reading it
    /// read-only so a running service is not disturbed; stops when `each` returns `false`.
    pub fn each_audit_record(
        dir: &Path,
        each: &mut dyn FnMut(ChainedRecord) -> bool,
    ) -> Result<u64, LedgerError> {
        verify::each_record(dir, each)
    }

    /// Writes every audit record, in order, as one JSON object per line. Returns the count.
    pub fn export_audit(dir: &Path, out: &mut dyn Write) -> Result<u64, LedgerError> {
        verify::export(dir, out)
    }

    /// [`Ledger::verify_audit`] on the shared PostgreSQL ledger at `url`.
    pub fn verify_audit_postgres(url: &str) -> Result<VerifyReport, LedgerError> {
        pg::verify(url)
    }

    /// [`Ledger::each_audit_record`] on the shared PostgreSQL ledger at `url`.
    pub fn each_audit_record_postgres(
        url: &str,
        each: &mut dyn FnMut(ChainedRecord) -> bool,
    ) -> Result<u64, LedgerError> {
        pg::each_record(url, each)
    }

    /// [`Ledger::export_audit`] on the shared PostgreSQL ledger at `url`.
    pub fn export_audit_postgres(url: &str, out: &mut dyn Write) -> Result<u64, LedgerError> {
        verify::export_from(&mut |each| pg::each_record(url, each), out)
    }

    /// Takes all the room in the writer's queue, as a writer stuck behind a slow disk would,
    /// until the returned permit is dropped.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn occupy_queue(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.inner.queue)
            .try_acquire_many_owned(QUEUE_BYTES as u32)
            .expect("the queue is idle")
    }

    /// The embedded store (tests that damage it on purpose).
    #[cfg(test)]
    pub(crate) fn redb_store(&self) -> &store::Store {
        match &self.inner.backend {
            Backend::Redb(store) => store,
            Backend::Postgres(_) => panic!("not an embedded ledger"),
        }
    }

    /// Makes the next `n` group commits fail (and abort) as if the disk had refused them.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_commits(&self, n: u32) {
        self.inner
            .fail_next
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One row of a sequence-keyed table, read in its own transaction from the open store.
fn read_row(
    store: &store::Store,
    table: redb::TableDefinition<u64, &[u8]>,
    seq: u64,
    (open, read): (&'static str, &'static str),
) -> Result<Option<Vec<u8>>, LedgerError> {
    let rtx = store
        .db()?
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let t = rtx
        .open_table(table)
        .map_err(|e| LedgerError::storage(open, e))?;
    let row = t.get(seq).map_err(|e| LedgerError::storage(read, e))?;
    Ok(row.map(|r| r.value().to_vec()))
}

impl StateGuard<'_> {
    /// Looks a txid up among the entries the ledger remembers: those reserved or committed
    /// whose expiration is at or after `now - retention`. A committed entry is read back from
    /// the store (a replay is rare; the hot path only meets unknown txids, answered from
    /// memory). An older transaction is not found: it expired longer ago than any window, so
    /// the policy refuses it as expired and it is never signed twice.
    pub fn find_txid(&self, txid: &[u8; 32]) -> Result<Option<Lookup>, LedgerError> {
        let seq = match self.state.find_txid(txid) {
            None => return Ok(None),
            Some(Found::InFlight) => return Ok(Some(Lookup::InFlight)),
            Some(Found::Committed(seq)) => seq,
        };
        let store = match &self.inner.backend {
            Backend::Redb(store) => store,
            // Read under the key's lock. Committed here but not yet seen signed there: this
            // instance's own commit landed after the turn read it; ask again.
            Backend::Postgres(_) => {
                return Ok(Some(
                    match self.replay.filter(|e| &e.pending.txid == txid) {
                        Some(e) => Lookup::Committed(Box::new(e.clone())),
                        None => Lookup::InFlight,
                    },
                ))
            }
        };
        let row = read_row(store, ENTRIES, seq, ("open entries", "read entry"))?
            .ok_or_else(|| LedgerError::corrupt("committed txid without entry"))?;
        let entry = Entry::decode(&row)?;
        if &entry.pending.txid != txid {
            return Err(LedgerError::corrupt("entry does not match its txid"));
        }
        Ok(Some(Lookup::Committed(Box::new(entry))))
    }

    /// The latest time anything was signed at (reservations included), durable across
    /// restarts; `None` before the first signature.
    pub fn latest_signed_ms(&self) -> Option<i64> {
        self.state.latest_signed_ms()
    }

    /// The newest transaction for this payout id, if it may still matter: entries that
    /// expired more than the retention ago are forgotten (they can no longer land).
    pub fn find_payout(&self, key: &Address, payout_id: &str) -> Option<PayoutRef> {
        self.state.find_payout(key, payout_id)
    }

    /// Sum of amounts for (key, asset[, dest]) whose expiration is at or after
    /// `now_ms - lookback_ms`, reserved entries included. The policy asks with its window
    /// plus its clock skew, so a transaction counts while it can still land.
    pub fn used(
        &self,
        key: &Address,
        asset: Asset,
        dest: Option<&Address>,
        lookback_ms: u64,
        now_ms: i64,
    ) -> U256 {
        self.state.used(key, asset, dest, lookback_ms, now_ms)
    }

    /// Counts the entry now and marks its txid and payout id in flight. The caller must have
    /// checked [`find_txid`](Self::find_txid) first; a txid already held is refused here too.
    pub fn reserve(&mut self, entry: PendingEntry) -> Result<Reservation, LedgerError> {
        if entry.payout_id.len() > u16::MAX as usize {
            return Err(LedgerError::PayoutIdTooLong {
                len: entry.payout_id.len(),
            });
        }
        if self.state.find_txid(&entry.txid).is_some() {
            return Err(LedgerError::Duplicate {
                txid: hex::encode(entry.txid),
            });
        }
        let undo = self.state.reserve(entry);
        Ok(Reservation {
            inner: self.inner.clone(),
            undo: Some(undo),
            published: None,
        })
    }
}

impl Reservation {
    pub fn txid(&self) -> Option<&[u8; 32]> {
        self.undo.as_ref().map(|u| &u.entry.txid)
    }

    /// Makes the entry and its audit record durable (group-committed, fsynced). Returns the
    /// audit sequence number. Only after `Ok` may the signature be released.
    pub async fn commit(
        mut self,
        signature: [u8; 65],
        audit: AuditRecord,
    ) -> Result<u64, LedgerError> {
        let audit_body = audit.body();
        // Waiting for room happens while the reservation still rolls back on failure.
        let queued = self
            .inner
            .admit(audit_body.len() + ENTRY_QUEUE_BYTES)
            .await?;
        let Some(undo) = self.undo.take() else {
            return Err(LedgerError::WriterStopped);
        };
        let (reply, rx) = oneshot::channel();
        let job = Job::Sign(Box::new(SignJob {
            undo,
            signature,
            audit_body,
            published: self.published,
            reply,
            _queued: queued,
        }));
        if let Err(job) = self.inner.send(job) {
            if let Job::Sign(job) = *job {
                self.inner.shared.rollback_soon(job.undo);
            }
            return Err(LedgerError::WriterStopped);
        }
        // From here the writer owns the outcome: it marks the entry committed or rolls it
        // back before answering. If it vanished without answering, the entry may or may not
        // be on disk, so it stays counted (in flight) rather than being rolled back.
        let seq = rx.await.map_err(|_| LedgerError::WriterStopped)??;
        counted(&audit, seq);
        Ok(seq)
    }
}

/// A record made durable at `seq`, in the operators' metrics.
fn counted(rec: &AuditRecord, seq: u64) {
    crate::metrics::global().recorded(&rec.method, rec.decision.as_str(), &rec.reason_code, seq);
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            if let Backend::Postgres(pg) = &self.inner.backend {
                pg.abandon(undo.entry.key, undo.entry.txid);
            }
            self.inner.shared.rollback_soon(undo);
        }
    }
}

fn init_tables(db: &Database) -> Result<(), LedgerError> {
    let txn = db
        .begin_write()
        .map_err(|e| LedgerError::storage("begin init", e))?;
    {
        // The schema first: an older layout's tables have other key types and must not be
        // opened with these definitions.
        let mut meta = txn
            .open_table(META)
            .map_err(|e| LedgerError::storage("create meta", e))?;
        let version = meta
            .get(META_SCHEMA)
            .map_err(|e| LedgerError::storage("read schema", e))?
            .map(|v| v.value().to_vec());
        match version {
            Some(v) if v == schema::SCHEMA_VERSION => {}
            Some(v) => {
                return Err(LedgerError::corrupt(format!(
                    "schema {:?}, this build reads {:?}",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(schema::SCHEMA_VERSION)
                )))
            }
            None => {
                meta.insert(META_SCHEMA, schema::SCHEMA_VERSION)
                    .map_err(|e| LedgerError::storage("write schema", e))?;
            }
        }
        txn.open_table(ENTRIES)
            .map_err(|e| LedgerError::storage("create entries", e))?;
        txn.open_table(BY_EXPIRATION)
            .map_err(|e| LedgerError::storage("create by_expiration", e))?;
        txn.open_table(AUDIT)
            .map_err(|e| LedgerError::storage("create audit", e))?;
    }
    txn.commit()
        .map_err(|e| LedgerError::storage("commit init", e))
}

/// The value of a `meta` entry, if present.
fn read_meta(db: &Database, key: &str, what: &'static str) -> Result<Option<Vec<u8>>, LedgerError> {
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    let v = meta.get(key).map_err(|e| LedgerError::storage(what, e))?;
    Ok(v.map(|v| v.value().to_vec()))
}

/// The policy recorded in force last, if any.
fn read_policy_mark(db: &Database) -> Result<Option<PolicyMark>, LedgerError> {
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    let Some(v) = meta
        .get(schema::META_POLICY_IN_FORCE)
        .map_err(|e| LedgerError::storage("read the policy in force", e))?
    else {
        return Ok(None);
    };
    PolicyMark::decode(v.value())
        .map(Some)
        .ok_or_else(|| LedgerError::corrupt("policy in force"))
}

/// The latest time anything was signed at: stored beside the chain head by every commit
/// that signs, or, in a ledger written before that was stored, the newest entry's.
fn read_latest_signed(db: &Database) -> Result<Option<i64>, LedgerError> {
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    if let Some(v) = meta
        .get(META_LATEST_SIGNED)
        .map_err(|e| LedgerError::storage("read latest signing time", e))?
    {
        let bytes: [u8; 8] = v
            .value()
            .try_into()
            .map_err(|_| LedgerError::corrupt("latest signing time"))?;
        return Ok(Some(i64::from_be_bytes(bytes)));
    }
    let entries = rtx
        .open_table(ENTRIES)
        .map_err(|e| LedgerError::storage("open entries", e))?;
    let last = entries
        .last()
        .map_err(|e| LedgerError::storage("read last entry", e))?;
    let latest = match last {
        Some((_, row)) => Some(Entry::decode(row.value())?.pending.signed_at_ms),
        None => None,
    };
    Ok(latest)
}

fn load_live(
    db: &Database,
    state: &mut State,
    retention_ms: u64,
    now_ms: i64,
) -> Result<(), LedgerError> {
    let cutoff = now_ms.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let by_exp = rtx
        .open_table(BY_EXPIRATION)
        .map_err(|e| LedgerError::storage("open by_expiration", e))?;
    let entries = rtx
        .open_table(ENTRIES)
        .map_err(|e| LedgerError::storage("open entries", e))?;
    for item in by_exp
        .range((cutoff, 0u64)..)
        .map_err(|e| LedgerError::storage("range by_expiration", e))?
    {
        let (k, _) = item.map_err(|e| LedgerError::storage("read by_expiration", e))?;
        let (expiration_ms, seq) = k.value();
        let row = entries
            .get(seq)
            .map_err(|e| LedgerError::storage("read entry", e))?
            .ok_or_else(|| LedgerError::corrupt("expiration index without entry"))?;
        let entry = Entry::decode(row.value())?;
        if entry.audit_seq != seq || entry.pending.expiration_ms != expiration_ms {
            return Err(LedgerError::corrupt("entry does not match its index"));
        }
        state.load(&entry);
    }
    Ok(())
}
