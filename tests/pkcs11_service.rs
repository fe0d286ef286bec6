//! The real `tron-signer` binary with a key inside a SoftHSM2 token: `keys pkcs11 generate` and
//! `keys pkcs11 list`, then `serve` with a `[pkcs11]` config signing TRX and USDT
//! payouts through the full gRPC path (policy, ledger, audit), checked by recovery and by
//! TronWeb and tronpy; faults through the running service (token directory moved away and
//! back) and at startup (wrong PIN, missing token, missing module).
//!
//! Each test has its own token directory and SOFTHSM2_CONF, given to the spawned
//! processes only. Needs the Debian package `softhsm2` (scripts/test.sh installs it).

mod common;

use std::process::{Command, Output};

use common::softhsm::{module_path, SoftHsm, TOKEN, USER_PIN};
use common::*;
use serde_json::json;
use tonic::Code;
use tron_proto::sig::{is_low_s, recover_address};
use tron_proto::signer::ListKeysRequest;
use tron_proto::Address;

const KEY_LABEL: &str = "hot-hsm-1";
const USDT: u128 = 1_000_000;
const TRX: u128 = 1_000_000;

fn dest_a() -> Address {
    dest(0xa1)
}

/// One HSM key: TRX and USDT to one exchange address, with room for every test here.
fn policy(key: &str) -> String {
    PolicyText::new("pkcs11 service test policy")
        .key(
            Key::new(key, "hsm hot 1", &["TRX", "USDT"])
                .window("TRX", "1h", "1000")
                .window("USDT", "24h", "1000")
                .destination(
                    Destination::new(dest_a(), "exchange", &["USDT", "TRX"])
                        .per_tx_max("USDT", "100")
                        .per_tx_max("TRX", "100"),
                ),
        )
        .text()
}

/// `tron-signer keys pkcs11 ...` against `hsm`.
fn keys_cmd(hsm: &SoftHsm, sub: &str, extra: &[&str], pin: &str) -> Output {
    Command::new(BIN)
        .args(["keys", "pkcs11", sub])
        .args(hsm.cli_args())
        .args(extra)
        .envs(hsm.env(pin))
        .output()
        .expect("run tron-signer keys")
}

/// Generates the key with the CLI, lists it, and prepares a config that serves it.
fn setup_with_key(hsm: &SoftHsm) -> (Setup, String) {
    let out = keys_cmd(hsm, "generate", &["--label", KEY_LABEL], USER_PIN);
    assert!(
        out.status.success(),
        "keys generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let parsed: Address = address.parse().expect("generate prints a Tron address");

    let out = keys_cmd(hsm, "list", &[], USER_PIN);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let line = format!(
        "{address}\t{KEY_LABEL}\t{}\tcan-sign",
        hex::encode(parsed.evm_bytes())
    );
    assert!(text.lines().any(|l| l == line), "keys list: {text}");
    let out = keys_cmd(hsm, "list", &["--json"], USER_PIN);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["address"], address.as_str());
    assert_eq!(v[0]["label"], KEY_LABEL);
    assert_eq!(v[0]["can_sign"], true);

    // A second key with the same label is refused, so label selectors stay unambiguous.
    let out = keys_cmd(hsm, "generate", &["--label", KEY_LABEL], USER_PIN);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pkcs11_label_exists"));

    let mut setup = Setup::bare(&policy(&address));
    setup.write_config(&hsm.config_section(&[KEY_LABEL]));
    setup.replace_env(hsm.env(USER_PIN));
    (setup, address)
}

async fn sign_ok(srv: &mut Server, key: &str, tx: Tx, payout_id: &str) -> serde_json::Value {
    let raw = tx.raw();
    let resp = srv
        .client
        .sign(request(key, raw.clone(), payout_id))
        .await
        .unwrap_or_else(|st| panic!("{payout_id} refused: {st:?}"))
        .into_inner();
    let txid = tron_proto::txid(&raw);
    assert_eq!(resp.txid, txid);
    assert_eq!(resp.signature.len(), 65);
    assert!(is_low_s(&resp.signature), "high S released");
    assert!(resp.signature[64] <= 1);
    assert_eq!(
        recover_address(&txid, &resp.signature).expect("recovers"),
        addr(key)
    );
    let d = resp.decision.expect("decision");
    assert!(d.allowed && d.audit_sequence > 0);
    json!({ "txid": hex::encode(txid), "signature": hex::encode(&resp.signature), "owner": key })
}

