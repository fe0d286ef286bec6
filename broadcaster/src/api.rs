//! The payout API for payment backends (HTTP/JSON, bearer API keys).
//!
//! Every refusal is `{"error": {"code", "message"}}` with a stable code, so a backend can
//! act on it without parsing prose. The OpenAPI document in `openapi.json` describes it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tron_proto::Address;

use crate::amount;
use crate::apikeys::{ApiKeyError, KeyStore, Verdict, MAX_TENANT_LEN};
use crate::model::{
    now_ms, ApprovalProgress, ApprovalState, Asset, Origin, Owner, Payout, Reason, Status,
};
use crate::store::{Created, Store, StoreError};

/// The OpenAPI 3 document the server serves at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");
/// The longest payout id the signer (and the batch format it shares) accepts.
pub const SIGNER_MAX_PAYOUT_ID_LEN: usize = tron_proto::batch::MAX_PAYOUT_ID_LEN;
/// Longest payout id: the signer sees `<tenant>/<id>` (see `Payout::key`), which must fit
/// its bound with the longest tenant name.
pub const MAX_PAYOUT_ID_LEN: usize = SIGNER_MAX_PAYOUT_ID_LEN - MAX_TENANT_LEN - 1;
/// Longest request body. A valid create request is well under 1 KiB; the cap stops a
/// client from making the server buffer megabytes, and is set high enough that oversized
/// fields inside it still reach (and are refused by) their own length checks.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Payout API connections open at once; more wait in the kernel's accept backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long an API connection may go without a byte in either direction before it is
/// closed (a keep-alive client that still uses it keeps it).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest address text: a Base58 Tron address has 34 characters. Checked before decoding
/// (Base58 decoding is quadratic in the input length), as defence in depth beside the
/// parser's own bound.
pub const MAX_ADDRESS_LEN: usize = 34;
/// How much of a refused input a message quotes.
const ECHO_LEN: usize = 48;
/// Longest quoted parser message.
const MESSAGE_LEN: usize = 200;
/// Default and largest page for listing.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    /// Read on every request, so created and revoked keys count at once.
    pub keys: Arc<KeyStore>,
    /// The paying address, so a payout to itself can be refused.
    pub owner: Address,
}

/// An API refusal: HTTP status, stable code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "storage failure in API");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            "storage unavailable; retry",
        )
    }
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> ApiError {
        tracing::error!(error = %e, "API key file unusable; refusing every request");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            "API keys unavailable; retry",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// The create request, exactly these four fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayout {
    pub id: String,
    pub asset: String,
    pub to: String,
    pub amount: String,
}

/// A payout as the API shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayoutView {
    pub id: String,
    /// The id of the API key that created it.
    pub created_by: String,
    pub asset: Asset,
    pub to: String,
    pub amount: String,
    pub status: Status,
    pub created_at: i64,
    pub updated_at: i64,
    pub txid: Option<String>,
    pub expiration: Option<i64>,
    pub attempts: Vec<AttemptView>,
    pub denial: Option<Reason>,
    pub failure: Option<Reason>,
    pub block_number: Option<u64>,
    pub block_timestamp: Option<i64>,
    pub history: Vec<TransitionView>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttemptView {
    pub txid: String,
    pub expiration: i64,
    pub origin: Origin,
    pub signed: bool,
    pub broadcast_at: Option<i64>,
    /// Present once the signer asked for approvals of this transaction (the statement and
    /// each approval are at `GET /v1/approvals` while the payout waits).
    pub approvals: Option<ApprovalSummary>,
}

/// How far the approvals of one transaction have got.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalSummary {
    /// The signer's last word on which groups and counts are still needed.
    pub needed: String,
    pub accepted: usize,
    pub refused: usize,
    pub pending: usize,
}

