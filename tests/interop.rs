//! Interop with the two reference libraries, tronpy 0.6 and TronWeb 6.
//!
//! They generate random signed TRX and USDT transfers offline; for each one our txid,
//! decoded fields and `r || s` must equal theirs, and then both libraries must recover
//! the owner from the signatures we produced. `tests/interop/setup.sh` installs the
//! pinned libraries into a local cache (registries only) the first time.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::interop::{root, run, setup, verify_with_both};

use secrecy::SecretBox;
use serde_json::{json, Value};
use tron_signer::decode::{decode, Intent};
use tron_signer::keys::SoftKey;

/// Transactions per library; 2 x 150 = 300 in all.
const PER_LIBRARY: usize = 150;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn check_case(case: &Value) -> Value {
    let raw = hex::decode(s(case, "raw_data_hex")).expect("hex");
    let d = decode(&raw).unwrap_or_else(|e| panic!("refused {case}: {e}"));
    let e = &d.envelope;
    assert_eq!(hex::encode(e.txid), s(case, "txid"), "txid for {case}");
    assert_eq!(e.expiration, case["expiration"].as_i64().unwrap());
    assert_eq!(e.timestamp, case["timestamp"].as_i64().unwrap());
    assert_eq!(e.fee_limit, case["fee_limit"].as_i64().unwrap());
    assert_eq!(hex::encode(&e.memo), s(case, "memo"));
    assert_eq!(hex::encode(e.ref_block_bytes), s(case, "ref_block_bytes"));
    assert_eq!(hex::encode(e.ref_block_hash), s(case, "ref_block_hash"));
    assert_eq!(d.intent.owner().to_base58(), s(case, "owner"));
    assert_eq!(d.intent.to().to_base58(), s(case, "to"));
    match &d.intent {
        Intent::Trx(t) => {
            assert_eq!(s(case, "kind"), "trx");
            assert!(case["token"].is_null());
            assert_eq!(t.amount.to_string(), s(case, "amount"));
        }
        Intent::Trc20(t) => {
            assert_eq!(s(case, "kind"), "trc20");
            assert_eq!(t.token.to_base58(), s(case, "token"));
            assert_eq!(t.amount.to_string(), s(case, "amount"));
        }
    }

    let mut secret = [0u8; 32];
    hex::decode_to_slice(s(case, "privkey"), &mut secret).expect("privkey hex");
    let key = SoftKey::from_secret(&SecretBox::new(Box::new(secret))).expect("key");
    assert_eq!(key.address().to_base58(), s(case, "owner"));
    let ours = key.sign_txid(&e.txid).expect("sign");
    let theirs = hex::decode(s(case, "signature")).expect("signature hex");
    assert_eq!(theirs.len(), 65);
    assert_eq!(
        hex::encode(&ours[..64]),
        hex::encode(&theirs[..64]),
        "r||s differ for {case}"
    );
    // TronWeb emits v as 27/28, tronpy as 0/1; we always emit 0/1.
    let their_v = if theirs[64] >= 27 {
        theirs[64] - 27
    } else {
        theirs[64]
    };
    assert_eq!(ours[64], their_v, "v differs for {case}");
    json!({ "txid": s(case, "txid"), "signature": hex::encode(ours), "owner": s(case, "owner") })
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn tronweb_and_tronpy_agree_with_us() {
    let env = setup();
    let seed = std::env::var("INTEROP_SEED").unwrap_or_else(|_| "20261126".into());
    let count = PER_LIBRARY.to_string();
    let tw = lines(&run(&env, "node", "gen_tronweb.js", &[&count, &seed], None));
    let other_seed = format!("{seed}1");
    let tp = lines(&run(
        &env,
        &env.python,
        "gen_tronpy.py",
        &[&count, &other_seed],
        None,
    ));
    assert_eq!(tw.len(), PER_LIBRARY);
    assert_eq!(tp.len(), PER_LIBRARY);
    let all: Vec<Value> = tw.into_iter().chain(tp).collect();
    let kinds = |k: &str| all.iter().filter(|c| c["kind"] == k).count();
    assert!(kinds("trx") >= 50 && kinds("trc20") >= 50, "mix of kinds");
    assert!(all.iter().any(|c| c["memo"] != ""), "some memos");

    let ours: Vec<Value> = all.iter().map(check_case).collect();
    verify_with_both(&env, &ours);

    // And a negative control: a signature over another txid must not verify as the owner.
    let mut bad = ours[0].clone();
    bad["owner"] = ours[1]["owner"].clone();
    if bad["owner"] != ours[0]["owner"] {
        let out = Command::new(&env.python)
            .arg(root().join("tests/interop/verify_tronpy.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(format!("{bad}\n").as_bytes())?;
                c.wait_with_output()
            })
            .expect("run verifier");
        assert!(!out.status.success(), "verifier accepted a wrong owner");
    }
}
