//! `tron-signer audit verify | export | bundle | prune`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::audit_bundle::{self, Admins, BundleError, Report};
use crate::ledger::{run_audit, AuditCommand, LedgerError};
use crate::retention::{self, RetentionError};

use super::process::report;

/// `audit bundle` / `audit verify --bundle`: everything verified.
const EXIT_OK: u8 = 0;
/// The evidence does not verify (a record, policy or signature; the first is named).
const EXIT_FAILED: u8 = 1;
/// Usage or read errors: nothing was verified.
const EXIT_ERROR: u8 = 2;

/// The audit hash chain, read from the signer's data directory while it runs.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCli {
    /// Recompute the audit hash chain; name the first bad sequence number if it is broken.
    /// With --bundle, check an evidence bundle instead, offline: exit 0 when everything
    /// verifies, 1 when something does not, 2 when it cannot be read.
    Verify {
        /// The signer's data directory (holds ledger.redb).
        #[arg(
            long,
            required_unless_present_any = ["bundle", "postgres_url_env"],
            conflicts_with_all = ["bundle", "postgres_url_env"]
        )]
        data_dir: Option<PathBuf>,
        /// Verify the shared PostgreSQL ledger instead: the environment variable holding its
        /// connection string (which may hold a password, so it is never an argument).
        #[arg(long, conflicts_with = "bundle")]
        postgres_url_env: Option<String>,
        /// An evidence bundle written by `audit bundle`.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The signer's configuration file: its [policy_admins] are the administrators the
        /// bundle's policy signatures are checked against. Without it they are checked
        /// against the keys the bundle itself names.
        #[arg(long, requires = "bundle", conflicts_with = "data_dir")]
        config: Option<PathBuf>,
    },
    /// Write every audit record as one JSON object per line.
    Export {
        #[arg(
            long,
            required_unless_present = "postgres_url_env",
            conflicts_with = "postgres_url_env"
        )]
        data_dir: Option<PathBuf>,
        /// Export from the shared PostgreSQL ledger: the environment variable holding its
        /// connection string.
        #[arg(long)]
        postgres_url_env: Option<String>,
        /// Output file (must not exist yet), or "-" for standard output.
        #[arg(long, default_value = "-")]
        out: String,
    },
    /// Write records FROM to TO of the audit chain, every policy they name and its
    /// administrators' signatures into one evidence file, for `audit verify --bundle` on a
    /// machine with no access to the signer. Exit 1 when the stretch does not verify, 2 on
    /// usage or read errors.
    Bundle {
        #[arg(long)]
        data_dir: PathBuf,
        /// The first audit sequence number (1 is the first record).
        #[arg(long)]
        from: u64,
        /// The last audit sequence number, at most the chain's head.
        #[arg(long)]
        to: u64,
        /// The bundle file; it must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
    /// Remove records up to THROUGH from a stopped signer's ledger, once the --archive
    /// bundles (written by `audit bundle`) hold them exactly as stored and no window, txid or
    /// payout-id check can need them: the file stays bounded and both the archive and the
    /// records left still verify. Exit 1 when refused (nothing removed), 2 on read errors.
    Prune {
        #[arg(long)]
        data_dir: PathBuf,
        /// The last audit sequence number to remove.
        #[arg(long)]
        through: u64,
        /// An evidence bundle holding records to remove; repeat for several. Together they
        /// must hold every record from the ledger's first up to THROUGH.
        #[arg(long, required = true)]
        archive: Vec<PathBuf>,
    },
}

/// Runs an audit subcommand: its report on standard output, a failure as `error [code]: …`
/// on standard error.
pub fn run(cli: AuditCli) -> ExitCode {
    let stdout = &mut std::io::stdout().lock();
    let cmd = match cli {
        AuditCli::Verify {
            bundle: Some(bundle),
            config,
            ..
        } => return bundle_exit(verify_bundle(&bundle, config.as_deref(), stdout)),
        AuditCli::Bundle {
            data_dir,
            from,
            to,
            out,
        } => return bundle_exit(write_bundle(&data_dir, from, to, &out, stdout)),
        AuditCli::Prune {
            data_dir,
            through,
            archive,
        } => return prune(&data_dir, through, &archive, stdout),
        AuditCli::Verify {
            data_dir: Some(data_dir),
            ..
        } => AuditCommand::Verify { data_dir },
        AuditCli::Verify {
            postgres_url_env: Some(var),
            ..
        } => match url_from(&var) {
            Ok(url) => AuditCommand::VerifyPostgres { url },
            Err(code) => return code,
        },
        // clap requires one of them.
        AuditCli::Verify { .. } => return ExitCode::from(EXIT_ERROR),
        AuditCli::Export {
            data_dir: Some(data_dir),
            out,
            ..
        } => AuditCommand::Export { data_dir, out },
        AuditCli::Export {
            postgres_url_env: Some(var),
            out,
            ..
        } => match url_from(&var) {
            Ok(url) => AuditCommand::ExportPostgres { url, out },
            Err(code) => return code,
        },
        AuditCli::Export { .. } => return ExitCode::from(EXIT_ERROR),
    };
    report(run_audit(cmd, stdout).map_err(|e| (e.code(), e.to_string())))
}

