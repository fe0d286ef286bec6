//! The real `tron-signer serve` binary over gRPC on a Unix socket: allowed payouts, every
//! refusal reason, velocity across restarts, idempotent retries, payout-id reuse, startup
//! and reload failures, and the audit chain behind all of it.

mod common;

use common::*;
use secrecy::SecretBox;
use tonic::Code;
use tron_proto::sig::{is_low_s, recover_address};
use tron_proto::signer::{GetPolicyRequest, ListKeysRequest, ReadPolicyTextRequest};
use tron_proto::Address;
use tron_signer::keys::SoftKey;

const KEY3_MEMO_SECRET: &str = KEY3_SECRET;
/// In the keystore but not in the policy.
const UNPOLICIED_SECRET: &str = "0000000000000000000000000000000000000000000000000000000000000003";

fn address_of(secret: &str) -> String {
    let mut b = [0u8; 32];
    hex::decode_to_slice(secret, &mut b).expect("hex");
    SoftKey::from_secret(&SecretBox::new(Box::new(b)))
        .expect("key")
        .address()
        .to_base58()
}

fn dest_a() -> Address {
    dest(0xa1)
}
fn dest_b() -> Address {
    dest(0xb2)
}
/// In the policy only: never loaded.
fn policy_only_key() -> Address {
    dest(0x55)
}

/// USDT: 1h 100 / 24h 150 per key; A: per-tx 60, 24h 80; B: per-tx 60.
fn policy() -> String {
    // The policy's own keys each send at most 1 TRX to A.
    let exchange_1_trx = || Destination::new(dest_a(), "exchange", &["TRX"]).per_tx_max("TRX", "1");
    PolicyText::new("service test policy")
        .key(
            Key::new(KEY1, "hot 1", &["TRX", "USDT"])
                .window("TRX", "1h", "100")
                .window("TRX", "24h", "200")
                .window("USDT", "1h", "100")
                .window("USDT", "24h", "150")
                .destination(
                    Destination::new(dest_a(), "exchange", &["USDT", "TRX"])
                        .per_tx_max("USDT", "60")
                        .per_tx_max("TRX", "50")
                        .window("USDT", "24h", "80"),
                )
                .destination(
                    Destination::new(dest_b(), "treasury", &["USDT"]).per_tx_max("USDT", "60"),
                ),
        )
        .key(
            Key::new(KEY2, "frozen key", &["TRX"])
                .setting("frozen = true")
                .window("TRX", "1h", "10")
                .destination(exchange_1_trx()),
        )
        .key(
            Key::new(address_of(KEY3_MEMO_SECRET), "memo key", &["TRX"])
                .setting("memo_allowed = true")
                .setting("max_memo_len = 64")
                .window("TRX", "1h", "10")
                .destination(exchange_1_trx()),
        )
        .key(
            Key::new(policy_only_key(), "not loaded", &["TRX"])
                .window("TRX", "1h", "10")
                .destination(exchange_1_trx()),
        )
        .text()
}

fn setup() -> Setup {
    Setup::new(
        &[
            ("hot 1", KEY1_SECRET),
            ("frozen", KEY2_SECRET),
            ("memo", KEY3_MEMO_SECRET),
            ("unpolicied", UNPOLICIED_SECRET),
        ],
        &policy(),
    )
}

const USDT: u128 = 1_000_000;
const TRX: u128 = 1_000_000;

