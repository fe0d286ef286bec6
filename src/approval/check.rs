//! Whether the approvals a request carries meet the quorum the policy asks of it.
//!
//! Every approval offered must hold: a malformed, foreign, duplicated or self-given approval
//! refuses the request with its own reason code instead of being skipped, so a client learns
//! exactly what is wrong and an auditor never finds an approval in a request that counted for
//! nothing. An approval is an SSH signature over the statement this signer rebuilds from the
//! transaction and the policy in force; text the client sends along is only compared, never
//! trusted.

use std::cell::OnceCell;
use std::fmt::Write as _;

use tron_proto::Address;

use crate::decode::Decoded;
use crate::policy::approval::Quorum;
use crate::policy::LoadedPolicy;
use crate::reason::ReasonCode;
use crate::sshsig;

use super::statement::{statement, utc, with_verdict, Verdict, NAMESPACE};

/// At most this many approvals per request: more than any quorum needs, few enough that a
/// flood of signatures costs a bounded amount of verification.
pub const MAX_APPROVALS: usize = 16;
/// The largest armored signature taken (an `sk-ecdsa` signature with a long application
/// string is under 1 KiB).
pub const MAX_SIGNATURE_BYTES: usize = 4096;
/// The largest statement text taken along with a signature.
pub const MAX_STATEMENT_BYTES: usize = 4096;

/// One approval as the request carries it.
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    /// The armored SSH signature.
    pub signature: &'a str,
    /// The statement the approver signed, as the client says; empty when not sent.
    pub statement: &'a str,
}

/// An approval that held: who gave it, with which key, saying what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Counted {
    pub approver: String,
    pub fingerprint: String,
    pub decision: &'static str,
    /// The armored signature, as offered (trimmed): `ssh-keygen -Y verify` checks it.
    pub signature: String,
}

/// The approvals a decision rests on, as the audit record keeps them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Approvals {
    /// The approve statement; a reject was signed over the same text with `decision: reject`.
    pub statement: String,
    pub approvals: Vec<Counted>,
}

impl Approvals {
    /// The JSON text the audit record stores.
    pub fn to_json(&self) -> String {
        // Serialising strings and a static str cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why the approvals did not let the request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalError {
    pub code: ReasonCode,
    pub message: String,
    /// For `approval_required`: the statement still to be signed.
    pub statement: Option<String>,
    /// For `approval_rejected`: the valid approvals and rejections, for the audit record.
    pub counted: Option<Approvals>,
}

impl ApprovalError {
    fn new(code: ReasonCode, message: String) -> Self {
        ApprovalError {
            code,
            message,
            statement: None,
            counted: None,
        }
    }
}

/// What the request is: everything the statement binds, and who initiated it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub policy: &'a LoadedPolicy,
    pub key: &'a Address,
    pub decoded: &'a Decoded,
    pub payout_id: &'a str,
    /// The `[[caller]]` name of the initiator: its own approval is void.
    pub initiator: &'a str,
}

