//! The database file and the slot every handle reads it through, so that the writer can put
//! a freshly opened database in place of one that failed, and say whether it is usable.
//!
//! redb refuses every operation after an I/O error ("previous I/O error occurred") until the
//! database is closed and opened again; a full disk is such an error. The writer therefore
//! closes the failed database, reports [`StoreHealth::Failed`], and reopens it once the file
//! can be opened again. Reopening runs redb's own recovery, which restores the last
//! committed state: nothing from the failed transaction, everything before it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::watch;

use super::error::LedgerError;
use super::schema::{Head, AUDIT, META, META_AUDIT_HEAD};

/// redb's page cache. Every table the hot path writes is keyed to append (entries and audit
/// by sequence, expirations nearly so), and lookups by txid hit the in-memory state first, so
/// a small cache costs no throughput (BENCHMARKS.md) and keeps the signer's memory bounded;
/// redb's default would let it grow to a gigabyte.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Whether the ledger can record anything; watched by the service's health reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Commits work.
    Healthy,
    /// A write failed (a full disk, an I/O error); every commit is refused until the
    /// database has been reopened. Retried with back-off, on its own and on new requests.
    Failed { detail: String },
    /// The database reopened, but its durable chain head is not the one this process holds,
    /// so memory no longer describes the disk. Nothing more is written; the process must
    /// restart, which rebuilds its state from the disk.
    Fatal { detail: String },
}

impl StoreHealth {
    pub fn is_healthy(&self) -> bool {
        matches!(self, StoreHealth::Healthy)
    }
}

pub(crate) struct Store {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    health: watch::Sender<StoreHealth>,
}

impl Store {
    /// Opens (creating if missing) the database file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, LedgerError> {
        let db = open_db(path)?;
        Ok(Store {
            path: path.to_path_buf(),
            db: RwLock::new(Some(Arc::new(db))),
            health: watch::Sender::new(StoreHealth::Healthy),
        })
    }

    /// The database, unless it failed and has not been reopened yet.
    pub(crate) fn db(&self) -> Result<Arc<Database>, LedgerError> {
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(db) => Ok(Arc::clone(db)),
            None => Err(self.unavailable()),
        }
    }

    /// The error every request gets while the database is closed.
    pub(crate) fn unavailable(&self) -> LedgerError {
        let detail = match &*self.health.borrow() {
            StoreHealth::Failed { detail } | StoreHealth::Fatal { detail } => detail.clone(),
            StoreHealth::Healthy => "the database is being reopened".to_owned(),
        };
        LedgerError::StoreFailed { detail }
    }

    /// Closes the database after a failed write and reports it. The file is released once the
    /// last reader drops its handle (readers hold one only for a lookup).
    pub(crate) fn fail(&self, detail: String) {
        self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        self.health.send_replace(StoreHealth::Failed { detail });
    }

    /// Stops for good: see [`StoreHealth::Fatal`].
    pub(crate) fn fatal(&self, detail: String) {
        self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        self.health.send_replace(StoreHealth::Fatal { detail });
    }

    /// Opens the file again and, if its chain head is `expected`, puts it in use and reports
    /// the store healthy. A head that differs is returned as [`Reopen::HeadMoved`].
    pub(crate) fn reopen(&self, expected: &Head) -> Result<Reopen, LedgerError> {
        let db = open_db(&self.path)?;
        let head = read_head(&db)?;
        if head != *expected {
            return Ok(Reopen::HeadMoved {
                on_disk: head.seq,
                in_memory: expected.seq,
            });
        }
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        self.health.send_replace(StoreHealth::Healthy);
        Ok(Reopen::Resumed)
    }

    pub(crate) fn health(&self) -> watch::Receiver<StoreHealth> {
        self.health.subscribe()
    }

    pub(crate) fn current_health(&self) -> StoreHealth {
        self.health.borrow().clone()
    }
}

/// What [`Store::reopen`] found.
pub(crate) enum Reopen {
    Resumed,
    HeadMoved { on_disk: u64, in_memory: u64 },
}

pub(crate) fn open_err(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Open {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Opens the database file, created readable by its owner only.
pub(crate) fn open_db(path: &Path) -> Result<Database, LedgerError> {
    let file = open_private(path).map_err(|e| open_err(path, e))?;
    let backend = redb::backends::FileBackend::new(file).map_err(|e| open_err(path, e))?;
    Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES)
        .create_with_backend(backend)
        .map_err(|e| open_err(path, e))
}

/// The ledger file, created readable by its owner only: it names callers, destinations and
/// amounts. A file made by an earlier build with wider permissions is narrowed to 0600.
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let file = opts.open(path)?;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("narrowing its mode to 0600: {e}"))
                })?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    opts.open(path)
}

/// The chain head, cross-checked against the last audit row so that a service never appends
/// to a chain whose tail was cut or whose head row was removed.
pub(crate) fn read_head(db: &Database) -> Result<Head, LedgerError> {
    let rtx = db
        .begin_read()
        .map_err(|e| LedgerError::storage("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| LedgerError::storage("open meta", e))?;
    let audit = rtx
        .open_table(AUDIT)
        .map_err(|e| LedgerError::storage("open audit", e))?;
    let head = match meta
        .get(META_AUDIT_HEAD)
        .map_err(|e| LedgerError::storage("read head", e))?
    {
        Some(v) => Head::decode(v.value()).ok_or_else(|| LedgerError::corrupt("audit head"))?,
        None => Head::GENESIS,
    };
    let last = audit
        .last()
        .map_err(|e| LedgerError::storage("read last audit", e))?;
    let last_seq = match &last {
        Some((k, row)) => {
            let key = k.value();
            let stored = row.value();
            let hash_matches = stored.len() >= 32 && stored[stored.len() - 32..] == head.hash;
            if key == head.seq && !hash_matches {
                return Err(LedgerError::HeadMismatch {
                    head_seq: head.seq,
                    last_seq: key,
                });
            }
            key
        }
        None => 0,
    };
    if last_seq != head.seq {
        return Err(LedgerError::HeadMismatch {
            head_seq: head.seq,
            last_seq,
        });
    }
    Ok(head)
}
