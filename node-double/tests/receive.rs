//! The receive-side endpoints of the double in java-tron's shapes: blocks with their
//! transactions, transaction infos with TRC-20 `Transfer` logs, the solidified head
//! lagging the head, and the `/double/pay`, `/double/reorg`, `/double/produce` controls.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tron_node_double::http::router;
use tron_node_double::{sim, Accounts, App, Chain};
use tron_proto::Address;

const TOPIC: &str = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
const USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";

fn usdt() -> Address {
    USDT.parse().unwrap()
}

fn ours() -> Address {
    Address::from_evm([0x11; 20])
}

fn app(solid_after: u32) -> Arc<App> {
    let chain = Chain::new(Accounts::default(), solid_after, 1_000_000);
    let app = Arc::new(App::new(chain, None));
    app.set_default_token(usdt());
    app
}

async fn call(app: &Arc<App>, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(Arc::clone(app)).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn ok(app: &Arc<App>, path: &str, body: Value) -> Value {
    let (s, v) = call(app, path, body).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    v
}

fn word(a: &Address) -> String {
    format!("{:0>64}", hex::encode(a.evm_bytes()))
}

#[tokio::test]
async fn every_scripted_payment_in_block_and_info_shapes() {
    let app = app(3);
    let to = ours().to_base58();
    let cases = [
        json!({"to": to, "amount": "1500000"}),
        json!({"to": to, "amount": "2000000", "asset": "TRX"}),
        json!({"to": to, "amount": "3", "kind": "via_contract", "transfers": 2}),
        json!({"to": to, "amount": "4", "kind": "fake_token"}),
        json!({"to": to, "amount": "5", "kind": "trc10"}),
        json!({"to": to, "amount": "6", "kind": "reverted"}),
        json!({"to": to, "kind": "zero_value"}),
    ];
    let mut txids = Vec::new();
    for c in cases {
        txids.push(
            ok(&app, "/double/pay", c).await["txid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let produced = ok(&app, "/double/produce", json!({"count": 1})).await;
    let n = produced["head"].as_i64().unwrap();
    let block = ok(&app, "/wallet/getblockbynum", json!({"num": n})).await;
    let parent = ok(&app, "/wallet/getblockbynum", json!({"num": n - 1})).await;
    assert_eq!(
        block["block_header"]["raw_data"]["parentHash"],
        parent["blockID"]
    );
    assert_eq!(block["block_header"]["raw_data"]["number"], n);
    let txs = block["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 7);
    for (t, id) in txs.iter().zip(&txids) {
        assert_eq!(&t["txID"], id);
        // txID is sha256(raw_data), as on a real node.
        let raw = hex::decode(t["raw_data_hex"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode(tron_proto::txid(&raw)), *id);
    }
    let ty = |i: usize| txs[i]["raw_data"]["contract"][0]["type"].as_str().unwrap();
    let value = |i: usize| &txs[i]["raw_data"]["contract"][0]["parameter"]["value"];
    let ret = |i: usize| txs[i]["ret"][0]["contractRet"].as_str().unwrap();
    assert_eq!(ty(0), "TriggerSmartContract");
    assert_eq!(value(0)["contract_address"], usdt().to_hex());
    assert_eq!(ty(1), "TransferContract");
    assert_eq!(value(1)["to_address"], ours().to_hex());
    assert_eq!(value(1)["amount"], 2_000_000);
    assert_eq!(value(2)["contract_address"], sim::batcher().to_hex());
    assert_eq!(value(3)["contract_address"], sim::fake_token().to_hex());
    assert_eq!(ty(4), "TransferAssetContract");
    assert_eq!(value(4)["asset_name"], hex::encode("1002000"));
    assert_eq!(ret(5), "REVERT");
    for i in [0, 1, 2, 3, 4, 6] {
        assert_eq!(ret(i), "SUCCESS", "{i}");
    }

    let infos = ok(
        &app,
        "/wallet/gettransactioninfobyblocknum",
        json!({"num": n}),
    )
    .await;
    let infos = infos.as_array().unwrap();
    assert_eq!(infos.len(), 7);
    let logs = |i: usize| infos[i]["log"].as_array().cloned().unwrap_or_default();
    let direct = &logs(0)[0];
    assert_eq!(direct["address"], hex::encode(usdt().evm_bytes()));
    assert_eq!(direct["topics"][0], TOPIC);
    assert_eq!(direct["topics"][1], word(&sim::customer()));
    assert_eq!(direct["topics"][2], word(&ours()));
    assert_eq!(direct["data"], format!("{:064x}", 1_500_000));
    assert_eq!(infos[0]["receipt"]["result"], "SUCCESS");
    // TRX: no logs and no receipt.result, as a real node reports it.
    assert!(logs(1).is_empty());
    assert!(infos[1]["receipt"].get("result").is_none());
    // Through the batcher: two logs, both emitted by the token, from the batcher.
    assert_eq!(logs(2).len(), 2);
    for l in logs(2) {
        assert_eq!(l["address"], hex::encode(usdt().evm_bytes()));
        assert_eq!(l["topics"][1], word(&sim::batcher()));
    }
    assert_eq!(infos[2]["contract_address"], sim::batcher().to_hex());
    assert_eq!(
        logs(3)[0]["address"],
        hex::encode(sim::fake_token().evm_bytes())
    );
    assert!(logs(4).is_empty());
    assert!(logs(5).is_empty());
    assert_eq!(infos[5]["receipt"]["result"], "REVERT");
    assert_eq!(infos[5]["result"], "FAILED");
    assert_eq!(logs(6)[0]["data"], "00".repeat(32));

    // Balances: the token twice 3 plus 1.5 USDT; the fake token apart; TRX.
    let bal = |token: Option<Address>| {
        app.with_chain(|c| match token {
            Some(t) => c.accounts().trc20(&t, &ours()).to_string(),
            None => c.accounts().trx(&ours()).to_string(),
        })
    };
    assert_eq!(bal(Some(usdt())), "1500006");
    assert_eq!(bal(Some(sim::fake_token())), "4");
    assert_eq!(bal(None), "2000000");

    // visible=true: Base58 addresses and the asset name as text.
    let shown = ok(
        &app,
        "/wallet/getblockbynum",
        json!({"num": n, "visible": true}),
    )
    .await;
    let v = &shown["transactions"][4]["raw_data"]["contract"][0]["parameter"]["value"];
    assert_eq!(v["to_address"], ours().to_base58());
    assert_eq!(v["asset_name"], "1002000");
}

#[tokio::test]
async fn block_ranges_heads_and_unknown_blocks() {
    let app = app(3);
    ok(&app, "/double/produce", json!({"count": 9})).await;
    let head = ok(&app, "/wallet/getnowblock", json!({})).await;
    assert_eq!(head["block_header"]["raw_data"]["number"], 10);
    let solid = ok(&app, "/walletsolidity/getnowblock", json!({})).await;
    assert_eq!(solid["block_header"]["raw_data"]["number"], 7);
    assert!(solid["blockID"].is_string());
    // An empty block has no `transactions` member; its infos are an empty list.
    assert!(head.get("transactions").is_none());
    assert_eq!(
        ok(
            &app,
            "/wallet/gettransactioninfobyblocknum",
            json!({"num": 10})
        )
        .await,
        json!([])
    );

    let r = ok(
        &app,
        "/wallet/getblockbylimitnext",
        json!({"startNum": 8, "endNum": 20}),
    )
    .await;
    let numbers: Vec<i64> = r["block"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["block_header"]["raw_data"]["number"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        vec![8, 9, 10],
        "[start, end), only produced blocks"
    );
    assert_eq!(
        ok(
            &app,
            "/wallet/getblockbylimitnext",
            json!({"startNum": 50, "endNum": 60})
        )
        .await,
        json!({})
    );
    for bad in [
        json!({"startNum": 5, "endNum": 5}),
        json!({"startNum": 1, "endNum": 102}),
        json!({"startNum": -1, "endNum": 3}),
        json!({"startNum": 1}),
    ] {
        let v = ok(&app, "/wallet/getblockbylimitnext", bad.clone()).await;
        assert!(v["Error"].is_string(), "{bad}: {v}");
    }
    assert_eq!(
        ok(&app, "/wallet/getblockbynum", json!({"num": 11})).await,
        json!({})
    );
    assert!(ok(&app, "/wallet/getblockbynum", json!({})).await["Error"].is_string());
}

#[tokio::test]
async fn a_reorg_control_replaces_blocks_and_their_payments() {
    let app = app(3);
    ok(&app, "/double/produce", json!({"count": 4})).await;
    let paid = ok(
        &app,
        "/double/pay",
        json!({"to": ours().to_base58(), "amount": "9"}),
    )
    .await;
    ok(&app, "/double/produce", json!({"count": 1})).await;
    let before = ok(&app, "/wallet/getblockbynum", json!({"num": 6})).await;
    assert_eq!(before["transactions"][0]["txID"], paid["txid"]);
    let r = ok(&app, "/double/reorg", json!({"depth": 1})).await;
    assert_eq!(r["replaced"][0]["number"], 6);
    let after = ok(&app, "/wallet/getblockbynum", json!({"num": 6})).await;
    assert_ne!(after["blockID"], before["blockID"]);
    assert!(after.get("transactions").is_none());
    let info = ok(
        &app,
        "/wallet/gettransactioninfobyid",
        json!({"value": paid["txid"]}),
    )
    .await;
    assert_eq!(info, json!({}));
    let (s, v) = call(&app, "/double/reorg", json!({"depth": 4})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["Error"].as_str().unwrap().contains("solidified"), "{v}");
}

#[tokio::test]
async fn refused_controls() {
    let app = app(3);
    let to = ours().to_base58();
    for (body, needle) in [
        (json!({"amount": "1"}), "to"),
        (json!({"to": to, "amount": "1", "kind": "airdrop"}), "kind"),
        (json!({"to": to, "amount": "1", "asset": "BTC"}), "asset"),
        (json!({"to": to, "amount": "1.5"}), "amount"),
        (json!({"to": to, "amount": "0"}), "sim_zero_amount"),
        (
            json!({"to": to, "amount": "1", "asset": "TRX", "kind": "via_contract"}),
            "sim_needs_token",
        ),
        (
            json!({"to": to, "amount": "1", "kind": "via_contract", "transfers": 0}),
            "sim_transfers",
        ),
        (json!({"to": "Tnope", "amount": "1"}), "to"),
    ] {
        let (s, v) = call(&app, "/double/pay", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(v["Error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    for (path, body) in [
        ("/double/produce", json!({"count": 0})),
        ("/double/produce", json!({})),
        ("/double/reorg", json!({"depth": 0})),
        ("/double/reorg", json!({})),
    ] {
        let (s, _) = call(&app, path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}");
    }
}
