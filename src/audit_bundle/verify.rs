//! Checking a bundle with nothing but the bundle (and, when given, the administrators): the
//! chain links from its anchor and every record hash recomputes; every approval a record
//! keeps re-verifies; every policy a record names is in it, and its text hashes to that
//! name; every policy signature verifies under `tron-signer-policy`, against the
//! administrators current before that policy (the config's, or those the policy before it
//! names in its `[policy_admins]`, as `service::policy_gate` judges), or else against the
//! keys the bundle itself names.

use sha2::{Digest, Sha256};

use crate::governance::{self, AdminSet, Verdict};
use crate::ledger;
use crate::sshsig;

use super::error::BundleError;
use super::format::{Bundle, Policy, Signature};

/// Whom the policy signatures are checked against.
#[derive(Debug, Clone, Copy)]
pub enum Admins<'a> {
    /// A signer config's `[policy_admins]` (trusted): every policy must carry a quorum of
    /// the administrators current before it, and nothing else. The first policy of the
    /// bundle is judged by these; each later one by the `[policy_admins]` of the policy
    /// before it in the chain, or these when it names none.
    Trusted(&'a AdminSet),
    /// The keys the bundle names beside each signature: proves the signatures are intact,
    /// not who may sign.
    FromBundle,
}

/// What a bundle that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub from: u64,
    pub to: u64,
    pub anchor: String,
    pub last_hash: String,
    pub policies: usize,
    /// Records that keep approvals, and the approval signatures among them.
    pub records_with_approvals: usize,
    pub approvals: usize,
    pub policy_signatures: usize,
    /// Policies that carry no signature (only with [`Admins::FromBundle`]; trusted
    /// administrators require a quorum of every policy).
    pub unsigned_policies: usize,
    /// (administrator, `SHA256:…` fingerprint) of each key that verified a policy
    /// signature, each once, in first-seen order.
    pub keys: Vec<(String, String)>,
    /// With [`Admins::Trusted`]: how many policies were judged by administrators a policy
    /// named rather than the config's.
    pub judged_by_policy_admins: usize,
}

impl Report {
    pub fn records(&self) -> u64 {
        self.to - self.from + 1
    }
}

