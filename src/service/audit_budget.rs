//! A budget of audit bytes per caller (DESIGN invariant 7 without a disk-filling lever):
//! every Sign and Evaluate is audited, refused ones included, so each audit record's bytes
//! are charged to whoever asked, and a caller in debt is refused (`audit_budget_exceeded`,
//! RESOURCE_EXHAUSTED) before its request is read any further.
//!
//! A token bucket per caller: it holds at most `burst` bytes and refills at `rate` bytes per
//! second. Admission needs a positive balance; the record is charged when it is written, so
//! one request may overdraw by at most one (bounded) record. The first refusal of an episode
//! is audited; the rest of the episode is counted and logged at most once per
//! [`LOG_EVERY_MS`] per caller, since writing each would spend the very bytes being refused.
//!
//! Callers are budgeted by who they are, not by connection: the port of a TCP peer and the
//! pid of a Unix peer are left out (see [`principal`]), so reconnecting buys nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use super::refusal::{Refusal, RefusalKind};
use crate::ledger::AuditRecord;
use crate::reason::ReasonCode;

/// Default refill rate: several times the audit bytes the signer's own peak signing rate
/// writes (BENCHMARKS.md, issue 11), so no legitimate caller is ever slowed by it, while a
/// caller that only makes large records (memos up to the 64 KiB limit) is still bounded.
pub const DEFAULT_BYTES_PER_SECOND: u64 = 64 * 1024 * 1024;
/// Default bucket size.
pub const DEFAULT_BURST_BYTES: u64 = 128 * 1024 * 1024;

/// Default rate of records that sign nothing (Evaluate answers, refusals, replays) per
/// caller: far above what a payment backend's retries and checks cause, far below what fills
/// a disk (BENCHMARKS.md, "Ledger growth": about 1 KB each), so a flood of them is stopped and
/// said so long before the byte budget would notice it.
pub const DEFAULT_UNSIGNED_PER_SECOND: u64 = 200;
/// Default burst of such records.
pub const DEFAULT_UNSIGNED_BURST: u64 = 2_000;

/// At most one log line per caller in this interval while it is refused.
pub const LOG_EVERY_MS: i64 = 10_000;

/// Buckets kept before full ones (callers that have been quiet) are forgotten.
const PRUNE_ABOVE: usize = 1024;

/// Buckets kept at most, whatever their balance (a few MiB): past it the fullest is forgotten
/// when a new caller arrives, so many distinct peers cannot grow the map without bound.
pub(super) const MAX_BUCKETS: usize = 65_536;

/// What [`AuditBudget::admit`] says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Admit,
    /// Over budget; the first refusal of this episode, to be audited.
    RefuseAudited,
    /// Over budget again in the same episode: refused without a record.
    RefuseCounted,
}

struct Bucket {
    balance: i64,
    at_ms: i64,
    /// Refused since the episode began (audited one included).
    refused: u64,
    in_episode: bool,
    logged_ms: Option<i64>,
}

/// Per-caller token buckets of one unit (audit bytes, or records); cheap to consult (one
/// short lock per request).
pub(super) struct AuditBudget {
    /// What a refusal for this budget is called, in its log line.
    code: ReasonCode,
    rate: i64,
    burst: i64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<String, Bucket>,
    /// Size at which full buckets are next swept out.
    prune_at: usize,
}

/// The part of a caller string that names who asks: `unix:uid=U` of
/// `unix:uid=U,gid=G,pid=P`, `tls:spki=HEX` of a TLS caller, the address of
/// `tcp:ADDR:PORT`; anything else as it is.
pub(super) fn principal(caller: &str) -> &str {
    if caller.starts_with("unix:") || caller.starts_with("tls:") {
        caller.split(',').next().unwrap_or(caller)
    } else if caller.starts_with("tcp:") {
        caller.rsplit_once(':').map_or(caller, |(addr, _port)| addr)
    } else {
        caller
    }
}

