//! `policy replay`: what a candidate policy would have decided on the signed history.
//!
//! Every Sign decision in the audit chain that the policy made (signed, or refused by a
//! policy or approval rule) is judged again under the candidate, in chain order, at the
//! time it was made, from the decoded transaction the record keeps. The candidate's windows
//! are rebuilt from the transfers the candidate itself would have allowed, so a lowered limit
//! refuses exactly the requests that would have crossed it, and a refusal it lifts counts in
//! the windows after it. The ledger is read read-only: a running signer is not disturbed.
//!
//! Refusals made before the policy was asked (caller, request, decoding, ledger, key
//! backend) and idempotent replays of a txid are not decisions of the policy: they are
//! counted, not judged. Approvals are not judged again: where the candidate's rules ask for
//! approval, a request signed with approvals counts as approved (its groups are not
//! re-judged), one whose approvals the signer refused keeps that refusal, and one that
//! carried none is refused `approval_required`.

use std::path::Path;

use serde::Serialize;
use tron_proto::{Address, U256};

use crate::decode::{Asset, Decoded};
use crate::ledger::{self, ChainedRecord, LedgerError};
use crate::policy::instant::format_utc;
use crate::policy::{
    Decision, LoadedPolicy, Request, Usage, MAX_CLOCK_SKEW_MS, MAX_EXPIRATION_MS, MAX_WINDOW_MS,
};
use crate::reason::{Category, ReasonCode};

/// What one decision was, or would be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub allowed: bool,
    /// `signed`, or the refusal's reason code.
    pub code: String,
    pub message: String,
}

/// A decision the candidate would make differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub sequence: u64,
    pub time_ms: i64,
    pub key: String,
    pub payout_id: String,
    pub txid: String,
    /// The transfer in words: `6 TRX (6000000 sun) to T…`.
    pub transfer: String,
    pub before: Outcome,
    pub after: Outcome,
}

/// Everything the replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The candidate's sha256, hex.
    pub candidate: String,
    pub records_read: u64,
    /// Sign decisions judged again.
    pub judged: u64,
    pub unchanged: u64,
    /// In chain order.
    pub changes: Vec<Change>,
    /// Sign refusals made before the policy was asked, and idempotent replays.
    pub not_policy_decisions: u64,
}

impl Report {
    pub fn allowed_to_refused(&self) -> usize {
        self.changes.iter().filter(|c| c.before.allowed).count()
    }

    pub fn refused_to_allowed(&self) -> usize {
        self.changes.len() - self.allowed_to_refused()
    }

    /// The report for people: one line per change, then the summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let word = |o: &Outcome| {
                if o.allowed {
                    "allowed".to_owned()
                } else {
                    format!("refused {}", o.code)
                }
            };
            let why = if c.after.allowed {
                &c.before.message
            } else {
                &c.after.message
            };
            out.push_str(&format!(
                "seq {} {} payout {:?} key {} {}: {} -> {} ({why})\n",
                c.sequence,
                format_utc(c.time_ms),
                c.payout_id,
                c.key,
                c.transfer,
                word(&c.before),
                word(&c.after),
            ));
        }
        out.push_str(&format!(
            "policy {}: {} Sign decisions judged again, {} unchanged, {} allowed -> refused, \
             {} refused -> allowed; {} Sign record(s) were not policy decisions ({} records read)\n",
            self.candidate,
            self.judged,
            self.unchanged,
            self.allowed_to_refused(),
            self.refused_to_allowed(),
            self.not_policy_decisions,
            self.records_read
        ));
        out
    }
}

/// Why the replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("audit record {seq}: {what}")]
    Record { seq: u64, what: String },
}

impl ReplayError {
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Ledger(e) => e.code(),
            ReplayError::Record { .. } => "replay_record_unreadable",
        }
    }
}

