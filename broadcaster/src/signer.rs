//! The signer, over gRPC. Refusals come back as gRPC errors with the stable reason code
//! in the `reason-code` metadata entry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tonic::transport::Channel;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::{Approval, SignRequest};
use tron_proto::Address;

use crate::builder;
use crate::model::Reason;

/// Metadata key the signer puts a refusal's reason code in.
pub const REASON_CODE_KEY: &str = "reason-code";
/// The signer's refusal for a second transaction while the first can still land. Not
/// final for us: it clears once the earlier transaction has expired by the signer's clock.
pub const PAYOUT_IN_FLIGHT: &str = "payout_in_flight";
/// The signer's refusal of a transaction that needs (more) approvals.
pub const APPROVAL_REQUIRED: &str = "approval_required";
/// Binary metadata entry of an `approval_required` refusal: the statement approvers sign.
pub const APPROVAL_STATEMENT_KEY: &str = "approval-statement-bin";
/// The signer's codes for one approval it will not count. The payout keeps waiting for
/// other approvals; `approval_rejected` (an approver cancelled) is final instead.
pub const VOID_APPROVAL_CODES: [&str; 7] = [
    "approval_invalid",
    "approval_mismatch",
    "approver_unknown",
    "approver_not_in_group",
    "approval_duplicate",
    "approval_by_initiator",
    "approval_expired",
];
/// Longest statement taken from the signer's metadata (the signer's own cap).
const MAX_STATEMENT_BYTES: usize = 4096;

/// What asking the signer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOutcome {
    Signed {
        signature: Vec<u8>,
        signed_transaction: Vec<u8>,
    },
    /// A final refusal (policy, ledger or malformed request).
    Denied(Reason),
    /// Not signed until approvers sign `statement` (the reason says who is still needed).
    ApprovalRequired { reason: Reason, statement: String },
    /// Transient (unreachable, busy, or `payout_in_flight`): try again later.
    Retry(String),
}

/// A lazily (re)connected signer client.
pub struct SignerConn {
    endpoint: String,
    timeout: Duration,
    /// Mutual TLS settings and the name the signer's certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    client: Mutex<Option<SignerClient<Channel>>>,
}

