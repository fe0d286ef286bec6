//! The decision path shared by every front end (gRPC and batch files):
//! bytes → intent → decision → durable record → signature.

use std::sync::Arc;

use tron_proto::Address;

use crate::approval::{self, ApprovalError, Approvals, Offered};
use crate::freeze::{self as freeze_statement, FreezeSet, Scope};
use crate::governance::AdminSet;
use crate::keys::{KeyBackend, KeyRing};
use crate::ledger::{self, KeyTurn, Ledger, Lookup, PendingEntry, StateGuard};
use crate::policy::archive::ArchiveError;
use crate::policy::{Decision, KeyGrant, LoadedPolicy, Request, Rpc, Usage};
use crate::reason::ReasonCode;

use super::audit_budget::{Budgets, Gate};
use super::audit_draft::{self, Draft};
use super::authorize::{authorize, Authorized};
use super::clock_guard::ClockGuard;
use super::freezes::{self, Freezes};
use super::peer::Peer;
use super::policy_gate::{self, Admitted};
use super::policy_slot::PolicySlot;
use super::refusal::{Refusal, RefusalKind};
use super::request::{self, Checked};

/// A released signature and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub txid: [u8; 32],
    pub signature: [u8; 65],
    /// `Transaction { raw_data, signature }` bytes, with `raw_data` exactly as received.
    pub signed_transaction: Vec<u8>,
    pub policy_hash: String,
    pub rule: String,
    pub audit_sequence: u64,
    /// The txid had been signed before; the stored signature was returned.
    pub replayed: bool,
}

/// The outcome of an Evaluate call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    pub txid: [u8; 32],
    pub allowed: bool,
    pub rule: String,
    /// Why Sign would refuse; `None` when it would sign.
    pub reason_code: Option<ReasonCode>,
    pub message: String,
    /// For `approval_required`: the statement approvers sign.
    pub approval_statement: Option<String>,
    pub policy_hash: String,
    pub audit_sequence: u64,
}

/// Milliseconds since the Unix epoch; injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// Everything one signing decision needs.
pub struct Core {
    keys: KeyRing,
    policy: PolicySlot,
    ledger: Ledger,
    clock: Clock,
    /// Audit bytes each caller may cause per second (Sign and Evaluate, refusals included).
    budget: Budgets,
    /// Refuses to sign on a clock that jumped.
    clock_guard: ClockGuard,
    /// `[policy_admins]`: who must sign a policy before it goes into force.
    admins: Option<AdminSet>,
    /// The administrators' freezes in force (recorded in the ledger).
    freezes: Freezes,
}

/// What [`Core::freeze`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeTaken {
    /// `"all keys frozen by administrator …"`.
    pub description: String,
    pub admin: String,
    /// The scope was frozen already; the statement was recorded all the same.
    pub already: bool,
    pub audit_sequence: u64,
}

/// What [`Core::begin`] hands on.
struct Begun {
    policy: Arc<LoadedPolicy>,
    now: i64,
    checked: Checked,
    draft: Draft,
    /// The `[[caller]]` name the request came from.
    initiator: String,
}

/// What the approvals a request carries come to (see [`approval::check`]), judged before
/// the state lock is taken: verifying signatures is the slow part, and it depends on nothing
/// the ledger holds.
type ApprovalOutcome = Result<Option<Approvals>, ApprovalError>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Sign,
    Evaluate,
}

impl Method {
    fn as_str(self) -> &'static str {
        self.rpc().as_str()
    }

    fn rpc(self) -> Rpc {
        match self {
            Method::Sign => Rpc::Sign,
            Method::Evaluate => Rpc::Evaluate,
        }
    }
}

/// What [`Core::allow`] hands a read-only RPC: the policy it was authorised under, and the
/// keys its caller may see.
#[derive(Debug)]
pub struct Allowed {
    pub policy: Arc<LoadedPolicy>,
    pub keys: KeyGrant,
}

impl Core {
    pub fn new(keys: KeyRing, policy: LoadedPolicy, ledger: Ledger, clock: Clock) -> Self {
        let freezes = Freezes::load(ledger.freezes(), &policy.hash_hex());
        Core {
            freezes,
            keys,
            policy: PolicySlot::new(policy, ledger.dir().to_path_buf()),
            ledger,
            clock,
            budget: Budgets::default(),
            clock_guard: ClockGuard::new(crate::config::ClockConfig::DEFAULT_MAX_ADVANCE_MS),
            admins: None,
        }
    }

    /// Requires a quorum of `admins` over the bytes of every policy put in force from now on
    /// (the one given to [`Core::new`] is checked by the caller, before keys are unlocked).
    pub fn with_policy_admins(mut self, admins: Option<AdminSet>) -> Self {
        self.admins = admins;
        self
    }

    /// Whether `new` may be put in force: signed by the administrators' quorum (when there
    /// are any) and not a rollback of the policy the ledger recorded last. Blocking file I/O
    /// (the signature files).
    pub fn admit_policy(&self, new: &LoadedPolicy) -> Result<Admitted, Refusal> {
        let in_force = self.policy();
        policy_gate::admit(
            policy_gate::current_admins(self.admins.as_ref(), Some(&in_force)),
            self.ledger.policy_mark(),
            new,
            (self.clock)(),
        )
    }

    /// At start-up: records the policy in force in the ledger (with an audit record) when it
    /// is not the one recorded last, so that no later start or reload can roll it back.
    pub async fn record_policy_at_start(&self, admitted: &Admitted) -> Result<(), Refusal> {
        self.policy
            .keep_signatures(&admitted.mark.hash, &admitted.signatures);
        if self.ledger.policy_mark() == Some(admitted.mark) {
            return Ok(());
        }
        let policy = self.policy();
        let before = self
            .ledger
            .policy_mark()
            .map_or("none recorded".to_owned(), |m| {
                format!("revision {} ({})", m.revision, hex::encode(m.hash))
            });
        let rec = self
            .draft("signer:start", "Start", &policy.hash_hex())
            .outcome(
                ledger::Decision::Allow,
                ReasonCode::PolicyInForce,
                format!(
                    "policy {} (revision {}) in force at start-up{}; before: {before}",
                    policy.hash_hex(),
                    policy.revision,
                    admitted.signers()
                ),
            );
        self.budget.charge(&rec);
        self.ledger
            .put_policy(rec, admitted.mark)
            .await
            .map_err(|e| Refusal::ledger_with(&e, "the policy in force could not be recorded"))?;
        if self.freezes.under(&policy).is_none() {
            // Recorded under an earlier policy: the ledger lifted them in that commit.
            self.freezes.lift();
        }
        Ok(())
    }

    /// Replaces the default `[clock] max_advance`: how far ahead of the latest signature the
    /// clock may read before signing stops (`clock_jump`).
    pub fn with_max_clock_advance(mut self, max_advance_ms: u64) -> Self {
        self.clock_guard = ClockGuard::new(max_advance_ms);
        self
    }

    /// Follows the clock alarm: `Some(why)` while signing is refused for a clock jump.
    pub fn clock_alarm(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.clock_guard.alarm()
    }

    /// Replaces the default audit budget: each caller may cause `bytes_per_second` of audit
    /// records per second on average, `burst_bytes` at once.
    pub fn with_audit_budget(self, bytes_per_second: u64, burst_bytes: u64) -> Self {
        self.with_budgets(
            (bytes_per_second, burst_bytes),
            (
                super::audit_budget::DEFAULT_UNSIGNED_PER_SECOND,
                super::audit_budget::DEFAULT_UNSIGNED_BURST,
            ),
        )
    }

