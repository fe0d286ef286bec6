//! The one trait every key backend implements, and the one error they all report.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use tron_proto::hd::AccountXpub;
use tron_proto::sig::RecoverableSignature;
use tron_proto::Address;

use crate::reason::ReasonCode;

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

/// An HD deposit account: it derives the deposit key of one index when a request needs
/// it, so the signer never holds a table of child keys.
pub trait DepositKeys: Send + Sync {
    /// The account xpub the policy names it by.
    fn xpub(&self) -> &AccountXpub;
    fn label(&self) -> &str;
    /// The deposit key `m/44'/195'/0'/0/index`.
    fn derive(&self, index: u32) -> Result<Arc<dyn KeyBackend>, KeyError>;
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
        reason: ReasonCode,
        detail: String,
    },
    /// The backend answered, but not with a usable signature.
    #[error("{backend} backend failed to sign: {detail}")]
    Failed {
        backend: &'static str,
        reason: ReasonCode,
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
    pub fn reason(&self) -> ReasonCode {
        match self {
            KeyError::Unavailable { reason, .. } | KeyError::Failed { reason, .. } => *reason,
        }
    }
}