/// Checks `offered` against the quorum the policy asks of `subject` at `now_ms`.
/// `Ok(None)`: no approval is needed and none was offered. `Ok(Some(_))`: the quorum is met.
pub fn check(
    subject: &Subject<'_>,
    offered: &[Offered<'_>],
    now_ms: i64,
) -> Result<Option<Approvals>, ApprovalError> {
    let p = &subject.policy.policy;
    let intent = &subject.decoded.intent;
    let quorum = p.quorum(subject.key, &intent.asset(), intent.to(), intent.amount());
    if quorum.is_empty() && offered.is_empty() {
        return Ok(None);
    }
    let approve_text = text(subject, Verdict::Approve);
    if offered.is_empty() {
        return Err(required(&quorum, &[], &quorum.groups, approve_text));
    }
    if offered.len() > MAX_APPROVALS {
        return Err(ApprovalError::new(
            ReasonCode::ApprovalInvalid,
            format!(
                "the request carries {} approvals; at most {MAX_APPROVALS} are taken",
                offered.len()
            ),
        ));
    }
    let expiration = subject.decoded.envelope.expiration;
    if now_ms >= expiration {
        return Err(ApprovalError::new(
            ReasonCode::ApprovalExpired,
            format!(
                "the transaction expired at {} (signer's clock {}); approvals of it are void: \
                 build a new transaction and have it approved",
                utc(expiration),
                utc(now_ms)
            ),
        ));
    }
    // The texts borrow the approve statement only while the approvals are read.
    let counted = {
        let texts = Texts::new(&approve_text);
        let mut counted: Vec<(Counted, &[String])> = Vec::with_capacity(offered.len());
        for (i, o) in offered.iter().enumerate() {
            let n = i + 1;
            let (approver, verdict) = one(subject, &quorum, o, n, &texts)?;
            if let Some((prev, _)) = counted.iter().find(|(c, _)| c.approver == approver.name) {
                return Err(ApprovalError::new(
                    ReasonCode::ApprovalDuplicate,
                    format!(
                        "approval {n} is a second one by {:?} (key {}); each approver counts once",
                        approver.name, prev.fingerprint
                    ),
                ));
            }
            counted.push((
                Counted {
                    approver: approver.name.clone(),
                    fingerprint: approver.fingerprint.clone(),
                    decision: verdict.as_str(),
                    signature: o.signature.trim().to_owned(),
                },
                &approver.groups,
            ));
        }
        counted
    };
    let record = |counted: &[(Counted, &[String])]| Approvals {
        statement: approve_text.clone(),
        approvals: counted.iter().map(|(c, _)| c.clone()).collect(),
    };
    let rejecters: Vec<&str> = counted
        .iter()
        .filter(|(c, _)| c.decision == Verdict::Reject.as_str())
        .map(|(c, _)| c.approver.as_str())
        .collect();
    if !rejecters.is_empty() {
        let mut e = ApprovalError::new(
            ReasonCode::ApprovalRejected,
            format!(
                "rejected by {}: the payout is cancelled; nothing was signed",
                quoted(&rejecters)
            ),
        );
        e.counted = Some(record(&counted));
        return Err(e);
    }
    let groups: Vec<&[String]> = counted.iter().map(|(_, g)| *g).collect();
    let missing = unfilled(&quorum.groups, &groups);
    if !missing.is_empty() {
        let names: Vec<&str> = counted.iter().map(|(c, _)| c.approver.as_str()).collect();
        return Err(required(&quorum, &names, &missing, approve_text));
    }
    Ok(Some(Approvals {
        statement: approve_text,
        approvals: counted.into_iter().map(|(c, _)| c).collect(),
    }))
}

/// The two texts an approval may be signed over. The approve statement's digest is computed
/// once for all the approvals; the reject text (which differs in its second line only) is
/// built only when an approval is not an approval of this request.
struct Texts<'a> {
    approve: &'a str,
    approve_message: sshsig::Message<'a>,
    reject: OnceCell<String>,
}

