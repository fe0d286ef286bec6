//! The invoice API (`/v1/invoices`, `/v1/events`), served by the payout API's server
//! behind the same API keys ([`crate::api::router_with`]). An invoice belongs to the
//! tenant of the key that created it; another tenant's invoice is "not found".
//!
//! Refusals are `{"error": {"code", "message"}}` like the payout API's; every code is in
//! `openapi.json`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::amount;
use crate::api::{body_error, clip, echo, parse_limit, read_body, ApiError};
use crate::config::MAX_INVOICE_EXPIRY;
use crate::delivery_store::DeliveryStore;
use crate::deposit_address::AccountXpub;
use crate::invoice::{ExpiryRequest, Invoice, InvoiceStatus, StatusChange};
use crate::model::{now_ms, Asset, Owner};
use crate::receive_store::{CreatedInvoice, Event, ReceiveStore};

/// Longest invoice id (the merchant's own id, its idempotency key).
pub const MAX_INVOICE_ID_LEN: usize = 64;
/// Longest merchant reference.
pub const MAX_REFERENCE_LEN: usize = 128;
/// Largest metadata object, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Shortest invoice lifetime.
pub const MIN_INVOICE_EXPIRY: Duration = Duration::from_secs(60);

/// What the invoice handlers share.
#[derive(Clone)]
pub struct ReceiveApi {
    pub store: ReceiveStore,
    pub xpub: AccountXpub,
    pub tolerance_units: u64,
    pub default_expiry: Duration,
    pub deliveries: DeliveryStore,
    /// `(endpoint name, tenant)` of every webhook endpoint, for redelivery.
    pub endpoints: Vec<(String, String)>,
}

/// The `/v1/invoices` and `/v1/events` routes, to pass to [`crate::api::router_with`].
pub fn routes(r: ReceiveApi) -> Router {
    Router::new()
        .route("/v1/invoices", get(list_invoices).post(create_invoice))
        .route("/v1/invoices/{id}", get(get_invoice))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}/redeliver", post(redeliver))
        .with_state(r)
}

/// The create request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoice {
    pub id: String,
    pub asset: String,
    pub amount: String,
    /// A duration such as `"30m"`; or `expires_at`; neither: the configured default.
    pub expires_in: Option<String>,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub reference: Option<String>,
    pub metadata: Option<Value>,
    /// Overrides the configured tolerance, as a decimal.
    pub tolerance: Option<String>,
}

/// Invoice ids: 1-[`MAX_INVOICE_ID_LEN`] printable ASCII without spaces, `/`, `?`, `#`.
pub fn check_invoice_id(id: &str) -> Result<(), ApiError> {
    crate::api::check_id(id, MAX_INVOICE_ID_LEN, "invalid_invoice_id")
}

fn expiry_of(
    req: &CreateInvoice,
    default: Duration,
    now: i64,
) -> Result<(ExpiryRequest, i64), ApiError> {
    let bad = |m: String| ApiError::bad("invalid_expiry", m);
    let range = format!(
        "the expiry must be between {}s and {} days from now",
        MIN_INVOICE_EXPIRY.as_secs(),
        MAX_INVOICE_EXPIRY.as_secs() / 86_400
    );
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (request, at) = match (&req.expires_in, req.expires_at) {
        (Some(_), Some(_)) => return Err(bad("give expires_in or expires_at, not both".into())),
        (Some(text), None) => {
            let d =
                crate::duration::parse(text).map_err(|e| bad(clip(format!("expires_in: {e}"))))?;
            let d_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            (ExpiryRequest::In(d_ms), now.saturating_add(ms(d)))
        }
        (None, Some(at)) => (ExpiryRequest::At(at), at),
        (None, None) => (ExpiryRequest::Default, now.saturating_add(ms(default))),
    };
    if at < now.saturating_add(ms(MIN_INVOICE_EXPIRY))
        || at > now.saturating_add(ms(MAX_INVOICE_EXPIRY))
    {
        return Err(bad(range));
    }
    Ok((request, at))
}

