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

/// Transactions built by the broadcaster's builder for the TronWeb decode check.
const BROADCASTER_CASES: u64 = 50;

/// A deterministic value from sha256(`tag/i`), so failures reproduce.
fn draw(tag: &str, i: u64) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("broadcaster-interop/{tag}/{i}").as_bytes()).into()
}

fn draw_u64(tag: &str, i: u64) -> u64 {
    let b = draw(tag, i);
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn draw_address(tag: &str, i: u64) -> tron_proto::Address {
    let b = draw(tag, i);
    tron_proto::Address::from_evm(b[..20].try_into().expect("20 bytes"))
}

#[test]
fn tronweb_decodes_broadcaster_transactions_to_the_same_fields() {
    use tron_broadcaster::builder::{build, BuildParams, HeadBlock, Transfer};
    use tron_broadcaster::model::Asset;

    let usdt = [
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", // mainnet
        "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf", // Nile
    ];
    let mut cases = Vec::new();
    for i in 0..BROADCASTER_CASES {
        let asset = if i % 2 == 0 { Asset::Trx } else { Asset::Usdt };
        // Short and long varints both: pick a magnitude, then a value below it.
        let cap = 10u64.pow((draw_u64("digits", i) % 15 + 1) as u32);
        let amount_units = draw_u64("amount", i) % cap + 1;
        let head = HeadBlock {
            number: draw_u64("number", i) % (1 << 40),
            id: draw("id", i),
            timestamp_ms: 1_767_225_600_000 + (draw_u64("ts", i) % 31_536_000_000) as i64,
        };
        let params = BuildParams {
            usdt_contract: usdt[(i / 2 % 2) as usize].parse().expect("usdt"),
            fee_limit_sun: (draw_u64("fee", i) % 15_000 + 1) as i64 * 1_000_000,
            expiration_ms: (60 + draw_u64("exp", i) % (24 * 3600 - 60)) as i64 * 1000,
        };
        let transfer = Transfer {
            asset,
            owner: draw_address("owner", i),
            to: draw_address("to", i),
            amount_units,
        };
        let built = build(&transfer, &head, &params).expect("build");
        cases.push((
            built.txid,
            json!({
                "raw_data_hex": hex::encode(&built.raw_data),
                "owner": transfer.owner.to_base58(),
                "to": transfer.to.to_base58(),
                "token": match asset {
                    Asset::Trx => Value::Null,
                    Asset::Usdt => params.usdt_contract.to_base58().into(),
                },
                "amount": amount_units.to_string(),
                "expiration": built.expiration_ms,
                "timestamp": head.timestamp_ms,
                "fee_limit": match asset { Asset::Trx => 0, Asset::Usdt => params.fee_limit_sun },
                "ref_block_bytes": hex::encode(head.ref_block_bytes()),
                "ref_block_hash": hex::encode(head.ref_block_hash()),
            }),
        ));
    }
    let env = setup();
    let input: String = cases.iter().map(|(_, c)| format!("{c}\n")).collect();
    let decoded = lines(&run(&env, "node", "decode_tronweb.js", &[], Some(&input)));
    assert_eq!(decoded.len(), cases.len());
    for ((txid, want), got) in cases.iter().zip(&decoded) {
        for key in [
            "owner",
            "to",
            "token",
            "amount",
            "expiration",
            "timestamp",
            "fee_limit",
            "ref_block_bytes",
            "ref_block_hash",
        ] {
            assert_eq!(
                got[key], want[key],
                "{key}: TronWeb read {got}, we built {want}"
            );
        }
        // The shape the signer's strict decoder insists on, as TronWeb sees it.
        assert_eq!(got["ref_block_num"], 0, "{got}");
        assert_eq!(got["memo"], "", "{got}");
        assert_eq!(s(got, "txid"), hex::encode(txid));
        if !want["token"].is_null() {
            assert_eq!(got["call_value"], 0, "{got}");
        }
        // And our own signer's decoder reads the same bytes the same way.
        let raw = hex::decode(s(want, "raw_data_hex")).expect("hex");
        let d = decode(&raw).unwrap_or_else(|e| panic!("signer refuses {want}: {e}"));
        assert_eq!(d.intent.owner().to_base58(), s(want, "owner"));
        assert_eq!(d.intent.to().to_base58(), s(want, "to"));
        assert_eq!(d.intent.amount().to_string(), s(want, "amount"));
    }

    // Negative control: the script must notice a field that is not what the bytes say.
    let mut wrong = cases[1].1.clone();
    wrong["amount"] = (wrong["amount"]
        .as_str()
        .and_then(|a| a.parse::<u64>().ok())
        .expect("amount")
        + 1)
    .to_string()
    .into();
    let status = Command::new("node")
        .arg(root().join("tests/interop/decode_tronweb.js"))
        .env("INTEROP_NODE_MODULES", &env.node_modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{wrong}\n").as_bytes())?;
            c.wait()
        })
        .expect("run decode_tronweb.js");
    assert!(
        !status.success(),
        "decode_tronweb.js accepted a wrong amount"
    );
}
