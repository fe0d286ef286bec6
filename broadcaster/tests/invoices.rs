//! The invoice API in-process: validation (one test per refusal code, each asserted),
//! idempotency on the merchant's id, tenants, filters, and the event feed's cursor.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bip32::{DerivationPath, Prefix, XPrv};
use serde_json::{json, Value};
use tower::ServiceExt;
use tron_broadcaster::api::{router_with, ApiState, OPENAPI};
use tron_broadcaster::apikeys::KeyStore;
use tron_broadcaster::delivery_store::DeliveryStore;
use tron_broadcaster::deposit_address::AccountXpub;
use tron_broadcaster::invoice_api::{routes, ReceiveApi};
use tron_broadcaster::receive_store::ReceiveStore;
use tron_broadcaster::store::Store;
use tron_proto::Address;

const OWNER: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const SEED: &str = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                    9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
const ADDRESS_0: &str = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH";

struct Api {
    _dir: tempfile::TempDir,
    app: axum::Router,
    key: String,
    other: String,
}

fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("a.redb")).unwrap());
    let keys = Arc::new(KeyStore::new(dir.path().join("keys.json")));
    let key = keys.create("shop", "shop").unwrap().to_string();
    let other = keys.create("other", "other").unwrap().to_string();
    let path: DerivationPath = "m/44'/195'/0'".parse().unwrap();
    let xpub = XPrv::derive_from_path(hex::decode(SEED).unwrap(), &path)
        .unwrap()
        .public_key()
        .to_string(Prefix::XPUB);
    let receive = ReceiveApi {
        store: ReceiveStore::open(store.clone()).unwrap(),
        xpub: AccountXpub::parse(&xpub).unwrap(),
        tolerance_units: 0,
        default_expiry: Duration::from_secs(3600),
        deliveries: DeliveryStore::open(store.clone()).unwrap(),
        endpoints: vec![("shop-hook".into(), "shop".into())],
    };
    let app = router_with(
        ApiState {
            store,
            keys,
            owner: Address::from_base58(OWNER).unwrap(),
        },
        routes(receive),
    );
    Api {
        _dir: dir,
        app,
        key,
        other,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let req = b
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
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

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/v1/invoices", Some(&self.key), &body.to_string())
            .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(&self.key), "").await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn base() -> Value {
    json!({"id": "inv-1", "asset": "USDT", "amount": "10"})
}

fn with(k: &str, v: Value) -> Value {
    let mut b = base();
    b[k] = v;
    b
}

#[tokio::test]
async fn create_get_and_idempotency() {
    let a = api();
    let (s, v) = a.create(with("reference", json!("order 9"))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["address"], ADDRESS_0);
    assert_eq!(v["status"], "new");
    assert_eq!(v["amount_units"], "10000000");
    // The same request again (relative expiry included): the stored invoice, no new index.
    let (s, again) = a.create(with("reference", json!("order 9"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["address"], ADDRESS_0);
    assert_eq!(again["expires_at"], v["expires_at"]);
    let (s, e) = a.create(with("amount", json!("11"))).await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "invoice_conflict"));
    let (s, got) = a.get("/v1/invoices/inv-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["reference"], "order 9");
    // Another tenant: not found, and the same id is its own.
    let (s, e) = a
        .call("GET", "/v1/invoices/inv-1", Some(&a.other), "")
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "invoice_not_found"));
    let (s, mine) = a
        .call("POST", "/v1/invoices", Some(&a.other), &base().to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(mine["address"], ADDRESS_0, "a new index");
    let (s, e) = a.get("/v1/invoices/nope").await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "invoice_not_found"));
    let (s, e) = a.call("GET", "/v1/invoices/inv-1", None, "").await;
    assert_eq!((s, code(&e)), (StatusCode::UNAUTHORIZED, "missing_api_key"));
}

