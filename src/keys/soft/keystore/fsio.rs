//! Reading the keystore file and replacing it atomically.

use std::io::ErrorKind;
use std::path::Path;

use super::error::KeystoreError;
use crate::durable_file::{self, Mode};
use crate::private_file::{self, PrivateFileError};

/// Reads the keystore file, refusing one that group or others can access.
pub fn read(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    private_file::read(path).map_err(|e| match e {
        PrivateFileError::TooOpen { mode } => KeystoreError::TooOpen {
            path: path.to_path_buf(),
            mode,
        },
        PrivateFileError::NotOwned { uid } => KeystoreError::NotOwned {
            path: path.to_path_buf(),
            uid,
        },
        PrivateFileError::Io(e) if e.kind() == ErrorKind::NotFound => KeystoreError::NotFound {
            path: path.to_path_buf(),
        },
        PrivateFileError::Io(e) => KeystoreError::io("read", path, e),
    })
}

/// Writes `bytes` to `path` atomically (see [`crate::durable_file`]). `before_commit` runs
/// after the temporary file is durable and before it takes the final name; tests use it to
/// simulate a crash there.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
    before_commit: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), KeystoreError> {
    let mode = if overwrite {
        Mode::Replace
    } else {
        Mode::CreateNew
    };
    durable_file::write_atomic(path, bytes, mode, before_commit).map_err(|e| {
        if e.already_exists() && mode == Mode::CreateNew {
            KeystoreError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            KeystoreError::io(e.step, &e.path, e.source)
        }
    })
}
