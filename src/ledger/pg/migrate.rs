//! Versioned schema migrations of the PostgreSQL ledger (`migrations/postgres/*.sql`).
//!
//! Each file is applied once, in order, in its own transaction with its version recorded, all
//! under one advisory lock so that instances starting together apply nothing twice. A
//! database at a version this build does not know is refused: an older signer must not
//! write to a layout it does not understand.

use postgres::Client;

use super::super::error::LedgerError;
use super::pg_detail;

/// Every migration this build knows, in order; their versions are 1, 2, ...
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/postgres/0001_ledger.sql")];

/// The advisory lock migrations run under (an arbitrary constant of ours).
const MIGRATION_LOCK: i64 = 0x7472_6f6e_5f6d_6967;

fn db(during: &'static str) -> impl Fn(postgres::Error) -> LedgerError {
    move |e| LedgerError::Open {
        path: "[ledger] postgres".into(),
        detail: format!("{during}: {}", pg_detail(&e)),
    }
}

/// Brings the schema up to this build's version. Returns the version it is at.
pub(crate) fn apply(client: &mut Client) -> Result<usize, LedgerError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db("take the migration lock"))?;
    let result = apply_locked(client);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(db("release the migration lock"));
    let version = result?;
    unlocked?;
    Ok(version)
}

fn apply_locked(client: &mut Client) -> Result<usize, LedgerError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ledger_migrations (\
               version integer PRIMARY KEY, \
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(db("create the migrations table"))?;
    let at: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM ledger_migrations",
            &[],
        )
        .map_err(db("read the schema version"))?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if at > known {
        return Err(LedgerError::Open {
            path: "[ledger] postgres".into(),
            detail: format!(
                "the database schema is at version {at}, this build knows up to {known}: \
                 run a signer at least as new as the one that migrated it"
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        let version = i as i32 + 1;
        let mut tx = client.transaction().map_err(db("begin a migration"))?;
        tx.batch_execute(sql).map_err(db("apply a migration"))?;
        tx.execute(
            "INSERT INTO ledger_migrations (version) VALUES ($1)",
            &[&version],
        )
        .map_err(db("record a migration"))?;
        tx.commit().map_err(db("commit a migration"))?;
        tracing::info!(version, "PostgreSQL ledger schema migrated");
    }
    Ok(known as usize)
}
