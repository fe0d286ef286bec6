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
}

/// Reads the whole file, after checking the mode of the very file opened (not of whatever
/// the path names a moment later).
pub fn read(path: &Path) -> Result<Vec<u8>, PrivateFileError> {
    let mut file = File::open(path)?;
    check(&file)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(unix)]
fn check(file: &File) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata()?;
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
}