impl AuditBudget {
    pub fn new(code: ReasonCode, per_second: u64, burst: u64) -> Self {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX).max(1);
        AuditBudget {
            code,
            rate: clamp(per_second),
            burst: clamp(burst),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_ABOVE,
            }),
        }
    }

    fn refilled(&self, b: &Bucket, now_ms: i64) -> i64 {
        // A clock that steps back refills nothing.
        let elapsed = now_ms.saturating_sub(b.at_ms).max(0);
        let gained = i128::from(self.rate) * i128::from(elapsed) / 1000;
        let balance = (i128::from(b.balance) + gained).min(i128::from(self.burst));
        i64::try_from(balance).unwrap_or(self.burst)
    }

    fn with_bucket<R>(&self, caller: &str, now_ms: i64, f: impl FnOnce(&mut Bucket) -> R) -> R {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Buckets { map, prune_at } = &mut *guard;
        let who = principal(caller);
        // Looked up by reference first: the hot path (a known caller) allocates nothing.
        if let Some(b) = map.get_mut(who) {
            return self.settle(b, now_ms, f);
        }
        if map.len() >= *prune_at {
            map.retain(|_, b| self.refilled(b, now_ms) < self.burst);
            // Amortised: the next sweep waits until the map has doubled again.
            *prune_at = (map.len() * 2).max(PRUNE_ABOVE);
        }
        if map.len() >= MAX_BUCKETS {
            // Every bucket is in use: forget the fullest (the quietest caller), which loses it
            // at most what it had left and never lets the map grow without bound.
            let fullest = map
                .iter()
                .max_by_key(|(_, b)| self.refilled(b, now_ms))
                .map(|(k, _)| k.clone());
            if let Some(k) = fullest {
                map.remove(&k);
            }
        }
        let b = map.entry(who.to_owned()).or_insert(Bucket {
            balance: self.burst,
            at_ms: now_ms,
            refused: 0,
            in_episode: false,
            logged_ms: None,
        });
        self.settle(b, now_ms, f)
    }

    fn settle<R>(&self, b: &mut Bucket, now_ms: i64, f: impl FnOnce(&mut Bucket) -> R) -> R {
        b.balance = self.refilled(b, now_ms);
        b.at_ms = b.at_ms.max(now_ms);
        f(b)
    }

    /// Whether `caller` may cause another audit record now.
    pub fn admit(&self, caller: &str, now_ms: i64) -> Admission {
        self.with_bucket(caller, now_ms, |b| {
            if b.balance > 0 {
                b.in_episode = false;
                b.refused = 0;
                return Admission::Admit;
            }
            b.refused += 1;
            let first = !b.in_episode;
            b.in_episode = true;
            if b.logged_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= LOG_EVERY_MS)
            {
                b.logged_ms = Some(now_ms);
                tracing::warn!(
                    caller = %principal(caller),
                    refused = b.refused,
                    "{}: caller over its budget, requests refused",
                    self.code
                );
            }
            if first {
                Admission::RefuseAudited
            } else {
                Admission::RefuseCounted
            }
        })
    }

    /// Charges `units` (bytes of audit record, or records) to `caller`.
    pub fn charge(&self, caller: &str, units: usize, now_ms: i64) {
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        self.with_bucket(caller, now_ms, |b| {
            b.balance = b.balance.saturating_sub(units);
        });
    }

    /// The refill rate, for messages.
    pub fn per_second(&self) -> i64 {
        self.rate
    }
}

/// Whether a request may go on, from both of its caller's budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Gate {
    Admit,
    /// Refused; `audited` for the first refusal of an episode.
    Refuse(Refusal, bool),
}

/// The two budgets every caller has: audit bytes (whatever the records are), and records that
/// sign nothing (a flood of Evaluate calls or of refused requests is capped by count, not
/// only once its bytes add up).
pub(super) struct Budgets {
    bytes: AuditBudget,
    unsigned: AuditBudget,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::new(
            (DEFAULT_BYTES_PER_SECOND, DEFAULT_BURST_BYTES),
            (DEFAULT_UNSIGNED_PER_SECOND, DEFAULT_UNSIGNED_BURST),
        )
    }
}

