//! Key backends. Each turns a txid into a low-S `r || s || v` signature without ever
//! exposing the private key; the service only sees [`KeyBackend`].

pub mod cli;
pub mod pkcs11;
pub mod soft;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

pub use soft::SoftKey;

/// The future a backend returns; boxed so backends can be trait objects.
pub type SignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RecoverableSignature, KeyError>> + Send + 'a>>;

/// One signing key, wherever it lives (memory, HSM).
pub trait KeyBackend: Send + Sync {
    fn address(&self) -> Address;
    /// "soft" or "pkcs11".
    fn backend(&self) -> &'static str;
    fn label(&self) -> &str;
    /// Signs the txid. Implementations that block (HSM calls) must not block the caller's
    /// async worker thread.
    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a>;
}

/// Why a backend could not sign. Never carries key material or PINs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Transient: the device or session is down; retrying later may work.
    #[error("{backend} backend unavailable: {detail}")]
    Unavailable {
        backend: &'static str,
        /// The backend's own stable code (e.g. `pkcs11_token_not_found`), which callers
        /// see as the reason code so an operator knows what to fix.
        reason: &'static str,
        detail: String,
    },
    /// The backend answered, but not with a usable signature.
    #[error("{backend} backend failed to sign: {detail}")]
    Failed {
        backend: &'static str,
        reason: &'static str,
        detail: String,
    },
}

impl KeyError {
    /// Which of the two kinds this is.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Unavailable { .. } => "key_backend_unavailable",
            KeyError::Failed { .. } => "key_backend_failed",
        }
    }

    /// The backend's specific code.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::Unavailable { reason, .. } | KeyError::Failed { reason, .. } => reason,
        }
    }
}

/// The keys the service may sign with, by address.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<Address, Arc<dyn KeyBackend>>,
}

impl KeyRing {
    /// Adds a key; a second key with the same address is refused.
    pub fn insert(&mut self, key: Arc<dyn KeyBackend>) -> Result<(), Address> {
        let addr = key.address();
        if self.keys.contains_key(&addr) {
            return Err(addr);
        }
        self.keys.insert(addr, key);
        Ok(())
    }

    pub fn get(&self, address: &Address) -> Option<&Arc<dyn KeyBackend>> {
        self.keys.get(address)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn KeyBackend>> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}
