//! Who may put a policy in force: a quorum of policy administrators, each signing the exact
//! policy file bytes with their SSH key (`ssh-keygen -Y sign -n tron-signer-policy`), in
//! detached files beside it: `policy.toml.sig.<name>`. The signer config names the
//! administrators and the threshold; when it does, no policy goes into force (at start-up or
//! on SIGHUP) without the quorum, and nothing in a policy file can turn that off.
//!
//! This module only judges signatures; whether a validly signed policy may replace the one in
//! force (no rollback) is the ledger's record to check.

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;

use crate::sshsig::{self, SshSigError, PERSONAL_KEY_TYPES};

/// The SSHSIG namespace of policy signatures: an approval or a git commit never counts.
pub const NAMESPACE: &str = "tron-signer-policy";

/// The largest signature file read (an armored SSHSIG is under 1 KiB).
const MAX_SIGNATURE_FILE: u64 = 16 * 1024;

/// One administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub name: String,
    pub key: KeyData,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

/// The administrators and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSet {
    pub admins: Vec<Admin>,
    pub threshold: usize,
}

/// Why an administrator set is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminSetError {
    #[error("administrator {index}: the name must be 1-64 letters, digits, '-', '_' or '.' (it names the signature file)")]
    BadName { index: usize },
    #[error("administrator {name:?}: not an OpenSSH public key line (ssh-ed25519 AAAA… as in a .pub file)")]
    BadKey { name: String },
    #[error("administrator {name:?}: key type {found}; administrators sign with one of {}", PERSONAL_KEY_TYPES.join(", "))]
    KeyType { name: String, found: String },
    #[error("administrator {name:?}: the key cannot verify any signature: {why}")]
    Unusable { name: String, why: String },
    #[error("administrators {first:?} and {second:?} have the same {what}")]
    Duplicate {
        first: String,
        second: String,
        what: &'static str,
    },
    #[error("threshold {threshold} with {admins} administrator(s): it must be 1 to {admins}")]
    Threshold { threshold: usize, admins: usize },
}

impl AdminSet {
    /// Builds the set from (name, key line) pairs.
    pub fn new(entries: &[(String, String)], threshold: usize) -> Result<AdminSet, AdminSetError> {
        let mut admins: Vec<Admin> = Vec::with_capacity(entries.len());
        for (i, (name, line)) in entries.iter().enumerate() {
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(AdminSetError::BadName { index: i + 1 });
            }
            let key = ssh_key::PublicKey::from_openssh(line.trim())
                .map_err(|_| AdminSetError::BadKey { name: name.clone() })?;
            let found = key.algorithm().to_string();
            if !PERSONAL_KEY_TYPES.contains(&found.as_str()) {
                return Err(AdminSetError::KeyType {
                    name: name.clone(),
                    found,
                });
            }
            let key = key.key_data().clone();
            if let Err(why) = sshsig::PreparedKey::new(key.clone()) {
                return Err(AdminSetError::Unusable {
                    name: name.clone(),
                    why,
                });
            }
            let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
            for other in &admins {
                let what = if other.name == *name {
                    "name"
                } else if other.fingerprint == fingerprint {
                    "key"
                } else {
                    continue;
                };
                return Err(AdminSetError::Duplicate {
                    first: other.name.clone(),
                    second: name.clone(),
                    what,
                });
            }
            admins.push(Admin {
                name: name.clone(),
                key,
                fingerprint,
            });
        }
        if threshold == 0 || threshold > admins.len() {
            return Err(AdminSetError::Threshold {
                threshold,
                admins: admins.len(),
            });
        }
        Ok(AdminSet { admins, threshold })
    }

    /// The administrator whose key has this `SHA256:…` fingerprint.
    pub fn by_fingerprint(&self, fingerprint: &str) -> Option<&Admin> {
        self.admins.iter().find(|a| a.fingerprint == fingerprint)
    }
}

/// What one signature file came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid signature by this administrator over the file's bytes.
    SignedBy(String),
    /// It does not count, and why.
    Void(String),
}

