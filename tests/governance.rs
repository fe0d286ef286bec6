//! Policy governance (issue 14, items 1, 2 and 6) on the real binary: with `[policy_admins]`
//! in the config, a policy goes into force (at start-up and on SIGHUP) only with a quorum of
//! the administrators' `ssh-keygen -Y sign` signatures over its exact bytes, made here with
//! `tron-signer policy sign` and real `ssh-keygen` keys; a policy whose revision is not above
//! the one recorded in force is refused (`policy_rollback`) at reload and at start-up,
//! however validly it is signed. `policy verify` shows who signed.

mod common;

use common::exporter::Exporter as SshKey;
use common::*;

struct Admins {
    alice: SshKey,
    bob: SshKey,
    carol: SshKey,
    /// No administrator.
    mallory: SshKey,
}

impl Admins {
    fn new() -> Admins {
        Admins {
            alice: SshKey::new("alice"),
            bob: SshKey::new("bob"),
            carol: SshKey::new("carol"),
            mallory: SshKey::new("mallory"),
        }
    }

    /// `[policy_admins]`: alice, bob and carol, two of them needed.
    fn section(&self) -> String {
        format!(
            "[policy_admins]\nthreshold = 2\nadmins = [\n  {{ name = \"alice\", key = \"{}\" }},\n  {{ name = \"bob\", key = \"{}\" }},\n  {{ name = \"carol\", key = \"{}\" }},\n]\n",
            self.alice.public_line, self.bob.public_line, self.carol.public_line
        )
    }
}

/// The test policy at `revision` (none when 0), TRX per transaction at most `per_tx`.
fn policy(revision: u64, per_tx: &str) -> String {
    let text = PolicyText::new("governed")
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "24h", "100")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", per_tx),
                ),
        )
        .text();
    if revision == 0 {
        text
    } else {
        text.replacen(
            "version = 1\n",
            &format!("version = 1\nrevision = {revision}\n"),
            1,
        )
    }
}

fn setup(admins: &Admins, text: &str) -> Setup {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], text);
    s.write_config(&format!("{}{}", s.keystore_section(), admins.section()));
    s
}

