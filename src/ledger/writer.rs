//! The single writer thread and its group commit.
//!
//! Submissions queue on a channel. The writer takes the first, drains whatever else is already
//! waiting (up to `MAX_BATCH`), writes all of them in one redb write transaction with
//! `Durability::Immediate` (fsync), commits once, updates the in-memory state, and only then
//! answers each submitter. While one fsync is in flight the next batch accumulates, so the
//! number of fsyncs per second stays bounded while entries per second grow with concurrency.
//! A failed transaction fails every submission in it; none of them is durable, so the state
//! rolls all of their reservations back and the chain head stays where it was.
//!
//! A failed write (other than an injected one) closes the database ([`Store::fail`]): redb
//! refuses everything after an I/O error until it is reopened. From then on the writer
//! answers every batch at once with [`LedgerError::StoreFailed`] and tries to reopen the
//! file with back-off, both on its own and when requests arrive, until the chain head on disk
//! is the one it holds; then commits resume.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::Durability;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::audit::seal_body;
use super::entry::encode_parts;
use super::error::LedgerError;
use super::schema::{
    Head, AUDIT, BY_EXPIRATION, ENTRIES, META, META_AUDIT_HEAD, META_FREEZE, META_LATEST_SIGNED,
    META_POLICY_IN_FORCE,
};
use super::state::Undo;
use super::store::{Reopen, Store};
use super::Shared;

pub(crate) const MAX_BATCH: usize = 4096;

/// A group commit slower than this is logged: it is the latency floor of its whole batch.
const SLOW_COMMIT: Duration = Duration::from_millis(100);

/// The first reopen attempt after a failure, doubled after each failed attempt up to
/// [`REOPEN_BACKOFF_MAX`].
const REOPEN_BACKOFF_MIN: Duration = Duration::from_millis(200);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) type Reply = oneshot::Sender<Result<u64, LedgerError>>;

pub(crate) enum Job {
    /// A signature's ledger entry plus its audit record.
    Sign(Box<SignJob>),
    /// An audit record on its own (denials, Evaluate, reloads), as its canonical body.
    Audit {
        body: Vec<u8>,
        reply: Reply,
        /// Its room in the bounded queue, held (never read) until the job is answered.
        _queued: OwnedSemaphorePermit,
    },
    /// A policy put in force: its audit record and, in the same transaction, the new mark
    /// (which, for another policy than the one marked before, clears the freezes).
    Policy {
        body: Vec<u8>,
        mark: [u8; 40],
        reply: Reply,
        _queued: OwnedSemaphorePermit,
    },
    /// A freeze taken: its audit record and, in the same transaction, the freezes in force.
    Freeze {
        body: Vec<u8>,
        freezes: Vec<u8>,
        /// The set it was made from: a shared ledger records it only if that is still the
        /// set recorded (so two freezes at once on two signers cannot lose one).
        before: Option<Vec<u8>>,
        reply: Reply,
        _queued: OwnedSemaphorePermit,
    },
}

impl Job {
    /// A job that changes what every request is judged by (the policy in force, the
    /// freezes): committed in a batch of its own, so that its refusal fails nothing else.
    pub(crate) fn is_singular(&self) -> bool {
        matches!(self, Job::Policy { .. } | Job::Freeze { .. })
    }
}

pub(crate) struct SignJob {
    /// The reservation: the entry as reserved, and what rolling it back needs.
    pub undo: Undo,
    pub signature: [u8; 65],
    /// The audit record's canonical body ([`AuditRecord::body`](super::AuditRecord::body)).
    pub audit_body: Vec<u8>,
    /// With a shared ledger: the key version the reservation was published at.
    pub published: Option<i64>,
    pub reply: Reply,
    /// Its room in the bounded queue, held (never read) until the job is answered.
    pub _queued: OwnedSemaphorePermit,
}

pub(crate) struct Writer {
    store: Arc<Store>,
    shared: Arc<Shared>,
    head: Head,
    /// The latest signing time committed, written beside the head when a batch raises it.
    latest_signed_ms: Option<i64>,
    rx: Receiver<Job>,
    fail_next: Arc<AtomicU32>,
    /// Set while the database is closed after a failure.
    failed: Option<Failed>,
}

