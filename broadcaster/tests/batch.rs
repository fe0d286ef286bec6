//! The air-gap round trip: export, sign offline (simulated with the test key), import.

mod common;

use common::*;
use tron_broadcaster::batch;
use tron_broadcaster::builder;
use tron_broadcaster::model::{Asset, Origin, Status};
use tron_proto::batch::{SignedBatch, SignedItem, UnsignedBatch, UnsignedItem};

fn respond(items: Vec<SignedItem>) -> Vec<u8> {
    respond_on("nile", items)
}

fn respond_on(network: &str, items: Vec<SignedItem>) -> Vec<u8> {
    SignedBatch {
        created_at_ms: 1,
        network: network.into(),
        items,
    }
    .to_json_bytes()
}

/// An exporter key file made with `ssh-keygen`, as an operator makes one.
fn exporter(dir: &std::path::Path) -> tron_broadcaster::exporter_key::ExporterKey {
    let path = dir.join("exporter");
    if !path.exists() {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "exporter", "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    tron_broadcaster::exporter_key::ExporterKey::load(&path).expect("exporter key")
}

fn read_request(path: &std::path::Path) -> UnsignedBatch {
    UnsignedBatch::from_json_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// What `tron-signer batch sign` writes for an item it signs.
fn sign_item(k: &k256::ecdsa::SigningKey, item: &UnsignedItem) -> SignedItem {
    let signature: [u8; 65] = sign_raw(k, &item.raw_data).try_into().unwrap();
    SignedItem::Signed {
        payout_id: item.payout_id.clone(),
        txid: tron_proto::txid(&item.raw_data),
        signature,
        signed_transaction: builder::signed_transaction(&item.raw_data, &signature),
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
    let rep = batch::export(&h.pipeline, &out, &exporter(h.dir.path()))
        .await
        .unwrap();
    assert_eq!(rep.items.len(), 4);
    let req = read_request(&out);
    assert_eq!(req.items.len(), 4);
    assert_eq!(req.network, "nile");
    // The exporter's signature checks with ssh-keygen alone, over the content digest.
    let sig = h.dir.path().join("req.sig");
    let e = req.exporter.as_ref().expect("signed by the exporter");
    std::fs::write(&sig, &e.signature).unwrap();
    let mut check = std::process::Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "tron-batch-export", "-s"])
        .arg(&sig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), e.digest.as_bytes()).unwrap();
    let check = check.wait_with_output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for item in &req.items {
        assert_eq!(item.key, address_of(&test_key()).to_base58());
        assert_eq!(
            hex::encode(tron_proto::txid(&item.raw_data)),
            h.pipeline
                .store()
                .get(&item.payout_id)
                .unwrap()
                .unwrap()
                .attempts[0]
                .txid
        );
    }
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
    let rep2 = batch::export(&h.pipeline, &again, &exporter(h.dir.path()))
        .await
        .unwrap();
    assert_eq!(rep2.items, rep.items);

    let key = test_key();
    let other = k256::ecdsa::SigningKey::from_slice(&[0x77; 32]).unwrap();
    let by_id = |id: &str| {
        req.items
            .iter()
            .find(|i| i.payout_id == scoped(id))
            .unwrap()
            .clone()
    };
    let mut bad_txid = sign_item(&key, &by_id("a4"));
    if let SignedItem::Signed { txid, .. } = &mut bad_txid {
        *txid = [0; 32];
    }
    let resp = respond(vec![
        sign_item(&key, &by_id("a1")),
        sign_item(&key, &by_id("a2")),
        sign_item(&other, &by_id("a3")), // wrong signer
        bad_txid,
    ]);
    let file = h.dir.path().join("resp.json");
    std::fs::write(&file, &resp).unwrap();
    let r = batch::import(&h.pipeline, &file).await.unwrap();
    assert_eq!(r.signed, [scoped("a1"), scoped("a2")]);
    let rejected: Vec<_> = r
        .rejected
        .iter()
        .map(|(id, c, _)| (id.as_str(), *c))
        .collect();
    assert_eq!(
        rejected,
        [
            ("shop/a3", "signature_invalid"),
            ("shop/a4", "txid_mismatch")
        ]
    );
    assert_eq!(h.get("a1").status, Status::Broadcast);
    assert_eq!(h.get("a2").status, Status::Broadcast);
    assert_eq!(h.get("a3").status, Status::Signing);
    assert_eq!(h.node.st().accepted.len(), 2);

    // A refusal in the file denies the payout with the signer's reason.
    let resp = respond(vec![SignedItem::Refused {
        payout_id: scoped("a3"),
        txid: Some(tron_proto::txid(&by_id("a3").raw_data)),
        reason_code: "velocity_exceeded".into(),
        message: "daily limit reached".into(),
    }]);
    std::fs::write(&file, &resp).unwrap();
    let r = batch::import(&h.pipeline, &file).await.unwrap();
    assert_eq!(r.denied, [scoped("a3")]);
    let p = h.get("a3");
    assert_eq!(p.status, Status::Denied);
    assert_eq!(p.denial.unwrap().code, "velocity_exceeded");

    // Importing a signature again is harmless; a signed payout is not re-exported.
    let rep3 = batch::export(&h.pipeline, &again, &exporter(h.dir.path()))
        .await
        .unwrap();
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
    batch::export(&h.pipeline, &out, &exporter(h.dir.path()))
        .await
        .unwrap();
    let req = read_request(&out);
    let resp = respond(vec![sign_item(&test_key(), &req.items[0])]);
    let tampered = String::from_utf8(resp.clone())
        .unwrap()
        .replace("\"created_at_ms\": 1", "\"created_at_ms\": 2");
    assert_ne!(tampered.as_bytes(), &resp[..]);
    let file = h.dir.path().join("resp.json");
    std::fs::write(&file, tampered).unwrap();
    let e = batch::import(&h.pipeline, &file).await.unwrap_err();
    assert_eq!(e.code(), "batch_bad_checksum");
    // An unsigned file handed to import is refused by kind.
    let e = batch::import(&h.pipeline, &out).await.unwrap_err();
    assert_eq!(e.code(), "batch_wrong_kind");
    // A correct file made for another chain is refused whole.
    std::fs::write(
        &file,
        respond_on("mainnet", vec![sign_item(&test_key(), &req.items[0])]),
    )
    .unwrap();
    let e = batch::import(&h.pipeline, &file).await.unwrap_err();
    assert_eq!(e.code(), "batch_network_mismatch");
    assert_eq!(h.get("t1").status, Status::Signing);
    assert!(h.node.st().received.is_empty());
}

