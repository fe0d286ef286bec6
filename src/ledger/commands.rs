//! What `tron-signer audit verify | export` do, given already-parsed arguments (the flags
//! themselves are in `crate::cli::audit`).

use std::io::Write;
use std::path::PathBuf;

use super::error::LedgerError;
use super::Ledger;

/// An audit-chain command on the signer's data directory (which holds ledger.redb).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCommand {
    /// Recompute the audit hash chain; name the first bad sequence number if it is broken.
    Verify { data_dir: PathBuf },
    /// Write every audit record as one JSON object per line to `out`: a file that must not
    /// exist yet, or "-" for standard output.
    Export { data_dir: PathBuf, out: String },
    /// [`AuditCommand::Verify`] on the shared PostgreSQL ledger at `url` (a secret: it may
    /// hold a password, and is never printed).
    VerifyPostgres { url: String },
    /// [`AuditCommand::Export`] from the shared PostgreSQL ledger at `url`.
    ExportPostgres { url: String, out: String },
}

fn output(e: std::io::Error) -> LedgerError {
    LedgerError::Output {
        detail: e.to_string(),
    }
}

/// Runs an audit subcommand; messages go to `out`. A broken chain is an `Err`, so the binary
/// exits non-zero.
pub fn run_audit(cmd: AuditCommand, out: &mut dyn Write) -> Result<(), LedgerError> {
    match cmd {
        AuditCommand::Verify { data_dir } => say_verified(&Ledger::verify_audit(&data_dir)?, out),
        AuditCommand::VerifyPostgres { url } => {
            say_verified(&Ledger::verify_audit_postgres(&url)?, out)
        }
        AuditCommand::Export {
            data_dir,
            out: dest,
        } => export(&mut |w| Ledger::export_audit(&data_dir, w), &dest, out),
        AuditCommand::ExportPostgres { url, out: dest } => {
            export(&mut |w| Ledger::export_audit_postgres(&url, w), &dest, out)
        }
    }
}

fn say_verified(report: &super::VerifyReport, out: &mut dyn Write) -> Result<(), LedgerError> {
    let approvals = match report.with_approvals {
        0 => String::new(),
        n => format!("; {n} with approvals, every signature re-verified"),
    };
    let start = match &report.anchor {
        None => String::new(),
        Some((seq, hash)) => format!(
            " from record {} (records through {seq} were pruned; the last of them \
             hashes to {hash})",
            seq + 1
        ),
    };
    writeln!(
        out,
        "ok: {} records{start}, head {}{approvals}",
        report.records, report.head_hash
    )
    .map_err(output)
}

/// Runs `write` into `dest` ("-" for `out`) the way `audit export` writes.
fn export(
    write: &mut dyn FnMut(&mut dyn Write) -> Result<u64, LedgerError>,
    dest: &str,
    out: &mut dyn Write,
) -> Result<(), LedgerError> {
    if dest == "-" {
        write(out).map(|_| ())
    } else {
        // Never overwrite an earlier export: audit evidence is not silently replaced.
        // Owner-only, like the ledger it comes from.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(dest).map_err(output)?;
        let mut w = std::io::BufWriter::new(file);
        let n = write(&mut w)?;
        let file = w.into_inner().map_err(|e| output(e.into_error()))?;
        file.sync_all().map_err(output)?;
        writeln!(out, "exported {n} records to {dest}").map_err(output)
    }
}
