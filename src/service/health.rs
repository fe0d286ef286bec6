//! What gRPC health reports: `SERVING` only while the ledger can record and the clock is
//! trusted. Load balancers and supervisors act on this, so a signer that cannot sign must
//! never say it is healthy.

use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tron_proto::signer::signer_server::SignerServer;

use super::grpc::GrpcSigner;
use crate::ledger::StoreHealth;

/// The overall status (the empty service name) and the signer's own.
pub async fn set(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    match status {
        ServingStatus::Serving => reporter.set_serving::<SignerServer<GrpcSigner>>().await,
        _ => reporter.set_not_serving::<SignerServer<GrpcSigner>>().await,
    }
}

/// `SERVING` only when the ledger records and the clock is trusted.
pub fn status(store: &StoreHealth, clock_alarm: &Option<String>) -> ServingStatus {
    if store.is_healthy() && clock_alarm.is_none() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Keeps the reported status in step with the ledger and the clock. Returns when the ledger
/// stopped for good ([`StoreHealth::Fatal`]), with why: the process must then exit so that a
/// supervisor restarts it.
pub async fn follow(
    reporter: HealthReporter,
    mut store: watch::Receiver<StoreHealth>,
    mut clock: watch::Receiver<Option<String>>,
) -> String {
    let mut last: Option<ServingStatus> = None;
    loop {
        let store_now = store.borrow_and_update().clone();
        let clock_now = clock.borrow_and_update().clone();
        if let StoreHealth::Fatal { detail } = store_now {
            set(&reporter, ServingStatus::NotServing).await;
            return detail;
        }
        let status = status(&store_now, &clock_now);
        if last != Some(status) {
            match (&store_now, &clock_now) {
                (StoreHealth::Failed { detail }, _) => {
                    tracing::error!("health NOT_SERVING: the ledger cannot record: {detail}")
                }
                (_, Some(why)) => tracing::error!("health NOT_SERVING: {why}"),
                _ if last.is_some() => tracing::info!("health SERVING again"),
                _ => {}
            }
            set(&reporter, status).await;
            last = Some(status);
        }
        // A sender gone means its owner is shutting down; nothing more will change.
        tokio::select! {
            r = store.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = clock.changed() => if r.is_err() { std::future::pending::<()>().await },
        }
    }
}
