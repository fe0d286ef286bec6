//! What the signer counts for operators, in one process-wide set of Prometheus metrics.
//!
//! Recording is a few atomic operations, so the decision path records unconditionally; the
//! numbers leave the process only through the opt-in metrics listener
//! (`service::metrics_listener`), never on the signing socket. Every label value comes from
//! a closed set (RPC names, reason codes, backends, the policy's own keys and windows), so
//! no request can grow the label space: txids, payout ids and callers' text never appear.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::reason::ReasonCode;

/// An audit record's outcome, by what was asked and the code it got.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub method: &'static str,
    pub decision: &'static str,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendErrorLabels {
    backend: &'static str,
    code: &'static str,
}

/// One rolling window of one key and asset, as the policy in force names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    pub key: String,
    pub asset: String,
    pub window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    hash: String,
    name: String,
    revision: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The signer's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    sign_seconds: Histogram,
    commit_entries: Histogram,
    commit_seconds: Histogram,
    commit_failures: Counter,
    backend_seconds: Histograms<BackendLabels>,
    backend_errors: Family<BackendErrorLabels, Counter>,
    window_usage: Family<WindowLabels, Gauge<f64, AtomicU64>>,
    policy: Family<PolicyLabels, Gauge>,
    audit_head: Gauge,
    /// The highest sequence seen, so concurrent commits never move the gauge back.
    highest_sequence: AtomicU64,
    tls_refused: Counter,
    unaudited: Family<CodeLabels, Counter>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (registered on first use).
