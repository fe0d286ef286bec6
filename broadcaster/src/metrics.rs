//! What the broadcaster counts for operators, in one process-wide set of Prometheus metrics
//! (`tron_broadcaster_*`).
//!
//! The numbers leave the process only through the opt-in metrics listener
//! ([`crate::metrics_listener`]), never on the payout API's socket. Every label value comes
//! from a closed set (payout statuses, the node paths this crate calls, error codes,
//! delivery outcomes), so no request can grow the label space: txids, payout and invoice
//! ids, tenants and addresses never appear.
//!
//! Two kinds of values: counters and heights that the code paths record as they happen
//! (node requests, watcher polls, webhook deliveries, sweeps), and gauges read from the
//! database at scrape time ([`Metrics::set_payouts`], [`Metrics::set_webhook_backlog`]),
//! which the listener refreshes before it encodes the page.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::model::{now_ms, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn node_latency() -> Histogram {
    // 5 ms to about 20 s (a node call times out at `node_timeout`, 10 s by default).
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The node paths this crate calls; any other is counted as "other".
const NODE_PATHS: &[&str] = &[
    "/wallet/getnowblock",
    "/wallet/broadcasthex",
    "/wallet/getblockbynum",
    "/wallet/gettransactioninfobyblocknum",
    "/wallet/getaccount",
    "/wallet/getchainparameters",
    "/wallet/triggerconstantcontract",
    "/walletsolidity/getnowblock",
    "/walletsolidity/gettransactioninfobyid",
];

/// Statuses a payout can be stuck in (the non-final ones), whose oldest age is shown.
const WAITING: [Status; 5] = [
    Status::Queued,
    Status::Signing,
    Status::AwaitingApproval,
    Status::Broadcast,
    Status::Retrying,
];

/// A webhook delivery attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered 2xx.
    Delivered,
    /// No answer or not 2xx: retried later.
    Failed,
    /// Failed past `webhook_give_up_after`: recorded as failed, the queue moves on.
    GaveUp,
    /// A redelivery asked for by API answered 2xx.
    Redelivered,
    /// A redelivery attempt failed.
    RedeliveryFailed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::GaveUp => "gave_up",
            Delivery::Redelivered => "redelivered",
            Delivery::RedeliveryFailed => "redelivery_failed",
        }
    }
}

