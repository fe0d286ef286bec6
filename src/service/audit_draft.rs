//! Assembling and writing the audit record of one request (DESIGN invariant 7): every Sign,
//! Evaluate and reload, allowed or refused, ends as exactly one record.

use tron_proto::Address;

use crate::decode::Decoded;
use crate::ledger::{self, intent_json, AuditRecord, Ledger};
use crate::reason::ReasonCode;

use super::audit_budget::Budgets;
use super::bounded;
use super::refusal::{Refusal, RefusalKind};
use super::request;

/// An audit record filled in as the request moves along the decision path; it becomes a
/// record only with its outcome.
pub(super) struct Draft(AuditRecord);

impl Draft {
    /// What `peer` (as the transport named it) asked, at `time_ms`, under the policy with
    /// this hash. The caller is not known yet: see [`Draft::caller`].
    pub fn new(time_ms: i64, peer: &str, method: &str, policy_hash: &str) -> Self {
        Draft(AuditRecord {
            time_ms,
            caller: String::new(),
            identity: String::new(),
            peer: peer.to_owned(),
            method: method.to_owned(),
            key: None,
            txid: None,
            payout_id: None,
            intent: None,
            decision: ledger::Decision::Error,
            reason_code: String::new(),
            message: String::new(),
            policy_hash: policy_hash.to_owned(),
            approvals: None,
            deposit_index: None,
        })
    }

    /// The policy's caller the peer was recognised as, and by what.
    pub fn caller(mut self, name: &str, identity: String) -> Self {
        self.0.caller = name.to_owned();
        self.0.identity = identity;
        self
    }

    /// The caller's key (as `parsed` from `key_text`) and payout id, each validated before
    /// it is copied: a valid one as given, a refused one only as its bounded description
    /// (length, SHA-256, a prefix), so a huge field costs the audit log a few hundred bytes,
    /// not its size.
    pub fn fields<E>(
        mut self,
        parsed: &Result<Address, E>,
        key_text: &str,
        payout_id: &str,
    ) -> Self {
        self.0.key = Some(match parsed {
            Ok(a) => a.to_base58(),
            Err(_) => bounded::refused_field(key_text),
        });
        self.0.payout_id = Some(if request::payout_id_ok(payout_id) {
            payout_id.to_owned()
        } else {
            bounded::refused_field(payout_id)
        });
        self
    }

    /// The request's HD index, when it names one.
    pub fn deposit_index(mut self, index: Option<u32>) -> Self {
        self.0.deposit_index = index;
        self
    }

    /// The decoded transaction: txid and the intent's JSON view. (The key is already in,
    /// from [`Draft::fields`].)
    pub fn request(mut self, decoded: &Decoded) -> Self {
        self.0.txid = Some(hex::encode(decoded.envelope.txid));
        self.0.intent = Some(intent_json(decoded));
        self
    }

    /// The approvals the decision rests on (JSON text, see [`AuditRecord::approvals`]).
    pub fn approvals(mut self, json: String) -> Self {
        self.0.approvals = Some(json);
        self
    }

    /// The finished record.
    pub fn outcome(
        self,
        decision: ledger::Decision,
        code: ReasonCode,
        message: String,
    ) -> AuditRecord {
        AuditRecord {
            decision,
            reason_code: code.as_str().to_owned(),
            message,
            ..self.0
        }
    }
}

/// Writes `rec`, charged to its caller's audit budget; a failed write is a refusal
/// (nothing may be released without its record).
pub(super) async fn write(
    ledger: &Ledger,
    budget: &Budgets,
    rec: AuditRecord,
) -> Result<u64, Refusal> {
    budget.charge(&rec);
    ledger
        .audit(rec)
        .await
        .map_err(|e| Refusal::ledger_with(&e, "the audit log could not be written"))
}

/// Audits a refusal and returns it with its audit sequence filled in. A refusal whose record
/// cannot be written is still returned (it released nothing) and the failure is logged.
pub(super) async fn refuse(
    ledger: &Ledger,
    budget: &Budgets,
    draft: Draft,
    mut r: Refusal,
) -> Refusal {
    let decision = match r.kind {
        RefusalKind::Denied | RefusalKind::InvalidArgument | RefusalKind::Exhausted => {
            ledger::Decision::Deny
        }
        RefusalKind::Unavailable => ledger::Decision::Error,
    };
    let rec = draft.outcome(decision, r.code, r.message.clone());
    budget.charge(&rec);
    match ledger.audit(rec).await {
        Ok(seq) => r.audit_sequence = Some(seq),
        Err(e) => {
            tracing::error!(error = %e, code = %r.code, "could not audit a refusal");
        }
    }
    r
}
