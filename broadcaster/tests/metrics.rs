//! The opt-in metrics listener (issue 17, item 1) on the real binaries: `tron-broadcaster
//! serve` with `[metrics] listen`, `tron-signer serve` on a Unix socket, the node double on
//! a real socket making blocks on its timer, and a webhook receiver. A payout confirmed and
//! one denied, an invoice paid, webhooks delivered and then backing up while the receiver
//! is down: each shows in `GET /metrics` over a real socket, with exact counts where the
//! flow is deterministic and no id, txid, tenant or address in the page. Other paths and
//! methods are refused; a config putting metrics on the API's socket does not start; and
//! the example alert rules (ops/prometheus/broadcaster-alerts.yml) pass `promtool check
//! rules` and their own `promtool test rules` (that they name only metrics the broadcaster
//! has is checked in `src/metrics.rs`).
//!
//! The signer binary is the one cargo built beside this crate's binary
//! (`cargo build -p tron-signer` builds it; `cargo test --workspace` does too).

mod real_bins;

use real_bins::{Proc, PASSPHRASE_VAR};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tron_node_double::{Accounts, Options, Running};
use tron_proto::Address;

const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const KEY_SECRET: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
/// The account key of the published BIP-39 test mnemonic ("abandon … about").
const XPUB: &str = "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJXALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgmv8D45oNUKx6DZMNZBCd";
const ALLOWED: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const PAYOUT_ID: &str = "order-payout-7781";
const DENIED_ID: &str = "order-denied-7782";
const INVOICE_ID: &str = "order-invoice-7783";
const APPROVAL_ID: &str = "order-approval-7784";

fn payout_key() -> Address {
    let k = SigningKey::from_slice(&hex::decode(KEY_SECRET).unwrap()).unwrap();
    Address::from_verifying_key(k.verifying_key())
}

/// The approver's public key line (its private half is never used: nobody approves).
fn approver_key() -> String {
    ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[9; 32]))
        .public_key()
        .to_openssh()
        .unwrap()
}

/// A destination the policy does not list: the signer refuses it.
fn unlisted() -> Address {
    Address::from_evm([0x77; 20])
}

fn policy(uid: u32) -> String {
    format!(
        r#"version = 1
name = "metrics"
network = "nile"

[global]
frozen = false
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false

[[caller]]
name = "broadcaster"
unix_uid = {uid}
rpcs = ["Sign", "Evaluate"]
keys = ["{key}"]

[[key]]
address = "{key}"
label = "payouts"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "1000" }}]

  [[key.destination]]
  address = "{ALLOWED}"
  label = "treasury"
  assets = ["TRX"]
  per_tx_max = {{ TRX = "10" }}

[[approver]]
name = "Ann (treasury)"
groups = ["treasury"]
key = "{approver}"

[[approval]]
asset = "TRX"
above = "8"
require = {{ treasury = 1 }}
"#,
        key = payout_key(),
        approver = approver_key(),
    )
}

/// A running signer on a Unix socket in `dir`; returns it and the socket.
async fn start_signer(dir: &Path) -> (Proc, PathBuf) {
    let keystore = dir.join("keys.tks");
    let ks = keystore.to_str().unwrap();
    real_bins::import_key(ks, "payouts", KEY_SECRET);
    let uid = std::fs::metadata(dir).unwrap().uid();
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy(uid)).unwrap();
    let socket = dir.join("signer.sock");
    let config = dir.join("signer.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"unix:{}\"\ndata_dir = \"{}\"\npolicy = \"{}\"\n\
             [keystore]\npath = \"{ks}\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n",
            socket.display(),
            dir.join("signer-data").display(),
            policy_path.display(),
        ),
    )
    .unwrap();
    let proc = real_bins::serve(dir, &config, &socket).await;
    (proc, socket)
}

/// A webhook receiver that accepts everything unless `down`.
#[derive(Default)]
struct Hooks {
    down: bool,
    accepted: Vec<String>,
}