#[tokio::test]
async fn allowed_trx_and_usdt_payouts_recover_to_the_owner() {
    let s = setup();
    let mut srv = s.start().await;
    // The process holding the keys allows no core dump (soft and hard limit 0).
    #[cfg(target_os = "linux")]
    {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", srv.child.id())).unwrap();
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap();
        let fields: Vec<&str> = core.split_whitespace().collect();
        assert_eq!(fields[4..6], ["0", "0"], "{core}");
    }
    let keys = srv
        .client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list keys")
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 4);
    assert!(keys
        .iter()
        .any(|k| k.address == KEY1 && k.backend == "soft" && k.label == "hot 1"));

    for (i, tx) in [
        Tx::usdt(KEY1, dest_a(), 10 * USDT),
        Tx::trx(KEY1, dest_a(), (5 * TRX) as u64),
    ]
    .into_iter()
    .enumerate()
    {
        let raw = tx.raw();
        let resp = srv
            .client
            .sign(request(KEY1, raw.clone(), &format!("payout-{i}")))
            .await
            .expect("allowed")
            .into_inner();
        let txid = tron_proto::txid(&raw);
        assert_eq!(resp.txid, txid);
        assert_eq!(resp.signature.len(), 65);
        assert!(is_low_s(&resp.signature));
        assert_eq!(recover_address(&txid, &resp.signature).unwrap(), addr(KEY1));
        assert!(!resp.replayed);
        let d = resp.decision.expect("decision");
        assert!(d.allowed);
        assert!(d.audit_sequence > 0);
        assert!(!d.rule.is_empty());
        // The signed transaction carries the exact raw bytes and the signature.
        let signed: tron_proto::pb::Transaction =
            prost::Message::decode(&resp.signed_transaction[..]).expect("signed tx decodes");
        assert_eq!(signed.signature, vec![resp.signature.clone()]);
        assert!(resp
            .signed_transaction
            .windows(raw.len())
            .any(|w| w == &raw[..]));
    }
    let p = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.text, policy());
    assert_eq!(p.version, 1);
    assert_eq!(p.hash.len(), 64);
    srv.stop();
    s.assert_audit_verifies();
}

