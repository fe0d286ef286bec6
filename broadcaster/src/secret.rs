//! Where the node API key comes from: `{ env = "VAR" }` or `{ file = "/path" }`.
//!
//! Deliberately a small local copy of the idea in tron-signer rather than a dependency on
//! it: the broadcaster must not link any of the signer's code. The config names the source,
//! never the value, so it can be reviewed and shared.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

/// A config entry naming where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file; one trailing newline is dropped.
    File(PathBuf),
}

/// A secret value that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(Zeroizing::new(s))
    }

    /// The value, for the one place that has to send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret could not be read. Names the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or not UTF-8")]
    Env(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretError {
    pub fn code(&self) -> &'static str {
        match self {
            SecretError::Env(_) => "secret_env_missing",
            SecretError::File { .. } => "secret_file_unreadable",
            SecretError::Empty(_) => "secret_empty",
        }
    }
}

impl SecretSource {
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (value, name) = match self {
            SecretSource::Env(var) => (
                Zeroizing::new(std::env::var(var).map_err(|_| SecretError::Env(var.clone()))?),
                format!("env {var}"),
            ),
            SecretSource::File(path) => {
                let mut s = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                    SecretError::File {
                        path: path.clone(),
                        source,
                    }
                })?);
                if s.ends_with('\n') {
                    s.pop();
                    if s.ends_with('\r') {
                        s.pop();
                    }
                }
                (s, format!("file {}", path.display()))
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(name));
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_and_debug_hides_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "abc123\n").unwrap();
        let s = SecretSource::File(p).read().unwrap();
        assert_eq!(s.expose(), "abc123");
        assert!(!format!("{s:?}").contains("abc123"));
    }

    #[test]
    fn refusals() {
        let missing = SecretSource::Env("TRON_BROADCASTER_TEST_UNSET_VAR".into()).read();
        assert_eq!(missing.unwrap_err().code(), "secret_env_missing");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, "\n").unwrap();
        assert_eq!(
            SecretSource::File(p).read().unwrap_err().code(),
            "secret_empty"
        );
        assert_eq!(
            SecretSource::File(dir.path().join("nope"))
                .read()
                .unwrap_err()
                .code(),
            "secret_file_unreadable"
        );
    }
}
