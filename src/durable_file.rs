//! Files that are either wholly written or not there at all: the keystore, batch answers and
//! archived policies all go through [`write_atomic`].
//!
//! The bytes go to a temporary file in the same directory and are fsynced; only then does the
//! file take its final name (rename to replace, or a hard link, which fails atomically when
//! the name exists, to create); finally the directory is fsynced so the name is durable. A
//! crash at any point leaves the old file or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Whether an existing file at the path may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replace,
    /// Fails with an `AlreadyExists` error if the path exists.
    CreateNew,
}

/// The step that failed and its I/O error (`AlreadyExists` for [`Mode::CreateNew`] when the
/// path is taken).
#[derive(Debug)]
pub struct WriteError {
    pub step: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The failed step, on which path, and why.
fn fail(step: &'static str, path: &Path, source: std::io::Error) -> WriteError {
    WriteError {
        step,
        path: path.to_path_buf(),
        source,
    }
}

impl WriteError {
    pub fn already_exists(&self) -> bool {
        self.source.kind() == ErrorKind::AlreadyExists
    }
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates `dir` and its parents, readable by the owner only where the platform allows.
pub fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `bytes` to `path` atomically (file mode 0600). `before_commit` runs after the
/// temporary file is durable and before it takes the final name; tests use it to simulate
/// a crash there.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Mode,
    before_commit: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), WriteError> {
    if mode == Mode::CreateNew && fs::symlink_metadata(path).is_ok() {
        let taken = std::io::Error::new(ErrorKind::AlreadyExists, "the file exists");
        return Err(fail("create", path, taken));
    }
    let name = path
        .file_name()
        .ok_or_else(|| {
            let e = std::io::Error::new(ErrorKind::InvalidInput, "path has no file name");
            fail("write", path, e)
        })?
        .to_string_lossy()
        .into_owned();
    let mut rnd = [0u8; 8];
    getrandom::getrandom(&mut rnd).map_err(|e| fail("name a temporary file", path, e.into()))?;
    let dir = parent_dir(path);
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(rnd)));
    let result = write_then_commit(path, &tmp, bytes, mode, before_commit);
    // Whatever happened, the temporary name must not linger (after a rename it is gone).
    let _ = fs::remove_file(&tmp);
    result?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync directory", &dir, e))
}

fn write_then_commit(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    mode: Mode,
    before_commit: &dyn Fn() -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(tmp)
        .map_err(|e| fail("create temporary file", tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write temporary file", tmp, e))?;
    drop(f);
    before_commit().map_err(|e| fail("commit", path, e))?;
    match mode {
        Mode::Replace => fs::rename(tmp, path).map_err(|e| fail("rename into", path, e)),
        Mode::CreateNew => fs::hard_link(tmp, path).map_err(|e| fail("link into", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_hook() -> std::io::Result<()> {
        Ok(())
    }

    #[test]
    fn create_new_never_replaces_and_replace_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", Mode::CreateNew, &no_hook).unwrap();
        let err = write_atomic(&path, b"two", Mode::CreateNew, &no_hook).unwrap_err();
        assert!(err.already_exists(), "{err:?}");
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_atomic(&path, b"three", Mode::Replace, &no_hook).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_crash_before_commit_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old", Mode::Replace, &no_hook).unwrap();
        let crash = || Err(std::io::Error::other("simulated crash"));
        let err = write_atomic(&path, b"new", Mode::Replace, &crash).unwrap_err();
        assert_eq!(err.step, "commit");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