/// Every refusal reason over gRPC: status code, reason-code metadata, and a message.
#[tokio::test]
async fn every_refusal_reason() {
    let s = setup();
    let mut srv = s.start().await;
    let now = now_ms();
    let k3 = address_of(KEY3_MEMO_SECRET);
    let unpolicied = address_of(UNPOLICIED_SECRET);
    let other_token = dest(0x77);
    let mut approve = Tx::usdt(KEY1, dest_a(), USDT).raw();
    let sel = approve
        .windows(4)
        .position(|w| w == [0xa9, 0x05, 0x9c, 0xbb])
        .unwrap();
    approve[sel..sel + 4].copy_from_slice(&[0x09, 0x5e, 0xa7, 0xb3]);

    let cases: Vec<(&str, Code, String, Vec<u8>, &str)> = vec![
        (
            "bad_key_address",
            Code::InvalidArgument,
            "Tnotanaddress".into(),
            Tx::usdt(KEY1, dest_a(), USDT).raw(),
            "p1",
        ),
        (
            "bad_payout_id",
            Code::InvalidArgument,
            KEY1.into(),
            Tx::usdt(KEY1, dest_a(), USDT).raw(),
            "has space",
        ),
        (
            "trc20_selector",
            Code::InvalidArgument,
            KEY1.into(),
            approve,
            "p2",
        ),
        (
            "no_contract",
            Code::InvalidArgument,
            KEY1.into(),
            vec![],
            "p3",
        ),
        (
            "key_not_loaded",
            Code::PermissionDenied,
            policy_only_key().to_base58(),
            Tx::trx(&policy_only_key().to_base58(), dest_a(), 1).raw(),
            "p4",
        ),
        (
            "unknown_key",
            Code::PermissionDenied,
            unpolicied.clone(),
            Tx::trx(&unpolicied, dest_a(), 1).raw(),
            "p5",
        ),
        (
            "owner_mismatch",
            Code::PermissionDenied,
            KEY1.into(),
            Tx::trx(&k3, dest_a(), 1).raw(),
            "p6",
        ),
        (
            "frozen",
            Code::PermissionDenied,
            KEY2.into(),
            Tx::trx(KEY2, dest_a(), 1).raw(),
            "p7",
        ),
        (
            "asset_not_allowed",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                token: Some(other_token),
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p8",
        ),
        (
            "destination_not_allowed",
            Code::PermissionDenied,
            KEY1.into(),
            Tx::usdt(KEY1, dest(0x66), USDT).raw(),
            "p9",
        ),
        (
            "destination_asset_not_allowed",
            Code::PermissionDenied,
            KEY1.into(),
            Tx::trx(KEY1, dest_b(), 1).raw(),
            "p10",
        ),
        (
            "over_per_tx_max",
            Code::PermissionDenied,
            KEY1.into(),
            Tx::usdt(KEY1, dest_a(), 60 * USDT + 1).raw(),
            "p11",
        ),
        (
            "fee_limit_too_high",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                fee_limit: 50_000_001,
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p12",
        ),
        (
            "expiration_too_far",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                expiration: now + 12 * 60_000,
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p13",
        ),
        (
            "expired",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                expiration: now - 5 * 60_000,
                timestamp: now - 6 * 60_000,
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p14",
        ),
        (
            "timestamp_in_future",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                timestamp: now + 5 * 60_000,
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p15",
        ),
        (
            "memo_not_allowed",
            Code::PermissionDenied,
            KEY1.into(),
            Tx {
                memo: b"hi".to_vec(),
                ..Tx::usdt(KEY1, dest_a(), USDT)
            }
            .raw(),
            "p16",
        ),
        (
            "memo_too_long",
            Code::PermissionDenied,
            k3.clone(),
            Tx {
                memo: vec![b'x'; 65],
                ..Tx::trx(&k3, dest_a(), 1)
            }
            .raw(),
            "p17",
        ),
    ];
    for (code, status_code, key, raw, payout) in &cases {
        for evaluate in [true, false] {
            let req = request(key, raw.clone(), payout);
            let res = if evaluate {
                srv.client.evaluate(req).await.map(|r| {
                    let d = r.into_inner().decision.expect("decision");
                    assert!(!d.allowed, "{code}: Evaluate allowed");
                    assert_eq!(d.reason_code, *code, "Evaluate {code}: {}", d.message);
                    assert!(!d.message.is_empty());
                })
            } else {
                srv.client
                    .sign(req)
                    .await
                    .map(|_| panic!("{code}: Sign allowed"))
            };
            match res {
                Ok(()) => assert!(evaluate && *status_code == Code::PermissionDenied),
                Err(st) => {
                    assert_eq!(st.code(), *status_code, "{code}: {st:?}");
                    assert_eq!(reason(&st), *code, "{st:?}");
                    assert!(st.message().len() > code.len() + 3, "{st:?}");
                    assert!(
                        st.metadata().get("audit-sequence").is_some(),
                        "{code} not audited"
                    );
                }
            }
        }
    }

    // Windows: destination A's 24h USDT limit is 80, the key's 1h limit 100.
    let ok = |tx: Tx, id: &str| request(KEY1, tx.raw(), id);
    srv.client
        .sign(ok(Tx::usdt(KEY1, dest_a(), 50 * USDT), "w1"))
        .await
        .expect("50 to A");
    let st = srv
        .client
        .sign(ok(Tx::usdt(KEY1, dest_a(), 40 * USDT).nonce(1), "w2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "over_destination_window", "{st:?}");
    srv.client
        .sign(ok(Tx::usdt(KEY1, dest_b(), 45 * USDT), "w3"))
        .await
        .expect("45 to B");
    let st = srv
        .client
        .sign(ok(Tx::usdt(KEY1, dest_b(), 6 * USDT), "w4"))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "over_key_window", "{st:?}");
    assert!(st.message().contains("USDT"), "{}", st.message());
    srv.client
        .sign(ok(Tx::usdt(KEY1, dest_b(), 5 * USDT), "w5"))
        .await
        .expect("exactly at the limit");

    // Payout-id reuse and txid reuse.
    let first = Tx::trx(KEY1, dest_a(), 1);
    srv.client
        .sign(ok(first.clone(), "dup"))
        .await
        .expect("first");
    let st = srv
        .client
        .sign(ok(first.clone().nonce(9), "dup"))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "payout_in_flight", "{st:?}");
    assert_eq!(st.code(), Code::PermissionDenied);
    let st = srv.client.sign(ok(first, "dup-2")).await.unwrap_err();
    assert_eq!(reason(&st), "txid_reused", "{st:?}");

    srv.stop();
    // Every request above is in the audit log, allowed and refused alike.
    let (export, text) = s.audit_export();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&export).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "an export is the owner's alone");
    }
    for (code, ..) in &cases {
        let n = text
            .lines()
            .filter(|l| l.contains(&format!("\"reason_code\":\"{code}\"")))
            .count();
        assert_eq!(
            n, 2,
            "{code} should be audited once for Evaluate and once for Sign"
        );
    }
    s.assert_audit_verifies();
}