/// Validates a create request into an invoice (without its deposit address yet).
pub fn validate(
    req: &CreateInvoice,
    owner: &Owner,
    r: &ReceiveApi,
    now: i64,
) -> Result<Invoice, ApiError> {
    check_invoice_id(&req.id)?;
    let asset = Asset::parse(&req.asset).ok_or_else(|| {
        ApiError::bad(
            "unsupported_asset",
            format!(
                "asset {} is not supported; use \"TRX\" or \"USDT\"",
                echo(&req.asset)
            ),
        )
    })?;
    let units =
        amount::parse(&req.amount).map_err(|e| ApiError::bad(e.code(), clip(e.to_string())))?;
    let (expiry, expires_at_ms) = expiry_of(req, r.default_expiry, now)?;
    if let Some(reference) = &req.reference {
        if reference.chars().count() > MAX_REFERENCE_LEN || reference.chars().any(char::is_control)
        {
            return Err(ApiError::bad(
                "invalid_reference",
                format!("reference must be at most {MAX_REFERENCE_LEN} characters without control characters"),
            ));
        }
    }
    let metadata = match &req.metadata {
        None => json!({}),
        Some(m @ Value::Object(_)) => {
            let len = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
            if len > MAX_METADATA_BYTES {
                return Err(ApiError::bad(
                    "invalid_metadata",
                    format!("metadata is {len} bytes as JSON, more than {MAX_METADATA_BYTES}"),
                ));
            }
            m.clone()
        }
        Some(_) => {
            return Err(ApiError::bad(
                "invalid_metadata",
                "metadata must be a JSON object",
            ))
        }
    };
    let tolerance_units = match &req.tolerance {
        None => r.tolerance_units,
        Some(t) => amount::parse_allowing_zero(t)
            .map_err(|e| ApiError::bad("invalid_tolerance", clip(e.to_string())))?,
    };
    if tolerance_units >= units {
        return Err(ApiError::bad(
            "invalid_tolerance",
            "the tolerance must be smaller than the amount",
        ));
    }
    Ok(Invoice {
        tenant: owner.tenant.clone(),
        id: req.id.clone(),
        created_by: owner.key_id.clone(),
        asset,
        amount_units: units,
        tolerance_units,
        expiry,
        expires_at_ms,
        reference: req.reference.clone(),
        metadata,
        deposit_index: 0,
        address: String::new(),
        status: InvoiceStatus::New,
        created_at_ms: now,
        updated_at_ms: now,
        payments: Vec::new(),
        history: vec![StatusChange {
            status: InvoiceStatus::New,
            at_ms: now,
        }],
        sweeps: Vec::new(),
    })
}

async fn create_invoice(
    State(r): State<ReceiveApi>,
    Extension(owner): Extension<Owner>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let req: CreateInvoice = serde_json::from_slice(&body).map_err(body_error)?;
    let invoice = validate(&req, &owner, &r, now_ms())?;
    let xpub = r.xpub.clone();
    let derive = move |index: u32| -> Result<String, ApiError> {
        xpub.address(index).map(|a| a.to_base58()).map_err(|e| {
            tracing::error!(code = e.code(), index, "deposit address derivation failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.code(),
                "no deposit address could be derived; retry",
            )
        })
    };
    match r.store.create_invoice(invoice, derive)? {
        CreatedInvoice::New(i) => {
            tracing::info!(invoice = %i.id, tenant = %i.tenant, key = %i.created_by, index = i.deposit_index, address = %i.address, "invoice created");
            Ok((StatusCode::CREATED, Json(i.view())).into_response())
        }
        CreatedInvoice::Existing(i) => Ok((StatusCode::OK, Json(i.view())).into_response()),
        CreatedInvoice::Conflict(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invoice_conflict",
            format!("invoice {:?} exists with a different request", req.id),
        )),
    }
}

