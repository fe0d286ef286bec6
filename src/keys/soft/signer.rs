//! Keystore keys as [`KeyBackend`]s, so the service signs through one trait whatever holds
//! the key.

use std::sync::Arc;

use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

use super::keystore::Keystore;
use crate::keys::backend::{KeyBackend, KeyError, SignFuture};
use crate::keys::ring::KeyRing;
use crate::reason::ReasonCode;

/// `KeyBackend::backend()` for these keys.
pub const BACKEND: &str = "soft";

/// One key of an unlocked, shared keystore.
pub struct KeystoreKey {
    store: Arc<Keystore>,
    address: Address,
    label: String,
}

impl KeystoreKey {
    fn sign_now(&self, txid: &[u8; 32]) -> Result<RecoverableSignature, KeyError> {
        let (_, key) = self
            .store
            .get(&self.address)
            .ok_or_else(|| KeyError::Failed {
                backend: BACKEND,
                reason: ReasonCode::SoftKeyMissing,
                detail: format!("key {} is no longer in the keystore", self.address),
            })?;
        key.sign_txid(txid).map_err(|e| KeyError::Failed {
            backend: BACKEND,
            reason: ReasonCode::SoftSignFailed,
            detail: e.to_string(),
        })
    }
}

impl KeyBackend for KeystoreKey {
    fn address(&self) -> Address {
        self.address
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn label(&self) -> &str {
        &self.label
    }

    /// A software signature costs about what a thread hand-off does (BENCHMARKS.md,
    /// `decode_sign`), so it runs inline on the caller's worker.
    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
        let result = self.sign_now(txid);
        Box::pin(std::future::ready(result))
    }
}

/// Adds every key of `store` to `ring`; a duplicate address is returned as an error.
pub fn add_to_ring(store: Arc<Keystore>, ring: &mut KeyRing) -> Result<usize, Address> {
    let keys: Vec<(Address, String)> = store
        .signing_keys()
        .map(|(info, _)| (info.address, info.label.clone()))
        .collect();
    let n = keys.len();
    for (address, label) in keys {
        ring.insert(Arc::new(KeystoreKey {
            store: Arc::clone(&store),
            address,
            label,
        }))?;
    }
    Ok(n)
}