#[tokio::test]
async fn velocity_limits_hold_across_restart() {
    let s = setup();
    let mut srv = s.start().await;
    for (i, (to, amount)) in [(dest_b(), 60), (dest_a(), 30)].into_iter().enumerate() {
        srv.client
            .sign(request(
                KEY1,
                Tx::usdt(KEY1, to, amount * USDT).raw(),
                &format!("v{i}"),
            ))
            .await
            .expect("within limits");
    }
    srv.stop();
    let mut srv = s.start().await;
    let st = srv
        .client
        .sign(request(
            KEY1,
            Tx::usdt(KEY1, dest_b(), 11 * USDT).raw(),
            "v3",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "over_key_window", "{st:?}");
    // Kill -9 mid-life: what was signed still counts after the crash.
    srv.client
        .sign(request(
            KEY1,
            Tx::usdt(KEY1, dest_b(), 10 * USDT).raw(),
            "v4",
        ))
        .await
        .expect("exactly at the limit");
    srv.signal("KILL");
    drop(srv);
    let mut srv = s.start().await;
    let st = srv
        .client
        .sign(request(KEY1, Tx::usdt(KEY1, dest_b(), 1).raw(), "v5"))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "over_key_window", "{st:?}");
    srv.stop();
}

#[tokio::test]
async fn retries_are_idempotent_and_not_counted_twice() {
    let s = setup();
    let mut srv = s.start().await;
    let raw = Tx::usdt(KEY1, dest_b(), 60 * USDT).raw();
    let first = srv
        .client
        .sign(request(KEY1, raw.clone(), "r1"))
        .await
        .expect("first")
        .into_inner();
    for _ in 0..3 {
        let again = srv
            .client
            .sign(request(KEY1, raw.clone(), "r1"))
            .await
            .expect("retry")
            .into_inner();
        assert!(again.replayed);
        assert_eq!(again.signature, first.signature);
        assert_eq!(again.signed_transaction, first.signed_transaction);
    }
    srv.stop();
    let mut srv = s.start().await;
    let again = srv
        .client
        .sign(request(KEY1, raw.clone(), "r1"))
        .await
        .expect("retry after restart")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.signature, first.signature);
    // 60 + 40 = the 1h limit of 100: allowed only if the retries were not counted.
    srv.client
        .sign(request(
            KEY1,
            Tx::usdt(KEY1, dest_b(), 40 * USDT).raw(),
            "r2",
        ))
        .await
        .expect("retries must not consume the limit");
    srv.stop();
}

#[tokio::test]
async fn wrong_passphrase_refuses_to_start() {
    let s = setup();
    let err = match s.start_with_passphrase("not the passphrase").await {
        Ok(_) => panic!("started with a wrong passphrase"),
        Err(log) => log,
    };
    assert!(err.to_lowercase().contains("passphrase"), "{err}");
    assert!(
        !err.contains("not the passphrase"),
        "the secret leaked into the log"
    );
}