/// Replays the audit chain of the ledger in `data_dir` against `candidate`.
pub fn replay(candidate: &LoadedPolicy, data_dir: &Path) -> Result<Report, ReplayError> {
    replay_from(
        candidate,
        &crate::ledger::Source::Dir(data_dir.to_path_buf()),
    )
}

/// [`replay`] on the audit chain `source` holds (the embedded or the shared ledger).
pub fn replay_from(
    candidate: &LoadedPolicy,
    source: &crate::ledger::Source,
) -> Result<Report, ReplayError> {
    let mut report = Report {
        candidate: candidate.hash_hex(),
        ..Report::default()
    };
    let mut windows = Windows::default();
    let mut failed = None;
    report.records_read = source.each_audit_record(&mut |rec| {
        match judge(candidate, &mut windows, &rec) {
            Ok(Judged::Skip) => {}
            Ok(Judged::NotPolicy) => report.not_policy_decisions += 1,
            Ok(Judged::Same) => {
                report.judged += 1;
                report.unchanged += 1;
            }
            Ok(Judged::Changed(c)) => {
                report.judged += 1;
                report.changes.push(*c);
            }
            Err(e) => {
                failed = Some(e);
                return false;
            }
        }
        true
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

enum Judged {
    /// Not a Sign record.
    Skip,
    NotPolicy,
    Same,
    Changed(Box<Change>),
}

fn judge(
    candidate: &LoadedPolicy,
    windows: &mut Windows,
    rec: &ChainedRecord,
) -> Result<Judged, ReplayError> {
    if rec.method != "Sign" {
        return Ok(Judged::Skip);
    }
    let code = rec.reason_code.parse::<ReasonCode>().ok();
    let was_allowed = code == Some(ReasonCode::Signed);
    let by_policy = was_allowed
        || code.is_some_and(|c| {
            matches!(c.category(), Category::Policy | Category::Approval)
                || c == ReasonCode::PolicyExpired
        });
    let Some(intent) = rec.intent.as_ref().filter(|_| by_policy) else {
        return Ok(Judged::NotPolicy);
    };
    let bad = |what: &str| ReplayError::Record {
        seq: rec.sequence,
        what: what.to_owned(),
    };
    let decoded =
        ledger::decoded_of(intent).ok_or_else(|| bad("its decoded transaction is unreadable"))?;
    let key: Address = rec
        .key
        .as_deref()
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| bad("its key is not an address"))?;
    let after = decide(candidate, windows, &key, &decoded, rec);
    let before = Outcome {
        allowed: was_allowed,
        code: rec.reason_code.clone(),
        message: rec.message.clone(),
    };
    if after.allowed == before.allowed {
        return Ok(Judged::Same);
    }
    let intent = &decoded.intent;
    let info = candidate.policy.asset_info(&intent.asset());
    let decimals = info.map_or(0, |a| a.decimals);
    let transfer = format!(
        "{} {} ({} base units) to {}",
        crate::policy::format_amount(intent.amount(), decimals),
        info.map_or_else(|| intent.asset().to_string(), |a| a.symbol.clone()),
        intent.amount(),
        intent.to()
    );
    Ok(Judged::Changed(Box::new(Change {
        sequence: rec.sequence,
        time_ms: rec.time_ms,
        key: key.to_base58(),
        payout_id: rec.payout_id.clone().unwrap_or_default(),
        txid: hex::encode(decoded.envelope.txid),
        transfer,
        before,
        after,
    })))
}

/// The candidate's decision on one recorded request, counted in its windows when allowed.
fn decide(
    candidate: &LoadedPolicy,
    windows: &mut Windows,
    key: &Address,
    decoded: &Decoded,
    rec: &ChainedRecord,
) -> Outcome {
    let refused = |code: ReasonCode, message: String| Outcome {
        allowed: false,
        code: code.as_str().to_owned(),
        message,
    };
    let p = &candidate.policy;
    if let Some(until) = p.expires_at_ms.filter(|t| rec.time_ms >= *t) {
        return refused(
            ReasonCode::PolicyExpired,
            format!("the candidate expires at {}", format_utc(until)),
        );
    }
    let req = Request {
        key,
        decoded,
        now_ms: rec.time_ms,
        deposit_index: rec.deposit_index,
    };
    match p.evaluate(&req, windows) {
        Decision::Deny(d) => refused(d.code.reason(), d.message),
        Decision::Allow(a) => {
            let intent = &decoded.intent;
            let quorum = p.quorum(key, &intent.asset(), intent.to(), intent.amount());
            if !quorum.is_empty() {
                let code = rec.reason_code.parse::<ReasonCode>().ok();
                let approved = code == Some(ReasonCode::Signed) && rec.approvals.is_some();
                if !approved {
                    // Approvals are not judged again: a request whose approvals the signer
                    // refused keeps that refusal; one that carried none needs them.
                    return match code.filter(|c| {
                        c.category() == Category::Approval && *c != ReasonCode::ApprovalRequired
                    }) {
                        Some(c) => refused(c, rec.message.clone()),
                        None => refused(
                            ReasonCode::ApprovalRequired,
                            format!(
                                "the candidate asks for approvals ({}) and the request carried none",
                                quorum.rules.join("; ")
                            ),
                        ),
                    };
                }
            }
            windows.add(Spent {
                key: *key,
                asset: intent.asset(),
                to: *intent.to(),
                amount: intent.amount(),
                expiration_ms: decoded.envelope.expiration,
            });
            Outcome {
                allowed: true,
                code: ReasonCode::Signed.as_str().to_owned(),
                message: a.rule,
            }
        }
    }
}

/// One transfer the candidate allowed.
struct Spent {
    key: Address,
    asset: Asset,
    to: Address,
    amount: U256,
    expiration_ms: i64,
}

/// The candidate's windows, as the ledger keeps them: what each key signed, by expiration.
#[derive(Default)]
struct Windows {
    spent: Vec<Spent>,
    /// Additions since the last pruning.
    added: usize,
}

impl Windows {
    fn add(&mut self, s: Spent) {
        let now = s.expiration_ms;
        self.spent.push(s);
        self.added += 1;
        if self.added >= 4096 {
            // Nothing can count once it expired longer ago than any lookback can reach.
            let reach = MAX_WINDOW_MS
                .saturating_add(MAX_CLOCK_SKEW_MS)
                .saturating_add(MAX_EXPIRATION_MS);
            let horizon = now.saturating_sub(i64::try_from(reach).unwrap_or(i64::MAX));
            self.spent.retain(|e| e.expiration_ms >= horizon);
            self.added = 0;
        }
    }
}

impl Usage for Windows {
    fn used(
        &self,
        key: &Address,
        asset: &Asset,
        dest: Option<&Address>,
        lookback_ms: u64,
        now_ms: i64,
    ) -> U256 {
        let from = now_ms.saturating_sub(i64::try_from(lookback_ms).unwrap_or(i64::MAX));
        self.spent
            .iter()
            .filter(|e| {
                &e.key == key
                    && &e.asset == asset
                    && dest.is_none_or(|d| &e.to == d)
                    && e.expiration_ms >= from
            })
            .fold(U256::ZERO, |sum, e| sum.saturating_add(e.amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Envelope, Intent, TrxTransfer};
    use crate::ledger::{intent_json, AuditRecord, Ledger};

    const KEY: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
    const TREASURY: &str = "TB7Mbv7ARbZELRJWDohVbVYsFp3Ci1ZNrU";
    const T0: i64 = 1_800_000_000_000;

    fn policy(approval_rule: bool) -> LoadedPolicy {
        let approver =
            ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[3; 32]))
                .public_key()
                .to_openssh()
                .unwrap();
        let rule = if approval_rule {
            "\n[[approval]]\nasset = \"TRX\"\nabove = \"1\"\nrequire = { treasury = 1 }\n"
        } else {
            ""
        };
        let text = format!(
            "version = 1\nname = \"replay\"\nnetwork = \"nile\"\n[global]\nmax_fee_limit = \"1\"\n\
             max_expiration = \"10m\"\nclock_skew = \"1m\"\n[[caller]]\nname = \"c\"\nunix_uid = 1\n\
             rpcs = [\"Sign\"]\nall_keys = true\n[[key]]\naddress = \"{KEY}\"\nlabel = \"k\"\n\
             assets = [\"TRX\"]\nwindows = [{{ asset = \"TRX\", window = \"24h\", max = \"100\" }}]\n\
             [[key.destination]]\naddress = \"{TREASURY}\"\nlabel = \"treasury\"\nassets = [\"TRX\"]\nper_tx_max = {{ TRX = \"50\" }}\n\
             [[approver]]\nname = \"a\"\ngroups = [\"treasury\"]\nkey = \"{approver}\"\n{rule}"
        );
        crate::policy::parse(&text, "replay.toml").unwrap()
    }

    /// A Sign record of 2 TRX to the treasury at T0 + n s, with its outcome.
    fn record(n: u8, code: ReasonCode, approvals: bool) -> AuditRecord {
        let time_ms = T0 + i64::from(n) * 1000;
        let d = Decoded {
            envelope: Envelope {
                txid: [n; 32],
                ref_block_bytes: [0, 1],
                ref_block_hash: [2; 8],
                expiration: time_ms + 60_000,
                timestamp: time_ms,
                fee_limit: 0,
                memo: Vec::new(),
                permission_id: 0,
            },
            intent: Intent::Trx(TrxTransfer {
                owner: KEY.parse().unwrap(),
                to: TREASURY.parse().unwrap(),
                amount: 2_000_000,
            }),
        };
        AuditRecord {
            time_ms,
            caller: "c".into(),
            identity: "unix_uid=1".into(),
            peer: "unix:uid=1".into(),
            method: "Sign".into(),
            key: Some(KEY.into()),
            txid: Some(hex::encode(d.envelope.txid)),
            payout_id: Some(format!("p-{n}")),
            intent: Some(intent_json(&d)),
            decision: if code == ReasonCode::Signed {
                ledger::Decision::Allow
            } else {
                ledger::Decision::Deny
            },
            reason_code: code.as_str().into(),
            message: format!("recorded {}", code.as_str()),
            policy_hash: "00".repeat(32),
            approvals: approvals.then(|| "{\"statement\":\"s\",\"approvals\":[]}".into()),
            deposit_index: None,
        }
    }

    #[test]
    fn approvals_are_taken_as_the_signer_judged_them() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ledger = Ledger::open(dir.path(), 1000, T0).unwrap();
        for rec in [
            record(1, ReasonCode::Signed, true),
            record(2, ReasonCode::ApprovalInvalid, true),
            record(3, ReasonCode::Signed, false),
            record(4, ReasonCode::ApprovalRequired, false),
        ] {
            rt.block_on(ledger.audit(rec)).unwrap();
        }
        drop(ledger);

        // Under rules asking for approval: the approved one stays signed, the one whose
        // approvals were refused keeps that refusal, the one signed without any now needs
        // them.
        let r = replay(&policy(true), dir.path()).unwrap();
        assert_eq!((r.judged, r.unchanged), (4, 3), "{}", r.render());
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].payout_id, "p-3");
        assert_eq!(r.changes[0].after.code, "approval_required");

        // Without approval rules, both refusals for approvals would have been signed.
        let r = replay(&policy(false), dir.path()).unwrap();
        let lifted: Vec<(&str, &str)> = r
            .changes
            .iter()
            .map(|c| (c.payout_id.as_str(), c.before.code.as_str()))
            .collect();
        assert_eq!(
            lifted,
            [("p-2", "approval_invalid"), ("p-4", "approval_required")]
        );
        assert!(r.changes.iter().all(|c| c.after.allowed));
        assert_eq!(r.refused_to_allowed(), 2);
    }
}
