//! What `tron-signer policy check | hash | explain` do, given already-parsed arguments
//! (the flags themselves are in `crate::cli::policy`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{hash_bytes, load_file};

/// Policy file tools for operators and auditors; each names the policy TOML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCommand {
    /// Validate; list every problem and exit non-zero if there is any.
    Check { file: PathBuf },
    /// Print the sha256 (hex) of the exact file bytes, as recorded with every decision.
    Hash { file: PathBuf },
    /// Print a plain-language summary of what the policy allows.
    Explain { file: PathBuf },
}

/// Exit code for a refused file.
const EXIT_INVALID: i32 = 1;

/// Runs one policy subcommand; returns the process exit code.
pub fn run_policy(cmd: PolicyCommand, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match cmd {
        PolicyCommand::Check { file } => check(&file, out, err),
        PolicyCommand::Hash { file } => hash(&file, out, err),
        PolicyCommand::Explain { file } => explain(&file, out, err),
    };
    // A closed stdout/stderr is not something the user can be told about.
    result.unwrap_or(EXIT_INVALID)
}

fn check(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    match load_file(file) {
        Ok(p) => {
            writeln!(
                out,
                "{}: OK, policy {:?} version {}, {} key(s), sha256 {}",
                file.display(),
                p.name,
                p.version,
                p.policy.keys.len(),
                p.hash_hex()
            )?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "{e}")?;
            writeln!(
                err,
                "{}: {} problem(s); the policy was not accepted",
                file.display(),
                e.problems.len()
            )?;
            Ok(EXIT_INVALID)
        }
    }
}

/// Hashes the bytes without validating them, so a broken file can still be identified.
fn hash(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    match std::fs::read(file) {
        Ok(bytes) => {
            writeln!(out, "{}", hex::encode(hash_bytes(&bytes)))?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "{}: cannot read: {e}", file.display())?;
            Ok(EXIT_INVALID)
        }
    }
}

fn explain(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    match load_file(file) {
        Ok(p) => {
            write!(out, "{}", p.explain())?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "{e}")?;
            Ok(EXIT_INVALID)
        }
    }
}