impl ApprovalSummary {
    fn of(st: &ApprovalState) -> ApprovalSummary {
        let count = |s| st.approvals.iter().filter(|c| c.state == s).count();
        ApprovalSummary {
            needed: st.needed.clone(),
            accepted: count(ApprovalProgress::Accepted),
            refused: count(ApprovalProgress::Refused),
            pending: count(ApprovalProgress::Pending),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TransitionView {
    pub status: Status,
    pub at: i64,
    pub note: String,
}

impl From<&Payout> for PayoutView {
    fn from(p: &Payout) -> PayoutView {
        PayoutView {
            id: p.id.clone(),
            created_by: p.created_by.clone(),
            asset: p.asset,
            to: p.to.clone(),
            amount: amount::format(p.amount_units),
            status: p.status,
            created_at: p.created_at_ms,
            updated_at: p.updated_at_ms,
            txid: p.current().map(|a| a.txid.clone()),
            expiration: p.current().map(|a| a.expiration_ms),
            attempts: p
                .attempts
                .iter()
                .map(|a| AttemptView {
                    txid: a.txid.clone(),
                    expiration: a.expiration_ms,
                    origin: a.origin,
                    signed: a.signed_transaction.is_some(),
                    broadcast_at: a.broadcast_at_ms,
                    approvals: a.approval.as_ref().map(ApprovalSummary::of),
                })
                .collect(),
            denial: p.denial.clone(),
            failure: p.failure.clone(),
            block_number: p.block_number,
            block_timestamp: p.block_timestamp_ms,
            history: p
                .history
                .iter()
                .map(|t| TransitionView {
                    status: t.status,
                    at: t.at_ms,
                    note: t.note.clone(),
                })
                .collect(),
        }
    }
}

/// The router: `/openapi.json` and `/healthz` open, `/v1/*` behind API keys.
pub fn router(state: ApiState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with more `/v1` routes (the receive side's) behind the same API keys; the
/// key's [`Owner`] is in each request's extensions.
pub fn router_with(state: ApiState, more: Router) -> Router {
    let v1 = Router::new()
        .route("/v1/payouts", get(list_payouts).post(create_payout))
        .route("/v1/payouts/{id}", get(get_payout))
        .with_state(state.clone())
        .merge(more)
        .route_layer(middleware::from_fn_with_state(state, require_key));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// At most [`ECHO_LEN`] characters of `s`, quoted, with its length when cut.
pub(crate) fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_LEN) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &s[..end], s.len()),
    }
}

/// A parser's message cut to [`MESSAGE_LEN`] characters: it may quote the input.
pub(crate) fn clip(s: String) -> String {
    match s.char_indices().nth(MESSAGE_LEN) {
        None => s,
        Some((end, _)) => format!("{}... ({} bytes)", &s[..end], s.len()),
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn require_key(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let unauthorized = |code, msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, msg);
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing_api_key",
            "send the API key as `Authorization: Bearer <key>`",
        ));
    };
    let Some(key) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return Err(unauthorized(
            "missing_api_key",
            "the Authorization header must be `Bearer <key>`",
        ));
    };
    match state.keys.verify(key.trim())? {
        Verdict::Valid(owner) => {
            tracing::debug!(tenant = %owner.tenant, key = %owner.key_id, path = %req.uri().path(), "authorized");
            req.extensions_mut().insert(owner);
            Ok(next.run(req).await)
        }
        Verdict::Revoked => Err(unauthorized(
            "api_key_revoked",
            "the API key has been revoked",
        )),
        Verdict::Invalid => Err(unauthorized("invalid_api_key", "the API key is not valid")),
    }
}

pub(crate) fn body_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = clip(e.to_string());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad("invalid_json", format!("body is not JSON: {msg}"))
        }
        Category::Data if msg.starts_with("unknown field") => ApiError::bad("unknown_field", msg),
        Category::Data if msg.starts_with("missing field") => ApiError::bad("missing_field", msg),
        Category::Data => ApiError::bad("invalid_body", msg),
    }
}

/// Payout ids are idempotency keys within a tenant: 1-[`MAX_PAYOUT_ID_LEN`] printable
/// ASCII without spaces (as the signer requires), so they also fit a URL path segment.
pub fn check_payout_id(id: &str) -> Result<(), ApiError> {
    check_id(id, MAX_PAYOUT_ID_LEN, "invalid_payout_id")
}

