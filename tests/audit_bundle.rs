//! Offline evidence for auditors (issue 14, item 7) on the real binary: a signer with policy
//! administrators puts a signed policy in force, reloads a second one, signs requests (one
//! with an approval made by the real `ssh-keygen`); `audit bundle` takes a stretch of its
//! live ledger with both policies and their archived signatures; `audit verify --bundle`
//! accepts it, against the config's administrators or the bundle's own keys, and refuses it
//! after one byte of a record, a policy text or a signature is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::exporter::Exporter as SshKey;
use common::*;
use tron_proto::signer::{Approval, SignRequest};

const TRX: u64 = 1_000_000;

struct People {
    alice: SshKey,
    bob: SshKey,
    carol: SshKey,
    /// The approver.
    dave: SshKey,
    /// No administrator.
    mallory: SshKey,
}

impl People {
    fn new() -> People {
        People {
            alice: SshKey::new("alice"),
            bob: SshKey::new("bob"),
            carol: SshKey::new("carol"),
            dave: SshKey::new("dave"),
            mallory: SshKey::new("mallory"),
        }
    }

    /// alice, bob and carol, two of them needed.
    fn admins(&self) -> String {
        format!(
            "[policy_admins]\nthreshold = 2\nadmins = [\n  {{ name = \"alice\", key = \"{}\" }},\n  {{ name = \"bob\", key = \"{}\" }},\n  {{ name = \"carol\", key = \"{}\" }},\n]\n",
            self.alice.public_line, self.bob.public_line, self.carol.public_line
        )
    }
}

/// Revision `revision` of a policy named `name`; the second also asks dave's approval
/// above 10 TRX.
fn policy(people: &People, name: &str, revision: u64) -> String {
    let text = PolicyText::new(name)
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "24h", "1000")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["TRX"]).per_tx_max("TRX", "50"),
                ),
        )
        .text()
        .replacen(
            "version = 1\n",
            &format!("version = 1\nrevision = {revision}\n"),
            1,
        );
    if revision == 1 {
        return text;
    }
    format!(
        "{text}\n[[approver]]\nname = \"dave\"\ngroups = [\"treasury\"]\nkey = \"{}\"\n\n\
         [[approval]]\nasset = \"TRX\"\nabove = \"10\"\nrequire = {{ treasury = 1 }}\n",
        people.dave.public_line
    )
}

