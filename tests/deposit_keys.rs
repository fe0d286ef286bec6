//! Sweeps under signer policy (issue 15, item 5) on the real binary over its Unix socket:
//! an HD account made by `keys generate --hd`, a `[[deposit_account]]` naming its xpub, a gas
//! key with `gas_for`. A deposit key signs only its account's assets to the collection
//! address, and only at an index the account covers for an address it derives; a gas key
//! funds only the deposit address the request's index names; each refusal by its code.

mod common;

use common::policy::{policy_preamble_for, test_uid};
use common::*;
use tron_proto::hd::AccountXpub;
use tron_proto::sig::recover_address;
use tron_proto::signer::SignRequest;
use tron_proto::Address;

const TRX: u64 = 1_000_000;
const USDT: u128 = 1_000_000;

/// The test suite's caller: every RPC, the payout and gas keys, and (when `sweeps`) the
/// deposit account's keys.
fn callers(sweeps: bool) -> String {
    let grant = if sweeps {
        "deposit_accounts = [\"merchant deposits\"]\n"
    } else {
        ""
    };
    format!(
        r#"
[[caller]]
name = "test suite"
unix_uid = {}
rpcs = ["Sign", "Evaluate", "ListKeys", "GetPolicy", "ReadPolicyText"]
keys = ["{KEY1}", "{KEY2}"]
{grant}"#,
        test_uid()
    )
}

fn policy(xpub: &str, collection: &Address, sweeps: bool) -> String {
    let mut p = policy_preamble_for("deposit keys", "60s", &callers(sweeps));
    p.push_str(&format!(
        r#"
[[deposit_account]]
name = "merchant deposits"
xpub = "{xpub}"
first_index = 0
last_index = 999
collection = "{collection}"
assets = ["USDT", "TRX"]

[[key]]
address = "{KEY1}"
label = "payouts"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "100" }}]

  [[key.destination]]
  address = "{dest}"
  label = "treasury"
  assets = ["TRX"]
  per_tx_max = {{ TRX = "10" }}

[[key]]
address = "{KEY2}"
label = "gas"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "50" }}]
gas_for = "merchant deposits"
gas_per_tx_max = "20"
"#,
        dest = dest(9).to_base58()
    ));
    p
}

fn with_index(key: &Address, raw: Vec<u8>, payout: &str, index: u32) -> SignRequest {
    SignRequest {
        deposit_index: Some(index),
        ..request(&key.to_base58(), raw, payout)
    }
}

