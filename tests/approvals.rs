//! M-of-N approvals (issue 13) on the real binary over its Unix socket, with approvers'
//! keys made and their statements signed by the real `ssh-keygen` (Ed25519 and ECDSA P-256):
//! below the threshold nothing is asked; above it `approval_required` with the statement;
//! every void approval is refused with its own code; a quorum signs, its audit record names
//! the approvers, `audit verify` re-verifies them and `ssh-keygen -Y verify` accepts their
//! signatures from the export alone. `tron-signer approve` is the approvers' tool.

mod common;

use std::process::{Command, Stdio};

use common::exporter::Exporter as SshKey;
use common::*;
use tron_proto::signer::{Approval, SignRequest};

const TRX: u64 = 1_000_000;
const NAMESPACE: &str = "tron-signer-approval";

/// The approvers of the test policy, each with a real `ssh-keygen` key.
struct People {
    alice: SshKey,
    bob: SshKey,
    /// In two groups: treasury and risk.
    carol: SshKey,
    dave: SshKey,
    /// In "ops", which no rule asks for.
    eve: SshKey,
    /// The approver who is also the test suite's caller: the initiator of every request.
    mallory: SshKey,
    /// ECDSA P-256.
    frank: SshKey,
    /// In no `[[approver]]`.
    stranger: SshKey,
}

impl People {
    fn new() -> People {
        People {
            alice: SshKey::new("alice"),
            bob: SshKey::new("bob"),
            carol: SshKey::new("carol"),
            dave: SshKey::new("dave"),
            eve: SshKey::new("eve"),
            mallory: SshKey::new("mallory"),
            frank: SshKey::of_type("ecdsa", "frank"),
            stranger: SshKey::new("stranger"),
        }
    }

