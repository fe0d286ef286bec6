//! The air-gap round trip: export, sign offline (simulated with the test key), import.

mod common;

use common::*;
use tron_broadcaster::batch::{
    self, RefusedItem, ResponseBody, SignedItem, KIND_RESPONSE, VERSION,
};
use tron_broadcaster::model::{Asset, Origin, Status};

fn respond(signed: Vec<SignedItem>, refused: Vec<RefusedItem>) -> Vec<u8> {
    batch::seal(&ResponseBody {
        version: VERSION,
        kind: KIND_RESPONSE.into(),
        created_at_ms: 1,
        signed,
        refused,
    })
    .unwrap()
}

fn sign_item(k: &k256::ecdsa::SigningKey, item: &batch::RequestItem) -> SignedItem {
    let raw = hex::decode(&item.raw_data).unwrap();
    SignedItem {
        payout_id: item.payout_id.clone(),
        key: item.key.clone(),
        txid: hex::encode(tron_proto::txid(&raw)),
        signature: hex::encode(sign_raw(k, &raw)),
        signed_transaction: String::new(),
    }
}

#[tokio::test]
async fn export_sign_import_broadcast() {
    let h = Harness::new(false, None).await;
    h.add("a1", Asset::Trx, 1_000_000);
    h.add("a2", Asset::Usdt, 2_000_000);
    h.add("a3", Asset::Trx, 3);
    h.add("a4", Asset::Trx, 4);
    // Air-gap mode: the pipeline alone never builds or signs.
    h.pipeline.tick().await;
    assert_eq!(h.get("a1").status, Status::Queued);

    let out = h.dir.path().join("req.json");
    let rep = batch::export(&h.pipeline, &out).await.unwrap();
    assert_eq!(rep.items.len(), 4);
    let req = batch::read_request(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(req.items.len(), 4);
    for id in ["a1", "a2", "a3", "a4"] {
        let p = h.get(id);
        assert_eq!(p.status, Status::Signing);
        assert_eq!(p.attempts[0].origin, Origin::Batch);
        // The batch window, not the online one.
        assert_eq!(
            p.attempts[0].expiration_ms - h.node.st().timestamp_ms,
            12 * 3600 * 1000
        );
    }
    // Exporting again writes the same transactions, not new ones.
    let again = h.dir.path().join("req2.json");
    let rep2 = batch::export(&h.pipeline, &again).await.unwrap();
    assert_eq!(rep2.items, rep.items);

    let key = test_key();
    let other = k256::ecdsa::SigningKey::from_slice(&[0x77; 32]).unwrap();
    let by_id = |id: &str| {
        req.items
            .iter()
            .find(|i| i.payout_id == id)
            .unwrap()
            .clone()
    };
    let mut bad_txid = sign_item(&key, &by_id("a4"));
    bad_txid.txid = "00".repeat(32);
    let resp = respond(
        vec![
            sign_item(&key, &by_id("a1")),
            sign_item(&key, &by_id("a2")),
            sign_item(&other, &by_id("a3")), // wrong signer
            bad_txid,
        ],
        vec![],
    );
    let file = h.dir.path().join("resp.json");
    std::fs::write(&file, &resp).unwrap();
    let r = batch::import(&h.pipeline, &file).await.unwrap();
    assert_eq!(r.signed, ["a1", "a2"]);
    let rejected: Vec<_> = r
        .rejected
        .iter()
        .map(|(id, c, _)| (id.as_str(), *c))
        .collect();
    assert_eq!(
        rejected,
        [("a3", "signature_invalid"), ("a4", "txid_mismatch")]
    );
    assert_eq!(h.get("a1").status, Status::Broadcast);
    assert_eq!(h.get("a2").status, Status::Broadcast);
    assert_eq!(h.get("a3").status, Status::Signing);
    assert_eq!(h.node.st().accepted.len(), 2);

    // A refusal in the file denies the payout with the signer's reason.
    let resp = respond(
        vec![],
        vec![RefusedItem {
            payout_id: "a3".into(),
            key: by_id("a3").key,
            txid: h.get("a3").attempts[0].txid.clone(),
            reason_code: "velocity_exceeded".into(),
            message: "daily limit reached".into(),
        }],
    );
    std::fs::write(&file, &resp).unwrap();
    let r = batch::import(&h.pipeline, &file).await.unwrap();
    assert_eq!(r.denied, ["a3"]);
    let p = h.get("a3");
    assert_eq!(p.status, Status::Denied);
    assert_eq!(p.denial.unwrap().code, "velocity_exceeded");

    // Importing a signature again is harmless; a signed payout is not re-exported.
    let rep3 = batch::export(&h.pipeline, &again).await.unwrap();
    assert_eq!(rep3.items.len(), 1, "only a4 still waits: {:?}", rep3.items);

    h.node.solidify_all();
    h.pipeline.tick().await;
    assert_eq!(h.get("a1").status, Status::Confirmed);
    assert_eq!(h.get("a2").status, Status::Confirmed);
}

#[tokio::test]
async fn tampered_file_is_refused_whole() {
    let h = Harness::new(false, None).await;
    h.add("t1", Asset::Trx, 1);
    let out = h.dir.path().join("req.json");
    batch::export(&h.pipeline, &out).await.unwrap();
    let req = batch::read_request(&std::fs::read(&out).unwrap()).unwrap();
    let resp = respond(vec![sign_item(&test_key(), &req.items[0])], vec![]);
    let tampered = String::from_utf8(resp)
        .unwrap()
        .replace("\"created_at_ms\": 1", "\"created_at_ms\": 2");
    let file = h.dir.path().join("resp.json");
    std::fs::write(&file, tampered).unwrap();
    let e = batch::import(&h.pipeline, &file).await.unwrap_err();
    assert_eq!(e.code(), "batch_checksum");
    assert_eq!(h.get("t1").status, Status::Signing);
    assert!(h.node.st().received.is_empty());
}

#[tokio::test]
async fn unimported_batch_expires_then_is_rebuilt() {
    let h = Harness::new(false, None).await;
    h.add("x1", Asset::Trx, 1);
    let out = h.dir.path().join("req.json");
    batch::export(&h.pipeline, &out).await.unwrap();
    let first = h.get("x1").attempts[0].clone();
    // Before expiry + margin nothing changes: the signed file could still come back.
    let head = h.node.st().timestamp_ms;
    h.node.advance(first.expiration_ms - head);
    h.pipeline.tick().await;
    assert_eq!(h.get("x1").status, Status::Signing);
    h.node.advance(61_000);
    h.pipeline.tick().await;
    assert_eq!(h.get("x1").status, Status::Retrying);
    let rep = batch::export(&h.pipeline, &out).await.unwrap();
    assert_eq!(rep.items.len(), 1);
    assert_ne!(rep.items[0].1, first.txid);
}
