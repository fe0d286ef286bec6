//! Re-checking the approvals an audit record keeps, with nothing but the record: the
//! statement must name the record's own txid, payout id and policy hash, and each signature
//! must verify over it (with the approver's decision) under the key fingerprint the record
//! names. This is what `audit verify` runs, and what `ssh-keygen -Y verify` would confirm.

use serde::Deserialize;

use crate::sshsig;

use super::statement::{with_verdict, Verdict, NAMESPACE};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Kept {
    statement: String,
    approvals: Vec<KeptApproval>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptApproval {
    approver: String,
    fingerprint: String,
    decision: String,
    signature: String,
}

/// What the record says the approvals were for.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    pub txid: Option<&'a str>,
    pub payout_id: Option<&'a str>,
    pub policy_hash: &'a str,
}

/// Verifies the kept approvals `json` against the record's fields; the number verified, or
/// why they do not hold.
pub fn verify_kept(json: &serde_json::Value, record: RecordFields<'_>) -> Result<usize, String> {
    let kept = Kept::deserialize(json).map_err(|e| format!("approvals are malformed: {e}"))?;
    for (line, want) in [
        ("txid", record.txid),
        ("payout id", record.payout_id),
        ("policy", Some(record.policy_hash)),
    ] {
        let got = field(&kept.statement, line);
        if got != want {
            return Err(format!(
                "the approval statement's {line:?} is {got:?}, the record's is {want:?}"
            ));
        }
    }
    for (i, a) in kept.approvals.iter().enumerate() {
        let verdict = match a.decision.as_str() {
            "approve" => Verdict::Approve,
            "reject" => Verdict::Reject,
            other => return Err(format!("approval {} has decision {other:?}", i + 1)),
        };
        let text = with_verdict(&kept.statement, verdict);
        let v = sshsig::verify(&a.signature, NAMESPACE, text.as_bytes())
            .map_err(|e| format!("approval {} by {:?}: {e}", i + 1, a.approver))?;
        if v.fingerprint() != a.fingerprint {
            return Err(format!(
                "approval {} by {:?} is signed by key {}, the record names {}",
                i + 1,
                a.approver,
                v.fingerprint(),
                a.fingerprint
            ));
        }
    }
    Ok(kept.approvals.len())
}

/// The value of the statement line `name: value`, if there is one.
pub fn field<'a>(statement: &'a str, name: &str) -> Option<&'a str> {
    statement.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(": "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(text: &str) -> (String, String) {
        let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[3; 32]));
        let sig = key
            .sign(NAMESPACE, ssh_key::HashAlg::Sha512, text.as_bytes())
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap();
        let fp = key
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        (sig, fp)
    }

    const STATEMENT: &str =
        "tron-signer approval statement v1\ndecision: approve\ntxid: aa\npayout id: p\npolicy: 11\n";

    fn record() -> RecordFields<'static> {
        RecordFields {
            txid: Some("aa"),
            payout_id: Some("p"),
            policy_hash: "11",
        }
    }

    #[test]
    fn kept_approvals_verify_and_every_change_is_caught() {
        let (sig, fp) = signed(STATEMENT);
        let reject_text = STATEMENT.replace("approve", "reject");
        let (rsig, rfp) = signed(&reject_text);
        let kept = serde_json::json!({"statement": STATEMENT, "approvals": [
            {"approver": "alice", "fingerprint": fp, "decision": "approve", "signature": sig},
            {"approver": "bob", "fingerprint": rfp, "decision": "reject", "signature": rsig},
        ]});
        assert_eq!(verify_kept(&kept, record()), Ok(2));

        let mut other_txid = record();
        other_txid.txid = Some("bb");
        assert!(verify_kept(&kept, other_txid)
            .unwrap_err()
            .contains("\"txid\""));
        let mut other_policy = record();
        other_policy.policy_hash = "22";
        assert!(verify_kept(&kept, other_policy)
            .unwrap_err()
            .contains("\"policy\""));

        let mut flipped = kept.clone();
        flipped["approvals"][1]["decision"] = "approve".into();
        assert!(verify_kept(&flipped, record()).unwrap_err().contains("bob"));
        let mut wrong_fp = kept.clone();
        wrong_fp["approvals"][0]["fingerprint"] = "SHA256:x".into();
        assert!(verify_kept(&wrong_fp, record())
            .unwrap_err()
            .contains("the record names"));
        let mut edited = kept.clone();
        edited["statement"] = STATEMENT.replace("statement v1", "statement v2").into();
        assert!(verify_kept(&edited, record())
            .unwrap_err()
            .contains("alice"));
        assert!(verify_kept(&serde_json::json!({"x": 1}), record())
            .unwrap_err()
            .contains("malformed"));
    }
}
