//! The decision path shared by every front end (gRPC now, batch files later):
//! bytes → intent → decision → durable record → signature.

use std::sync::{Arc, RwLock};

use tron_proto::Address;

use crate::decode::{decode, Decoded};
use crate::inspect;
use crate::keys::{KeyError, KeyRing};
use crate::ledger::{self, AuditRecord, Ledger, Lookup, PendingEntry, StateGuard};
use crate::policy::{Decision, LoadedPolicy, Request, Usage};

/// Longest payout id accepted; ids are the caller's idempotency keys, not free text.
pub const MAX_PAYOUT_ID_LEN: usize = 128;

/// How a refusal maps onto transport status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is malformed (undecodable bytes, bad address or payout id).
    InvalidArgument,
    /// Policy or ledger said no.
    Denied,
    /// A dependency (key backend, ledger) is down; retrying later may work.
    Unavailable,
}

/// A refused request: a stable reason code and a message a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: String,
    pub message: String,
    /// The audit record of the refusal, when it could be written.
    pub audit_sequence: Option<u64>,
}

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
    pub reason_code: String,
    pub message: String,
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
    policy: RwLock<Arc<LoadedPolicy>>,
    ledger: Ledger,
    clock: Clock,
}

/// Archives the policy's text under the ledger's data directory and drops it from memory.
/// If the archive cannot be written the text stays in memory (and `GetPolicy` keeps
/// working); the failure is logged, since the archive then lacks this policy.
fn archived(ledger: &Ledger, mut policy: LoadedPolicy) -> LoadedPolicy {
    if let Some(text) = &policy.text {
        match crate::policy::archive::store(ledger.dir(), text.as_bytes(), &policy.hash) {
            Ok(_) => policy.text = None,
            Err(e) => tracing::warn!("policy {} kept in memory: {e}", policy.hash_hex()),
        }
    }
    policy
}

/// What [`Core::begin`] hands on.
struct Begun {
    policy: Arc<LoadedPolicy>,
    now: i64,
    checked: Checked,
    base: AuditRecord,
}

/// A validated request, ready for the ledger and policy.
struct Checked {
    key: Address,
    decoded: Decoded,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Sign,
    Evaluate,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Sign => "Sign",
            Method::Evaluate => "Evaluate",
        }
    }
}