#[tokio::test]
async fn malformed_policy_is_refused_at_start_and_at_reload() {
    let s = setup();
    let good = policy();
    let bad = good.replace("max = \"150\"", "max = \"fifty\"");
    assert_ne!(bad, good);
    let bad_line = bad.lines().position(|l| l.contains("fifty")).unwrap() + 1;
    std::fs::write(&s.policy, &bad).unwrap();
    let log = match s.start_with_passphrase(PASSPHRASE).await {
        Ok(_) => panic!("started with a malformed policy"),
        Err(log) => log,
    };
    assert!(log.contains(&format!("policy.toml:{bad_line}")), "{log}");

    // Start on the good policy, then break the file and send SIGHUP.
    std::fs::write(&s.policy, &good).unwrap();
    let mut srv = s.start().await;
    let before = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .hash;
    std::fs::write(&s.policy, &bad).unwrap();
    srv.signal("HUP");
    wait_for_log(&srv, "policy reload refused").await;
    let after = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .hash;
    assert_eq!(
        before, after,
        "a bad file must leave the old policy in force"
    );
    // The old policy still signs.
    srv.client
        .sign(request(
            KEY1,
            Tx::usdt(KEY1, dest_a(), USDT).raw(),
            "after-bad-reload",
        ))
        .await
        .expect("old policy still in force");

    // A good new file takes effect: freeze everything.
    let frozen = good.replacen("frozen = false", "frozen = true", 1);
    std::fs::write(&s.policy, &frozen).unwrap();
    srv.signal("HUP");
    wait_for_log(&srv, "policy reloaded").await;
    let p = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(p.hash, before);
    assert_eq!(p.text, frozen);
    assert_eq!(p.text_size, frozen.len() as u64);
    assert!(!p.text_omitted);
    // ReadPolicyText serves the policy in force, and any earlier one by its hash.
    let (hash, text) = read_policy_text(&mut srv, "").await.unwrap();
    assert_eq!(
        (hash.as_str(), text.as_slice()),
        (p.hash.as_str(), frozen.as_bytes())
    );
    let (hash, text) = read_policy_text(&mut srv, &before).await.unwrap();
    assert_eq!(
        (hash.as_str(), text.as_slice()),
        (before.as_str(), good.as_bytes())
    );
    let never = hex::encode([0x5a; 32]);
    let st = read_policy_text(&mut srv, &never).await.unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    assert_eq!(reason(&st), "policy_not_archived", "{st:?}");
    let not_hex = "zz".repeat(32);
    for bad in ["not hex", &before[..62], &format!("{before}00"), &not_hex] {
        let st = read_policy_text(&mut srv, bad).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{bad}: {st:?}");
        assert_eq!(reason(&st), "policy_hash_invalid", "{st:?}");
    }
    let st = srv
        .client
        .sign(request(
            KEY1,
            Tx::usdt(KEY1, dest_a(), USDT).nonce(3).raw(),
            "after-freeze",
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "frozen", "{st:?}");

    // Both policies that were in force are archived by hash under the data directory, byte
    // for byte; the refused file is not. GetPolicy serves from the archive and refuses to
    // serve an edited copy.
    let archived = |hash: &str| s.data_dir.join("policies").join(format!("{hash}.toml"));
    assert_eq!(std::fs::read_to_string(archived(&before)).unwrap(), good);
    assert_eq!(std::fs::read_to_string(archived(&p.hash)).unwrap(), frozen);
    let count = std::fs::read_dir(s.data_dir.join("policies"))
        .unwrap()
        .count();
    assert_eq!(count, 2, "only policies put in force are archived");
    std::fs::write(
        archived(&p.hash),
        frozen.replace("frozen = true", "frozen = false"),
    )
    .unwrap();
    let st = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::Internal);
    assert!(st.message().contains("[policy_archive]"), "{st:?}");
    assert!(st.message().contains("does not match its hash"), "{st:?}");
    let data_dir = path_str(&s.data_dir).to_owned();
    for asked in ["", p.hash.as_str()] {
        let st = read_policy_text(&mut srv, asked).await.unwrap_err();
        assert_eq!(st.code(), Code::Internal, "{st:?}");
        assert_eq!(reason(&st), "policy_archive", "{st:?}");
        assert!(st.message().contains("does not match its hash"), "{st:?}");
        assert!(!st.message().contains(&data_dir), "no server paths: {st:?}");
    }
    // The archive of the policy in force gone: an internal fault, not "never in force".
    std::fs::remove_file(archived(&p.hash)).unwrap();
    let st = read_policy_text(&mut srv, &p.hash).await.unwrap_err();
    assert_eq!(st.code(), Code::Internal, "{st:?}");
    assert_eq!(reason(&st), "policy_archive", "{st:?}");
    let st = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .unwrap_err();
    assert_eq!(reason(&st), "policy_archive", "{st:?}");
    // An earlier policy's archive edited, or gone: refused, never served.
    std::fs::write(archived(&before), good.replace("hot 1", "hot one")).unwrap();
    let st = read_policy_text(&mut srv, &before).await.unwrap_err();
    assert_eq!(st.code(), Code::Internal, "{st:?}");
    assert_eq!(reason(&st), "policy_archive", "{st:?}");
    assert!(st.message().contains("does not match its hash"), "{st:?}");
    std::fs::remove_file(archived(&before)).unwrap();
    let st = read_policy_text(&mut srv, &before).await.unwrap_err();
    assert_eq!(st.code(), Code::NotFound, "{st:?}");
    assert_eq!(reason(&st), "policy_not_archived", "{st:?}");
    assert!(!st.message().contains(&data_dir), "no server paths: {st:?}");
    srv.stop();

    let (_, text) = s.audit_export();
    assert!(
        text.contains("\"reason_code\":\"policy_invalid\""),
        "refused reload not audited"
    );
    assert!(
        text.contains("\"reason_code\":\"policy_reloaded\""),
        "reload not audited"
    );
}

