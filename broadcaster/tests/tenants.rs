//! Tenants and hostile input against the real binary over real HTTP: `serve` runs as its
//! own process, keys are made and revoked with the `api-keys` commands while it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

mod real_bins;

use real_bins::{serve_broadcaster, Proc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tron_broadcaster::store::Store;

const OWNER: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const DEST: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const DEST2: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A running `tron-broadcaster serve`.
struct Server {
    proc: Proc,
    base: String,
    http: reqwest::Client,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("b.toml");
    // Air gap (no signer) and an unreachable node: payouts stay queued, nothing leaves.
    std::fs::write(
        &config,
        format!(
            "network = \"nile\"\nnode_url = \"http://127.0.0.1:1\"\nkey = \"{OWNER}\"\n\
             database = \"{}\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"1h\"\n",
            dir.path().join("b.redb").display()
        ),
    )
    .unwrap();
    Env { dir, config }
}

impl Env {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_tron-broadcaster"))
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A new key for `tenant`, as `api-keys create` prints it.
    fn key(&self, tenant: &str, label: &str) -> String {
        let key = self
            .ok(&["api-keys", "create", "--label", label, "--tenant", tenant])
            .trim()
            .to_owned();
        assert!(key.starts_with("tbk_"), "{key}");
        key
    }

    /// Starts `serve` and waits until it listens.
    fn serve(&self) -> Server {
        let b = serve_broadcaster(&self.config, &self.dir.path().join("broadcaster.log"));
        Server {
            proc: b.proc,
            base: b.api,
            http: reqwest::Client::new(),
        }
    }
}

fn key_id(key: &str) -> &str {
    &key["tbk_".len().."tbk_".len() + 16]
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

impl Server {
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/v1/payouts", self.base))
                .bearer_auth(key)
                .json(body),
        )
        .await
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
        .await
    }

    fn running(&mut self) -> bool {
        self.proc.0.try_wait().unwrap().is_none()
    }
}

fn payout(id: &str, to: &str, amount: &str) -> Value {
    json!({"id": id, "asset": "TRX", "to": to, "amount": amount})
}

fn ids(v: &Value) -> Vec<&str> {
    v["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect()
}

fn database(dir: &Path) -> Store {
    Store::open(&dir.join("b.redb")).unwrap()
}

#[tokio::test]
async fn tenants_see_only_their_own_payouts_and_may_share_ids() {
    let e = env();
    let a = e.key("alpha", "alpha-backend");
    let a2 = e.key("alpha", "alpha-backend-2");
    let b = e.key("beta", "beta-backend");
    let s = e.serve();

    // A takes "order-1" first; B may use the same id for its own payout (201, not 409).
    let (st, v) = s.post(&a, &payout("order-1", DEST, "1")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["created_by"], key_id(&a));
    let (st, v) = s.post(&b, &payout("order-1", DEST2, "2")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["created_by"], key_id(&b));
    // Each is idempotent and conflicts only within its own tenant.
    let (st, _) = s.post(&b, &payout("order-1", DEST2, "2")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s.post(&b, &payout("order-1", DEST, "1")).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "payout_conflict"));
    let (st, _) = s.post(&a, &payout("alpha-only", DEST, "3")).await;
    assert_eq!(st, StatusCode::CREATED);

    // Reads resolve within the caller's tenant.
    let (_, v) = s.get(&a, "/v1/payouts/order-1").await;
    assert_eq!(
        (v["to"].as_str(), v["amount"].as_str()),
        (Some(DEST), Some("1"))
    );
    let (_, v) = s.get(&b, "/v1/payouts/order-1").await;
    assert_eq!(
        (v["to"].as_str(), v["amount"].as_str()),
        (Some(DEST2), Some("2"))
    );
    // B cannot read A's payout, and cannot tell it from one that does not exist.
    let (st, taken) = s.get(&b, "/v1/payouts/alpha-only").await;
    assert_eq!(
        (st, code(&taken)),
        (StatusCode::NOT_FOUND, "payout_not_found")
    );
    let (st, missing) = s.get(&b, "/v1/payouts/never-made").await;
    assert_eq!(
        (st, code(&missing)),
        (StatusCode::NOT_FOUND, "payout_not_found")
    );
    assert_eq!(
        taken["error"]["message"]
            .as_str()
            .unwrap()
            .replace("alpha-only", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("never-made", "X")
    );
    // Lists hold only the tenant's own, with or without a status filter.
    let (_, v) = s.get(&a, "/v1/payouts").await;
    assert_eq!(ids(&v), ["alpha-only", "order-1"]);
    let (_, v) = s.get(&b, "/v1/payouts").await;
    assert_eq!(ids(&v), ["order-1"]);
    assert_eq!(v["payouts"][0]["created_by"], key_id(&b));
    let (_, v) = s.get(&b, "/v1/payouts?status=queued").await;
    assert_eq!(ids(&v), ["order-1"]);
    // Another key of the same tenant sees the tenant's payouts, still marked with the key
    // that created them.
    let (st, v) = s.get(&a2, "/v1/payouts/alpha-only").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["created_by"], key_id(&a));

    // On disk: every payout names its tenant and creating key, and no key secret is stored.
    drop(s);
    let store = database(e.dir.path());
    let all = store.list(None, None, 10).unwrap();
    assert_eq!(all.len(), 3);
    let owners: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|p| (p.tenant.as_str(), p.id.as_str(), p.created_by.as_str()))
        .collect();
    assert_eq!(
        owners,
        [
            ("alpha", "alpha-only", key_id(&a)),
            ("alpha", "order-1", key_id(&a)),
            ("beta", "order-1", key_id(&b)),
        ]
    );
    drop(store);
    let mut on_disk = std::fs::read(e.dir.path().join("b.redb")).unwrap();
    on_disk.extend(std::fs::read(e.dir.path().join("b.redb.api-keys.json")).unwrap());
    for k in [&a, &a2, &b] {
        let secret = k.rsplit('_').next().unwrap().as_bytes();
        assert!(!on_disk.windows(secret.len()).any(|w| w == secret));
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_without_a_restart() {
    let e = env();
    let a = e.key("alpha", "alpha-backend");
    let b = e.key("beta", "beta-backend");
    let mut s = e.serve();
    let (st, _) = s.post(&a, &payout("p1", DEST, "1")).await;
    assert_eq!(st, StatusCode::CREATED);

    e.ok(&["api-keys", "revoke", key_id(&a)]);
    assert!(s.running(), "same server process");
    let (st, v) = s.get(&a, "/v1/payouts/p1").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNAUTHORIZED, "api_key_revoked")
    );
    let (st, v) = s.post(&a, &payout("p2", DEST, "1")).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNAUTHORIZED, "api_key_revoked")
    );
    // Other keys are unaffected; a key created now works at once, for the same tenant.
    let (st, _) = s.get(&b, "/v1/payouts").await;
    assert_eq!(st, StatusCode::OK);
    let a_new = e.key("alpha", "alpha-rotated");
    let (st, v) = s.get(&a_new, "/v1/payouts/p1").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["created_by"], key_id(&a));
    let listed = e.ok(&["api-keys", "list"]);
    let line = listed.lines().find(|l| l.starts_with(key_id(&a))).unwrap();
    assert!(line.contains("revoked="), "{line}");
    // An unknown id is refused by code.
    let out = e.cli(&["api-keys", "revoke", "0000000000000000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[api_key_not_found]"));
    // A key file that cannot be read fails closed (503), never open.
    std::fs::write(e.dir.path().join("b.redb.api-keys.json"), "{").unwrap();
    let (st, v) = s.get(&b, "/v1/payouts").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "api_keys_corrupt")
    );
    assert!(s.running());
}

