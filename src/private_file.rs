//! Files that hold key material (the keystore, passphrase and PIN files) are read only when
//! nobody but their owner can read or write them, the rule ssh applies to private keys: a
//! world-readable keystore or PIN file is a leak waiting to happen, and loading it silently
//! would hide that.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Why a private file was not read.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Opening, inspecting or reading the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Group or others have some access: the mode is shown in octal.
    #[error(
        "permissions {mode:04o} are too open: it holds key material, so no group or other \
         access is allowed (chmod 600 it, as ssh requires of private keys)"
    )]
    TooOpen { mode: u32 },
    /// Owned by another user than the one running the signer (and not by root).
    #[error("it is owned by uid {uid}, not by the user running the signer (or root)")]
    NotOwned { uid: u32 },
}

/// Reads the whole file, after checking the mode of the very file opened (not of whatever
/// the path names a moment later).
pub fn read(path: &Path) -> Result<Vec<u8>, PrivateFileError> {
    let mut file = open(path)?;
    check(&file)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opened without blocking, so a FIFO planted at the path cannot hang the reader; the
/// regular-file check that follows refuses it.
#[cfg(unix)]
fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(unix)]
fn check(file: &File) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file.metadata()?;
    // Owned by whoever runs the signer (or root), as ssh requires of a private key.
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(PrivateFileError::NotOwned { uid: meta.uid() });
    }
    if !meta.is_file() {
        return Err(
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file").into(),
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::TooOpen { mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check(_file: &File) -> Result<(), PrivateFileError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn owner_only_files_are_read_and_others_refused_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, b"material").unwrap();
        for ok in [0o600, 0o400, 0o700] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(ok)).unwrap();
            assert_eq!(read(&p).unwrap(), b"material", "{ok:o}");
        }
        for bad in [0o644, 0o640, 0o604, 0o660, 0o606, 0o610] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(bad)).unwrap();
            match read(&p) {
                Err(PrivateFileError::TooOpen { mode }) => assert_eq!(mode, bad),
                other => panic!("{bad:o}: {other:?}"),
            }
        }
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("0610") && e.contains("chmod 600"), "{e}");
    }

    /// A file owned by another user is refused even when owner-only (run as root here, so
    /// the test can hand the file to another uid).
    #[test]
    fn files_owned_by_another_user_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, b"material").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        if rustix::process::geteuid().as_raw() != 0 {
            return; // only root can give a file away; the check itself is the same
        }
        std::os::unix::fs::chown(&p, Some(54_321), None).unwrap();
        match read(&p) {
            Err(PrivateFileError::NotOwned { uid }) => assert_eq!(uid, 54_321),
            other => panic!("{other:?}"),
        }
    }

    /// A FIFO is refused at once (not a regular file), never waited on; so is a directory.
    #[test]
    fn fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pin");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for p in [fifo.as_path(), dir.path()] {
            match read(p) {
                Err(PrivateFileError::Io(e)) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{p:?}")
                }
                other => panic!("{p:?}: {other:?}"),
            }
        }
    }
}