#[tokio::test]
async fn every_create_refusal_has_its_code() {
    let a = api();
    let big = json!({"blob": "x".repeat(5000)});
    let cases: Vec<(Value, &str)> = vec![
        (with("id", json!("")), "invalid_invoice_id"),
        (with("id", json!("a/b")), "invalid_invoice_id"),
        (with("id", json!("x".repeat(65))), "invalid_invoice_id"),
        (with("asset", json!("BTC")), "unsupported_asset"),
        (with("amount", json!("ten")), "invalid_amount"),
        (with("amount", json!("0")), "amount_not_positive"),
        (with("amount", json!("1.0000001")), "amount_too_precise"),
        (
            with("amount", json!("99999999999999999")),
            "amount_too_large",
        ),
        (
            {
                let mut b = with("expires_in", json!("10m"));
                b["expires_at"] = json!(1);
                b
            },
            "invalid_expiry",
        ),
        (with("expires_in", json!("soon")), "invalid_expiry"),
        (with("expires_in", json!("30s")), "invalid_expiry"),
        (with("expires_in", json!("31d")), "invalid_expiry"),
        (with("expires_at", json!(1_000)), "invalid_expiry"),
        (
            with("reference", json!("x".repeat(129))),
            "invalid_reference",
        ),
        (with("reference", json!("a\nb")), "invalid_reference"),
        (with("metadata", json!([1, 2])), "invalid_metadata"),
        (with("metadata", big), "invalid_metadata"),
        (with("tolerance", json!("abc")), "invalid_tolerance"),
        (with("tolerance", json!("10")), "invalid_tolerance"),
        (with("surprise", json!(1)), "unknown_field"),
        (json!({"id": "x", "asset": "USDT"}), "missing_field"),
    ];
    for (body, want) in cases {
        let (s, v) = a.create(body.clone()).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, want),
            "{body}: {v}"
        );
    }
    let (s, v) = a
        .call("POST", "/v1/invoices", Some(&a.key), "{not json")
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(300 * 1024));
    let (s, v) = a.call("POST", "/v1/invoices", Some(&a.key), &huge).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    // Nothing was created by any refusal: the first valid invoice gets index 0.
    let (_, v) = a.create(base()).await;
    assert_eq!(v["deposit_index"], 0);
    // A tolerance below the amount is fine, zero included.
    for (id, t) in [("t1", "0"), ("t2", "0.5")] {
        let mut b = with("tolerance", json!(t));
        b["id"] = json!(id);
        let (s, v) = a.create(b).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
}

#[tokio::test]
async fn lists_filter_and_page_and_refuse_bad_queries() {
    let a = api();
    for (id, reference) in [("a", "r1"), ("b", "r2"), ("c", "r1")] {
        let mut b = with("reference", json!(reference));
        b["id"] = json!(id);
        assert_eq!(a.create(b).await.0, StatusCode::CREATED);
    }
    let ids = |v: &Value| -> Vec<String> {
        v["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, v) = a.get("/v1/invoices?reference=r1").await;
    assert_eq!(ids(&v), ["a", "c"]);
    let (_, v) = a.get("/v1/invoices?status=new&limit=2").await;
    assert_eq!(ids(&v), ["a", "b"]);
    assert_eq!(v["next_after"], "b");
    let (_, v) = a.get("/v1/invoices?after=b").await;
    assert_eq!(ids(&v), ["c"]);
    assert_eq!(v["next_after"], Value::Null);
    let (_, v) = a.get("/v1/invoices?status=paid").await;
    assert!(ids(&v).is_empty());
    for (uri, want) in [
        ("/v1/invoices?status=done", "invalid_status"),
        ("/v1/invoices?limit=0", "invalid_limit"),
        ("/v1/invoices?limit=1001", "invalid_limit"),
        ("/v1/invoices?after=a%2Fb", "invalid_invoice_id"),
        ("/v1/invoices?sort=id", "invalid_query"),
        ("/v1/events?after=-1", "invalid_cursor"),
        ("/v1/events?after=x", "invalid_cursor"),
        ("/v1/events?limit=0", "invalid_limit"),
        ("/v1/events?since=1", "invalid_query"),
    ] {
        let (s, v) = a.get(uri).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, want), "{uri}: {v}");
    }
    let (s, v) = a.get("/v1/events").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"events": [], "next_after": "0"}));
    // A payout's creation is an event in the same feed.
    let payout = json!({"id": "p1", "asset": "TRX", "to": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "amount": "1"});
    let (s, _) = a
        .call("POST", "/v1/payouts", Some(&a.key), &payout.to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, v) = a.get("/v1/events?after=0").await;
    assert_eq!(v["events"][0]["type"], "payout.queued");
    assert_eq!(v["events"][0]["data"]["payout"]["id"], "p1");
    assert_eq!(v["next_after"], "1");
    let (_, v) = a.call("GET", "/v1/events", Some(&a.other), "").await;
    assert_eq!(v["events"], json!([]), "another tenant's feed is its own");
}

#[test]
fn every_invoice_error_code_is_in_the_openapi_document() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let listed: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "invalid_invoice_id",
        "invalid_expiry",
        "invalid_reference",
        "invalid_metadata",
        "invalid_tolerance",
        "invoice_conflict",
        "invoice_not_found",
        "invalid_cursor",
        "event_not_found",
        "no_webhook_endpoint",
        "invalid_status",
        "invalid_limit",
        "invalid_query",
        "deposit_indexes_exhausted",
    ] {
        assert!(listed.contains(&c), "{c} missing from openapi.json");
    }
    assert!(doc["paths"]["/v1/events/{id}/redeliver"]["post"].is_object());
    for p in ["/v1/invoices", "/v1/invoices/{id}", "/v1/events"] {
        assert!(doc["paths"][p]["get"].is_object(), "{p}");
    }
    assert!(doc["paths"]["/v1/invoices"]["post"].is_object());
}
