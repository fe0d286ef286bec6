//! Hostile input against the real `tron-signer serve` binary over gRPC (issue 11, items 1, 2
//! and 8): oversized keys and payout ids stay cheap and leave only bounded bytes in the
//! answer and the audit log, oversized messages are refused by gRPC while the signer keeps
//! serving, and a freeze put in force by SIGHUP stops replays.

mod common;

use common::*;
use tonic::Code;
use tron_proto::signer::GetPolicyRequest;

const TRX: u64 = 1_000_000;

fn policy() -> String {
    PolicyText::new("hostile input test")
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "1h", "100")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", "50"),
                ),
        )
        .text()
}

fn setup() -> Setup {
    Setup::new(&[("hot 1", KEY1_SECRET)], &policy())
}

fn field<'a>(rec: &'a serde_json::Value, name: &str) -> &'a str {
    rec[name].as_str().unwrap_or("")
}

/// The server still answers and signs.
async fn still_serving(srv: &mut Server, nonce: u16, payout: &str) {
    srv.client
        .get_policy(GetPolicyRequest {})
        .await
        .expect("still serving");
    srv.client
        .sign(request(
            KEY1,
            Tx::trx(KEY1, dest(0xa1), TRX).nonce(nonce).raw(),
            payout,
        ))
        .await
        .expect("still signing");
}

/// A 256 KiB key (the issue's ~20 s of Base58 CPU per request) no longer reaches the
/// decoder: the request is over the server's message cap and refused by gRPC itself. A key
/// as long as the cap lets through is refused by its length, `bad_key_address`, with a short
/// message, and the audit record keeps only a bounded description of it.
#[tokio::test]
async fn oversized_keys_are_refused_by_length_with_bounded_echoes() {
    let s = setup();
    let mut srv = s.start().await;
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).raw();

    let huge = format!("T{}", "z".repeat(256 * 1024));
    let st = srv
        .client
        .sign(request(&huge, raw.clone(), "p-huge"))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");
    still_serving(&mut srv, 1, "after-huge").await;

    // As long as the message cap allows: 64 KiB of key beside a normal transaction.
    let long_base58 = format!("T{}", "z".repeat(64 * 1024));
    let long_hex = format!("0x41{}", "0".repeat(64 * 1024));
    for (i, key) in [long_base58, long_hex].iter().enumerate() {
        for evaluate in [false, true] {
            let req = request(key, raw.clone(), &format!("p-long-{i}"));
            let st = if evaluate {
                srv.client.evaluate(req).await.unwrap_err()
            } else {
                srv.client.sign(req).await.unwrap_err()
            };
            assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
            assert_eq!(reason(&st), "bad_key_address", "{st:?}");
            assert!(
                st.message().contains("address_too_long"),
                "{}",
                st.message()
            );
            assert!(
                st.message().len() < 512,
                "{} bytes of message",
                st.message().len()
            );
            assert!(st.metadata().get("audit-sequence").is_some(), "not audited");
        }
    }
    still_serving(&mut srv, 2, "after-long").await;
    srv.stop();

    let refused = s.records_with("bad_key_address");
    assert_eq!(refused.len(), 4);
    for r in &refused {
        let key = field(r, "key");
        assert!(key.starts_with("refused: 65"), "{key}");
        assert!(
            key.len() < 200,
            "{} bytes of key in the audit record",
            key.len()
        );
        assert!(field(r, "message").len() < 512);
    }
    s.assert_audit_verifies();
}