pub fn global() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tron_signer");
        let m = Metrics {
            decisions: Family::default(),
            sign_seconds: latency(),
            commit_entries: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            // Explicit bounds: 0.1 s is the alert threshold (ops/prometheus/alerts.yml).
            commit_seconds: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            commit_failures: Counter::default(),
            backend_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
            backend_errors: Family::default(),
            window_usage: Family::default(),
            policy: Family::default(),
            audit_head: Gauge::default(),
            highest_sequence: AtomicU64::new(0),
            tls_refused: Counter::default(),
            unaudited: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "decisions",
            "Audit records by RPC (or internal action), decision and reason code",
            m.decisions.clone(),
        );
        registry.register(
            "sign_duration_seconds",
            "Sign requests from arrival to answer, signed or refused",
            m.sign_seconds.clone(),
        );
        registry.register(
            "ledger_commit_entries",
            "Jobs per ledger group commit",
            m.commit_entries.clone(),
        );
        registry.register(
            "ledger_commit_duration_seconds",
            "Ledger group commits, write and fsync",
            m.commit_seconds.clone(),
        );
        registry.register(
            "ledger_commit_failures",
            "Group commits that failed (nothing of them was released)",
            m.commit_failures.clone(),
        );
        registry.register(
            "key_backend_sign_duration_seconds",
            "Signatures by key backend",
            m.backend_seconds.clone(),
        );
        registry.register(
            "key_backend_errors",
            "Key backend failures by backend and reason code",
            m.backend_errors.clone(),
        );
        registry.register(
            "window_usage_ratio",
            "Used fraction of each rolling-window limit of the policy in force",
            m.window_usage.clone(),
        );
        registry.register(
            "policy_info",
            "The policy in force (value 1): its sha256, name and revision",
            m.policy.clone(),
        );
        registry.register(
            "audit_head_sequence",
            "Sequence number of the newest audit record",
            m.audit_head.clone(),
        );
        registry.register(
            "tls_handshakes_refused",
            "TLS handshakes refused below gRPC (no, untrusted, expired or unpinned client certificate)",
            m.tls_refused.clone(),
        );
        registry.register(
            "requests_refused_unaudited",
            "Requests refused over a caller budget after the first (audited) refusal of the episode, by reason code",
            m.unaudited.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One audit record made durable at `sequence`, with its method, decision and code.
    pub fn recorded(&self, method: &str, decision: &'static str, code: &str, sequence: u64) {
        self.decision(method, decision, code);
        let highest = self
            .highest_sequence
            .fetch_max(sequence, std::sync::atomic::Ordering::Relaxed)
            .max(sequence);
        self.audit_head
            .set(i64::try_from(highest).unwrap_or(i64::MAX));
    }

    /// One audit record written, with its method, decision and reason code.
    fn decision(&self, method: &str, decision: &'static str, code: &str) {
        let code = code
            .parse::<ReasonCode>()
            .map_or("unknown", ReasonCode::as_str);
        self.decisions
            .get_or_create(&DecisionLabels {
                method: method_label(method),
                decision,
                code,
            })
            .inc();
    }

    /// How many records carry `labels` (for tests and the listener's own checks).
    pub fn decisions_of(&self, labels: &DecisionLabels) -> u64 {
        self.decisions.get(labels).map_or(0, |c| c.get())
    }

    /// A request refused over a budget without an audit record of its own.
    pub fn refused_unaudited(&self, code: ReasonCode) {
        self.unaudited
            .get_or_create(&CodeLabels {
                code: code.as_str(),
            })
            .inc();
    }

    /// Refusals over a budget left unaudited with `code` (for tests).
    pub fn refused_unaudited_of(&self, code: ReasonCode) -> u64 {
        self.unaudited
            .get(&CodeLabels {
                code: code.as_str(),
            })
            .map_or(0, |c| c.get())
    }

    pub fn sign_took(&self, d: Duration) {
        self.sign_seconds.observe(d.as_secs_f64());
    }

    pub fn commit(&self, entries: usize, d: Duration, ok: bool) {
        self.commit_entries.observe(entries as f64);
        self.commit_seconds.observe(d.as_secs_f64());
        if !ok {
            self.commit_failures.inc();
        }
    }

    pub fn backend_signed(&self, backend: &'static str, d: Duration) {
        self.backend_seconds
            .get_or_create(&BackendLabels { backend })
            .observe(d.as_secs_f64());
    }

    pub fn backend_failed(&self, backend: &'static str, code: ReasonCode) {
        self.backend_errors
            .get_or_create(&BackendErrorLabels {
                backend,
                code: code.as_str(),
            })
            .inc();
    }

    pub fn tls_refused(&self) {
        self.tls_refused.inc();
    }

    /// Replaces the window gauges with `usage` (the policy in force decides which exist).
    pub fn set_windows(&self, usage: impl IntoIterator<Item = (WindowLabels, f64)>) {
        self.window_usage.clear();
        for (labels, ratio) in usage {
            self.window_usage.get_or_create(&labels).set(ratio);
        }
    }

    pub fn set_policy(&self, hash: &str, name: &str, revision: u64) {
        self.policy.clear();
        self.policy
            .get_or_create(&PolicyLabels {
                hash: hash.to_owned(),
                name: name.to_owned(),
                revision: revision.to_string(),
            })
            .set(1);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial page,
        // which a scraper rejects as a whole.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The method label: the RPCs and the signer's own actions, anything else as "other".
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Sign",
        "Evaluate",
        "ListKeys",
        "GetPolicy",
        "ReadPolicyText",
        "Freeze",
        "Reload",
        "Start",
        "ReloadTls",
    ];
    KNOWN
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every recorder shows up in the page, and every metric the example alert rules use
    /// (ops/prometheus/alerts.yml) is one of them.
    #[test]
    fn the_alert_rules_name_only_metrics_that_exist() {
        let m = Metrics::new();
        m.recorded("Sign", "deny", "over_key_window", 4);
        m.sign_took(Duration::from_millis(3));
        m.commit(2, Duration::from_millis(150), false);
        m.backend_signed("soft", Duration::from_micros(80));
        m.backend_failed("pkcs11", ReasonCode::SoftSignFailed);
        m.tls_refused();
        m.set_policy("ab", "p", 3);
        m.set_windows([(
            WindowLabels {
                key: "T".into(),
                asset: "TRX".into(),
                window: "24h".into(),
            },
            0.5,
        )]);
        m.refused_unaudited(ReasonCode::UnsignedRateExceeded);
        let page = m.encode();
        assert!(
            page.contains(
                r#"tron_signer_requests_refused_unaudited_total{code="unsigned_rate_exceeded"} 1"#
            ),
            "{page}"
        );
        assert!(page.contains(r#"tron_signer_decisions_total{method="Sign",decision="deny",code="over_key_window"} 1"#), "{page}");
        assert!(page.contains("tron_signer_audit_head_sequence 4"), "{page}");
        assert!(
            page.contains("tron_signer_ledger_commit_failures_total 1"),
            "{page}"
        );
        assert!(
            page.contains(r#"tron_signer_ledger_commit_duration_seconds_bucket{le="0.1"} 0"#),
            "{page}"
        );
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ops/prometheus/alerts.yml"
        ))
        .unwrap();
        let mut named = 0;
        for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let Some(name) = word.strip_prefix("tron_signer_") else {
                continue;
            };
            let base = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                page.contains(&format!("# TYPE tron_signer_{base} ")),
                "alerts.yml uses tron_signer_{name}, which the signer does not have:\n{page}"
            );
            named += 1;
        }
        assert!(named >= 8, "{named}");
        // Unknown methods and codes collapse into one label value each.
        m.recorded("Surprise", "deny", "not a code", 5);
        assert!(m
            .encode()
            .contains(r#"method="other",decision="deny",code="unknown""#));
    }
}
