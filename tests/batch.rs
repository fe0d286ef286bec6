//! `tron-signer batch sign` on the real binary: the air-gapped path runs the same decode,
//! policy, ledger and audit as gRPC, refuses tampered files whole, and never overwrites.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tron_proto::batch::{SignedBatch, SignedItem, UnsignedBatch, UnsignedItem};
use tron_proto::sig::{is_low_s, recover_address};
use tron_proto::Address;

const USDT: u128 = 1_000_000;

fn dest_a() -> Address {
    dest(0xa1)
}

/// USDT to destination A only: per transaction 30, 24 h per key 50.
fn policy() -> String {
    PolicyText::new("batch test policy")
        .key(
            Key::new(KEY1, "hot 1", &["USDT", "TRX"])
                .window("USDT", "24h", "50")
                .window("TRX", "24h", "10")
                .destination(
                    Destination::new(dest_a(), "exchange", &["USDT", "TRX"])
                        .per_tx_max("USDT", "30")
                        .per_tx_max("TRX", "5"),
                ),
        )
        .text()
}

fn item(id: &str, raw: Vec<u8>) -> UnsignedItem {
    UnsignedItem {
        payout_id: id.into(),
        key: KEY1.into(),
        raw_data: raw,
    }
}

fn write_batch(s: &Setup, name: &str, items: Vec<UnsignedItem>) -> PathBuf {
    let path = s.dir.path().join(name);
    let b = UnsignedBatch {
        created_at_ms: now_ms(),
        network: "nile".into(),
        items,
    };
    std::fs::write(&path, b.to_json_bytes()).expect("write batch");
    path
}

fn sign(s: &Setup, input: &Path, out: &Path) -> std::process::Output {
    s.run(&[
        "batch",
        "sign",
        "--config",
        path_str(&s.config),
        "--in",
        path_str(input),
        "--out",
        path_str(out),
    ])
}

fn read_signed(path: &Path) -> SignedBatch {
    SignedBatch::from_json_bytes(&std::fs::read(path).expect("read out")).expect("valid signed")
}

fn refusal(item: &SignedItem) -> (&str, &str) {
    match item {
        SignedItem::Refused {
            reason_code,
            message,
            ..
        } => (reason_code, message),
        SignedItem::Signed { payout_id, .. } => panic!("{payout_id} was signed"),
    }
}

#[test]
fn batch_signs_allowed_refuses_the_rest_and_counts_in_the_ledger() {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let usdt_a = Tx::usdt(KEY1, dest_a(), 20 * USDT).raw();
    let trx_a = Tx::trx(KEY1, dest_a(), 2_000_000).raw();
    let input = write_batch(
        &s,
        "batch-1.json",
        vec![
            item("ok-usdt", usdt_a.clone()),
            item("bad-dest", Tx::usdt(KEY1, dest(0xcc), USDT).nonce(1).raw()),
            item(
                "too-big",
                Tx::usdt(KEY1, dest_a(), 31 * USDT).nonce(2).raw(),
            ),
            item("garbage", vec![0x0a, 0x02, 0x01]),
            item("ok-trx", trx_a.clone()),
        ],
    );
    let out = s.dir.path().join("batch-1.signed.json");
    let run = sign(&s, &input, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("2 signed, 3 refused"));

    let signed = read_signed(&out);
    assert_eq!(signed.network, "nile");
    let ids: Vec<&str> = signed.items.iter().map(SignedItem::payout_id).collect();
    assert_eq!(ids, ["ok-usdt", "bad-dest", "too-big", "garbage", "ok-trx"]);
    for (idx, raw) in [(0, &usdt_a), (4, &trx_a)] {
        let SignedItem::Signed {
            txid,
            signature,
            signed_transaction,
            ..
        } = &signed.items[idx]
        else {
            panic!("item {idx} refused: {:?}", signed.items[idx]);
        };
        assert_eq!(*txid, tron_proto::txid(raw));
        assert!(is_low_s(signature));
        assert_eq!(recover_address(txid, signature).unwrap(), addr(KEY1));
        let tx: tron_proto::pb::Transaction =
            prost::Message::decode(&signed_transaction[..]).expect("decodes");
        assert_eq!(tx.signature, vec![signature.to_vec()]);
    }
    assert_eq!(refusal(&signed.items[1]).0, "destination_not_allowed");
    assert_eq!(refusal(&signed.items[2]).0, "over_per_tx_max");
    assert_eq!(refusal(&signed.items[3]).0, "truncated");
    for i in 1..4 {
        assert!(
            refusal(&signed.items[i]).1.len() > 10,
            "{:?}",
            signed.items[i]
        );
    }

    // The out file is never overwritten, even by a rerun of the same batch.
    let before = std::fs::read(&out).unwrap();
    let rerun = sign(&s, &input, &out);
    assert!(!rerun.status.success());
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("batch_output_exists"));
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // The ledger counted batch 1 (20 of 50 USDT): 20 more fits, then 20 more does not.
    let input2 = write_batch(
        &s,
        "batch-2.json",
        vec![
            item("second", Tx::usdt(KEY1, dest_a(), 20 * USDT).nonce(3).raw()),
            item("third", Tx::usdt(KEY1, dest_a(), 20 * USDT).nonce(4).raw()),
            // The same transaction as batch 1 under its own payout id: replayed, not recounted.
            item("ok-usdt", usdt_a.clone()),
        ],
    );
    let out2 = s.dir.path().join("batch-2.signed.json");
    let run = sign(&s, &input2, &out2);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let signed2 = read_signed(&out2);
    assert!(matches!(signed2.items[0], SignedItem::Signed { .. }));
    assert_eq!(refusal(&signed2.items[1]).0, "over_key_window");
    assert_eq!(
        signed2.items[2], signed.items[0],
        "replay returns the same signature"
    );

    s.assert_audit_verifies();
    // Every item was audited under the batch's caller identity.
    let (_, log) = s.audit_export();
    assert_eq!(log.matches("batch:batch-1.json").count(), 5, "{log}");
    assert_eq!(log.matches("batch:batch-2.json").count(), 3, "{log}");
}