#[tokio::test]
async fn unimported_batch_expires_then_is_rebuilt() {
    let h = Harness::new(false, None).await;
    h.add("x1", Asset::Trx, 1);
    let out = h.dir.path().join("req.json");
    batch::export(&h.pipeline, &out, &exporter(h.dir.path()))
        .await
        .unwrap();
    let first = h.get("x1").attempts[0].clone();
    // Before expiry + margin nothing changes: the signed file could still come back.
    let head = h.node.st().timestamp_ms;
    h.node.advance(first.expiration_ms - head);
    h.pipeline.tick().await;
    assert_eq!(h.get("x1").status, Status::Signing);
    h.node.advance(61_000);
    h.pipeline.tick().await;
    assert_eq!(h.get("x1").status, Status::Retrying);
    let rep = batch::export(&h.pipeline, &out, &exporter(h.dir.path()))
        .await
        .unwrap();
    assert_eq!(rep.items.len(), 1);
    assert_ne!(rep.items[0].1, first.txid);
}

#[tokio::test]
async fn signer_copy_of_the_transaction_must_wrap_our_bytes() {
    let h = Harness::new(false, None).await;
    h.add("w1", Asset::Trx, 5);
    h.add("w2", Asset::Trx, 6);
    let out = h.dir.path().join("req.json");
    batch::export(&h.pipeline, &out, &exporter(h.dir.path()))
        .await
        .unwrap();
    let req = read_request(&out);
    let item = |id: &str| {
        req.items
            .iter()
            .find(|i| i.payout_id == scoped(id))
            .unwrap()
    };
    // A valid signature over our txid, but the file's signed transaction wraps other bytes.
    let mut swapped = sign_item(&test_key(), item("w1"));
    if let SignedItem::Signed {
        signed_transaction, ..
    } = &mut swapped
    {
        signed_transaction.push(0);
    }
    // A refusal naming a different transaction than the one exported.
    let wrong_refusal = SignedItem::Refused {
        payout_id: scoped("w2"),
        txid: Some([9; 32]),
        reason_code: "destination_not_allowed".into(),
        message: "no".into(),
    };
    let file = h.dir.path().join("resp.json");
    std::fs::write(&file, respond(vec![swapped, wrong_refusal])).unwrap();
    let r = batch::import(&h.pipeline, &file).await.unwrap();
    let rejected: Vec<_> = r
        .rejected
        .iter()
        .map(|(id, c, _)| (id.as_str(), *c))
        .collect();
    assert_eq!(
        rejected,
        [
            ("shop/w1", "signature_invalid"),
            ("shop/w2", "txid_mismatch")
        ]
    );
    assert_eq!(h.get("w1").status, Status::Signing);
    assert_eq!(h.get("w2").status, Status::Signing);
    assert!(h.node.st().received.is_empty());
}
