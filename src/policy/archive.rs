//! Every policy put in force, kept by hash under the data directory
//! (`policies/<sha256 hex>.toml`, the exact bytes that were hashed).
//!
//! Two reasons: an auditor can resolve the policy hash of any audit record to the text that
//! decided it, and the signer need not hold a large policy's text in memory (a 100,000-entry
//! allowlist is ~21 MiB of TOML) just to answer `GetPolicy`. Reads check the hash, so an
//! edited archive file is reported, never served.
//!
//! Beside each text, the administrators' signatures that put it in force:
//! `policies/<sha256 hex>.toml.sig.<administrator>`, named like the files beside a policy, so
//! `ssh-keygen -Y verify` and `tron-signer policy verify` read the archive as they read the
//! originals. They are evidence for auditors (`audit bundle`), not a second check: the
//! signer judged them before the policy went into force.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::durable_file;

const DIR: &str = "policies";

/// The largest signature file read (an armored SSHSIG is under 1 KiB; `crate::governance`
/// reads no more beside a policy either).
pub const MAX_SIGNATURE_BYTES: u64 = 16 * 1024;

/// Why an archived policy could not be stored or served.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archived policy {path} is missing")]
    Missing { path: String },
    #[error("archived policy {path} does not match its hash (edited or damaged)")]
    Tampered { path: String },
    #[error("archived policy {path}: {detail}")]
    Io { path: String, detail: String },
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Where the policy with this hash is (or would be) archived.
pub fn path_for(data_dir: &Path, hash: &[u8; 32]) -> PathBuf {
    data_dir
        .join(DIR)
        .join(format!("{}.toml", hex::encode(hash)))
}

/// Archives `text` under its hash unless an intact copy is already there (atomically, see
/// [`durable_file`]).
pub fn store(data_dir: &Path, text: &[u8], hash: &[u8; 32]) -> Result<PathBuf, ArchiveError> {
    let path = path_for(data_dir, hash);
    let io = |e: std::io::Error| ArchiveError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    if let Ok(existing) = std::fs::read(&path) {
        if digest(&existing) == *hash {
            return Ok(path);
        }
    }
    durable_file::create_dir_private(&data_dir.join(DIR)).map_err(io)?;
    durable_file::write_atomic(&path, text, durable_file::Mode::Replace, &|| Ok(())).map_err(
        |e| ArchiveError::Io {
            path: path.display().to_string(),
            detail: format!("{}: {}", e.step, e.source),
        },
    )?;
    Ok(path)
}

/// The archived text for `hash`, checked against it.
pub fn read(data_dir: &Path, hash: &[u8; 32]) -> Result<String, ArchiveError> {
    let path = path_for(data_dir, hash);
    let shown = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ArchiveError::Missing { path: shown })
        }
        Err(e) => {
            return Err(ArchiveError::Io {
                path: shown,
                detail: e.to_string(),
            })
        }
    };
    if digest(&bytes) != *hash {
        return Err(ArchiveError::Tampered { path: shown });
    }
    String::from_utf8(bytes).map_err(|_| ArchiveError::Tampered { path: shown })
}