/// The connection string in environment variable `var`, or the exit after saying why not.
fn url_from(var: &str) -> Result<String, ExitCode> {
    super::process::url_from_env(var).map_err(|(code, message)| {
        eprintln!("error [{code}]: {message}");
        ExitCode::from(EXIT_ERROR)
    })
}

fn prune(data_dir: &Path, through: u64, archives: &[PathBuf], stdout: &mut dyn Write) -> ExitCode {
    match retention::prune(data_dir, through, archives) {
        Ok(p) => {
            for (path, r) in &p.archives {
                let _ = writeln!(stdout, "archive {}: {}", path.display(), summary(r));
            }
            let r = &p.removed;
            let _ = writeln!(
                stdout,
                "pruned records {} to {} ({} signature entries); the ledger now starts after \
                 record {} (hash {}); file {} -> {} bytes",
                r.from,
                r.through,
                r.entries,
                r.through,
                r.anchor_hash,
                r.bytes_before,
                r.bytes_after
            );
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            let refused = matches!(&e, RetentionError::Ledger(LedgerError::PruneRefused { .. }))
                || matches!(&e, RetentionError::Archive { source, .. } if source.is_evidence_failure());
            ExitCode::from(if refused { EXIT_FAILED } else { EXIT_ERROR })
        }
    }
}

fn bundle_exit(result: Result<(), BundleError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::from(if e.is_evidence_failure() {
                EXIT_FAILED
            } else {
                EXIT_ERROR
            })
        }
    }
}

fn output(e: std::io::Error) -> BundleError {
    BundleError::Write {
        path: "standard output".into(),
        detail: e.to_string(),
    }
}

fn write_bundle(
    data_dir: &Path,
    from: u64,
    to: u64,
    out: &Path,
    stdout: &mut dyn Write,
) -> Result<(), BundleError> {
    audit_bundle::check_new(out)?;
    let bundle = audit_bundle::make(data_dir, from, to)?;
    let size = audit_bundle::save(&bundle, out)?;
    let signatures: usize = bundle.policies.iter().map(|p| p.signatures.len()).sum();
    writeln!(
        stdout,
        "wrote records {from} to {to} ({} records), {} policies and {signatures} policy \
         signatures to {} ({size} bytes)",
        to - from + 1,
        bundle.policies.len(),
        out.display()
    )
    .map_err(output)
}

fn verify_bundle(
    path: &Path,
    config: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<(), BundleError> {
    let admins = config.map(audit_bundle::admins_from_config).transpose()?;
    let bundle = audit_bundle::read(path)?;
    let trust = admins.as_ref().map_or(Admins::FromBundle, Admins::Trusted);
    let r = audit_bundle::verify(&bundle, trust)?;
    writeln!(stdout, "{}", summary(&r)).map_err(output)?;
    writeln!(stdout, "{}", admins_line(&r, config)).map_err(output)
}

/// The summary line: records, policies, approvals, signatures checked.
fn summary(r: &Report) -> String {
    format!(
        "ok: records {} to {} ({} records, anchor {}, last hash {}); {} policies, each text \
         matching its hash; {} approvals in {} records re-verified; {} policy signatures \
         re-verified",
        r.from,
        r.to,
        r.records(),
        r.anchor,
        r.last_hash,
        r.policies,
        r.approvals,
        r.records_with_approvals,
        r.policy_signatures
    )
}

/// Where the administrators' keys came from: a trusted config, or the bundle itself.
fn admins_line(r: &Report, config: Option<&Path>) -> String {
    if let Some(config) = config {
        return match r.judged_by_policy_admins {
            0 => format!(
                "policy administrators: from {}; every policy carries a quorum of them",
                config.display()
            ),
            n => format!(
                "policy administrators: from {}, and for {n} policies those the policy before \
                 it names in [policy_admins]; every policy carries a quorum of the \
                 administrators current before it",
                config.display()
            ),
        };
    }
    let keys: Vec<String> = r
        .keys
        .iter()
        .map(|(name, fp)| format!("{name:?} {fp}"))
        .collect();
    let unsigned = match r.unsigned_policies {
        0 => String::new(),
        n => format!("; {n} policies carry no signature"),
    };
    format!(
        "policy administrators: the keys came from the bundle itself ({}), not from a trust \
         root: give --config SIGNER_CONFIG to check them against the administrators{unsigned}",
        if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(", ")
        }
    )
}
