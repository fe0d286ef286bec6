//! `tron-signer batch sign` on the real binary: the air-gapped path runs the same decode,
//! policy, ledger and audit as gRPC, refuses tampered files whole, and never overwrites.
//! Files are signed by their exporter with a real `ssh-keygen` key (issue 12, item 7): an
//! unsigned or wrongly signed file is refused whole, and a file from an exporter the policy
//! does not list, or lists without a Sign grant for the key, gets every item refused.

mod common;

use std::path::{Path, PathBuf};

use common::exporter::Exporter;
use common::*;
use tron_proto::batch::{SignedBatch, SignedItem, UnsignedBatch, UnsignedItem};
use tron_proto::sig::{is_low_s, recover_address};
use tron_proto::Address;

const USDT: u128 = 1_000_000;

fn dest_a() -> Address {
    dest(0xa1)
}

/// USDT to destination A only: per transaction 30, 24 h per key 50; `ex` may Sign with
/// KEY1 (and `more` callers are added as given).
fn policy_with(ex: &Exporter, more: &str) -> String {
    PolicyText::new("batch test policy")
        .callers(&ex.caller("exporter", r#"["Sign"]"#, &format!("[\"{KEY1}\"]")))
        .callers(more)
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

fn policy(ex: &Exporter) -> String {
    policy_with(ex, "")
}

fn item(id: &str, raw: Vec<u8>) -> UnsignedItem {
    UnsignedItem {
        payout_id: id.into(),
        key: KEY1.into(),
        raw_data: raw,
        approvals: vec![],
    }
}

/// Writes a Nile batch signed by `ex`.
fn write_batch(s: &Setup, ex: &Exporter, name: &str, items: Vec<UnsignedItem>) -> PathBuf {
    let mut b = UnsignedBatch {
        created_at_ms: now_ms(),
        network: "nile".into(),
        items,
        exporter: None,
    };
    ex.sign(&mut b);
    write_file(s, name, &b)
}

fn write_file(s: &Setup, name: &str, b: &UnsignedBatch) -> PathBuf {
    let path = s.dir.path().join(name);
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

/// Runs `batch sign` on `input`, which must succeed, and reads its answers from `out_name`.
fn signed_ok(s: &Setup, input: &Path, out_name: &str) -> SignedBatch {
    let out = s.dir.path().join(out_name);
    let run = sign(s, input, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    read_signed(&out)
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
    let ex = Exporter::new("broadcaster exporter");
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&ex));
    let usdt_a = Tx::usdt(KEY1, dest_a(), 20 * USDT).raw();
    let trx_a = Tx::trx(KEY1, dest_a(), 2_000_000).raw();
    let input = write_batch(
        &s,
        &ex,
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
        &ex,
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
    // Every item was audited under the exporter's caller name and key, and the file.
    let records = s.audit_records();
    let of = |file: &str| {
        records
            .iter()
            .filter(|r| {
                r["peer"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("batch:{file},"))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(of("batch-1.json").len(), 5, "{records:?}");
    assert_eq!(of("batch-2.json").len(), 3, "{records:?}");
    for r in of("batch-1.json") {
        assert_eq!(r["caller"], "exporter");
        // The key as `ssh-keygen -l` names it, in the identity and the peer.
        assert_eq!(r["identity"], format!("batch_key={}", ex.fingerprint()));
        assert!(
            r["peer"].as_str().unwrap().ends_with(&ex.fingerprint()),
            "{r}"
        );
    }
}

#[test]
fn tampered_batch_is_refused_whole_and_nothing_is_signed() {
    let ex = Exporter::new("broadcaster exporter");
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&ex));
    let input = write_batch(
        &s,
        &ex,
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
    let ex = Exporter::new("broadcaster exporter");
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&ex));
    let raw = Tx::usdt(KEY1, dest_a(), 20 * USDT).raw();
    let path = s.dir.path().join("mainnet-batch.json");
    let mut b = UnsignedBatch {
        created_at_ms: now_ms(),
        network: "mainnet".into(),
        items: vec![
            item("m-1", raw.clone()),
            item("m-2", Tx::trx(KEY1, dest_a(), 1_000_000).raw()),
        ],
        exporter: None,
    };
    ex.sign(&mut b);
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
    let nile = write_batch(&s, &ex, "nile-batch.json", vec![item("m-1", raw)]);
    assert!(matches!(
        signed_ok(&s, &nile, "nile-batch.signed.json").items[0],
        SignedItem::Signed { .. }
    ));
}

/// Refused whole, before the ledger is opened: nothing signed, nothing decided.
fn assert_refused_whole(s: &Setup, input: &Path, code: &str) {
    let out = s.dir.path().join(format!("{code}.signed.json"));
    let run = sign(s, input, &out);
    assert!(!run.status.success(), "{code}: the file was accepted");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(code), "{code}: {err}");
    assert!(!out.exists(), "{code}: an answer file was written");
    assert!(!s.data_dir.join("ledger.redb").exists(), "{code}");
}

/// No signature, a signature over other content, one under another namespace, and one by
/// a key made for something else than Ed25519: each file is refused whole with its code.
#[test]
fn a_batch_without_a_valid_exporter_signature_is_refused_whole() {
    let ex = Exporter::new("broadcaster exporter");
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&ex));
    let items = || vec![item("p1", Tx::usdt(KEY1, dest_a(), 10 * USDT).raw())];
    let unsigned = UnsignedBatch {
        created_at_ms: now_ms(),
        network: "nile".into(),
        items: items(),
        exporter: None,
    };
    assert_refused_whole(
        &s,
        &write_file(&s, "unsigned.json", &unsigned),
        "batch_unsigned",
    );

    // The exporter's real signature, but over another batch's content (a payout swapped in
    // after signing, the file re-sealed with a fresh checksum).
    let mut signed = unsigned.clone();
    ex.sign(&mut signed);
    let mut swapped = signed.clone();
    swapped.items = vec![item("p1", Tx::usdt(KEY1, dest(0xee), 10 * USDT).raw())];
    let swapped = UnsignedBatch::from_json_bytes(&swapped.to_json_bytes()).unwrap();
    assert_ne!(
        swapped.exporter.as_ref().unwrap().digest,
        signed.exporter.as_ref().unwrap().digest
    );
    assert_refused_whole(
        &s,
        &write_file(&s, "swapped.json", &swapped),
        "batch_signature_invalid",
    );

    // Signed over the right digest, but for another purpose (namespace).
    let mut other_ns = unsigned.clone();
    let digest = other_ns.content_digest();
    other_ns.exporter = Some(tron_proto::batch::ExporterSignature {
        signature: ex.sign_text("file", &digest),
        digest,
    });
    assert_refused_whole(
        &s,
        &write_file(&s, "namespace.json", &other_ns),
        "batch_signature_invalid",
    );

    // A valid SSH signature over the right digest, but by an ECDSA key: exporters sign with
    // Ed25519.
    let ecdsa = Exporter::of_type("ecdsa", "not an exporter key");
    let mut by_ecdsa = unsigned.clone();
    ecdsa.sign(&mut by_ecdsa);
    assert_refused_whole(
        &s,
        &write_file(&s, "ecdsa.json", &by_ecdsa),
        "batch_signature_invalid",
    );
    let err = String::from_utf8_lossy(
        &sign(
            &s,
            &s.dir.path().join("ecdsa.json"),
            &s.dir.path().join("e.out"),
        )
        .stderr,
    )
    .into_owned();
    assert!(err.contains("exporters sign with Ed25519"), "{err}");

    // Not an SSH signature at all.
    let mut junk = unsigned.clone();
    junk.exporter = Some(tron_proto::batch::ExporterSignature {
        signature: "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n".into(),
        digest: junk.content_digest(),
    });
    assert_refused_whole(
        &s,
        &write_file(&s, "junk.json", &junk),
        "batch_signature_invalid",
    );

    // The same batch with its valid signature is signed.
    let good = write_file(&s, "good.json", &signed);
    assert!(matches!(
        signed_ok(&s, &good, "good.signed.json").items[0],
        SignedItem::Signed { .. }
    ));
}

/// A validly signed file from an exporter the policy does not list, from one it lists with
/// Evaluate only, and from one granted another key: every item is refused with the caller
/// code and audited under what was recognised; nothing is signed or counted.
#[test]
fn a_batch_from_an_unlisted_or_ungranted_exporter_signs_nothing() {
    let ex = Exporter::new("broadcaster exporter");
    let stranger = Exporter::new("someone else");
    let evaluator = Exporter::new("dry run exporter");
    let other_key = Exporter::new("exporter for key 2");
    let more = format!(
        "{}{}",
        evaluator.caller("evaluator", r#"["Evaluate"]"#, &format!("[\"{KEY1}\"]")),
        other_key.caller("key 2 exporter", r#"["Sign"]"#, &format!("[\"{KEY2}\"]")),
    );
    // KEY2 gets a [[key]] of its own (no destinations), so a grant may name it.
    let text = policy_with(&ex, &more).replacen(
        "\n[[caller]]",
        &format!(
            "\n[[key]]\naddress = \"{KEY2}\"\nlabel = \"hot 2\"\nassets = [\"TRX\"]\nwindows = [{{ asset = \"TRX\", window = \"24h\", max = \"1\" }}]\n\n[[caller]]"
        ),
        1,
    );
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &text);
    let cases = [
        (&stranger, "caller_unknown", "", String::new()),
        (
            &evaluator,
            "caller_not_allowed",
            "evaluator",
            format!("batch_key={}", evaluator.fingerprint()),
        ),
        (
            &other_key,
            "caller_key_not_allowed",
            "key 2 exporter",
            format!("batch_key={}", other_key.fingerprint()),
        ),
    ];
    for (i, (who, code, name, identity)) in cases.iter().enumerate() {
        let file = format!("from-{code}.json");
        let input = write_batch(
            &s,
            who,
            &file,
            vec![item(
                &format!("p{i}"),
                Tx::usdt(KEY1, dest_a(), 10 * USDT).nonce(i as u16).raw(),
            )],
        );
        let out = s.dir.path().join(format!("from-{code}.signed.json"));
        let run = sign(&s, &input, &out);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(String::from_utf8_lossy(&run.stdout).contains("0 signed, 1 refused"));
        let signed = read_signed(&out);
        let (got, message) = refusal(&signed.items[0]);
        assert_eq!(got, *code, "{message}");
        let records = s.records_with(code);
        let rec = records
            .iter()
            .find(|r| {
                r["peer"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("batch:{file},"))
            })
            .unwrap_or_else(|| panic!("{code}: no audit record: {records:?}"));
        assert_eq!(rec["caller"], *name);
        assert_eq!(rec["identity"], *identity, "{rec}");
        assert_eq!(rec["decision"], "deny");
    }
    // Nothing was counted: the listed exporter signs the whole 30 USDT per-tx limit now.
    let input = write_batch(
        &s,
        &ex,
        "ok.json",
        vec![item("ok", Tx::usdt(KEY1, dest_a(), 30 * USDT).raw())],
    );
    assert!(matches!(
        signed_ok(&s, &input, "ok.signed.json").items[0],
        SignedItem::Signed { .. }
    ));
    s.assert_audit_verifies();
}

/// Issue 13, item 6: batch items carry approvals, checked as gRPC checks them. An approver
/// signs with `tron-signer approve` (real `ssh-keygen`) on the item's raw_data and payout id;
/// the item without it is refused `approval_required`, with it signed, and the record keeps
/// the approval.
#[test]
fn batch_items_carry_approvals_checked_like_grpc() {
    let ex = Exporter::new("exporter");
    let alice = Exporter::new("alice");
    let approvals = format!(
        "\n[[approver]]\nname = \"alice\"\ngroups = [\"treasury\"]\nkey = \"{}\"\n\
         \n[[approval]]\nasset = \"USDT\"\nabove = \"20\"\nrequire = {{ treasury = 1 }}\n",
        alice.public_line
    );
    let text = format!("{}{approvals}", policy(&ex));
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &text);
    let raw = Tx::usdt(KEY1, dest_a(), 25 * USDT).raw();
    let sig_path = s.dir.path().join("alice.sig");
    let approve = s.run(&[
        "approve",
        "--policy",
        path_str(&s.policy),
        "--raw-data",
        &hex::encode(&raw),
        "--payout-id",
        "big",
        "--ssh-key",
        path_str(&alice.key),
        "--yes",
        "--out",
        path_str(&sig_path),
    ]);
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    let signature = std::fs::read_to_string(&sig_path).unwrap();

    let unapproved = write_batch(&s, &ex, "unapproved.json", vec![item("big", raw.clone())]);
    let answers = signed_ok(&s, &unapproved, "unapproved-out.json");
    assert_eq!(refusal(&answers.items[0]).0, "approval_required");

    let mut approved = item("big", raw);
    approved.approvals = vec![tron_proto::batch::ItemApproval {
        signature,
        statement: String::new(),
    }];
    let input = write_batch(&s, &ex, "approved.json", vec![approved]);
    let answers = signed_ok(&s, &input, "approved-out.json");
    assert!(
        matches!(answers.items[0], SignedItem::Signed { .. }),
        "{:?}",
        answers.items[0]
    );
    let rec = s.records_with("signed").pop().expect("the signed record");
    assert_eq!(rec["caller"], "exporter");
    assert_eq!(rec["approvals"]["approvals"][0]["approver"], "alice");
    s.assert_audit_verifies();
}