impl<'a> Texts<'a> {
    fn new(approve: &'a str) -> Texts<'a> {
        Texts {
            approve,
            approve_message: sshsig::Message::new(approve.as_bytes()),
            reject: OnceCell::new(),
        }
    }

    fn reject(&self) -> &str {
        self.reject
            .get_or_init(|| with_verdict(self.approve, Verdict::Reject))
    }
}

/// The statement of `subject` with `verdict`.
fn text(subject: &Subject<'_>, verdict: Verdict) -> String {
    statement(
        subject.policy,
        subject.key,
        subject.decoded,
        subject.payout_id,
        verdict,
    )
}

/// Checks approval number `n` on its own: the approver it is from and what it says.
fn one<'p>(
    subject: &Subject<'p>,
    quorum: &Quorum,
    o: &Offered<'_>,
    n: usize,
    texts: &Texts<'_>,
) -> Result<(&'p crate::policy::approval::Approver, Verdict), ApprovalError> {
    let invalid = |why: String| {
        ApprovalError::new(ReasonCode::ApprovalInvalid, format!("approval {n}: {why}"))
    };
    if o.signature.len() > MAX_SIGNATURE_BYTES {
        return Err(invalid(format!(
            "the signature is {} bytes; at most {MAX_SIGNATURE_BYTES} are taken",
            o.signature.len()
        )));
    }
    if o.statement.len() > MAX_STATEMENT_BYTES {
        return Err(invalid(format!(
            "the statement is {} bytes; at most {MAX_STATEMENT_BYTES} are taken",
            o.statement.len()
        )));
    }
    // The verdict is what the signature verifies over; a statement sent along only narrows
    // which text to try, and names the line that differs when it is not this request's.
    let (try_approve, try_reject) = if o.statement.is_empty() {
        (true, true)
    } else if o.statement == texts.approve {
        (true, false)
    } else if o.statement == texts.reject() {
        (false, true)
    } else {
        return Err(ApprovalError::new(
            ReasonCode::ApprovalMismatch,
            format!(
                "approval {n} is for another request: {}",
                first_difference(o.statement, texts.approve)
            ),
        ));
    };
    let sig = sshsig::parse(o.signature, NAMESPACE).map_err(|e| invalid(e.to_string()))?;
    // Whose it claims to be first: a key no approver has is refused without spending a
    // verification on it (and would count for nothing if it verified).
    let Some(approver) = subject.policy.policy.approver_by_key(sig.key()) else {
        return Err(ApprovalError::new(
            ReasonCode::ApproverUnknown,
            format!(
                "approval {n} is signed by key {}, which no [[approver]] has",
                sig.fingerprint()
            ),
        ));
    };
    let verdict = if try_approve && sig.verify(&approver.key, &texts.approve_message).is_ok() {
        Some(Verdict::Approve)
    } else if try_reject
        && sig
            .verify(
                &approver.key,
                &sshsig::Message::new(texts.reject().as_bytes()),
            )
            .is_ok()
    {
        Some(Verdict::Reject)
    } else {
        None
    };
    let Some(verdict) = verdict else {
        return Err(invalid(
            "the signature does not verify over this request's statement: it was made for \
             another transaction, amount, destination, payout id or policy, or altered"
                .into(),
        ));
    };
    if approver.caller.as_deref() == Some(subject.initiator) {
        return Err(ApprovalError::new(
            ReasonCode::ApprovalByInitiator,
            format!(
                "approval {n} is by {:?}, who is caller {:?}, the initiator of this request: \
                 nobody approves their own payout",
                approver.name, subject.initiator
            ),
        ));
    }
    if !quorum
        .groups
        .iter()
        .any(|(g, _)| approver.groups.contains(g))
    {
        let needed = if quorum.is_empty() {
            "this transfer needs no approval".to_owned()
        } else {
            let gs: Vec<&str> = quorum.groups.iter().map(|(g, _)| g.as_str()).collect();
            format!("this transfer needs approvers of {}", quoted(&gs))
        };
        return Err(ApprovalError::new(
            ReasonCode::ApproverNotInGroup,
            format!(
                "approval {n} is by {:?} (groups {}), who counts for none of the groups \
                 required: {needed}",
                approver.name,
                quoted(&approver.groups)
            ),
        ));
    }
    Ok((approver, verdict))
}