    /// `[[approver]]` sections for everyone but the stranger, and the rules: over 10 TRX two
    /// of treasury, over 100 TRX also one of risk.
    fn sections(&self) -> String {
        let one = |name: &str, key: &SshKey, groups: &str, extra: &str| {
            format!(
                "\n[[approver]]\nname = \"{name}\"\ngroups = {groups}\nkey = \"{}\"\n{extra}",
                key.public_line
            )
        };
        [
            one("alice", &self.alice, r#"["treasury"]"#, ""),
            one("bob", &self.bob, r#"["treasury"]"#, ""),
            one("carol", &self.carol, r#"["treasury", "risk"]"#, ""),
            one("dave", &self.dave, r#"["risk"]"#, ""),
            one("eve", &self.eve, r#"["ops"]"#, ""),
            one(
                "mallory",
                &self.mallory,
                r#"["treasury"]"#,
                "caller = \"test suite\"\n",
            ),
            one("frank", &self.frank, r#"["treasury"]"#, ""),
            "\n[[approval]]\nasset = \"TRX\"\nabove = \"10\"\nrequire = { treasury = 2 }\n"
                .into(),
            "\n[[approval]]\nasset = \"TRX\"\nabove = \"100\"\nrequire = { treasury = 2, risk = 1 }\n"
                .into(),
        ]
        .concat()
    }
}

fn policy(people: &People, name: &str) -> String {
    let keys = PolicyText::new(name)
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "24h", "10000")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", "5000"),
                ),
        )
        .text();
    format!("{keys}{}", people.sections())
}

fn trx(amount: u64, nonce: u16) -> Vec<u8> {
    Tx::trx(KEY1, dest(0xa1), amount * TRX).nonce(nonce).raw()
}

fn approval(signature: String) -> Approval {
    Approval {
        signature,
        statement: String::new(),
    }
}

fn with(raw: &[u8], payout: &str, approvals: Vec<Approval>) -> SignRequest {
    SignRequest {
        approvals,
        ..request(KEY1, raw.to_vec(), payout)
    }
}

/// The statement Evaluate asks approvers to sign for this request (it must need approval).
async fn statement_of(server: &mut Server, raw: &[u8], payout: &str) -> String {
    let e = server
        .client
        .evaluate(request(KEY1, raw.to_vec(), payout))
        .await
        .expect("Evaluate answers")
        .into_inner();
    let d = e.decision.expect("a decision");
    assert_eq!(d.reason_code, "approval_required", "{}", d.message);
    assert!(!d.approval_statement.is_empty());
    d.approval_statement
}

fn reject_of(statement: &str) -> String {
    statement.replacen("\ndecision: approve\n", "\ndecision: reject\n", 1)
}

/// Signs and expects a refusal: its reason code and message.
async fn refused(server: &mut Server, req: SignRequest) -> (String, String) {
    let st = server
        .client
        .sign(req)
        .await
        .expect_err("the request must be refused");
    assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
    (reason(&st), st.message().to_owned())
}

#[tokio::test]
async fn below_the_threshold_nothing_is_asked_above_it_the_statement() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;

    // 10 TRX is the threshold itself: not above it.
    let ten = trx(10, 1);
    server
        .client
        .sign(request(KEY1, ten, "p-10"))
        .await
        .expect("10 TRX needs no approval");

    let eleven = trx(11, 2);
    let text = statement_of(&mut server, &eleven, "p-11").await;
    let txid = hex::encode(tron_proto::txid(&eleven));
    let hash = server
        .client
        .get_policy(tron_proto::signer::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .hash;
    for line in [
        "tron-signer approval statement v1\n",
        "\ndecision: approve\n",
        "\nnetwork: nile\n",
        &format!("\nsigning key: {KEY1} \"hot 1\"\n"),
        &format!("\ndestination: {} \"exchange\"\n", dest(0xa1)),
        "\nasset: TRX\n",
        "\namount: 11 TRX (11000000 sun)\n",
        &format!("\ntxid: {txid}\n"),
        "\npayout id: p-11\n",
        &format!("\npolicy: {hash}\n"),
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }

    // Sign without approvals: refused, the statement in the refusal's binary metadata.
    let st = server
        .client
        .sign(request(KEY1, eleven.clone(), "p-11"))
        .await
        .expect_err("needs approval");
    assert_eq!(reason(&st), "approval_required");
    assert!(
        st.message().contains("2 of \"treasury\""),
        "{}",
        st.message()
    );
    let meta = st
        .metadata()
        .get_bin("approval-statement-bin")
        .expect("statement metadata")
        .to_bytes()
        .expect("bytes");
    assert_eq!(std::str::from_utf8(&meta).unwrap(), text);
    assert_eq!(s.records_with("approval_required").len(), 2);
}

#[tokio::test]
async fn every_void_approval_is_refused_with_its_reason_and_a_quorum_signs() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;
    let raw = trx(50, 1);
    let text = statement_of(&mut server, &raw, "p-50").await;
    let sig = |k: &SshKey| approval(k.sign_text(NAMESPACE, &text));
    let p = &people;

    // M-1 approvals.
    let (code, msg) = refused(&mut server, with(&raw, "p-50", vec![sig(&p.alice)])).await;
    assert_eq!(code, "approval_required");
    assert!(msg.contains("approved so far by \"alice\""), "{msg}");
    assert!(msg.contains("still needed: 1 of \"treasury\""), "{msg}");

    let cases: Vec<(&str, Vec<Approval>, &str)> = vec![
        (
            "one approver twice",
            vec![sig(&p.alice), sig(&p.alice)],
            "approval_duplicate",
        ),
        (
            "an approver outside the group",
            vec![sig(&p.alice), sig(&p.eve)],
            "approver_not_in_group",
        ),
        (
            "the initiator approving its own payout",
            vec![sig(&p.alice), sig(&p.mallory)],
            "approval_by_initiator",
        ),
        (
            "a key that is no approver",
            vec![sig(&p.alice), sig(&p.stranger)],
            "approver_unknown",
        ),
        (
            "another namespace",
            vec![sig(&p.alice), approval(p.bob.sign_text("git", &text))],
            "approval_invalid",
        ),
        (
            "not a signature",
            vec![sig(&p.alice), approval("approved!".into())],
            "approval_invalid",
        ),
        (
            "a rejection",
            vec![
                sig(&p.alice),
                approval(p.bob.sign_text(NAMESPACE, &reject_of(&text))),
            ],
            "approval_rejected",
        ),
    ];
    for (what, approvals, want) in cases {
        let (code, msg) = refused(&mut server, with(&raw, "p-50", approvals)).await;
        assert_eq!(code, want, "{what}: {msg}");
    }

    // Approvals of other requests: another txid (the same payout, another amount or
    // destination changes the txid too), another payout id, another policy hash.
    let other_amount = trx(51, 1);
    let other_text = statement_of(&mut server, &other_amount, "p-50").await;
    let other = approval(p.bob.sign_text(NAMESPACE, &other_text));
    let (code, _) = refused(&mut server, with(&raw, "p-50", vec![sig(&p.alice), other])).await;
    assert_eq!(code, "approval_invalid");
    let to_other = Tx::trx(KEY1, dest(0xa2), 50 * TRX).nonce(1).raw();
    let (code, _) = refused(
        &mut server,
        with(&to_other, "p-50", vec![sig(&p.alice), sig(&p.bob)]),
    )
    .await;
    // (Refused by the policy first: dest 0xa2 is not allowlisted; approvals lift nothing.)
    assert_eq!(code, "destination_not_allowed");
    let mut mismatched = approval(p.bob.sign_text(NAMESPACE, &other_text));
    mismatched.statement = other_text.clone();
    let (code, msg) = refused(
        &mut server,
        with(&raw, "p-50", vec![sig(&p.alice), mismatched]),
    )
    .await;
    assert_eq!(code, "approval_mismatch");
    assert!(msg.contains("\"amount\" line"), "{msg}");
    let other_payout = text.replace("\npayout id: p-50\n", "\npayout id: p-other\n");
    let (code, _) = refused(
        &mut server,
        with(
            &raw,
            "p-50",
            vec![
                sig(&p.alice),
                approval(p.bob.sign_text(NAMESPACE, &other_payout)),
            ],
        ),
    )
    .await;
    assert_eq!(code, "approval_invalid");

    // A quorum: one Ed25519 and one ECDSA approver, the statement sent along for one.
    let mut frank = sig(&p.frank);
    frank.statement = text.clone();
    let signed = server
        .client
        .sign(with(&raw, "p-50", vec![sig(&p.alice), frank]))
        .await
        .expect("two of treasury sign")
        .into_inner();
    let rule = signed.decision.unwrap().rule;
    assert!(rule.contains("approved by \"alice\", \"frank\""), "{rule}");

    // The record names both approvers and keeps their signatures; audit verify re-checks
    // them, and ssh-keygen alone accepts them from the export.
    let rec = s
        .records_with("signed")
        .into_iter()
        .find(|r| r["payout_id"] == "p-50")
        .expect("the signed record");
    let kept = &rec["approvals"];
    assert_eq!(kept["statement"], text.as_str());
    let names: Vec<&str> = kept["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approver"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "frank"]);
    assert_eq!(kept["approvals"][0]["fingerprint"], p.alice.fingerprint());
    assert_eq!(kept["approvals"][1]["fingerprint"], p.frank.fingerprint());
    for (a, key) in kept["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&p.alice, &p.frank])
    {
        key.assert_verifies(
            a["approver"].as_str().unwrap(),
            NAMESPACE,
            a["signature"].as_str().unwrap(),
            kept["statement"].as_str().unwrap(),
        );
    }
    let out = s.audit_verify();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("2 with approvals, every signature re-verified"),
        "{said}"
    );

    // The rejection's record keeps the rejecting signature too.
    let rejected = s.records_with("approval_rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0]["approvals"]["approvals"][1]["decision"],
        "reject"
    );

    // Under another policy the same approvals are void: the statement names the old hash.
    let raw2 = trx(60, 2);
    let text2 = statement_of(&mut server, &raw2, "p-60").await;
    let both = vec![
        approval(p.alice.sign_text(NAMESPACE, &text2)),
        approval(p.bob.sign_text(NAMESPACE, &text2)),
    ];
    std::fs::write(&s.policy, policy(&people, "approvals, reloaded")).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.records_with("policy_reloaded").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no reload");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, _) = refused(&mut server, with(&raw2, "p-60", both)).await;
    assert_eq!(code, "approval_invalid");
    s.assert_audit_verifies();
}

#[tokio::test]
async fn two_group_tiers_seat_each_person_once() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;
    let p = &people;
    let raw = trx(150, 1);
    let text = statement_of(&mut server, &raw, "p-150").await;
    let sig = |k: &SshKey| approval(k.sign_text(NAMESPACE, &text));

