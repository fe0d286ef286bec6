//! The payout API: authentication, validation (one test per refusal code), idempotency.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tron_broadcaster::api::{router, ApiState, MAX_PAYOUT_ID_LEN};
use tron_broadcaster::apikeys::KeyStore;
use tron_broadcaster::model::Status;
use tron_broadcaster::store::Store;
use tron_proto::Address;

const OWNER: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const DEST: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

struct Api {
    _dir: tempfile::TempDir,
    app: axum::Router,
    key: String,
    store: Arc<Store>,
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("a.redb")).unwrap());
    let keys = Arc::new(KeyStore::new(dir.path().join("keys.json")));
    let key = keys.create("test", "test").unwrap().to_string();
    let app = router(ApiState {
        store: store.clone(),
        keys,
        owner: Address::from_base58(OWNER).unwrap(),
    });
    Api {
        _dir: dir,
        app,
        key,
        store,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let req = b
            .header("content-type", "application/json")
            .body(Body::from(body.unwrap_or("").to_owned()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, body: &str) -> (StatusCode, Value) {
        let auth = format!("Bearer {}", self.key);
        self.call("POST", "/v1/payouts", Some(&auth), Some(body))
            .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let auth = format!("Bearer {}", self.key);
        self.call("GET", uri, Some(&auth), None).await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn body(id: &str, asset: &str, to: &str, amount: &str) -> String {
    json!({"id": id, "asset": asset, "to": to, "amount": amount}).to_string()
}

#[tokio::test]
async fn openapi_is_served_without_a_key() {
    let a = api();
    let (s, v) = a.call("GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    assert!(v["paths"]["/v1/payouts"]["post"].is_object());
    assert!(v["paths"]["/v1/payouts/{id}"]["get"].is_object());
    assert!(v["paths"]["/v1/payouts/{id}/approvals"]["post"].is_object());
    assert!(v["paths"]["/v1/approvals"]["get"].is_object());
    // Every error code the API emits is listed in the document.
    let listed: Vec<&str> = v["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in ERROR_CODES {
        assert!(listed.contains(c), "{c} missing from openapi.json");
    }
}

const ERROR_CODES: &[&str] = &[
    "missing_api_key",
    "invalid_api_key",
    "api_key_revoked",
    "api_keys_unavailable",
    "api_keys_corrupt",
    "body_too_large",
    "invalid_json",
    "unknown_field",
    "missing_field",
    "invalid_body",
    "invalid_payout_id",
    "unsupported_asset",
    "invalid_address",
    "destination_is_source",
    "invalid_amount",
    "amount_not_positive",
    "amount_too_precise",
    "amount_too_large",
    "payout_conflict",
    "payout_not_found",
    "invalid_status",
    "invalid_limit",
    "invalid_query",
    "not_found",
    "invalid_txid",
    "invalid_approval_signature",
    "invalid_approval_statement",
    "approval_txid_unknown",
    "approval_txid_superseded",
    "payout_not_awaiting_approval",
    "too_many_approvals",
];

#[tokio::test]
async fn authentication() {
    let a = api();
    let b = body("p1", "TRX", DEST, "1");
    let (s, v) = a.call("POST", "/v1/payouts", None, Some(&b)).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "missing_api_key"));
    let (s, v) = a
        .call(
            "GET",
            "/v1/payouts",
            Some(&format!("Basic {}", a.key)),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "missing_api_key"));
    let mut wrong = a.key.clone();
    wrong.pop();
    wrong.push('x');
    let (s, v) = a
        .call(
            "GET",
            "/v1/payouts/p1",
            Some(&format!("Bearer {wrong}")),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let (s, v) = a
        .call("GET", "/v1/payouts", Some("Bearer tbk_nope"), None)
        .await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    // Nothing was created by the unauthenticated request.
    assert!(a.store.get_for("test", "p1").unwrap().is_none());
    let (s, _) = a.post(&b).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn every_bad_input_has_its_code() {
    let a = api();
    let long_id = "x".repeat(MAX_PAYOUT_ID_LEN + 1);
    let cases: Vec<(String, &str)> = vec![
        ("{".into(), "invalid_json"),
        ("".into(), "invalid_json"),
        (
            json!({"id": "a", "asset": "TRX", "to": DEST, "amount": "1", "memo": "x"}).to_string(),
            "unknown_field",
        ),
        (
            json!({"id": "a", "asset": "TRX", "to": DEST}).to_string(),
            "missing_field",
        ),
        (
            json!({"id": "a", "asset": "TRX", "to": DEST, "amount": 1}).to_string(),
            "invalid_body",
        ),
        (body("", "TRX", DEST, "1"), "invalid_payout_id"),
        (body("has space", "TRX", DEST, "1"), "invalid_payout_id"),
        (body("a/b", "TRX", DEST, "1"), "invalid_payout_id"),
        (body(&long_id, "TRX", DEST, "1"), "invalid_payout_id"),
        (body("a", "BTC", DEST, "1"), "unsupported_asset"),
        (body("a", "trx", DEST, "1"), "unsupported_asset"),
        (
            body("a", "TRX", "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w2", "1"),
            "invalid_address",
        ),
        (
            body(
                "a",
                "TRX",
                "4194a15629b2b2bbd3a5453e6d6696b2875278633b",
                "1",
            ),
            "invalid_address",
        ),
        (body("a", "TRX", "", "1"), "invalid_address"),
        (body("a", "TRX", OWNER, "1"), "destination_is_source"),
        (body("a", "TRX", DEST, "1e3"), "invalid_amount"),
        (body("a", "TRX", DEST, "abc"), "invalid_amount"),
        (body("a", "TRX", DEST, "0"), "amount_not_positive"),
        (body("a", "USDT", DEST, "-5"), "amount_not_positive"),
        (body("a", "TRX", DEST, "0.0000001"), "amount_too_precise"),
        (body("a", "TRX", DEST, "99999999999999"), "amount_too_large"),
    ];
    for (b, want) in cases {
        let (s, v) = a.post(&b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}: {v}");
        assert_eq!(code(&v), want, "{b}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(
        a.store.list(None, None, 10).unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn idempotent_create_and_conflict() {
    let a = api();
    let (s, v) = a.post(&body("p1", "USDT", DEST, "1.5")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["amount"], "1.5");
    // Same request (the same amount written differently): the existing payout, 200.
    let (s, v2) = a.post(&body("p1", "USDT", DEST, "1.500000")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v2["created_at"], v["created_at"]);
    for different in [
        body("p1", "USDT", DEST, "1.6"),
        body("p1", "TRX", DEST, "1.5"),
        body("p1", "USDT", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "1.5"),
    ] {
        let (s, v) = a.post(&different).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::CONFLICT, "payout_conflict"),
            "{different}"
        );
    }
    assert_eq!(
        a.store.get_for("test", "p1").unwrap().unwrap().amount_units,
        1_500_000
    );
}

#[tokio::test]
async fn get_and_list() {
    let a = api();
    a.post(&body("p1", "TRX", DEST, "1")).await;
    a.post(&body("p2", "USDT", DEST, "2")).await;
    a.store
        .update::<tron_broadcaster::store::StoreError>("test/p2", |p| {
            p.transition(Status::Signing, 5, "test");
            Ok(())
        })
        .unwrap();
    let (s, v) = a.get("/v1/payouts/p1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], "p1");
    assert_eq!(v["history"][0]["status"], "queued");
    let (s, v) = a.get("/v1/payouts/nope").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "payout_not_found"));
    let (_, v) = a.get("/v1/payouts").await;
    assert_eq!(v["payouts"].as_array().unwrap().len(), 2);
    let (_, v) = a.get("/v1/payouts?status=signing").await;
    let list = v["payouts"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "p2");
    let (_, v) = a.get("/v1/payouts?limit=1").await;
    assert_eq!(v["payouts"].as_array().unwrap().len(), 1);
    let (s, v) = a.get("/v1/payouts?status=pending").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_status"));
    for l in ["0", "1001", "x"] {
        let (s, v) = a.get(&format!("/v1/payouts?limit={l}")).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_limit"),
            "{l}"
        );
    }
    let (s, v) = a.get("/v1/payouts?sort=id").await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, v) = a.get("/v2/elsewhere").await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
}