/// `approval_required`: what the quorum is, who has approved, what is still missing, and the
/// statement to sign.
fn required(
    quorum: &Quorum,
    approved_by: &[&str],
    missing: &[(String, u32)],
    approve_text: String,
) -> ApprovalError {
    let list = |gs: &[(String, u32)]| {
        gs.iter()
            .map(|(g, n)| format!("{n} of {g:?}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let mut m = format!(
        "needs approval by {} ({})",
        list(&quorum.groups),
        quorum.rules.join(", ")
    );
    if !approved_by.is_empty() {
        let _ = write!(m, "; approved so far by {}", quoted(approved_by));
    }
    let _ = writeln!(
        m,
        "; still needed: {}. Approvers sign this statement (ssh-keygen -Y sign -n {NAMESPACE}):",
        list(missing)
    );
    ApprovalError {
        code: ReasonCode::ApprovalRequired,
        message: m,
        statement: Some(approve_text),
        counted: None,
    }
}

/// The seats of `need` no approver fills, when each approver (by their groups) takes at most
/// one seat: a maximum bipartite matching, so a person in two groups is placed where they
/// are needed. Sizes are tiny (at most [`MAX_APPROVALS`] people).
fn unfilled(need: &[(String, u32)], approvers: &[&[String]]) -> Vec<(String, u32)> {
    // One seat per count, but never more seats in a group than there are approvers.
    let seats: Vec<usize> = need
        .iter()
        .enumerate()
        .flat_map(|(gi, (_, n))| {
            let n = usize::try_from(*n)
                .unwrap_or(usize::MAX)
                .min(approvers.len());
            std::iter::repeat_n(gi, n)
        })
        .collect();
    let fits = |a: usize, seat: usize| approvers[a].contains(&need[seats[seat]].0);
    let mut holder: Vec<Option<usize>> = vec![None; seats.len()];
    for a in 0..approvers.len() {
        let mut seen = vec![false; seats.len()];
        place(a, &seats, &fits, &mut holder, &mut seen);
    }
    need.iter()
        .enumerate()
        .filter_map(|(gi, (g, n))| {
            let filled = seats
                .iter()
                .zip(&holder)
                .filter(|(s, h)| **s == gi && h.is_some())
                .count();
            let filled = u32::try_from(filled).unwrap_or(u32::MAX);
            (filled < *n).then(|| (g.clone(), n - filled))
        })
        .collect()
}

/// Seats approver `a`, moving earlier approvers to other seats they fit if need be
/// (an augmenting path).
fn place(
    a: usize,
    seats: &[usize],
    fits: &dyn Fn(usize, usize) -> bool,
    holder: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for s in 0..seats.len() {
        if seen[s] || !fits(a, s) {
            continue;
        }
        seen[s] = true;
        let free = match holder[s] {
            None => true,
            Some(other) => place(other, seats, fits, holder, seen),
        };
        if free {
            holder[s] = Some(a);
            return true;
        }
    }
    false
}

/// Where `given` first differs from `expected`, line by line, quoting a bounded preview.
fn first_difference(given: &str, expected: &str) -> String {
    let mut g = given.lines();
    for want in expected.lines() {
        let field = want.split_once(": ").map_or(want, |(f, _)| f);
        match g.next() {
            Some(got) if got == want => continue,
            // The decision line may say either; the rest must match.
            Some(got) if field == "decision" && got == "decision: reject" => continue,
            Some(got) => {
                return format!(
                    "its {field:?} line is {:?}, this request's is {want:?}",
                    preview(got)
                )
            }
            None => return format!("it ends before the {field:?} line"),
        }
    }
    if g.next().is_some() {
        "it has lines after the end of this request's statement".into()
    } else {
        "it differs only in line endings: every line of the statement, the last one too, \
         ends with a single \\n"
            .into()
    }
}

fn preview(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("{:?}", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| (*s).to_owned()).collect()
    }

    fn need(n: &[(&str, u32)]) -> Vec<(String, u32)> {
        n.iter().map(|(g, c)| ((*g).to_owned(), *c)).collect()
    }

    #[test]
    fn one_person_takes_one_seat_placed_where_needed() {
        let both = groups(&["treasury", "risk"]);
        let treasury = groups(&["treasury"]);
        let q = need(&[("treasury", 2), ("risk", 1)]);
        // The person in both groups is moved to risk so that two treasury seats fill.
        assert!(unfilled(&q, &[&both, &treasury, &treasury]).is_empty());
        // Fewer people than seats leave as many seats empty, however they are placed.
        let missing =
            |people: &[&[String]]| -> u32 { unfilled(&q, people).iter().map(|(_, n)| n).sum() };
        assert_eq!(missing(&[&both, &treasury]), 1);
        assert_eq!(missing(&[&both]), 2);
        assert_eq!(unfilled(&q, &[]), q);
        // Two treasury-only people leave risk empty, not a treasury seat.
        assert_eq!(unfilled(&q, &[&treasury, &treasury]), need(&[("risk", 1)]));
    }

    /// Plays a FIDO2 authenticator holding an `sk-ssh-ed25519@openssh.com` key: the
    /// authenticator signs SHA-256(application) || flags || counter || SHA-256(data), where
    /// data is what SSHSIG signs; the signature carries flags and counter after the 64 bytes.
    /// (No hardware or software authenticator installs here; this builds the same bytes.)
    struct SoftFido {
        keypair: ssh_key::private::Ed25519Keypair,
        public: ssh_key::public::KeyData,
    }

    impl SoftFido {
        fn new(seed: u8) -> SoftFido {
            let keypair = ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]);
            let sk = ssh_key::public::SkEd25519::new(keypair.public, "ssh:");
            SoftFido {
                keypair,
                public: ssh_key::public::KeyData::SkEd25519(sk),
            }
        }

        fn line(&self) -> String {
            ssh_key::PublicKey::new(self.public.clone(), "fido")
                .to_openssh()
                .unwrap()
        }

        fn sign(&self, text: &str) -> String {
            use sha2::{Digest, Sha256};
            use signature::Signer as _;
            let hash = ssh_key::HashAlg::Sha512;
            let data = ssh_key::SshSig::signed_data(NAMESPACE, hash, text.as_bytes()).unwrap();
            // User present; counter 7.
            let flags_counter = [0x01, 0, 0, 0, 7];
            let mut signed = Sha256::digest(b"ssh:").to_vec();
            signed.extend_from_slice(&flags_counter);
            signed.extend_from_slice(&Sha256::digest(&data));
            let raw: ssh_key::Signature = self.keypair.try_sign(&signed).unwrap();
            let mut bytes = raw.as_bytes().to_vec();
            bytes.extend_from_slice(&flags_counter);
            let sig = ssh_key::Signature::new(ssh_key::Algorithm::SkEd25519, bytes).unwrap();
            ssh_key::SshSig::new(self.public.clone(), NAMESPACE, hash, sig)
                .unwrap()
                .to_pem(ssh_key::LineEnding::LF)
                .unwrap()
        }
    }

    #[test]
    fn a_fido2_sk_ed25519_approval_counts_and_a_forged_one_does_not() {
        use crate::decode::{Envelope, Intent, TrxTransfer};
        let fido = SoftFido::new(4);
        let other = SoftFido::new(5);
        let key = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
        let to = "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd";
        let text = format!(
            "version = 1\nname = \"s\"\nnetwork = \"nile\"\n[global]\nmax_fee_limit = \"50\"\n\
             max_expiration = \"10m\"\nclock_skew = \"60s\"\n\
             [[caller]]\nname = \"c\"\nunix_uid = 1\nrpcs = [\"Sign\"]\nall_keys = true\n\
             [[approver]]\nname = \"hardware\"\ngroups = [\"risk\"]\nkey = \"{}\"\n\
             [[approval]]\nasset = \"TRX\"\nabove = \"1\"\nrequire = {{ risk = 1 }}\n\
             [[key]]\naddress = \"{key}\"\nlabel = \"hot\"\nassets = [\"TRX\"]\n\
             windows = [{{ asset = \"TRX\", window = \"1h\", max = \"100\" }}]\n\
             [[key.destination]]\naddress = \"{to}\"\nlabel = \"x\"\nassets = [\"TRX\"]\n\
             per_tx_max = {{ TRX = \"50\" }}\n",
            fido.line()
        );
        let policy = crate::policy::parse(&text, "s.toml").unwrap();
        let key: Address = key.parse().unwrap();
        let decoded = Decoded {
            envelope: Envelope {
                txid: [0xcd; 32],
                ref_block_bytes: [0, 1],
                ref_block_hash: [2; 8],
                expiration: 2_000_000,
                timestamp: 1_000_000,
                fee_limit: 0,
                memo: vec![],
                permission_id: 0,
            },
            intent: Intent::Trx(TrxTransfer {
                owner: key,
                to: to.parse().unwrap(),
                amount: 5_000_000,
            }),
        };
        let subject = Subject {
            policy: &policy,
            key: &key,
            decoded: &decoded,
            payout_id: "p",
            initiator: "c",
        };
        let statement = text_of(&subject);
        let sig = fido.sign(&statement);
        let offered = [Offered {
            signature: &sig,
            statement: "",
        }];
        let ok = check(&subject, &offered, 1_500_000).unwrap().unwrap();
        assert_eq!(ok.approvals[0].approver, "hardware");
        assert_eq!(ok.approvals[0].decision, "approve");
        // The same authenticator over another statement, and another authenticator.
        let forged = fido.sign(&statement.replace("payout id: p", "payout id: q"));
        let unknown = other.sign(&statement);
        // A stranger's key is turned away before its signature is checked: whether it
        // verifies or not, it is `approver_unknown` and costs no verification.
        let unknown_forged = other.sign(&statement.replace("payout id: p", "payout id: q"));
        for (sig, want) in [
            (forged, ReasonCode::ApprovalInvalid),
            (unknown, ReasonCode::ApproverUnknown),
            (unknown_forged, ReasonCode::ApproverUnknown),
        ] {
            let offered = [Offered {
                signature: &sig,
                statement: "",
            }];
            assert_eq!(check(&subject, &offered, 1_500_000).unwrap_err().code, want);
        }
    }

    fn text_of(subject: &Subject<'_>) -> String {
        text(subject, Verdict::Approve)
    }

    #[test]
    fn the_first_difference_names_the_field() {
        let want = "v1\ndecision: approve\ntxid: aa\npolicy: 11\n";
        assert_eq!(
            first_difference("v1\ndecision: reject\ntxid: bb\n", want),
            "its \"txid\" line is \"txid: bb\", this request's is \"txid: aa\""
        );
        assert_eq!(
            first_difference("v1\ndecision: approve\n", want),
            "it ends before the \"txid\" line"
        );
        assert!(first_difference(&format!("{want}x\n"), want).contains("after the end"));
        assert!(first_difference(&"x".repeat(500), want).len() < 300);
    }
}