/// `ReadPolicyText`, its chunks put together: (hash, text bytes). Checks that every chunk
/// names the same hash and none is over the documented chunk size.
async fn read_policy_text(
    srv: &mut Server,
    hash: &str,
) -> Result<(String, Vec<u8>), tonic::Status> {
    let mut stream = srv
        .client
        .read_policy_text(ReadPolicyTextRequest { hash: hash.into() })
        .await?
        .into_inner();
    let (mut named, mut text) = (None::<String>, Vec::new());
    while let Some(chunk) = stream.message().await? {
        assert!(chunk.data.len() <= tron_signer::service::grpc::POLICY_TEXT_CHUNK);
        assert!(!chunk.data.is_empty(), "no empty chunks");
        match &named {
            Some(h) => assert_eq!(h, &chunk.hash, "every chunk names one hash"),
            None => named = Some(chunk.hash.clone()),
        }
        text.extend_from_slice(&chunk.data);
    }
    Ok((named.unwrap_or_default(), text))
}

/// A policy text over the 4 MiB message limit of a default gRPC client: `GetPolicy` still
/// answers (hash, name, size, text left out and said so) and `ReadPolicyText` streams the
/// exact bytes that were hashed.
#[tokio::test]
async fn large_policy_text_is_streamed_not_inlined() {
    use sha2::Digest;
    let mut text = policy();
    // The last [[key]] in the file takes these destinations.
    let label = "x".repeat(120);
    let mut n = 0u32;
    while text.len() <= tron_signer::service::grpc::MAX_INLINE_POLICY_TEXT + 100_000 {
        let [_, b1, b2, b3] = n.to_be_bytes();
        let mut evm = [0x7e; 20];
        evm[17..].copy_from_slice(&[b1, b2, b3]);
        text.push_str(&format!(
            "\n  [[key.destination]]\n  address = \"{}\"\n  label = \"{label} {n}\"\n  assets = [\"TRX\"]\n  per_tx_max = {{ TRX = \"1\" }}\n",
            Address::from_evm(evm)
        ));
        n += 1;
    }
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &text);
    let mut srv = s.start().await;
    let p = srv
        .client
        .get_policy(GetPolicyRequest {})
        .await
        .expect("GetPolicy answers under the client's default message limit")
        .into_inner();
    assert!(p.text_omitted);
    assert!(p.text.is_empty());
    assert_eq!(p.text_size, text.len() as u64);
    assert_eq!(p.name, "service test policy");
    let (hash, streamed) = read_policy_text(&mut srv, "").await.unwrap();
    assert_eq!(hash, p.hash);
    assert_eq!(streamed, text.as_bytes());
    assert_eq!(hex::encode(sha2::Sha256::digest(&streamed)), p.hash);

    // Streams nobody reads hold a copy of the text each: only so many may be open at once.
    let max = tron_signer::service::grpc::MAX_POLICY_TEXT_STREAMS;
    let mut open = Vec::new();
    for _ in 0..max {
        // Answered (so the signer holds the stream open), then never read: the text is far
        // over the client's flow-control window, so the stream cannot finish.
        let stream = srv
            .client
            .read_policy_text(ReadPolicyTextRequest::default())
            .await
            .unwrap()
            .into_inner();
        open.push(stream);
    }
    let st = srv
        .client
        .read_policy_text(ReadPolicyTextRequest::default())
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted, "{st:?}");
    assert_eq!(reason(&st), "policy_reads_busy", "{st:?}");
    // A client that goes away frees its stream.
    drop(open);
    let mut freed = false;
    for _ in 0..100 {
        if read_policy_text(&mut srv, "").await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        freed,
        "streams dropped by their client must free their slots"
    );
    srv.stop();
}

