//! Webhook delivery: each configured endpoint gets its tenant's events from the outbox
//! ([`crate::receive_store`]), in `seq` order, signed ([`crate::webhook_sign`]), one at
//! a time. A failed delivery (no answer, or not 2xx) is retried with exponential backoff
//! from `webhook_min_backoff` up to `webhook_max_backoff`; after `webhook_give_up_after`
//! since its first attempt it is recorded as failed and the next event goes. Events asked
//! for again by API (`POST /v1/events/{id}/redeliver`) go out besides the queue.
//!
//! The request: `POST <url>` with the event JSON (as `GET /v1/events` shows it) and the
//! headers `Webhook-Id` (event id), `Webhook-Delivery` (one id per attempt) and
//! `Webhook-Signature`. Redirects are not followed: a receiver that moved must be
//! reconfigured, not followed to wherever it points.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Webhook;
use crate::delivery_store::{Attempt, DeliveryStore};
use crate::invoice_api::event_view;
use crate::metrics::{self, Delivery};
use crate::model::now_ms;
use crate::receive_store::{Event, ReceiveStore};
use crate::store::StoreError;
use crate::webhook_sign::{self, DELIVERY_ID_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};

/// How often the sender looks for new events when idle.
pub const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most outbox rows one endpoint's backlog count reads per scrape.
pub const BACKLOG_SCAN_LIMIT: usize = 100_000;

/// What the webhook endpoints still wait for (see [`Sender::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pending: u64,
    pub oldest_created_ms: Option<i64>,
    pub capped: bool,
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Backoff {
    /// The wait after `attempts` failed attempts: min * 2^(attempts-1), at most max.
    pub fn after(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }
}

pub struct Sender {
    endpoints: Vec<Webhook>,
    events: ReceiveStore,
    deliveries: DeliveryStore,
    http: reqwest::Client,
    backoff: Backoff,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sender {
    pub fn new(
        endpoints: Vec<Webhook>,
        events: ReceiveStore,
        deliveries: DeliveryStore,
        backoff: Backoff,
    ) -> Result<Sender, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(Sender {
            endpoints,
            events,
            deliveries,
            http,
            backoff,
        })
    }

    /// Sends one event to one endpoint; `Err` is why it did not count as delivered.
    async fn send(&self, ep: &Webhook, e: &Event, attempt: u32) -> Result<(), String> {
        let body = serde_json::to_vec(&event_view(e)).map_err(|e| e.to_string())?;
        let t = now_ms() / 1000;
        let resp = self
            .http
            .post(&ep.url)
            .header("content-type", "application/json")
            .header(EVENT_ID_HEADER, &e.id)
            .header(
                DELIVERY_ID_HEADER,
                format!("dlv_{}_{:016x}_{attempt}", ep.name, e.seq),
            )
            .header(
                SIGNATURE_HEADER,
                webhook_sign::header(&ep.secrets, t, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", resp.status().as_u16()))
        }
    }

    /// One pass over every endpoint: due redeliveries, then the next event in order.
    /// Returns how many deliveries succeeded.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut sent = 0;
        for ep in &self.endpoints {
            sent += self.redeliveries(ep).await?;
            sent += self.next_in_order(ep).await?;
        }
        Ok(sent)
    }

