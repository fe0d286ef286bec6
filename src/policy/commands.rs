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
    /// Which policy administrators (of the signer config `config`) signed `file`, and
    /// whether they meet the quorum: exit 0 met, 1 not met, 2 on error.
    Verify { file: PathBuf, config: PathBuf },
    /// Signs `file` as administrator `name` with `ssh_key` (`ssh-keygen -Y sign`), writing
    /// `FILE.sig.NAME` beside it.
    Sign {
        file: PathBuf,
        ssh_key: PathBuf,
        name: String,
    },
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

fn verify(
    file: &Path,
    config: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let cfg = match crate::config::Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(EXIT_DIFF_ERROR);
        }
    };
    let Some(admins) = cfg.policy_admins else {
        writeln!(
            err,
            "{}: no [policy_admins] section: this signer puts policies in force unsigned",
            config.display()
        )?;
        return Ok(EXIT_DIFF_ERROR);
    };
    let p = match load_file(file) {
        Ok(p) => p,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(EXIT_DIFF_ERROR);
        }
    };
    let bytes = p.text.as_deref().unwrap_or_default().as_bytes();
    let report = match crate::governance::check_files(&admins.0, file, bytes) {
        Ok(r) => r,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(EXIT_DIFF_ERROR);
        }
    };
    writeln!(
        out,
        "{}: sha256 {}, revision {}",
        file.display(),
        p.hash_hex(),
        p.revision
    )?;
    if report.files.is_empty() {
        writeln!(
            out,
            "no signature files ({}.sig.<administrator>)",
            file.display()
        )?;
    }
    for (path, verdict) in &report.files {
        match verdict {
            crate::governance::Verdict::SignedBy(name) => {
                writeln!(out, "{}: signed by {name:?}", path.display())?
            }
            crate::governance::Verdict::Void(why) => {
                writeln!(out, "{}: does not count: {why}", path.display())?
            }
        }
    }
    let met = report.quorum_met();
    writeln!(
        out,
        "quorum: {} of {} needed{} — {}",
        report.signed_by.len(),
        report.threshold,
        if p.revision == 0 {
            "; NO REVISION: the signer refuses a policy without one"
        } else {
            ""
        },
        if met && p.revision > 0 {
            "met"
        } else {
            "NOT met"
        }
    )?;
    Ok(if met && p.revision > 0 {
        0
    } else {
        EXIT_DIFFERENT
    })
}

fn sign(
    file: &Path,
    ssh_key: &Path,
    name: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        writeln!(
            err,
            "--name {name:?}: 1-64 letters, digits, '-', '_' or '.'"
        )?;
        return Ok(EXIT_INVALID);
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            writeln!(err, "{}: cannot read: {e}", file.display())?;
            return Ok(EXIT_INVALID);
        }
    };
    let armored =
        match crate::sshsig::ssh_keygen_sign(ssh_key, crate::governance::NAMESPACE, &bytes) {
            Ok(a) => a,
            Err(e) => {
                writeln!(err, "ssh-keygen: {e}")?;
                return Ok(EXIT_INVALID);
            }
        };
    let mut target = file.as_os_str().to_owned();
    target.push(format!(".sig.{name}"));
    let target = PathBuf::from(target);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .and_then(|mut f| {
            f.write_all(armored.as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => {
            writeln!(
                out,
                "{}: signed sha256 {}",
                target.display(),
                hex::encode(hash_bytes(&bytes))
            )?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "{}: cannot write: {e}", target.display())?;
            Ok(EXIT_INVALID)
        }
    }
}

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
        PolicyCommand::Verify { file, config } => {
            return verify(&file, &config, out, err).unwrap_or(EXIT_DIFF_ERROR)
        }
        PolicyCommand::Sign {
            file,
            ssh_key,
            name,
        } => sign(&file, &ssh_key, &name, out, err),
    };
    // A closed stdout/stderr is not something the user can be told about.
    result.unwrap_or(EXIT_INVALID)
}

fn check(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    match load_file(file) {
        Ok(p) => {
            writeln!(
                out,
                "{}: OK, policy {:?} version {}, revision {}, {} key(s), sha256 {}",
                file.display(),
                p.name,
                p.version,
                p.revision,
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