fn sign_policy_as(s: &Setup, key: &SshKey, name: &str) {
    let out = s.run(&[
        "policy",
        "sign",
        path_str(&s.policy),
        "--ssh-key",
        path_str(&key.key),
        "--name",
        name,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn unsign(s: &Setup) {
    for name in ["alice", "bob", "carol"] {
        let _ = std::fs::remove_file(s.dir.path().join(format!("policy.toml.sig.{name}")));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Waits (10 s at most) for `n` audit records with `code`.
async fn wait_for_records(s: &Setup, code: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.records_with(code).len() < n {
        assert!(std::time::Instant::now() < deadline, "no {code} record");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn trx(amount: u64, nonce: u16) -> Vec<u8> {
    Tx::trx(KEY1, dest(0xa1), amount * TRX).nonce(nonce).raw()
}

/// `audit bundle` of records `from..=to` into `out`.
fn bundle(s: &Setup, from: u64, to: u64, out: &Path) -> Output {
    s.run(&[
        "audit",
        "bundle",
        "--data-dir",
        path_str(&s.data_dir),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--out",
        path_str(out),
    ])
}

/// `audit verify --bundle FILE` (with `--config` when given): exit code, stdout, stderr.
fn verify(s: &Setup, file: &Path, config: Option<&Path>) -> (Option<i32>, String, String) {
    let mut args = vec!["audit", "verify", "--bundle", path_str(file)];
    if let Some(c) = config {
        args.extend(["--config", path_str(c)]);
    }
    let out = s.run(&args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A copy of `file` with the byte at `at` replaced by `with`.
fn with_byte(file: &Path, at: usize, with: u8, name: &str) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    assert_ne!(bytes[at], with, "the byte must change");
    bytes[at] = with;
    let out = file.with_file_name(name);
    std::fs::write(&out, bytes).unwrap();
    out
}

fn find(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle:?} not in the bundle"))
}

/// A running signer with a signed policy, a reload to a second signed policy, and three
/// signed requests, the last with an approval. Returns the setup, the server, the people,
/// and the two policies' texts.
async fn history() -> (Setup, Server, People, String, String) {
    let p = People::new();
    let one = policy(&p, "bundle one", 1);
    let s = Setup::new(&[("hot 1", KEY1_SECRET)], &one);
    s.write_config(&format!("{}{}", s.keystore_section(), p.admins()));
    sign_policy_as(&s, &p.alice, "alice");
    sign_policy_as(&s, &p.bob, "bob");
    let mut server = s.start().await;
    server
        .client
        .sign(request(KEY1, trx(1, 1), "p-1"))
        .await
        .expect("1 TRX under policy one");

    let two = policy(&p, "bundle two", 2);
    unsign(&s);
    std::fs::write(&s.policy, &two).unwrap();
    sign_policy_as(&s, &p.alice, "alice");
    sign_policy_as(&s, &p.carol, "carol");
    server.signal("HUP");
    wait_for_records(&s, "policy_reloaded", 1).await;
    server
        .client
        .sign(request(KEY1, trx(2, 2), "p-2"))
        .await
        .expect("2 TRX needs no approval");

    let twenty = trx(20, 3);
    let statement = server
        .client
        .evaluate(request(KEY1, twenty.clone(), "p-20"))
        .await
        .expect("Evaluate answers")
        .into_inner()
        .decision
        .expect("a decision")
        .approval_statement;
    assert!(!statement.is_empty(), "20 TRX needs an approval");
    let approval = Approval {
        signature: p.dave.sign_text("tron-signer-approval", &statement),
        statement: String::new(),
    };
    server
        .client
        .sign(SignRequest {
            approvals: vec![approval],
            ..request(KEY1, twenty, "p-20")
        })
        .await
        .expect("20 TRX with dave's approval");
    (s, server, p, one, two)
}

#[tokio::test]
async fn a_bundle_of_a_live_ledger_verifies_and_one_changed_byte_is_caught() {
    if skip_on_postgres("a_bundle_of_a_live_ledger_verifies_and_one_changed_byte_is_caught") {
        return;
    }
    let (s, mut server, p, one, two) = history().await;
    let (one_hash, two_hash) = (sha256_hex(one.as_bytes()), sha256_hex(two.as_bytes()));
    let records = s.audit_records();
    // Start, Sign, Reload, Sign, Evaluate, Sign.
    let head = records.len() as u64;
    assert_eq!(head, 6, "{records:#?}");

    // The signatures that put each policy in force are archived beside its text, and
    // ssh-keygen alone accepts them there.
    let archive = s.data_dir.join("policies");
    for (hash, text, signers) in [
        (&one_hash, &one, [("alice", &p.alice), ("bob", &p.bob)]),
        (&two_hash, &two, [("alice", &p.alice), ("carol", &p.carol)]),
    ] {
        for (name, key) in signers {
            let sig = std::fs::read_to_string(archive.join(format!("{hash}.toml.sig.{name}")))
                .unwrap_or_else(|e| panic!("{name}'s signature of {hash} archived: {e}"));
            key.assert_verifies(name, "tron-signer-policy", &sig, text);
        }
    }

    // Bundled while the signer runs; it keeps signing afterwards.
    let file = s.dir.path().join("evidence.json");
    let out = bundle(&s, 1, head, &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        text(&out.stdout),
        format!(
            "wrote records 1 to 6 (6 records), 2 policies and 4 policy signatures to {} ({size} bytes)\n",
            file.display()
        )
    );
    server
        .client
        .sign(request(KEY1, trx(3, 4), "p-3"))
        .await
        .expect("the signer still signs");

    let last = records[5]["hash"].as_str().unwrap().to_owned();
    let summary = format!(
        "ok: records 1 to 6 (6 records, anchor {}, last hash {last}); 2 policies, each text \
         matching its hash; 1 approvals in 1 records re-verified; 4 policy signatures re-verified\n",
        "0".repeat(64)
    );
    let (code, said, err) = verify(&s, &file, Some(&s.config));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        said,
        format!(
            "{summary}policy administrators: from {}; every policy carries a quorum of them\n",
            s.config.display()
        )
    );

    // Without a config, the keys are the bundle's own, and the output says so.
    let (code, said, err) = verify(&s, &file, None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        said,
        format!(
            "{summary}policy administrators: the keys came from the bundle itself (\"alice\" {}, \
             \"bob\" {}, \"carol\" {}), not from a trust root: give --config SIGNER_CONFIG to \
             check them against the administrators\n",
            p.alice.fingerprint(),
            p.bob.fingerprint(),
            p.carol.fingerprint()
        )
    );

    // Against administrators who never signed these policies: refused.
    let strangers = s.dir.path().join("strangers.toml");
    let config = std::fs::read_to_string(&s.config).unwrap();
    let cut = config.find("[policy_admins]").unwrap();
    std::fs::write(
        &strangers,
        format!(
            "{}[policy_admins]\nthreshold = 1\nadmins = [{{ name = \"mallory\", key = \"{}\" }}]\n",
            &config[..cut],
            p.mallory.public_line
        ),
    )
    .unwrap();
    let (code, _, err) = verify(&s, &file, Some(&strangers));
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error [audit_bundle_signature_invalid]: policy {one_hash}: the signature by \
             \"alice\" does not count: signed by {}, which is no policy administrator\n",
            p.alice.fingerprint()
        )
    );

    // One byte inside a record (a hex digit of record 2's canonical bytes).
    let bytes = std::fs::read(&file).unwrap();
    let second = find(&bytes, "\"sequence\": 2,");
    let at = second + find(&bytes[second..], "\"canonical\": \"") + 200;
    let digit = if bytes[at] == b'0' { b'1' } else { b'0' };
    let changed = with_byte(&file, at, digit, "record.json");
    let (code, said, err) = verify(&s, &changed, Some(&s.config));
    assert_eq!((code, said.as_str()), (Some(1), ""), "{err}");
    assert_eq!(
        err,
        "error [audit_modified]: audit record 2 was modified (its hash does not match its contents)\n"
    );

    // One byte inside a policy text: "bundle two" becomes "bundle Two".
    let at = find(&bytes, "bundle two") + "bundle ".len();
    let changed = with_byte(&file, at, b'T', "policy.json");
    let (code, _, err) = verify(&s, &changed, None);
    assert_eq!(code, Some(1), "{err}");
    let found = sha256_hex(two.replacen("bundle two", "bundle Two", 1).as_bytes());
    assert_eq!(
        err,
        format!(
            "error [audit_bundle_policy_altered]: policy {two_hash}: the text in the bundle \
             hashes to {found}, so it is not the policy the records name (edited)\n"
        )
    );

    // One byte inside a signature (alice's over policy one, the first in the file), near the
    // end of its base64, where the signature bytes are.
    let at = find(&bytes, "-----END SSH SIGNATURE-----") - 12;
    assert!(bytes[at].is_ascii_alphanumeric(), "{}", bytes[at] as char);
    let other = if bytes[at] == b'A' { b'B' } else { b'A' };
    let changed = with_byte(&file, at, other, "signature.json");
    for config in [Some(s.config.as_path()), None] {
        let (code, _, err) = verify(&s, &changed, config);
        assert_eq!(code, Some(1), "{err}");
        assert_eq!(
            err,
            format!(
                "error [audit_bundle_signature_invalid]: policy {one_hash}: the signature by \
                 \"alice\" does not count: the signature does not verify under the key it names \
                 ({}): it was made over other content or altered\n",
                p.alice.fingerprint()
            )
        );
    }

    // A stretch that does not start at 1 links to the hash of the record before it.
    let later = s.dir.path().join("later.json");
    let out = bundle(&s, 3, 5, &later);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (code, said, err) = verify(&s, &later, Some(&s.config));
    assert_eq!(code, Some(0), "{err}");
    let anchor = records[1]["hash"].as_str().unwrap();
    let fifth = records[4]["hash"].as_str().unwrap();
    assert!(
        said.starts_with(&format!(
            "ok: records 3 to 5 (3 records, anchor {anchor}, last hash {fifth}); 1 policies, \
             each text matching its hash; 0 approvals in 0 records re-verified; 2 policy \
             signatures re-verified\n"
        )),
        "{said}"
    );
    server.stop();
    s.assert_audit_verifies();
}

#[tokio::test]
async fn bad_ranges_an_existing_out_and_unreadable_bundles_are_refused_with_exit_2() {
    if skip_on_postgres("bad_ranges_an_existing_out_and_unreadable_bundles_are_refused_with_exit_2")
    {
        return;
    }
    let (s, server, _p, _, _) = history().await;
    server.stop();
    let file = s.dir.path().join("never.json");
    let refused = |out: Output, want: &str| {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), format!("{want}\n"));
        assert!(out.stdout.is_empty());
    };
    refused(
        bundle(&s, 1, 7, &file),
        "error [audit_range]: cannot take audit records 1 to 7: the chain ends at record 6 (its head)",
    );
    refused(
        bundle(&s, 4, 3, &file),
        "error [audit_range]: cannot take audit records 4 to 3: the first record is after the last",
    );
    refused(
        bundle(&s, 0, 3, &file),
        "error [audit_range]: cannot take audit records 0 to 3: sequence numbers start at 1",
    );
    assert!(!file.exists(), "nothing written");

    std::fs::write(&file, "an earlier bundle").unwrap();
    refused(
        bundle(&s, 1, 6, &file),
        &format!(
            "error [audit_bundle_exists]: {} exists; a bundle never replaces a file",
            file.display()
        ),
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "an earlier bundle");

    let (code, said, err) = verify(&s, &file, None);
    assert_eq!((code, said.as_str()), (Some(2), ""));
    assert!(
        err.starts_with(
            "error [audit_bundle_malformed]: not a well-formed audit bundle: not a JSON object: "
        ),
        "{err}"
    );
    let missing = s.dir.path().join("missing.json");
    let (code, _, err) = verify(&s, &missing, None);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(&format!(
            "error [audit_bundle_unreadable]: cannot read {}: ",
            missing.display()
        )),
        "{err}"
    );
    // --config is for bundles; --data-dir and --bundle exclude each other (clap: exit 2).
    let out = s.run(&[
        "audit",
        "verify",
        "--data-dir",
        path_str(&s.data_dir),
        "--config",
        path_str(&s.config),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("'--data-dir <DATA_DIR>' cannot be used with '--config <CONFIG>'"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["audit", "verify", "--data-dir", "x", "--bundle", "y"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}
