//! Why a keystore could not be opened, saved or changed. No variant carries key material
//! or a passphrase; paths, labels and addresses are not secret.

use std::path::PathBuf;

use tron_proto::Address;

use crate::secret_source::SecretSourceError;

/// Every way the keystore can refuse. `code()` is stable and is what callers match on.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("keystore file {path} does not exist")]
    NotFound { path: PathBuf },
    #[error(
        "keystore file {path}: permissions {mode:04o} are too open (no group or other access \
         is allowed; chmod 600 it, as ssh requires of private keys)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("keystore file {path} is owned by uid {uid}, not by the user running the signer")]
    NotOwned { path: PathBuf, uid: u32 },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a tron-signer keystore (the file does not start with the TRONKS magic)")]
    BadMagic,
    #[error("keystore format version {0} is not supported by this build (supported: 1)")]
    UnsupportedVersion(u16),
    #[error("keystore file is truncated: {len} bytes, at least {needed} expected")]
    Truncated { len: u64, needed: u64 },
    #[error("keystore file has {0} unexpected bytes after the ciphertext")]
    TrailingData(u64),
    #[error("keystore header is corrupted (its checksum does not match)")]
    HeaderCorrupt,
    #[error("keystore header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("key derivation parameters are not acceptable: {0}")]
    InvalidKdfParams(String),
    #[error("key derivation failed: {0}")]
    KdfFailed(String),
    #[error("wrong passphrase for this keystore")]
    WrongPassphrase,
    #[error("keystore ciphertext failed authentication: the file was tampered with or corrupted")]
    Tampered,
    #[error("decrypted keystore contents are malformed: {0}")]
    MalformedPlaintext(&'static str),
    #[error("{path} already exists; pass --force (overwrite) to replace it")]
    AlreadyExists { path: PathBuf },
    #[error(
        "{path} exists but does not open as a keystore with this passphrase ({cause}); \
         pass --force to replace it"
    )]
    ExistingUnopenable {
        path: PathBuf,
        #[source]
        cause: Box<KeystoreError>,
    },
    #[error("private key is not a valid secp256k1 scalar (zero or not below the curve order)")]
    InvalidKey,
    #[error("private key must be exactly 64 hexadecimal digits on standard input")]
    InvalidKeyEncoding,
    #[error("key {0} is already in the keystore")]
    DuplicateAddress(Address),
    #[error("label {0:?} is already used in the keystore")]
    DuplicateLabel(String),
    #[error("this HD account is already in the keystore")]
    DuplicateHdAccount,
    #[error("invalid label: {0}")]
    InvalidLabel(&'static str),
    #[error("the keystore holds the maximum number of keys")]
    TooManyKeys,
    #[error("the operating system random generator failed: {0}")]
    Rng(String),
    #[error("the two passphrases entered do not match")]
    PassphraseMismatch,
    #[error(transparent)]
    Passphrase(#[from] SecretSourceError),
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl KeystoreError {
    pub fn code(&self) -> &'static str {
        match self {
            KeystoreError::NotFound { .. } => "keystore_not_found",
            KeystoreError::TooOpen { .. } => "keystore_too_open",
            KeystoreError::NotOwned { .. } => "keystore_not_owned",
            KeystoreError::Io { .. } => "keystore_io",
            KeystoreError::BadMagic => "keystore_bad_magic",
            KeystoreError::UnsupportedVersion(_) => "keystore_unsupported_version",
            KeystoreError::Truncated { .. } => "keystore_truncated",
            KeystoreError::TrailingData(_) => "keystore_trailing_data",
            KeystoreError::HeaderCorrupt => "keystore_header_corrupt",
            KeystoreError::MalformedHeader(_) => "keystore_malformed_header",
            KeystoreError::InvalidKdfParams(_) => "keystore_invalid_kdf_params",
            KeystoreError::KdfFailed(_) => "keystore_kdf_failed",
            KeystoreError::WrongPassphrase => "keystore_wrong_passphrase",
            KeystoreError::Tampered => "keystore_tampered",
            KeystoreError::MalformedPlaintext(_) => "keystore_malformed_plaintext",
            KeystoreError::AlreadyExists { .. } => "keystore_already_exists",
            KeystoreError::ExistingUnopenable { .. } => "keystore_existing_unopenable",
            KeystoreError::InvalidKey => "keystore_invalid_key",
            KeystoreError::InvalidKeyEncoding => "keystore_invalid_key_encoding",
            KeystoreError::DuplicateAddress(_) => "keystore_duplicate_address",
            KeystoreError::DuplicateLabel(_) => "keystore_duplicate_label",
            KeystoreError::DuplicateHdAccount => "keystore_duplicate_hd_account",
            KeystoreError::InvalidLabel(_) => "keystore_invalid_label",
            KeystoreError::TooManyKeys => "keystore_too_many_keys",
            KeystoreError::Rng(_) => "keystore_rng_failed",
            KeystoreError::PassphraseMismatch => "keystore_passphrase_mismatch",
            KeystoreError::Passphrase(e) => e.code(),
            KeystoreError::Output(_) => "keystore_output_failed",
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        KeystoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
