//! The pipeline's state machine against the node and signer doubles.

mod common;

use common::*;
use prost::Message;
use tron_broadcaster::model::{Asset, Status};
use tron_proto::pb;

fn assert_signed_by_key(stx_hex: &str) {
    let stx = hex::decode(stx_hex).unwrap();
    let tx = pb::Transaction::decode(stx.as_slice()).unwrap();
    let raw = tx.raw_data.unwrap().encode_to_vec();
    let addr = tron_proto::sig::recover_address(&tron_proto::txid(&raw), &tx.signature[0]).unwrap();
    assert_eq!(addr, address_of(&test_key()));
}

#[tokio::test]
async fn trx_payout_confirmed_with_recorded_transitions() {
    let h = Harness::new(true, Some("node-key-1")).await;
    h.add("p1", Asset::Trx, 1_500_000);
    let r = h.pipeline.tick().await;
    assert!(r.errors.is_empty(), "{r:?}");
    let p = h.get("p1");
    assert_eq!(p.status, Status::Broadcast);
    assert_eq!(p.attempts.len(), 1);
    let received = h.node.st().received.clone();
    assert_eq!(received.len(), 1);
    assert_signed_by_key(&received[0]);
    assert_eq!(
        common::txid_of_signed(&hex::decode(&received[0]).unwrap()),
        p.attempts[0].txid
    );
    // Not solid yet: stays broadcast.
    h.pipeline.tick().await;
    assert_eq!(h.get("p1").status, Status::Broadcast);
    h.node.solidify_all();
    h.pipeline.tick().await;
    let p = h.get("p1");
    assert_eq!(p.status, Status::Confirmed);
    assert!(p.block_number.is_some());
    assert_eq!(
        h.statuses("p1"),
        ["queued", "signing", "broadcast", "confirmed"]
    );
    assert!(p.history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    // Every node request carried the API key.
    let keys = h.node.st().api_keys.clone();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.as_deref() == Some("node-key-1")));
}

#[tokio::test]
async fn usdt_payout_builds_trigger_smart_contract() {
    let h = Harness::new(true, None).await;
    h.node.st().auto_solidify = true;
    h.add("u1", Asset::Usdt, 2_000_000);
    h.pipeline.tick().await;
    h.pipeline.tick().await;
    let p = h.get("u1");
    assert_eq!(p.status, Status::Confirmed);
    let raw =
        pb::transaction::Raw::decode(hex::decode(&p.attempts[0].raw_data).unwrap().as_slice())
            .unwrap();
    assert_eq!(raw.contract[0].r#type, 31);
    assert_eq!(raw.fee_limit, 30_000_000);
    assert_eq!(raw.expiration - raw.timestamp, 600_000);
    // No API key configured: none sent.
    assert!(h.node.st().api_keys.iter().all(Option::is_none));
}

#[tokio::test]
async fn dup_transaction_is_tracked_not_rebuilt() {
    let h = Harness::new(true, None).await;
    h.node
        .st()
        .script
        .push_back(Script::Reject("DUP_TRANSACTION_ERROR"));
    h.add("d1", Asset::Trx, 1);
    h.pipeline.tick().await;
    let p = h.get("d1");
    assert_eq!(p.status, Status::Broadcast);
    assert_eq!(p.attempts.len(), 1);
    let txid = p.attempts[0].txid.clone();
    h.node
        .st()
        .solid
        .insert(txid.clone(), success_info(&txid, 7));
    h.pipeline.tick().await;
    assert_eq!(h.get("d1").status, Status::Confirmed);
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
}

#[tokio::test]
async fn busy_node_is_retried_without_resigning() {
    let h = Harness::new(true, None).await;
    {
        let mut st = h.node.st();
        st.script.push_back(Script::Reject("SERVER_BUSY"));
        st.script.push_back(Script::Http(503));
    }
    h.add("b1", Asset::Trx, 1);
    let r = h.pipeline.tick().await;
    assert_eq!(r.errors.len(), 1);
    let p = h.get("b1");
    assert_eq!(p.status, Status::Signing);
    assert!(
        p.attempts[0].signed_transaction.is_some(),
        "signature persisted before broadcast"
    );
    let r = h.pipeline.tick().await;
    assert_eq!(r.errors.len(), 1, "503 is retried");
    h.pipeline.tick().await;
    assert_eq!(h.get("b1").status, Status::Broadcast);
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
    let received = h.node.st().received.clone();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r == &received[0]),
        "the same bytes every time"
    );
}

#[tokio::test]
async fn sigerror_and_contract_validate_fail_with_reason() {
    for code in ["SIGERROR", "CONTRACT_VALIDATE_ERROR"] {
        let h = Harness::new(true, None).await;
        h.node.st().script.push_back(Script::Reject(code));
        h.add("f1", Asset::Trx, 1);
        h.pipeline.tick().await;
        let p = h.get("f1");
        assert_eq!(p.status, Status::Failed, "{code}");
        let f = p.failure.unwrap();
        assert_eq!(f.code, code);
        assert_eq!(
            f.message,
            format!("{code} from the mock"),
            "message decoded from hex"
        );
        // Final: nothing more happens.
        h.node.advance(3_600_000);
        h.pipeline.tick().await;
        assert_eq!(h.get("f1").attempts.len(), 1);
        assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
    }
}