    // Carol is in treasury and risk, but counts once.
    let (code, msg) = refused(
        &mut server,
        with(&raw, "p-150", vec![sig(&p.alice), sig(&p.carol)]),
    )
    .await;
    assert_eq!(code, "approval_required");
    assert!(
        msg.contains("needs approval by 2 of \"treasury\" and 1 of \"risk\""),
        "{msg}"
    );
    // Two people fill two of the three seats, whichever group carol is placed in.
    assert!(msg.contains("; still needed: 1 of \""), "{msg}");
    // Two of treasury without risk.
    let (code, msg) = refused(
        &mut server,
        with(&raw, "p-150", vec![sig(&p.alice), sig(&p.bob)]),
    )
    .await;
    assert_eq!(code, "approval_required");
    assert!(msg.contains("still needed: 1 of \"risk\""), "{msg}");
    // Carol is placed in risk so alice and bob fill treasury.
    server
        .client
        .sign(with(
            &raw,
            "p-150",
            vec![sig(&p.carol), sig(&p.alice), sig(&p.bob)],
        ))
        .await
        .expect("treasury 2 and risk 1");
}

#[tokio::test]
async fn an_expired_transaction_voids_its_approvals() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;
    let mut tx = Tx::trx(KEY1, dest(0xa1), 50 * TRX);
    tx.expiration = now_ms() + 2_000;
    let raw = tx.raw();
    let text = statement_of(&mut server, &raw, "p-exp").await;
    let both = vec![
        approval(people.alice.sign_text(NAMESPACE, &text)),
        approval(people.bob.sign_text(NAMESPACE, &text)),
    ];
    while now_ms() <= tx.expiration {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The policy's 60 s clock skew would still sign this transaction; its approvals are void.
    let (code, msg) = refused(&mut server, with(&raw, "p-exp", both)).await;
    assert_eq!(code, "approval_expired", "{msg}");
}