#[test]
fn tampered_batch_is_refused_whole_and_nothing_is_signed() {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let input = write_batch(
        &s,
        "batch.json",
        vec![item("p1", Tx::usdt(KEY1, dest_a(), 10 * USDT).raw())],
    );
    // Redirect the payout: swap one hex digit of the destination inside raw_data.
    let text = std::fs::read_to_string(&input).unwrap();
    let a_hex = hex::encode(dest_a().evm_bytes());
    let b_hex = hex::encode(dest(0xa2).evm_bytes());
    assert!(text.contains(&a_hex));
    std::fs::write(&input, text.replace(&a_hex, &b_hex)).unwrap();

    let out = s.dir.path().join("out.json");
    let run = sign(&s, &input, &out);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("batch_bad_checksum"), "{err}");
    assert!(!out.exists(), "no output for a refused batch");
    // Refused before the ledger was even opened: no decision was taken.
    assert!(!s.data_dir.join("ledger.redb").exists());

    // A signed batch handed back in place of an unsigned one is refused too.
    let wrong = s.dir.path().join("signed-as-input.json");
    std::fs::write(
        &wrong,
        SignedBatch {
            created_at_ms: 0,
            network: "nile".into(),
            items: vec![],
        }
        .to_json_bytes(),
    )
    .unwrap();
    let run = sign(&s, &wrong, &out);
    assert!(String::from_utf8_lossy(&run.stderr).contains("batch_wrong_kind"));
    assert!(!out.exists());
}

/// A batch labelled mainnet carried to a signer whose policy is for Nile: the same keys and
/// addresses would be valid there, so only the label tells. Every item is answered
/// `network_mismatch`, nothing is signed, and the limits stay untouched.
#[test]
fn batch_for_another_network_is_refused_item_by_item() {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy());
    let raw = Tx::usdt(KEY1, dest_a(), 20 * USDT).raw();
    let path = s.dir.path().join("mainnet-batch.json");
    let b = UnsignedBatch {
        created_at_ms: now_ms(),
        network: "mainnet".into(),
        items: vec![
            item("m-1", raw.clone()),
            item("m-2", Tx::trx(KEY1, dest_a(), 1_000_000).raw()),
        ],
    };
    std::fs::write(&path, b.to_json_bytes()).expect("write batch");
    let out = s.dir.path().join("mainnet-batch.signed.json");
    let run = sign(&s, &path, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("0 signed, 2 refused"));
    let signed = read_signed(&out);
    assert_eq!(signed.network, "mainnet");
    assert_eq!(signed.items.len(), 2);
    for item in &signed.items {
        let (code, message) = refusal(item);
        assert_eq!(code, "network_mismatch");
        assert!(
            message.contains("\"mainnet\"") && message.contains("nile"),
            "{message}"
        );
    }
    let SignedItem::Refused { txid, .. } = &signed.items[0] else {
        unreachable!("checked above")
    };
    assert_eq!(*txid, Some(tron_proto::txid(&raw)));
    // Each refused item is an audit record of its own, with the code (invariant 7).
    let (_, log) = s.audit_export();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("batch:mainnet-batch.json"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(
        refused.iter().all(|l| l.contains("\"network_mismatch\"")),
        "{log}"
    );

    // The same transaction in a Nile batch is signed: the refusal consumed no limit.
    let nile = write_batch(&s, "nile-batch.json", vec![item("m-1", raw)]);
    let out = s.dir.path().join("nile-batch.signed.json");
    let run = sign(&s, &nile, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(matches!(
        read_signed(&out).items[0],
        SignedItem::Signed { .. }
    ));
}