async fn receiver() -> (Arc<Mutex<Hooks>>, String) {
    let hooks: Arc<Mutex<Hooks>> = Default::default();
    let h = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let h = h.clone();
            async move {
                let mut r = h.lock().unwrap();
                if r.down {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = headers
                    .get("Webhook-Id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                r.accepted.push(id);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hooks, format!("http://{addr}/hook"))
}

struct Server {
    _proc: Proc,
    api: String,
    metrics_port: u16,
}

/// Starts `serve` (its log in `log`) with its metrics listener.
fn serve(config: &Path, log: &Path) -> Server {
    let b = real_bins::serve_broadcaster(config, log);
    let metrics = b
        .metrics
        .expect("the metrics listener is logged before serving");
    Server {
        _proc: b.proc,
        api: b.api,
        metrics_port: metrics.port(),
    }
}

/// One HTTP/1.1 request on a fresh connection; the whole response.
fn http(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn scrape(port: u16) -> String {
    let page = http(
        port,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{page}"
    );
    page
}

/// The value of the sample line that starts with `series` (name and labels exactly).
fn sample(page: &str, series: &str) -> f64 {
    maybe(page, series).unwrap_or_else(|| panic!("no {series} in:\n{page}"))
}

fn maybe(page: &str, series: &str) -> Option<f64> {
    let line = page
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    Some(line[series.len()..].trim().parse().unwrap())
}

fn payouts(page: &str, status: &str) -> f64 {
    sample(
        page,
        &format!(r#"tron_broadcaster_payouts{{status="{status}"}}"#),
    )
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until its `status` field is `want`.
    async fn wait_status(&self, path: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (st, v) = self.call("GET", path, None).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            if v["status"] == want {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} never got {want}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn events(&self) -> Vec<Value> {
        let (st, v) = self
            .call("GET", "/v1/events?after=0&limit=1000", None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["events"].as_array().unwrap().clone()
    }
}

/// Scrapes until `pred` holds on the page (the sender and watcher run on their own).
async fn scrape_until(port: u16, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = scrape(port);
        if pred(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn payouts_node_chain_and_webhooks_show_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (_signer, socket) = start_signer(dir.path()).await;
    let accounts = Accounts::from_json(
        json!({ "trx": { payout_key().to_base58(): "100000000" } })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let node = tron_node_double::start(Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: Duration::from_millis(200),
        solid_after: 3,
        accounts,
        api_key: None,
    })
    .await
    .unwrap();
    node.app.set_default_token(NILE_USDT.parse().unwrap());
    let node: Running = node;
    let (hooks, hook_url) = receiver().await;
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "whsec_metrics_test\n").unwrap();
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"{}\"\nkey = \"{}\"\nsigner = \"unix:{}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"100ms\"\n\
             expiration = \"1m\"\nsolidity_margin = \"1s\"\nmax_backoff = \"1s\"\n\n\
             [receive]\nxpub = \"{XPUB}\"\nwebhook_min_backoff = \"100ms\"\n\
             webhook_max_backoff = \"200ms\"\n\
             [[receive.webhooks]]\nname = \"shop-hook\"\ntenant = \"shop\"\nurl = \"{hook_url}\"\n\
             secrets = [{{ file = \"{}\" }}]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            node.url(),
            payout_key(),
            socket.display(),
            dir.path().join("b.redb").display(),
            secret.display(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
        .arg("-c")
        .arg(&config)
        .args(["api-keys", "create", "--label", "shop", "--tenant", "shop"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let s = serve(&config, &dir.path().join("broadcaster.log"));
    let api = Api {
        http: reqwest::Client::new(),
        base: s.api.clone(),
        key,
    };
    let port = s.metrics_port;

    // Nothing yet: every status at 0, no approvals waiting, no backlog.
    let page = scrape(port);
    for status in [
        "queued",
        "signing",
        "awaiting_approval",
        "broadcast",
        "confirmed",
    ] {
        assert_eq!(payouts(&page, status), 0.0, "{status}");
    }
    assert_eq!(sample(&page, "tron_broadcaster_approvals_waiting"), 0.0);
    assert_eq!(
        sample(&page, "tron_broadcaster_webhook_backlog_events"),
        0.0
    );

    // A payout to an allowed destination is confirmed.
    let (st, v) = api
        .call(
            "POST",
            "/v1/payouts",
            Some(json!({"id": PAYOUT_ID, "asset": "TRX", "to": ALLOWED, "amount": "5"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let confirmed = api
        .wait_status(&format!("/v1/payouts/{PAYOUT_ID}"), "confirmed")
        .await;
    let txid = confirmed["attempts"][0]["txid"]
        .as_str()
        .unwrap()
        .to_owned();
    // An invoice paid: seen, then paid once solidified.
    let (st, inv) = api
        .call(
            "POST",
            "/v1/invoices",
            Some(json!({"id": INVOICE_ID, "asset": "USDT", "amount": "2"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let r = api
        .http
        .post(format!("{}/double/pay", node.url()))
        .json(&json!({"to": inv["address"], "amount": "2000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.wait_status(&format!("/v1/invoices/{INVOICE_ID}"), "paid")
        .await;

    // Every event so far is delivered: the backlog drains to 0.
    let events = api.events().await.len();
    assert!(
        events >= 6,
        "payout queued/signing/broadcast/confirmed, invoice seen/paid: {events}"
    );
    let page = scrape_until(port, "the backlog drained", |p| {
        sample(p, "tron_broadcaster_webhook_backlog_events") == 0.0
            && maybe(
                p,
                r#"tron_broadcaster_webhook_deliveries_total{outcome="delivered"}"#,
            ) == Some(events as f64)
    })
    .await;
    assert_eq!(hooks.lock().unwrap().accepted.len(), events);
    assert_eq!(payouts(&page, "confirmed"), 1.0);
    for status in [
        "queued",
        "signing",
        "broadcast",
        "retrying",
        "denied",
        "failed",
    ] {
        assert_eq!(payouts(&page, status), 0.0, "{status}");
    }
    assert_eq!(
        sample(&page, "tron_broadcaster_webhook_oldest_pending_age_seconds"),
        0.0
    );
    assert_eq!(
        sample(
            &page,
            r#"tron_broadcaster_node_requests_total{endpoint="/wallet/broadcasthex",outcome="ok"}"#
        ),
        1.0
    );
    assert!(
        sample(
            &page,
            r#"tron_broadcaster_node_request_duration_seconds_count{endpoint="/walletsolidity/gettransactioninfobyid"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &page,
            r#"tron_broadcaster_node_requests_total{endpoint="/wallet/getblockbynum",outcome="ok"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &page,
            r#"tron_broadcaster_watcher_polls_total{outcome="ok"}"#
        ) >= 1.0
    );
    // Heights: the watcher settled the payment, so it took the block and the solid one.
    let head = sample(&page, "tron_broadcaster_chain_head_block");
    let solid = sample(&page, "tron_broadcaster_chain_solidified_block");
    let processed = sample(&page, "tron_broadcaster_watcher_processed_block");
    let settled = sample(&page, "tron_broadcaster_watcher_settled_block");
    // (The head gauge is set by the pipeline too, so it may trail the watcher's newest.)
    assert!(processed >= settled && settled > 0.0, "{page}");
    assert!(head >= settled && solid >= settled, "{page}");
    assert!(sample(&page, "tron_broadcaster_watcher_lag_blocks") >= 0.0);

    // The receiver goes down; a payout the signer refuses makes events that pile up.
    hooks.lock().unwrap().down = true;
    let (st, v) = api
        .call(
            "POST",
            "/v1/payouts",
            Some(json!({"id": DENIED_ID, "asset": "TRX", "to": unlisted().to_base58(), "amount": "1"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let denied = api
        .wait_status(&format!("/v1/payouts/{DENIED_ID}"), "denied")
        .await;
    assert_eq!(
        denied["denial"]["code"], "destination_not_allowed",
        "{denied}"
    );
    let waiting = api.events().await.len() - events;
    assert!(waiting >= 2, "queued and denied at least: {waiting}");
    let page = scrape_until(port, "a failed delivery", |p| {
        p.contains(r#"tron_broadcaster_webhook_deliveries_total{outcome="failed"}"#)
    })
    .await;
    assert_eq!(
        sample(&page, "tron_broadcaster_webhook_backlog_events"),
        waiting as f64
    );
    assert!(sample(&page, "tron_broadcaster_webhook_oldest_pending_age_seconds") > 0.0);
    assert_eq!(payouts(&page, "denied"), 1.0);
    assert_eq!(payouts(&page, "confirmed"), 1.0);
    assert_eq!(
        sample(&page, "tron_broadcaster_webhook_backlog_capped"),
        0.0
    );

    // Above 8 TRX the policy asks one approver: the payout waits, and the wait shows.
    let (st, v) = api
        .call(
            "POST",
            "/v1/payouts",
            Some(json!({"id": APPROVAL_ID, "asset": "TRX", "to": ALLOWED, "amount": "9"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    api.wait_status(&format!("/v1/payouts/{APPROVAL_ID}"), "awaiting_approval")
        .await;
    let page = scrape_until(port, "the approval wait counted", |p| {
        sample(p, "tron_broadcaster_approvals_oldest_age_seconds") > 0.0
    })
    .await;
    assert_eq!(sample(&page, "tron_broadcaster_approvals_waiting"), 1.0);
    assert_eq!(payouts(&page, "awaiting_approval"), 1.0);
    assert!(
        sample(
            &page,
            r#"tron_broadcaster_payouts_oldest_age_seconds{status="awaiting_approval"}"#
        ) > 0.0
    );
    assert_eq!(payouts(&page, "confirmed"), 1.0);
    assert_eq!(payouts(&page, "denied"), 1.0);

    // Bounded labels only: no payout or invoice id, txid, tenant, address or hook name.
    let (_, inv) = api
        .call("GET", &format!("/v1/invoices/{INVOICE_ID}"), None)
        .await;
    let paid_txid = inv["payments"][0]["txid"].as_str().unwrap().to_owned();
    for secret_ish in [
        PAYOUT_ID,
        DENIED_ID,
        APPROVAL_ID,
        INVOICE_ID,
        txid.as_str(),
        paid_txid.as_str(),
        "shop",
        ALLOWED,
        inv["address"].as_str().unwrap(),
        &payout_key().to_base58(),
    ] {
        assert!(!page.contains(secret_ish), "{secret_ish} in:\n{page}");
    }
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        let labels = &line[line.find('{').unwrap() + 1..line.find('}').unwrap()];
        for pair in labels.split(',') {
            let name = pair.split('=').next().unwrap();
            assert!(
                ["status", "endpoint", "outcome", "le"].contains(&name),
                "unexpected label {name} in {line}"
            );
        }
    }

    // The listener serves /metrics to GET only, and never the API.
    assert!(http(
        port,
        "GET /v1/payouts HTTP/1.1\r\nconnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 404"));
    assert!(http(port, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(
        port,
        "POST /metrics HTTP/1.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 405"));
    assert!(http(
        port,
        "DELETE /metrics HTTP/1.1\r\nconnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 405"));
    // And the API does not serve metrics.
    let r = api
        .http
        .get(format!("{}/metrics", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn metrics_on_the_api_socket_do_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"http://127.0.0.1:1\"\nkey = \"{ALLOWED}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("b.redb").display(),
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
        .arg("-c")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("config_invalid")
            && text.contains("metrics.listen")
            && text.contains("shares its port"),
        "{text}"
    );
    assert!(!text.contains("tron-broadcaster serving"), "{text}");
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus")
}

/// promtool: from `TRON_SIGNER_PROMTOOL` (scripts/test.sh extracts Debian's), else PATH. A
/// missing promtool fails the test below: the rules are never left unchecked.
fn promtool() -> String {
    std::env::var("TRON_SIGNER_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

#[test]
fn the_broadcaster_alert_rules_pass_promtool() {
    let tool = promtool();
    let run = |args: &[&str]| {
        Command::new(&tool)
            .args(args)
            .current_dir(rules_dir())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "promtool {tool:?} not runnable ({e}): run scripts/test.sh, which provides it"
                )
            })
    };
    for args in [
        &["check", "rules", "broadcaster-alerts.yml"][..],
        &["test", "rules", "broadcaster-alerts_test.yml"][..],
    ] {
        let out = run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "{text}");
    }
    // A broken rule is refused, and a test expecting the wrong alert fails: the checks can
    // fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]) >\n",
    )
    .unwrap();
    assert!(!run(&["check", "rules", bad.to_str().unwrap()])
        .status
        .success());
    let wrong = dir.path().join("wrong_test.yml");
    let rules = rules_dir().join("broadcaster-alerts.yml");
    std::fs::write(
        &wrong,
        format!(
            "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    \
             input_series:\n      - series: 'tron_broadcaster_watcher_lag_blocks'\n        \
             values: '1x20'\n    alert_rule_test:\n      - eval_time: 15m\n        \
             alertname: TronBroadcasterWatcherLagging\n        exp_alerts:\n          \
             - exp_labels:\n              severity: warning\n",
            rules.display()
        ),
    )
    .unwrap();
    assert!(!run(&["test", "rules", wrong.to_str().unwrap()])
        .status
        .success());
}
