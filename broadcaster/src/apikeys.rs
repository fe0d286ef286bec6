//! API keys for payment backends: shown once at creation, stored only as a salted hash.
//!
//! A key is `tbk_<id>_<secret>`: the id finds the record without scanning, the secret is
//! 256 random bits, so a salted SHA-256 is enough (no password stretching is needed for
//! a high-entropy secret) and the comparison is constant-time.
//!
//! Every key belongs to a tenant; payouts belong to the tenant of the key that created
//! them. Keys live in their own JSON file, not in the payout database (which `serve` holds
//! locked): `api-keys create|revoke` rewrite it atomically (under an exclusive lock on a
//! sibling `.lock` file, so two commands cannot lose each other's change), and the server
//! reads it afresh on every authenticated request. There is no cache to invalidate: a
//! revoked key is refused on its next request, without a restart.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::model::{now_ms, Owner, KEY_SEPARATOR};

const PREFIX: &str = "tbk_";
const FORMAT: &str = "tron-broadcaster-api-keys";
const VERSION: u32 = 1;
/// Longest tenant name. With the separator and the longest payout id it fits the signer's
/// payout id bound (see `api::MAX_PAYOUT_ID_LEN`).
pub const MAX_TENANT_LEN: usize = 32;

/// What is stored for a key. Never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    pub tenant: String,
    pub label: String,
    pub salt: String,
    pub hash: String,
    pub created_at_ms: i64,
    /// Set by `api-keys revoke`; the record stays so payouts' `created_by` still resolves.
    pub revoked_at_ms: Option<i64>,
}

/// The key file as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    version: u32,
    keys: BTreeMap<String, ApiKeyRecord>,
}

/// Why a key could not be created, revoked or checked.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("label must be 1-64 printable ASCII characters")]
    BadLabel,
    #[error(
        "tenant must be 1-{MAX_TENANT_LEN} characters of A-Z, a-z, 0-9, '-', '_' or '.' (give it with --tenant)"
    )]
    BadTenant,
    #[error("no API key with id {0:?}")]
    NotFound(String),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("API key file {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("API key file {path} is not a valid key file: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl ApiKeyError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::BadLabel => "bad_label",
            ApiKeyError::BadTenant => "bad_tenant",
            ApiKeyError::NotFound(_) => "api_key_not_found",
            ApiKeyError::Random(_) => "no_randomness",
            ApiKeyError::Io { .. } => "api_keys_unavailable",
            ApiKeyError::Corrupt { .. } => "api_keys_corrupt",
        }
    }
}

/// The result of checking a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid key: who it acts for.
    Valid(Owner),
    /// The right secret of a revoked key.
    Revoked,
    /// Malformed, unknown or wrong secret.
    Invalid,
}

/// Is `tenant` a valid tenant name? It must not contain the payout key separator.
pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !tenant.contains(KEY_SEPARATOR)
}

fn random<const N: usize>() -> Result<[u8; N], ApiKeyError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| ApiKeyError::Random(e.to_string()))?;
    Ok(b)
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// The key file at a path.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
}