#[tokio::test]
async fn hsm_key_signs_trx_and_usdt_through_grpc() {
    let hsm = SoftHsm::new();
    let (setup, key) = setup_with_key(&hsm);
    let mut srv = setup.start().await;
    let keys = srv
        .client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list keys")
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].address, key);
    assert_eq!(keys[0].backend, "pkcs11");
    assert_eq!(keys[0].label, KEY_LABEL);

    let mut signed = Vec::new();
    for i in 0..6u16 {
        let tx = if i % 2 == 0 {
            Tx::usdt(&key, dest_a(), (u128::from(i) + 1) * USDT)
        } else {
            Tx::trx(&key, dest_a(), ((u128::from(i) + 1) * TRX) as u64)
        };
        signed.push(sign_ok(&mut srv, &key, tx.nonce(i), &format!("hsm-{i}")).await);
    }
    // Over the per-transaction limit: refused by policy before the token is asked.
    let st = srv
        .client
        .sign(request(
            &key,
            Tx::usdt(&key, dest_a(), 101 * USDT).raw(),
            "hsm-too-big",
        ))
        .await
        .expect_err("over per-tx max");
    assert_eq!(st.code(), Code::PermissionDenied);
    srv.stop();
    setup.assert_audit_verifies();

    let env = common::interop::setup();
    common::interop::verify_with_both(&env, &signed);
}

#[tokio::test]
async fn token_moved_away_is_unavailable_and_recovers_without_restart() {
    let hsm = SoftHsm::new();
    let (setup, key) = setup_with_key(&hsm);
    let mut srv = setup.start().await;
    sign_ok(&mut srv, &key, Tx::trx(&key, dest_a(), 1), "before").await;

    let aside = hsm.dir.path().join("tokens-aside");
    std::fs::rename(&hsm.tokens, &aside).expect("move token dir away");
    let pending = Tx::usdt(&key, dest_a(), 2 * USDT).nonce(7);
    for attempt in 0..3 {
        let st = srv
            .client
            .sign(request(&key, pending.raw(), "during-outage"))
            .await
            .expect_err("no token, no signature");
        assert_eq!(st.code(), Code::Unavailable, "attempt {attempt}: {st:?}");
        let code = reason(&st);
        assert!(code.starts_with("pkcs11_"), "reason code {code:?}");
        eprintln!("token gone, attempt {attempt}: {}", st.message());
        assert!(
            st.metadata().get("audit-sequence").is_some(),
            "refusal audited"
        );
    }
    std::fs::rename(&aside, &hsm.tokens).expect("move token dir back");

    // The same payout is retried and now signed: the failed attempts reserved nothing.
    let sig = sign_ok(&mut srv, &key, pending, "during-outage").await;
    sign_ok(&mut srv, &key, Tx::trx(&key, dest_a(), 1).nonce(8), "after").await;
    assert!(
        srv.child.try_wait().expect("status").is_none(),
        "server restarted"
    );
    srv.stop();
    setup.assert_audit_verifies();
    assert!(sig["signature"].as_str().is_some());
}

#[test]
fn startup_faults_exit_with_specific_errors() {
    let hsm = SoftHsm::new();
    let (mut setup, _key) = setup_with_key(&hsm);

    // Wrong PIN: a specific error, exit non-zero, the PIN never printed.
    let wrong_pin = "98765432";
    setup.replace_env(hsm.env(wrong_pin));
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("pkcs11_pin_incorrect"), "{out}");
    eprintln!("wrong PIN:\n{out}");
    assert!(!out.contains(wrong_pin), "PIN leaked: {out}");
    assert!(!setup.socket.exists(), "nothing served");

    // One wrong attempt did not lock the token: the right PIN still starts it (checked
    // again below through the missing-key case, which gets past login).
    setup.replace_env(hsm.env(USER_PIN));
    let section = hsm.config_section(&[KEY_LABEL]);

    // Token label that no slot has.
    setup.write_config(&section.replace(
        &format!("token_label = \"{TOKEN}\""),
        "token_label = \"no-such-token\"",
    ));
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("pkcs11_token_not_found"), "{out}");

    // Module that does not exist.
    setup.write_config(&section.replace(
        &module_path().display().to_string(),
        "/nonexistent/libpkcs11-nope.so",
    ));
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("pkcs11_module_load"), "{out}");

    // A key the config names but the token lacks (after a successful login).
    setup.write_config(&hsm.config_section(&[KEY_LABEL, "not-on-token"]));
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("pkcs11_key_not_found"), "{out}");

    // PIN variable unset.
    setup.replace_env(hsm.env(USER_PIN));
    setup.env.retain(|(k, _)| k != common::softhsm::PIN_VAR);
    setup.write_config(&section);
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("secret_env_missing"), "{out}");

    // Neither [keystore] nor [pkcs11].
    setup.write_config("");
    let (status, out) = setup.serve_until_exit();
    assert!(!status.success());
    assert!(out.contains("config_no_key_source"), "{out}");
}
