//! Sweeps end to end with the real binaries: `tron-signer serve` on a Unix socket with a
//! keystore holding an HD account (`keys generate --hd`) and a gas key under a
//! `[[deposit_account]]` policy, `tron-broadcaster serve` with `[receive.sweep]`, and the
//! node double on a real socket producing blocks on its timer. Invoice paid → solidified
//! → top-up of exactly the shortfall → sweep → the collection holds the paid amount, the
//! deposit address none, the cost is reported; a restart of the broadcaster between
//! top-up and sweep does not top up twice.
//!
//! The signer binary is the one cargo built beside this crate's binary
//! (`cargo build -p tron-signer` builds it; `cargo test --workspace` does too).

mod real_bins;

use real_bins::{signer_cli, Proc, PASSPHRASE_VAR};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tron_node_double::{Accounts, Options, Running};
use tron_proto::Address;

const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const GAS_SECRET: &str = "6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a";
const GAS_START_SUN: u64 = 200_000_000;
const PAID_UNITS: u64 = 25_000_000;

fn gas_address() -> Address {
    let k = SigningKey::from_slice(&hex::decode(GAS_SECRET).unwrap()).unwrap();
    Address::from_verifying_key(k.verifying_key())
}

fn collection() -> Address {
    Address::from_evm([0xc0; 20])
}

fn merchant_key() -> Address {
    Address::from_evm([0x99; 20])
}

fn policy(xpub: &str, uid: u32) -> String {
    format!(
        r#"version = 1
name = "sweep e2e"
network = "nile"

[global]
frozen = false
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false

[[token]]
symbol = "USDT"
contract = "{NILE_USDT}"
decimals = 6

[[caller]]
name = "broadcaster"
unix_uid = {uid}
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy", "ReadPolicyText"]
keys = ["{gas}"]
deposit_accounts = ["merchant deposits"]

[[deposit_account]]
name = "merchant deposits"
xpub = "{xpub}"
first_index = 0
last_index = 99999
collection = "{collection}"
assets = ["USDT", "TRX"]

[[key]]
address = "{gas}"
label = "gas"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "1000" }}]
gas_for = "merchant deposits"
gas_per_tx_max = "40"
"#,
        gas = gas_address(),
        collection = collection(),
    )
}

struct Env {
    dir: tempfile::TempDir,
    node: Running,
    _signer: Proc,
    config: PathBuf,
    http: reqwest::Client,
}

/// The keystore, the policy and a running signer; returns its socket and the xpub.
async fn start_signer(dir: &Path) -> (Proc, PathBuf, String) {
    let keystore = dir.join("keys.tks");
    let ks = keystore.to_str().unwrap();
    real_bins::import_key(ks, "gas", GAS_SECRET);
    let out = signer_cli(
        &[
            "keys",
            "generate",
            "--hd",
            "--label",
            "merchant deposits",
            "--keystore",
            ks,
            "--passphrase-env",
            PASSPHRASE_VAR,
        ],
        None,
    );
    let xpub = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(xpub.starts_with("xpub"), "{xpub}");
    let uid = std::fs::metadata(dir).unwrap().uid();
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy(&xpub, uid)).unwrap();
    let check = signer_cli(&["policy", "check", policy_path.to_str().unwrap()], None);
    assert!(check.status.success());
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
    (proc, socket, xpub)
}

async fn env() -> Env {
    env_sweeping_to(&collection()).await
}

/// `to`: the collection address the broadcaster's config names (the policy's is
/// [`collection`]).
async fn env_sweeping_to(to: &Address) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (signer_proc, socket, xpub) = start_signer(dir.path()).await;
    let accounts = Accounts::from_json(
        json!({ "trx": {
            gas_address().to_base58(): GAS_START_SUN.to_string(),
            collection().to_base58(): "0",
        }})
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
    let config = dir.path().join("b.toml");
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"{}\"\nkey = \"{}\"\nsigner = \"unix:{}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"100ms\"\n\
             expiration = \"1m\"\nsolidity_margin = \"1s\"\nmax_backoff = \"1s\"\n\n\
             [receive]\nxpub = \"{xpub}\"\n\n[receive.sweep]\ngas_key = \"{}\"\n\
             collection = \"{}\"\nmin_amount = {{ USDT = \"10\" }}\n",
            node.url(),
            merchant_key(),
            socket.display(),
            dir.path().join("b.redb").display(),
            gas_address(),
            to,
        ),
    )
    .unwrap();
    Env {
        dir,
        node,
        _signer: signer_proc,
        config,
        http: reqwest::Client::new(),
    }
}

struct Server {
    proc: Proc,
    base: String,
}