/// When to try reopening the database next.
struct Failed {
    next_attempt: Instant,
    backoff: Duration,
    /// The head on disk was not ours: never reopen again in this process.
    fatal: bool,
}

impl Writer {
    pub(crate) fn new(
        store: Arc<Store>,
        shared: Arc<Shared>,
        head: Head,
        latest_signed_ms: Option<i64>,
        rx: Receiver<Job>,
        fail_next: Arc<AtomicU32>,
    ) -> Writer {
        Writer {
            store,
            shared,
            head,
            latest_signed_ms,
            rx,
            fail_next,
            failed: None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let first = match self.failed.as_ref().filter(|f| !f.fatal) {
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
                // While failed, wake up to retry even if no request comes.
                Some(f) => {
                    let wait = f.next_attempt.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            self.try_reopen();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            let mut batch = Vec::with_capacity(64);
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.try_reopen();
            self.commit_batch(batch);
        }
    }

    /// Reopens the database if it is closed and the back-off has passed.
    fn try_reopen(&mut self) {
        let Some(f) = &mut self.failed else { return };
        if f.fatal || Instant::now() < f.next_attempt {
            return;
        }
        match self.store.reopen(&self.head) {
            Ok(Reopen::Resumed) => {
                tracing::info!(
                    audit_head = self.head.seq,
                    "ledger database reopened; commits resume"
                );
                self.failed = None;
            }
            Ok(Reopen::HeadMoved { on_disk, in_memory }) => {
                let detail = format!(
                    "after reopening, the audit chain head on disk is record {on_disk} but this \
                     process holds {in_memory}; restart the signer to rebuild its state"
                );
                tracing::error!("{detail}");
                self.store.fatal(detail);
                f.fatal = true;
            }
            Err(e @ (LedgerError::Corrupt { .. } | LedgerError::HeadMismatch { .. })) => {
                let detail = format!("the reopened ledger is damaged: {e}");
                tracing::error!("{detail}");
                self.store.fatal(detail);
                f.fatal = true;
            }
            Err(e) => {
                tracing::warn!(
                    retry_in_ms = f.backoff.as_millis() as u64,
                    "ledger database still cannot be reopened: {e}"
                );
                f.next_attempt = Instant::now() + f.backoff;
                f.backoff = (f.backoff * 2).min(REOPEN_BACKOFF_MAX);
            }
        }
    }

    /// Closes the database after a failed write; see the module doc.
    fn fail(&mut self, e: &LedgerError) {
        tracing::error!(
            code = e.code(),
            "ledger write failed: {e}; refusing every request that must be recorded until the \
             database can be reopened"
        );
        self.store.fail(e.to_string());
        self.failed = Some(Failed {
            next_attempt: Instant::now() + REOPEN_BACKOFF_MIN,
            backoff: REOPEN_BACKOFF_MIN * 2,
            fatal: false,
        });
    }

    fn commit_batch(&mut self, batch: Vec<Job>) {
        let started = Instant::now();
        let result = match self.failed {
            Some(_) => Err(self.store.unavailable()),
            None => self.write(&batch),
        };
        if let Err(e @ LedgerError::Storage { .. }) = &result {
            self.fail(e);
        }
        settle(&self.shared, batch, &result, started.elapsed());
    }

    /// Writes the batch in one transaction; returns the sequence number of its first record.
    /// Sequence numbers are assigned in batch order, so job `i` gets `first + i`.
    fn write(&mut self, batch: &[Job]) -> Result<u64, LedgerError> {
        let first = self.head.seq + 1;
        let mut head = self.head;
        let mut latest = self.latest_signed_ms;
        let mut txn = self
            .store
            .db()?
            .begin_write()
            .map_err(|e| LedgerError::storage("begin write", e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| LedgerError::storage("set durability", e))?;
        {
            let mut entries = txn
                .open_table(ENTRIES)
                .map_err(|e| LedgerError::storage("open entries", e))?;
            let mut by_exp = txn
                .open_table(BY_EXPIRATION)
                .map_err(|e| LedgerError::storage("open by_expiration", e))?;
            let mut audit = txn
                .open_table(AUDIT)
                .map_err(|e| LedgerError::storage("open audit", e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| LedgerError::storage("open meta", e))?;
            for job in batch {
                let seq = head.seq + 1;
                let body = match job {
                    Job::Sign(job) => {
                        let p = &job.undo.entry;
                        latest = Some(latest.map_or(p.signed_at_ms, |t| t.max(p.signed_at_ms)));
                        // Keyed by sequence number, both tables only ever append: a batch
                        // dirties a few pages at their right edge, not one page per entry.
                        entries
                            .insert(seq, encode_parts(p, &job.signature, seq).as_slice())
                            .map_err(|e| LedgerError::storage("insert entry", e))?;
                        by_exp
                            .insert((p.expiration_ms, seq), ())
                            .map_err(|e| LedgerError::storage("insert expiration", e))?;
                        &job.audit_body
                    }
                    Job::Audit { body, .. } => body,
                    Job::Policy { body, mark, .. } => {
                        let before = meta
                            .insert(META_POLICY_IN_FORCE, mark.as_slice())
                            .map_err(|e| LedgerError::storage("record the policy in force", e))?
                            .map(|v| v.value().to_vec());
                        // Bytes 8.. are the policy hash: another policy lifts every freeze.
                        if before.as_deref().and_then(|b| b.get(8..)) != mark.get(8..) {
                            meta.remove(META_FREEZE)
                                .map_err(|e| LedgerError::storage("lift the freezes", e))?;
                        }
                        body
                    }
                    Job::Freeze { body, freezes, .. } => {
                        meta.insert(META_FREEZE, freezes.as_slice())
                            .map_err(|e| LedgerError::storage("record the freeze", e))?;
                        body
                    }
                };
                let (row, hash) = seal_body(body, seq, &head.hash);
                audit
                    .insert(seq, row.as_slice())
                    .map_err(|e| LedgerError::storage("insert audit", e))?;
                head = Head { seq, hash };
            }
            meta.insert(META_AUDIT_HEAD, head.encode().as_slice())
                .map_err(|e| LedgerError::storage("update head", e))?;
            if let Some(t) = latest.filter(|_| latest != self.latest_signed_ms) {
                meta.insert(META_LATEST_SIGNED, t.to_be_bytes().as_slice())
                    .map_err(|e| LedgerError::storage("update latest signing time", e))?;
            }
        }
        if injected_failure(&self.fail_next) {
            // Dropping the transaction aborts it, exactly like a failed commit.
            drop(txn);
            return Err(LedgerError::Injected);
        }
        txn.commit()
            .map_err(|e| LedgerError::storage("commit", e))?;
        self.head = head;
        self.latest_signed_ms = latest;
        Ok(first)
    }
}

/// After a batch's transaction committed (`Ok(first sequence)`) or failed: reports it, marks
/// its reservations committed or rolls them back, then answers every submitter. Shared by
/// the embedded and the PostgreSQL writer.
pub(crate) fn settle(
    shared: &Shared,
    batch: Vec<Job>,
    result: &Result<u64, LedgerError>,
    took: Duration,
) {
    crate::metrics::global().commit(batch.len(), took, result.is_ok());
    if took >= SLOW_COMMIT {
        // Every request in the batch (and every one queued behind it) waited this long.
        tracing::warn!(
            millis = took.as_millis() as u64,
            entries = batch.len(),
            "slow durable commit"
        );
    }
    {
        let mut state = shared.lock();
        for (i, job) in batch.iter().enumerate() {
            if let Job::Sign(job) = job {
                match result {
                    Ok(first_seq) => {
                        state.mark_committed(&job.undo.entry.txid, first_seq + i as u64)
                    }
                    Err(_) => state.rollback(&job.undo),
                }
            }
        }
    }
    for (i, job) in batch.into_iter().enumerate() {
        // The job's room in the queue is freed here, before its submitter is answered.
        let reply = match job {
            Job::Sign(job) => job.reply,
            Job::Audit { reply, .. } | Job::Policy { reply, .. } | Job::Freeze { reply, .. } => {
                reply
            }
        };
        let answer = match result {
            Ok(first_seq) => Ok(first_seq + i as u64),
            Err(e) => Err(e.clone()),
        };
        // A submitter that stopped waiting is fine: the outcome is already in the state.
        let _ = reply.send(answer);
    }
}

/// Takes one from `fail_next` if any is left: the next commit must fail (tests only).
pub(crate) fn injected_failure(fail_next: &AtomicU32) -> bool {
    fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
