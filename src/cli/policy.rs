//! `tron-signer policy check | hash | explain | diff | verify | sign | replay`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::policy::{run_policy, PolicyCommand};

/// Policy file tools for operators and auditors.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCli {
    /// Validate a policy file; lists every problem and exits non-zero if there is any.
    Check {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Print the sha256 (hex) of the exact file bytes, as recorded with every decision.
    Hash {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Print a plain-language summary of what the policy allows.
    Explain {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Which policy administrators (from the signer config) signed FILE and whether they
    /// meet the quorum. Exit 0 when met, 1 when not, 2 on error.
    Verify {
        file: PathBuf,
        /// The signer's configuration file (its [policy_admins] section).
        #[arg(long)]
        config: PathBuf,
    },
    /// Sign FILE as policy administrator NAME with your SSH key (ssh-keygen -Y sign -n
    /// tron-signer-policy), writing FILE.sig.NAME beside it.
    Sign {
        file: PathBuf,
        /// Your SSH key for ssh-keygen -f (a private key, or a public key held by ssh-agent).
        #[arg(long)]
        ssh_key: PathBuf,
        /// Your administrator name, as the signer config lists it.
        #[arg(long)]
        name: String,
    },
    /// Judge the signed history in a ledger again under FILE, a candidate policy: every Sign
    /// decision that would change (allowed -> refused, refused -> allowed) and a summary.
    /// Reads the ledger read-only (beside a running signer). Exit 0 when nothing would
    /// change, 1 when something would, 2 on error.
    Replay {
        file: PathBuf,
        /// The signer's data directory (its ledger).
        #[arg(
            long,
            required_unless_present = "postgres_url_env",
            conflicts_with = "postgres_url_env"
        )]
        data_dir: Option<PathBuf>,
        /// Replay the shared PostgreSQL ledger instead: the environment variable holding its
        /// connection string.
        #[arg(long)]
        postgres_url_env: Option<String>,
        /// One JSON document, for tools.
        #[arg(long)]
        json: bool,
    },
    /// What changed from OLD to NEW: keys, destinations, tokens, callers and approvers added
    /// or removed, limits raised or lowered. Exit 0 when equal, 1 when different, 2 on error.
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// One JSON document, for tools.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `policy` command; returns the exit status.
pub fn run(cli: PolicyCli, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> i32 {
    let cmd = match cli {
        PolicyCli::Replay {
            file,
            data_dir,
            postgres_url_env,
            json,
        } => {
            let source = match (data_dir, postgres_url_env) {
                (Some(dir), _) => crate::ledger::Source::Dir(dir),
                (None, Some(var)) => match super::process::url_from_env(&var) {
                    Ok(url) => crate::ledger::Source::Postgres(url),
                    Err((code, message)) => {
                        let _ = writeln!(err, "error [{code}]: {message}");
                        return REPLAY_ERROR;
                    }
                },
                // clap requires one of them.
                (None, None) => return REPLAY_ERROR,
            };
            return replay(&file, &source, json, out, err);
        }
        PolicyCli::Check { file } => PolicyCommand::Check { file },
        PolicyCli::Hash { file } => PolicyCommand::Hash { file },
        PolicyCli::Explain { file } => PolicyCommand::Explain { file },
        PolicyCli::Diff { old, new, json } => PolicyCommand::Diff { old, new, json },
        PolicyCli::Verify { file, config } => PolicyCommand::Verify { file, config },
        PolicyCli::Sign {
            file,
            ssh_key,
            name,
        } => PolicyCommand::Sign {
            file,
            ssh_key,
            name,
        },
    };
    run_policy(cmd, out, err)
}

/// Exit status of `policy replay` when something would change, and on error.
const REPLAY_CHANGED: i32 = 1;
const REPLAY_ERROR: i32 = 2;

fn replay(
    file: &std::path::Path,
    source: &crate::ledger::Source,
    json: bool,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> i32 {
    let candidate = match crate::policy::load_file(file) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error [policy_invalid]: {e}");
            return REPLAY_ERROR;
        }
    };
    let report = match crate::replay::replay_from(&candidate, source) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error [{}]: {e}", e.code());
            return REPLAY_ERROR;
        }
    };
    let written = if json {
        serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|t| writeln!(out, "{t}"))
    } else {
        out.write_all(report.render().as_bytes())
    };
    if written.is_err() {
        return REPLAY_ERROR;
    }
    if report.changes.is_empty() {
        0
    } else {
        REPLAY_CHANGED
    }
}
