//! Crash harness for the online side (issue 17): the real `tron-signer serve`, the node
//! double on a real socket producing blocks on its timer (it keeps running throughout), and
//! the real `tron-broadcaster serve`, SIGKILLed at random moments (seeded; the seed is
//! printed) and restarted K times while clients create payouts (retrying the same request,
//! the payout id being the idempotency key, when the broadcaster is down) and invoices are
//! created and paid on the double. At the end every accepted payout must be confirmed with
//! exactly one transaction on chain (each payout has its own amount, so the chain alone
//! says which payout a transfer pays), and every invoice paid once: one payment, the amount
//! paid, one `invoice.paid` event.
//!
//! The short version (3 kills) runs under `cargo test --workspace`; the long one is
//! ignored: `BROADCASTER_CRASH_KILLS=50 cargo test --release -p tron-broadcaster --test crash
//! -- --ignored`. `BROADCASTER_CRASH_SEED` repeats a run. The signer binary is the one cargo
//! built beside this crate's binary (`cargo test --workspace` builds it).

mod real_bins;

use real_bins::{Proc, PASSPHRASE_VAR};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tron_node_double::{Accounts, Options, Running};
use tron_proto::Address;

const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const PAYOUT_SECRET: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
/// The public BIP-39 test mnemonic's account key (README): deposit addresses only.
const XPUB: &str = "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJXALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgmv8D45oNUKx6DZMNZBCd";
/// What each invoice asks and is paid, USDT base units.
const INVOICE_UNITS: u64 = 3_000_000;

fn payout_key() -> Address {
    let k = SigningKey::from_slice(&hex::decode(PAYOUT_SECRET).unwrap()).unwrap();
    Address::from_verifying_key(k.verifying_key())
}

fn destinations() -> Vec<Address> {
    (0..4u8)
        .map(|i| Address::from_evm([0xd0 + i; 20]))
        .collect()
}

/// SplitMix64: the kill delays and the clients' pauses from one printed seed.
struct Rng(u64);

impl Rng {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        lo + (z ^ (z >> 31)) % (hi - lo + 1)
    }
}

/// A keystore with the payout key, a policy paying the four destinations generously, and a
/// running signer on `dir/signer.sock`.
async fn start_signer(dir: &Path) -> (Proc, PathBuf) {
    let ks = dir.join("keys.tks");
    let ks = ks.to_str().unwrap();
    real_bins::import_key(ks, "payouts", PAYOUT_SECRET);
    let uid = std::fs::metadata(dir).unwrap().uid();
    let mut policy = format!(
        r#"version = 1
name = "broadcaster crash harness"
network = "nile"

[global]
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "5s"
memo_allowed = false

[[caller]]
name = "broadcaster"
unix_uid = {uid}
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy", "ReadPolicyText"]
keys = ["{key}"]

[[key]]
address = "{key}"
label = "payouts"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "1000000" }}]
"#,
        key = payout_key()
    );
    for (i, d) in destinations().iter().enumerate() {
        policy.push_str(&format!(
            "\n  [[key.destination]]\n  address = \"{d}\"\n  label = \"d{i}\"\n  \
             assets = [\"TRX\"]\n  per_tx_max = {{ TRX = \"100\" }}\n"
        ));
    }
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
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

