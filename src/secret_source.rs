//! Where a passphrase or PIN comes from, as named in the config.
//!
//! A config names the *source*, never the secret itself, so that the config file can be
//! reviewed and shared. Errors name the variable or path that failed, never the value.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use crate::private_file::{self, PrivateFileError};

/// `"prompt"`, `{ env = "VAR" }` or `{ file = "/path" }` in TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Ask on the controlling terminal (no echo).
    Prompt,
    /// Read the whole file; one trailing newline is dropped so `echo pass > file` works.
    File(PathBuf),
    /// Read an environment variable (the variable's name is in the config, not its value).
    Env(String),
}

/// The TOML forms; parsed through this so that a secret pasted into the config by
/// mistake (`pin = "1234"`) is never echoed back in the parse error.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum Repr {
    Prompt,
    File(PathBuf),
    Env(String),
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a secret source must be \"prompt\", { env = \"VAR\" } or { file = \"/path\" } \
                 (the secret itself never goes in the config)",
            )
        })?;
        Ok(match repr {
            Repr::Prompt => SecretSource::Prompt,
            Repr::File(p) => SecretSource::File(p),
            Repr::Env(v) => SecretSource::Env(v),
        })
    }
}

/// Why a secret could not be obtained. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretSourceError {
    #[error("environment variable {var} is not set")]
    EnvMissing { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("secret file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error("cannot read secret file {path}: {source}")]
    FileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "secret file {path}: permissions {mode:04o} are too open (no group or other access \
         is allowed; chmod 600 it)"
    )]
    FileTooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {path} is owned by uid {uid}, not by the user running the signer")]
    FileNotOwned { path: PathBuf, uid: u32 },
    #[error("secret file {path} is not valid UTF-8")]
    FileNotUnicode { path: PathBuf },
    #[error("cannot prompt for the {what}: {source}")]
    Prompt {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} is empty")]
    Empty { what: String },
}

impl SecretSourceError {
    pub fn code(&self) -> &'static str {
        match self {
            SecretSourceError::EnvMissing { .. } => "secret_env_missing",
            SecretSourceError::EnvNotUnicode { .. } => "secret_env_not_unicode",
            SecretSourceError::FileMissing { .. } => "secret_file_missing",
            SecretSourceError::FileUnreadable { .. } => "secret_file_unreadable",
            SecretSourceError::FileTooOpen { .. } => "secret_file_too_open",
            SecretSourceError::FileNotOwned { .. } => "secret_file_not_owned",
            SecretSourceError::FileNotUnicode { .. } => "secret_file_not_unicode",
            SecretSourceError::Prompt { .. } => "secret_prompt_failed",
            SecretSourceError::Empty { .. } => "secret_empty",
        }
    }
}

impl SecretSource {
    /// Obtains the secret. `what` names it in the prompt and in errors ("keystore passphrase").
    pub fn read_secret(&self, what: &str) -> Result<SecretString, SecretSourceError> {
        let raw: Zeroizing<String> = match self {
            SecretSource::Prompt => {
                Zeroizing::new(rpassword::prompt_password(format!("{what}: ")).map_err(
                    |source| SecretSourceError::Prompt {
                        what: what.to_owned(),
                        source,
                    },
                )?)
            }
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) => Zeroizing::new(v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretSourceError::EnvMissing { var: var.clone() })
                }
                Err(std::env::VarError::NotUnicode(os)) => {
                    os.into_encoded_bytes().zeroize();
                    return Err(SecretSourceError::EnvNotUnicode { var: var.clone() });
                }
            },
            SecretSource::File(path) => {
                let bytes = Zeroizing::new(private_file::read(path).map_err(|e| match e {
                    PrivateFileError::TooOpen { mode } => SecretSourceError::FileTooOpen {
                        path: path.clone(),
                        mode,
                    },
                    PrivateFileError::NotOwned { uid } => SecretSourceError::FileNotOwned {
                        path: path.clone(),
                        uid,
                    },
                    PrivateFileError::Io(source)
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        SecretSourceError::FileMissing { path: path.clone() }
                    }
                    PrivateFileError::Io(source) => SecretSourceError::FileUnreadable {
                        path: path.clone(),
                        source,
                    },
                })?);
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| SecretSourceError::FileNotUnicode { path: path.clone() })?;
                let text = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(text);
                exact_copy(text)
            }
        };
        if raw.is_empty() {
            return Err(SecretSourceError::Empty {
                what: what.to_owned(),
            });
        }
        // Copy into an allocation of exactly the right size: converting a String with spare
        // capacity into `Box<str>` reallocates and would leave an unzeroized copy behind.
        let mut exact = exact_copy(&raw);
        Ok(SecretString::from(std::mem::take(&mut *exact)))
    }
}

