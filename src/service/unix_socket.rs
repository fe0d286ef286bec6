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
    #[error("socket group {group:?} is neither a number nor a group in /etc/group")]
    UnknownGroup { group: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Binds `path` with the configured mode and group. The socket is bound under a temporary
/// name in the same directory, given its mode and group, then renamed into place, so no
/// client ever sees it with other permissions.
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
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(io("bind", &tmp))?;
    let placed = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(cfg.mode))
            .map_err(io("set the mode of", &tmp))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(io("set the group of", &tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io("move the socket to", path))
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
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
