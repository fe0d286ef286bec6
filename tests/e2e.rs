//! End to end: the real `tron-signer` binary (keystore, policy, Unix socket), the real
//! `tron-broadcaster` binary (payout API over TCP, redb database) and the Tron node double
//! (a real HTTP server on a real socket, run in-process through its library), all talking
//! over real sockets.
//!
//! The broadcaster binary is taken from the same target directory as `tron-signer`.
//! `cargo test --workspace` builds every workspace binary before it runs any test, so it
//! is always current there; when running only this file, build it first
//! (`cargo build -p tron-broadcaster`), or the test stops with that advice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::exporter::Exporter;
use common::pki::{client_config, Ca};
use common::*;
use serde_json::{json, Value};
use tempfile::TempDir;
use tron_node_double::{Accounts, Options, Running};
use tron_proto::Address;

const BLOCK_INTERVAL_MS: u64 = 250;
const SOLID_AFTER: u32 = 2;
const NODE_API_KEY: &str = "e2e-node-key";
/// TRX and USDT the hot key starts with, in base units.
const START_TRX_SUN: u64 = 1_000_000_000;
const START_USDT_UNITS: u64 = 1_000_000_000;
/// Every wait is bounded by this unless stated.
const WAIT: Duration = Duration::from_secs(40);

/// On the allowlist for TRX and USDT.
fn allowed() -> Address {
    dest(0xa1)
}
/// Also on the allowlist.
fn allowed_b() -> Address {
    dest(0xb2)
}
/// Not on the allowlist.
fn stranger() -> Address {
    dest(0xee)
}

/// TRX: 50 per hour for the key, 40 per transaction; USDT: 1000 per hour. The broadcaster
/// may ask by its certificate's SPIFFE id online and by its exporter key in batch files.
fn policy(exporter: &Exporter) -> String {
    let both = |to: Address, label: &str| {
        Destination::new(to, label, &["TRX", "USDT"])
            .per_tx_max("TRX", "40")
            .per_tx_max("USDT", "500")
    };
    PolicyText::new("e2e policy")
        .clock_skew("1s")
        .key(
            Key::new(KEY1, "hot", &["TRX", "USDT"])
                .window("TRX", "1h", "50")
                .window("USDT", "1h", "1000")
                .destination(both(allowed(), "exchange"))
                .destination(both(allowed_b(), "treasury")),
        )
        .callers(&format!(
            "\n[[caller]]\nname = \"broadcaster\"\ntls_san = \"uri:spiffe://test/broadcaster\"\nrpcs = [\"Sign\", \"Evaluate\", \"ListKeys\"]\nkeys = [\"{KEY1}\"]\n"
        ))
        .callers(&exporter.caller(
            "broadcaster exporter",
            r#"["Sign"]"#,
            &format!("[\"{KEY1}\"]"),
        ))
        .text()
}