    /// Replaces both default budgets, each as (per second, burst): audit bytes, and records
    /// that sign nothing (Evaluate answers, refusals, replays).
    pub fn with_budgets(mut self, bytes: (u64, u64), unsigned: (u64, u64)) -> Self {
        self.budget = Budgets::new(bytes, unsigned);
        self
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The text of `policy` (one this core put in force): from memory, or from the archive,
    /// checked by hash. Blocking file I/O when archived.
    pub fn policy_text(&self, policy: &LoadedPolicy) -> Result<String, ArchiveError> {
        self.policy.text(policy)
    }

    /// The text of the policy with this hash: the one in force, or any earlier one from the
    /// archive, checked by hash. Blocking file I/O.
    pub fn policy_text_by_hash(&self, hash: &[u8; 32]) -> Result<String, ArchiveError> {
        self.policy.text_by_hash(hash)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.policy.current()
    }

    /// Puts a new, validated and admitted ([`Core::admit_policy`]) policy in force: first
    /// recorded durably (with its audit record and the ledger's no-rollback mark), then
    /// swapped in atomically. Nothing changes if the record cannot be written.
    pub async fn replace_policy(
        &self,
        new: LoadedPolicy,
        admitted: &Admitted,
        caller: &str,
    ) -> Result<u64, Refusal> {
        let new_hash = new.hash_hex();
        let old_hash = self.policy().hash_hex();
        let rec = self.draft(caller, "Reload", &new_hash).outcome(
            ledger::Decision::Allow,
            ReasonCode::PolicyReloaded,
            format!(
                "policy {old_hash} replaced by {new_hash} (revision {}){}",
                new.revision,
                admitted.signers()
            ),
        );
        self.budget.charge(&rec);
        let seq = self
            .ledger
            .put_policy(rec, admitted.mark)
            .await
            .map_err(|e| {
                Refusal::ledger_with(
                    &e,
                    "the new policy could not be recorded, so it was not put in force",
                )
            })?;
        self.policy.swap(new);
        if new_hash != old_hash {
            // The ledger lifted them in the same commit as the new mark.
            self.freezes.lift();
        }
        self.policy
            .keep_signatures(&admitted.mark.hash, &admitted.signatures);
        Ok(seq)
    }

    /// Takes a policy administrator's freeze statement (`crate::freeze`): the caller must be
    /// granted `Freeze`; the statement must be signed by an administrator and name the
    /// policy in force. What it covers is refused `frozen` from its commit on, durably,
    /// until a new policy is in force. Every outcome is audited.
    pub async fn freeze(
        &self,
        peer: &Peer,
        statement: &str,
        signature: &str,
    ) -> Result<FreezeTaken, Refusal> {
        let policy = self.policy();
        let who = peer.describe();
        let gate = self.budget.admit(&who, (self.clock)());
        if let Gate::Refuse(r, false) = gate {
            return Err(r);
        }
        let mut draft = self.draft(&who, Rpc::Freeze.as_str(), &policy.hash_hex());
        if let Gate::Refuse(r, true) = gate {
            return Err(self.refuse(draft, r).await);
        }
        match authorize(&policy.policy, peer, Rpc::Freeze) {
            Ok(a) => draft = draft.caller(&a.caller.name, a.by.to_string()),
            Err((known, r)) => {
                if let Some(a) = known {
                    draft = draft.caller(&a.caller.name, a.by.to_string());
                }
                return Err(self.refuse(draft, r).await);
            }
        }
        let deny = |code, message: String| Refusal::new(RefusalKind::Denied, code, message);
        let Some(admins) = policy_gate::current_admins(self.admins.as_ref(), Some(&policy)) else {
            let r = deny(
                ReasonCode::FreezeUnavailable,
                "the signer config names no policy administrators ([policy_admins]), so no \
                 freeze statement can be judged"
                    .into(),
            );
            return Err(self.refuse(draft, r).await);
        };
        let (st, order) = match freeze_statement::judge(admins, statement, signature) {
            Ok(judged) => judged,
            Err(e) => return Err(self.refuse(draft, deny(e.code(), e.to_string())).await),
        };
        if st.policy_hash != policy.hash {
            let r = deny(
                ReasonCode::FreezeStale,
                format!(
                    "the statement freezes policy {}, but policy {} is in force (a new policy \
                     lifted that freeze, or the statement is for another signer): sign a \
                     statement for the policy in force",
                    hex::encode(st.policy_hash),
                    policy.hash_hex()
                ),
            );
            return Err(self.refuse(draft, r).await);
        }
        if let Scope::Key(k) = st.scope {
            if policy.policy.key(&k).is_none() {
                let r = deny(
                    ReasonCode::FreezeInvalid,
                    format!("the policy in force has no key {k} to freeze"),
                );
                return Err(self.refuse(draft, r).await);
            }
        }
        let _writing = self.freezes.writing().await;
        // With a shared ledger, another signer may have frozen something since: add to
        // the set as recorded, not as this signer last saw it.
        match self.ledger.recorded_now().await {
            Ok(None) => {}
            Ok(Some(rec)) => self
                .freezes
                .sync(rec.freezes.as_deref(), &policy.hash_hex()),
            Err(e) => {
                let r = Refusal::ledger_with(&e, "the freezes in force could not be read");
                return Err(self.refuse(draft, r).await);
            }
        }
        let current = self.freezes.under(&policy);
        let already = current
            .as_ref()
            .and_then(|f| f.already(&st.scope))
            .is_some();
        let mut set = current.map_or_else(
            || FreezeSet {
                policy: policy.hash_hex(),
                orders: Vec::new(),
            },
            |f| (*f).clone(),
        );
        set.orders.push(order.clone());
        let description = order.describe();
        let rec = draft.outcome(
            ledger::Decision::Allow,
            ReasonCode::FreezeApplied,
            format!(
                "{description}{}; a new quorum-signed policy lifts it",
                if already { " (already frozen)" } else { "" }
            ),
        );
        self.budget.charge(&rec);
        let audit_sequence = self
            .ledger
            .put_freeze(rec, set.encode(), self.freezes.recorded_bytes())
            .await
            .map_err(|e| Refusal::ledger_with(&e, "the freeze could not be recorded"))?;
        self.freezes.replace(set);
        tracing::warn!(admin = %order.admin, scope = ?st.scope, "freeze in force: {description}");
        Ok(FreezeTaken {
            description,
            admin: order.admin,
            already,
            audit_sequence,
        })
    }

    /// Records a reload that was refused with `code` (the old policy stays in force).
    pub async fn reload_refused(
        &self,
        caller: &str,
        code: ReasonCode,
        problems: &str,
    ) -> Result<u64, Refusal> {
        let rec = self
            .draft(caller, "Reload", &self.policy().hash_hex())
            .outcome(
                ledger::Decision::Deny,
                code,
                format!("new policy refused, old one stays in force: {problems}"),
            );
        audit_draft::write(&self.ledger, &self.budget, rec).await
    }

    /// Records a reload of the TLS settings: put in force, or refused with the code and
    /// message of why (the settings in force stay).
    pub async fn tls_reloaded(
        &self,
        caller: &str,
        outcome: Result<(), (&str, String)>,
    ) -> Result<u64, Refusal> {
        let draft = self.draft(caller, "ReloadTls", &self.policy().hash_hex());
        let rec = match outcome {
            Ok(()) => draft.outcome(
                ledger::Decision::Allow,
                ReasonCode::TlsReloaded,
                "TLS certificate, key and client trust re-read and put in force".into(),
            ),
            Err((code, why)) => draft.outcome(
                ledger::Decision::Deny,
                ReasonCode::TlsReloadRefused,
                format!("new TLS settings refused ({code}), the ones in force stay: {why}"),
            ),
        };
        audit_draft::write(&self.ledger, &self.budget, rec).await
    }

    /// Decide, record durably, then sign (DESIGN invariants 1-7).
    pub async fn sign(
        &self,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
    ) -> Result<Signed, Refusal> {
        self.sign_on(None, peer, key, raw, payout_id, &[], None)
            .await
    }

    /// [`Core::sign`] with the approvals the request carries and its HD `deposit_index`
    /// (a deposit key's own index, or the deposit address a gas key funds).
    pub async fn sign_with(
        &self,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
        approvals: &[Offered<'_>],
        deposit_index: Option<u32>,
    ) -> Result<Signed, Refusal> {
        self.sign_on(None, peer, key, raw, payout_id, approvals, deposit_index)
            .await
    }

    /// [`Core::sign`] for a request labelled with the network it is meant for (a batch
    /// file): one for another network than the policy's is refused `network_mismatch`,
    /// audited like any refusal, before anything is decoded.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_on(
        &self,
        network: Option<&str>,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
        approvals: &[Offered<'_>],
        deposit_index: Option<u32>,
    ) -> Result<Signed, Refusal> {
        let Begun {
            policy,
            now,
            checked,
            draft,
            initiator,
        } = self
            .begin(
                Method::Sign,
                network,
                peer,
                key,
                raw,
                payout_id,
                deposit_index,
            )
            .await?;
        let (approved, draft) = judge_approvals(
            &policy, &checked, payout_id, &initiator, approvals, now, draft,
        );
        let txid = checked.decoded.envelope.txid;
        let backend = match self.backend_for(&policy, &checked) {
            Ok(b) => b,
            Err(r) => return Err(self.refuse(draft, r).await),
        };

        let turn = match self.ledger.turn(&checked.key, &txid, now).await {
            Ok(t) => t,
            Err(e) => return Err(self.refuse(draft, Refusal::ledger(&e)).await),
        };
        let step = self.reserve(&turn, &policy, &checked, payout_id, &approved, now);
        let (reservation, rule) = match step {
            Step::Refuse(r) => {
                end_turn(turn).await;
                return Err(self.refuse(draft, r).await);
            }
            Step::Replay(entry) => {
                end_turn(turn).await;
                return self
                    .replay(draft, &checked, raw, payout_id, *entry, &policy)
                    .await;
            }
            Step::Reserved(mut reservation, rule) => {
                // With a shared ledger, every other signer counts it before this one signs.
                if let Err(e) = turn.publish(&mut reservation).await {
                    drop(reservation);
                    return Err(self.refuse(draft, Refusal::ledger(&e)).await);
                }
                (reservation, rule)
            }
        };

        let started = std::time::Instant::now();
        let signed = backend.sign(&txid).await;
        let metrics = crate::metrics::global();
        let signature = match signed {
            Ok(s) => {
                metrics.backend_signed(backend.backend(), started.elapsed());
                s
            }
            Err(e) => {
                metrics.backend_failed(backend.backend(), e.reason());
                drop(reservation);
                return Err(self.refuse(draft, Refusal::key_backend(&e)).await);
            }
        };
        let audit = draft.outcome(ledger::Decision::Allow, ReasonCode::Signed, rule.clone());
        self.budget.charge(&audit);
        // Invariant 4: the signature leaves only after this commit returned.
        let audit_sequence = reservation.commit(signature, audit).await.map_err(|e| {
            Refusal::ledger_with(
                &e,
                "the ledger could not record the signature, so it was not released",
            )
        })?;
        Ok(Signed {
            txid,
            signature,
            signed_transaction: tron_proto::signed_transaction(raw, &signature),
            policy_hash: policy.hash_hex(),
            rule,
            audit_sequence,
            replayed: false,
        })
    }

    /// The same checks as [`Core::sign`], without signing or consuming limits; audited.
    pub async fn evaluate(
        &self,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
    ) -> Result<Evaluated, Refusal> {
        self.evaluate_with(peer, key, raw, payout_id, &[], None)
            .await
    }

    /// [`Core::evaluate`] with the approvals the request carries (whether Sign would take
    /// them) and its HD `deposit_index`.
    pub async fn evaluate_with(
        &self,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
        approvals: &[Offered<'_>],
        deposit_index: Option<u32>,
    ) -> Result<Evaluated, Refusal> {
        let Begun {
            policy,
            now,
            checked,
            draft,
            initiator,
        } = self
            .begin(
                Method::Evaluate,
                None,
                peer,
                key,
                raw,
                payout_id,
                deposit_index,
            )
            .await?;
        let (approved, draft) = judge_approvals(
            &policy, &checked, payout_id, &initiator, approvals, now, draft,
        );
        let txid = checked.decoded.envelope.txid;
        let turn = match self.ledger.turn(&checked.key, &txid, now).await {
            Ok(t) => t,
            Err(e) => return Err(self.refuse(draft, Refusal::ledger(&e)).await),
        };
        let judged = self.judge(&turn, &policy, &checked, payout_id, &approved, now);
        end_turn(turn).await;
        let (allowed, rule, reason_code, message, approval_statement) = match judged {
            Ok(rule) => (true, rule, None, String::new(), None),
            Err(r) if r.kind == RefusalKind::Denied => {
                (false, String::new(), Some(r.code), r.message, r.statement)
            }
            Err(r) => return Err(self.refuse(draft, r).await),
        };
        let rec = match reason_code {
            None => draft.outcome(ledger::Decision::Allow, ReasonCode::WouldSign, rule.clone()),
            Some(code) => draft.outcome(ledger::Decision::Deny, code, message.clone()),
        };
        let audit_sequence = audit_draft::write(&self.ledger, &self.budget, rec).await?;
        Ok(Evaluated {
            txid,
            allowed,
            rule,
            reason_code,
            message,
            approval_statement,
            policy_hash: policy.hash_hex(),
            audit_sequence,
        })
    }

    /// Ledger checks, policy, and the reservation, all under the state lock so that
    /// concurrent requests cannot both pass a limit. Synchronous on purpose: the lock must
    /// never be held across an await.
    fn reserve(
        &self,
        turn: &KeyTurn,
        policy: &LoadedPolicy,
        checked: &Checked,
        payout_id: &str,
        approved: &ApprovalOutcome,
        now: i64,
    ) -> Step {
        if let Some(r) = self.shared_changes(turn, policy) {
            return Step::Refuse(r);
        }
        let mut state = self.ledger.state_in(turn);
        let frozen = self.freezes.under(policy);
        let decided = decide(
            &state,
            policy,
            frozen.as_deref(),
            &self.clock_guard,
            checked,
            payout_id,
            approved,
            now,
        );
        let rule = match decided {
            Err(r) => return Step::Refuse(r),
            Ok(Decided::Replay(entry)) => return Step::Replay(entry),
            Ok(Decided::Allow(rule)) => rule,
        };
        let intent = &checked.decoded.intent;
        match state.reserve(PendingEntry {
            txid: checked.decoded.envelope.txid,
            key: checked.key,
            asset: intent.asset(),
            destination: *intent.to(),
            amount: intent.amount(),
            payout_id: payout_id.to_owned(),
            expiration_ms: checked.decoded.envelope.expiration,
            signed_at_ms: now,
            policy_hash: policy.hash,
        }) {
            Ok(r) => Step::Reserved(Box::new(r), rule),
            Err(e) => Step::Refuse(Refusal::ledger(&e)),
        }
    }

    /// The Evaluate counterpart of [`Core::reserve`]: the same checks, nothing reserved.
    fn judge(
        &self,
        turn: &KeyTurn,
        policy: &LoadedPolicy,
        checked: &Checked,
        payout_id: &str,
        approved: &ApprovalOutcome,
        now: i64,
    ) -> Result<String, Refusal> {
        self.backend_for(policy, checked)?;
        if let Some(r) = self.shared_changes(turn, policy) {
            return Err(r);
        }
        let frozen = self.freezes.under(policy);
        let state = self.ledger.state_in(turn);
        match decide(
            &state,
            policy,
            frozen.as_deref(),
            &self.clock_guard,
            checked,
            payout_id,
            approved,
            now,
        )? {
            Decided::Replay(_) => Ok("already signed; Sign returns the stored signature".into()),
            Decided::Allow(rule) => Ok(rule),
        }
    }

    /// With a shared ledger, what other signers changed: a policy other than this signer's
    /// put in force (refused until this one is reloaded with it: one policy decides, never
    /// two side by side), and freezes (taken over, so they hold on every signer).
    fn shared_changes(&self, turn: &KeyTurn, policy: &LoadedPolicy) -> Option<Refusal> {
        let rec = turn.recorded()?;
        if let Some(mark) = rec.policy_mark.filter(|m| m.hash != policy.hash) {
            return Some(Refusal::new(
                RefusalKind::Unavailable,
                ReasonCode::PolicyNotCurrent,
                format!(
                    "policy {} (revision {}) is in force on the shared ledger, but this signer \
                     has policy {} (revision {}): reload it with the policy in force",
                    hex::encode(mark.hash),
                    mark.revision,
                    policy.hash_hex(),
                    policy.revision
                ),
            ));
        }
        self.freezes
            .sync(rec.freezes.as_deref(), &policy.hash_hex());
        None
    }

    /// The key that signs `checked`: a loaded key by its address, or for a deposit key
    /// (no `[[key]]`, an HD index) the key derived from the seed of the deposit account
    /// that, by the policy's own derivation from its xpub, has this address at this index.
    /// The derived key's address is compared again, so the keystore's derivation and the
    /// policy's must agree before anything is signed.
    fn backend_for(
        &self,
        policy: &LoadedPolicy,
        checked: &Checked,
    ) -> Result<Arc<dyn KeyBackend>, Refusal> {
        let deposit = checked
            .deposit_index
            .filter(|_| policy.policy.key(&checked.key).is_none());
        let Some(index) = deposit else {
            return self
                .keys
                .get(&checked.key)
                .cloned()
                .ok_or_else(|| Refusal::key_not_loaded(&checked.key));
        };
        let account = policy
            .policy
            .deposit_account_for(&checked.key, index)
            .map_err(|d| Refusal::new(RefusalKind::Denied, d.code.reason(), d.message))?;
        let hd = self
            .keys
            .deposit_account(&account.xpub)
            .ok_or_else(|| Refusal::deposit_account_not_loaded(&account.name))?;
        let key = hd.derive(index).map_err(|e| Refusal::key_backend(&e))?;
        if key.address() != checked.key {
            return Err(Refusal::new(
                RefusalKind::Denied,
                ReasonCode::DepositAddressMismatch,
                format!(
                    "the keystore's account {:?} derives {} at index {index}, not {}",
                    hd.label(),
                    key.address(),
                    checked.key
                ),
            ));
        }
        Ok(key)
    }

    /// Sets the metrics read from state rather than counted: the policy in force, and the
    /// used fraction of each key-wide window (as the policy itself would count it now).
    pub fn publish_metrics(&self) {
        let policy = self.policy();
        let metrics = crate::metrics::global();
        metrics.set_policy(&policy.hash_hex(), &policy.name, policy.revision);
        let now = (self.clock)();
        let p = &policy.policy;
        let mut usage = Vec::new();
        {
            let state = self.ledger.state();
            for k in &p.keys {
                for a in &k.assets {
                    let symbol = p.asset_info(&a.asset).map_or("?", |i| i.symbol.as_str());
                    for w in &a.windows {
                        let back = crate::policy::landing::lookback_ms(
                            w.window_ms,
                            k.envelope.clock_skew_ms,
                        );
                        let used = state.used(&k.address, a.asset, None, back, now);
                        let ratio = used.as_f64() / w.max.as_f64().max(1.0);
                        usage.push((
                            crate::metrics::WindowLabels {
                                key: k.address.to_base58(),
                                asset: symbol.to_owned(),
                                window: w.label.clone(),
                            },
                            ratio,
                        ));
                    }
                }
            }
        }
        metrics.set_windows(usage);
    }

    /// The start both Sign and Evaluate share: the policy in force, the clock, the validated
    /// request, and the audit record it will be written under (a refusal here is audited).
    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        method: Method,
        network: Option<&str>,
        peer: &Peer,
        key: &str,
        raw: &[u8],
        payout_id: &str,
        deposit_index: Option<u32>,
    ) -> Result<Begun, Refusal> {
        let policy = self.policy();
        let now = (self.clock)();
        let who = peer.describe();
        let gate = self.budget.admit(&who, now);
        if let Gate::Refuse(r, false) = gate {
            return Err(r);
        }
        let parsed_key = request::parse_key(key);
        let draft = self
            .draft(&who, method.as_str(), &policy.hash_hex())
            .fields(&parsed_key, key, payout_id)
            .deposit_index(deposit_index);
        if let Gate::Refuse(r, true) = gate {
            return Err(self.refuse(draft, r).await);
        }
        let (draft, initiator) = match authorize(&policy.policy, peer, method.rpc()) {
            Ok(a) => {
                let draft = draft.caller(&a.caller.name, a.by.to_string());
                // A key that does not parse is refused below, for what it is.
                let grant = |k: &Address| match deposit_index {
                    Some(i) if policy.policy.key(k).is_none() => {
                        a.deposit_key(&policy.policy, k, i)
                    }
                    _ => a.key(k),
                };
                match parsed_key.as_ref().map(grant) {
                    Ok(Err(r)) => return Err(self.refuse(draft, r).await),
                    _ => (draft, a.caller.name.clone()),
                }
            }
            Err((known, r)) => {
                let draft = match known {
                    Some(a) => draft.caller(&a.caller.name, a.by.to_string()),
                    None => draft,
                };
                return Err(self.refuse(draft, r).await);
            }
        };
        let ours = policy.policy.network.as_str();
        if let Some(asked) = network.filter(|n| *n != ours) {
            let r = Refusal::new(
                RefusalKind::Denied,
                ReasonCode::NetworkMismatch,
                format!(
                    "the request is for network {} but this signer's policy is for {ours}; \
                     nothing was signed",
                    super::bounded::preview(asked)
                ),
            );
            return Err(self.refuse(draft, r).await);
        }
        let checked = match request::check(parsed_key, key, raw, payout_id, deposit_index) {
            Ok(c) => c,
            Err(r) => return Err(self.refuse(draft, r).await),
        };
        let draft = draft.request(&checked.decoded);
        Ok(Begun {
            policy,
            now,
            checked,
            draft,
            initiator,
        })
    }

    /// Authorises a read-only RPC (ListKeys, GetPolicy, ReadPolicyText) for `peer` under
    /// the policy in force. Only refusals are audited (and charged to the peer's budget): a
    /// read changes nothing, and a monitor polling every few seconds must not fill the log.
    pub async fn allow(&self, peer: &Peer, rpc: Rpc) -> Result<Allowed, Refusal> {
        let policy = self.policy();
        let keys = match authorize(&policy.policy, peer, rpc) {
            Ok(Authorized { caller, .. }) => caller.keys.clone(),
            Err((known, r)) => {
                let who = peer.describe();
                let mut draft = self.draft(&who, rpc.as_str(), &policy.hash_hex());
                if let Some(a) = known {
                    draft = draft.caller(&a.caller.name, a.by.to_string());
                }
                let r = match self.budget.admit(&who, (self.clock)()) {
                    Gate::Refuse(over, false) => return Err(over),
                    Gate::Refuse(over, true) => over,
                    Gate::Admit => r,
                };
                return Err(self.refuse(draft, r).await);
            }
        };
        Ok(Allowed { policy, keys })
    }

    async fn replay(
        &self,
        draft: Draft,
        checked: &Checked,
        raw: &[u8],
        payout_id: &str,
        entry: crate::ledger::Entry,
        policy: &LoadedPolicy,
    ) -> Result<Signed, Refusal> {
        let p = &entry.pending;
        if p.key != checked.key || p.payout_id != payout_id {
            let r = Refusal::new(
                RefusalKind::Denied,
                ReasonCode::TxidReused,
                format!(
                    "transaction {} was already signed for payout {:?} with key {}",
                    hex::encode(p.txid),
                    p.payout_id,
                    p.key
                ),
            );
            return Err(self.refuse(draft, r).await);
        }
        let rec = draft.outcome(
            ledger::Decision::Allow,
            ReasonCode::Replayed,
            "same txid asked again; stored signature returned, not counted again".into(),
        );
        let audit_sequence = audit_draft::write(&self.ledger, &self.budget, rec).await?;
        Ok(Signed {
            txid: entry.pending.txid,
            signature: entry.signature,
            signed_transaction: tron_proto::signed_transaction(raw, &entry.signature),
            policy_hash: policy.hash_hex(),
            rule: "replay of an already signed transaction".into(),
            audit_sequence,
            replayed: true,
        })
    }

    /// The audit draft of a request from `peer` (as [`Peer::describe`] names it), stamped
    /// with the signer's clock.
    fn draft(&self, peer: &str, method: &str, policy_hash: &str) -> Draft {
        Draft::new((self.clock)(), peer, method, policy_hash)
    }

    /// Audits a refusal and returns it with its audit sequence filled in.
    async fn refuse(&self, draft: Draft, r: Refusal) -> Refusal {
        audit_draft::refuse(&self.ledger, &self.budget, draft, r).await
    }
}

/// Ends a key's turn that reserved nothing. A failure here loses nothing: the turn only
/// read, and what it voided is voided again by the next.
async fn end_turn(turn: KeyTurn) {
    if let Err(e) = turn.finish().await {
        tracing::warn!(code = e.code(), "ending a ledger turn failed: {e}");
    }
}

/// Where [`Core::reserve`] left a Sign request.
enum Step {
    Refuse(Refusal),
    Replay(Box<ledger::Entry>),
    Reserved(Box<ledger::Reservation>, String),
}

/// What the ledger already knows about this request.
enum Prior {
    Fresh,
    /// The same txid was signed before: return the stored signature.
    Replay(Box<ledger::Entry>),
}

/// Ledger checks that come before policy, under the state lock (invariant 5).
fn prior(
    state: &StateGuard<'_>,
    checked: &Checked,
    payout_id: &str,
    now: i64,
    skew_ms: i64,
) -> Result<Prior, Refusal> {
    let txid = checked.decoded.envelope.txid;
    match state.find_txid(&txid) {
        Err(e) => return Err(Refusal::ledger(&e)),
        Ok(Some(Lookup::Committed(entry))) => return Ok(Prior::Replay(entry)),
        Ok(Some(Lookup::InFlight)) => {
            return Err(Refusal::new(
                RefusalKind::Unavailable,
                ReasonCode::TxidInFlight,
                format!(
                    "transaction {} is being signed by another request; retry",
                    hex::encode(txid)
                ),
            ))
        }
        Ok(None) => {}
    }
    if let Some(p) = state.find_payout(&checked.key, payout_id) {
        // The earlier transaction can land until its expiration, judged with the
        // policy's clock skew since the node's clock is not ours.
        let can_land = p.in_flight
            || crate::policy::can_still_land(p.expiration_ms, skew_ms.unsigned_abs(), now);
        if p.txid != txid && can_land {
            return Err(Refusal::new(
                RefusalKind::Denied,
                ReasonCode::PayoutInFlight,
                format!(
                    "payout {payout_id:?} already has transaction {} that can land until {} ms; a new one is allowed only after that",
                    hex::encode(p.txid),
                    p.expiration_ms.saturating_add(skew_ms)
                ),
            ));
        }
    }
    Ok(Prior::Fresh)
}

/// What the ledger and the policy say about a request, before anything is reserved.
enum Decided {
    Replay(Box<ledger::Entry>),
    /// Allowed by the named policy rule.
    Allow(String),
}

/// Ledger checks, then policy against the ledger's usage; shared by Sign and Evaluate and
/// run under the caller's state lock.
#[allow(clippy::too_many_arguments)]
fn decide(
    state: &StateGuard<'_>,
    policy: &LoadedPolicy,
    freezes: Option<&FreezeSet>,
    clock_guard: &ClockGuard,
    checked: &Checked,
    payout_id: &str,
    approved: &ApprovalOutcome,
    now: i64,
) -> Result<Decided, Refusal> {
    // An administrator's freeze first: it stops replays of stored signatures too.
    if let Some(order) = freezes.and_then(|f| f.covering(&checked.key)) {
        return Err(freezes::refusal(order));
    }
    let skew = skew_ms(policy, &checked.key);
    if let Prior::Replay(entry) = prior(state, checked, payout_id, now, skew)? {
        // A freeze stops replays too: after an incident, signatures that were committed but
        // never delivered must not be collectable until they expire.
        if let Some(r) = frozen_replay(policy, checked, &entry.pending.txid) {
            return Err(r);
        }
        return Ok(Decided::Replay(entry));
    }
    // Before the policy, which judges expirations and windows by this very clock. A replay
    // above is unaffected: it signs nothing new and counts nothing.
    clock_guard.check(state.latest_signed_ms(), now, skew)?;
    if let Some(r) = policy_gate::expired(policy, now) {
        return Err(r);
    }
    let req = Request {
        key: &checked.key,
        decoded: &checked.decoded,
        now_ms: now,
        deposit_index: checked.deposit_index,
    };
    match policy.policy.evaluate(&req, &LedgerUsage(state)) {
        // Approvals come last: they lift no limit, and a transfer the policy refuses asks
        // nobody to approve it.
        Decision::Allow(a) => match approved {
            Ok(None) => Ok(Decided::Allow(a.rule)),
            Ok(Some(ok)) => {
                let names: Vec<String> = ok
                    .approvals
                    .iter()
                    .map(|c| format!("{:?}", c.approver))
                    .collect();
                Ok(Decided::Allow(format!(
                    "{}; approved by {}",
                    a.rule,
                    names.join(", ")
                )))
            }
            Err(e) => Err(approval_refusal(e)),
        },
        Decision::Deny(d) => Err(Refusal::new(
            RefusalKind::Denied,
            d.code.reason(),
            d.message,
        )),
    }
}

/// The refusal the approvals came to.
fn approval_refusal(e: &ApprovalError) -> Refusal {
    match &e.statement {
        Some(text) => Refusal::approval_required(e.message.clone(), text.clone()),
        None => Refusal::new(RefusalKind::Denied, e.code, e.message.clone()),
    }
}

/// Checks the approvals a request carries (outside the state lock), and puts those that
/// held in its audit record: the approvals a signature rests on, or the rejections that
/// cancelled it.
fn judge_approvals(
    policy: &LoadedPolicy,
    checked: &Checked,
    payout_id: &str,
    initiator: &str,
    offered: &[Offered<'_>],
    now: i64,
    draft: Draft,
) -> (ApprovalOutcome, Draft) {
    let subject = approval::Subject {
        policy,
        key: &checked.key,
        decoded: &checked.decoded,
        payout_id,
        initiator,
    };
    let outcome = approval::check(&subject, offered, now);
    let draft = match &outcome {
        Ok(Some(a)) => draft.approvals(a.to_json()),
        Err(ApprovalError {
            counted: Some(a), ..
        }) => draft.approvals(a.to_json()),
        _ => draft,
    };
    (outcome, draft)
}

/// The refusal of a replay under a global freeze, a freeze of the key, or a policy that no
/// longer names the key (or, for a deposit key, no longer derives it), if any of these holds.
fn frozen_replay(policy: &LoadedPolicy, checked: &Checked, txid: &[u8; 32]) -> Option<Refusal> {
    let p = &policy.policy;
    let key = &checked.key;
    let (code, which) = if p.frozen {
        (
            ReasonCode::Frozen,
            "all keys are frozen by the policy's global freeze switch".to_owned(),
        )
    } else {
        match p.key(key) {
            None if checked
                .deposit_index
                .is_some_and(|i| p.deposit_account_for(key, i).is_ok()) =>
            {
                return None
            }
            // Taken out of the policy (an incident response as much as a freeze).
            None => (
                ReasonCode::UnknownKey,
                format!("key {key} is no longer in the policy"),
            ),
            Some(k) if k.frozen => (
                ReasonCode::Frozen,
                format!("key {} ({}) is frozen by the policy", k.address, k.label),
            ),
            Some(_) => return None,
        }
    };
    Some(Refusal::new(
        RefusalKind::Denied,
        code,
        format!(
            "{which}: the stored signature of transaction {} is not returned",
            hex::encode(txid)
        ),
    ))
}

/// The policy's clock skew for `key` (the global default when the key is unknown).
fn skew_ms(policy: &LoadedPolicy, key: &Address) -> i64 {
    policy
        .policy
        .key(key)
        .map(|k| k.envelope.clock_skew_ms)
        .unwrap_or(crate::policy::MAX_CLOCK_SKEW_MS)
        .try_into()
        .unwrap_or(i64::MAX)
}

/// The ledger's usage index, seen through the policy's [`Usage`] trait.
struct LedgerUsage<'a, 'b>(&'a StateGuard<'b>);

impl Usage for LedgerUsage<'_, '_> {
    fn used(
        &self,
        key: &Address,
        asset: &crate::decode::Asset,
        dest: Option<&Address>,
        window_ms: u64,
        now_ms: i64,
    ) -> tron_proto::U256 {
        self.0.used(key, *asset, dest, window_ms, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits `p` (no administrators here; the ledger's mark) and puts it in force.
    async fn put_in_force(core: &Core, p: LoadedPolicy) {
        let admitted = core.admit_policy(&p).expect("admitted");
        core.replace_policy(p, &admitted, "test")
            .await
            .expect("put in force");
    }
    use crate::decode::{encode, Envelope, Intent, TrxTransfer};
    use crate::keys::{KeyBackend, KeyError, SignFuture, SoftKey};
    use secrecy::SecretBox;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A software key whose device can be switched off.
    struct FlakyKey {
        key: SoftKey,
        down: AtomicBool,
    }

    impl KeyBackend for FlakyKey {
        fn address(&self) -> Address {
            self.key.address()
        }
        fn backend(&self) -> &'static str {
            "test"
        }
        fn label(&self) -> &str {
            "flaky"
        }
        fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
            let r = if self.down.load(Ordering::SeqCst) {
                Err(KeyError::Unavailable {
                    backend: "test",
                    reason: ReasonCode::Pkcs11DeviceUnavailable,
                    detail: "device switched off".into(),
                })
            } else {
                self.key.sign_txid(txid).map_err(|e| KeyError::Failed {
                    backend: "test",
                    reason: ReasonCode::SoftSignFailed,
                    detail: e.to_string(),
                })
            };
            Box::pin(std::future::ready(r))
        }
    }

    const TO: [u8; 20] = [0xa1; 20];

    /// A Unix socket peer of `uid`.
    fn peer(uid: u32) -> Peer {
        Peer::Unix {
            uid,
            gid: uid,
            pid: Some(1),
        }
    }

    fn core(dir: &std::path::Path) -> (Core, Arc<FlakyKey>) {
        let key = SoftKey::from_secret(&SecretBox::new(Box::new([0x11; 32]))).unwrap();
        let owner = key.address();
        let flaky = Arc::new(FlakyKey {
            key,
            down: AtomicBool::new(false),
        });
        let mut ring = KeyRing::default();
        ring.insert(flaky.clone()).unwrap();
        let policy = crate::policy::parse(
            &format!(
                r#"version = 1
name = "core test"
network = "nile"
[global]
max_fee_limit = "10"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false
[[key]]
address = "{owner}"
label = "k"
assets = ["TRX"]
windows = [ {{ asset = "TRX", window = "1h", max = "10" }} ]
  [[key.destination]]
  address = "{to}"
  label = "d"
  assets = ["TRX"]
  per_tx_max = {{ TRX = "10" }}
[[caller]]
name = "test"
unix_uid = [666, 1000]
rpcs = ["Sign", "Evaluate", "ListKeys"]
keys = ["{owner}"]
[[caller]]
name = "auditor"
unix_uid = 7
rpcs = ["GetPolicy"]
[[caller]]
name = "other keys"
unix_uid = 8
rpcs = ["Sign"]
keys = []
"#,
                to = Address::from_evm(TO)
            ),
            "core-test.toml",
        )
        .unwrap();
        let clock = system_clock();
        let ledger = Ledger::open(dir, crate::policy::MAX_WINDOW_MS, clock()).unwrap();
        (Core::new(ring, policy, ledger, clock), flaky)
    }

    fn raw(owner: Address, sun: u64, nonce: u8) -> Vec<u8> {
        let now = (system_clock())();
        encode(&crate::decode::Decoded {
            envelope: Envelope {
                txid: [0; 32],
                ref_block_bytes: [0, nonce],
                ref_block_hash: [1; 8],
                expiration: now + 60_000,
                timestamp: now,
                fee_limit: 0,
                memo: vec![],
                permission_id: 0,
            },
            intent: Intent::Trx(TrxTransfer {
                owner,
                to: Address::from_evm(TO),
                amount: sun,
            }),
        })
    }

    /// The policy text is archived under the data directory and dropped from memory; when
    /// the archive cannot be written the text stays in memory and is still served.
    #[test]
    fn policy_text_archived_or_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (archived, _) = core(dir.path());
        let p = archived.policy();
        assert!(p.text.is_none(), "archived, so not held in memory");
        let text = archived.policy_text(&p).unwrap();
        assert_eq!(crate::policy::hash_bytes(text.as_bytes()), p.hash);

        let blocked = tempfile::tempdir().unwrap();
        std::fs::write(blocked.path().join("policies"), b"a file, not a directory").unwrap();
        let (in_memory, _) = core(blocked.path());
        let p = in_memory.policy();
        assert!(
            p.text.is_some(),
            "kept in memory when the archive is unwritable"
        );
        assert_eq!(in_memory.policy_text(&p).unwrap(), text);
    }

    /// A policy kept in memory because its archive could not be written is archived when a
    /// reload replaces it, if the archive has become writable: its hash stays resolvable.
    #[tokio::test]
    async fn outgoing_policy_kept_in_memory_is_archived_at_reload() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("policies");
        std::fs::write(&blocker, b"a file, not a directory").unwrap();
        let (core, _) = core(dir.path());
        let first = core.policy();
        let text = first.text.clone().expect("kept in memory");
        std::fs::remove_file(&blocker).unwrap();
        let next_text = text.replace("name = \"core test\"", "name = \"core test, next\"");
        assert_ne!(next_text, text);
        let next = crate::policy::parse(&next_text, "next.toml").unwrap();
        put_in_force(&core, next).await;
        assert_eq!(
            crate::policy::archive::read(dir.path(), &first.hash).unwrap(),
            text
        );
        assert!(core.policy().text.is_none(), "the new one is archived too");
    }

    /// Invariant 4: when the durable write fails, no signature leaves and nothing counts.
    #[tokio::test]
    async fn failed_ledger_write_releases_no_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address();
        let tx = raw(owner, 10_000_000, 1);
        core.ledger().fail_next_commits(1);
        let r = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.kind, RefusalKind::Unavailable);
        assert_eq!(r.code, ReasonCode::LedgerUnavailable);
        assert!(!r.message.contains("signature\":"), "{}", r.message);
        // Nothing was recorded or counted: the same payout signs now, with the whole limit.
        let s = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        assert!(!s.replayed);
        let over = raw(owner, 1, 2);
        let r = core
            .sign(&peer(1000), &owner.to_base58(), &over, "p2")
            .await
            .unwrap_err();
        assert_eq!(r.code, ReasonCode::OverKeyWindow);
    }

