//! Binding the Unix socket: only a stale socket is ever removed (never a file the operator
//! mistyped as the socket path), and the socket's mode and group come from the config, set
//! before the socket appears under its name, never left to the umask.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::config::UnixSocketConfig;

/// Why the socket could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{path} exists and is not a socket; refusing to replace it (fix `listen`)")]
    NotASocket { path: PathBuf },
    #[error("{path} is a socket another process is serving on; refusing to take it over")]
    InUse { path: PathBuf },
    #[error("socket group {group:?} is neither a number nor a group in /etc/group")]
    UnknownGroup { group: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Binds `path` with the configured mode and group. The socket is bound in a fresh
/// owner-only directory beside `path`, given its mode and group there, then hard-linked into
/// place (which fails rather than replace anything that appeared meanwhile), so no client can
/// connect to it with other permissions.
pub fn bind(path: &Path, cfg: &UnixSocketConfig) -> Result<UnixListener, SocketError> {
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| SocketError::Io {
            op,
            path: p,
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket someone still answers on belongs to a running signer.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io("remove the stale socket", path))?
        }
        Ok(_) => {
            return Err(SocketError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", path)(e)),
    }
    let gid = cfg.group.as_deref().map(resolve_group).transpose()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private =
        PrivateDir::create(parent).map_err(io("create a private directory in", parent))?;
    let tmp = private.0.join("s");
    let listener = UnixListener::bind(&tmp).map_err(io("bind", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(cfg.mode))
        .map_err(io("set the mode of", &tmp))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(io("set the group of", &tmp))?;
    }
    std::fs::hard_link(&tmp, path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            SocketError::NotASocket {
                path: path.to_path_buf(),
            }
        } else {
            io("put the socket at", path)(e)
        }
    })?;
    // The private directory and its link go; the listener stays bound to the inode.
    drop(private);
    Ok(listener)
}

/// An owner-only directory under a random name, removed with what it holds when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create(parent: &Path) -> io::Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(io::Error::other)?;
        let dir = parent.join(format!(
            ".tron-signer-socket.{}.{}",
            std::process::id(),
            hex::encode(nonce)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(PrivateDir(dir))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join("s"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A numeric gid, or a group name looked up in /etc/group (NSS-only groups need the number).
fn resolve_group(group: &str) -> Result<u32, SocketError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || SocketError::UnknownGroup {
        group: group.to_owned(),
    };
    let text = std::fs::read_to_string("/etc/group").map_err(|_| unknown())?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            Some((name, gid))
        })
        .find(|(name, _)| *name == group)
        .map(|(_, gid)| gid)
        .ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn cfg(mode: u32, group: Option<&str>) -> UnixSocketConfig {
        UnixSocketConfig {
            mode,
            group: group.map(str::to_owned),
        }
    }

    /// The attack of issue 11 item 9: `listen = "unix:policy.toml"` must not replace the file.
    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.toml");
        std::fs::write(&p, "version = 1\n").unwrap();
        let e = bind(&p, &cfg(0o600, None)).unwrap_err();
        assert!(matches!(e, SocketError::NotASocket { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "version = 1\n");
        let d = dir.path().join("a-directory");
        std::fs::create_dir(&d).unwrap();
        assert!(matches!(
            bind(&d, &cfg(0o600, None)),
            Err(SocketError::NotASocket { .. })
        ));
    }

    #[tokio::test]
    async fn stale_socket_replaced_with_the_configured_mode_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("signer.sock");
        let stale = std::os::unix::net::UnixListener::bind(&p).unwrap();
        drop(stale);
        let gid = std::fs::metadata(dir.path()).unwrap().gid();
        let listener = bind(&p, &cfg(0o660, Some(&gid.to_string()))).unwrap();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o7777, 0o660);
        assert_eq!(m.gid(), gid);
        // Nothing left under the temporary name, and the socket accepts.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let client = tokio::net::UnixStream::connect(&p);
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
        drop(listener);
        let listener = bind(&p, &cfg(0o600, None)).unwrap();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        drop(listener);
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("signer.sock");
        let live = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(matches!(
            bind(&p, &cfg(0o600, None)),
            Err(SocketError::InUse { .. })
        ));
        drop(live);
        assert!(
            bind(&p, &cfg(0o600, None)).is_ok(),
            "stale once nobody answers"
        );
    }

    #[tokio::test]
    async fn an_unknown_group_is_refused_before_anything_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("signer.sock");
        assert!(matches!(
            bind(&p, &cfg(0o660, Some("no-such-group-here"))),
            Err(SocketError::UnknownGroup { .. })
        ));
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn groups_by_number_or_by_name() {
        assert_eq!(resolve_group("0").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert!(matches!(
            resolve_group("no-such-group-here"),
            Err(SocketError::UnknownGroup { .. })
        ));
    }
}