impl Budgets {
    /// `bytes` and `unsigned` as (per second, burst).
    pub fn new(bytes: (u64, u64), unsigned: (u64, u64)) -> Self {
        Budgets {
            bytes: AuditBudget::new(ReasonCode::AuditBudgetExceeded, bytes.0, bytes.1),
            unsigned: AuditBudget::new(ReasonCode::UnsignedRateExceeded, unsigned.0, unsigned.1),
        }
    }

    /// Consults the byte budget, then the unsigned-record one. A refusal that is not audited
    /// is counted in the metrics (`requests_refused_unaudited`) and its warning logged.
    pub fn admit(&self, caller: &str, now_ms: i64) -> Gate {
        for budget in [&self.bytes, &self.unsigned] {
            let audited = match budget.admit(caller, now_ms) {
                Admission::Admit => continue,
                Admission::RefuseAudited => true,
                Admission::RefuseCounted => {
                    crate::metrics::global().refused_unaudited(budget.code);
                    false
                }
            };
            return Gate::Refuse(self.refusal(budget, caller), audited);
        }
        Gate::Admit
    }

    fn refusal(&self, budget: &AuditBudget, caller: &str) -> Refusal {
        let who = principal(caller);
        let message = match budget.code {
            ReasonCode::AuditBudgetExceeded => format!(
                "{who} has caused more audit records than its budget of {} bytes per second \
                 allows; slow down and retry",
                budget.per_second()
            ),
            _ => format!(
                "{who} has caused more records that sign nothing (Evaluate answers, refusals, \
                 replays) than its rate of {} per second allows; slow down and retry",
                budget.per_second()
            ),
        };
        Refusal::new(RefusalKind::Exhausted, budget.code, message)
    }

