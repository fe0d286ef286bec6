//! The receive side end to end: the real `tron-broadcaster serve` binary over HTTP, the
//! node double on a real socket (in-process, its blocks driven by `/double/produce`).
//! Invoice → scripted payment → `seen` → `paid` after solidification; partial, over and
//! after-close payments; every kind of fake deposit credits nothing; a replaced block
//! un-sees its payment; a restart mid-stream misses nothing and credits nothing twice.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod real_bins;

use bip32::{DerivationPath, Prefix, XPrv};
use real_bins::{serve_broadcaster, Proc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tron_node_double::{Accounts, Options, Running};

const OWNER: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
/// The BIP-39 test seed whose m/44'/195'/0'/0/0 and /1 are published.
const SEED: &str = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                    9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
const ADDRESS_0: &str = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH";
const ADDRESS_1: &str = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK";
const SOLID_AFTER: u32 = 3;

fn account_xpub() -> String {
    let path: DerivationPath = "m/44'/195'/0'".parse().unwrap();
    XPrv::derive_from_path(hex::decode(SEED).unwrap(), &path)
        .unwrap()
        .public_key()
        .to_string(Prefix::XPUB)
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    node: Running,
    http: reqwest::Client,
}

/// A running `tron-broadcaster serve` (killed when dropped).
struct Server {
    _proc: Proc,
    base: String,
}

async fn env() -> Env {
    env_with("").await
}

/// `extra` is appended to the `[receive]` section.
async fn env_with(extra: &str) -> Env {
    let node = tron_node_double::start(Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        // Blocks come only from /double/produce, so every test decides when.
        block_interval: Duration::from_secs(3600),
        solid_after: SOLID_AFTER,
        accounts: Accounts::default(),
        api_key: None,
    })
    .await
    .unwrap();
    node.app.set_default_token(NILE_USDT.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"{}\"\nkey = \"{OWNER}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"100ms\"\n\
             max_backoff = \"1s\"\n\n[receive]\nxpub = \"{}\"\n{extra}",
            node.url(),
            dir.path().join("b.redb").display(),
            account_xpub()
        ),
    )
    .unwrap();
    Env {
        dir,
        config,
        node,
        http: reqwest::Client::new(),
    }
}