/// The broadcaster's config and its API key; everything it needs is already running.
fn broadcaster_config(dir: &Path, node: &Running, socket: &Path) -> (PathBuf, String) {
    let config = dir.join("b.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"{}\"\nkey = \"{}\"\nsigner = \"unix:{}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"100ms\"\n\
             expiration = \"1m\"\nsolidity_margin = \"1s\"\nmax_backoff = \"1s\"\n\n\
             [receive]\nxpub = \"{XPUB}\"\n",
            node.url(),
            payout_key(),
            socket.display(),
            dir.join("b.redb").display(),
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
    (
        config,
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    )
}

/// Starts `tron-broadcaster serve` (start `n`, its log in `dir/broadcaster-N.log`); returns
/// it and its base URL once it listens.
fn serve(dir: &Path, config: &Path, n: u32) -> (Proc, String) {
    let b = real_bins::serve_broadcaster(config, &dir.join(format!("broadcaster-{n}.log")));
    (b.proc, b.api)
}

/// What the clients share with the killer and the checks.
struct Shared {
    base: RwLock<String>,
    api_key: String,
    http: reqwest::Client,
    stop: AtomicBool,
    in_flight: AtomicU64,
    retries: AtomicU64,
    /// Accepted payouts: id → amount in sun (unique per payout).
    payouts: Mutex<BTreeMap<String, u64>>,
    /// Invoices created and paid on the double: id → deposit address.
    invoices: Mutex<BTreeMap<String, String>>,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    /// `POST path body` until the broadcaster answers (not a connection error or a 5xx):
    /// what a client does when the service is down. Returns the status and body.
    async fn post_retrying(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        loop {
            let url = format!("{}{path}", self.base.read().unwrap());
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            let r = self
                .http
                .post(url)
                .bearer_auth(&self.api_key)
                .timeout(Duration::from_secs(10))
                .json(body)
                .send()
                .await;
            let answer = match r {
                Ok(resp) if !resp.status().is_server_error() => {
                    let status = resp.status();
                    Some((status, resp.json().await.unwrap_or(Value::Null)))
                }
                _ => None,
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            match answer {
                Some(a) => return a,
                None => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base.read().unwrap());
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Payouts until stopped: each its own id and amount (1 TRX plus a per-payout number of sun).
async fn payout_client(shared: Arc<Shared>, client: u64, mut rng: Rng) {
    let dests = destinations();
    let mut i = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        i += 1;
        let id = format!("crash-{client}-{i}");
        let amount_sun = 1_000_000 + client * 100_000 + i;
        let body = json!({
            "id": id, "asset": "TRX",
            "to": dests[(i % 4) as usize].to_base58(),
            "amount": format!("{}.{:06}", amount_sun / 1_000_000, amount_sun % 1_000_000),
        });
        let (status, v) = shared.post_retrying("/v1/payouts", &body).await;
        if status == StatusCode::CREATED || status == StatusCode::OK {
            // Now and then the same request again, as a client unsure it got through: the
            // same payout, never a second one.
            if rng.range(0, 4) == 0 {
                let (again, v) = shared.post_retrying("/v1/payouts", &body).await;
                if again != StatusCode::OK {
                    shared.violation(format!("payout {id} sent again: {again} {v}"));
                }
            }
            shared.payouts.lock().unwrap().insert(id, amount_sun);
        } else {
            shared.violation(format!("payout {id}: {status} {v}"));
        }
        tokio::time::sleep(Duration::from_millis(rng.range(150, 500))).await;
    }
}

/// Invoices until stopped, each paid on the node double right after it is created (the
/// payment lands in the double's next block, whether the broadcaster is up or not).
async fn invoice_client(shared: Arc<Shared>, node_url: String, mut rng: Rng) {
    let mut j = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        j += 1;
        let id = format!("inv-{j}");
        let body = json!({"id": id, "asset": "USDT", "amount": "3"});
        let (status, v) = shared.post_retrying("/v1/invoices", &body).await;
        let address = v["address"].as_str().unwrap_or_default().to_owned();
        if !(status == StatusCode::CREATED || status == StatusCode::OK) || address.is_empty() {
            shared.violation(format!("invoice {id}: {status} {v}"));
            continue;
        }
        let paid = shared
            .http
            .post(format!("{node_url}/double/pay"))
            .json(&json!({"to": address, "amount": INVOICE_UNITS.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            paid.status(),
            StatusCode::OK,
            "the double refused a payment"
        );
        shared.invoices.lock().unwrap().insert(id, address);
        tokio::time::sleep(Duration::from_millis(rng.range(200, 600))).await;
    }
}

/// Payouts accepted and not final yet (queued, signing, broadcast, retrying): what a kill
/// now interrupts. Zero when the broadcaster does not answer.
async fn payouts_in_pipeline(shared: &Shared) -> usize {
    let url = format!("{}/v1/payouts?limit=1000", shared.base.read().unwrap());
    let Ok(resp) = shared
        .http
        .get(url)
        .bearer_auth(&shared.api_key)
        .send()
        .await
    else {
        return 0;
    };
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    v["payouts"].as_array().map_or(0, |list| {
        list.iter()
            .filter(|p| {
                !["confirmed", "denied", "failed"].contains(&p["status"].as_str().unwrap_or(""))
            })
            .count()
    })
}

/// Every event of the tenant, oldest first.
async fn all_events(shared: &Shared) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let (st, v) = shared
            .get(&format!("/v1/events?after={after}&limit=1000"))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let page = v["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return out;
        }
        after = v["next_after"].as_str().unwrap_or_default().to_owned();
        out.extend(page);
    }
}

async fn run(kills: u32, seed: u64) {
    println!("seed {seed} (repeat with BROADCASTER_CRASH_SEED={seed}), kills {kills}");
    let dir = tempfile::tempdir().unwrap();
    let (_signer, socket) = start_signer(dir.path()).await;
    let accounts = Accounts::from_json(
        json!({ "trx": { payout_key().to_base58(): "1000000000000" }})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let node = tron_node_double::start(Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        // The double accepts a reference block among its last 64: 128 s at a block every 2 s,
        // longer than a transaction lives (1 m), as on the chain (65536 blocks of 3 s).
        block_interval: Duration::from_secs(2),
        solid_after: 2,
        accounts,
        api_key: None,
    })
    .await
    .unwrap();
    node.app.set_default_token(NILE_USDT.parse().unwrap());
    let (config, api_key) = broadcaster_config(dir.path(), &node, &socket);
    let mut starts = 1;
    let (mut proc, base) = serve(dir.path(), &config, starts);
    let shared = Arc::new(Shared {
        base: RwLock::new(base),
        api_key,
        http: reqwest::Client::new(),
        stop: AtomicBool::new(false),
        in_flight: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        payouts: Mutex::new(BTreeMap::new()),
        invoices: Mutex::new(BTreeMap::new()),
        violations: Mutex::new(Vec::new()),
    });
    let mut rng = Rng(seed);
    let mut tasks = Vec::new();
    for c in 0..2 {
        let r = Rng(rng.range(0, u64::MAX - 1));
        tasks.push(tokio::spawn(payout_client(shared.clone(), c, r)));
    }
    let r = Rng(rng.range(0, u64::MAX - 1));
    tasks.push(tokio::spawn(invoice_client(shared.clone(), node.url(), r)));

    let (mut with_in_flight, mut with_in_pipeline) = (0, 0);
    let mut delays = Vec::new();
    for k in 1..=kills {
        let delay = rng.range(300, 1500);
        delays.push(delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let pipeline = payouts_in_pipeline(&shared).await;
        with_in_pipeline += u32::from(pipeline > 0);
        let in_flight = shared.in_flight.load(Ordering::SeqCst);
        with_in_flight += u32::from(in_flight > 0);
        drop(proc); // SIGKILL (std's Child::kill) and reap
        starts += 1;
        let n = starts;
        let (dir_path, config_path) = (dir.path().to_owned(), config.clone());
        let (p, base) = tokio::task::spawn_blocking(move || serve(&dir_path, &config_path, n))
            .await
            .unwrap();
        proc = p;
        *shared.base.write().unwrap() = base;
        println!(
            "kill {k}/{kills} after {delay} ms: {pipeline} payouts not final, {in_flight} API \
             requests in flight"
        );
    }
    println!("kill delays (ms) {delays:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let payouts = shared.payouts.lock().unwrap().clone();
    let invoices = shared.invoices.lock().unwrap().clone();

    // Every accepted payout and every invoice reaches its final state under the last
    // broadcaster (a block every 2 s, solid 2 blocks later; a transaction the node refused
    // is replaced only after it expired, 1 m, plus the signer's skew).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut views: HashMap<String, Value> = HashMap::new();
    loop {
        views.clear();
        let mut pending = Vec::new();
        for id in payouts.keys() {
            let (_, v) = shared.get(&format!("/v1/payouts/{id}")).await;
            if v["status"] != "confirmed" && v["status"] != "denied" && v["status"] != "failed" {
                pending.push(format!("payout {id} {}", v["status"]));
            }
            views.insert(id.clone(), v);
        }
        for id in invoices.keys() {
            let (_, v) = shared.get(&format!("/v1/invoices/{id}")).await;
            if v["status"] != "paid" {
                pending.push(format!("invoice {id} {}", v["status"]));
            }
            views.insert(id.clone(), v);
        }
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let kept = dir.keep();
            panic!(
                "not final 180 s after the last kill (logs kept in {}): {pending:?}",
                kept.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut violations = shared.violations.lock().unwrap().clone();
    // The chain: which payout each transfer from the payout key pays (by its amount).
    let txs: Value = shared
        .http
        .get(format!("{}/double/transactions", node.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_amount: HashMap<u64, &String> = payouts.iter().map(|(id, a)| (*a, id)).collect();
    let mut on_chain: HashMap<&String, Vec<String>> = HashMap::new();
    for t in txs.as_array().unwrap() {
        if t["owner"] != payout_key().to_base58().as_str() {
            continue;
        }
        let amount: u64 = t["amount"].as_str().unwrap_or("0").parse().unwrap_or(0);
        let txid = t["txid"].as_str().unwrap_or_default().to_owned();
        match by_amount.get(&amount) {
            Some(id) => on_chain.entry(id).or_default().push(txid),
            None => violations.push(format!(
                "transaction {txid} from the payout key pays {amount} sun: no accepted payout"
            )),
        }
    }
    for (id, v) in payouts.keys().map(|id| (id, &views[id])) {
        let chain = on_chain.get(id).cloned().unwrap_or_default();
        if v["status"] != "confirmed" {
            violations.push(format!(
                "payout {id} ended {}, not confirmed: {v}",
                v["status"]
            ));
        }
        match chain.as_slice() {
            [one] if v["txid"] == one.as_str() => {}
            [one] => violations.push(format!(
                "payout {id}: on chain as {one}, the broadcaster says {}",
                v["txid"]
            )),
            many => violations.push(format!(
                "payout {id} is on chain as {} transactions: {many:?}",
                many.len()
            )),
        }
    }
    let events = all_events(&shared).await;
    let mut paid_events: HashMap<String, usize> = HashMap::new();
    let mut confirmed_events: HashMap<String, usize> = HashMap::new();
    for e in &events {
        if e["type"] == "invoice.paid" {
            let id = e["data"]["invoice"]["id"].as_str().unwrap_or_default();
            *paid_events.entry(id.to_owned()).or_default() += 1;
        }
        if e["type"] == "payout.confirmed" {
            let id = e["data"]["payout"]["id"].as_str().unwrap_or_default();
            *confirmed_events.entry(id.to_owned()).or_default() += 1;
        }
    }
    for id in payouts.keys() {
        let n = confirmed_events.get(id).copied().unwrap_or(0);
        if n != 1 {
            violations.push(format!("payout {id}: {n} payout.confirmed events"));
        }
    }
    for id in invoices.keys() {
        let v = &views[id];
        let payments = v["payments"].as_array().cloned().unwrap_or_default();
        if payments.len() != 1 || v["paid_units"] != INVOICE_UNITS.to_string().as_str() {
            violations.push(format!(
                "invoice {id} paid once with {INVOICE_UNITS} units: credited {} in {} payments: {v}",
                v["paid_units"],
                payments.len()
            ));
        }
        let n = paid_events.get(id).copied().unwrap_or(0);
        if n != 1 {
            violations.push(format!("invoice {id}: {n} invoice.paid events"));
        }
    }
    println!(
        "kills {kills} ({with_in_pipeline} with payouts not final, {with_in_flight} with API \
         requests in flight), {} client retries; \
         payouts accepted {}, confirmed {}, on chain {}; invoices paid on the double {}, \
         credited once {}; events {}; violations {}",
        shared.retries.load(Ordering::Relaxed),
        payouts.len(),
        views
            .values()
            .filter(|v| v["status"] == "confirmed")
            .count(),
        on_chain.values().map(Vec::len).sum::<usize>(),
        invoices.len(),
        invoices
            .keys()
            .filter(|id| views[*id]["payments"].as_array().map(Vec::len) == Some(1))
            .count(),
        events.len(),
        violations.len()
    );
    if !violations.is_empty() {
        let kept = dir.keep();
        panic!(
            "violations (logs kept in {}):\n{}",
            kept.display(),
            violations.join("\n")
        );
    }
    assert!(
        !payouts.is_empty() && !invoices.is_empty(),
        "the run made no payouts or invoices"
    );
    assert!(
        with_in_pipeline > 0,
        "no kill found a payout on its way: the kills never landed mid-pipeline"
    );
    drop(proc);
}

fn seed() -> u64 {
    std::env::var("BROADCASTER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(1)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_broadcaster_pays_each_payout_once_and_credits_each_payment_once() {
    run(3, seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long run (RELIABILITY.md): BROADCASTER_CRASH_KILLS=50"]
async fn long_run_sigkilled_broadcaster_pays_once_and_credits_once() {
    let kills = std::env::var("BROADCASTER_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    run(kills, seed()).await;
}
