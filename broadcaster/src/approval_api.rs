//! The approval API: the payouts waiting for approvers (`GET /v1/approvals`) and the
//! route approvers' signatures come in by (`POST /v1/payouts/{id}/approvals`).
//!
//! Nothing here decides whether an approval counts: the signer verifies every signature
//! against its own statement and policy. This side only refuses what is malformed or
//! cannot apply (another transaction, a payout not waiting), each with its own code, and
//! keeps every approval it took so the payout's history shows who sent what.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{body_error, check_payout_id, echo, parse_limit, read_body, ApiError};
use crate::model::{now_ms, ApprovalProgress, CollectedApproval, Owner, Payout, Reason, Status};
use crate::store::Store;

/// Most approvals kept for one transaction (the signer takes at most this many).
pub const MAX_APPROVALS: usize = 16;
/// Longest armored signature or statement (the signer's own caps).
pub const MAX_APPROVAL_BYTES: usize = 4096;
const ARMOR_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const ARMOR_END: &str = "-----END SSH SIGNATURE-----";

/// The approval routes, to merge beside the payout routes behind the same API keys.
pub fn routes(store: Arc<Store>) -> Router {
    Router::new()
        .route("/v1/approvals", get(list_pending))
        .route("/v1/payouts/{id}/approvals", post(submit))
        .with_state(store)
}

/// An approval (or rejection) as an approver sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitApproval {
    /// The transaction the approver signed for (the statement names it).
    pub txid: String,
    /// The armored output of `tron-signer approve` / `ssh-keygen -Y sign`.
    pub signature: String,
    /// The statement that was signed; optional, passed on to the signer.
    #[serde(default)]
    pub statement: String,
}

/// One payout waiting for approvers, with everything they need to decide.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingView {
    pub payout_id: String,
    /// The payout id the signer sees (`<tenant>/<id>`): pass it to `tron-signer approve`.
    pub signer_payout_id: String,
    pub txid: String,
    /// The unsigned transaction bytes, hex: `tron-signer approve --raw-data`.
    pub raw_data: String,
    /// Node time (ms) after which approvals of this txid are void and a new transaction
    /// is built.
    pub expiration: i64,
    /// The text approvers sign (`decision: approve`; the same with `decision: reject`
    /// cancels the payout).
    pub statement: String,
    /// The signer's words on which groups and counts are still needed.
    pub needed: String,
    /// Transactions built earlier for this payout whose approvals are void.
    pub superseded_txids: Vec<String>,
    pub approvals: Vec<ApprovalView>,
}

/// One collected approval, without its signature text.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalView {
    pub received_at: i64,
    pub received_from: String,
    pub state: ApprovalProgress,
    pub refusal: Option<Reason>,
}

impl PendingView {
    /// The view of `p`, if it waits for approvals.
    pub fn of(p: &Payout) -> Option<PendingView> {
        if p.status != Status::AwaitingApproval {
            return None;
        }
        let a = p.current()?;
        let st = a.approval.as_ref()?;
        Some(PendingView {
            payout_id: p.id.clone(),
            signer_payout_id: p.key(),
            txid: a.txid.clone(),
            raw_data: a.raw_data.clone(),
            expiration: a.expiration_ms,
            statement: st.statement.clone(),
            needed: st.needed.clone(),
            superseded_txids: p.attempts[..p.attempts.len() - 1]
                .iter()
                .map(|a| a.txid.clone())
                .collect(),
            approvals: st
                .approvals
                .iter()
                .map(|c| ApprovalView {
                    received_at: c.received_at_ms,
                    received_from: c.received_from.clone(),
                    state: c.state,
                    refusal: c.refusal.clone(),
                })
                .collect(),
        })
    }
}

/// Query of the list route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingQuery {
    pub limit: Option<String>,
}

async fn list_pending(
    State(store): State<Arc<Store>>,
    Extension(owner): Extension<Owner>,
    query: Result<Query<PendingQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad("invalid_query", e.body_text()))?;
    let limit = parse_limit(q.limit.as_deref())?;
    let pending: Vec<PendingView> = store
        .list_all(Some(&owner.tenant), Some(Status::AwaitingApproval), limit)?
        .iter()
        .filter_map(PendingView::of)
        .collect();
    Ok(Json(json!({ "approvals": pending })))
}