impl KeyStore {
    pub fn new(path: impl Into<PathBuf>) -> KeyStore {
        KeyStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: std::io::Error) -> ApiKeyError {
        ApiKeyError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The file's contents; no file yet means no keys.
    fn load(&self) -> Result<KeyFile, ApiKeyError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(KeyFile {
                    format: FORMAT.into(),
                    version: VERSION,
                    keys: BTreeMap::new(),
                })
            }
            Err(e) => return Err(self.io(e)),
        };
        let corrupt = |message: String| ApiKeyError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(corrupt(format!(
                "format {:?} version {} (expected {FORMAT:?} version {VERSION})",
                file.format, file.version
            )));
        }
        Ok(file)
    }

    /// Read-modify-write under the writers' lock; the new file replaces the old one by
    /// rename, so a reader sees the old or the new file whole.
    fn modify<T>(
        &self,
        f: impl FnOnce(&mut KeyFile) -> Result<T, ApiKeyError>,
    ) -> Result<T, ApiKeyError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(sibling(&self.path, "lock"))
            .map_err(|e| self.io(e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.io(e.into()))?;
        let mut file = self.load()?;
        let out = f(&mut file)?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| self.io(e.into()))?;
        let tmp = sibling(&self.path, "tmp");
        let mut w = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.io(e))?;
        w.write_all(&bytes).map_err(|e| self.io(e))?;
        w.sync_all().map_err(|e| self.io(e))?;
        drop(w);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        drop(lock);
        Ok(out)
    }

    /// Creates a key for `tenant` and returns it; the caller prints it once.
    pub fn create(&self, tenant: &str, label: &str) -> Result<Zeroizing<String>, ApiKeyError> {
        if label.is_empty()
            || label.len() > 64
            || !label.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(ApiKeyError::BadLabel);
        }
        if !valid_tenant(tenant) {
            return Err(ApiKeyError::BadTenant);
        }
        let id = hex::encode(random::<8>()?);
        let secret = Zeroizing::new(hex::encode(random::<32>()?));
        let salt = random::<16>()?;
        let record = ApiKeyRecord {
            tenant: tenant.to_owned(),
            label: label.to_owned(),
            salt: hex::encode(salt),
            hash: hex::encode(digest(&salt, &secret)),
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        };
        self.modify(|f| {
            f.keys.insert(id.clone(), record);
            Ok(())
        })?;
        Ok(Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str())))
    }

    /// Revokes key `id`; revoking a revoked key keeps its first revocation time.
    pub fn revoke(&self, id: &str) -> Result<ApiKeyRecord, ApiKeyError> {
        self.modify(|f| {
            let rec = f
                .keys
                .get_mut(id)
                .ok_or_else(|| ApiKeyError::NotFound(id.to_owned()))?;
            rec.revoked_at_ms.get_or_insert_with(now_ms);
            Ok(rec.clone())
        })
    }

    /// Every key record, by id.
    pub fn list(&self) -> Result<Vec<(String, ApiKeyRecord)>, ApiKeyError> {
        Ok(self.load()?.keys.into_iter().collect())
    }

    /// Checks the key `presented` against the file as it is now.
    pub fn verify(&self, presented: &str) -> Result<Verdict, ApiKeyError> {
        let Some((id, secret)) = presented
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(Verdict::Invalid);
        };
        if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Verdict::Invalid);
        }
        let file = self.load()?;
        let Some(rec) = file.keys.get(id) else {
            return Ok(Verdict::Invalid);
        };
        let (Ok(salt), Ok(hash)) = (hex::decode(&rec.salt), hex::decode(&rec.hash)) else {
            return Ok(Verdict::Invalid);
        };
        let ok: bool = digest(&salt, secret).ct_eq(hash.as_slice()).into();
        Ok(match (ok, rec.revoked_at_ms) {
            (false, _) => Verdict::Invalid,
            (true, Some(_)) => Verdict::Revoked,
            (true, None) => Verdict::Valid(Owner {
                tenant: rec.tenant.clone(),
                key_id: id.to_owned(),
            }),
        })
    }
}

/// `<path>.<ext>` beside the key file.
fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let s = KeyStore::new(dir.path().join("keys.json"));
        let key = s.create("shop", "backend-1").unwrap();
        let Verdict::Valid(owner) = s.verify(&key).unwrap() else {
            panic!("key not valid")
        };
        assert_eq!(owner.tenant, "shop");
        assert!(key.contains(&owner.key_id));
        // The stored file does not contain the secret.
        let secret = key.rsplit('_').next().unwrap();
        let stored = std::fs::read_to_string(s.path()).unwrap();
        assert!(!stored.contains(secret));
        // One character off, wrong id, garbage.
        let mut wrong = key.to_string();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(s.verify(&wrong).unwrap(), Verdict::Invalid);
        assert_eq!(
            s.verify("tbk_0000000000000000_00").unwrap(),
            Verdict::Invalid
        );
        assert_eq!(s.verify("nonsense").unwrap(), Verdict::Invalid);
        assert_eq!(s.create("shop", "").unwrap_err().code(), "bad_label");
        assert_eq!(
            s.create("shop", "tab\there").unwrap_err().code(),
            "bad_label"
        );
        for t in ["", "a/b", "has space", &"t".repeat(MAX_TENANT_LEN + 1)] {
            assert_eq!(s.create(t, "x").unwrap_err().code(), "bad_tenant", "{t:?}");
        }
        // Revocation: the right secret is now refused; a wrong one is still just invalid.
        let first = s.revoke(&owner.key_id).unwrap().revoked_at_ms.unwrap();
        assert_eq!(s.verify(&key).unwrap(), Verdict::Revoked);
        assert_eq!(s.verify(&wrong).unwrap(), Verdict::Invalid);
        assert_eq!(s.revoke(&owner.key_id).unwrap().revoked_at_ms, Some(first));
        assert_eq!(
            s.revoke("0000000000000000").unwrap_err().code(),
            "api_key_not_found"
        );
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn a_broken_key_file_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let s = KeyStore::new(dir.path().join("keys.json"));
        let key = s.create("shop", "b").unwrap();
        std::fs::write(s.path(), b"{\"format\": 1").unwrap();
        assert_eq!(s.verify(&key).unwrap_err().code(), "api_keys_corrupt");
        std::fs::write(
            s.path(),
            br#"{"format": "other", "version": 1, "keys": {}}"#,
        )
        .unwrap();
        assert_eq!(s.verify(&key).unwrap_err().code(), "api_keys_corrupt");
    }
}