    /// A key backend that is down: UNAVAILABLE, reservation rolled back, then recovery.
    #[tokio::test]
    async fn backend_outage_rolls_back_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address();
        let tx = raw(owner, 10_000_000, 1);
        key.down.store(true, Ordering::SeqCst);
        let r = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.kind, RefusalKind::Unavailable);
        assert_eq!(r.code, ReasonCode::Pkcs11DeviceUnavailable);
        assert!(r.audit_sequence.is_some());
        key.down.store(false, Ordering::SeqCst);
        let s = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        assert_eq!(
            tron_proto::sig::recover_address(&s.txid, &s.signature).unwrap(),
            owner
        );
    }

    /// While another request holds a reservation for the same txid (signing in progress),
    /// Sign and Evaluate say "retry" instead of signing twice; a different transaction for
    /// that payout id is refused; once the reservation is dropped the txid signs normally.
    #[tokio::test]
    async fn txid_and_payout_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address();
        let tx = raw(owner, 1_000_000, 1);
        let decoded = crate::decode::decode(&tx).unwrap();
        let now = (system_clock())();
        let held = core
            .ledger()
            .state()
            .reserve(PendingEntry {
                txid: decoded.envelope.txid,
                key: owner,
                asset: decoded.intent.asset(),
                destination: *decoded.intent.to(),
                amount: decoded.intent.amount(),
                payout_id: "p1".into(),
                expiration_ms: decoded.envelope.expiration,
                signed_at_ms: now,
                policy_hash: core.policy().hash,
            })
            .unwrap();
        let r = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code),
            (RefusalKind::Unavailable, ReasonCode::TxidInFlight)
        );
        let r = core
            .evaluate(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.code, ReasonCode::TxidInFlight);
        let other = raw(owner, 1_000_000, 2);
        let r = core
            .sign(&peer(1000), &owner.to_base58(), &other, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code),
            (RefusalKind::Denied, ReasonCode::PayoutInFlight)
        );
        drop(held);
        let s = core
            .sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        assert!(!s.replayed);
    }

    /// Evaluate consumes nothing: after many allowed evaluations the full limit remains.
    #[tokio::test]
    async fn evaluate_consumes_no_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address();
        let tx = raw(owner, 10_000_000, 1);
        for _ in 0..5 {
            let e = core
                .evaluate(&peer(1000), &owner.to_base58(), &tx, "p1")
                .await
                .unwrap();
            assert!(e.allowed, "{}", e.message);
        }
        core.sign(&peer(1000), &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        let e = core
            .evaluate(&peer(1000), &owner.to_base58(), &raw(owner, 1, 2), "p2")
            .await
            .unwrap();
        assert!(!e.allowed);
        assert_eq!(e.reason_code, Some(ReasonCode::OverKeyWindow));
    }

    /// A policy reload that freezes the key, or everything, stops replays: the stored
    /// signature of an earlier txid is not returned, the refusal is audited as `frozen`,
    /// and Evaluate says the same.
    #[tokio::test]
    async fn a_freeze_stops_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address().to_base58();
        let tx = raw(key.address(), 1_000_000, 1);
        let signed = core.sign(&peer(1000), &owner, &tx, "p1").await.unwrap();
        assert!(
            core.sign(&peer(1000), &owner, &tx, "p1")
                .await
                .unwrap()
                .replayed
        );
        let text = core.policy_text(&core.policy()).unwrap();
        let key_frozen = text.replacen("label = \"k\"\n", "label = \"k\"\nfrozen = true\n", 1);
        let all_frozen = text.replacen("[global]\n", "[global]\nfrozen = true\n", 1);
        for (what, frozen) in [("key", key_frozen), ("global", all_frozen)] {
            assert_ne!(frozen, text, "{what}");
            let p = crate::policy::parse(&frozen, "frozen.toml").unwrap();
            put_in_force(&core, p).await;
            let r = core.sign(&peer(1000), &owner, &tx, "p1").await.unwrap_err();
            assert_eq!(
                (r.kind, r.code),
                (RefusalKind::Denied, ReasonCode::Frozen),
                "{what}"
            );
            assert!(r.audit_sequence.is_some(), "{what}: not audited");
            assert!(r.message.contains("not returned"), "{what}: {}", r.message);
            assert!(!r.message.contains(&hex::encode(signed.signature)));
            let e = core.evaluate(&peer(1000), &owner, &tx, "p1").await.unwrap();
            assert_eq!(
                (e.allowed, e.reason_code),
                (false, Some(ReasonCode::Frozen)),
                "{what}"
            );
        }
        // A key taken out of the policy gets no replay either.
        let other = Address::from_evm([0xb2; 20]).to_base58();
        let removed = text.replace(&owner, &other);
        assert_ne!(removed, text);
        let p = crate::policy::parse(&removed, "removed.toml").unwrap();
        put_in_force(&core, p).await;
        // (The caller's grant goes with it: a grant can only name a key of the policy.)
        let r = core.sign(&peer(1000), &owner, &tx, "p1").await.unwrap_err();
        assert_eq!(
            (r.kind, r.code),
            (RefusalKind::Denied, ReasonCode::CallerKeyNotAllowed)
        );
        assert!(r.audit_sequence.is_some());
        // Unfrozen again, the replay is served as before.
        let p = crate::policy::parse(&text, "thawed.toml").unwrap();
        put_in_force(&core, p).await;
        let again = core.sign(&peer(1000), &owner, &tx, "p1").await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.signature, signed.signature);
    }

    /// Default deny: an unlisted peer, a caller without the RPC's grant and a caller without
    /// the key's grant are each refused with their own code, audited under the name and
    /// identity the policy knows them by; nothing is signed and nothing counted.
    #[tokio::test]
    async fn callers_get_only_what_they_are_granted() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address().to_base58();
        let tx = raw(key.address(), 10_000_000, 1);
        let cases = [
            (peer(4242), ReasonCode::CallerUnknown, "", ""),
            (
                peer(7),
                ReasonCode::CallerNotAllowed,
                "auditor",
                "unix_uid=7",
            ),
            (
                peer(8),
                ReasonCode::CallerKeyNotAllowed,
                "other keys",
                "unix_uid=8",
            ),
        ];
        for (who, code, name, identity) in &cases {
            let r = core.sign(who, &owner, &tx, "p1").await.unwrap_err();
            assert_eq!(
                (r.kind, r.code),
                (RefusalKind::Denied, *code),
                "{}",
                r.message
            );
            let seq = r.audit_sequence.expect("audited");
            let rec = core.ledger().audit_record(seq).unwrap().unwrap();
            assert_eq!(rec.reason_code, code.as_str());
            assert_eq!(
                (rec.caller.as_str(), rec.identity.as_str()),
                (*name, *identity)
            );
            assert_eq!(rec.peer, who.describe());
        }
        // The unknown peer is told what it was seen as, in the policy's words.
        let r = core
            .evaluate(&peer(4242), &owner, &tx, "p1")
            .await
            .unwrap_err();
        assert!(r.message.contains("unix_uid 4242"), "{}", r.message);
        // Read-only RPCs: refused and audited for a caller without the grant.
        let r = core.allow(&peer(1000), Rpc::GetPolicy).await.unwrap_err();
        assert_eq!(r.code, ReasonCode::CallerNotAllowed);
        assert!(r.audit_sequence.is_some());
        let ok = core.allow(&peer(7), Rpc::GetPolicy).await.unwrap();
        assert_eq!(ok.keys, KeyGrant::Listed(vec![]));
        assert_eq!(
            core.allow(&peer(1000), Rpc::ListKeys).await.unwrap().keys,
            KeyGrant::Listed(vec![key.address()])
        );
        // None of it counted: the whole 10 TRX limit is still there for the granted caller.
        let s = core.sign(&peer(1000), &owner, &tx, "p1").await.unwrap();
        let rec = core
            .ledger()
            .audit_record(s.audit_sequence)
            .unwrap()
            .unwrap();
        assert_eq!(
            (rec.caller.as_str(), rec.identity.as_str()),
            ("test", "unix_uid=1000")
        );
    }

    /// A transfer an `[[approval]]` rule applies to is refused `approval_required`, audited,
    /// with the groups needed and the statement to sign; one below the rule's threshold signs.
    /// Evaluate says the same; nothing refused is counted.
    #[tokio::test]
    async fn a_transfer_that_needs_approval_is_refused_with_its_statement() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let text = core.policy_text(&core.policy()).unwrap();
        let with_rule = format!(
            "{text}\n[[approver]]\nname = \"Bob\"\ngroups = [\"treasury\"]\nkey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVgmrC6egWxmD9b0ZXcyNcYJls1nsTAPk27hmufwmFV bob\"\n\n[[approval]]\nasset = \"TRX\"\nabove = \"5\"\nrequire = {{ treasury = 1 }}\n"
        );
        let p = crate::policy::parse(&with_rule, "approvals.toml").unwrap();
        let hash = p.hash_hex();
        put_in_force(&core, p).await;
        let owner = key.address().to_base58();
        let big = raw(key.address(), 6_000_000, 1);
        let r = core
            .sign(&peer(1000), &owner, &big, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code),
            (RefusalKind::Denied, ReasonCode::ApprovalRequired)
        );
        assert!(r.audit_sequence.is_some());
        for needle in [
            "needs approval by 1 of \"treasury\" (approval rule 1)",
            "tron-signer approval statement v1\ndecision: approve\nnetwork: nile\n",
            "amount: 6 TRX (6000000 sun)",
            &format!("txid: {}", hex::encode(tron_proto::txid(&big))),
            "payout id: p1",
            &format!("policy: {hash}"),
        ] {
            assert!(
                r.message.contains(needle),
                "{needle:?} not in {}",
                r.message
            );
        }
        let e = core
            .evaluate(&peer(1000), &owner, &big, "p1")
            .await
            .unwrap();
        assert_eq!(
            (e.allowed, e.reason_code),
            (false, Some(ReasonCode::ApprovalRequired))
        );
        assert!(e.message.contains("tron-signer approval statement v1"));
        // At the threshold, not above it: signed, and the whole 10 TRX window was still free.
        let five = raw(key.address(), 5_000_000, 2);
        assert!(core.sign(&peer(1000), &owner, &five, "p2").await.is_ok());
        let five_more = raw(key.address(), 5_000_000, 3);
        assert!(core
            .sign(&peer(1000), &owner, &five_more, "p3")
            .await
            .is_ok());
    }

    /// A caller that floods refused requests with huge fields is charged for what its audit
    /// records cost: each record stays small (the fields are kept as bounded descriptions),
    /// and once its budget is spent it is refused (`audit_budget_exceeded`, audited once
    /// per episode), while another caller is still served.
    #[tokio::test]
    async fn a_caller_over_its_audit_budget_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let core = core.with_audit_budget(1, 4096);
        let owner = key.address().to_base58();
        let tx = raw(key.address(), 1_000_000, 1);
        let huge_id = "p".repeat(4 * 1024 * 1024);
        let huge_key = format!("T{}", "z".repeat(64 * 1024));
        let attacker = &peer(666);
        let mut admitted = Vec::new();
        let first_refusal = loop {
            let r = if admitted.len() % 2 == 0 {
                core.evaluate(attacker, &owner, &tx, &huge_id).await
            } else {
                core.evaluate(attacker, &huge_key, &tx, "p1").await
            }
            .unwrap_err();
            if r.code == ReasonCode::AuditBudgetExceeded {
                break r;
            }
            assert!(
                [ReasonCode::BadPayoutId, ReasonCode::BadKeyAddress].contains(&r.code),
                "{r:?}"
            );
            assert!(
                r.message.len() < 300,
                "message echoes the input: {}",
                r.message.len()
            );
            admitted.push(r.audit_sequence.expect("audited"));
            assert!(admitted.len() < 100, "the budget never ran out");
        };
        // 4 KiB of budget holds only a handful of bounded records.
        assert!((2..=16).contains(&admitted.len()), "{admitted:?}");
        assert_eq!(first_refusal.kind, RefusalKind::Exhausted);
        assert!(
            first_refusal.audit_sequence.is_some(),
            "first refusal audited"
        );
        // A new pid of the same uid shares the budget; further refusals are only counted.
        let r = core
            .evaluate(
                &Peer::Unix {
                    uid: 666,
                    gid: 666,
                    pid: Some(2),
                },
                &owner,
                &tx,
                &huge_id,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (r.code, r.audit_sequence),
            (ReasonCode::AuditBudgetExceeded, None)
        );
        // Valid requests of the same caller are refused too: the budget is per caller.
        let r = core
            .evaluate(attacker, &owner, &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.code, ReasonCode::AuditBudgetExceeded);
        // Another caller is unaffected.
        let e = core
            .evaluate(
                &Peer::Unix {
                    uid: 1000,
                    gid: 1000,
                    pid: Some(3),
                },
                &owner,
                &tx,
                "p1",
            )
            .await
            .unwrap();
        assert!(e.allowed, "{}", e.message);
        // Exactly one audit record per admitted request, plus the first refusal.
        assert_eq!(
            e.audit_sequence,
            admitted.len() as u64 + 2,
            "over-budget refusals after the first wrote nothing"
        );
    }

    /// The writer's queue is bounded: a submission waits for room (back pressure) and goes
    /// through once there is some; one that finds no room for the whole wait is refused as
    /// `ledger_busy` (UNAVAILABLE), signs nothing and counts nothing.
    #[tokio::test]
    async fn a_full_writer_queue_pushes_back_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (core, key) = core(dir.path());
        let owner = key.address().to_base58();
        let full = raw(key.address(), 10_000_000, 1);
        let hold = core.ledger().occupy_queue();
        let r = core
            .sign(&peer(1000), &owner, &full, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code),
            (RefusalKind::Unavailable, ReasonCode::LedgerBusy)
        );
        let r = core
            .evaluate(&peer(1000), &owner, &full, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.code, ReasonCode::LedgerBusy);
        // Back pressure: the request waits while the queue is full, and is served when the
        // writer frees room. The whole 10 TRX limit is still there: nothing was counted.
        let asker = peer(1000);
        let (signed, ()) = tokio::join!(core.sign(&asker, &owner, &full, "p1"), async {
            tokio::task::yield_now().await;
            drop(hold);
        });
        let signed = signed.unwrap();
        assert!(!signed.replayed);
    }
}