/// The issue's disk filler: Evaluate calls with huge payout ids. A 4 MiB id is over the
/// message cap (refused by gRPC, nothing written); ids as large as the cap lets through are
/// refused `bad_payout_id` and recorded as a bounded description, so a hundred of them grow
/// the ledger by a small fraction of what they carried.
#[tokio::test]
async fn oversized_payout_ids_write_only_bounded_audit_bytes() {
    let s = setup();
    let mut srv = s.start().await;
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).raw();

    let st = srv
        .client
        .evaluate(request(KEY1, raw.clone(), &"p".repeat(4 * 1024 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");
    still_serving(&mut srv, 1, "after-4mib").await;

    // The ledger's size on disk: its file, or its tables on the PostgreSQL run.
    let ledger_bytes =
        || -> u64 {
            match &s.pg {
            None => std::fs::metadata(s.data_dir.join("ledger.redb")).unwrap().len(),
            Some(pg) => pg
                .psql(
                    "ledger",
                    "SELECT pg_total_relation_size('audit') + pg_total_relation_size('entries')",
                )
                .parse()
                .unwrap(),
        }
        };
    let before = ledger_bytes();
    const CALLS: usize = 100;
    let id = "p".repeat(64 * 1024);
    for _ in 0..CALLS {
        let st = srv
            .client
            .evaluate(request(KEY1, raw.clone(), &id))
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
        assert_eq!(reason(&st), "bad_payout_id", "{st:?}");
        assert!(st.message().len() < 512);
    }
    let grown = ledger_bytes().saturating_sub(before);
    let carried = (CALLS * id.len()) as u64;
    assert!(
        grown < carried / 4,
        "the ledger grew by {grown} bytes for {carried} bytes of refused payout ids"
    );
    still_serving(&mut srv, 2, "after-long-ids").await;
    srv.stop();

    let refused = s.records_with("bad_payout_id");
    assert_eq!(refused.len(), CALLS);
    for r in &refused {
        let id = field(r, "payout_id");
        assert!(id.starts_with("refused: 65536 bytes, sha256 "), "{id}");
        assert!(
            id.len() < 200,
            "{} bytes of payout id in the audit record",
            id.len()
        );
    }
    let record_bytes: usize = refused.iter().map(|r| r.to_string().len()).sum();
    assert!(
        record_bytes < CALLS * 2048,
        "{record_bytes} bytes of audit records"
    );
}

/// Item 8 on the real binary: sign, freeze the key by a reload (SIGHUP), ask for the same
/// txid again: refused `frozen` and audited, the stored signature not returned.
#[tokio::test]
async fn a_freeze_by_sighup_stops_replays() {
    let s = setup();
    let mut srv = s.start().await;
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).raw();
    let signed = srv
        .client
        .sign(request(KEY1, raw.clone(), "p-1"))
        .await
        .expect("signed")
        .into_inner();
    let replay = srv
        .client
        .sign(request(KEY1, raw.clone(), "p-1"))
        .await
        .expect("replayed")
        .into_inner();
    assert!(replay.replayed);

    let frozen = policy().replacen(
        "label = \"hot 1\"\n",
        "label = \"hot 1\"\nfrozen = true\n",
        1,
    );
    assert_ne!(frozen, policy());
    std::fs::write(&s.policy, &frozen).unwrap();
    let before = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .hash;
    srv.signal("HUP");
    for _ in 0..200 {
        let now = srv
            .client
            .get_policy(GetPolicyRequest {})
            .await
            .unwrap()
            .into_inner()
            .hash;
        if now != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for evaluate in [false, true] {
        let req = request(KEY1, raw.clone(), "p-1");
        if evaluate {
            let d = srv
                .client
                .evaluate(req)
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            assert!(!d.allowed);
            assert_eq!(d.reason_code, "frozen", "{}", d.message);
        } else {
            let st = srv.client.sign(req).await.unwrap_err();
            assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
            assert_eq!(reason(&st), "frozen", "{st:?}");
            assert!(st.metadata().get("audit-sequence").is_some(), "not audited");
            assert!(!st.message().contains(&hex::encode(&signed.signature)));
        }
    }
    srv.stop();
    let records = s.audit_records();
    let txid = hex::encode(&signed.txid);
    let frozen_replays = records
        .iter()
        .filter(|r| field(r, "reason_code") == "frozen" && field(r, "txid") == txid)
        .count();
    assert_eq!(
        frozen_replays, 2,
        "Sign and Evaluate of the frozen replay audited"
    );
}

/// A flood of Evaluate calls (or of refused requests) is capped by count, long before its
/// bytes would trip the byte budget: with `unsigned_per_second = 2` and a burst of 20, the
/// 21st Evaluate in a burst is refused RESOURCE_EXHAUSTED (`unsigned_rate_exceeded`), audited
/// once for the episode, the rest counted in the metrics and a warning logged; signatures do
/// not use the rate, and once it has refilled the caller is served again.
#[tokio::test]
async fn a_flood_of_evaluate_calls_is_capped_by_count_counted_and_logged() {
    let s = setup();
    let port = free_loopback_port();
    s.write_config(&format!(
        "{}[audit_budget]\nunsigned_per_second = 2\nunsigned_burst = 20\n\
         [metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        s.keystore_section()
    ));
    let mut srv = s.start().await;
    // Signatures are not charged to the rate: 25 of them leave all of it.
    for n in 1..=25u16 {
        srv.client
            .sign(request(
                KEY1,
                Tx::trx(KEY1, dest(0xa1), 1).nonce(n).raw(),
                &format!("s-{n}"),
            ))
            .await
            .expect("signs within the rate");
    }
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).nonce(999).raw();
    let mut admitted = 0;
    let first = loop {
        match srv.client.evaluate(request(KEY1, raw.clone(), "e")).await {
            Ok(_) => admitted += 1,
            Err(st) => break st,
        }
        assert!(admitted <= 20, "more Evaluate answers than the burst");
    };
    // Its refill (2 a second) may admit one more while the burst is spent.
    assert!((20..=21).contains(&admitted), "{admitted} admitted");
    assert_eq!(first.code(), Code::ResourceExhausted, "{first:?}");
    assert_eq!(reason(&first), "unsigned_rate_exceeded", "{first:?}");
    assert!(
        first.metadata().get("audit-sequence").is_some(),
        "first refusal audited"
    );
    for _ in 0..30 {
        let st = srv
            .client
            .evaluate(request(KEY1, raw.clone(), "e"))
            .await
            .expect_err("still over the rate");
        assert_eq!(reason(&st), "unsigned_rate_exceeded", "{st:?}");
        assert!(
            st.metadata().get("audit-sequence").is_none(),
            "only counted"
        );
    }
    let page = common::scrape::page(port);
    let unaudited = common::scrape::sample(
        &page,
        r#"tron_signer_requests_refused_unaudited_total{code="unsigned_rate_exceeded"}"#,
    );
    assert!(unaudited >= 30.0, "{unaudited}\n{page}");
    let logged = "unsigned_rate_exceeded: caller over its budget";
    for _ in 0..200 {
        if srv.log_text().contains(logged) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(srv.log_text().contains(logged), "{}", srv.log_text());

    // Refilled after a second: served again.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    srv.client
        .evaluate(request(KEY1, raw.clone(), "e"))
        .await
        .expect("served again once the rate refilled");
    srv.stop();
    let over = s.records_with("unsigned_rate_exceeded");
    assert_eq!(over.len(), 1, "one audit record for the episode: {over:?}");
}

/// `[audit_budget]` in signer.toml sets the budget: with a tiny one, a caller flooding
/// refused requests is soon refused RESOURCE_EXHAUSTED (`audit_budget_exceeded`), the
/// first such refusal audited, and the signer logs it.
#[tokio::test]
async fn a_caller_over_the_configured_audit_budget_is_refused() {
    let s = setup();
    s.write_config(&format!(
        "[keystore]\npath = \"{}\"\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n\
         [audit_budget]\nbytes_per_second = 1\nburst_bytes = 4096\n",
        s.keystore.display()
    ));
    let mut srv = s.start().await;
    let raw = Tx::trx(KEY1, dest(0xa1), TRX).raw();
    let id = "p".repeat(64 * 1024);
    let mut refused_bad_id = 0;
    let st = loop {
        let st = srv
            .client
            .evaluate(request(KEY1, raw.clone(), &id))
            .await
            .unwrap_err();
        if reason(&st) != "bad_payout_id" {
            break st;
        }
        refused_bad_id += 1;
        assert!(refused_bad_id < 100, "the budget never ran out");
    };
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert_eq!(reason(&st), "audit_budget_exceeded", "{st:?}");
    assert!(
        st.metadata().get("audit-sequence").is_some(),
        "first refusal audited"
    );
    let st = srv
        .client
        .evaluate(request(KEY1, raw.clone(), "p-valid"))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "audit_budget_exceeded", "{st:?}");
    assert!(
        st.metadata().get("audit-sequence").is_none(),
        "only counted"
    );
    for _ in 0..200 {
        if srv
            .log_text()
            .contains("audit_budget_exceeded: caller over its budget")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        srv.log_text()
            .contains("audit_budget_exceeded: caller over its budget"),
        "{}",
        srv.log_text()
    );
    srv.stop();
    // The signer's own record of the policy it started with is not the caller's.
    let records: Vec<_> = s
        .audit_records()
        .into_iter()
        .filter(|r| r["method"] != "Start")
        .collect();
    assert_eq!(
        records.len(),
        refused_bad_id + 1,
        "the refusals admitted and the first over budget; the rest wrote nothing"
    );
}
