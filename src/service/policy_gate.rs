//! Whether a loaded policy may be put in force: signed by a quorum of the policy
//! administrators when the config names them (`crate::governance`), and not a rollback: its
//! revision is above the one the ledger recorded in force last, or it is that very policy
//! again. The same gate stands at start-up and at every reload, so a restart cannot bring
//! back what a reload would refuse.

use crate::governance::{self, AdminSet, GovernanceError};
use crate::ledger::PolicyMark;
use crate::policy::archive;
use crate::policy::instant::format_utc as utc;
use crate::policy::LoadedPolicy;
use crate::reason::ReasonCode;

use super::refusal::{Refusal, RefusalKind};

/// What let a policy through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The administrators who signed it (empty when the config names none).
    pub signed_by: Vec<String>,
    /// The signatures that made the quorum: (administrator, armored text), archived beside
    /// the policy's text once it is in force, so an auditor's bundle can carry them.
    pub signatures: Vec<(String, String)>,
    /// The ledger's mark once it is in force.
    pub mark: PolicyMark,
}

impl Admitted {
    /// `", signed by "alice", "bob""`, or nothing, for messages.
    pub fn signers(&self) -> String {
        if self.signed_by.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self.signed_by.iter().map(|n| format!("{n:?}")).collect();
        format!(", signed by {}", names.join(", "))
    }
}

/// The administrators who must sign the next policy: those the policy in force names in its
/// `[policy_admins]`, or else the signer config's. `None` only when the config names none.
pub fn current_admins<'a>(
    config: Option<&'a AdminSet>,
    in_force: Option<&'a LoadedPolicy>,
) -> Option<&'a AdminSet> {
    let config = config?;
    Some(
        in_force
            .and_then(|p| p.policy.admins.as_ref())
            .unwrap_or(config),
    )
}

/// Judges `new` against the current administrators (if any, see [`current_admins`]) and the
/// ledger's `mark`. Reads the signature files beside the policy: blocking file I/O. Writes
/// nothing: the signatures that made the quorum are archived only once the policy is in
/// force (`PolicySlot::keep_signatures`).
pub fn admit(
    admins: Option<&AdminSet>,
    mark: Option<PolicyMark>,
    new: &LoadedPolicy,
    now_ms: i64,
) -> Result<Admitted, Refusal> {
    let hash = new.hash_hex();
    let p = &new.policy;
    if let Some(from) = p.not_before_ms.filter(|t| now_ms < *t) {
        return Err(refuse(
            ReasonCode::PolicyNotYetValid,
            format!(
                "policy {hash} is valid from {} (not_before); the signer's clock reads {}",
                utc(from),
                utc(now_ms)
            ),
        ));
    }
    if let Some(until) = p.expires_at_ms.filter(|t| now_ms >= *t) {
        return Err(refuse(
            ReasonCode::PolicyExpired,
            expired_message(&hash, until, now_ms),
        ));
    }
    if admins.is_none() && p.admins.is_some() {
        return Err(refuse(
            ReasonCode::PolicyAdminsNotConfigured,
            format!(
                "policy {hash} names policy administrators, but the signer config has no \
                 [policy_admins] section, so nothing would check their signatures: add the \
                 section to the config first"
            ),
        ));
    }
    // The very policy the ledger recorded in force (a restart, or a reload of the same
    // file) was judged when it was put in force, by the administrators current then; its
    // own `[policy_admins]` may name others, so it is not judged again (and its signatures
    // were archived then).
    let recorded = mark.is_some_and(|m| m.hash == new.hash);
    let (signed_by, signatures) = match admins {
        None => (Vec::new(), Vec::new()),
        Some(_) if recorded => (Vec::new(), Vec::new()),
        Some(set) => {
            let Some(text) = &new.text else {
                return Err(refuse(
                    ReasonCode::PolicyUnsigned,
                    format!("policy {hash}: its bytes are not at hand to check signatures over"),
                ));
            };
            let files = read_signature_files(&new.path)?;
            let report =
                governance::require_quorum(governance::judge(set, text.as_bytes(), &files), &hash)
                    .map_err(|e| {
                        let code = match e {
                            GovernanceError::QuorumNotMet { .. } => ReasonCode::PolicyQuorumNotMet,
                            GovernanceError::Unsigned { .. }
                            | GovernanceError::Unreadable { .. } => ReasonCode::PolicyUnsigned,
                        };
                        refuse(code, e.to_string())
                    })?;
            if new.revision == 0 {
                return Err(refuse(
                    ReasonCode::PolicyRollback,
                    format!(
                        "policy {hash} states no revision; with policy administrators every \
                         policy needs one (revision = N, above the one in force)"
                    ),
                ));
            }
            // Keep the texts that made the quorum, for the archive (see `Admitted`); the
            // report judges the files in the order given.
            let signatures = report
                .files
                .iter()
                .zip(&files)
                .filter_map(|((_, verdict), (_, text))| match (verdict, text) {
                    (governance::Verdict::SignedBy(admin), Ok(text)) => {
                        Some((admin.clone(), text.clone()))
                    }
                    _ => None,
                })
                .collect();
            (report.signed_by, signatures)
        }
    };
    let next = PolicyMark {
        revision: new.revision,
        hash: new.hash,
    };
    if let Some(m) = mark {
        let same = m.hash == new.hash;
        let protected = m.revision > 0 || new.revision > 0;
        if !same && protected && new.revision <= m.revision {
            return Err(refuse(
                ReasonCode::PolicyRollback,
                format!(
                    "policy {hash} has revision {}, not above revision {} (policy {}) put in \
                     force before: a policy is never rolled back, however it is signed",
                    new.revision,
                    m.revision,
                    hex::encode(m.hash)
                ),
            ));
        }
    }
    Ok(Admitted {
        signed_by,
        signatures,
        mark: next,
    })
}

