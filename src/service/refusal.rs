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
    /// The caller has used up a budget (audit bytes per second); slow down and retry.
    Exhausted,
}

/// A refused request: a stable reason code and a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: ReasonCode,
    pub message: String,
    /// The audit record of the refusal, when it could be written.
    pub audit_sequence: Option<u64>,
    /// `approval_required`: the statement approvers sign (also at the end of `message`).
    pub statement: Option<String>,
}

impl Refusal {
    /// A refusal not yet audited. The message is capped (see [`super::bounded`]): it goes to
    /// the caller, the log and the audit record, and may quote input.
    pub fn new(kind: RefusalKind, code: ReasonCode, message: String) -> Self {
        Refusal {
            kind,
            code,
            message: super::bounded::cap_message(message),
            audit_sequence: None,
            statement: None,
        }
    }

    /// `approval_required`: the message carries the statement approvers sign, built from the
    /// policy and the decoded transaction only (no free input but the validated payout id),
    /// so it gets a larger cap than other messages: cut, it could not be signed.
    pub fn approval_required(message: String, statement: String) -> Self {
        Refusal {
            kind: RefusalKind::Denied,
            code: ReasonCode::ApprovalRequired,
            message: super::bounded::cap_message_to(
                format!("{message}{statement}"),
                4 * super::bounded::MAX_MESSAGE_BYTES,
            ),
            audit_sequence: None,
            statement: Some(statement),
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
        Refusal::ledger_with(e, "the ledger could not be read or written")
    }

    /// A ledger failure, `what` saying what did not happen: UNAVAILABLE either way, coded
    /// `ledger_busy` when the writer's queue stayed full and `ledger_unavailable` otherwise.
    pub fn ledger_with(e: &LedgerError, what: &str) -> Self {
        let code = match e {
            LedgerError::QueueFull { .. } => ReasonCode::LedgerBusy,
            _ => ReasonCode::LedgerUnavailable,
        };
        Refusal::new(
            RefusalKind::Unavailable,
            code,
            format!("{what} ({}): {e}", e.code()),
        )
    }

    /// No key with this address is loaded here.
    pub fn deposit_account_not_loaded(account: &str) -> Self {
        Refusal::new(
            RefusalKind::Denied,
            ReasonCode::DepositAccountNotLoaded,
            format!("deposit account {account:?} has no HD seed in this signer's keystore"),
        )
    }

    pub fn key_not_loaded(key: &Address) -> Self {
        Refusal::new(
            RefusalKind::Denied,
            ReasonCode::KeyNotLoaded,
            format!("no key {key} is loaded in this signer"),
        )
    }
}