    async fn redeliveries(&self, ep: &Webhook) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut sent = 0;
        for mut a in self.deliveries.redeliveries(&ep.name)? {
            if a.next_at_ms > now {
                continue;
            }
            let Some(e) = self.events.event(a.seq)?.filter(|e| e.tenant == ep.tenant) else {
                self.deliveries.redelivery_result(&ep.name, a.seq, None)?;
                continue;
            };
            a.attempts += 1;
            match self.send(ep, &e, a.attempts).await {
                Ok(()) => {
                    metrics::global().webhook(Delivery::Redelivered);
                    tracing::info!(endpoint = %ep.name, event = %e.id, "webhook redelivered");
                    self.deliveries.redelivery_result(&ep.name, a.seq, None)?;
                    sent += 1;
                }
                Err(why) => {
                    metrics::global().webhook(Delivery::RedeliveryFailed);
                    a.next_at_ms = now.saturating_add(ms(self.backoff.after(a.attempts)));
                    a.last_error = Some(why);
                    let gave_up =
                        now.saturating_sub(a.first_at_ms) >= ms(self.backoff.give_up_after);
                    self.deliveries
                        .redelivery_result(&ep.name, a.seq, (!gave_up).then_some(&a))?;
                }
            }
        }
        Ok(sent)
    }

    async fn next_in_order(&self, ep: &Webhook) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut a = match self.deliveries.in_flight(&ep.name)? {
            Some(a) if a.next_at_ms > now => return Ok(0),
            Some(a) => a,
            None => {
                let cursor = self.deliveries.cursor(&ep.name)?;
                match self.events.events_after(&ep.tenant, cursor, 1)?.first() {
                    Some(e) => Attempt::new(e.seq, now),
                    None => return Ok(0),
                }
            }
        };
        let Some(e) = self.events.event(a.seq)? else {
            return Err(StoreError::Corrupt {
                key: format!("event {}", a.seq),
                message: "a webhook delivery names an event that does not exist".into(),
            });
        };
        a.attempts += 1;
        match self.send(ep, &e, a.attempts).await {
            Ok(()) => {
                metrics::global().webhook(Delivery::Delivered);
                tracing::info!(endpoint = %ep.name, event = %e.id, kind = %e.kind, attempts = a.attempts, "webhook delivered");
                self.deliveries.done(&ep.name, &a, false)?;
                Ok(1)
            }
            Err(why) => {
                let gave_up = now.saturating_sub(a.first_at_ms) >= ms(self.backoff.give_up_after);
                tracing::warn!(endpoint = %ep.name, event = %e.id, attempts = a.attempts, error = %why, gave_up, "webhook delivery failed");
                a.last_error = Some(why);
                metrics::global().webhook(if gave_up {
                    Delivery::GaveUp
                } else {
                    Delivery::Failed
                });
                if gave_up {
                    self.deliveries.done(&ep.name, &a, true)?;
                } else {
                    a.next_at_ms = now.saturating_add(ms(self.backoff.after(a.attempts)));
                    self.deliveries.retry_later(&ep.name, &a)?;
                }
                Ok(0)
            }
        }
    }

    /// What the endpoints still wait for: events after each one's cursor (the one in
    /// flight included), summed, with the oldest one's creation time. Each endpoint's
    /// count reads at most [`BACKLOG_SCAN_LIMIT`] outbox rows; `capped` says one stopped
    /// there (the backlog is at least the count).
    pub fn backlog(&self) -> Result<Backlog, StoreError> {
        let mut b = Backlog::default();
        for ep in &self.endpoints {
            let cursor = self.deliveries.cursor(&ep.name)?;
            let p = self
                .events
                .pending_events(&ep.tenant, cursor, BACKLOG_SCAN_LIMIT)?;
            b.pending += p.count;
            b.capped |= p.capped;
            if let Some(at) = p.oldest_created_at {
                b.oldest_created_ms = Some(b.oldest_created_ms.map_or(at, |o: i64| o.min(at)));
            }
        }
        Ok(b)
    }

    /// Passes until `stop`; right away again while deliveries succeed.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = match self.pass().await {
                Ok(n) if n > 0 => Duration::ZERO,
                Ok(_) => IDLE_POLL,
                Err(e) => {
                    tracing::error!(code = e.code(), error = %e, "webhook sender: storage failure; retrying");
                    self.backoff.min.max(IDLE_POLL)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoice::{ExpiryRequest, Invoice, InvoiceStatus};
    use crate::model::Asset;
    use crate::receive_store::CreatedInvoice;
    use crate::secret::Secret;
    use crate::store::Store;

    /// One expired invoice, so the outbox holds one event.
    fn outbox() -> (tempfile::TempDir, ReceiveStore, DeliveryStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("w.redb")).unwrap());
        let rs = ReceiveStore::open(store.clone()).unwrap();
        let inv = Invoice {
            tenant: "shop".into(),
            id: "i".into(),
            created_by: "k".into(),
            asset: Asset::Usdt,
            amount_units: 1,
            tolerance_units: 0,
            expiry: ExpiryRequest::At(1),
            expires_at_ms: 1,
            reference: None,
            metadata: serde_json::json!({}),
            deposit_index: 0,
            address: String::new(),
            status: InvoiceStatus::New,
            created_at_ms: 0,
            updated_at_ms: 0,
            payments: vec![],
            history: vec![],
            sweeps: vec![],
        };
        let created = rs
            .create_invoice::<StoreError>(inv, |_| {
                Ok(tron_proto::Address::from_evm([1; 20]).to_base58())
            })
            .unwrap();
        assert!(matches!(created, CreatedInvoice::New(_)));
        assert_eq!(rs.expire(2).unwrap().len(), 1);
        let ds = DeliveryStore::open(store).unwrap();
        (dir, rs, ds)
    }

    fn endpoint(url: &str) -> Webhook {
        Webhook {
            name: "hook".into(),
            tenant: "shop".into(),
            url: url.into(),
            secrets: vec![Secret::new("k".into())],
        }
    }

    #[tokio::test]
    async fn a_delivery_failing_past_the_give_up_time_is_recorded_and_the_queue_moves_on() {
        let (_d, rs, ds) = outbox();
        // Nothing listens on port 1: every attempt fails.
        let backoff = Backoff {
            min: Duration::from_millis(1),
            max: Duration::from_millis(1),
            give_up_after: Duration::from_millis(30),
        };
        let sender = Sender::new(
            vec![endpoint("http://127.0.0.1:1/h")],
            rs,
            ds.clone(),
            backoff,
        )
        .unwrap();
        assert_eq!(sender.pass().await.unwrap(), 0);
        let a = ds.in_flight("hook").unwrap().unwrap();
        assert_eq!((a.seq, a.attempts), (1, 1));
        assert!(a.last_error.is_some());
        assert_eq!(ds.cursor("hook").unwrap(), 0, "not moved while retrying");
        tokio::time::sleep(Duration::from_millis(40)).await;
        sender.pass().await.unwrap();
        assert_eq!(ds.in_flight("hook").unwrap(), None);
        assert_eq!(ds.cursor("hook").unwrap(), 1);
        let failed = ds.failed("hook").unwrap();
        assert_eq!((failed[0].seq, failed[0].attempts), (1, 2));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let b = Backoff {
            min: Duration::from_secs(5),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(3 * 86_400),
        };
        let secs: Vec<u64> = [1, 2, 3, 4, 10, 11, 40, u32::MAX]
            .iter()
            .map(|n| b.after(*n).as_secs())
            .collect();
        assert_eq!(secs, [5, 10, 20, 40, 2560, 3600, 3600, 3600]);
    }
}