/// A signature file and its text, or why it could not be read (as `governance::judge` takes
/// them).
type SignatureFile = (std::path::PathBuf, Result<String, String>);

/// The signature files beside `policy`, each with its text (at most
/// [`archive::MAX_SIGNATURE_BYTES`]) or why it could not be read. Read once, so the texts
/// judged are the texts archived.
fn read_signature_files(policy: &std::path::Path) -> Result<Vec<SignatureFile>, Refusal> {
    let paths = governance::signature_files(policy)
        .map_err(|e| refuse(ReasonCode::PolicyUnsigned, e.to_string()))?;
    Ok(paths
        .into_iter()
        .map(|p| {
            let text = archive::read_signature(&p);
            (p, text)
        })
        .collect())
}

/// The refusal of anything under a policy that expired at `until`.
pub fn expired(policy: &LoadedPolicy, now_ms: i64) -> Option<Refusal> {
    let until = policy.policy.expires_at_ms.filter(|t| now_ms >= *t)?;
    Some(refuse(
        ReasonCode::PolicyExpired,
        expired_message(&policy.hash_hex(), until, now_ms),
    ))
}

fn expired_message(hash: &str, until: i64, now_ms: i64) -> String {
    format!(
        "policy {hash} expired at {} (expires_at; the signer's clock reads {}): nothing is \
         signed under it; put a new policy in force",
        utc(until),
        utc(now_ms)
    )
}

fn refuse(code: ReasonCode, message: String) -> Refusal {
    Refusal::new(RefusalKind::Denied, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(revision: Option<u64>) -> LoadedPolicy {
        let rev = revision.map_or(String::new(), |r| format!("revision = {r}\n"));
        let text = format!(
            "version = 1\nname = \"g\"\n{rev}network = \"nile\"\n[global]\nmax_fee_limit = \"1\"\n\
             max_expiration = \"1m\"\nclock_skew = \"1s\"\n[[caller]]\nname = \"c\"\nunix_uid = 1\n\
             rpcs = [\"Sign\"]\nall_keys = true\n[[key]]\naddress = \"TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1\"\n\
             label = \"k\"\nassets = [\"TRX\"]\nwindows = [{{ asset = \"TRX\", window = \"1h\", max = \"1\" }}]\n"
        );
        crate::policy::parse(&text, "g.toml").unwrap()
    }

    fn mark_of(p: &LoadedPolicy) -> PolicyMark {
        PolicyMark {
            revision: p.revision,
            hash: p.hash,
        }
    }

    #[test]
    fn a_lower_or_equal_revision_with_other_bytes_is_a_rollback() {
        let (five, six) = (policy(Some(5)), policy(Some(6)));
        assert!(admit(None, Some(mark_of(&five)), &six, 0).is_ok());
        assert!(
            admit(None, Some(mark_of(&six)), &six, 0).is_ok(),
            "the same policy again"
        );
        let r = admit(None, Some(mark_of(&six)), &five, 0).unwrap_err();
        assert_eq!(r.code, ReasonCode::PolicyRollback);
        // Without revisions on either side there is nothing to protect; once one is in
        // force, a file without one is a rollback.
        let (none_a, none_b) = (policy(None), policy(None));
        assert!(admit(None, Some(mark_of(&none_a)), &none_b, 0).is_ok());
        let r = admit(None, Some(mark_of(&five)), &none_a, 0).unwrap_err();
        assert_eq!(r.code, ReasonCode::PolicyRollback);
        assert!(admit(None, None, &five, 0).is_ok());
    }
}
