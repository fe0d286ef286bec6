//! Who may ask for what (issue 12, items 2-4), on the real binary over real sockets: callers
//! recognised by a SPIFFE SAN, a certificate subject and a pinned key under mutual TLS, and
//! by uid on the Unix socket. A valid but unlisted client, a caller with Evaluate only asking
//! to Sign, a caller granted key 1 asking for key 2 and an unlisted uid are each refused
//! PERMISSION_DENIED with their own reason code, and audited under the name and identity
//! the policy knows them by; ListKeys shows a caller only its own keys.

mod common;

use common::pki::{client_config, Ca, Issued};
use common::*;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::{GetPolicyRequest, ListKeysRequest, ReadPolicyTextRequest};

const TRX: u64 = 1_000_000;

fn keys() -> PolicyText {
    PolicyText::new("caller grants test policy")
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "24h", "10")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", "5"),
                ),
        )
        .key(
            Key::new(KEY2, "hot 2", &["TRX"])
                .window("TRX", "24h", "10")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", "5"),
                ),
        )
}

async fn connect(addr: &str, ca: &Ca, who: &Issued) -> SignerClient<tonic::transport::Channel> {
    let channel = tron_proto::client::connect_tls(addr, "localhost", client_config(ca, Some(who)))
        .await
        .expect("mutual TLS connects");
    SignerClient::new(channel)
}

/// The refusal's gRPC code, reason code and audit sequence.
fn denied(st: &tonic::Status) -> (tonic::Code, String, u64) {
    let seq = st
        .metadata()
        .get("audit-sequence")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("refusal not audited: {st:?}"));
    (st.code(), reason(st), seq)
}

/// The addresses ListKeys shows this client.
async fn listed(c: &mut SignerClient<tonic::transport::Channel>) -> Vec<String> {
    c.list_keys(ListKeysRequest {})
        .await
        .expect("ListKeys answered")
        .into_inner()
        .keys
        .into_iter()
        .map(|k| k.address)
        .collect()
}

fn record(s: &Setup, seq: u64) -> serde_json::Value {
    s.audit_records()
        .into_iter()
        .find(|r| r["sequence"] == seq)
        .unwrap_or_else(|| panic!("no audit record {seq}"))
}

/// A signer with both keys and only `callers`, trusting clients under `ca`, started and
/// answering `probe` (served or refused: the server is up).
async fn tls_signer(ca: &Ca, callers: &str, probe: &Issued) -> (Setup, String, Server) {
    let s = Setup::new(
        &[("hot 1", KEY1_SECRET), ("hot 2", KEY2_SECRET)],
        &keys().without_test_caller().callers(callers).text(),
    );
    let (cert, key) = ca.server().write(s.dir.path(), "server");
    let ca_path = s.dir.path().join("clients-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    s.write_config_listening(
        &addr,
        &format!(
            "{}[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            s.keystore_section(),
            cert.display(),
            key.display(),
            ca_path.display()
        ),
    );
    let srv = s
        .start_tls(&addr, client_config(ca, Some(probe)))
        .await
        .unwrap_or_else(|log| panic!("signer did not start:\n{log}"));
    (s, addr, srv)
}

/// One certificate whose key pin one caller lists and whose SAN another lists: refused
/// `caller_ambiguous` (audited, naming both), never served as either.
#[tokio::test]
async fn a_certificate_two_callers_claim_is_refused() {
    let ca = Ca::new("clients CA");
    let both = ca.client("shared", false);
    let callers = format!(
        r#"
[[caller]]
name = "by key"
tls_pin = "{}"
rpcs = ["ListKeys"]
all_keys = true

[[caller]]
name = "by name"
tls_san = "uri:spiffe://test/shared"
rpcs = ["ListKeys", "Sign"]
all_keys = true
"#,
        both.pin()
    );
    let (s, addr, srv) = tls_signer(&ca, &callers, &both).await;
    let mut c = connect(&addr, &ca, &both).await;
    let st = c.list_keys(ListKeysRequest {}).await.unwrap_err();
    let (code, why, seq) = denied(&st);
    assert_eq!(
        (code, why.as_str()),
        (tonic::Code::PermissionDenied, "caller_ambiguous")
    );
    assert!(
        st.message().contains("\"by key\"") && st.message().contains("\"by name\""),
        "{st:?}"
    );
    let rec = record(&s, seq);
    assert_eq!(
        (&rec["caller"], &rec["method"]),
        (&serde_json::json!(""), &serde_json::json!("ListKeys"))
    );
    let st = c
        .sign(request(KEY1, Tx::trx(KEY1, dest(0xa1), TRX).raw(), "a-1"))
        .await
        .unwrap_err();
    assert_eq!(denied(&st).1, "caller_ambiguous");
    srv.stop();
    assert!(s.records_with("signed").is_empty());
    s.assert_audit_verifies();
}

