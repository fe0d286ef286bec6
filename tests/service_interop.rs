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

fn grpcio_policy(to: tron_proto::Address) -> String {
    PolicyText::new("grpcio")
        .key(
            Key::new(KEY1, "hot", &["TRX"])
                .window("TRX", "1h", "100")
                .destination(Destination::new(to, "exchange", &["TRX"]).per_tx_max("TRX", "10")),
        )
        .callers(
            "\n[[caller]]\nname = \"python client\"\ntls_san = \"uri:spiffe://test/python-grpcio\"\nrpcs = [\"Sign\", \"Evaluate\", \"ListKeys\", \"GetPolicy\", \"ReadPolicyText\"]\nall_keys = true\n",
        )
        .text()
}

/// A plain grpcio client, with none of our code, finds the API by reflection, sees the
/// health service SERVING, lists keys, gets a signature and a refusal with its reason code.
#[tokio::test]
async fn python_grpcio_uses_the_api_through_reflection() {
    let env = interop_setup();
    let s = Setup::new(&[("hot", KEY1_SECRET)], &grpcio_policy(dest(0xa1)));
    let srv = s.start().await;
    let target = format!("unix:{}", s.socket.display());
    grpcio_session(&env, &target, &[]);
    srv.stop();
}

/// The same client over mutual TLS on TCP, with its own client certificate (issue 12).
#[tokio::test]
async fn python_grpcio_uses_the_api_over_mutual_tls() {
    use common::pki::{client_config, Ca};
    let env = interop_setup();
    let s = Setup::new(&[("hot", KEY1_SECRET)], &grpcio_policy(dest(0xa1)));
    let ca = Ca::new("grpcio CA");
    let dir = s.dir.path();
    let (server_cert, server_key) = ca.server().write(dir, "server");
    let python = ca.client("python-grpcio", false);
    let (client_cert, client_key) = python.write(dir, "python");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    s.write_config_listening(
        &addr,
        &format!(
            "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            s.keystore_section(),
            server_cert.display(),
            server_key.display(),
            ca_path.display()
        ),
    );
    let srv = s
        .start_tls(&addr, client_config(&ca, Some(&python)))
        .await
        .unwrap_or_else(|log| panic!("{log}"));
    grpcio_session(
        &env,
        &addr,
        &[
            ("TLS_CA", path_str(&ca_path)),
            ("TLS_CERT", path_str(&client_cert)),
            ("TLS_KEY", path_str(&client_key)),
        ],
    );
    srv.stop();
    let signed: Vec<_> = s.records_with("signed");
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["caller"], "python client");
    assert_eq!(
        signed[0]["identity"],
        "tls_san=uri:spiffe://test/python-grpcio"
    );
    let peer = signed[0]["peer"].as_str().unwrap_or("");
    assert!(
        peer.starts_with(&format!("tls:spki={}", python.pin())),
        "{peer}"
    );
}

/// Runs tests/interop/grpc_client.py against `target` with `extra_env`, and checks all it saw.
fn grpcio_session(env: &common::interop::Env, target: &str, extra_env: &[(&str, &str)]) {
    let to = dest(0xa1);
    let allowed = Tx::trx(KEY1, to, 1_000_000).raw();
    let refused = Tx::trx(KEY1, dest(0x66), 1_000_000).raw();
    let out = Command::new(&env.python)
        .arg(root().join("tests/interop/grpc_client.py"))
        .args([
            target,
            KEY1,
            &hex::encode(&allowed),
            "py-1",
            &hex::encode(&refused),
        ])
        .envs(extra_env.iter().copied())
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
            "Freeze",
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
}
