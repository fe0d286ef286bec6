//! Refusals: a stable reason code, a message a person understands, and how the transport
//! should report it. Every front end (gRPC, batch files) turns these into its own answer.

use tron_proto::Address;

use crate::keys::KeyError;
use crate::ledger::LedgerError;
use crate::reason::ReasonCode;

/// How a refusal maps onto transport status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is malformed (undecodable bytes, bad address or payout id).
    InvalidArgument,
    /// Policy or ledger said no.
    Denied,
    /// A dependency (key backend, ledger) is down; retrying later may work.
    Unavailable,
}

/// A refused request: a stable reason code and a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: ReasonCode,
    pub message: String,
    /// The audit record of the refusal, when it could be written.
    pub audit_sequence: Option<u64>,
}

impl Refusal {
    /// A refusal not yet audited.
    pub fn new(kind: RefusalKind, code: ReasonCode, message: String) -> Self {
        Refusal {
            kind,
            code,
            message,
            audit_sequence: None,
        }
    }

    /// The key backend failed. UNAVAILABLE to the caller either way (nothing was signed; the
    /// ledger reservation is released, so the same payout may be retried), and the reason
    /// code is the backend's own (`pkcs11_token_not_found`, `pkcs11_session_lost`, ...), so
    /// monitoring can tell a pulled token from a wrong key without parsing messages.
    pub fn key_backend(e: &KeyError) -> Self {
        Refusal::new(RefusalKind::Unavailable, e.reason(), e.to_string())
    }

    /// The ledger could not be read or written: nothing was signed.
    pub fn ledger(e: &LedgerError) -> Self {
        Refusal::new(
            RefusalKind::Unavailable,
            ReasonCode::LedgerUnavailable,
            format!(
                "the ledger could not be read or written ({}): {e}",
                e.code()
            ),
        )
    }

    /// No key with this address is loaded here.
    pub fn key_not_loaded(key: &Address) -> Self {
        Refusal::new(
            RefusalKind::Denied,
            ReasonCode::KeyNotLoaded,
            format!("no key {key} is loaded in this signer"),
        )
    }
}