/// The signatures found for one policy file, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Each `FILE.sig.*` file, in name order, with what it came to.
    pub files: Vec<(PathBuf, Verdict)>,
    /// The administrators who signed, in file order, each once.
    pub signed_by: Vec<String>,
    pub threshold: usize,
}

impl Report {
    pub fn quorum_met(&self) -> bool {
        self.signed_by.len() >= self.threshold
    }

    /// One line per signature file, for refusals and `policy verify`.
    pub fn describe(&self) -> String {
        if self.files.is_empty() {
            return "no signature files (POLICY.sig.<administrator>) beside it".into();
        }
        self.files
            .iter()
            .map(|(path, v)| {
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                match v {
                    Verdict::SignedBy(admin) => format!("{name}: signed by {admin:?}"),
                    Verdict::Void(why) => format!("{name}: does not count: {why}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Why a policy is not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    #[error("policy {hash} is not signed by the policy administrators ({}); it needs {} of them", report.describe(), report.threshold)]
    Unsigned { hash: String, report: Report },
    #[error("policy {hash} is signed by {} of the {} administrators it needs ({})", report.signed_by.len(), report.threshold, report.describe())]
    QuorumNotMet { hash: String, report: Report },
    #[error("cannot list the signature files beside {path}: {detail}")]
    Unreadable { path: String, detail: String },
}

impl GovernanceError {
    /// Stable code (the reload refusal's and the start-up exit's).
    pub fn code(&self) -> &'static str {
        match self {
            GovernanceError::Unsigned { .. } => "policy_unsigned",
            GovernanceError::QuorumNotMet { .. } => "policy_quorum_not_met",
            GovernanceError::Unreadable { .. } => "policy_signatures_unreadable",
        }
    }
}

/// The signature files of `policy`: `<file name>.sig.<anything>` in its directory, in name
/// order.
pub fn signature_files(policy: &Path) -> Result<Vec<PathBuf>, GovernanceError> {
    let unreadable = |detail: String| GovernanceError::Unreadable {
        path: policy.display().to_string(),
        detail,
    };
    let dir = match policy.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(base) = policy.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(unreadable("the policy path names no file".into()));
    };
    let prefix = format!("{base}.sig.");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| unreadable(e.to_string()))? {
        let entry = entry.map_err(|e| unreadable(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.len() > prefix.len() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Judges the signature files of `policy` over `bytes` (the exact file bytes).
pub fn check_files(set: &AdminSet, policy: &Path, bytes: &[u8]) -> Result<Report, GovernanceError> {
    let mut signatures = Vec::new();
    for path in signature_files(policy)? {
        let text = read_bounded(&path);
        signatures.push((path, text));
    }
    Ok(judge(set, bytes, &signatures))
}

/// Judges `signatures` (each a file and its text, or why it could not be read) over `bytes`.
pub fn judge(
    set: &AdminSet,
    bytes: &[u8],
    signatures: &[(PathBuf, Result<String, String>)],
) -> Report {
    let mut files = Vec::with_capacity(signatures.len());
    let mut signed_by: Vec<String> = Vec::new();
    for (path, text) in signatures {
        let verdict = match text {
            Err(why) => Verdict::Void(why.clone()),
            Ok(text) => match sshsig::verify(text, NAMESPACE, bytes) {
                Err(SshSigError::Invalid { key }) => Verdict::Void(format!(
                    "made by {key} over other bytes than this file's, or altered"
                )),
                Err(e) => Verdict::Void(e.to_string()),
                Ok(v) => match set.by_fingerprint(&v.fingerprint()) {
                    None => Verdict::Void(format!(
                        "signed by {}, which is no policy administrator",
                        v.fingerprint()
                    )),
                    Some(admin) if signed_by.contains(&admin.name) => Verdict::Void(format!(
                        "a second signature by {:?}; each administrator counts once",
                        admin.name
                    )),
                    Some(admin) => {
                        signed_by.push(admin.name.clone());
                        Verdict::SignedBy(admin.name.clone())
                    }
                },
            },
        };
        files.push((path.clone(), verdict));
    }
    Report {
        files,
        signed_by,
        threshold: set.threshold,
    }
}

/// The report when it meets the quorum; the refusal otherwise (`policy_unsigned` when no
/// administrator signed at all).
pub fn require_quorum(report: Report, hash: &str) -> Result<Report, GovernanceError> {
    if report.quorum_met() {
        Ok(report)
    } else if report.signed_by.is_empty() {
        Err(GovernanceError::Unsigned {
            hash: hash.to_owned(),
            report,
        })
    } else {
        Err(GovernanceError::QuorumNotMet {
            hash: hash.to_owned(),
            report,
        })
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    f.take(MAX_SIGNATURE_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_SIGNATURE_FILE {
        return Err(format!("larger than {MAX_SIGNATURE_FILE} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn line(seed: u8) -> String {
        key(seed).public_key().to_openssh().unwrap()
    }

    fn sig(seed: u8, ns: &str, bytes: &[u8]) -> Result<String, String> {
        Ok(key(seed)
            .sign(ns, ssh_key::HashAlg::Sha512, bytes)
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap())
    }

    fn set() -> AdminSet {
        AdminSet::new(
            &[
                ("alice".into(), line(1)),
                ("bob".into(), line(2)),
                ("carol".into(), line(3)),
            ],
            2,
        )
        .unwrap()
    }

    #[test]
    fn a_quorum_of_distinct_administrators_over_the_exact_bytes() {
        let bytes = b"version = 1\n";
        let f = |n: &str| PathBuf::from(format!("p.toml.sig.{n}"));
        let report = judge(
            &set(),
            bytes,
            &[
                (f("a"), sig(1, NAMESPACE, bytes)),
                (f("a2"), sig(1, NAMESPACE, bytes)),
                (f("d"), sig(4, NAMESPACE, bytes)),
                (f("b-other"), sig(2, NAMESPACE, b"version = 2\n")),
                (f("b-git"), sig(2, "git", bytes)),
            ],
        );
        assert_eq!(report.signed_by, ["alice"]);
        assert!(!report.quorum_met());
        let said = report.describe();
        for part in [
            "second signature by \"alice\"",
            "no policy administrator",
            "over other bytes",
            "namespace",
        ] {
            assert!(said.contains(part), "{part:?} in {said}");
        }
        let err = require_quorum(report, "h").unwrap_err();
        assert_eq!(err.code(), "policy_quorum_not_met");

        let met = judge(
            &set(),
            bytes,
            &[
                (f("a"), sig(1, NAMESPACE, bytes)),
                (f("c"), sig(3, NAMESPACE, bytes)),
            ],
        );
        assert_eq!(met.signed_by, ["alice", "carol"]);
        assert!(require_quorum(met, "h").is_ok());
        let none = judge(&set(), bytes, &[]);
        assert_eq!(
            require_quorum(none, "h").unwrap_err().code(),
            "policy_unsigned"
        );
    }

    #[test]
    fn unusable_administrator_sets_are_refused() {
        let dup = AdminSet::new(&[("a".into(), line(1)), ("b".into(), line(1))], 1);
        assert!(matches!(
            dup,
            Err(AdminSetError::Duplicate { what: "key", .. })
        ));
        let threshold = AdminSet::new(&[("a".into(), line(1))], 2);
        assert!(matches!(threshold, Err(AdminSetError::Threshold { .. })));
        let name = AdminSet::new(&[("a/b".into(), line(1))], 1);
        assert!(matches!(name, Err(AdminSetError::BadName { .. })));
        let bad = AdminSet::new(&[("a".into(), "ssh-ed25519 AAAA".into())], 1);
        assert!(matches!(bad, Err(AdminSetError::BadKey { .. })));
        let off = crate::test_util::off_curve_ed25519_line();
        let off = AdminSet::new(&[("a".into(), off)], 1).unwrap_err();
        assert!(matches!(off, AdminSetError::Unusable { .. }), "{off}");
        assert!(
            off.to_string().contains("not a point on the curve"),
            "{off}"
        );
    }
}
