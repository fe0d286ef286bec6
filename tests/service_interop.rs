//! Signatures returned by the running service, checked by the reference libraries:
//! TronWeb 6 and tronpy 0.6 must both recover the owner from every one.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

fn interop_env() -> (String, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("tests/interop/setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run setup.sh");
    assert!(out.status.success(), "interop setup failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}"))
            .to_owned()
    };
    (get("INTEROP_PYTHON"), get("INTEROP_NODE_MODULES"))
}

fn verify(program: &str, script: &str, node_modules: &str, input: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(program)
        .arg(root.join("tests/interop").join(script))
        .env("INTEROP_NODE_MODULES", node_modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start verifier");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn tronweb_and_tronpy_verify_service_signatures() {
    let (python, node_modules) = interop_env();
    let to = dest(0xa1);
    let policy = format!(
        r#"version = 1
name = "interop"
[global]
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false
[[token]]
symbol = "USDT"
contract = "{NILE_USDT}"
decimals = 6
[[key]]
address = "{KEY1}"
label = "hot"
assets = ["TRX", "USDT"]
windows = [
  {{ asset = "TRX", window = "1h", max = "100000" }},
  {{ asset = "USDT", window = "1h", max = "100000" }},
]
  [[key.destination]]
  address = "{to}"
  label = "exchange"
  assets = ["TRX", "USDT"]
  per_tx_max = {{ TRX = "1000", USDT = "1000" }}
"#
    );
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy);
    let mut srv = s.start().await;
    let mut lines = String::new();
    for i in 0..40u16 {
        let tx = if i % 2 == 0 {
            Tx::trx(KEY1, to, 1_000 + u64::from(i))
        } else {
            Tx::usdt(KEY1, to, 1_000 + u128::from(i))
        };
        let r = srv
            .client
            .sign(request(KEY1, tx.nonce(i).raw(), &format!("interop-{i}")))
            .await
            .expect("allowed")
            .into_inner();
        lines.push_str(&format!(
            "{{\"txid\":\"{}\",\"signature\":\"{}\",\"owner\":\"{KEY1}\"}}\n",
            hex::encode(&r.txid),
            hex::encode(&r.signature)
        ));
    }
    srv.stop();
    let tw = verify("node", "verify_tronweb.js", &node_modules, &lines);
    assert!(tw.contains("40 passed, 0 failed"), "{tw}");
    let tp = verify(&python, "verify_tronpy.py", &node_modules, &lines);
    assert!(tp.contains("40 passed, 0 failed"), "{tp}");
}

/// A plain grpcio client, with none of our code, finds the API by reflection, sees the
/// health service SERVING, lists keys, gets a signature and a refusal with its reason code.
#[tokio::test]
async fn python_grpcio_uses_the_api_through_reflection() {
    let (python, node_modules) = interop_env();
    let to = dest(0xa1);
    let policy = format!(
        r#"version = 1
name = "grpcio"
[global]
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false
[[key]]
address = "{KEY1}"
label = "hot"
assets = ["TRX"]
windows = [ {{ asset = "TRX", window = "1h", max = "100" }} ]
  [[key.destination]]
  address = "{to}"
  label = "exchange"
  assets = ["TRX"]
  per_tx_max = {{ TRX = "10" }}
"#
    );
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy);
    let srv = s.start().await;
    let allowed = Tx::trx(KEY1, to, 1_000_000).raw();
    let refused = Tx::trx(KEY1, dest(0x66), 1_000_000).raw();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = format!("unix:{}", s.socket.display());
    let out = Command::new(&python)
        .arg(root.join("tests/interop/grpc_client.py"))
        .args([
            &target,
            KEY1,
            &hex::encode(&allowed),
            "py-1",
            &hex::encode(&refused),
        ])
        .env("INTEROP_NODE_MODULES", &node_modules)
        .output()
        .expect("run grpc_client.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["health"], "SERVING");
    assert_eq!(
        v["methods"],
        serde_json::json!(["Evaluate", "GetPolicy", "ListKeys", "Sign"])
    );
    assert_eq!(v["keys"], serde_json::json!([KEY1]));
    assert_eq!(v["allowed"], true);
    let txid: [u8; 32] = hex::decode(v["txid"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(txid, tron_proto::txid(&allowed));
    let sig = hex::decode(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(
        tron_proto::sig::recover_address(&txid, &sig).unwrap(),
        addr(KEY1)
    );
    assert_eq!(v["refused"]["code"], "PERMISSION_DENIED");
    assert_eq!(v["refused"]["reason_code"], "destination_not_allowed");
    srv.stop();
}