/// A merchant-chosen id that goes into URL paths: 1 to `max` printable ASCII characters
/// without spaces, `/`, `?` or `#`; refused with `code` otherwise.
pub fn check_id(id: &str, max: usize, code: &'static str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > max
        || !id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != '?' && c != '#')
    {
        return Err(ApiError::bad(
            code,
            format!(
                "id must be 1-{max} printable ASCII characters without spaces, '/', '?' or '#'"
            ),
        ));
    }
    Ok(())
}

/// Validates a create request into (asset, destination, base units).
pub fn validate(req: &CreatePayout, owner: &Address) -> Result<(Asset, Address, u64), ApiError> {
    check_payout_id(&req.id)?;
    let asset = Asset::parse(&req.asset).ok_or_else(|| {
        ApiError::bad(
            "unsupported_asset",
            format!(
                "asset {} is not supported; use \"TRX\" or \"USDT\"",
                echo(&req.asset)
            ),
        )
    })?;
    if req.to.len() > MAX_ADDRESS_LEN {
        return Err(ApiError::bad(
            "invalid_address",
            format!(
                "to {} is longer than a Base58 Tron address ({MAX_ADDRESS_LEN} characters)",
                echo(&req.to)
            ),
        ));
    }
    let to = Address::from_base58(&req.to).map_err(|e| {
        ApiError::bad(
            "invalid_address",
            format!(
                "to {} is not a Base58 Tron address ({}: {})",
                echo(&req.to),
                e.code(),
                echo(&e.to_string())
            ),
        )
    })?;
    if &to == owner {
        return Err(ApiError::bad(
            "destination_is_source",
            "to is the paying address itself",
        ));
    }
    let units =
        amount::parse(&req.amount).map_err(|e| ApiError::bad(e.code(), clip(e.to_string())))?;
    Ok((asset, to, units))
}

/// The request body, or the refusal for one too large or unreadable.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad(
                "invalid_json",
                format!("body unreadable: {}", e.body_text()),
            )
        }
    })
}

async fn create_payout(
    State(state): State<ApiState>,
    Extension(owner): Extension<Owner>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let req: CreatePayout = serde_json::from_slice(&body).map_err(body_error)?;
    let (asset, to, units) = validate(&req, &state.owner)?;
    let p = Payout::new(
        &owner,
        req.id.clone(),
        asset,
        to.to_base58(),
        units,
        now_ms(),
    );
    match state.store.create_payout(p)? {
        Created::New(p) => {
            tracing::info!(payout = %p.id, tenant = %p.tenant, key = %p.created_by, asset = asset.as_str(), to = %p.to, amount = %p.amount_units, "payout queued");
            Ok((StatusCode::CREATED, Json(PayoutView::from(&p))).into_response())
        }
        Created::Existing(p) => Ok((StatusCode::OK, Json(PayoutView::from(&p))).into_response()),
        Created::Conflict(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "payout_conflict",
            format!(
                "payout {:?} exists with a different asset, destination or amount",
                req.id
            ),
        )),
    }
}

/// Another tenant's payout is "not found", exactly like a missing one, so ids do not leak.
async fn get_payout(
    State(state): State<ApiState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<Json<PayoutView>, ApiError> {
    check_payout_id(&id)?;
    match state.store.get_for(&owner.tenant, &id)? {
        Some(p) => Ok(Json(PayoutView::from(&p))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "payout_not_found",
            format!("no payout {id:?}"),
        )),
    }
}

/// A `limit` query value: 1-[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub(crate) fn parse_limit(l: Option<&str>) -> Result<usize, ApiError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad("invalid_limit", format!("limit must be 1-{MAX_LIMIT}"))),
    }
}

/// Query of the list route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub limit: Option<String>,
}

async fn list_payouts(
    State(state): State<ApiState>,
    Extension(owner): Extension<Owner>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad("invalid_query", e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad(
                "invalid_status",
                format!(
                    "status {} is not one of {}",
                    echo(s),
                    Status::ALL.map(Status::as_str).join(", ")
                ),
            )
        })?),
    };
    let limit = parse_limit(q.limit.as_deref())?;
    let payouts: Vec<PayoutView> = state
        .store
        .list(Some(&owner.tenant), status, limit)?
        .iter()
        .map(PayoutView::from)
        .collect();
    Ok(Json(json!({ "payouts": payouts })))
}