async fn wait_for_log(srv: &Server, needle: &str) {
    for _ in 0..200 {
        if srv.log_text().contains(needle) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("log never said {needle:?}:\n{}", srv.log_text());
}

/// `tron-signer audit verify` on a data directory the real service wrote, after each kind
/// of tampering, names the first bad sequence number.
#[tokio::test]
async fn audit_verify_catches_tampering_of_a_service_log() {
    if skip_on_postgres("audit_verify_catches_tampering_of_a_service_log") {
        return;
    }
    use redb::{Database, ReadableTable, TableDefinition};
    const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

    let s = setup();
    let mut srv = s.start().await;
    for i in 0..3u16 {
        srv.client
            .sign(request(
                KEY1,
                Tx::usdt(KEY1, dest_a(), USDT).nonce(i).raw(),
                &format!("t{i}"),
            ))
            .await
            .expect("allowed");
        let _ = srv
            .client
            .sign(request(
                KEY1,
                Tx::usdt(KEY1, dest(0x66), USDT).nonce(i).raw(),
                &format!("x{i}"),
            ))
            .await
            .unwrap_err();
    }
    srv.stop();
    let ok = s.run(&["audit", "verify", "--data-dir", path_str(&s.data_dir)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Record 1 is the policy put in force at the first start (policy_in_force).
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: 7 records"));

    type Tamper = fn(&mut redb::Table<u64, &[u8]>);
    let cases: [(&str, &str, Tamper); 4] = [
        ("modified", "audit_modified", |t| {
            let mut rec = t.get(3).unwrap().unwrap().value().to_vec();
            let i = rec.iter().position(|&b| b == b'x').unwrap_or(10);
            rec[i] ^= 0x01;
            t.insert(3, rec.as_slice()).unwrap();
        }),
        ("deleted", "audit_deleted", |t| {
            t.remove(3).unwrap();
        }),
        ("reordered", "audit_reordered", |t| {
            let a = t.get(3).unwrap().unwrap().value().to_vec();
            let b = t.get(4).unwrap().unwrap().value().to_vec();
            t.insert(3, b.as_slice()).unwrap();
            t.insert(4, a.as_slice()).unwrap();
        }),
        ("truncated", "audit_truncated", |t| {
            t.remove(7).unwrap();
        }),
    ];
    for (kind, code, tamper) in cases {
        let copy = s.dir.path().join(format!("tampered-{kind}"));
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(s.data_dir.join("ledger.redb"), copy.join("ledger.redb")).unwrap();
        {
            let db = Database::open(copy.join("ledger.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(AUDIT).unwrap();
                tamper(&mut t);
            }
            tx.commit().unwrap();
        }
        let out = s.run(&["audit", "verify", "--data-dir", path_str(&copy)]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{kind} not detected: {text}");
        assert!(text.contains(code), "{kind}: {text}");
        let first_bad = if kind == "truncated" { "7" } else { "3" };
        assert!(
            text.contains(&format!("record {first_bad} ")),
            "{kind} should name sequence {first_bad}: {text}"
        );
    }
}

/// `tron-signer dev` on TCP (its default) serves mutual TLS with a throwaway CA it makes in
/// its directory, runs its demo over it, and prints how to call it with grpcurl; a client
/// without the dev client certificate is refused.
#[tokio::test]
async fn dev_quickstart_on_tcp_serves_mutual_tls_with_a_throwaway_pki() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let out = std::process::Command::new(BIN)
        .args(["dev", "--exit-after-demo", "--dir"])
        .arg(&dev)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"result\":\"signed\""), "{stdout}");
    assert!(stdout.contains("destination_not_allowed"), "{stdout}");
    assert!(stderr.contains("grpcurl -cacert"), "{stderr}");
    assert!(stderr.contains("mutual TLS 1.3"), "{stderr}");
    use std::os::unix::fs::PermissionsExt;
    for key in ["dev-server.key", "dev-client.key"] {
        let mode = std::fs::metadata(dev.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is owner-only");
    }

    // Serving again from the written config: only the dev client certificate is served.
    let text = std::fs::read_to_string(dev.join("dev-ca.pem")).unwrap();
    assert!(text.contains("BEGIN CERTIFICATE"));
    let mut child = std::process::Command::new(BIN)
        .args(["dev", "--dir"])
        .arg(&dev)
        .args(["--listen", &addr])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let with_dev_cert = dev_tls_config(&dev, true);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(ch) =
            tron_proto::client::connect_tls(&addr, "localhost", with_dev_cert.clone()).await
        {
            let mut c = tron_proto::signer::signer_client::SignerClient::new(ch);
            if c.list_keys(ListKeysRequest {}).await.is_ok() {
                served = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let without = match tron_proto::client::connect_tls(
        &addr,
        "localhost",
        dev_tls_config(&dev, false),
    )
    .await
    {
        Ok(ch) => tron_proto::signer::signer_client::SignerClient::new(ch)
            .list_keys(ListKeysRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "the dev client certificate is served");
    assert!(!without, "a client without a certificate is not");
}

/// Client settings trusting the dev CA under `dev`, with the dev client certificate or none.
fn dev_tls_config(dev: &std::path::Path, with_cert: bool) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dev.join("dev-ca.pem")).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_cert {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(dev.join("dev-client.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(dev.join("dev-client.key")).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    std::sync::Arc::new(config)
}

/// The README's run command: `tron-signer dev` on embedded defaults shows one allowed and one
/// refused payout (here on a Unix socket so parallel tests cannot collide on a port).
#[test]
fn dev_quickstart_shows_one_allowed_and_one_refused_payout() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dev.sock");
    let out = std::process::Command::new(BIN)
        .args(["dev", "--exit-after-demo", "--dir"])
        .arg(dir.path().join("dev"))
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["result"], "signed");
    let sig = hex::decode(lines[0]["signature"].as_str().unwrap()).unwrap();
    let txid: [u8; 32] = hex::decode(lines[0]["txid"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(recover_address(&txid, &sig).unwrap(), addr(KEY1));
    assert_eq!(lines[1]["result"], "refused");
    assert_eq!(lines[1]["reason_code"], "destination_not_allowed");
    // A second run on the same directory reuses the keystore and ledger.
    let again = std::process::Command::new(BIN)
        .args(["dev", "--exit-after-demo", "--dir"])
        .arg(dir.path().join("dev"))
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
