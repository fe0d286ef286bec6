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