impl Env {
    fn api_key(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
            .arg("-c")
            .arg(&self.config)
            .args(["api-keys", "create", "--label", "shop", "--tenant", "shop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn serve(&self, n: u32) -> Server {
        let log = self.dir.path().join(format!("broadcaster-{n}.log"));
        let b = real_bins::serve_broadcaster(&self.config, &log);
        Server {
            proc: b.proc,
            base: b.api,
        }
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
        (status, resp.json().await.unwrap_or(Value::Null))
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

    async fn balance(&self, a: &Address, token: bool) -> u64 {
        let mut url = format!("{}/double/balance?address={a}", self.node.url());
        if token {
            url.push_str(&format!("&token={NILE_USDT}"));
        }
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["balance"].as_str().unwrap().parse().unwrap()
    }

    async fn transactions(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/double/transactions", self.node.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    /// Polls invoice `id` until `pred` holds (blocks come every 200 ms).
    async fn wait(
        &self,
        s: &Server,
        key: &str,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (st, v) = self
                .call(s, key, "GET", &format!("/v1/invoices/{id}"), None)
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "invoice {id} never got {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn paid_invoice_is_topped_up_swept_and_costed_across_a_restart() {
    let env = env().await;
    let key = env.api_key();
    let server = env.serve(1);
    let (st, inv) = env
        .call(
            &server,
            &key,
            "POST",
            "/v1/invoices",
            Some(json!({
                "id": "order-1", "asset": "USDT", "amount": "25",
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let address: Address = inv["address"].as_str().unwrap().parse().unwrap();
    env.control(
        "/double/pay",
        json!({"to": address.to_base58(), "amount": PAID_UNITS.to_string()}),
    )
    .await;
    env.wait(&server, &key, "order-1", "paid", |v| v["status"] == "paid")
        .await;

    // Between the top-up and the sweep: the top-up confirmed, the sweep not yet.
    let v = env
        .wait(&server, &key, "order-1", "sweeping", |v| {
            v["sweep"]["status"] == "sweeping"
        })
        .await;
    assert_eq!(v["sweep"]["topup_sun"], "13028500", "{v}");
    drop(server);
    let server = env.serve(2);
    let v = env
        .wait(&server, &key, "order-1", "swept", |v| {
            v["sweep"]["status"] == "swept"
                || v["sweep"]["status"] == "failed"
                || v["sweep"]["status"] == "refused"
        })
        .await;
    let s = &v["sweep"];
    assert_eq!(s["status"], "swept", "{v}");
    assert_eq!(s["swept_units"], PAID_UNITS.to_string());
    // 130,285 energy (the collection held no USDT) at the double's 100 sun, and the
    // deposit address's account creation (1.1 TRX) paid by the gas key.
    assert_eq!(s["topup_sun"], "13028500");
    assert_eq!(s["energy_fee_sun"], "13028500");
    assert_eq!(s["topup_fee_sun"], "1100000");
    assert_eq!(s["cost_sun"], "14128500");
    assert!(
        s["sweep_txid"].is_string() && s["topup_txid"].is_string(),
        "{s}"
    );

    assert_eq!(env.balance(&collection(), true).await, PAID_UNITS);
    assert_eq!(env.balance(&address, true).await, 0);
    assert_eq!(env.balance(&address, false).await, 0);
    assert_eq!(
        env.balance(&gas_address(), false).await,
        GAS_START_SUN - 13_028_500 - 1_100_000
    );
    // One top-up only, across the restart.
    let txs = env.transactions().await;
    let topups: Vec<&Value> = txs
        .iter()
        .filter(|t| t["kind"] == "trx" && t["owner"] == gas_address().to_base58())
        .collect();
    assert_eq!(topups.len(), 1, "{txs:?}");
    assert_eq!(topups[0]["amount"], "13028500");
    assert_eq!(topups[0]["to"], address.to_base58());
    let sweeps: Vec<&Value> = txs
        .iter()
        .filter(|t| t["kind"] == "trc20" && t["owner"] == address.to_base58())
        .collect();
    assert_eq!(sweeps.len(), 1, "{txs:?}");
    assert_eq!(sweeps[0]["to"], collection().to_base58());
    // Announced to the merchant; not a merchant payout; the top-up is not a payment.
    let (_, events) = env.call(&server, &key, "GET", "/v1/events", None).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"invoice.swept"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k.starts_with("payout.")), "{kinds:?}");
    let (_, payouts) = env.call(&server, &key, "GET", "/v1/payouts", None).await;
    assert_eq!(payouts["payouts"], json!([]));
    assert_eq!(v["payments"].as_array().unwrap().len(), 1, "{v}");
    drop(server.proc);
}

#[tokio::test]
async fn a_broadcaster_sweeping_elsewhere_is_refused_by_the_signer_and_stops() {
    // The broadcaster's config names another collection address than the policy: what a
    // compromised broadcaster would do. The signer alone stops it.
    let thief = Address::from_evm([0x7f; 20]);
    let env = env_sweeping_to(&thief).await;
    let key = env.api_key();
    let server = env.serve(1);
    let (st, inv) = env
        .call(
            &server,
            &key,
            "POST",
            "/v1/invoices",
            Some(json!({
                "id": "order-2", "asset": "USDT", "amount": "12",
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let address: Address = inv["address"].as_str().unwrap().parse().unwrap();
    env.control(
        "/double/pay",
        json!({"to": address.to_base58(), "amount": "12000000"}),
    )
    .await;
    let v = env
        .wait(&server, &key, "order-2", "a final sweep", |v| {
            v["sweep"]["status"] == "refused" || v["sweep"]["status"] == "swept"
        })
        .await;
    assert_eq!(v["sweep"]["status"], "refused", "{v}");
    assert_eq!(
        v["sweep"]["reason"]["code"], "destination_not_allowed",
        "{v}"
    );
    assert_eq!(v["sweep"]["sweep_txid"], Value::Null);
    // The tokens stayed at the deposit address; the thief got nothing.
    assert_eq!(env.balance(&address, true).await, 12_000_000);
    assert_eq!(env.balance(&thief, true).await, 0);
    let (_, events) = env.call(&server, &key, "GET", "/v1/events", None).await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "invoice.sweep_failed"));
    drop(server.proc);
}