/// A keystore with the payout and gas keys and an HD account; returns the setup and the
/// account xpub `keys generate --hd` printed.
fn setup(sweeps: bool) -> (Setup, AccountXpub) {
    let s = Setup::new(&[("payouts", KEY1_SECRET), ("gas", KEY2_SECRET)], "");
    let out = s.run(&[
        "keys",
        "generate",
        "--hd",
        "--label",
        "merchant deposits",
        "--keystore",
        path_str(&s.keystore),
        "--passphrase-env",
        PASSPHRASE_VAR,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xpub = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let account = AccountXpub::parse(&xpub).expect("keys generate --hd prints an account xpub");
    std::fs::write(&s.policy, policy(&xpub, &dest(1), sweeps)).unwrap();
    let listed = s.run(&[
        "keys",
        "list",
        "--keystore",
        path_str(&s.keystore),
        "--passphrase-env",
        PASSPHRASE_VAR,
    ]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&format!("{xpub}\tmerchant deposits\t")),
        "{listed}"
    );
    (s, account)
}

#[tokio::test]
async fn deposit_keys_sweep_only_to_the_collection_address() {
    let (s, account) = setup(true);
    let check = s.run(&["policy", "check", path_str(&s.policy)]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let explained = s.run(&["policy", "explain", path_str(&s.policy)]);
    let explained = String::from_utf8(explained.stdout).unwrap();
    assert!(
        explained.contains("Deposit account \"merchant deposits\"")
            && explained.contains("May sweep with the deposit keys of \"merchant deposits\"")
            && explained.contains("Gas key: may also send TRX"),
        "{explained}"
    );
    let mut srv = s.start().await;
    let d7 = account.address(7).unwrap();
    let d8 = account.address(8).unwrap();
    let collection = dest(1);

    // The sweep of deposit address #7: signed by the key derived for #7.
    let sweep = Tx::usdt(&d7.to_base58(), collection, 1234 * USDT).raw();
    let resp = srv
        .client
        .sign(with_index(&d7, sweep.clone(), "sweep-7", 7))
        .await
        .expect("a sweep to the collection address")
        .into_inner();
    assert_eq!(
        recover_address(&tron_proto::txid(&sweep), &resp.signature).unwrap(),
        d7
    );
    // Leftover TRX may be swept too.
    let trx = Tx::trx(&d7.to_base58(), collection, 3 * TRX).raw();
    srv.client
        .sign(with_index(&d7, trx, "sweep-7-trx", 7))
        .await
        .expect("TRX to the collection address");

    let refused = |r: Result<tonic::Response<_>, tonic::Status>| match r {
        Ok(_) => panic!("signed what the policy refuses"),
        Err(status) => reason(&status),
    };
    // Anywhere else: refused.
    let elsewhere = Tx::usdt(&d7.to_base58(), dest(2), USDT).raw();
    let r = srv
        .client
        .sign(with_index(&d7, elsewhere, "steal-7", 7))
        .await;
    assert_eq!(refused(r), "destination_not_allowed");
    // The key of #8 asked with index 7: the policy derives #7 and it differs.
    let other = Tx::usdt(&d8.to_base58(), collection, USDT).raw();
    let r = srv
        .client
        .sign(with_index(&d8, other.clone(), "wrong-index", 7))
        .await;
    assert_eq!(refused(r), "deposit_address_mismatch");
    // Outside the account's range (the address is the account's, the index is not allowed).
    let far = account.address(5000).unwrap();
    let r = srv
        .client
        .sign(with_index(
            &far,
            Tx::usdt(&far.to_base58(), collection, USDT).raw(),
            "far",
            5000,
        ))
        .await;
    assert_eq!(refused(r), "deposit_index_out_of_range");
    // A derived address without an index is no key the caller was granted.
    let r = srv
        .client
        .sign(request(&d8.to_base58(), other, "no-index"))
        .await;
    assert_eq!(refused(r), "caller_key_not_allowed");

    // The gas key funds #8, and only #8, up to its per-transaction cap.
    let gas = Tx::trx(KEY2, d8, 15 * TRX).raw();
    let resp = srv
        .client
        .sign(with_index(&addr(KEY2), gas.clone(), "gas-8", 8))
        .await
        .expect("gas to the deposit address")
        .into_inner();
    assert_eq!(
        recover_address(&tron_proto::txid(&gas), &resp.signature).unwrap(),
        addr(KEY2)
    );
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY2),
            Tx::trx(KEY2, d7, TRX).raw(),
            "gas-7-as-8",
            8,
        ))
        .await;
    assert_eq!(refused(r), "gas_destination_mismatch");
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY2),
            Tx::trx(KEY2, d8, 21 * TRX).nonce(1).raw(),
            "gas-too-much",
            8,
        ))
        .await;
    assert_eq!(refused(r), "over_per_tx_max");
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY2),
            Tx::usdt(KEY2, d8, USDT).raw(),
            "gas-usdt",
            8,
        ))
        .await;
    assert_eq!(refused(r), "asset_not_allowed");
    // Its key-wide window caps gas over time: 15 spent, 40 more is over 50 in 24h.
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY2),
            Tx::trx(KEY2, account.address(9).unwrap(), 20 * TRX).raw(),
            "gas-9",
            9,
        ))
        .await;
    assert!(r.is_ok(), "{r:?}");
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY2),
            Tx::trx(KEY2, account.address(10).unwrap(), 20 * TRX).raw(),
            "gas-10",
            10,
        ))
        .await;
    assert_eq!(refused(r), "over_key_window");
    // Without an index the gas key is an ordinary key with no destinations.
    let r = srv
        .client
        .sign(request(
            KEY2,
            Tx::trx(KEY2, d8, TRX).nonce(2).raw(),
            "gas-bare",
        ))
        .await;
    assert_eq!(refused(r), "destination_not_allowed");
    // An index for a key that is no gas key.
    let r = srv
        .client
        .sign(with_index(
            &addr(KEY1),
            Tx::trx(KEY1, dest(9), TRX).raw(),
            "payout-with-index",
            3,
        ))
        .await;
    assert_eq!(refused(r), "deposit_index_unexpected");

    // The audit record keeps the index the sweep was signed under.
    srv.stop();
    let signed: Vec<_> = s
        .records_with("signed")
        .into_iter()
        .filter(|r| r["payout_id"] == "sweep-7")
        .collect();
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0]["deposit_index"], 7);
    assert_eq!(signed[0]["key"], d7.to_base58());
    s.assert_audit_verifies();
}

#[tokio::test]
async fn a_caller_without_the_account_grant_cannot_sweep() {
    let (s, account) = setup(false);
    let mut srv = s.start().await;
    let d1 = account.address(1).unwrap();
    let r = srv
        .client
        .sign(with_index(
            &d1,
            Tx::usdt(&d1.to_base58(), dest(1), USDT).raw(),
            "sweep-1",
            1,
        ))
        .await;
    assert_eq!(reason(&r.unwrap_err()), "caller_key_not_allowed");
    srv.stop();
}

#[tokio::test]
async fn a_signer_without_the_seed_refuses_deposit_keys() {
    // A keystore with only the ordinary keys, under a policy naming some other account.
    let (other, account) = setup(true);
    let policy = std::fs::read_to_string(&other.policy).unwrap();
    let s = Setup::new(&[("payouts", KEY1_SECRET), ("gas", KEY2_SECRET)], &policy);
    let mut srv = s.start().await;
    let d1 = account.address(1).unwrap();
    let r = srv
        .client
        .sign(with_index(
            &d1,
            Tx::usdt(&d1.to_base58(), dest(1), USDT).raw(),
            "sweep-1",
            1,
        ))
        .await;
    assert_eq!(reason(&r.unwrap_err()), "deposit_account_not_loaded");
    srv.stop();
}
