//! Signatures returned by the running service, checked by the reference libraries:
//! TronWeb 6 and tronpy 0.6 must both recover the owner from every one.

mod common;

use std::process::Command;

use common::interop::{root, setup as interop_setup, verify_with_both};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn tronweb_and_tronpy_verify_service_signatures() {
    let env = interop_setup();
    let to = dest(0xa1);
    let policy = PolicyText::new("interop")
        .key(
            Key::new(KEY1, "hot", &["TRX", "USDT"])
                .window("TRX", "1h", "100000")
                .window("USDT", "1h", "100000")
                .destination(
                    Destination::new(to, "exchange", &["TRX", "USDT"])
                        .per_tx_max("TRX", "1000")
                        .per_tx_max("USDT", "1000"),
                ),
        )
        .text();
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy);
    let mut srv = s.start().await;
    let mut signed: Vec<Value> = Vec::new();
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
        signed.push(json!({
            "txid": hex::encode(&r.txid),
            "signature": hex::encode(&r.signature),
            "owner": KEY1,
        }));
    }
    srv.stop();
    verify_with_both(&env, &signed);
}

/// A plain grpcio client, with none of our code, finds the API by reflection, sees the
/// health service SERVING, lists keys, gets a signature and a refusal with its reason code.
#[tokio::test]
async fn python_grpcio_uses_the_api_through_reflection() {
    let env = interop_setup();
    let to = dest(0xa1);
    let policy = PolicyText::new("grpcio")
        .key(
            Key::new(KEY1, "hot", &["TRX"])
                .window("TRX", "1h", "100")
                .destination(Destination::new(to, "exchange", &["TRX"]).per_tx_max("TRX", "10")),
        )
        .text();
    let s = Setup::new(&[("hot", KEY1_SECRET)], &policy);
    let srv = s.start().await;
    let allowed = Tx::trx(KEY1, to, 1_000_000).raw();
    let refused = Tx::trx(KEY1, dest(0x66), 1_000_000).raw();
    let target = format!("unix:{}", s.socket.display());
    let out = Command::new(&env.python)
        .arg(root().join("tests/interop/grpc_client.py"))
        .args([
            &target,
            KEY1,
            &hex::encode(&allowed),
            "py-1",
            &hex::encode(&refused),
        ])
        .output()
        .expect("run grpc_client.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["health"], "SERVING");
    assert_eq!(
        v["methods"],
        json!([
            "Evaluate",
            "GetPolicy",
            "ListKeys",
            "ReadPolicyText",
            "Sign"
        ])
    );
    assert_eq!(v["keys"], json!([KEY1]));
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
