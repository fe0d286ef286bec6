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