#[tokio::test]
async fn tls_callers_get_only_their_grants() {
    let ca = Ca::new("clients CA");
    let payments = ca.client("payments", false);
    let risk = ca.client("risk", false);
    let ops = ca.client("ops", false);
    let mallory = ca.client("mallory", false);
    let callers = format!(
        r#"
[[caller]]
name = "payments backend"
tls_san = "uri:spiffe://test/payments"
rpcs = ["Sign", "Evaluate", "ListKeys"]
keys = ["{KEY1}"]

[[caller]]
name = "risk desk"
tls_subject = "CN=risk"
rpcs = ["Evaluate"]
keys = ["{KEY1}", "{KEY2}"]

[[caller]]
name = "operator"
tls_pin = "{}"
rpcs = ["ListKeys", "GetPolicy", "ReadPolicyText"]
keys = ["{KEY2}"]
"#,
        ops.pin()
    );
    let (s, addr, srv) = tls_signer(&ca, &callers, &ops).await;

    // The payments backend, by its SPIFFE id: signs with key 1, is refused key 2.
    let mut pay = connect(&addr, &ca, &payments).await;
    let ok = pay
        .sign(request(KEY1, Tx::trx(KEY1, dest(0xa1), TRX).raw(), "p-1"))
        .await
        .expect("payments signs with key 1")
        .into_inner();
    let seq = ok.decision.unwrap().audit_sequence;
    let rec = record(&s, seq);
    assert_eq!(rec["caller"], "payments backend");
    assert_eq!(rec["identity"], "tls_san=uri:spiffe://test/payments");
    assert!(
        rec["peer"].as_str().unwrap().contains(&payments.pin()),
        "{rec}"
    );

    let st = pay
        .sign(request(KEY2, Tx::trx(KEY2, dest(0xa1), TRX).raw(), "p-2"))
        .await
        .unwrap_err();
    let (code, why, seq) = denied(&st);
    assert_eq!(
        (code, why.as_str()),
        (tonic::Code::PermissionDenied, "caller_key_not_allowed")
    );
    let rec = record(&s, seq);
    assert_eq!(
        (&rec["caller"], &rec["reason_code"], &rec["key"]),
        (
            &serde_json::json!("payments backend"),
            &serde_json::json!("caller_key_not_allowed"),
            &serde_json::json!(KEY2)
        )
    );
    // ListKeys shows the payments backend key 1 only.
    assert_eq!(listed(&mut pay).await, [KEY1]);
    // No grant to read the policy.
    let st = pay.get_policy(GetPolicyRequest {}).await.unwrap_err();
    let (code, why, seq) = denied(&st);
    assert_eq!(
        (code, why.as_str()),
        (tonic::Code::PermissionDenied, "caller_not_allowed")
    );
    assert_eq!(record(&s, seq)["method"], "GetPolicy");

    // The risk desk, by its subject: Evaluate yes, Sign no.
    let mut risk_c = connect(&addr, &ca, &risk).await;
    let tx = Tx::trx(KEY2, dest(0xa1), TRX).nonce(7).raw();
    let e = risk_c
        .evaluate(request(KEY2, tx.clone(), "r-1"))
        .await
        .expect("risk may evaluate")
        .into_inner();
    assert!(e.decision.unwrap().allowed);
    let st = risk_c.sign(request(KEY2, tx, "r-1")).await.unwrap_err();
    let (code, why, seq) = denied(&st);
    assert_eq!(
        (code, why.as_str()),
        (tonic::Code::PermissionDenied, "caller_not_allowed")
    );
    let rec = record(&s, seq);
    assert_eq!(rec["caller"], "risk desk");
    assert_eq!(rec["identity"], "tls_subject=CN=risk");
    assert_eq!(rec["method"], "Sign");

    // The operator, by its pinned key: reads the policy and sees key 2, cannot sign.
    let mut op = connect(&addr, &ca, &ops).await;
    op.get_policy(GetPolicyRequest {})
        .await
        .expect("operator reads the policy");
    let mut stream = op
        .read_policy_text(ReadPolicyTextRequest {
            hash: String::new(),
        })
        .await
        .expect("operator streams the policy")
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert_eq!(listed(&mut op).await, [KEY2]);
    let st = op
        .sign(request(
            KEY2,
            Tx::trx(KEY2, dest(0xa1), TRX).nonce(8).raw(),
            "o-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(denied(&st).1, "caller_not_allowed");

    // A valid certificate under the trusted CA that no caller names: nothing at all.
    let mut m = connect(&addr, &ca, &mallory).await;
    for st in [
        m.list_keys(ListKeysRequest {}).await.unwrap_err(),
        m.sign(request(
            KEY1,
            Tx::trx(KEY1, dest(0xa1), TRX).nonce(9).raw(),
            "m-1",
        ))
        .await
        .unwrap_err(),
    ] {
        let (code, why, seq) = denied(&st);
        assert_eq!(
            (code, why.as_str()),
            (tonic::Code::PermissionDenied, "caller_unknown")
        );
        // The refusal says what was seen, in the words a [[caller]] would use.
        assert!(st.message().contains("uri:spiffe://test/mallory"), "{st:?}");
        let rec = record(&s, seq);
        assert_eq!(
            (&rec["caller"], &rec["identity"]),
            (&serde_json::json!(""), &serde_json::json!(""))
        );
        assert!(
            rec["peer"].as_str().unwrap().contains("CN=mallory"),
            "{rec}"
        );
    }
    srv.stop();

    // Nothing refused was counted: exactly one signature in the ledger.
    assert_eq!(s.records_with("signed").len(), 1);
    s.assert_audit_verifies();
}

/// A uid the policy does not list gets nothing on the Unix socket; a reload that lists it
/// (a new policy hash: the hash covers who may ask) lets it sign.
#[tokio::test]
async fn an_unlisted_unix_uid_is_refused_until_the_policy_lists_it() {
    let other_uid = test_uid().wrapping_add(4242);
    let only_other = format!(
        "\n[[caller]]\nname = \"someone else\"\nunix_uid = {other_uid}\nrpcs = [\"Sign\"]\nall_keys = true\n"
    );
    let s = Setup::new(
        &[("hot 1", KEY1_SECRET)],
        &keys().without_test_caller().callers(&only_other).text(),
    );
    let mut srv = s.start().await;
    let tx = Tx::trx(KEY1, dest(0xa1), TRX).raw();
    let st = srv
        .client
        .sign(request(KEY1, tx.clone(), "u-1"))
        .await
        .unwrap_err();
    let (code, why, seq) = denied(&st);
    assert_eq!(
        (code, why.as_str()),
        (tonic::Code::PermissionDenied, "caller_unknown")
    );
    assert!(
        st.message().contains(&format!("unix_uid {}", test_uid())),
        "{st:?}"
    );
    let rec = record(&s, seq);
    assert!(
        rec["peer"]
            .as_str()
            .unwrap()
            .starts_with(&format!("unix:uid={},", test_uid())),
        "{rec}"
    );
    let before = rec["policy_hash"].clone();

    std::fs::write(
        &s.policy,
        keys()
            .without_test_caller()
            .callers(&only_other)
            .callers(&test_caller())
            .text(),
    )
    .unwrap();
    srv.signal("HUP");
    let mut signed = None;
    for _ in 0..100 {
        match srv.client.sign(request(KEY1, tx.clone(), "u-1")).await {
            Ok(r) => {
                signed = Some(r.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let signed = signed.expect("signed once the policy lists the uid");
    let d = signed.decision.unwrap();
    assert_ne!(serde_json::json!(d.policy_hash), before);
    let rec = record(&s, d.audit_sequence);
    assert_eq!(rec["caller"], "test suite");
    assert_eq!(rec["identity"], format!("unix_uid={}", test_uid()));
    srv.stop();
    s.assert_audit_verifies();
}
