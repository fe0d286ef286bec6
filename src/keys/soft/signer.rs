//! Keystore keys as [`KeyBackend`]s, so the service signs through one trait whatever holds
//! the key.

use std::sync::Arc;

use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

use tron_proto::hd::AccountXpub;

use super::key::SoftKey;
use super::keystore::Keystore;
use crate::keys::backend::{DepositKeys, KeyBackend, KeyError, SignFuture};
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

/// One HD account of an unlocked, shared keystore.
pub struct KeystoreHd {
    store: Arc<Keystore>,
    /// Its place in the keystore's account list.
    position: usize,
    xpub: AccountXpub,
    label: String,
}

/// A deposit key derived for one request; wiped when the request drops it.
struct DerivedKey {
    key: SoftKey,
    label: String,
}

impl KeyBackend for DerivedKey {
    fn address(&self) -> Address {
        self.key.address()
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
        let result = self.key.sign_txid(txid).map_err(|e| KeyError::Failed {
            backend: BACKEND,
            reason: ReasonCode::SoftSignFailed,
            detail: e.to_string(),
        });
        Box::pin(std::future::ready(result))
    }
}

impl DepositKeys for KeystoreHd {
    fn xpub(&self) -> &AccountXpub {
        &self.xpub
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn derive(&self, index: u32) -> Result<Arc<dyn KeyBackend>, KeyError> {
        let failed = |detail: String| KeyError::Failed {
            backend: BACKEND,
            reason: ReasonCode::SoftSignFailed,
            detail,
        };
        let (_, account) = self.store.hd_accounts().nth(self.position).ok_or_else(|| {
            failed(format!(
                "HD account {:?} is no longer in the keystore",
                self.label
            ))
        })?;
        let key = account
            .derive(index)
            .map_err(|e| failed(format!("HD account {:?}: {e}", self.label)))?;
        Ok(Arc::new(DerivedKey {
            key,
            label: format!("{} #{index}", self.label),
        }))
    }
}

/// Adds every key of `store` to `ring`, then its HD accounts; a duplicate address is
/// returned as an error (a duplicate HD account cannot occur: the keystore refuses it).
pub fn add_to_ring(store: Arc<Keystore>, ring: &mut KeyRing) -> Result<usize, Address> {
    let accounts: Vec<(usize, AccountXpub, String)> = store
        .hd_accounts()
        .enumerate()
        .map(|(i, (info, account))| (i, account.xpub().clone(), info.label.clone()))
        .collect();
    for (position, xpub, label) in accounts {
        let hd = Arc::new(KeystoreHd {
            store: Arc::clone(&store),
            position,
            xpub,
            label,
        });
        if let Err(label) = ring.insert_deposit_account(hd) {
            tracing::warn!(account = %label, "an HD account is loaded twice; the first is used");
        }
    }
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