impl Env {
    fn key(&self, tenant: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
            .arg("-c")
            .arg(&self.config)
            .args(["api-keys", "create", "--label", tenant, "--tenant", tenant])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn serve(&self) -> Server {
        let b = serve_broadcaster(&self.config, &self.dir.path().join("broadcaster.log"));
        Server {
            _proc: b.proc,
            base: b.api,
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.node.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} {body}");
        r.json().await.unwrap()
    }

    async fn pay(&self, body: Value) -> String {
        self.control("/double/pay", body).await["txid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn produce(&self, n: u32) {
        self.control("/double/produce", json!({ "count": n })).await;
    }

    async fn call(
        &self,
        s: &Server,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", s.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn invoice(&self, s: &Server, key: &str, body: Value) -> Value {
        let (st, v) = self.call(s, key, "POST", "/v1/invoices", Some(body)).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v
    }

    async fn get(&self, s: &Server, key: &str, id: &str) -> Value {
        let (st, v) = self
            .call(s, key, "GET", &format!("/v1/invoices/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Waits until invoice `id` reports `status` (the watcher polls every 100 ms).
    async fn wait_status(&self, s: &Server, key: &str, id: &str, status: &str) -> Value {
        self.wait_until(s, key, id, |v| v["status"] == status).await
    }

    async fn wait_until(
        &self,
        s: &Server,
        key: &str,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.get(s, key, id).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{id} never got there: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn events(&self, s: &Server, key: &str) -> Vec<Value> {
        let (st, v) = self.call(s, key, "GET", "/v1/events?after=0", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["events"].as_array().unwrap().clone()
    }
}

fn types_for(events: &[Value], invoice: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["data"]["invoice"]["id"] == invoice)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_invoice_is_seen_then_paid_after_solidification() {
    let e = env().await;
    let key = e.key("shop");
    let s = e.serve();
    e.produce(2).await;
    let inv = e
        .invoice(
            &s,
            &key,
            json!({"id": "order-1", "asset": "USDT", "amount": "10.5",
            "reference": "cart 77", "metadata": {"customer": 42}}),
        )
        .await;
    assert_eq!(inv["status"], "new");
    assert_eq!(inv["address"], ADDRESS_0, "index 0 of the account xpub");
    assert_eq!(inv["amount_units"], "10500000");
    let second = e
        .invoice(
            &s,
            &key,
            json!({"id": "order-2", "asset": "TRX", "amount": "1"}),
        )
        .await;
    assert_eq!(second["address"], ADDRESS_1);

    let txid = e.pay(json!({"to": ADDRESS_0, "amount": "10500000"})).await;
    e.produce(1).await;
    let seen = e.wait_status(&s, &key, "order-1", "seen").await;
    assert_eq!(seen["pending"], "10.5");
    assert_eq!(seen["paid"], "0");
    assert_eq!(seen["payments"][0]["txid"], txid);
    assert_eq!(seen["payments"][0]["log_index"], 0);
    assert_eq!(seen["payments"][0]["state"], "seen");

    // Solid once SOLID_AFTER blocks are built on it.
    e.produce(SOLID_AFTER).await;
    let paid = e.wait_status(&s, &key, "order-1", "paid").await;
    assert_eq!(paid["paid"], "10.5");
    assert_eq!(paid["payments"][0]["state"], "settled");
    assert_eq!(paid["metadata"], json!({"customer": 42}));

    // TRX to the TRX invoice.
    e.pay(json!({"to": ADDRESS_1, "amount": "1000000", "asset": "TRX"}))
        .await;
    e.produce(1 + SOLID_AFTER).await;
    let trx = e.wait_status(&s, &key, "order-2", "paid").await;
    assert_eq!(trx["payments"][0]["log_index"], Value::Null);

    let events = e.events(&s, &key).await;
    assert_eq!(
        types_for(&events, "order-1"),
        ["invoice.seen", "invoice.paid"]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Another tenant sees neither the invoice nor its events.
    let other = e.key("other");
    let (st, v) = e
        .call(&s, &other, "GET", "/v1/invoices/order-1", None)
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("invoice_not_found"))
    );
    assert!(e.events(&s, &other).await.is_empty());
    // No webhook endpoint is configured here: redelivery is refused for that reason.
    let first = events[0]["id"].as_str().unwrap();
    let (st, v) = e
        .call(
            &s,
            &key,
            "POST",
            &format!("/v1/events/{first}/redeliver"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_webhook_endpoint"))
    );
}

#[tokio::test]
async fn partial_over_and_after_close_payments() {
    let e = env().await;
    let key = e.key("shop");
    let s = e.serve();
    let a = e
        .invoice(
            &s,
            &key,
            json!({"id": "a", "asset": "USDT", "amount": "10"}),
        )
        .await;
    let b = e
        .invoice(
            &s,
            &key,
            json!({"id": "b", "asset": "USDT", "amount": "10"}),
        )
        .await;
    let a_addr = a["address"].as_str().unwrap().to_owned();
    let b_addr = b["address"].as_str().unwrap().to_owned();

    e.pay(json!({"to": a_addr, "amount": "4000000"})).await;
    e.pay(json!({"to": b_addr, "amount": "12000000"})).await;
    e.produce(1 + SOLID_AFTER).await;
    let pa = e.wait_until(&s, &key, "a", |v| v["paid"] == "4").await;
    assert_eq!(pa["status"], "partially_paid");
    assert_eq!(pa["underpaid"], "6");
    let over = e.wait_status(&s, &key, "b", "overpaid").await;
    assert_eq!(over["overpaid"], "2");

    e.pay(json!({"to": a_addr, "amount": "6000000"})).await;
    e.produce(1 + SOLID_AFTER).await;
    e.wait_status(&s, &key, "a", "paid").await;

    // After "a" closed: recorded, flagged, reported; "a" becomes overpaid.
    e.pay(json!({"to": a_addr, "amount": "1"})).await;
    e.produce(1 + SOLID_AFTER).await;
    let late = e.wait_status(&s, &key, "a", "overpaid").await;
    let payments = late["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 3);
    assert_eq!(payments[2]["after_close"], true);
    assert_eq!(payments[0]["after_close"], false);
    let events = e.events(&s, &key).await;
    // `seen` between: the second payment completed it before it was solid.
    assert_eq!(
        types_for(&events, "a"),
        [
            "invoice.partially_paid",
            "invoice.seen",
            "invoice.paid",
            "invoice.payment_after_close",
            "invoice.overpaid"
        ]
    );

    // Filters.
    let (_, list) = e
        .call(&s, &key, "GET", "/v1/invoices?status=overpaid", None)
        .await;
    let ids: Vec<&str> = list["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let (_, page) = e.call(&s, &key, "GET", "/v1/invoices?limit=1", None).await;
    assert_eq!(page["next_after"], "a");
    let (_, rest) = e.call(&s, &key, "GET", "/v1/invoices?after=a", None).await;
    assert_eq!(rest["invoices"][0]["id"], "b");
}

#[tokio::test]
async fn every_kind_of_fake_deposit_credits_nothing() {
    let e = env().await;
    let key = e.key("shop");
    let s = e.serve();
    let inv = e
        .invoice(&s, &key, json!({"id": "f", "asset": "USDT", "amount": "5"}))
        .await;
    let to = inv["address"].as_str().unwrap().to_owned();
    for kind in ["fake_token", "trc10", "reverted", "zero_value"] {
        e.pay(json!({"to": to, "amount": "5000000", "kind": kind}))
            .await;
    }
    // TRX to a USDT invoice: recorded, never counted.
    e.pay(json!({"to": to, "amount": "5000000", "asset": "TRX"}))
        .await;
    e.produce(1 + SOLID_AFTER).await;
    // A real payment to another invoice, after the fakes: once it is paid, the watcher
    // has been through the fakes' block.
    let marker = e
        .invoice(
            &s,
            &key,
            json!({"id": "marker", "asset": "USDT", "amount": "1"}),
        )
        .await;
    e.pay(json!({"to": marker["address"], "amount": "1000000"}))
        .await;
    e.produce(1 + SOLID_AFTER).await;
    e.wait_status(&s, &key, "marker", "paid").await;
    let untouched = e.get(&s, &key, "f").await;
    assert_eq!(untouched["status"], "new");
    assert_eq!(
        untouched["payments"].as_array().unwrap().len(),
        1,
        "only the TRX one: {untouched}"
    );
    assert!(types_for(&e.events(&s, &key).await, "f").is_empty());
    // Then a real payment through another contract, as two Transfer logs of 2.5.
    let via = e
        .pay(json!({"to": to, "amount": "2500000", "kind": "via_contract", "transfers": 2}))
        .await;
    e.produce(1 + SOLID_AFTER).await;
    let paid = e.wait_status(&s, &key, "f", "paid").await;
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 3, "{payments:?}");
    assert_eq!(payments[0]["asset"], "TRX");
    assert_eq!(payments[0]["counted"], false);
    for (p, log) in payments[1..].iter().zip([0, 1]) {
        assert_eq!(p["txid"], via);
        assert_eq!(p["log_index"], log);
        assert_eq!(p["amount"], "2.5");
        assert_eq!(p["counted"], true);
    }
    assert_eq!(paid["paid"], "5");
}

#[tokio::test]
async fn a_replaced_block_unsees_its_payment() {
    let e = env().await;
    let key = e.key("shop");
    let s = e.serve();
    let inv = e
        .invoice(&s, &key, json!({"id": "r", "asset": "USDT", "amount": "3"}))
        .await;
    let to = inv["address"].as_str().unwrap().to_owned();
    e.produce(1).await;
    e.pay(json!({"to": to, "amount": "3000000"})).await;
    e.produce(1).await;
    e.wait_status(&s, &key, "r", "seen").await;
    // The block is replaced by one without the payment.
    e.control("/double/reorg", json!({"depth": 1})).await;
    let back = e.wait_status(&s, &key, "r", "new").await;
    assert_eq!(back["payments"][0]["state"], "unseen");
    assert_eq!(back["pending"], "0");

    // Paid again; this time the fork keeps the transaction in a new block.
    let txid = e.pay(json!({"to": to, "amount": "3000000"})).await;
    e.produce(1).await;
    let seen = e.wait_status(&s, &key, "r", "seen").await;
    let first_block = seen["payments"][1]["block_id"].clone();
    e.control(
        "/double/reorg",
        json!({"depth": 1, "keep_transactions": true}),
    )
    .await;
    e.produce(SOLID_AFTER).await;
    let paid = e.wait_status(&s, &key, "r", "paid").await;
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 2, "one payment, not a second: {payments:?}");
    assert_eq!(payments[1]["txid"], txid);
    assert_eq!(payments[1]["state"], "settled");
    assert_ne!(
        payments[1]["block_id"], first_block,
        "credited from the replacement block"
    );
    // Whether the watcher meets the replacement block itself first (one transaction:
    // un-seen and seen again, no event) or a block built on it (it steps back first:
    // `new`, then `seen` again) depends on timing; either way the payment is paid once.
    let types = types_for(&e.events(&s, &key).await, "r");
    assert_eq!(types[..3], ["invoice.seen", "invoice.new", "invoice.seen"]);
    assert!(
        types[3..] == ["invoice.paid"]
            || types[3..] == ["invoice.new", "invoice.seen", "invoice.paid"],
        "{types:?}"
    );
}

#[tokio::test]
async fn a_restart_mid_stream_misses_nothing_and_credits_nothing_twice() {
    let e = env().await;
    let key = e.key("shop");
    let mut s = e.serve();
    let mut addresses = Vec::new();
    for i in 0..4 {
        let v = e
            .invoice(
                &s,
                &key,
                json!({"id": format!("i{i}"), "asset": "USDT", "amount": "1"}),
            )
            .await;
        addresses.push(v["address"].as_str().unwrap().to_owned());
    }
    e.pay(json!({"to": addresses[0], "amount": "1000000"}))
        .await;
    e.produce(1).await;
    e.wait_status(&s, &key, "i0", "seen").await;
    // Killed (no clean shutdown) while payments keep coming.
    drop(s);
    for a in &addresses[1..] {
        e.pay(json!({"to": a, "amount": "1000000"})).await;
        e.produce(1).await;
    }
    e.produce(SOLID_AFTER).await;
    s = e.serve();
    for i in 0..4 {
        let v = e.wait_status(&s, &key, &format!("i{i}"), "paid").await;
        assert_eq!(v["payments"].as_array().unwrap().len(), 1, "{v}");
    }
    // And once more, with nothing new: still one payment each, no new events.
    let before = e.events(&s, &key).await.len();
    drop(s);
    s = e.serve();
    e.produce(2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..4 {
        let v = e.get(&s, &key, &format!("i{i}")).await;
        assert_eq!(v["payments"].as_array().unwrap().len(), 1);
        assert_eq!(v["status"], "paid");
    }
    let events = e.events(&s, &key).await;
    assert_eq!(events.len(), before);
    assert_eq!(types_for(&events, "i0"), ["invoice.seen", "invoice.paid"]);
    let _ = &e.dir;
}

/// A merchant's webhook receiver: verifies every delivery with the receiver-side check
/// and keeps the verified ones; answers 503 while `down`.
#[derive(Default)]
struct Receiver {
    down: bool,
    attempts: usize,
    /// (event id header, delivery id header, body) of every delivery it accepted.
    accepted: Vec<(String, String, Value)>,
    refused: Vec<String>,
}

type Hooks = std::sync::Arc<std::sync::Mutex<Receiver>>;

const HOOK_SECRET: &str = "whsec_test_0123456789";

async fn receiver() -> (Hooks, String) {
    use axum::http::HeaderMap;
    let hooks: Hooks = Default::default();
    let h = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let h = h.clone();
            async move {
                let mut r = h.lock().unwrap();
                r.attempts += 1;
                if r.down {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                match tron_broadcaster::webhook_sign::verify(
                    HOOK_SECRET.as_bytes(),
                    &header("Webhook-Signature"),
                    &body,
                    now,
                    300,
                ) {
                    Ok(()) => {
                        let v: Value = serde_json::from_slice(&body).unwrap();
                        r.accepted
                            .push((header("Webhook-Id"), header("Webhook-Delivery"), v));
                        axum::http::StatusCode::OK
                    }
                    Err(e) => {
                        r.refused.push(e.code().to_owned());
                        axum::http::StatusCode::BAD_REQUEST
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hooks, format!("http://{addr}/hook"))
}

#[tokio::test]
async fn webhooks_are_signed_retried_while_the_receiver_is_down_and_delivered_in_order() {
    let (hooks, url) = receiver().await;
    hooks.lock().unwrap().down = true;
    let secret_dir = tempfile::tempdir().unwrap();
    let new_secret = secret_dir.path().join("new");
    let old_secret = secret_dir.path().join("old");
    std::fs::write(&new_secret, "whsec_rotated_in\n").unwrap();
    std::fs::write(&old_secret, format!("{HOOK_SECRET}\n")).unwrap();
    // Rotating: signed with both; the receiver still holds the old one.
    let e = env_with(&format!(
        "webhook_min_backoff = \"100ms\"\nwebhook_max_backoff = \"300ms\"\n\
         [[receive.webhooks]]\nname = \"shop-hook\"\ntenant = \"shop\"\nurl = \"{url}\"\n\
         secrets = [{{ file = \"{}\" }}, {{ file = \"{}\" }}]\n",
        new_secret.display(),
        old_secret.display()
    ))
    .await;
    let key = e.key("shop");
    let s = e.serve();
    for id in ["w1", "w2"] {
        let inv = e
            .invoice(&s, &key, json!({"id": id, "asset": "USDT", "amount": "2"}))
            .await;
        e.pay(json!({"to": inv["address"], "amount": "2000000"}))
            .await;
    }
    e.produce(1).await;
    e.wait_status(&s, &key, "w2", "seen").await;
    e.produce(SOLID_AFTER).await;
    e.wait_status(&s, &key, "w1", "paid").await;
    e.wait_status(&s, &key, "w2", "paid").await;
    let events = e.events(&s, &key).await;
    assert_eq!(events.len(), 4);
    // Down: attempts are made and retried, none accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.lock().unwrap().attempts < 3 {
        assert!(Instant::now() < deadline, "no retries while down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hooks.lock().unwrap().accepted.is_empty());
    // Up again: every event arrives, verified, in seq order.
    hooks.lock().unwrap().down = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.lock().unwrap().accepted.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "not all delivered: {:?}",
            hooks.lock().unwrap().accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A copy, so no lock is held across the awaits below.
    let (accepted, refused) = {
        let r = hooks.lock().unwrap();
        (r.accepted.clone(), r.refused.clone())
    };
    assert!(refused.is_empty(), "{refused:?}");
    let got: Vec<&Value> = accepted.iter().map(|(_, _, v)| v).collect();
    let want: Vec<&Value> = events.iter().collect();
    assert_eq!(got, want, "the same events as the feed, in the same order");
    for (id, delivery, v) in &accepted {
        assert_eq!(id, v["id"].as_str().unwrap());
        assert!(delivery.starts_with("dlv_shop-hook_"), "{delivery}");
    }
    let first_delivery = accepted[0].1.clone();
    assert!(
        !first_delivery.ends_with("_1"),
        "the first event needed retries: {first_delivery}"
    );

    // Redelivery by API: the same event (same id) once more.
    let first = events[0]["id"].as_str().unwrap();
    let (st, v) = e
        .call(
            &s,
            &key,
            "POST",
            &format!("/v1/events/{first}/redeliver"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["endpoints"], json!(["shop-hook"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.lock().unwrap().accepted.len() < 5 {
        assert!(Instant::now() < deadline, "no redelivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hooks.lock().unwrap().accepted[4].0, first);
    for bad in ["evt_ffffffffffffffff", "nope"] {
        let (st, v) = e
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{bad}/redeliver"),
                None,
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("event_not_found"))
        );
    }
    // Another tenant cannot redeliver this tenant's event, and has no endpoint anyway.
    let other = e.key("other");
    let (st, v) = e
        .call(
            &s,
            &other,
            "POST",
            &format!("/v1/events/{first}/redeliver"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("event_not_found"))
    );
}

/// Takes about a minute: the shortest invoice lifetime is one minute.
#[tokio::test]
async fn an_expired_invoice_paid_afterwards_is_paid_late() {
    let e = env().await;
    let key = e.key("shop");
    let s = e.serve();
    let inv = e
        .invoice(
            &s,
            &key,
            json!({"id": "slow", "asset": "USDT", "amount": "1", "expires_in": "1m"}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if e.get(&s, &key, "slow").await["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    e.pay(json!({"to": inv["address"], "amount": "1000000"}))
        .await;
    e.produce(1 + SOLID_AFTER).await;
    let late = e.wait_status(&s, &key, "slow", "paid_late").await;
    assert_eq!(late["payments"][0]["after_close"], true);
    assert!(
        late["payments"][0]["block_timestamp"].as_i64().unwrap()
            > late["expires_at"].as_i64().unwrap()
    );
    let types = types_for(&e.events(&s, &key).await, "slow");
    assert_eq!(
        types,
        [
            "invoice.expired",
            "invoice.payment_after_close",
            "invoice.seen",
            "invoice.paid_late"
        ]
    );
}