/// `tron-signer policy sign` of the setup's policy file as `name` with `key`.
fn sign_as(s: &Setup, key: &SshKey, name: &str) {
    let out = s.run(&[
        "policy",
        "sign",
        path_str(&s.policy),
        "--ssh-key",
        path_str(&key.key),
        "--name",
        name,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes every signature file of the setup's policy.
fn unsign(s: &Setup) {
    for e in std::fs::read_dir(s.dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("policy.toml.sig.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
}

/// Starts `serve` expecting it to refuse: the `error [code]` line it prints.
fn refused_start(s: &Setup, code: &str) -> String {
    let (status, log) = s.serve_until_exit();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("error [{code}]")),
        "{code} not in:\n{log}"
    );
    log
}

fn verify(s: &Setup) -> (Option<i32>, String) {
    let out = s.run(&[
        "policy",
        "verify",
        path_str(&s.policy),
        "--config",
        path_str(&s.config),
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_policy_goes_into_force_only_with_a_quorum_over_its_exact_bytes() {
    let a = Admins::new();
    let s = setup(&a, &policy(1, "5"));

    // Unsigned.
    refused_start(&s, "policy_unsigned");
    let (code, said) = verify(&s);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("no signature files"), "{said}");

    // Under-signed: one of two, and a non-administrator does not make up the second.
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.mallory, "mallory");
    let log = refused_start(&s, "policy_quorum_not_met");
    assert!(log.contains("which is no policy administrator"), "{log}");

    // Bob signed other bytes: the file changed after he signed.
    unsign(&s);
    std::fs::write(&s.policy, policy(1, "6")).unwrap();
    sign_as(&s, &a.bob, "bob");
    std::fs::write(&s.policy, policy(1, "5")).unwrap();
    sign_as(&s, &a.alice, "alice");
    let log = refused_start(&s, "policy_quorum_not_met");
    assert!(log.contains("over other bytes"), "{log}");

    // Alice and bob over these bytes: the quorum.
    std::fs::remove_file(s.dir.path().join("policy.toml.sig.bob")).unwrap();
    sign_as(&s, &a.bob, "bob");
    let (code, said) = verify(&s);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("signed by \"alice\"") && said.contains("signed by \"bob\""),
        "{said}"
    );
    assert!(said.contains("quorum: 2 of 2 needed — met"), "{said}");
    let server = s.start().await;
    let start = s.records_with("policy_in_force");
    assert_eq!(start.len(), 1);
    let msg = start[0]["message"].as_str().unwrap();
    assert!(msg.contains("signed by \"alice\", \"bob\""), "{msg}");
    server.stop();
    // A restart with the same file records nothing new.
    let server = s.start().await;
    assert_eq!(s.records_with("policy_in_force").len(), 1);
    server.stop();
    s.assert_audit_verifies();
}

#[tokio::test]
async fn no_rollback_at_reload_or_start_however_it_is_signed() {
    let a = Admins::new();
    let s = setup(&a, &policy(1, "5"));
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    let old_text = std::fs::read_to_string(&s.policy).unwrap();
    let old_sigs: Vec<(String, String)> = ["alice", "bob"]
        .iter()
        .map(|n| {
            let p = s.dir.path().join(format!("policy.toml.sig.{n}"));
            ((*n).to_owned(), std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let mut server = s.start().await;

    // Revision 2, signed by alice and carol: reloaded.
    unsign(&s);
    std::fs::write(&s.policy, policy(2, "7")).unwrap();
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.carol, "carol");
    server.signal("HUP");
    wait_for_records(&s, "policy_reloaded", 1).await;
    let seven = Tx::trx(KEY1, dest(0xa1), 7_000_000).raw();
    server
        .client
        .sign(request(KEY1, seven, "p-7"))
        .await
        .expect("7 TRX allowed under revision 2");

    // Unsigned revision 3 at reload: refused, revision 2 stays.
    unsign(&s);
    std::fs::write(&s.policy, policy(3, "9")).unwrap();
    server.signal("HUP");
    let refused = wait_for_records(&s, "policy_unsigned", 1).await;
    assert!(refused[0]["message"]
        .as_str()
        .unwrap()
        .contains("old one stays in force"));

    // Revision 1 again, with its valid signatures: a rollback.
    std::fs::write(&s.policy, &old_text).unwrap();
    for (n, sig) in &old_sigs {
        std::fs::write(s.dir.path().join(format!("policy.toml.sig.{n}")), sig).unwrap();
    }
    server.signal("HUP");
    let rollback = wait_for_records(&s, "policy_rollback", 1).await;
    let msg = rollback[0]["message"].as_str().unwrap();
    assert!(msg.contains("revision 1, not above revision 2"), "{msg}");
    let still = Tx::trx(KEY1, dest(0xa1), 7_000_000).nonce(2).raw();
    server
        .client
        .sign(request(KEY1, still, "p-7b"))
        .await
        .expect("revision 2 still in force");
    server.stop();

    // And at start-up.
    let log = refused_start(&s, "policy_rollback");
    assert!(log.contains("not above revision 2"), "{log}");

    // With administrators, a policy must state a revision.
    unsign(&s);
    std::fs::write(&s.policy, policy(0, "5")).unwrap();
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    let log = refused_start(&s, "policy_rollback");
    assert!(log.contains("states no revision"), "{log}");
    s.assert_audit_verifies();
}

/// Waits (10 s at most) for `n` audit records with `code`; returns them.
async fn wait_for_records(s: &Setup, code: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = s.records_with(code);
        if found.len() >= n {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "no {code} record");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `policy` with top-level `lines` added after the format version.
fn with_lines(text: &str, lines: &str) -> String {
    text.replacen("version = 1\n", &format!("version = 1\n{lines}"), 1)
}

fn instant(ms: i64) -> String {
    // Whole seconds, as an operator writes them.
    let s = ms.div_euclid(1000);
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{s}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn not_before_and_expires_at_are_enforced() {
    // Not valid yet: no start.
    let future = instant(now_ms() + 3_600_000);
    let s = Setup::new(
        &[("hot 1", KEY1_SECRET)],
        &with_lines(&policy(0, "5"), &format!("not_before = \"{future}\"\n")),
    );
    refused_start(&s, "policy_not_yet_valid");

    // Already expired: no start either.
    let past = instant(now_ms() - 1000);
    std::fs::write(
        &s.policy,
        with_lines(&policy(0, "5"), &format!("expires_at = \"{past}\"\n")),
    )
    .unwrap();
    refused_start(&s, "policy_expired");

    // Expiring in a few seconds: it signs, then refuses everything.
    let soon_ms = (now_ms() / 1000 + 4) * 1000;
    std::fs::write(
        &s.policy,
        with_lines(
            &policy(0, "5"),
            &format!("expires_at = \"{}\"\n", instant(soon_ms)),
        ),
    )
    .unwrap();
    let mut server = s.start().await;
    server
        .client
        .sign(request(
            KEY1,
            Tx::trx(KEY1, dest(0xa1), 1_000_000).raw(),
            "p-1",
        ))
        .await
        .expect("signs before expires_at");
    while now_ms() < soon_ms + 100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let raw = Tx::trx(KEY1, dest(0xa1), 1_000_000).nonce(2).raw();
    let st = server
        .client
        .sign(request(KEY1, raw.clone(), "p-2"))
        .await
        .expect_err("expired");
    assert_eq!(reason(&st), "policy_expired", "{st:?}");
    let e = server
        .client
        .evaluate(request(KEY1, raw, "p-2"))
        .await
        .expect("Evaluate answers")
        .into_inner();
    assert_eq!(e.decision.unwrap().reason_code, "policy_expired");

    // A malformed instant is a load problem.
    let bad = Setup::bare(&with_lines(
        &policy(0, "5"),
        "expires_at = \"2026-12-01\"\n",
    ));
    let out = bad.run(&["policy", "check", path_str(&bad.policy)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[bad_time]"));
}

/// `tron-signer freeze` by `key` against the running signer of `s`, with `args`.
fn freeze(s: &Setup, key: &SshKey, args: &[&str]) -> std::process::Output {
    let endpoint = s.endpoint();
    let mut all = vec![
        "freeze",
        "--endpoint",
        endpoint.as_str(),
        "--ssh-key",
        path_str(&key.key),
    ];
    all.extend_from_slice(args);
    s.run(&all)
}

fn failed_with(out: &std::process::Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("error [{code}]")),
        "{code} not in: {err}"
    );
}

/// Signs with `raw` and expects the refusal `code`; returns its message.
async fn refused_with(server: &mut Server, raw: Vec<u8>, payout: &str, code: &str) -> String {
    let st = server
        .client
        .sign(request(KEY1, raw, payout))
        .await
        .expect_err("refused");
    assert_eq!(reason(&st), code, "{}", st.message());
    st.message().to_owned()
}

/// Item 3: any one administrator freezes a key (or every key) with `tron-signer freeze`;
/// the freeze is durable across a restart, refuses replays of stored signatures too, and
/// holds until a new policy signed by a quorum is in force; a non-administrator's, a
/// tampered and a stale statement are refused, each with its own code.
#[tokio::test]
async fn one_administrator_freezes_and_only_a_new_quorum_signed_policy_lifts_it() {
    use tron_proto::signer::FreezeRequest;
    const NAMESPACE: &str = "tron-signer-freeze";
    let a = Admins::new();
    let s = setup(&a, &policy(1, "5"));
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    let mut server = s.start().await;
    let trx = |nonce: u16| Tx::trx(KEY1, dest(0xa1), 1_000_000).nonce(nonce).raw();
    server
        .client
        .sign(request(KEY1, trx(1), "p-1"))
        .await
        .expect("signs before the freeze");

    // A key no administrator has.
    let out = freeze(
        &s,
        &a.mallory,
        &["--key", KEY1, "--reason", "not mine to say"],
    );
    failed_with(&out, "freeze_not_admin");
    server
        .client
        .sign(request(KEY1, trx(2), "p-2"))
        .await
        .expect("not frozen by a non-administrator");

    // Carol alone freezes the key.
    let out = freeze(
        &s,
        &a.carol,
        &["--key", KEY1, "--reason", "hot wallet host compromised"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.starts_with("tron-signer freeze statement v1\n"),
        "{said}"
    );
    assert!(
        said.contains(&format!("key {KEY1} frozen by administrator \"carol\"")),
        "{said}"
    );
    let msg = refused_with(&mut server, trx(3), "p-3", "frozen").await;
    assert!(msg.contains("hot wallet host compromised"), "{msg}");
    // The stored signature of p-1 is not handed out again either.
    refused_with(&mut server, trx(1), "p-1", "frozen").await;
    let e = server
        .client
        .evaluate(request(KEY1, trx(3), "p-3"))
        .await
        .expect("Evaluate answers")
        .into_inner()
        .decision
        .unwrap();
    assert_eq!(e.reason_code, "frozen");

    // A statement changed after signing, and one for another policy, are refused.
    let hash = server
        .client
        .get_policy(tron_proto::signer::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner()
        .hash;
    let out = freeze(
        &s,
        &a.alice,
        &["--all", "--reason", "everything", "--statement-only"],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("\npolicy: {hash}\n")), "{text}");
    let signature = a.alice.sign_text(NAMESPACE, &text);
    let edited = text.replace("everything", "everything now");
    let st = server
        .client
        .freeze(FreezeRequest {
            statement: edited,
            signature: signature.clone(),
        })
        .await
        .expect_err("tampered");
    assert_eq!(reason(&st), "freeze_invalid", "{}", st.message());
    let policy_signature = a.alice.sign_text("tron-signer-policy", &text);
    let st = server
        .client
        .freeze(FreezeRequest {
            statement: text.clone(),
            signature: policy_signature,
        })
        .await
        .expect_err("another namespace");
    assert_eq!(reason(&st), "freeze_invalid", "{}", st.message());

    // Durable: still frozen after a restart.
    server.stop();
    let mut server = s.start().await;
    refused_with(&mut server, trx(4), "p-4", "frozen").await;

    // A new policy under-signed (carol alone) is refused: still frozen.
    unsign(&s);
    std::fs::write(&s.policy, policy(2, "5")).unwrap();
    sign_as(&s, &a.carol, "carol");
    server.signal("HUP");
    wait_for_records(&s, "policy_quorum_not_met", 1).await;
    refused_with(&mut server, trx(5), "p-5", "frozen").await;

    // Signed by a quorum: in force, and the freeze is lifted.
    sign_as(&s, &a.bob, "bob");
    server.signal("HUP");
    wait_for_records(&s, "policy_reloaded", 1).await;
    server
        .client
        .sign(request(KEY1, trx(6), "p-6"))
        .await
        .expect("signs again under the new policy");

    // Alice's statement names the old policy: stale now.
    let st = server
        .client
        .freeze(FreezeRequest {
            statement: text,
            signature,
        })
        .await
        .expect_err("stale");
    assert_eq!(reason(&st), "freeze_stale", "{}", st.message());
    server.stop();

    let applied = s.records_with("freeze_applied");
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["caller"], "test suite");
    assert!(applied[0]["message"]
        .as_str()
        .unwrap()
        .contains("frozen by administrator \"carol\""));
    assert_eq!(s.records_with("freeze_not_admin").len(), 1);
    s.assert_audit_verifies();
}

/// Without `[policy_admins]` nobody can sign a freeze: refused, audited.
#[tokio::test]
async fn without_administrators_a_freeze_is_unavailable() {
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &policy(1, "5"));
    let mut server = s.start().await;
    let st = server
        .client
        .freeze(tron_proto::signer::FreezeRequest {
            statement: "tron-signer freeze statement v1\n".into(),
            signature: String::new(),
        })
        .await
        .expect_err("no administrators");
    assert_eq!(reason(&st), "freeze_unavailable", "{}", st.message());
    assert_eq!(s.records_with("freeze_unavailable").len(), 1);
}

/// `policy` with a `[policy_admins]` section naming `admins`, `threshold` of them needed.
fn with_admins(policy: &str, admins: &[(&str, &SshKey)], threshold: usize) -> String {
    let entries: Vec<String> = admins
        .iter()
        .map(|(n, k)| format!("  {{ name = \"{n}\", key = \"{}\" }},\n", k.public_line))
        .collect();
    format!(
        "{policy}\n[policy_admins]\nthreshold = {threshold}\nadmins = [\n{}]\n",
        entries.concat()
    )
}

/// Item 1, the administrator set living in the policy: a policy that hands the set to new
/// administrators goes into force only with the current set's quorum (the config's at
/// first), not the new set's; from then on the new set, and only it, signs the next one, at
/// reload and at start-up (read back from the archive). A restart with the policy recorded
/// in force is not judged again.
#[tokio::test]
async fn an_admin_set_change_needs_the_current_quorum_and_the_new_set_signs_after() {
    let a = Admins::new();
    let dave = SshKey::new("dave");
    let erin = SshKey::new("erin");
    let new_set = [("dave", &dave), ("erin", &erin)];
    let s = setup(&a, &policy(1, "5"));
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    let mut server = s.start().await;

    // Revision 2 hands the set to dave and erin: their own signatures do not count yet.
    unsign(&s);
    std::fs::write(&s.policy, with_admins(&policy(2, "5"), &new_set, 2)).unwrap();
    sign_as(&s, &dave, "dave");
    sign_as(&s, &erin, "erin");
    server.signal("HUP");
    let refused = wait_for_records(&s, "policy_unsigned", 1).await;
    assert!(
        refused[0]["message"]
            .as_str()
            .unwrap()
            .contains("which is no policy administrator"),
        "{refused:?}"
    );
    // The current quorum (the config's alice and bob) puts it in force.
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    server.signal("HUP");
    wait_for_records(&s, "policy_reloaded", 1).await;

    // Now alice and bob are no administrators any more...
    unsign(&s);
    std::fs::write(&s.policy, with_admins(&policy(3, "7"), &new_set, 2)).unwrap();
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    server.signal("HUP");
    wait_for_records(&s, "policy_unsigned", 2).await;
    let out = freeze(&s, &a.alice, &["--all", "--reason", "former admin"]);
    failed_with(&out, "freeze_not_admin");
    // ...and dave and erin sign revision 3 in.
    sign_as(&s, &dave, "dave");
    sign_as(&s, &erin, "erin");
    server.signal("HUP");
    wait_for_records(&s, "policy_reloaded", 2).await;
    let seven = Tx::trx(KEY1, dest(0xa1), 7_000_000).raw();
    server
        .client
        .sign(request(KEY1, seven, "p-7"))
        .await
        .expect("revision 3 in force");
    server.stop();

    // A restart with revision 3 is not judged again, even with its signatures gone.
    unsign(&s);
    s.start().await.stop();

    // At start-up the set comes from the archived policy in force: alice and bob cannot
    // sign revision 4 in.
    std::fs::write(&s.policy, with_admins(&policy(4, "8"), &new_set, 2)).unwrap();
    sign_as(&s, &a.alice, "alice");
    sign_as(&s, &a.bob, "bob");
    refused_start(&s, "policy_unsigned");
    // Without the archive the successor's signers are unknown: refused, not guessed.
    let archived = s
        .data_dir
        .join("policies")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    let backup = s.dir.path().join("archive-backup");
    std::fs::create_dir(&backup).unwrap();
    for p in &archived {
        std::fs::rename(p, backup.join(p.file_name().unwrap())).unwrap();
    }
    refused_start(&s, "policy_admins_unknown");
    for p in &archived {
        std::fs::rename(backup.join(p.file_name().unwrap()), p).unwrap();
    }
    sign_as(&s, &dave, "dave");
    sign_as(&s, &erin, "erin");
    s.start().await.stop();
    s.assert_audit_verifies();

    // A policy naming administrators under a config without any is refused.
    let bare = Setup::new(
        &[("hot 1", KEY1_SECRET)],
        &with_admins(&policy(1, "5"), &new_set, 1),
    );
    refused_start(&bare, "policy_admins_not_configured");
}
