//! The service configuration file (TOML).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::secret_source::SecretSource;

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    /// `host:port` for TCP, `unix:/path/to.sock` for a Unix socket.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(Listen::Tcp)
            .map_err(|e| format!("{s:?} is neither host:port nor unix:/path ({e})"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The encrypted keystore and how to get its passphrase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreConfig {
    pub path: PathBuf,
    pub passphrase: SecretSource,
}

/// `tron-signer serve --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    /// Ledger and audit log live here.
    pub data_dir: PathBuf,
    /// The policy file; re-read on SIGHUP.
    pub policy: PathBuf,
    pub keystore: KeystoreConfig,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads a config; relative paths inside it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rel(&mut cfg.data_dir);
        rel(&mut cfg.policy);
        rel(&mut cfg.keystore.path);
        if let Listen::Unix(p) = &mut cfg.listen {
            rel(p);
        }
        if let SecretSource::File(p) = &mut cfg.keystore.passphrase {
            rel(p);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            "127.0.0.1:50051".parse::<Listen>(),
            Ok(Listen::Tcp("127.0.0.1:50051".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/s.sock".parse::<Listen>(),
            Ok(Listen::Unix("/run/s.sock".into()))
        );
        assert!("unix:".parse::<Listen>().is_err());
        assert!("localhost".parse::<Listen>().is_err());
    }

    #[test]
    fn loads_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.toml");
        std::fs::write(
            &path,
            r#"
listen = "unix:signer.sock"
data_dir = "data"
policy = "/etc/tron-signer/policy.toml"
[keystore]
path = "keys.tks"
passphrase = { env = "TRON_SIGNER_PASSPHRASE" }
"#,
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.listen, Listen::Unix(dir.path().join("signer.sock")));
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.policy, PathBuf::from("/etc/tron-signer/policy.toml"));
        assert_eq!(c.keystore.path, dir.path().join("keys.tks"));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for body in [
            "listen = \"x\"\ndata_dir=\"d\"\npolicy=\"p\"\n[keystore]\npath=\"k\"\npassphrase=\"prompt\"\n",
            "listen = \"127.0.0.1:1\"\ndata_dir=\"d\"\npolicy=\"p\"\nextra=1\n[keystore]\npath=\"k\"\npassphrase=\"prompt\"\n",
        ] {
            std::fs::write(&path, body).unwrap();
            assert!(matches!(
                Config::load(&path),
                Err(ConfigError::Invalid { .. })
            ));
        }
        assert!(matches!(
            Config::load(&dir.path().join("missing.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
