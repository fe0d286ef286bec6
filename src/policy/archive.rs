//! Every policy put in force, kept by hash under the data directory
//! (`policies/<sha256 hex>.toml`, the exact bytes that were hashed).
//!
//! Two reasons: an auditor can resolve the policy hash of any audit record to the text that
//! decided it, and the signer need not hold a large policy's text in memory (a 100,000-entry
//! allowlist is ~21 MiB of TOML) just to answer `GetPolicy`. Reads check the hash, so an
//! edited archive file is reported, never served.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::durable_file;

const DIR: &str = "policies";

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
