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
    /// What changed from `old` to `new`; exit 0 when they mean the same, 1 when they
    /// differ, 2 when either cannot be read.
    Diff {
        old: PathBuf,
        new: PathBuf,
        json: bool,
    },
}

/// Exit code for a refused file.
const EXIT_INVALID: i32 = 1;
/// `policy diff`: the files differ.
const EXIT_DIFFERENT: i32 = 1;
/// `policy diff`: a file could not be read or is not a valid policy.
const EXIT_DIFF_ERROR: i32 = 2;

fn diff(
    old: &Path,
    new: &Path,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let (a, b) = match (load_file(old), load_file(new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            writeln!(err, "{e}")?;
            return Ok(EXIT_DIFF_ERROR);
        }
    };
    let changes = super::diff::diff(&a.policy, &b.policy);
    if json {
        let doc = serde_json::json!({
            "equal": changes.is_empty(),
            "old": { "file": old.display().to_string(), "sha256": a.hash_hex(), "name": a.name },
            "new": { "file": new.display().to_string(), "sha256": b.hash_hex(), "name": b.name },
            "changes": changes,
        });
        writeln!(out, "{doc:#}")?;
    } else if changes.is_empty() {
        writeln!(
            out,
            "no differences in what the policies allow ({} → {})",
            a.hash_hex(),
            b.hash_hex()
        )?;
    } else {
        writeln!(
            out,
            "{} → {}: {} change(s)",
            a.hash_hex(),
            b.hash_hex(),
            changes.len()
        )?;
        for c in &changes {
            writeln!(out, "- {}", c.text)?;
        }
    }
    Ok(if changes.is_empty() {
        0
    } else {
        EXIT_DIFFERENT
    })
}

/// Runs one policy subcommand; returns the process exit code.
pub fn run_policy(cmd: PolicyCommand, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match cmd {
        PolicyCommand::Check { file } => check(&file, out, err),
        PolicyCommand::Hash { file } => hash(&file, out, err),
        PolicyCommand::Explain { file } => explain(&file, out, err),
        PolicyCommand::Diff { old, new, json } => {
            return diff(&old, &new, json, out, err).unwrap_or(EXIT_DIFF_ERROR)
        }
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