/// The broadcaster's metrics.
pub struct Metrics {
    registry: Registry,
    payouts: Family<StatusLabels, Gauge>,
    payout_oldest_age: Family<StatusLabels, FloatGauge>,
    /// Per [`WAITING`] status: since when (ms) the oldest payout has been in it; 0: none.
    oldest_since_ms: [AtomicI64; WAITING.len()],
    approvals_waiting: Gauge,
    approvals_oldest_age: FloatGauge,
    node_requests: Family<NodeLabels, Counter>,
    node_seconds: Histograms<EndpointLabels>,
    head_block: Gauge,
    solidified_block: Gauge,
    processed_block: Gauge,
    settled_block: Gauge,
    watcher_lag: Gauge,
    solidity_lag: Gauge,
    watcher_polls: Family<OutcomeLabels, Counter>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_backlog: Gauge,
    webhook_oldest_age: FloatGauge,
    webhook_backlog_capped: Gauge,
    sweeps: Family<OutcomeLabels, Counter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (registered on first use).
pub fn global() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn age_seconds(since_ms: i64, now_ms: i64) -> f64 {
    if since_ms <= 0 {
        return 0.0;
    }
    (now_ms.saturating_sub(since_ms).max(0) as f64) / 1000.0
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            payouts: Family::default(),
            payout_oldest_age: Family::default(),
            oldest_since_ms: Default::default(),
            approvals_waiting: Gauge::default(),
            approvals_oldest_age: FloatGauge::default(),
            node_requests: Family::default(),
            node_seconds: Family::new_with_constructor(node_latency as fn() -> Histogram),
            head_block: Gauge::default(),
            solidified_block: Gauge::default(),
            processed_block: Gauge::default(),
            settled_block: Gauge::default(),
            watcher_lag: Gauge::default(),
            solidity_lag: Gauge::default(),
            watcher_polls: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_backlog: Gauge::default(),
            webhook_oldest_age: FloatGauge::default(),
            webhook_backlog_capped: Gauge::default(),
            sweeps: Family::default(),
        };
        let mut registry = Registry::with_prefix("tron_broadcaster");
        registry.register(
            "payouts",
            "Payouts in the database by status (sweeper payouts included)",
            m.payouts.clone(),
        );
        registry.register(
            "payouts_oldest_age_seconds",
            "How long the oldest payout in each non-final status has been in it (0: none)",
            m.payout_oldest_age.clone(),
        );
        registry.register(
            "approvals_waiting",
            "Payouts in awaiting_approval",
            m.approvals_waiting.clone(),
        );
        registry.register(
            "approvals_oldest_age_seconds",
            "How long the oldest payout in awaiting_approval has waited (0: none)",
            m.approvals_oldest_age.clone(),
        );
        registry.register(
            "node_requests",
            "Requests to the node by path and outcome (ok or the error code)",
            m.node_requests.clone(),
        );
        registry.register(
            "node_request_duration_seconds",
            "Node requests from send to parsed answer, by path",
            m.node_seconds.clone(),
        );
        registry.register(
            "chain_head_block",
            "The node's head block number, as last read",
            m.head_block.clone(),
        );
        registry.register(
            "chain_solidified_block",
            "The node's solidified block number, as the chain watcher last read it",
            m.solidified_block.clone(),
        );
        registry.register(
            "watcher_processed_block",
            "The newest block the chain watcher has taken",
            m.processed_block.clone(),
        );
        registry.register(
            "watcher_settled_block",
            "The height up to which the chain watcher has settled payments",
            m.settled_block.clone(),
        );
        registry.register(
            "watcher_lag_blocks",
            "Node head minus the watcher's newest block taken",
            m.watcher_lag.clone(),
        );
        registry.register(
            "chain_solidity_lag_blocks",
            "Node head minus the node's solidified block",
            m.solidity_lag.clone(),
        );
        registry.register(
            "watcher_polls",
            "Chain watcher polls by outcome (ok or the error code)",
            m.watcher_polls.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            m.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_backlog_events",
            "Events not yet delivered (nor given up on), summed over the webhook endpoints",
            m.webhook_backlog.clone(),
        );
        registry.register(
            "webhook_oldest_pending_age_seconds",
            "Age of the oldest event an endpoint still waits for (0: none)",
            m.webhook_oldest_age.clone(),
        );
        registry.register(
            "webhook_backlog_capped",
            "1 when the backlog count stopped at its scan limit (the real backlog is larger)",
            m.webhook_backlog_capped.clone(),
        );
        registry.register(
            "sweeps",
            "Sweep rounds ended, by outcome (swept, failed, refused)",
            m.sweeps.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One node request to `path` that took `d`; `outcome` is "ok" or the error code.
    pub fn node_request(&self, path: &str, outcome: &'static str, d: Duration) {
        let endpoint = NODE_PATHS
            .iter()
            .copied()
            .find(|p| *p == path)
            .unwrap_or("other");
        self.node_requests
            .get_or_create(&NodeLabels { endpoint, outcome })
            .inc();
        self.node_seconds
            .get_or_create(&EndpointLabels { endpoint })
            .observe(d.as_secs_f64());
    }

    /// The node's head block number, from any reader (pipeline or watcher).
    pub fn head(&self, number: u64) {
        self.head_block.set(to_i64(number));
    }

    /// One successful watcher poll: the node's head and solidified blocks it read, the
    /// newest block it took and the height it settled up to.
    pub fn watched(&self, head: u64, solidified: u64, processed: u64, settled: u64) {
        self.head(head);
        self.solidified_block.set(to_i64(solidified));
        self.processed_block.set(to_i64(processed));
        self.settled_block.set(to_i64(settled));
        self.watcher_lag.set(to_i64(head.saturating_sub(processed)));
        self.solidity_lag
            .set(to_i64(head.saturating_sub(solidified)));
    }

    /// A watcher poll's outcome: "ok" or the error code.
    pub fn watcher_poll(&self, outcome: &'static str) {
        self.watcher_polls
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn webhook(&self, d: Delivery) {
        self.webhook_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: d.as_str(),
            })
            .inc();
    }

    /// The outbox's backlog at scrape time: `pending` events over all endpoints, the oldest
    /// one's creation time, and whether the count stopped at its scan limit.
    pub fn set_webhook_backlog(&self, pending: u64, oldest_ms: Option<i64>, capped: bool) {
        self.webhook_backlog.set(to_i64(pending));
        self.webhook_oldest_age
            .set(age_seconds(oldest_ms.unwrap_or(0), now_ms()));
        self.webhook_backlog_capped.set(i64::from(capped));
    }