    /// Charges a record about to be written to its caller: its bytes, and one record of the
    /// unsigned kind unless it is a signature.
    pub fn charge(&self, rec: &AuditRecord) {
        self.bytes.charge(&rec.peer, rec.body_len(), rec.time_ms);
        if rec.reason_code != ReasonCode::Signed.as_str() {
            self.unsigned.charge(&rec.peer, 1, rec.time_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_leave_out_the_connection() {
        assert_eq!(principal("unix:uid=1000,gid=1000,pid=42"), "unix:uid=1000");
        assert_eq!(principal("tcp:127.0.0.1:50000"), "tcp:127.0.0.1");
        assert_eq!(principal("tcp:[::1]:50000"), "tcp:[::1]");
        assert_eq!(principal("batch:file.json"), "batch:file.json");
        assert_eq!(
            principal("tls:spki=ab12,subject=\"CN=x, O=y\",peer=127.0.0.1:5"),
            "tls:spki=ab12"
        );
    }

    #[test]
    fn a_caller_in_debt_is_refused_until_it_refills() {
        let b = AuditBudget::new(ReasonCode::AuditBudgetExceeded, 1000, 2000);
        let alice = "unix:uid=1,gid=1,pid=7";
        assert_eq!(b.admit(alice, 0), Admission::Admit);
        b.charge(alice, 2500, 0);
        // Another pid of the same uid shares the budget.
        assert_eq!(
            b.admit("unix:uid=1,gid=1,pid=8", 0),
            Admission::RefuseAudited
        );
        assert_eq!(b.admit(alice, 100), Admission::RefuseCounted);
        // Others are not affected.
        assert_eq!(b.admit("unix:uid=2,gid=2,pid=9", 100), Admission::Admit);
        // 0.5 s refills 500 bytes: still in debt; 0.6 s brings it positive.
        assert_eq!(b.admit(alice, 500), Admission::RefuseCounted);
        assert_eq!(b.admit(alice, 600), Admission::Admit);
        // A new episode's first refusal is audited again.
        b.charge(alice, 10_000, 600);
        assert_eq!(b.admit(alice, 600), Admission::RefuseAudited);
        // Refills never exceed the burst, and a clock stepping back refills nothing.
        assert_eq!(b.admit(alice, 1_000_000), Admission::Admit);
        b.charge(alice, 2000, 1_000_000);
        assert_eq!(b.admit(alice, 0), Admission::RefuseAudited);
    }

    fn record(peer: &str, code: ReasonCode, time_ms: i64) -> AuditRecord {
        AuditRecord {
            time_ms,
            caller: String::new(),
            identity: String::new(),
            peer: peer.into(),
            method: "Evaluate".into(),
            key: None,
            txid: None,
            payout_id: None,
            intent: None,
            decision: crate::ledger::Decision::Allow,
            reason_code: code.as_str().into(),
            message: String::new(),
            policy_hash: String::new(),
            approvals: None,
            deposit_index: None,
        }
    }

    #[test]
    fn records_that_sign_nothing_are_capped_by_count_and_signatures_are_not() {
        let b = Budgets::new((u64::MAX, u64::MAX), (1, 3));
        let alice = "unix:uid=1,gid=1,pid=7";
        for t in 0..10 {
            b.charge(&record(alice, ReasonCode::Signed, t));
        }
        assert_eq!(b.admit(alice, 10), Gate::Admit);
        for _ in 0..3 {
            b.charge(&record(alice, ReasonCode::WouldSign, 10));
        }
        let Gate::Refuse(r, true) = b.admit(alice, 10) else {
            panic!("the first refusal of the episode is audited");
        };
        assert_eq!(r.code, ReasonCode::UnsignedRateExceeded);
        assert_eq!(r.kind, RefusalKind::Exhausted);
        assert!(r.message.contains("unix:uid=1 "), "{}", r.message);
        let before =
            crate::metrics::global().refused_unaudited_of(ReasonCode::UnsignedRateExceeded);
        assert!(matches!(b.admit(alice, 11), Gate::Refuse(_, false)));
        assert!(
            crate::metrics::global().refused_unaudited_of(ReasonCode::UnsignedRateExceeded)
                > before
        );
        // One a second: after a second and a bit the balance is positive again.
        assert_eq!(b.admit(alice, 1_100), Gate::Admit);
        // Another caller has its own rate.
        assert_eq!(b.admit("unix:uid=2,gid=2,pid=9", 11), Gate::Admit);
    }

    #[test]
    fn quiet_callers_are_forgotten() {
        let b = AuditBudget::new(ReasonCode::AuditBudgetExceeded, 1000, 1000);
        for i in 0..(3 * PRUNE_ABOVE) {
            let who = format!("tcp:10.0.{}.{}:1", i / 256, i % 256);
            b.charge(&who, 10, i as i64 * 1000);
        }
        let n = b.buckets.lock().unwrap().map.len();
        assert!(n <= 2 * PRUNE_ABOVE, "{n} buckets kept");
    }

    #[test]
    fn callers_that_all_stay_in_debt_are_capped_too() {
        let b = AuditBudget::new(ReasonCode::AuditBudgetExceeded, 1, 1000);
        let peer = |i: usize| format!("tcp:10.{}.{}.{}:1", i >> 16, (i >> 8) & 255, i & 255);
        for i in 0..MAX_BUCKETS + 500 {
            // Each drains its bucket, so none is ever full enough to be swept as quiet.
            b.charge(&peer(i), 900, 0);
        }
        let kept = b.buckets.lock().unwrap().map.len();
        assert_eq!(kept, MAX_BUCKETS);
        // The newest caller is among those kept, still in debt.
        assert_eq!(b.admit(&peer(MAX_BUCKETS + 499), 0), Admission::Admit);
        b.charge(&peer(MAX_BUCKETS + 499), 1000, 0);
        assert_eq!(
            b.admit(&peer(MAX_BUCKETS + 499), 0),
            Admission::RefuseAudited
        );
    }
}
