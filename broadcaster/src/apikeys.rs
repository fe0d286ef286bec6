//! API keys for payment backends: shown once at creation, stored only as a salted hash.
//!
//! A key is `tbk_<id>_<secret>`: the id finds the record without scanning, the secret is
//! 256 random bits, so a salted SHA-256 is enough (no password stretching is needed for
//! a high-entropy secret) and the comparison is constant-time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::model::now_ms;
use crate::store::{Store, StoreError};

const PREFIX: &str = "tbk_";

/// What is stored for a key. Never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub label: String,
    pub salt: String,
    pub hash: String,
    pub created_at_ms: i64,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("label must be 1-64 printable ASCII characters")]
    BadLabel,
    #[error("no randomness available: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiKeyError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::BadLabel => "bad_label",
            ApiKeyError::Random(_) => "no_randomness",
            ApiKeyError::Store(e) => e.code(),
        }
    }
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

/// Creates a key and returns it; the caller prints it once.
pub fn create(store: &Store, label: &str) -> Result<Zeroizing<String>, ApiKeyError> {
    if label.is_empty()
        || label.len() > 64
        || !label.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return Err(ApiKeyError::BadLabel);
    }
    let id = hex::encode(random::<8>()?);
    let secret = Zeroizing::new(hex::encode(random::<32>()?));
    let salt = random::<16>()?;
    let record = ApiKeyRecord {
        label: label.to_owned(),
        salt: hex::encode(salt),
        hash: hex::encode(digest(&salt, &secret)),
        created_at_ms: now_ms(),
    };
    store.put_api_key(&id, &record)?;
    Ok(Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str())))
}

/// The label of the key `presented`, if it is valid.
pub fn verify(store: &Store, presented: &str) -> Result<Option<String>, StoreError> {
    let Some((id, secret)) = presented
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let Some(rec) = store.get_api_key::<ApiKeyRecord>(id)? else {
        return Ok(None);
    };
    let (Ok(salt), Ok(hash)) = (hex::decode(&rec.salt), hex::decode(&rec.hash)) else {
        return Ok(None);
    };
    let ok: bool = digest(&salt, secret).ct_eq(hash.as_slice()).into();
    Ok(ok.then_some(rec.label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("k.redb")).unwrap();
        let key = create(&s, "backend-1").unwrap();
        assert_eq!(verify(&s, &key).unwrap().as_deref(), Some("backend-1"));
        // The stored record does not contain the secret.
        let recs = s.list_api_keys::<ApiKeyRecord>().unwrap();
        let secret = key.rsplit('_').next().unwrap();
        assert!(!serde_json::to_string(&recs).unwrap().contains(secret));
        // One character off, wrong id, garbage.
        let mut wrong = key.to_string();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(verify(&s, &wrong).unwrap(), None);
        assert_eq!(verify(&s, "tbk_0000000000000000_00").unwrap(), None);
        assert_eq!(verify(&s, "nonsense").unwrap(), None);
        assert_eq!(create(&s, "").unwrap_err().code(), "bad_label");
        assert_eq!(create(&s, "tab\there").unwrap_err().code(), "bad_label");
    }
}