/// Verifies `bundle`; the first failure, naming its sequence number or policy hash.
pub fn verify(bundle: &Bundle, admins: Admins<'_>) -> Result<Report, BundleError> {
    let named = ledger::check_stretch(&bundle.stretch, bundle.from, bundle.to)
        .map_err(BundleError::Chain)?;
    let names: Vec<String> = bundle
        .policies
        .iter()
        .map(|p| hex::encode(p.hash))
        .collect();
    let held = |hash: &str| names.iter().position(|n| n == hash);
    let mut used = vec![false; bundle.policies.len()];
    // The order the policies went into force: of their first record, which the chain fixes
    // (the order of the bundle's list does not count).
    let mut order = Vec::with_capacity(bundle.policies.len());
    let (mut records_with_approvals, mut approvals) = (0, 0);
    for r in &named {
        let Some(i) = held(&r.policy_hash) else {
            return Err(BundleError::PolicyAbsent {
                seq: r.sequence,
                // The record's own text, so escaped: it reaches a terminal.
                hash: r
                    .policy_hash
                    .chars()
                    .take(80)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            });
        };
        if !used[i] {
            used[i] = true;
            order.push(i);
        }
        if let Some(n) = r.approvals {
            records_with_approvals += 1;
            approvals += n;
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(BundleError::PolicyUnnamed {
            hash: names[i].clone(),
        });
    }
    let mut report = Report {
        from: bundle.from,
        to: bundle.to,
        anchor: hex::encode(bundle.stretch.anchor),
        last_hash: bundle
            .stretch
            .records
            .last()
            .map_or_else(String::new, |r| hex::encode(r.hash)),
        policies: bundle.policies.len(),
        records_with_approvals,
        approvals,
        policy_signatures: 0,
        unsigned_policies: 0,
        keys: Vec::new(),
        judged_by_policy_admins: 0,
    };
    // With trusted administrators: those the policy before names, if it does.
    let mut named_by_previous: Option<AdminSet> = None;
    for (k, &i) in order.iter().enumerate() {
        let p = &bundle.policies[i];
        let judges = match admins {
            Admins::FromBundle => None,
            Admins::Trusted(config) => {
                if named_by_previous.is_some() {
                    report.judged_by_policy_admins += 1;
                }
                Some(named_by_previous.as_ref().unwrap_or(config))
            }
        };
        check_policy(p, judges, &mut report)?;
        if judges.is_some() && k + 1 < order.len() {
            named_by_previous = admins_named_by(p)?;
        }
    }
    Ok(report)
}

/// The `[policy_admins]` a policy names, read with the signer's own policy loader.
fn admins_named_by(p: &Policy) -> Result<Option<AdminSet>, BundleError> {
    let hash = hex::encode(p.hash);
    let loaded = crate::policy::parse(&p.text, &format!("{hash}.toml")).map_err(|e| {
        let first = e
            .problems
            .first()
            .map_or_else(String::new, ToString::to_string);
        BundleError::PolicyInvalid {
            hash: hash.clone(),
            problems: e.problems.len(),
            first,
        }
    })?;
    Ok(loaded.policy.admins)
}

/// Checks one policy: its text against its hash, each signature under the key the bundle
/// names, and, when `judges` are given, that they signed it with their quorum.
fn check_policy(
    p: &Policy,
    judges: Option<&AdminSet>,
    report: &mut Report,
) -> Result<(), BundleError> {
    let hash = hex::encode(p.hash);
    let found: [u8; 32] = Sha256::digest(p.text.as_bytes()).into();
    if found != p.hash {
        return Err(BundleError::PolicyAltered {
            hash,
            found: hex::encode(found),
        });
    }
    for s in &p.signatures {
        let fingerprint = check_signature(&hash, p, s)?;
        if !report.keys.iter().any(|(_, f)| *f == fingerprint) {
            report.keys.push((s.admin.clone(), fingerprint));
        }
    }
    report.policy_signatures += p.signatures.len();
    match judges {
        None => {
            if p.signatures.is_empty() {
                report.unsigned_policies += 1;
            }
        }
        Some(set) => {
            let files: Vec<_> = p
                .signatures
                .iter()
                .map(|s| {
                    let name = format!("{hash}.toml.sig.{}", s.admin);
                    (std::path::PathBuf::from(name), Ok(s.signature.clone()))
                })
                .collect();
            let judged = governance::judge(set, p.text.as_bytes(), &files);
            for ((_, verdict), s) in judged.files.iter().zip(&p.signatures) {
                let detail = match verdict {
                    Verdict::Void(why) => why.clone(),
                    Verdict::SignedBy(name) if *name != s.admin => format!(
                        "its key is administrator {name:?}'s in the config, not {:?}'s",
                        s.admin
                    ),
                    Verdict::SignedBy(_) => continue,
                };
                return Err(BundleError::SignatureInvalid {
                    hash,
                    admin: s.admin.clone(),
                    detail,
                });
            }
            governance::require_quorum(judged, &hash).map_err(|e| BundleError::QuorumNotMet {
                hash: hash.clone(),
                detail: quorum_detail(&e),
            })?;
        }
    }
    Ok(())
}

/// Verifies one signature over the policy text under the key the bundle names; its
/// fingerprint.
fn check_signature(hash: &str, p: &Policy, s: &Signature) -> Result<String, BundleError> {
    let invalid = |detail: String| BundleError::SignatureInvalid {
        hash: hash.to_owned(),
        admin: s.admin.clone(),
        detail,
    };
    let named = ssh_key::PublicKey::from_openssh(s.key.trim()).map_err(|_| {
        invalid("the key the bundle names is not an OpenSSH public key line".into())
    })?;
    let v = sshsig::verify(&s.signature, governance::NAMESPACE, p.text.as_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    if v.key != *named.key_data() {
        return Err(invalid(format!(
            "made by key {}, the bundle names {}",
            v.fingerprint(),
            named.fingerprint(ssh_key::HashAlg::Sha256)
        )));
    }
    Ok(v.fingerprint())
}

/// The quorum refusal, in the words of a bundle (no "beside the policy" files).
fn quorum_detail(e: &governance::GovernanceError) -> String {
    match e {
        governance::GovernanceError::Unsigned { report, .. } => format!(
            "the bundle carries no signature by the administrators; it needs {}",
            report.threshold
        ),
        governance::GovernanceError::QuorumNotMet { report, .. } => format!(
            "signed by {} of the {} administrators it needs ({})",
            report.signed_by.len(),
            report.threshold,
            report.describe()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{AuditRecord, Decision, Ledger};
    use crate::policy::archive;

    /// A policy that loads, named `name`, with `extra` sections at its end.
    fn policy_text(name: &str, extra: &str) -> String {
        format!(
            "version = 1\nname = \"{name}\"\nrevision = 1\nnetwork = \"nile\"\n[global]\n\
             max_fee_limit = \"1\"\nmax_expiration = \"1m\"\nclock_skew = \"1s\"\n[[caller]]\n\
             name = \"c\"\nunix_uid = 1\nrpcs = [\"Sign\"]\nall_keys = true\n[[key]]\n\
             address = \"TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1\"\nlabel = \"k\"\nassets = [\"TRX\"]\n\
             windows = [{{ asset = \"TRX\", window = \"1h\", max = \"1\" }}]\n{extra}"
        )
    }

    fn one() -> String {
        policy_text("one", "")
    }

    fn two() -> String {
        policy_text("two", "")
    }

    fn key(seed: u8) -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn line(seed: u8) -> String {
        key(seed).public_key().to_openssh().unwrap()
    }

    fn sign(seed: u8, text: &str) -> String {
        key(seed)
            .sign(
                governance::NAMESPACE,
                ssh_key::HashAlg::Sha512,
                text.as_bytes(),
            )
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap()
    }

    /// alice (1), bob (2), carol (3); two needed.
    fn admins() -> AdminSet {
        let names = ["alice", "bob", "carol"];
        let entries: Vec<(String, String)> = (1..=3)
            .map(|i| (names[i as usize - 1].to_owned(), line(i)))
            .collect();
        AdminSet::new(&entries, 2).unwrap()
    }

    fn hash(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    fn record(policy: &str) -> AuditRecord {
        AuditRecord {
            time_ms: 1,
            caller: "ops".into(),
            identity: "unix_uid=1".into(),
            peer: "unix:uid=1".into(),
            method: "Sign".into(),
            key: None,
            txid: None,
            payout_id: Some("p".into()),
            intent: None,
            decision: Decision::Deny,
            reason_code: "dest_not_allowed".into(),
            message: "m".into(),
            policy_hash: hex::encode(hash(policy)),
            approvals: None,
            deposit_index: None,
        }
    }

    /// A data directory whose chain names `one` (records 1-2) then `two` (3), both
    /// archived with the signatures given (administrator name, key seed).
    fn data_dir_with(
        one: &str,
        one_signers: &[(&str, u8)],
        two: &str,
        two_signers: &[(&str, u8)],
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ledger = Ledger::open(dir.path(), 1000, 1).unwrap();
        for policy in [one, one, two] {
            rt.block_on(ledger.audit(record(policy))).unwrap();
        }
        drop(ledger);
        for (text, signers) in [(one, one_signers), (two, two_signers)] {
            archive::store(dir.path(), text.as_bytes(), &hash(text)).unwrap();
            let sigs: Vec<(String, String)> = signers
                .iter()
                .map(|(n, s)| ((*n).to_owned(), sign(*s, text)))
                .collect();
            archive::store_signatures(dir.path(), &hash(text), &sigs).unwrap();
        }
        dir
    }

    /// ONE signed by alice and bob, TWO by alice and carol.
    fn data_dir() -> tempfile::TempDir {
        data_dir_with(
            &one(),
            &[("alice", 1), ("bob", 2)],
            &two(),
            &[("alice", 1), ("carol", 3)],
        )
    }

    fn failure(b: &Bundle, admins: Admins<'_>) -> (String, String) {
        let e = verify(b, admins).unwrap_err();
        assert!(e.is_evidence_failure(), "{e}");
        (e.code().to_owned(), e.to_string())
    }

    #[test]
    fn a_bundle_made_from_a_ledger_verifies_against_trusted_or_bundled_keys() {
        let dir = data_dir();
        let set = admins();
        let b = crate::audit_bundle::make(dir.path(), 1, 3).unwrap();
        assert_eq!(b.policies.len(), 2);
        assert_eq!(b.policies[0].signatures[0].key, line(1));
        let r = verify(&b, Admins::Trusted(&set)).unwrap();
        assert_eq!((r.records(), r.policies, r.policy_signatures), (3, 2, 4));
        assert_eq!(r.anchor, "0".repeat(64));
        let names: Vec<&str> = r.keys.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(verify(&b, Admins::FromBundle).unwrap(), r);

        // A later stretch is anchored on the record before it, and carries only its policy.
        let later = crate::audit_bundle::make(dir.path(), 3, 3).unwrap();
        assert_eq!(later.stretch.anchor, b.stretch.records[1].hash);
        assert_eq!(later.policies.len(), 1);
        assert!(verify(&later, Admins::Trusted(&set)).is_ok());
        // ... and only links to that anchor.
        let mut moved = later.clone();
        moved.stretch.anchor = [0; 32];
        let (code, said) = failure(&moved, Admins::FromBundle);
        assert_eq!(code, "audit_chain_broken");
        assert_eq!(
            said,
            "audit record 3 does not link to record 2 (one of them was rewritten)"
        );
        let mut short = b.clone();
        short.stretch.records.pop();
        let (code, said) = failure(&short, Admins::FromBundle);
        assert_eq!(code, "audit_truncated");
        assert!(said.contains("record 3 is missing"), "{said}");
    }

    #[test]
    fn every_policy_and_signature_refusal() {
        let dir = data_dir();
        let set = admins();
        let b = crate::audit_bundle::make(dir.path(), 1, 3).unwrap();
        let (one_h, two_h) = (hex::encode(hash(&one())), hex::encode(hash(&two())));

        let mut absent = b.clone();
        absent.policies.remove(1);
        assert_eq!(
            failure(&absent, Admins::FromBundle),
            (
                "audit_bundle_policy_absent".into(),
                format!("audit record 3 names policy {two_h}, which the bundle does not hold")
            )
        );
        let mut unnamed = b.clone();
        unnamed.policies.push(Policy {
            hash: hash("x"),
            text: "x".into(),
            signatures: vec![],
        });
        assert_eq!(
            failure(&unnamed, Admins::FromBundle).0,
            "audit_bundle_policy_unnamed"
        );

        // The bundle names bob's key beside carol's signature.
        let mut swapped = b.clone();
        swapped.policies[1].signatures[1].key = line(2);
        let (code, said) = failure(&swapped, Admins::FromBundle);
        assert_eq!(code, "audit_bundle_signature_invalid");
        let fp = |seed: u8| key(seed).public_key().fingerprint(ssh_key::HashAlg::Sha256);
        assert_eq!(
            said,
            format!(
                "policy {two_h}: the signature by \"carol\" does not count: made by key {}, the \
                 bundle names {}",
                fp(3),
                fp(2)
            )
        );
        let mut garbled = b.clone();
        garbled.policies[0].signatures[0].key = "ssh-ed25519 !".into();
        assert!(failure(&garbled, Admins::FromBundle)
            .1
            .contains("not an OpenSSH public key line"));

        // Under another name than the config gives that key.
        let mut renamed = b.clone();
        renamed.policies[0].signatures[1].admin = "robert".into();
        assert!(verify(&renamed, Admins::FromBundle).is_ok());
        assert_eq!(
            failure(&renamed, Admins::Trusted(&set)).1,
            format!(
                "policy {one_h}: the signature by \"robert\" does not count: its key is \
                 administrator \"bob\"'s in the config, not \"robert\"'s"
            )
        );

        // Short of the quorum: only the bundle's own keys accept it.
        let mut under = b.clone();
        under.policies[0].signatures.truncate(1);
        assert!(verify(&under, Admins::FromBundle).is_ok());
        let (code, said) = failure(&under, Admins::Trusted(&set));
        assert_eq!(code, "audit_bundle_quorum_not_met");
        assert_eq!(
            said,
            format!(
                "policy {one_h}: signed by 1 of the 2 administrators it needs ({one_h}.toml.sig.alice: \
                 signed by \"alice\")"
            )
        );
        let mut unsigned = b.clone();
        unsigned.policies[0].signatures.clear();
        assert_eq!(
            verify(&unsigned, Admins::FromBundle)
                .unwrap()
                .unsigned_policies,
            1
        );
        assert_eq!(
            failure(&unsigned, Admins::Trusted(&set)).1,
            format!(
                "policy {one_h}: the bundle carries no signature by the administrators; it needs 2"
            )
        );

        // A signature over the other policy's text.
        let mut crossed = b.clone();
        crossed.policies[0].signatures[0].signature = sign(1, &two());
        let said = failure(&crossed, Admins::FromBundle).1;
        assert!(
            said.contains("does not verify under the key it names"),
            "{said}"
        );
    }

    /// A policy naming `[policy_admins]` hands the next one to them, as the signer judges.
    #[test]
    fn the_administrators_a_policy_names_judge_the_next_one() {
        let set = admins();
        let handover = policy_text(
            "one",
            &format!(
                "[policy_admins]\nthreshold = 1\nadmins = [{{ name = \"dave\", key = \"{}\" }}]\n",
                line(4)
            ),
        );
        let dir = data_dir_with(
            &handover,
            &[("alice", 1), ("bob", 2)],
            &two(),
            &[("dave", 4)],
        );
        let b = crate::audit_bundle::make(dir.path(), 1, 3).unwrap();
        let r = verify(&b, Admins::Trusted(&set)).unwrap();
        assert_eq!((r.policy_signatures, r.judged_by_policy_admins), (3, 1));
        // The order the chain gives counts, not the order of the bundle's list.
        let mut reordered = b.clone();
        reordered.policies.reverse();
        assert_eq!(verify(&reordered, Admins::Trusted(&set)).unwrap(), r);

        // The config's administrators no longer count for TWO.
        let dir = data_dir_with(
            &handover,
            &[("alice", 1), ("bob", 2)],
            &two(),
            &[("alice", 1), ("carol", 3)],
        );
        let b = crate::audit_bundle::make(dir.path(), 1, 3).unwrap();
        let fp = key(1).public_key().fingerprint(ssh_key::HashAlg::Sha256);
        assert_eq!(
            failure(&b, Admins::Trusted(&set)).1,
            format!(
                "policy {}: the signature by \"alice\" does not count: signed by {fp}, which is \
                 no policy administrator",
                hex::encode(hash(&two()))
            )
        );
        assert!(
            verify(&b, Admins::FromBundle).is_ok(),
            "intact, by the bundle's keys"
        );

        // A policy whose administrators are needed must load with this signer's loader.
        let unloadable = "version = 1\nname = \"old\"\n";
        let dir = data_dir_with(unloadable, &[("alice", 1), ("bob", 2)], &two(), &[]);
        let b = crate::audit_bundle::make(dir.path(), 1, 3).unwrap();
        let (code, said) = failure(&b, Admins::Trusted(&set));
        assert_eq!(code, "audit_bundle_policy_invalid");
        let want = format!(
            "policy {h} does not load, so the administrators it names are unknown (",
            h = hex::encode(hash(unloadable))
        );
        assert!(said.starts_with(&want), "{said}");
        // Without trusted administrators nothing needs loading.
        assert_eq!(verify(&b, Admins::FromBundle).unwrap().unsigned_policies, 1);
    }

    #[test]
    fn making_a_bundle_needs_every_policy_in_the_archive() {
        let dir = data_dir();
        std::fs::remove_file(archive::path_for(dir.path(), &hash(&two()))).unwrap();
        let e = crate::audit_bundle::make(dir.path(), 1, 3).unwrap_err();
        assert_eq!(e.code(), "audit_bundle_policy_unavailable");
        assert!(!e.is_evidence_failure());
        assert!(
            e.to_string().starts_with(&format!(
                "policy {}, named by audit record 3, is not in the archive: archived policy",
                hex::encode(hash(&two()))
            )),
            "{e}"
        );
        // The stretch before it needs only ONE.
        assert!(crate::audit_bundle::make(dir.path(), 1, 2).is_ok());
    }
}