impl Core {
    pub fn new(keys: KeyRing, policy: LoadedPolicy, ledger: Ledger, clock: Clock) -> Self {
        let policy = archived(&ledger, policy);
        Core {
            keys,
            policy: RwLock::new(Arc::new(policy)),
            ledger,
            clock,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The text of `policy` (one this core put in force): from memory, or from the archive,
    /// checked by hash. Blocking file I/O when archived.
    pub fn policy_text(
        &self,
        policy: &LoadedPolicy,
    ) -> Result<String, crate::policy::archive::ArchiveError> {
        match &policy.text {
            Some(t) => Ok(t.clone()),
            None => crate::policy::archive::read(self.ledger.dir(), &policy.hash),
        }
    }

    /// The text of the policy with this hash: the one in force (even when its text could not
    /// be archived and lives only in memory), or any earlier one from the archive, checked by
    /// hash. Blocking file I/O.
    pub fn policy_text_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<String, crate::policy::archive::ArchiveError> {
        let current = self.policy();
        if current.hash == *hash {
            self.policy_text(&current)
        } else {
            crate::policy::archive::read(self.ledger.dir(), hash)
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts a new, already validated policy in force atomically; audited.
    pub async fn replace_policy(&self, new: LoadedPolicy, caller: &str) -> Result<u64, Refusal> {
        let new_hash = new.hash_hex();
        let new = archived(&self.ledger, new);
        let old = {
            let mut slot = match self.policy.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *slot, Arc::new(new))
        };
        let old_hash = old.hash_hex();
        // An outgoing policy whose archive could not be written has its only copy in memory:
        // one more try, so audit records naming it can still be resolved to its text.
        if let Some(text) = &old.text {
            match crate::policy::archive::store(self.ledger.dir(), text.as_bytes(), &old.hash) {
                Ok(_) => tracing::info!(policy = %old_hash, "outgoing policy archived"),
                Err(e) => tracing::error!(
                    policy = %old_hash,
                    "policy no longer in force and its text could not be archived: {e}"
                ),
            }
        }
        let rec = self.record(caller, "Reload", &new_hash);
        self.write_audit(AuditRecord {
            decision: ledger::Decision::Allow,
            reason_code: "policy_reloaded".into(),
            message: format!("policy {old_hash} replaced by {new_hash}"),
            ..rec
        })
        .await
    }

    /// Records a reload that was refused (the old policy stays in force).
    pub async fn reload_refused(&self, caller: &str, problems: &str) -> Result<u64, Refusal> {
        let rec = self.record(caller, "Reload", &self.policy().hash_hex());
        self.write_audit(AuditRecord {
            decision: ledger::Decision::Deny,
            reason_code: "policy_invalid".into(),
            message: format!("new policy refused, old one stays in force: {problems}"),
            ..rec
        })
        .await
    }

    /// Decide, record durably, then sign (DESIGN invariants 1-7).
    pub async fn sign(
        &self,
        caller: &str,
        key: &str,
        raw: &[u8],
        payout_id: &str,
    ) -> Result<Signed, Refusal> {
        let Begun {
            policy,
            now,
            checked,
            base,
        } = self
            .begin(Method::Sign, caller, key, raw, payout_id)
            .await?;
        let txid = checked.decoded.envelope.txid;
        let Some(backend) = self.keys.get(&checked.key).cloned() else {
            return Err(self.refuse(base, key_not_loaded(&checked.key)).await);
        };

        let (reservation, rule) = match self.reserve(&policy, &checked, payout_id, now) {
            Step::Refuse(r) => return Err(self.refuse(base, r).await),
            Step::Replay(entry) => {
                return self
                    .replay(base, &checked, raw, payout_id, *entry, &policy)
                    .await
            }
            Step::Reserved(reservation, rule) => (reservation, rule),
        };

        let signature = match backend.sign(&txid).await {
            Ok(s) => s,
            Err(e) => {
                drop(reservation);
                return Err(self.refuse(base, key_refusal(&e)).await);
            }
        };
        let audit = AuditRecord {
            decision: ledger::Decision::Allow,
            reason_code: "signed".into(),
            message: rule.clone(),
            ..base
        };
        // Invariant 4: the signature leaves only after this commit returned.
        let audit_sequence = reservation.commit(signature, audit).await.map_err(|e| {
            refusal(
                RefusalKind::Unavailable,
                "ledger_unavailable",
                format!("the ledger could not record the signature, so it was not released: {e}"),
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
        caller: &str,
        key: &str,
        raw: &[u8],
        payout_id: &str,
    ) -> Result<Evaluated, Refusal> {
        let Begun {
            policy,
            now,
            checked,
            base,
        } = self
            .begin(Method::Evaluate, caller, key, raw, payout_id)
            .await?;
        let txid = checked.decoded.envelope.txid;
        let outcome = self.judge(&policy, &checked, payout_id, now);
        let (allowed, rule, reason_code, message) = match outcome {
            Ok(rule) => (true, rule, String::new(), String::new()),
            Err(r) if r.kind == RefusalKind::Denied => (false, String::new(), r.code, r.message),
            Err(r) => return Err(self.refuse(base, r).await),
        };
        let audit_sequence = self
            .write_audit(AuditRecord {
                decision: if allowed {
                    ledger::Decision::Allow
                } else {
                    ledger::Decision::Deny
                },
                reason_code: if allowed {
                    "would_sign".into()
                } else {
                    reason_code.clone()
                },
                message: if allowed {
                    rule.clone()
                } else {
                    message.clone()
                },
                ..base
            })
            .await?;
        Ok(Evaluated {
            txid,
            allowed,
            rule,
            reason_code,
            message,
            policy_hash: policy.hash_hex(),
            audit_sequence,
        })
    }

    /// Ledger checks, policy, and the reservation, all under the state lock so that
    /// concurrent requests cannot both pass a limit. Synchronous on purpose: the lock must
    /// never be held across an await.
    fn reserve(&self, policy: &LoadedPolicy, checked: &Checked, payout_id: &str, now: i64) -> Step {
        let mut state = self.ledger.state();
        let rule = match decide(&state, policy, checked, payout_id, now) {
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
            Err(e) => Step::Refuse(ledger_refusal(&e)),
        }
    }

    /// The Evaluate counterpart of [`Core::reserve`]: the same checks, nothing reserved.
    fn judge(
        &self,
        policy: &LoadedPolicy,
        checked: &Checked,
        payout_id: &str,
        now: i64,
    ) -> Result<String, Refusal> {
        if self.keys.get(&checked.key).is_none() {
            return Err(key_not_loaded(&checked.key));
        }
        let state = self.ledger.state();
        match decide(&state, policy, checked, payout_id, now)? {
            Decided::Replay(_) => Ok("already signed; Sign returns the stored signature".into()),
            Decided::Allow(rule) => Ok(rule),
        }
    }

    /// The start both Sign and Evaluate share: the policy in force, the clock, the validated
    /// request, and the audit record it will be written under (a refusal here is audited).
    async fn begin(
        &self,
        method: Method,
        caller: &str,
        key: &str,
        raw: &[u8],
        payout_id: &str,
    ) -> Result<Begun, Refusal> {
        let policy = self.policy();
        let now = (self.clock)();
        let base = AuditRecord {
            payout_id: Some(payout_id.to_owned()),
            ..self.record(caller, method.as_str(), &policy.hash_hex())
        };
        let checked = match self.check_request(key, raw, payout_id) {
            Ok(c) => c,
            Err(r) => return Err(self.refuse(base, r).await),
        };
        let base = AuditRecord {
            key: Some(checked.key.to_base58()),
            txid: Some(hex::encode(checked.decoded.envelope.txid)),
            intent: Some(inspect::view_json(&checked.decoded)),
            ..base
        };
        Ok(Begun {
            policy,
            now,
            checked,
            base,
        })
    }

    fn check_request(&self, key: &str, raw: &[u8], payout_id: &str) -> Result<Checked, Refusal> {
        let key: Address = key.trim().parse().map_err(|e: tron_proto::AddressError| {
            refusal(
                RefusalKind::InvalidArgument,
                "bad_key_address",
                format!("key {key:?} is not a Tron address: {e}"),
            )
        })?;
        check_payout_id(payout_id)?;
        let decoded = decode(raw).map_err(|e| {
            refusal(
                RefusalKind::InvalidArgument,
                e.code(),
                format!("raw_data refused: {e}"),
            )
        })?;
        Ok(Checked { key, decoded })
    }

    async fn replay(
        &self,
        base: AuditRecord,
        checked: &Checked,
        raw: &[u8],
        payout_id: &str,
        entry: crate::ledger::Entry,
        policy: &LoadedPolicy,
    ) -> Result<Signed, Refusal> {
        let p = &entry.pending;
        if p.key != checked.key || p.payout_id != payout_id {
            let r = refusal(
                RefusalKind::Denied,
                "txid_reused",
                format!(
                    "transaction {} was already signed for payout {:?} with key {}",
                    hex::encode(p.txid),
                    p.payout_id,
                    p.key
                ),
            );
            return Err(self.refuse(base, r).await);
        }
        let audit_sequence = self
            .write_audit(AuditRecord {
                decision: ledger::Decision::Allow,
                reason_code: "replayed".into(),
                message: "same txid asked again; stored signature returned, not counted again"
                    .into(),
                ..base
            })
            .await?;
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

    fn record(&self, caller: &str, method: &str, policy_hash: &str) -> AuditRecord {
        AuditRecord {
            time_ms: (self.clock)(),
            caller: caller.to_owned(),
            method: method.to_owned(),
            key: None,
            txid: None,
            payout_id: None,
            intent: None,
            decision: ledger::Decision::Error,
            reason_code: String::new(),
            message: String::new(),
            policy_hash: policy_hash.to_owned(),
        }
    }

    /// Audits a refusal and returns it with its audit sequence filled in.
    async fn refuse(&self, base: AuditRecord, mut r: Refusal) -> Refusal {
        let decision = match r.kind {
            RefusalKind::Denied | RefusalKind::InvalidArgument => ledger::Decision::Deny,
            RefusalKind::Unavailable => ledger::Decision::Error,
        };
        let rec = AuditRecord {
            decision,
            reason_code: r.code.clone(),
            message: r.message.clone(),
            ..base
        };
        match self.ledger.audit(rec).await {
            Ok(seq) => r.audit_sequence = Some(seq),
            Err(e) => {
                tracing::error!(error = %e, code = %r.code, "could not audit a refusal");
            }
        }
        r
    }

    async fn write_audit(&self, rec: AuditRecord) -> Result<u64, Refusal> {
        self.ledger.audit(rec).await.map_err(|e| {
            refusal(
                RefusalKind::Unavailable,
                "ledger_unavailable",
                format!("the audit log could not be written: {e}"),
            )
        })
    }
}

fn refusal(kind: RefusalKind, code: &str, message: String) -> Refusal {
    Refusal {
        kind,
        code: code.to_owned(),
        message,
        audit_sequence: None,
    }
}

/// Both kinds are UNAVAILABLE to the caller (nothing was signed; the ledger reservation is
/// released, so the same payout may be retried), and the reason code is the backend's own
/// (`pkcs11_token_not_found`, `pkcs11_session_lost`, ...), so monitoring can tell a pulled
/// token from a wrong key without parsing messages.
fn key_refusal(e: &KeyError) -> Refusal {
    let kind = match e {
        KeyError::Unavailable { .. } => RefusalKind::Unavailable,
        KeyError::Failed { .. } => RefusalKind::Unavailable,
    };
    refusal(kind, e.reason().as_str(), e.to_string())
}

/// Payout ids are idempotency keys: short, printable ASCII, no spaces.
fn check_payout_id(id: &str) -> Result<(), Refusal> {
    let ok =
        !id.is_empty() && id.len() <= MAX_PAYOUT_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(refusal(
            RefusalKind::InvalidArgument,
            "bad_payout_id",
            format!(
                "payout_id must be 1-{MAX_PAYOUT_ID_LEN} printable ASCII characters without spaces (got {} bytes)",
                id.len()
            ),
        ))
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
        Err(e) => return Err(ledger_refusal(&e)),
        Ok(Some(Lookup::Committed(entry))) => return Ok(Prior::Replay(entry)),
        Ok(Some(Lookup::InFlight)) => {
            return Err(refusal(
                RefusalKind::Unavailable,
                "txid_in_flight",
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
        let can_land = p.in_flight || p.expiration_ms.saturating_add(skew_ms) >= now;
        if p.txid != txid && can_land {
            return Err(refusal(
                RefusalKind::Denied,
                "payout_in_flight",
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
fn decide(
    state: &StateGuard<'_>,
    policy: &LoadedPolicy,
    checked: &Checked,
    payout_id: &str,
    now: i64,
) -> Result<Decided, Refusal> {
    let skew = skew_ms(policy, &checked.key);
    if let Prior::Replay(entry) = prior(state, checked, payout_id, now, skew)? {
        return Ok(Decided::Replay(entry));
    }
    let req = Request {
        key: &checked.key,
        decoded: &checked.decoded,
        now_ms: now,
    };
    match policy.policy.evaluate(&req, &LedgerUsage(state)) {
        Decision::Allow(a) => Ok(Decided::Allow(a.rule)),
        Decision::Deny(d) => Err(refusal(RefusalKind::Denied, d.code.as_str(), d.message)),
    }
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

fn key_not_loaded(key: &Address) -> Refusal {
    refusal(
        RefusalKind::Denied,
        "key_not_loaded",
        format!("no key {key} is loaded in this signer"),
    )
}

fn ledger_refusal(e: &ledger::LedgerError) -> Refusal {
    refusal(
        RefusalKind::Unavailable,
        "ledger_unavailable",
        format!(
            "the ledger could not be read or written ({}): {e}",
            e.code()
        ),
    )
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
    use crate::decode::{encode, Envelope, Intent, TrxTransfer};
    use crate::keys::{KeyBackend, SignFuture, SoftKey};
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
                    reason: crate::reason::ReasonCode::Pkcs11DeviceUnavailable,
                    detail: "device switched off".into(),
                })
            } else {
                self.key.sign_txid(txid).map_err(|e| KeyError::Failed {
                    backend: "test",
                    reason: crate::reason::ReasonCode::SoftSignFailed,
                    detail: e.to_string(),
                })
            };
            Box::pin(std::future::ready(r))
        }
    }

    const TO: [u8; 20] = [0xa1; 20];

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
        core.replace_policy(next, "test").await.unwrap();
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
            .sign("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.kind, RefusalKind::Unavailable);
        assert_eq!(r.code, "ledger_unavailable");
        assert!(!r.message.contains("signature\":"), "{}", r.message);
        // Nothing was recorded or counted: the same payout signs now, with the whole limit.
        let s = core
            .sign("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        assert!(!s.replayed);
        let over = raw(owner, 1, 2);
        let r = core
            .sign("test", &owner.to_base58(), &over, "p2")
            .await
            .unwrap_err();
        assert_eq!(r.code, "over_key_window");
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
            .sign("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.kind, RefusalKind::Unavailable);
        assert_eq!(r.code, "pkcs11_device_unavailable");
        assert!(r.audit_sequence.is_some());
        key.down.store(false, Ordering::SeqCst);
        let s = core
            .sign("test", &owner.to_base58(), &tx, "p1")
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
            .sign("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code.as_str()),
            (RefusalKind::Unavailable, "txid_in_flight")
        );
        let r = core
            .evaluate("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap_err();
        assert_eq!(r.code, "txid_in_flight");
        let other = raw(owner, 1_000_000, 2);
        let r = core
            .sign("test", &owner.to_base58(), &other, "p1")
            .await
            .unwrap_err();
        assert_eq!(
            (r.kind, r.code.as_str()),
            (RefusalKind::Denied, "payout_in_flight")
        );
        drop(held);
        let s = core
            .sign("test", &owner.to_base58(), &tx, "p1")
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
                .evaluate("test", &owner.to_base58(), &tx, "p1")
                .await
                .unwrap();
            assert!(e.allowed, "{}", e.message);
        }
        core.sign("test", &owner.to_base58(), &tx, "p1")
            .await
            .unwrap();
        let e = core
            .evaluate("test", &owner.to_base58(), &raw(owner, 1, 2), "p2")
            .await
            .unwrap();
        assert!(!e.allowed);
        assert_eq!(e.reason_code, "over_key_window");
    }

    #[test]
    fn payout_ids() {
        assert!(check_payout_id("p-1").is_ok());
        assert!(check_payout_id(&"a".repeat(MAX_PAYOUT_ID_LEN)).is_ok());
        for bad in [
            "",
            "has space",
            "tab\t",
            "é",
            &"a".repeat(MAX_PAYOUT_ID_LEN + 1),
        ] {
            assert_eq!(
                check_payout_id(bad).unwrap_err().code,
                "bad_payout_id",
                "{bad:?}"
            );
        }
    }
}