impl SignerConn {
    /// A connection to `endpoint`, over mutual TLS when `tls` is given (the client settings
    /// and the signer certificate's expected name).
    pub fn new(
        endpoint: String,
        timeout: Duration,
        tls: Option<(Arc<rustls::ClientConfig>, String)>,
    ) -> SignerConn {
        SignerConn {
            endpoint,
            timeout,
            tls,
            client: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Channel, tron_proto::client::ConnectError> {
        match &self.tls {
            Some((config, name)) => {
                let addr = self
                    .endpoint
                    .strip_prefix("http://")
                    .or_else(|| self.endpoint.strip_prefix("https://"))
                    .unwrap_or(&self.endpoint)
                    .trim_end_matches('/');
                tron_proto::client::connect_tls(addr, name, Arc::clone(config)).await
            }
            None => tron_proto::client::connect(&self.endpoint).await,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Asks for a signature over `raw_data`, with the approvals collected for it, and
    /// checks what comes back: the signature must recover to `key` over the txid we
    /// computed, and the signed transaction must wrap exactly our bytes. `deposit_index`
    /// names the HD index of a deposit key, or of the deposit address a gas key funds.
    pub async fn sign(
        &self,
        key: &Address,
        raw_data: &[u8],
        payout_id: &str,
        approvals: Vec<Approval>,
        deposit_index: Option<u32>,
    ) -> SignOutcome {
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            match self.connect().await {
                Ok(ch) => *guard = Some(SignerClient::new(ch)),
                Err(e) => return SignOutcome::Retry(e.to_string()),
            }
        }
        let Some(client) = guard.as_mut() else {
            return SignOutcome::Retry("signer not connected".into());
        };
        let mut req = tonic::Request::new(SignRequest {
            key: key.to_base58(),
            raw_data: raw_data.to_vec(),
            payout_id: payout_id.to_owned(),
            approvals,
            deposit_index,
        });
        req.set_timeout(self.timeout);
        let resp = match client.sign(req).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let outcome = classify(&status);
                if matches!(outcome, SignOutcome::Retry(_)) {
                    // Reconnect next time: the channel may be what is broken.
                    *guard = None;
                }
                return outcome;
            }
        };
        drop(guard);
        verify(key, raw_data, resp.signature, resp.signed_transaction)
    }
}

/// Checks a signature from any source (gRPC or a batch file) against our own bytes.
pub fn verify(
    key: &Address,
    raw_data: &[u8],
    signature: Vec<u8>,
    signed_transaction: Vec<u8>,
) -> SignOutcome {
    let txid = tron_proto::txid(raw_data);
    match tron_proto::sig::recover_address(&txid, &signature) {
        Ok(a) if &a == key => {}
        Ok(a) => {
            return SignOutcome::Retry(format!(
                "signature recovers to {a}, not {key}; not broadcasting"
            ))
        }
        Err(e) => return SignOutcome::Retry(format!("unusable signature: {e}")),
    }
    let ours = builder::signed_transaction(raw_data, &signature);
    if !signed_transaction.is_empty() && signed_transaction != ours {
        return SignOutcome::Retry(
            "signer's signed_transaction does not wrap the bytes we built".into(),
        );
    }
    SignOutcome::Signed {
        signature,
        signed_transaction: ours,
    }
}

/// Maps a gRPC status onto final or transient.
pub fn classify(status: &tonic::Status) -> SignOutcome {
    let code = status
        .metadata()
        .get(REASON_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let message = strip_code(status.message());
    match status.code() {
        tonic::Code::PermissionDenied | tonic::Code::InvalidArgument => {
            let code = code.unwrap_or_else(|| match status.code() {
                tonic::Code::InvalidArgument => "invalid_argument".into(),
                _ => "permission_denied".into(),
            });
            if code == PAYOUT_IN_FLIGHT {
                return SignOutcome::Retry(message);
            }
            if code == APPROVAL_REQUIRED {
                let statement = status
                    .metadata()
                    .get_bin(APPROVAL_STATEMENT_KEY)
                    .and_then(|v| v.to_bytes().ok())
                    .filter(|b| b.len() <= MAX_STATEMENT_BYTES)
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
                    .unwrap_or_default();
                return SignOutcome::ApprovalRequired {
                    reason: Reason { code, message },
                    statement,
                };
            }
            SignOutcome::Denied(Reason { code, message })
        }
        _ => SignOutcome::Retry(format!(
            "signer: {} {}",
            code.unwrap_or_else(|| format!("{:?}", status.code())),
            message
        )),
    }
}

/// `"[code] text"` → `"text"`.
fn strip_code(m: &str) -> String {
    if let Some(rest) = m.strip_prefix('[') {
        if let Some((_, text)) = rest.split_once("] ") {
            return text.to_owned();
        }
    }
    m.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status(code: tonic::Code, reason: &str, msg: &str) -> tonic::Status {
        let mut s = tonic::Status::new(code, msg.to_owned());
        s.metadata_mut()
            .insert(REASON_CODE_KEY, MetadataValue::try_from(reason).unwrap());
        s
    }

    #[test]
    fn classification() {
        let d = classify(&status(
            tonic::Code::PermissionDenied,
            "destination_not_allowed",
            "[destination_not_allowed] T... is not on the allowlist",
        ));
        assert_eq!(
            d,
            SignOutcome::Denied(Reason {
                code: "destination_not_allowed".into(),
                message: "T... is not on the allowlist".into()
            })
        );
        assert!(matches!(
            classify(&status(
                tonic::Code::InvalidArgument,
                "bad_payout_id",
                "[bad_payout_id] x"
            )),
            SignOutcome::Denied(_)
        ));
        assert!(matches!(
            classify(&status(
                tonic::Code::PermissionDenied,
                PAYOUT_IN_FLIGHT,
                "x"
            )),
            SignOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(&status(tonic::Code::Unavailable, "ledger_busy", "x")),
            SignOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(&tonic::Status::deadline_exceeded("slow")),
            SignOutcome::Retry(_)
        ));
        let mut needs = status(
            tonic::Code::PermissionDenied,
            APPROVAL_REQUIRED,
            "[approval_required] still needed: 2 of \"treasury\"",
        );
        needs.metadata_mut().insert_bin(
            APPROVAL_STATEMENT_KEY,
            tonic::metadata::MetadataValue::from_bytes(b"statement text"),
        );
        assert_eq!(
            classify(&needs),
            SignOutcome::ApprovalRequired {
                reason: Reason {
                    code: APPROVAL_REQUIRED.into(),
                    message: "still needed: 2 of \"treasury\"".into()
                },
                statement: "statement text".into()
            }
        );
    }
}
