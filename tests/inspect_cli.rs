//! Runs the real `tron-signer inspect` binary on accepted and refused input.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tron-signer");

// A canonical USDT transfer built with our encoder: owner TPX6HK2N…,
// 1.5 USDT to TMVQGm1q…, memo "hi".
fn trc20_hex() -> String {
    use tron_proto::{Address, U256};
    use tron_signer::decode::{encode, Decoded, Envelope, Intent, Trc20Transfer};
    let d = Decoded {
        envelope: Envelope {
            txid: [0; 32],
            ref_block_bytes: [0xab, 0xcd],
            ref_block_hash: [1, 2, 3, 4, 5, 6, 7, 8],
            expiration: 1_795_000_060_000,
            timestamp: 1_795_000_000_000,
            fee_limit: 30_000_000,
            memo: b"hi".to_vec(),
            permission_id: 0,
        },
        intent: Intent::Trc20(Trc20Transfer {
            owner: "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1".parse().unwrap(),
            token: "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t".parse().unwrap(),
            to: "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"
                .parse::<Address>()
                .unwrap(),
            amount: U256::new(1_500_000),
        }),
    };
    hex::encode(encode(&d))
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, Value) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    (out.status.success(), v)
}

#[test]
fn inspect_prints_the_decoded_fields() {
    let hex = trc20_hex();
    let (ok, v) = run(&["inspect", &hex], None);
    assert!(ok, "{v}");
    assert_eq!(v["kind"], "trc20");
    assert_eq!(v["owner"], "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1");
    assert_eq!(v["to"], "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC");
    assert_eq!(v["token"], "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t");
    assert_eq!(v["amount"], "1500000");
    assert_eq!(v["expiration"], 1_795_000_060_000i64);
    assert_eq!(v["timestamp"], 1_795_000_000_000i64);
    assert_eq!(v["fee_limit"], 30_000_000);
    assert_eq!(v["memo"], "6869");
    assert_eq!(v["ref_block_bytes"], "abcd");
    assert_eq!(v["ref_block_hash"], "0102030405060708");
    let raw = hex::decode(&hex).unwrap();
    assert_eq!(v["txid"], hex::encode(tron_proto::txid(&raw)));
}

#[test]
fn inspect_reads_stdin() {
    let hex = trc20_hex();
    let (ok, v) = run(&["inspect", "-"], Some(&format!("{hex}\n")));
    assert!(ok, "{v}");
    assert_eq!(v["kind"], "trc20");
}

#[test]
fn inspect_refusals_are_json_with_codes() {
    let mut approve = hex::decode(trc20_hex()).unwrap();
    // Swap the selector for approve(address,uint256).
    let pos = approve
        .windows(4)
        .position(|w| w == [0xa9, 0x05, 0x9c, 0xbb])
        .unwrap();
    approve[pos..pos + 4].copy_from_slice(&[0x09, 0x5e, 0xa7, 0xb3]);
    for (input, code) in [
        ("zz", "not_hex"),
        ("", "no_contract"),
        (&hex::encode(&approve)[..], "trc20_selector"),
        (&format!("{}00", trc20_hex())[..], "trailing_bytes"),
    ] {
        let (ok, v) = run(&["inspect", input], None);
        assert!(!ok, "{input}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (ok, v) = run(&["inspect", &hex::encode(&approve)], None);
    assert!(!ok);
    assert!(v["error"]["message"].as_str().unwrap().contains("approve"));
}
