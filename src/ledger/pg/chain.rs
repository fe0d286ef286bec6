//! `audit verify` and `audit export` against the PostgreSQL ledger: the same checks as on
//! the embedded one (`ledger/verify.rs`), over one consistent snapshot of the chain, read
//! beside running signers without blocking them.

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, NoTls};

use super::super::audit::open_row;
use super::super::error::LedgerError;
use super::super::schema::Head;
use super::super::verify::{check_next, conclude, VerifyReport};
use super::super::ChainedRecord;
use super::pg_detail;

fn db(during: &'static str) -> impl Fn(postgres::Error) -> LedgerError {
    move |e| LedgerError::storage(during, pg_detail(&e))
}

fn connect(url: &str) -> Result<Client, LedgerError> {
    let cfg = postgres::Config::from(super::config(url)?);
    cfg.connect(NoTls).map_err(|e| LedgerError::Open {
        path: "[ledger] postgres".into(),
        detail: format!("cannot connect to PostgreSQL: {}", pg_detail(&e)),
    })
}

/// What the reading thread hands over: the head, then the rows in order, then its end.
enum Read {
    Head(Option<Head>),
    Row(u64, Vec<u8>),
    Failed(LedgerError),
}

/// Called with each stored row and its sequence; `Ok(false)` stops the walk.
type EachRow<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, LedgerError> + 'a;

/// Walks the records in sequence order within one snapshot, handing each stored row to
/// `each` until it returns `false`; returns the head recorded in the same snapshot.
///
/// The blocking driver runs a runtime of its own, which cannot start inside another, so the
/// database is read on a thread of its own and the rows come over a bounded channel: this
/// may be called from async code too, and holds at most a few rows in memory.
fn walk(url: &str, each: &mut EachRow<'_>) -> Result<Option<Head>, LedgerError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Read>(64);
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = read(url, &tx) {
                let _ = tx.send(Read::Failed(e));
            }
        });
        let mut head = None;
        for msg in rx.iter() {
            match msg {
                Read::Head(h) => head = Some(h),
                Read::Row(seq, row) => {
                    if !each(seq, &row)? {
                        break;
                    }
                }
                Read::Failed(e) => return Err(e),
            }
        }
        // Dropping the receiver stops the reader at its next row.
        drop(rx);
        head.ok_or(LedgerError::WriterStopped)
    })
}

/// The reading thread: one read-only snapshot, the head first.
fn read(url: &str, tx: &std::sync::mpsc::SyncSender<Read>) -> Result<(), LedgerError> {
    let mut client = connect(url)?;
    let mut txn = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(db("begin read"))?;
    let migrated: bool = txn
        .query_one("SELECT to_regclass('audit_head') IS NOT NULL", &[])
        .map_err(db("look for the ledger"))?
        .get(0);
    if !migrated {
        return Err(LedgerError::Open {
            path: "[ledger] postgres".into(),
            detail: "no ledger database here: no signer has started on this database yet".into(),
        });
    }
    let head = txn
        .query_opt("SELECT seq, hash FROM audit_head WHERE id", &[])
        .map_err(db("read head"))?;
    let head = match head {
        None => None,
        Some(r) => {
            let seq = u64::try_from(r.get::<_, i64>(0)).ok();
            let hash = <[u8; 32]>::try_from(r.get::<_, &[u8]>(1)).ok();
            match (seq, hash) {
                (Some(seq), Some(hash)) => Some(Head { seq, hash }),
                _ => return Err(LedgerError::AuditHeadInvalid { seq: 0 }),
            }
        }
    };
    if tx.send(Read::Head(head)).is_err() {
        return Ok(());
    }
    let params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
    let mut rows = txn
        .query_raw("SELECT seq, row FROM audit ORDER BY seq", params)
        .map_err(db("read audit"))?;
    while let Some(r) = rows.next().map_err(db("read audit"))? {
        let seq = u64::try_from(r.get::<_, i64>(0))
            .map_err(|_| LedgerError::corrupt("negative audit sequence"))?;
        if tx.send(Read::Row(seq, r.get::<_, Vec<u8>>(1))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The chain check of `audit verify`, on the shared database at `url`.
pub(crate) fn verify(url: &str) -> Result<VerifyReport, LedgerError> {
    let mut prev = Head::GENESIS;
    let mut approvals = 0u64;
    let head = walk(url, &mut |seq, row| {
        let checked = check_next(prev, seq, row)?;
        if checked.approvals.is_some() {
            approvals += 1;
        }
        prev = checked.head;
        Ok(true)
    })?;
    conclude(Head::GENESIS, prev, Some(head), approvals)
}

/// Every record, in order, to `each` (stops when it returns `false`); returns how many.
pub(crate) fn each_record(
    url: &str,
    each: &mut dyn FnMut(ChainedRecord) -> bool,
) -> Result<u64, LedgerError> {
    let mut n = 0u64;
    walk(url, &mut |seq, row| {
        let opened = open_row(seq, row)?;
        n += 1;
        Ok(each(opened.record))
    })?;
    Ok(n)
}
