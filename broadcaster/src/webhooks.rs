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
use crate::model::now_ms;
use crate::receive_store::{Event, ReceiveStore};
use crate::store::StoreError;
use crate::webhook_sign::{self, DELIVERY_ID_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};

/// How often the sender looks for new events when idle.
pub const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

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
                    tracing::info!(endpoint = %ep.name, event = %e.id, "webhook redelivered");
                    self.deliveries.redelivery_result(&ep.name, a.seq, None)?;
                    sent += 1;
                }
                Err(why) => {
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
                tracing::info!(endpoint = %ep.name, event = %e.id, kind = %e.kind, attempts = a.attempts, "webhook delivered");
                self.deliveries.done(&ep.name, &a, false)?;
                Ok(1)
            }
            Err(why) => {
                let gave_up = now.saturating_sub(a.first_at_ms) >= ms(self.backoff.give_up_after);
                tracing::warn!(endpoint = %ep.name, event = %e.id, attempts = a.attempts, error = %why, gave_up, "webhook delivery failed");
                a.last_error = Some(why);
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