/// A `String` whose capacity equals its length, so `into_boxed_str` does not reallocate.
fn exact_copy(s: &str) -> Zeroizing<String> {
    let mut out = String::with_capacity(s.len());
    out.push_str(s);
    Zeroizing::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// A secret file as an operator should write it: owner-only.
    fn write_private(p: &std::path::Path, content: impl AsRef<[u8]>) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, content).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn file_readable_by_others_refused_without_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        write_private(&p, "1234\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretSource::File(p.clone())
            .read_secret("PIN")
            .unwrap_err();
        assert_eq!(e.code(), "secret_file_too_open");
        let msg = e.to_string();
        assert!(
            msg.contains("0644") && msg.contains(&p.display().to_string()),
            "{msg}"
        );
        assert!(!msg.contains("1234"), "{msg}");
    }

    #[test]
    fn file_strips_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        for (content, want) in [
            ("hunter2\n", "hunter2"),
            ("hunter2\r\n", "hunter2"),
            ("hunter2", "hunter2"),
            ("hunter2\n\n", "hunter2\n"),
            (" spaced pass \n", " spaced pass "),
        ] {
            let p = dir.path().join("pass");
            write_private(&p, content);
            let s = SecretSource::File(p).read_secret("passphrase").unwrap();
            assert_eq!(s.expose_secret(), want);
        }
    }

    #[test]
    fn file_missing_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope");
        let e = SecretSource::File(p.clone())
            .read_secret("passphrase")
            .unwrap_err();
        assert_eq!(e.code(), "secret_file_missing");
        assert!(e.to_string().contains(&p.display().to_string()));
    }

    #[test]
    fn empty_file_and_lone_newline_refused() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["", "\n", "\r\n"] {
            let p = dir.path().join("pass");
            write_private(&p, content);
            let e = SecretSource::File(p).read_secret("passphrase").unwrap_err();
            assert_eq!(e.code(), "secret_empty");
        }
    }

    #[test]
    fn file_not_utf8_refused_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pass");
        write_private(&p, [0xff, 0xfe, b'x']);
        let e = SecretSource::File(p).read_secret("passphrase").unwrap_err();
        assert_eq!(e.code(), "secret_file_not_unicode");
    }

    #[test]
    fn env_present_missing_and_empty() {
        // Unique names: tests run in parallel threads of one process.
        let var = "TRON_SIGNER_TEST_SECRET_SOURCE_PRESENT";
        std::env::set_var(var, "s3cret-value");
        let s = SecretSource::Env(var.into()).read_secret("pin").unwrap();
        assert_eq!(s.expose_secret(), "s3cret-value");

        let missing = "TRON_SIGNER_TEST_SECRET_SOURCE_MISSING";
        std::env::remove_var(missing);
        let e = SecretSource::Env(missing.into())
            .read_secret("pin")
            .unwrap_err();
        assert_eq!(e.code(), "secret_env_missing");
        assert!(e.to_string().contains(missing));

        let empty = "TRON_SIGNER_TEST_SECRET_SOURCE_EMPTY";
        std::env::set_var(empty, "");
        let e = SecretSource::Env(empty.into())
            .read_secret("pin")
            .unwrap_err();
        assert_eq!(e.code(), "secret_empty");
    }

    #[test]
    fn env_error_never_contains_value() {
        let var = "TRON_SIGNER_TEST_SECRET_SOURCE_NOT_UNICODE";
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            std::env::set_var(var, std::ffi::OsStr::from_bytes(b"topsecret\xff"));
            let e = SecretSource::Env(var.into())
                .read_secret("pin")
                .unwrap_err();
            assert_eq!(e.code(), "secret_env_not_unicode");
            assert!(!format!("{e} {e:?}").contains("topsecret"));
        }
    }

    #[test]
    fn deserializes_from_toml() {
        #[derive(Deserialize)]
        struct Cfg {
            a: SecretSource,
            b: SecretSource,
            c: SecretSource,
        }
        let cfg: Cfg = toml::from_str(
            r#"
            a = "prompt"
            b = { env = "TRON_SIGNER_PASSPHRASE" }
            c = { file = "/run/secrets/pass" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.a, SecretSource::Prompt);
        assert_eq!(cfg.b, SecretSource::Env("TRON_SIGNER_PASSPHRASE".into()));
        assert_eq!(cfg.c, SecretSource::File("/run/secrets/pass".into()));
        assert!(toml::from_str::<Cfg>("a = \"stdin\"\nb = \"prompt\"\nc = \"prompt\"").is_err());
        let e = toml::from_str::<Cfg>("a = \"hunter2\"\nb = \"prompt\"\nc = \"prompt\"")
            .err()
            .expect("a literal secret is refused");
        assert!(!e.message().contains("hunter2"), "{}", e.message());
    }
}