/// Runs `tron-signer approve` with `args`, `stdin` as its input.
fn approve(s: &Setup, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("approve")
        .args(["--policy", path_str(&s.policy)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tron-signer approve");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn failed_with(out: &std::process::Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("error [{code}]")), "{err}");
}

#[tokio::test]
async fn approvers_sign_with_tron_signer_approve() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;
    let raw = trx(50, 1);
    let hex_raw = hex::encode(&raw);
    let text = statement_of(&mut server, &raw, "p-tool").await;

    // The statement the tool builds from the bytes and the policy is the signer's.
    let shown = approve(
        &s,
        &[
            "--raw-data",
            &hex_raw,
            "--payout-id",
            "p-tool",
            "--statement-only",
        ],
        "",
    );
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        said.contains(&format!("--- statement ---\n{text}--- end")),
        "{said}"
    );
    assert!(said.contains("pay      50 TRX"), "{said}");
    assert!(said.contains("needs    2 of \"treasury\""), "{said}");

    // Not confirmed: nothing signed, nothing written.
    let out_no = s.dir.path().join("no.sig");
    let no = approve(
        &s,
        &[
            "--raw-data",
            &hex_raw,
            "--payout-id",
            "p-tool",
            "--ssh-key",
            path_str(&people.alice.key),
            "--out",
            path_str(&out_no),
        ],
        "no\n",
    );
    failed_with(&no, "approve_not_confirmed");
    assert!(!out_no.exists());

    // A key that is no approver, and a transfer that needs no approval.
    let stranger = approve(
        &s,
        &[
            "--raw-data",
            &hex_raw,
            "--payout-id",
            "p-tool",
            "--ssh-key",
            path_str(&people.stranger.key),
            "--yes",
        ],
        "",
    );
    failed_with(&stranger, "approver_unknown");
    let small = approve(
        &s,
        &[
            "--raw-data",
            &hex::encode(trx(5, 9)),
            "--payout-id",
            "p-small",
            "--statement-only",
        ],
        "",
    );
    failed_with(&small, "approval_not_needed");

    // Alice and bob approve through the tool (the raw_data from a file for bob): signed.
    let raw_file = s.dir.path().join("raw.hex");
    std::fs::write(&raw_file, &hex_raw).unwrap();
    let mut approvals = Vec::new();
    for (i, (who, src)) in [
        (&people.alice, vec!["--raw-data", hex_raw.as_str()]),
        (&people.bob, vec!["--raw-data-file", path_str(&raw_file)]),
    ]
    .into_iter()
    .enumerate()
    {
        let out_path = s.dir.path().join(format!("approval-{i}.sig"));
        let mut args = src.clone();
        args.extend([
            "--payout-id",
            "p-tool",
            "--ssh-key",
            path_str(&who.key),
            "--out",
            path_str(&out_path),
        ]);
        let run = approve(&s, &args, "yes\n");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        approvals.push(approval(std::fs::read_to_string(&out_path).unwrap()));
    }
    server
        .client
        .sign(with(&raw, "p-tool", approvals))
        .await
        .expect("approved through the tool");

    // A reject through the tool cancels the next payout.
    let raw2 = trx(60, 2);
    let out = approve(
        &s,
        &[
            "--raw-data",
            &hex::encode(&raw2),
            "--payout-id",
            "p-tool-2",
            "--ssh-key",
            path_str(&people.bob.key),
            "--reject",
            "--yes",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let armored = &stdout[stdout
        .find("-----BEGIN SSH SIGNATURE-----")
        .expect("armored")..];
    let (code, _) = refused(
        &mut server,
        with(&raw2, "p-tool-2", vec![approval(armored.to_owned())]),
    )
    .await;
    assert_eq!(code, "approval_rejected");
}

/// Hostile approvals cost a bounded amount and each is refused for what it is: too many,
/// too large, attached to a transfer that needs none.
#[tokio::test]
async fn oversized_or_needless_approvals_are_refused() {
    let people = People::new();
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(&people, "approvals"));
    let mut server = s.start().await;
    let base = Tx::trx(KEY1, dest(0xa1), 50 * TRX).nonce(1);
    let raw = base.raw();
    let text = statement_of(&mut server, &raw, "p-h").await;
    let alice = approval(people.alice.sign_text(NAMESPACE, &text));

    let many = vec![alice.clone(); 17];
    let (code, msg) = refused(&mut server, with(&raw, "p-h", many)).await;
    assert_eq!(code, "approval_invalid");
    assert!(msg.contains("17 approvals; at most 16"), "{msg}");

    let mut padded = alice.clone();
    padded.signature = format!("{}{}", " ".repeat(5000), alice.signature);
    let (code, msg) = refused(&mut server, with(&raw, "p-h", vec![padded])).await;
    assert_eq!(code, "approval_invalid");
    assert!(msg.contains("at most 4096"), "{msg}");

    let mut long_statement = alice.clone();
    long_statement.statement = "x".repeat(5000);
    let (code, _) = refused(&mut server, with(&raw, "p-h", vec![long_statement])).await;
    assert_eq!(code, "approval_invalid");

    // 5 TRX needs no approval: an approval attached to it counts for nothing, so it is refused.
    // The same expiration: only amount, txid and payout id differ in its statement.
    let small = base.with_amount(5 * u128::from(TRX)).nonce(2).raw();
    let small_text = text
        .replace(
            "amount: 50 TRX (50000000 sun)",
            "amount: 5 TRX (5000000 sun)",
        )
        .replace(
            &hex::encode(tron_proto::txid(&raw)),
            &hex::encode(tron_proto::txid(&small)),
        )
        .replace("payout id: p-h", "payout id: p-small");
    let needless = approval(people.alice.sign_text(NAMESPACE, &small_text));
    let (code, msg) = refused(&mut server, with(&small, "p-small", vec![needless])).await;
    assert_eq!(code, "approver_not_in_group", "{msg}");
    assert!(msg.contains("this transfer needs no approval"), "{msg}");
    s.assert_audit_verifies();
}