#[tokio::test]
async fn an_oversized_to_is_refused_by_length_and_bodies_are_capped() {
    let e = env();
    let a = e.key("alpha", "alpha-backend");
    let s = e.serve();
    // 128 KiB of valid Base58 characters ('z', not '1': leading '1's decode cheaply):
    // refused by length, before any decoding.
    let long_to = "z".repeat(128 * 1024);
    let (st, v) = s.post(&a, &payout("p1", &long_to, "1")).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_address"));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("longer than a Base58 Tron address"),
        "{msg:.300}"
    );
    // The refusal quotes a bounded prefix, not the input.
    assert!(msg.len() < 200, "{} bytes", msg.len());
    assert!(
        msg.contains(&format!("{} bytes", long_to.len())),
        "{msg:.300}"
    );
    // Other oversized fields are refused by their codes, with bounded messages too.
    let big = "x".repeat(100 * 1024);
    let mut unknown = payout("p1", DEST, "1");
    unknown[&big] = json!(1);
    let long_asset = json!({"id": "p1", "asset": big, "to": DEST, "amount": "1"});
    for (body, want) in [
        (unknown, "unknown_field"),
        (long_asset, "unsupported_asset"),
        (payout(&big, DEST, "1"), "invalid_payout_id"),
        (payout("p1", DEST, &big), "invalid_amount"),
    ] {
        let (st, v) = s.post(&a, &body).await;
        assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, want), "{want}");
        let len = v["error"]["message"].as_str().unwrap().len();
        assert!(len < 400, "{want}: {len} bytes");
    }
    // A body over the cap is refused whole with its own code.
    let huge = payout("p1", &"1".repeat(300 * 1024), "1");
    let (st, v) = s.post(&a, &huge).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    // Nothing was stored, and the server still serves a valid payout.
    let (_, v) = s.get(&a, "/v1/payouts").await;
    assert!(ids(&v).is_empty());
    let (st, _) = s.post(&a, &payout("p1", DEST, "1")).await;
    assert_eq!(st, StatusCode::CREATED);
}

#[test]
fn a_database_from_before_tenants_is_refused_by_name() {
    let e = env();
    {
        let db = redb::Database::create(e.dir.path().join("b.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        let old: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("payouts");
        tx.open_table(old)
            .unwrap()
            .insert("order-1", b"{}".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let out = e.cli(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[database_old_schema]"), "{err}");
    assert!(err.contains("Upgrading to tenants"), "{err}");
}
