//! Reading the keystore file and replacing it atomically.
//!
//! A crash at any point leaves either the old file or the new one, never a mix: the new
//! bytes go to a temporary file in the same directory, are fsync'ed, and only then take
//! the final name (rename, or a hard link when replacing is not allowed, which fails
//! atomically if the name exists); finally the directory is fsync'ed so the new name is
//! durable.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::crypto::os_random;
use super::error::KeystoreError;

pub fn read(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    fs::read(path).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            KeystoreError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            KeystoreError::io("read", path, e)
        }
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> Result<PathBuf, KeystoreError> {
    let name = path
        .file_name()
        .ok_or_else(|| {
            KeystoreError::io(
                "write",
                path,
                std::io::Error::new(ErrorKind::InvalidInput, "path has no file name"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let mut rnd = [0u8; 8];
    os_random(&mut rnd)?;
    Ok(parent_dir(path).join(format!(".{name}.tmp-{}", hex::encode(rnd))))
}

/// Writes `bytes` to `path` atomically. `before_commit` runs after the temporary file is
/// durable and before it takes the final name; tests use it to simulate a crash there.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
    before_commit: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), KeystoreError> {
    if !overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(KeystoreError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let tmp = temp_path(path)?;
    let result = write_then_commit(path, &tmp, bytes, overwrite, before_commit);
    // Whatever happened, the temporary name must not linger (after a rename it is gone).
    let _ = fs::remove_file(&tmp);
    result?;
    let dir = parent_dir(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| KeystoreError::io("fsync directory", &dir, e))
}

fn write_then_commit(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    overwrite: bool,
    before_commit: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), KeystoreError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(tmp)
        .map_err(|e| KeystoreError::io("create temporary file", tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| KeystoreError::io("write temporary file", tmp, e))?;
    drop(f);
    before_commit().map_err(|e| KeystoreError::io("commit", path, e))?;
    if overwrite {
        fs::rename(tmp, path).map_err(|e| KeystoreError::io("rename into", path, e))
    } else {
        fs::hard_link(tmp, path).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                KeystoreError::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                KeystoreError::io("link into", path, e)
            }
        })
    }
}