/// Shape checks only: the signer verifies the signature itself.
fn validate(req: &SubmitApproval) -> Result<(), ApiError> {
    if req.txid.len() != 64
        || !req
            .txid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::bad(
            "invalid_txid",
            format!("txid {} is not 64 lowercase hex digits", echo(&req.txid)),
        ));
    }
    let sig = req.signature.trim();
    if sig.len() > MAX_APPROVAL_BYTES {
        return Err(ApiError::bad(
            "invalid_approval_signature",
            format!(
                "the signature has {} bytes; at most {MAX_APPROVAL_BYTES} are taken",
                sig.len()
            ),
        ));
    }
    if !sig.starts_with(ARMOR_BEGIN) || !sig.ends_with(ARMOR_END) {
        return Err(ApiError::bad(
            "invalid_approval_signature",
            format!(
                "the signature must be armored as `ssh-keygen -Y sign` writes it \
                 ({ARMOR_BEGIN} ... {ARMOR_END}); got {}",
                echo(sig)
            ),
        ));
    }
    if req.statement.len() > MAX_APPROVAL_BYTES {
        return Err(ApiError::bad(
            "invalid_approval_statement",
            format!(
                "the statement has {} bytes; at most {MAX_APPROVAL_BYTES} are taken",
                req.statement.len()
            ),
        ));
    }
    if !req.statement.is_empty() && !req.statement.contains(&format!("\ntxid: {}\n", req.txid)) {
        return Err(ApiError::bad(
            "invalid_approval_statement",
            format!("the statement does not name txid {}", req.txid),
        ));
    }
    Ok(())
}

async fn submit(
    State(store): State<Arc<Store>>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_payout_id(&id)?;
    let body = read_body(body)?;
    let req: SubmitApproval = serde_json::from_slice(&body).map_err(body_error)?;
    validate(&req)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "payout_not_found",
            format!("no payout {id:?}"),
        )
    };
    let Some(p) = store.get_for(&owner.tenant, &id)? else {
        return Err(not_found());
    };
    let signature = req.signature.trim().to_owned();
    // Whether this signature is new (decided inside the store transaction).
    let mut new = false;
    let p = store.update(&p.key(), |p| -> Result<(), ApiError> {
        let superseded = p.attempts.iter().rev().skip(1).any(|a| a.txid == req.txid);
        let current = p.current().map(|a| a.txid.clone()).unwrap_or_default();
        if p.status != Status::AwaitingApproval {
            let why = if superseded {
                format!(
                    "; transaction {} was replaced by {current} and approvals of it are void",
                    req.txid
                )
            } else {
                String::new()
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "payout_not_awaiting_approval",
                format!(
                    "payout {id:?} is {}, not awaiting approval{why}",
                    p.status.as_str()
                ),
            ));
        }
        if req.txid != current {
            return Err(if superseded {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "approval_txid_superseded",
                    format!(
                        "transaction {} expired while waiting for approval and was rebuilt \
                         as {current}; approvals of {} are void: sign the new statement \
                         (GET /v1/approvals)",
                        req.txid, req.txid
                    ),
                )
            } else {
                ApiError::bad(
                    "approval_txid_unknown",
                    format!(
                        "txid {} is no transaction of payout {id:?}; it waits for approval \
                         of {current}",
                        req.txid
                    ),
                )
            });
        }
        let Some(st) = p.current_mut().and_then(|a| a.approval.as_mut()) else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "payout_not_awaiting_approval",
                format!("payout {id:?} has no approval request on record"),
            ));
        };
        if st.approvals.iter().any(|c| c.signature == signature) {
            return Ok(());
        }
        if st.approvals.len() >= MAX_APPROVALS {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "too_many_approvals",
                format!("transaction {current} already has {MAX_APPROVALS} approvals on record"),
            ));
        }
        st.approvals.push(CollectedApproval {
            signature: signature.clone(),
            statement: req.statement.clone(),
            received_at_ms: now_ms(),
            received_from: owner.key_id.clone(),
            state: ApprovalProgress::Pending,
            refusal: None,
        });
        p.updated_at_ms = now_ms();
        new = true;
        Ok(())
    })?;
    let status = if new {
        tracing::info!(payout = %p.id, tenant = %p.tenant, key = %owner.key_id, "approval received");
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "approval": PendingView::of(&p) }))).into_response())
}