    /// A sweep round ended: "swept", "failed" or "refused".
    pub fn sweep(&self, outcome: &'static str) {
        self.sweeps.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The payouts per status (from the store's counts, at scrape time).
    pub fn set_payouts(&self, counts: &[(Status, u64)]) {
        for (status, n) in counts {
            self.payouts
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(to_i64(*n));
            if *status == Status::AwaitingApproval {
                self.approvals_waiting.set(to_i64(*n));
            }
        }
    }

    /// The pipeline's view of the active payouts, once per pass: for each non-final
    /// status, since when its oldest payout has been in it.
    pub fn set_oldest(&self, oldest: impl IntoIterator<Item = (Status, i64)>) {
        let mut since = [0i64; WAITING.len()];
        for (status, at) in oldest {
            if let Some(i) = WAITING.iter().position(|s| *s == status) {
                if since[i] == 0 || at < since[i] {
                    since[i] = at;
                }
            }
        }
        for (slot, v) in self.oldest_since_ms.iter().zip(since) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// Turns the recorded "since" times into ages as of now (called at scrape time).
    fn refresh_ages(&self) {
        let now = now_ms();
        for (status, slot) in WAITING.iter().zip(&self.oldest_since_ms) {
            let age = age_seconds(slot.load(Ordering::Relaxed), now);
            self.payout_oldest_age
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(age);
            if *status == Status::AwaitingApproval {
                self.approvals_oldest_age.set(age);
            }
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        self.refresh_ages();
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial page,
        // which a scraper rejects as a whole.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Since when `p` has been in its current status: its last transition into it.
pub fn in_status_since(p: &crate::model::Payout) -> i64 {
    p.history
        .iter()
        .rev()
        .find(|t| t.status == p.status)
        .map_or(p.updated_at_ms, |t| t.at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every recorder shows up in the page, and every metric the example alert rules use
    /// (ops/prometheus/broadcaster-alerts.yml) is one of them.
    #[test]
    fn the_alert_rules_name_only_metrics_that_exist() {
        let m = Metrics::new();
        m.node_request("/wallet/getnowblock", "ok", Duration::from_millis(3));
        m.node_request(
            "/wallet/somethingelse",
            "node_timeout",
            Duration::from_secs(1),
        );
        m.watched(120, 100, 118, 100);
        m.watcher_poll("ok");
        m.webhook(Delivery::Delivered);
        m.webhook(Delivery::GaveUp);
        m.set_webhook_backlog(7, Some(now_ms() - 60_000), false);
        m.sweep("swept");
        m.set_payouts(&[(Status::Confirmed, 3), (Status::AwaitingApproval, 2)]);
        m.set_oldest([
            (Status::AwaitingApproval, now_ms() - 10_000),
            (Status::AwaitingApproval, now_ms() - 20_000),
            (Status::Confirmed, 1),
        ]);
        let page = m.encode();
        assert!(
            page.contains(r#"tron_broadcaster_payouts{status="confirmed"} 3"#),
            "{page}"
        );
        assert!(
            page.contains("tron_broadcaster_approvals_waiting 2"),
            "{page}"
        );
        let age = page
            .lines()
            .find_map(|l| l.strip_prefix("tron_broadcaster_approvals_oldest_age_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!((20.0..30.0).contains(&age), "the older of the two: {age}");
        assert!(
            page.contains(r#"tron_broadcaster_payouts_oldest_age_seconds{status="queued"} 0"#),
            "{page}"
        );
        assert!(
            page.contains(
                r#"tron_broadcaster_node_requests_total{endpoint="other",outcome="node_timeout"} 1"#
            ),
            "{page}"
        );
        assert!(
            page.contains("tron_broadcaster_watcher_lag_blocks 2"),
            "{page}"
        );
        assert!(
            page.contains("tron_broadcaster_chain_solidity_lag_blocks 20"),
            "{page}"
        );
        assert!(
            page.contains(r#"tron_broadcaster_webhook_deliveries_total{outcome="gave_up"} 1"#),
            "{page}"
        );
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ops/prometheus/broadcaster-alerts.yml"
        ))
        .unwrap();
        let mut named = 0;
        for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let Some(name) = word.strip_prefix("tron_broadcaster_") else {
                continue;
            };
            let base = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                page.contains(&format!("# TYPE tron_broadcaster_{base} ")),
                "broadcaster-alerts.yml uses tron_broadcaster_{name}, which the broadcaster does not have:\n{page}"
            );
            named += 1;
        }
        assert!(named >= 8, "{named}");
    }

    #[test]
    fn a_payout_is_in_its_status_since_its_last_transition_into_it() {
        let owner = crate::model::Owner {
            tenant: "t".into(),
            key_id: "k".into(),
        };
        let mut p = crate::model::Payout::new(
            &owner,
            "p".into(),
            crate::model::Asset::Trx,
            "T".into(),
            1,
            10,
        );
        assert_eq!(in_status_since(&p), 10);
        p.transition(Status::Signing, 20, "x");
        p.transition(Status::Retrying, 30, "x");
        p.transition(Status::Signing, 40, "x");
        p.updated_at_ms = 50;
        assert_eq!(in_status_since(&p), 40);
    }
}
