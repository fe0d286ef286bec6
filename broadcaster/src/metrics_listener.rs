//! The opt-in metrics listener (`[metrics] listen`): `GET /metrics` on its own TCP
//! address, never the payout API's socket, so scraping needs no API key and the API's
//! exposure does not change. Other paths answer 404, other methods on `/metrics` 405.
//! Before each page the database-backed gauges are refreshed (a handful of reads, no scan
//! of the payouts: see [`crate::store::Store::status_counts`]). At most
//! [`MAX_CONNECTIONS`] scrapers are connected at once, each for at most [`LIFETIME`]
//! ([`crate::bounded_listener`]), so idle or slow clients cannot pile up connections or
//! database reads.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bounded_listener::{BoundedListener, Deadline};

/// Connections open at once; more wait in the kernel's accept backlog.
pub const MAX_CONNECTIONS: usize = 8;
/// How long one connection may stay open (Prometheus reconnects for its next scrape).
pub const LIFETIME: Duration = Duration::from_secs(10);

/// What the exposition format's media type is (what prometheus-client's encoder writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Refreshes the scrape-time gauges; called once per scrape, off the async threads.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

async fn scrape(refresh: Refresh) -> impl IntoResponse {
    // The refresh reads the database: keep it off the runtime's worker threads.
    let page = tokio::task::spawn_blocking(move || {
        refresh();
        crate::metrics::global().encode()
    })
    .await;
    match page {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The listener's routes.
pub fn router(refresh: Refresh) -> Router {
    Router::new()
        .route("/metrics", get(move || scrape(refresh.clone())))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics\n") })
}

/// Serves scrapes on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, refresh: Refresh, mut stop: watch::Receiver<bool>) {
    let bounded = BoundedListener::new(listener, MAX_CONNECTIONS, Deadline::Lifetime(LIFETIME));
    let served = axum::serve(bounded, router(refresh))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "metrics listener stopped");
    }
}