#[tokio::test]
async fn chain_failure_is_reported() {
    let h = Harness::new(true, None).await;
    h.add("r1", Asset::Usdt, 1);
    h.pipeline.tick().await;
    let txid = h.get("r1").attempts[0].txid.clone();
    h.node.st().solid.insert(
        txid.clone(),
        serde_json::json!({"id": txid, "blockNumber": 9, "result": "FAILED",
            "receipt": {"result": "OUT_OF_ENERGY"}, "resMessage": hex::encode("not enough energy")}),
    );
    h.pipeline.tick().await;
    let p = h.get("r1");
    assert_eq!(p.status, Status::Failed);
    assert_eq!(p.failure.unwrap().code, "OUT_OF_ENERGY");
}

#[tokio::test]
async fn tapos_error_rebuilds_only_after_expiry() {
    let h = Harness::new(true, None).await;
    {
        let mut st = h.node.st();
        for _ in 0..3 {
            st.script.push_back(Script::Reject("TAPOS_ERROR"));
        }
    }
    h.add("t1", Asset::Trx, 1);
    h.pipeline.tick().await;
    let p = h.get("t1");
    assert_eq!(p.status, Status::Signing);
    let first = p.attempts[0].clone();
    // Still valid by the node's clock: no new transaction, however often we try.
    h.node.advance(300_000);
    h.pipeline.tick().await;
    assert_eq!(h.get("t1").attempts.len(), 1);
    // Past expiration but inside the solidity margin: still no new transaction.
    let head = h.node.st().timestamp_ms;
    h.node.advance(first.expiration_ms - head + 30_000);
    h.pipeline.tick().await;
    assert_eq!(h.get("t1").attempts.len(), 1);
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
    // Past expiration + margin: retrying, then a fresh reference and a new signature.
    h.node.advance(60_000);
    let r = h.pipeline.tick().await;
    let p = h.get("t1");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(p.attempts.len(), 2);
    assert_ne!(p.attempts[1].txid, first.txid);
    assert!(p.attempts[1].ref_block > first.ref_block);
    assert_eq!(p.status, Status::Broadcast);
    assert!(h.statuses("t1").contains(&"retrying"));
    let calls = h.signer.as_ref().unwrap().st().calls.clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|(id, _)| *id == scoped("t1")),
        "same payout id"
    );
}

#[tokio::test]
async fn unconfirmed_past_expiry_goes_retrying_then_new_tx() {
    let h = Harness::new(true, None).await;
    h.add("e1", Asset::Trx, 1);
    h.pipeline.tick().await;
    let first = h.get("e1").attempts[0].clone();
    assert_eq!(h.get("e1").status, Status::Broadcast);
    // Up to the expiration plus margin: keep waiting.
    let head = h.node.st().timestamp_ms;
    h.node.advance(first.expiration_ms - head + 60_000);
    h.pipeline.tick().await;
    assert_eq!(h.get("e1").status, Status::Broadcast);
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
    // One block later it can no longer land.
    h.node.advance(3_000);
    h.pipeline.tick().await;
    let p = h.get("e1");
    assert_eq!(p.attempts.len(), 2);
    assert_eq!(p.status, Status::Broadcast);
    assert_eq!(
        h.statuses("e1"),
        [
            "queued",
            "signing",
            "broadcast",
            "retrying",
            "signing",
            "broadcast"
        ]
    );
    let second = p.attempts[1].txid.clone();
    h.node
        .st()
        .solid
        .insert(second.clone(), success_info(&second, 5000));
    h.pipeline.tick().await;
    assert_eq!(h.get("e1").status, Status::Confirmed);
}

#[tokio::test]
async fn landed_before_expiry_check_is_not_repaid() {
    // The first transaction solidifies although the node later reports TAPOS errors:
    // the final check finds it and no second transaction is built.
    let h = Harness::new(true, None).await;
    h.node.st().script.push_back(Script::Reject("TAPOS_ERROR"));
    h.add("l1", Asset::Trx, 1);
    h.pipeline.tick().await;
    let first = h.get("l1").attempts[0].clone();
    h.node
        .st()
        .solid
        .insert(first.txid.clone(), success_info(&first.txid, 1001));
    let head = h.node.st().timestamp_ms;
    h.node.st().script.push_back(Script::Reject("TAPOS_ERROR"));
    h.node.advance(first.expiration_ms - head + 120_000);
    h.pipeline.tick().await;
    let p = h.get("l1");
    assert_eq!(p.status, Status::Confirmed);
    assert_eq!(p.attempts.len(), 1);
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
}