/// The broadcaster binary next to the signer binary cargo built for this test.
fn broadcaster_bin() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("binary directory");
    let p = dir.join(format!("tron-broadcaster{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p tron-broadcaster` (cargo test --workspace builds it)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One signer data directory, one node double, one broadcaster database.
struct Env {
    /// The broadcaster's batch signing key (its directory lives as long as the test).
    _exporter: Exporter,
    signer_setup: Setup,
    signer: Option<Server>,
    node: Running,
    dir: TempDir,
    config: PathBuf,
    port: u16,
    api_key: String,
    http: reqwest::Client,
    broadcaster: Option<Child>,
    starts: u32,
}

impl Env {
    /// `online`: the broadcaster talks to a running signer; otherwise air gap only.
    async fn new(online: bool) -> Env {
        Env::with_policy(online, "").await
    }

    /// [`Env::new`] with `extra` sections appended to the test policy.
    async fn with_policy(online: bool, extra: &str) -> Env {
        let exporter = Exporter::new("e2e broadcaster exporter");
        let signer_setup = Setup::new(
            &[("hot", KEY1_SECRET)],
            &format!("{}{extra}", policy(&exporter)),
        );
        // Online, the broadcaster reaches the signer over mutual TLS on loopback, each with
        // a certificate under a test CA (the signer trusts the broadcaster's under it).
        let (signer, signer_line) = if online {
            let ca = Ca::new("e2e CA");
            let dir = signer_setup.dir.path();
            let (server_cert, server_key) = ca.server().write(dir, "signer");
            let broadcaster_id = ca.client("broadcaster", false);
            let (client_cert, client_key) = broadcaster_id.write(dir, "broadcaster");
            let ca_path = dir.join("ca.pem");
            std::fs::write(&ca_path, ca.pem()).expect("write CA");
            let addr = format!("127.0.0.1:{}", free_port());
            signer_setup.write_config_listening(
                &addr,
                &format!(
                    "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
                    signer_setup.keystore_section(),
                    server_cert.display(),
                    server_key.display(),
                    ca_path.display()
                ),
            );
            let server = signer_setup
                .start_tls(&addr, client_config(&ca, Some(&broadcaster_id)))
                .await
                .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
            let line = format!("signer = \"{addr}\"\n",);
            let table = format!(
                "[signer_tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                ca_path.display(),
                client_cert.display(),
                client_key.display()
            );
            (Some(server), Some((line, table)))
        } else {
            (None, None)
        };
        let accounts = Accounts::from_json(
            json!({
                "trx": { KEY1: START_TRX_SUN.to_string() },
                "trc20": { NILE_USDT: { KEY1: START_USDT_UNITS.to_string() } },
            })
            .to_string()
            .as_bytes(),
        )
        .expect("accounts");
        let node = tron_node_double::start(Options {
            listen: "127.0.0.1:0".parse().expect("addr"),
            block_interval: Duration::from_millis(BLOCK_INTERVAL_MS),
            solid_after: SOLID_AFTER,
            accounts,
            api_key: Some(NODE_API_KEY.into()),
        })
        .await
        .expect("node double");
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("node.key");
        std::fs::write(&key_file, format!("{NODE_API_KEY}\n")).expect("key file");
        let port = free_port();
        let (signer_line, signer_tls) = signer_line.unwrap_or_default();
        let config = dir.path().join("broadcaster.toml");
        std::fs::write(
            &config,
            format!(
                r#"network = "nile"
node_url = "{node}"
node_api_key = {{ file = "{key}" }}
{signer_line}key = "{KEY1}"
database = "{db}"
listen = "127.0.0.1:{port}"
fee_limit = 30
expiration = "1m"
batch_expiration = "5m"
poll_interval = "100ms"
solidity_margin = "1s"
node_timeout = "2s"
signer_timeout = "5s"
max_backoff = "1s"
batch_signing_key = "{exporter_key}"
{signer_tls}"#,
                node = node.url(),
                key = key_file.display(),
                db = dir.path().join("broadcaster.redb").display(),
                exporter_key = exporter.key.display(),
            ),
        )
        .expect("config");
        let mut env = Env {
            _exporter: exporter,
            signer_setup,
            signer,
            node,
            dir,
            config,
            port,
            api_key: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            broadcaster: None,
            starts: 0,
        };
        // Created with `serve` stopped, as the README says (the database is single-process).
        let out = env.cli(&["api-keys", "create", "--label", "e2e-backend"]);
        env.api_key = out.trim().to_owned();
        assert!(env.api_key.starts_with("tbk_"), "api key: {out}");
        env
    }

    /// Runs a `tron-broadcaster` command to completion; returns stdout, panics on failure.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(broadcaster_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run tron-broadcaster");
        assert!(
            out.status.success(),
            "tron-broadcaster {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("serve-{n}.log"))
    }

    /// Starts `tron-broadcaster serve` and waits until its API answers.
    async fn start_broadcaster(&mut self) {
        assert!(self.broadcaster.is_none(), "already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log");
        let child = Command::new(broadcaster_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn tron-broadcaster serve");
        self.broadcaster = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(Ok(Some(status))) = self.broadcaster.as_mut().map(Child::try_wait) {
                panic!("broadcaster exited ({status}):\n{}", self.logs());
            }
            if let Ok(r) = self.http.get(self.api("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "broadcaster did not come up:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to finish anything in flight.
    fn kill_broadcaster(&mut self) {
        let mut child = self.broadcaster.take().expect("running broadcaster");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// SIGTERM and wait, so the database lock is released for the batch commands.
    fn stop_broadcaster(&mut self) {
        let mut child = self.broadcaster.take().expect("running broadcaster");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("broadcaster did not stop on SIGTERM:\n{}", self.logs());
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn node_url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    /// `POST /v1/payouts`; returns (HTTP status, body).
    async fn create(&self, id: &str, asset: &str, to: &Address, amount: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.api("/v1/payouts"))
            .bearer_auth(&self.api_key)
            .json(&json!({"id": id, "asset": asset, "to": to.to_base58(), "amount": amount}))
            .send()
            .await
            .expect("create payout");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    async fn create_ok(&self, id: &str, asset: &str, to: &Address, amount: &str) {
        let (status, body) = self.create(id, asset, to, amount).await;
        assert_eq!(status, 201, "{body}");
    }

    async fn payout(&self, id: &str) -> Value {
        self.http
            .get(self.api(&format!("/v1/payouts/{id}")))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("get payout")
            .json()
            .await
            .expect("json")
    }

    /// Polls until the payout's status is `want`; bounded by `limit`.
    async fn wait_status(&self, id: &str, want: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let p = self.payout(id).await;
            if p["status"] == want {
                return p;
            }
            if Instant::now() > deadline {
                panic!(
                    "payout {id} did not reach {want}: {p:#}\nbroadcaster log:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /v1/approvals`: the payouts waiting for approvers.
    async fn pending_approvals(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(self.api("/v1/approvals"))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("list approvals")
            .json()
            .await
            .expect("json");
        v["approvals"].as_array().cloned().expect("approvals array")
    }

    /// `POST /v1/payouts/{id}/approvals`; returns (HTTP status, body).
    async fn hand_in(&self, id: &str, txid: &str, signature: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.api(&format!("/v1/payouts/{id}/approvals")))
            .bearer_auth(&self.api_key)
            .json(&json!({"txid": txid, "signature": signature}))
            .send()
            .await
            .expect("hand in approval");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    async fn transactions(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(self.node_url("/double/transactions"))
            .send()
            .await
            .expect("transactions")
            .json()
            .await
            .expect("json");
        v.as_array().cloned().expect("array")
    }

    async fn balance(&self, addr: &Address, token: Option<&str>) -> u64 {
        let mut url = self.node_url(&format!("/double/balance?address={}", addr.to_base58()));
        if let Some(t) = token {
            url.push_str(&format!("&token={t}"));
        }
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .expect("balance")
            .json()
            .await
            .expect("json");
        v["balance"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("balance: {v}"))
    }

    async fn double(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(self.node_url(path))
            .json(&body)
            .send()
            .await
            .expect("double control");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// How many included transactions belong to this payout (by its attempts' txids).
    fn included_for(p: &Value, txs: &[Value]) -> Vec<String> {
        let ours: Vec<&str> = p["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["txid"].as_str())
            .collect();
        txs.iter()
            .filter_map(|t| t["txid"].as_str())
            .filter(|t| ours.contains(t))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.broadcaster.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(self.signer.take());
    }
}

fn statuses(p: &Value) -> Vec<String> {
    p["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| t["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trx_and_usdt_payouts_confirm_and_move_balances() {
    let mut env = Env::new(true).await;
    env.start_broadcaster().await;
    env.create_ok("trx-1", "TRX", &allowed(), "12.5").await;
    env.create_ok("usdt-1", "USDT", &allowed(), "250.000001")
        .await;
    // The same id and body again returns the stored payout; a different body is a conflict.
    let (status, again) = env.create("trx-1", "TRX", &allowed(), "12.5").await;
    assert_eq!(status, 200, "{again}");
    let (status, conflict) = env.create("trx-1", "TRX", &allowed(), "13").await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "payout_conflict");

    let trx = env.wait_status("trx-1", "confirmed", WAIT).await;
    let usdt = env.wait_status("usdt-1", "confirmed", WAIT).await;
    for p in [&trx, &usdt] {
        let s = statuses(p);
        for want in ["queued", "signing", "broadcast", "confirmed"] {
            assert!(s.iter().any(|x| x == want), "{want} missing in {s:?}");
        }
        assert!(p["block_number"].as_u64().is_some(), "{p}");
    }

    let txs = env.transactions().await;
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(Env::included_for(&trx, &txs).len(), 1);
    assert_eq!(Env::included_for(&usdt, &txs).len(), 1);
    for t in &txs {
        assert_eq!(t["receipt"], "SUCCESS", "{t}");
        assert_eq!(t["owner"], KEY1);
        assert_eq!(t["to"], allowed().to_base58());
    }
    assert_eq!(env.balance(&allowed(), None).await, 12_500_000);
    // The double burns what a node burns: the USDT transfer's energy and the first TRX
    // transfer's account creation.
    assert!(burnt(&txs) > 0);
    assert_eq!(
        env.balance(&addr(KEY1), None).await,
        START_TRX_SUN - 12_500_000 - burnt(&txs)
    );
    assert_eq!(env.balance(&allowed(), Some(NILE_USDT)).await, 250_000_001);
    assert_eq!(
        env.balance(&addr(KEY1), Some(NILE_USDT)).await,
        START_USDT_UNITS - 250_000_001
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compromised_broadcaster_requests_are_refused_by_the_signer() {
    let mut env = Env::new(true).await;
    env.start_broadcaster().await;
    // The broadcaster forwards whatever its API is asked for; only the signer's policy
    // stands between the request and the funds.
    env.create_ok("ok-1", "TRX", &allowed(), "30").await;
    env.wait_status("ok-1", "confirmed", WAIT).await;
    env.create_ok("stranger-1", "TRX", &stranger(), "1").await;
    env.create_ok("stranger-usdt", "USDT", &stranger(), "1")
        .await;
    // 30 + 30 TRX is over the key's 50 TRX per hour.
    env.create_ok("velocity-1", "TRX", &allowed_b(), "30").await;

    for (id, code) in [
        ("stranger-1", "destination_not_allowed"),
        ("stranger-usdt", "destination_not_allowed"),
        ("velocity-1", "over_key_window"),
    ] {
        let p = env.wait_status(id, "denied", WAIT).await;
        assert_eq!(p["denial"]["code"], code, "{p:#}");
        assert!(
            !p["denial"]["message"].as_str().unwrap_or("").is_empty(),
            "{p:#}"
        );
    }
    // `?status=denied` lists exactly the refusals.
    let listed: Value = env
        .http
        .get(env.api("/v1/payouts?status=denied"))
        .bearer_auth(&env.api_key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = listed["payouts"]
        .as_array()
        .expect("payouts")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["stranger-1", "stranger-usdt", "velocity-1"]);

    // Nothing refused reached the node: only the allowed payout was included.
    let txs = env.transactions().await;
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert_eq!(txs[0]["to"], allowed().to_base58());
    assert_eq!(env.balance(&stranger(), None).await, 0);
    assert_eq!(env.balance(&stranger(), Some(NILE_USDT)).await, 0);
    assert_eq!(env.balance(&allowed_b(), None).await, 0);
    assert_eq!(
        env.balance(&addr(KEY1), None).await,
        START_TRX_SUN - 30_000_000 - burnt(&txs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_outage_then_recovery() {
    let mut env = Env::new(true).await;
    env.start_broadcaster().await;
    // Down: every endpoint answers 503. Nothing can be built (no head block).
    env.double("/double/outage", json!({"on": true})).await;
    env.create_ok("o-1", "TRX", &allowed(), "1").await;
    env.create_ok("o-2", "USDT", &allowed(), "2").await;
    // Several pipeline passes (poll interval 100 ms) happen while we wait for a block or
    // two; the payouts must still be waiting, not failed.
    tokio::time::sleep(Duration::from_millis(4 * BLOCK_INTERVAL_MS)).await;
    for id in ["o-1", "o-2"] {
        let p = env.payout(id).await;
        assert_eq!(p["status"], "queued", "{p:#}");
    }
    // Saturated: reads work, broadcasts answer SERVER_BUSY. Signed, not broadcast.
    env.double("/double/outage", json!({"on": true, "busy": true}))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let p = env.payout("o-1").await;
        if p["attempts"][0]["signed"] == true {
            assert!(p["status"] == "signing" || p["status"] == "queued", "{p:#}");
            break;
        }
        assert!(Instant::now() < deadline, "never signed: {p:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(env.transactions().await.is_empty());
    // Back: both confirm, each exactly once.
    env.double("/double/outage", json!({"on": false})).await;
    let p1 = env.wait_status("o-1", "confirmed", WAIT).await;
    let p2 = env.wait_status("o-2", "confirmed", WAIT).await;
    let txs = env.transactions().await;
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(Env::included_for(&p1, &txs).len(), 1);
    assert_eq!(Env::included_for(&p2, &txs).len(), 1);
    assert_eq!(env.balance(&allowed(), None).await, 1_000_000);
    assert_eq!(env.balance(&allowed(), Some(NILE_USDT)).await, 2_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broadcaster_killed_mid_flight_pays_each_payout_once() {
    let mut env = Env::new(true).await;
    env.start_broadcaster().await;
    let ids: Vec<String> = (1..=5).map(|i| format!("k-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        env.create_ok(id, "TRX", &allowed(), &(i + 1).to_string())
            .await;
    }
    // Kill as soon as the first transaction is on its way, while others are still being
    // built or signed and none is confirmed yet.
    let deadline = Instant::now() + WAIT;
    'watch: loop {
        for id in &ids {
            let p = env.payout(id).await;
            if p["status"] == "broadcast" || p["status"] == "confirmed" {
                break 'watch;
            }
        }
        assert!(Instant::now() < deadline, "nothing was broadcast");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.kill_broadcaster();
    env.start_broadcaster().await;
    // And once more, right after the restart, mid-way through whatever it resumed.
    tokio::time::sleep(Duration::from_millis(150)).await;
    env.kill_broadcaster();
    env.start_broadcaster().await;

    let mut payouts = Vec::new();
    for id in &ids {
        payouts.push(env.wait_status(id, "confirmed", WAIT).await);
    }
    // Let a few more blocks pass: a duplicate would show up now if it existed.
    tokio::time::sleep(Duration::from_millis(4 * BLOCK_INTERVAL_MS)).await;
    let txs = env.transactions().await;
    assert_eq!(txs.len(), ids.len(), "{txs:#?}");
    for p in &payouts {
        assert_eq!(Env::included_for(p, &txs).len(), 1, "{p:#}");
    }
    let total: u64 = (1..=5).map(|i| i * 1_000_000).sum();
    assert_eq!(env.balance(&allowed(), None).await, total);
    assert_eq!(
        env.balance(&addr(KEY1), None).await,
        START_TRX_SUN - total - burnt(&txs)
    );
}

/// Sun the included transactions burnt (fees), as the double reports them.
fn burnt(txs: &[Value]) -> u64 {
    txs.iter().map(|t| t["fee"].as_u64().expect("fee")).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_broadcast_expires_then_one_replacement_confirms() {
    let mut env = Env::new(true).await;
    env.start_broadcaster().await;
    // The node says "accepted" for the first broadcast and then forgets it.
    env.double("/double/drop_next", json!({"count": 1})).await;
    env.create_ok("x-1", "TRX", &allowed(), "3").await;
    // Expiration is 1 minute (the broadcaster's minimum), plus a 1 s solidity margin.
    let p = env
        .wait_status("x-1", "confirmed", Duration::from_secs(100))
        .await;
    let attempts = p["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{p:#}");
    let first_expiration = attempts[0]["expiration"].as_i64().expect("expiration");
    let retrying_at = p["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|t| t["status"] == "retrying")
        .and_then(|t| t["at"].as_i64())
        .unwrap_or_else(|| panic!("never retrying: {p:#}"));
    // The replacement was built only after the first transaction had expired.
    assert!(retrying_at > first_expiration, "{p:#}");
    let second_broadcast = attempts[1]["broadcast_at"].as_i64().expect("broadcast_at");
    assert!(second_broadcast > first_expiration, "{p:#}");
    let txs = env.transactions().await;
    assert_eq!(txs.len(), 1, "{txs:?}");
    assert_eq!(
        Env::included_for(&p, &txs),
        [attempts[1]["txid"].as_str().unwrap()]
    );
    assert_eq!(env.balance(&allowed(), None).await, 3_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn air_gap_round_trip() {
    let mut env = Env::new(false).await;
    env.start_broadcaster().await;
    env.create_ok("ag-trx", "TRX", &allowed(), "7").await;
    env.create_ok("ag-usdt", "USDT", &allowed_b(), "42.5").await;
    env.create_ok("ag-stranger", "TRX", &stranger(), "1").await;
    // Without a signer the pipeline never builds or signs on its own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.payout("ag-trx").await["status"], "queued");
    // The database is single-process: stop serve for the batch commands.
    env.stop_broadcaster();

    let req = env.dir.path().join("unsigned.json");
    let exported = env.cli(&["batch", "export", "--out", path_str(&req)]);
    assert_eq!(exported.lines().count(), 3, "{exported}");

    // The offline signer reads exactly what the broadcaster wrote.
    let signed = env.dir.path().join("signed.json");
    let out = env.signer_setup.run(&[
        "batch",
        "sign",
        "--config",
        path_str(&env.signer_setup.config),
        "--in",
        path_str(&req),
        "--out",
        path_str(&signed),
    ]);
    assert!(
        out.status.success(),
        "batch sign: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 signed, 1 refused"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // And the broadcaster reads exactly what the signer wrote, then broadcasts.
    let imported = env.cli(&["batch", "import", path_str(&signed)]);
    let mut lines: Vec<&str> = imported.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        // Batch items name the payout as `<tenant>/<id>`; the key's tenant is its label.
        [
            "denied\te2e-backend/ag-stranger",
            "signed\te2e-backend/ag-trx",
            "signed\te2e-backend/ag-usdt"
        ],
        "{imported}"
    );

    env.start_broadcaster().await;
    let trx = env.wait_status("ag-trx", "confirmed", WAIT).await;
    let usdt = env.wait_status("ag-usdt", "confirmed", WAIT).await;
    let denied = env.payout("ag-stranger").await;
    assert_eq!(denied["status"], "denied", "{denied:#}");
    assert_eq!(denied["denial"]["code"], "destination_not_allowed");
    assert_eq!(trx["attempts"][0]["origin"], "batch");
    let txs = env.transactions().await;
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(Env::included_for(&trx, &txs).len(), 1);
    assert_eq!(Env::included_for(&usdt, &txs).len(), 1);
    assert_eq!(env.balance(&allowed(), None).await, 7_000_000);
    assert_eq!(env.balance(&allowed_b(), Some(NILE_USDT)).await, 42_500_000);
    assert_eq!(env.balance(&stranger(), None).await, 0);
}

/// Approvals end to end: a TRX payout over 10 needs two of "treasury". The broadcaster
/// parks it in `awaiting_approval`; each approver runs `tron-signer approve` on the raw
/// bytes and policy alone (real `ssh-keygen` keys) and hands the signature in through the
/// API; the signer verifies both, signs, and the node double confirms. The audit export
/// names both approvers and `ssh-keygen -Y verify` accepts their signatures from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payout_over_the_threshold_waits_for_two_approvers_then_confirms() {
    const NAMESPACE: &str = "tron-signer-approval";
    let alice = Exporter::new("alice");
    let bob = Exporter::new("bob");
    let approver = |name: &str, key: &Exporter| {
        format!(
            "\n[[approver]]\nname = \"{name}\"\ngroups = [\"treasury\"]\nkey = \"{}\"\n",
            key.public_line
        )
    };
    let rules = format!(
        "{}{}\n[[approval]]\nasset = \"TRX\"\nabove = \"10\"\nrequire = {{ treasury = 2 }}\n",
        approver("alice", &alice),
        approver("bob", &bob)
    );
    let mut env = Env::with_policy(true, &rules).await;
    env.start_broadcaster().await;
    env.create_ok("small", "TRX", &allowed(), "5").await;
    env.create_ok("large", "TRX", &allowed(), "20").await;
    // Below the threshold nothing is asked.
    let small = env.wait_status("small", "confirmed", WAIT).await;
    assert!(!statuses(&small).iter().any(|s| s == "awaiting_approval"));

    env.wait_status("large", "awaiting_approval", WAIT).await;
    let pending = env.pending_approvals().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let entry = &pending[0];
    assert_eq!(entry["payout_id"], "large");
    let txid = entry["txid"].as_str().expect("txid").to_owned();
    let statement = entry["statement"].as_str().expect("statement").to_owned();
    assert!(
        statement.contains(&format!("\ntxid: {txid}\n")),
        "{statement}"
    );
    assert!(statement.contains("\namount: 20 TRX"), "{statement}");
    assert!(
        entry["needed"]
            .as_str()
            .unwrap()
            .contains("2 of \"treasury\""),
        "{entry}"
    );
    let raw = entry["raw_data"].as_str().expect("raw_data");
    let signer_payout_id = entry["signer_payout_id"].as_str().expect("id");

    let mut signatures = Vec::new();
    for (name, key) in [("alice", &alice), ("bob", &bob)] {
        let out_file = env.dir.path().join(format!("{name}.sig"));
        let out = Command::new(BIN)
            .arg("approve")
            .args(["--policy", path_str(&env.signer_setup.policy)])
            .args(["--raw-data", raw, "--payout-id", signer_payout_id])
            .args(["--ssh-key", path_str(&key.key), "--yes", "--out"])
            .arg(&out_file)
            .stdin(Stdio::null())
            .output()
            .expect("tron-signer approve");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}: {said}");
        assert!(
            said.contains("20 TRX"),
            "{name} was not shown the amount: {said}"
        );
        let signature = std::fs::read_to_string(&out_file).expect("signature file");
        let (status, body) = env.hand_in("large", &txid, &signature).await;
        assert_eq!(status, 202, "{body}");
        signatures.push((name, key, signature));
    }

    let large = env.wait_status("large", "confirmed", WAIT).await;
    let s = statuses(&large);
    for want in [
        "queued",
        "signing",
        "awaiting_approval",
        "broadcast",
        "confirmed",
    ] {
        assert!(s.iter().any(|x| x == want), "{want} missing in {s:?}");
    }
    let txs = env.transactions().await;
    assert_eq!(Env::included_for(&large, &txs), std::slice::from_ref(&txid));
    assert_eq!(env.balance(&allowed(), None).await, 25_000_000);

    // The signer's audit record names both approvers and keeps their signatures, which
    // ssh-keygen alone accepts over the kept statement; audit verify re-verifies them.
    let rec = env
        .signer_setup
        .records_with("signed")
        .into_iter()
        .find(|r| r["payout_id"] == signer_payout_id)
        .expect("the signed record of the large payout");
    let kept = &rec["approvals"];
    assert_eq!(kept["statement"], statement.as_str());
    let kept = kept["approvals"].as_array().expect("approvals");
    assert_eq!(kept.len(), 2, "{kept:?}");
    for (name, key, signature) in &signatures {
        let a = kept
            .iter()
            .find(|a| a["approver"] == *name)
            .unwrap_or_else(|| panic!("{name} missing from {kept:?}"));
        assert_eq!(a["fingerprint"], key.fingerprint());
        assert_eq!(a["signature"].as_str().unwrap().trim(), signature.trim());
        key.assert_verifies(
            name,
            NAMESPACE,
            a["signature"].as_str().unwrap(),
            &statement,
        );
    }
    env.signer_setup.assert_audit_verifies();
}