async fn get_invoice(
    State(r): State<ReceiveApi>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_invoice_id(&id)?;
    match r.store.get_invoice(&owner.tenant, &id)? {
        Some(i) => Ok(Json(i.view())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invoice_not_found",
            format!("no invoice {id:?}"),
        )),
    }
}

/// Query of the invoice list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    pub status: Option<String>,
    pub reference: Option<String>,
    /// An invoice id: list those after it (id order).
    pub after: Option<String>,
    pub limit: Option<String>,
}

async fn list_invoices(
    State(r): State<ReceiveApi>,
    Extension(owner): Extension<Owner>,
    query: Result<Query<InvoiceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad("invalid_query", e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(InvoiceStatus::parse(s).ok_or_else(|| {
            ApiError::bad(
                "invalid_status",
                format!(
                    "status {} is not one of {}",
                    echo(s),
                    InvoiceStatus::ALL.map(InvoiceStatus::as_str).join(", ")
                ),
            )
        })?),
    };
    if let Some(a) = &q.after {
        check_invoice_id(a)?;
    }
    let limit = parse_limit(q.limit.as_deref())?;
    let list = r.store.list_invoices(
        &owner.tenant,
        q.after.as_deref(),
        |i| {
            status.is_none_or(|s| i.status == s)
                && q.reference
                    .as_ref()
                    .is_none_or(|want| i.reference.as_ref() == Some(want))
        },
        limit,
    )?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|i| i.id.clone()))
        .flatten();
    Ok(Json(json!({
        "invoices": list.iter().map(Invoice::view).collect::<Vec<_>>(),
        "next_after": next,
    })))
}

/// Query of the event feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The `seq` of the last event already read; default 0 (from the start).
    pub after: Option<String>,
    pub limit: Option<String>,
}

/// An event as the feed and webhooks show it.
pub fn event_view(e: &Event) -> Value {
    json!({
        "id": e.id,
        "seq": e.seq,
        "type": e.kind,
        "created_at": e.created_at,
        "data": e.data,
    })
}

async fn list_events(
    State(r): State<ReceiveApi>,
    Extension(owner): Extension<Owner>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad("invalid_query", e.body_text()))?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a.parse::<u64>().map_err(|_| {
            ApiError::bad(
                "invalid_cursor",
                format!(
                    "after {} is not an event seq (a non-negative integer)",
                    echo(a)
                ),
            )
        })?,
    };
    let limit = parse_limit(q.limit.as_deref())?;
    let events = r.store.events_after(&owner.tenant, after, limit)?;
    let next = events.last().map_or(after, |e| e.seq);
    Ok(Json(json!({
        "events": events.iter().map(event_view).collect::<Vec<_>>(),
        "next_after": next.to_string(),
    })))
}

/// `POST /v1/events/{id}/redeliver`: sends the event again to every webhook endpoint of
/// the caller's tenant, besides the ordered queue. Another tenant's event is "not found".
async fn redeliver(
    State(r): State<ReceiveApi>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "event_not_found",
            format!("no event {}", echo(&id)),
        )
    };
    let seq = id
        .strip_prefix("evt_")
        .filter(|h| h.len() == 16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(not_found)?;
    let event = r
        .store
        .event(seq)?
        .filter(|e| e.tenant == owner.tenant)
        .ok_or_else(not_found)?;
    let endpoints: Vec<&str> = r
        .endpoints
        .iter()
        .filter(|(_, tenant)| *tenant == owner.tenant)
        .map(|(name, _)| name.as_str())
        .collect();
    if endpoints.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_webhook_endpoint",
            "no webhook endpoint is configured for this tenant",
        ));
    }
    let now = now_ms();
    for name in &endpoints {
        r.deliveries.redeliver(name, event.seq, now)?;
    }
    tracing::info!(event = %event.id, tenant = %owner.tenant, endpoints = endpoints.len(), "redelivery requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event": event.id, "endpoints": endpoints })),
    )
        .into_response())
}