#[tokio::test]
async fn signer_denial_is_final_with_reason() {
    let h = Harness::new(true, None).await;
    h.signer.as_ref().unwrap().st().refuse.push_back((
        tonic::Code::PermissionDenied,
        "destination_not_allowed",
        "TPX6... is not on the allowlist",
    ));
    h.add("n1", Asset::Trx, 1);
    h.pipeline.tick().await;
    let p = h.get("n1");
    assert_eq!(p.status, Status::Denied);
    let d = p.denial.unwrap();
    assert_eq!(d.code, "destination_not_allowed");
    assert_eq!(d.message, "TPX6... is not on the allowlist");
    h.pipeline.tick().await;
    assert_eq!(h.signer.as_ref().unwrap().st().calls.len(), 1);
    assert!(h.node.st().received.is_empty());
}

#[tokio::test]
async fn signer_unavailable_and_in_flight_are_retried() {
    let h = Harness::new(true, None).await;
    {
        let s = h.signer.as_ref().unwrap();
        let mut st = s.st();
        st.refuse
            .push_back((tonic::Code::Unavailable, "ledger_unavailable", "busy"));
        st.refuse
            .push_back((tonic::Code::PermissionDenied, "payout_in_flight", "wait"));
    }
    h.add("s1", Asset::Trx, 1);
    h.pipeline.tick().await;
    assert_eq!(h.get("s1").status, Status::Signing);
    h.pipeline.tick().await;
    assert_eq!(h.get("s1").status, Status::Signing);
    h.pipeline.tick().await;
    let p = h.get("s1");
    assert_eq!(p.status, Status::Broadcast);
    let calls = h.signer.as_ref().unwrap().st().calls.clone();
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|c| c.1 == p.attempts[0].txid),
        "the same bytes re-asked"
    );
}

#[tokio::test]
async fn node_outage_then_recovery() {
    let h = Harness::new(true, None).await;
    h.node.st().head_down = true;
    h.add("o1", Asset::Trx, 1);
    let r = h.pipeline.tick().await;
    assert_eq!(r.errors.len(), 1);
    assert_eq!(h.get("o1").status, Status::Queued);
    h.node.st().head_down = false;
    h.pipeline.tick().await;
    assert_eq!(h.get("o1").status, Status::Broadcast);
}

#[tokio::test]
async fn restart_mid_flight_resumes_without_paying_twice() {
    let mut h = Harness::new(true, None).await;
    // Crash point 1: built and persisted, signer unreachable.
    h.signer
        .as_ref()
        .unwrap()
        .st()
        .refuse
        .push_back((tonic::Code::Unavailable, "down", "x"));
    h.add("r1", Asset::Trx, 1);
    h.add("r2", Asset::Usdt, 1);
    h.pipeline.tick().await;
    // Crash point 2 for r2: signed and persisted, broadcast failed.
    assert_eq!(h.get("r1").status, Status::Signing);
    let r1_txid = h.get("r1").attempts[0].txid.clone();
    h.restart();
    h.pipeline.tick().await;
    assert_eq!(h.get("r1").status, Status::Broadcast);
    assert_eq!(h.get("r1").attempts.len(), 1);
    assert_eq!(
        h.get("r1").attempts[0].txid,
        r1_txid,
        "same bytes after restart"
    );
    // Crash point 3: broadcast, not yet solid.
    h.restart();
    h.node.solidify_all();
    h.pipeline.tick().await;
    for id in ["r1", "r2"] {
        let p = h.get(id);
        assert_eq!(p.status, Status::Confirmed, "{id}");
        assert_eq!(p.attempts.len(), 1, "{id}");
    }
    let accepted = h.node.st().accepted.clone();
    assert_eq!(accepted.len(), 2, "one transaction per payout");
}

/// Two tenants' payouts with the same id are two payouts to the signer: each is asked for
/// under `<tenant>/<id>`, so neither is taken for a retry of the other (`payout_in_flight`).
#[tokio::test]
async fn equal_ids_of_two_tenants_reach_the_signer_apart() {
    let h = Harness::new(true, None).await;
    h.add("p1", Asset::Trx, 1);
    let other = tron_broadcaster::model::Owner {
        tenant: "other".into(),
        key_id: "fedcba9876543210".into(),
    };
    let p =
        tron_broadcaster::model::Payout::new(&other, "p1".into(), Asset::Trx, DEST.into(), 2, 1);
    h.pipeline.store().create_payout(p).unwrap();
    let r = h.pipeline.tick().await;
    assert!(r.errors.is_empty(), "{r:?}");
    let mut ids: Vec<String> = h
        .signer
        .as_ref()
        .unwrap()
        .st()
        .calls
        .iter()
        .map(|c| c.0.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["other/p1", "shop/p1"]);
    assert_eq!(h.get("p1").status, Status::Broadcast);
    let theirs = h.pipeline.store().get_for("other", "p1").unwrap().unwrap();
    assert_eq!((theirs.status, theirs.amount_units), (Status::Broadcast, 2));
    assert_eq!(h.node.st().accepted.len(), 2);
}