/// Archives `signatures` (administrator name, armored text) of the policy with this hash,
/// each atomically, replacing an earlier copy by the same administrator. Names are the
/// administrator set's, which holds no path separator; anything else is refused.
pub fn store_signatures(
    data_dir: &Path,
    hash: &[u8; 32],
    signatures: &[(String, String)],
) -> Result<(), ArchiveError> {
    let text_path = path_for(data_dir, hash);
    let dir = data_dir.join(DIR);
    durable_file::create_dir_private(&dir).map_err(|e| ArchiveError::Io {
        path: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    for (admin, text) in signatures {
        let path = signature_path(&text_path, admin).ok_or_else(|| ArchiveError::Io {
            path: text_path.display().to_string(),
            detail: format!("administrator name {admin:?} cannot name a file"),
        })?;
        if std::fs::read(&path).is_ok_and(|b| b == text.as_bytes()) {
            continue;
        }
        durable_file::write_atomic(&path, text.as_bytes(), durable_file::Mode::Replace, &|| {
            Ok(())
        })
        .map_err(|e| ArchiveError::Io {
            path: path.display().to_string(),
            detail: format!("{}: {}", e.step, e.source),
        })?;
    }
    Ok(())
}

/// `<text path>.sig.<admin>`, when `admin` is a plain file-name part.
fn signature_path(text_path: &Path, admin: &str) -> Option<PathBuf> {
    let plain = (1..=64).contains(&admin.len())
        && admin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let name = text_path.file_name()?.to_str()?;
    plain.then(|| text_path.with_file_name(format!("{name}.sig.{admin}")))
}

/// The archived signatures of the policy with this hash, (administrator, armored text) in
/// name order; none when it has none (put in force without administrators, or before
/// signatures were archived). The texts are not verified here.
pub fn signatures(data_dir: &Path, hash: &[u8; 32]) -> Result<Vec<(String, String)>, ArchiveError> {
    let text_path = path_for(data_dir, hash);
    let dir = data_dir.join(DIR);
    let io = |path: &Path, detail: String| ArchiveError::Io {
        path: path.display().to_string(),
        detail,
    };
    let prefix = format!("{}.toml.sig.", hex::encode(hash));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir, e.to_string())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(&dir, e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(admin) = name.strip_prefix(&prefix).filter(|a| !a.is_empty()) else {
            continue;
        };
        if signature_path(&text_path, admin).is_none() {
            continue;
        }
        let path = entry.path();
        let text = read_signature(&path).map_err(|detail| io(&path, detail))?;
        out.push((admin.to_owned(), text));
    }
    out.sort();
    Ok(out)
}

/// Reads one signature file, at most [`MAX_SIGNATURE_BYTES`]; why not, as text.
pub fn read_signature(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    f.take(MAX_SIGNATURE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err(format!("larger than {MAX_SIGNATURE_BYTES} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_read_and_every_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"version = 1\nname = \"p\"\n";
        let hash = digest(text);
        assert!(matches!(
            read(dir.path(), &hash),
            Err(ArchiveError::Missing { .. })
        ));
        let path = store(dir.path(), text, &hash).unwrap();
        assert_eq!(path, path_for(dir.path(), &hash));
        assert_eq!(read(dir.path(), &hash).unwrap().as_bytes(), text);
        // Storing again keeps the intact copy.
        assert_eq!(store(dir.path(), text, &hash).unwrap(), path);

        // An edited copy is reported, never served, and the next store repairs it.
        std::fs::write(&path, b"version = 1\nname = \"edited\"\n").unwrap();
        let err = read(dir.path(), &hash).unwrap_err();
        assert!(matches!(err, ArchiveError::Tampered { .. }), "{err}");
        assert!(err.to_string().contains("does not match its hash"));
        store(dir.path(), text, &hash).unwrap();
        assert_eq!(read(dir.path(), &hash).unwrap().as_bytes(), text);
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join(DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn signatures_are_archived_beside_the_text_and_listed_by_administrator() {
        let dir = tempfile::tempdir().unwrap();
        let (hash, other) = ([1u8; 32], [2u8; 32]);
        assert!(
            signatures(dir.path(), &hash).unwrap().is_empty(),
            "no archive yet"
        );
        let sigs = vec![
            ("bob".to_owned(), "sig b".to_owned()),
            ("alice".to_owned(), "sig a".to_owned()),
        ];
        store_signatures(dir.path(), &hash, &sigs).unwrap();
        store_signatures(dir.path(), &other, &[("carol".into(), "sig c".into())]).unwrap();
        let text_path = path_for(dir.path(), &hash);
        let alice = std::fs::read_to_string(format!("{}.sig.alice", text_path.display()));
        assert_eq!(alice.unwrap(), "sig a");
        assert_eq!(
            signatures(dir.path(), &hash).unwrap(),
            [
                ("alice".to_owned(), "sig a".to_owned()),
                ("bob".to_owned(), "sig b".to_owned())
            ]
        );
        // Storing again replaces an administrator's copy.
        store_signatures(dir.path(), &hash, &[("bob".into(), "sig b2".into())]).unwrap();
        assert_eq!(signatures(dir.path(), &hash).unwrap()[1].1, "sig b2");

        let err = store_signatures(dir.path(), &hash, &[("../x".into(), "s".into())]);
        assert!(err.unwrap_err().to_string().contains("cannot name a file"));
        // A file over the bound is reported, never read whole.
        let big = format!("{}.sig.dave", text_path.display());
        std::fs::write(&big, vec![b'a'; MAX_SIGNATURE_BYTES as usize + 1]).unwrap();
        let err = signatures(dir.path(), &hash).unwrap_err().to_string();
        assert!(err.contains("larger than 16384 bytes"), "{err}");
    }

    #[test]
    fn unwritable_data_dir_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the archive directory should be.
        std::fs::write(dir.path().join(DIR), b"not a directory").unwrap();
        let hash = [7u8; 32];
        let err = store(dir.path(), b"x", &hash).unwrap_err();
        assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
        assert!(err.to_string().contains(&hex::encode(hash)), "{err}");
    }
}
