//! The background task that moves payouts from `queued` to a final status.
//!
//! One rule above all: a payout is never paid twice. A new transaction for a payout is
//! built only when the previous one can no longer land — it never left this process
//! (no signature persisted), or the node's head block time is past its expiration plus
//! the solidity margin and the solidified chain does not know it. The txid, raw bytes and
//! expiration are persisted before signing, and the signed bytes before broadcasting, so a
//! restart resumes tracking instead of starting over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};
use tron_proto::Address;

use crate::builder::{self, BuildParams, HeadBlock, Transfer};
use crate::config::{Config, Network};
use crate::model::{
    now_ms, ApprovalProgress, ApprovalState, Attempt, Origin, Payout, Reason, Status,
};
use crate::node::{Broadcast, Node, NodeError};
use crate::signer::{SignOutcome, SignerConn, VOID_APPROVAL_CODES};
use crate::store::{Store, StoreError};

/// Node codes that mean the transaction is invalid for good.
const FINAL_BROADCAST_CODES: [&str; 2] = ["SIGERROR", "CONTRACT_VALIDATE_ERROR"];
/// Node codes that mean the reference or expiration no longer fits the node's chain.
const STALE_CODES: [&str; 2] = ["TAPOS_ERROR", "TRANSACTION_EXPIRATION_ERROR"];
/// An online transaction with less time left than this is not sent to the signer.
const MIN_REMAINING_MS: i64 = 30_000;
/// How often a broadcast transaction that is not yet solid is re-sent, in case the node
/// dropped it (restart, mempool eviction). The node answers DUP when it still has it.
const REBROADCAST_EVERY: Duration = Duration::from_secs(30);

/// The pipeline's settings, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub network: Network,
    pub key: Address,
    pub usdt_contract: Address,
    pub fee_limit_sun: i64,
    pub expiration: Duration,
    pub batch_expiration: Duration,
    pub solidity_margin: Duration,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            network: c.network,
            key: c.key,
            usdt_contract: c.usdt_contract,
            fee_limit_sun: c.fee_limit_sun,
            expiration: c.expiration,
            batch_expiration: c.batch_expiration,
            solidity_margin: c.solidity_margin,
            poll_interval: c.poll_interval,
            max_backoff: c.max_backoff,
        }
    }

    fn margin_ms(&self) -> i64 {
        self.solidity_margin.as_millis() as i64
    }
}

/// Why one step on one payout stopped early. All are retried on a later tick.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Retry(String),
}

impl StepError {
    pub fn code(&self) -> &'static str {
        match self {
            StepError::Node(e) => e.code(),
            StepError::Store(e) => e.code(),
            StepError::Retry(_) => "retry",
        }
    }
}

/// Can the transaction of `a` still land, judged by the node's head block time?
/// A transaction whose signature never left this process cannot.
pub fn can_still_land(a: &Attempt, head: &HeadBlock, margin_ms: i64) -> bool {
    let released = a.signed_transaction.is_some() || a.origin == Origin::Batch;
    released && head.timestamp_ms <= a.expiration_ms.saturating_add(margin_ms)
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: Instant,
    delay: Duration,
}

/// The pipeline: node, optional online signer, store.
pub struct Pipeline {
    store: Arc<Store>,
    node: Node,
    signer: Option<SignerConn>,
    settings: Settings,
    backoff: Mutex<HashMap<String, Backoff>>,
    rebroadcast: Mutex<HashMap<String, Instant>>,
}

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub processed: usize,
    pub errors: Vec<(String, String)>,
}

/// The head block, fetched at most once per tick.
struct HeadCache<'a> {
    node: &'a Node,
    head: Option<HeadBlock>,
}

impl HeadCache<'_> {
    async fn get(&mut self) -> Result<HeadBlock, NodeError> {
        if let Some(h) = self.head {
            return Ok(h);
        }
        let h = self.node.head().await?;
        self.head = Some(h);
        Ok(h)
    }
}

impl Pipeline {
    pub fn new(
        store: Arc<Store>,
        node: Node,
        signer: Option<SignerConn>,
        settings: Settings,
    ) -> Pipeline {
        Pipeline {
            store,
            node,
            signer,
            settings,
            backoff: Mutex::new(HashMap::new()),
            rebroadcast: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs passes every `poll_interval` until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let report = self.tick().await;
            for (id, e) in &report.errors {
                tracing::warn!(payout = %id, error = %e, "payout step will be retried");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One pass over every active payout that is not backing off.
    pub async fn tick(&self) -> TickReport {
        let mut report = TickReport::default();
        let active = match self.store.active() {
            Ok(a) => a,
            Err(e) => {
                report.errors.push(("*".into(), e.to_string()));
                return report;
            }
        };
        crate::metrics::global().set_oldest(
            active
                .iter()
                .map(|p| (p.status, crate::metrics::in_status_since(p))),
        );
        let mut head = HeadCache {
            node: &self.node,
            head: None,
        };
        for p in active {
            if self.backing_off(&p.key()).await {
                continue;
            }
            report.processed += 1;
            let id = p.key();
            match self.step(p, &mut head).await {
                Ok(()) => {
                    self.backoff.lock().await.remove(&id);
                }
                Err(e) => {
                    self.back_off(&id).await;
                    report.errors.push((id, e.to_string()));
                }
            }
        }
        report
    }

    async fn backing_off(&self, id: &str) -> bool {
        let map = self.backoff.lock().await;
        map.get(id).is_some_and(|b| Instant::now() < b.until)
    }

    async fn back_off(&self, id: &str) {
        let mut map = self.backoff.lock().await;
        let delay = match map.get(id) {
            Some(b) => b.delay.saturating_mul(2),
            None => self.settings.poll_interval,
        }
        .min(self.settings.max_backoff);
        map.insert(
            id.to_owned(),
            Backoff {
                until: Instant::now() + delay,
                delay,
            },
        );
    }

    /// Advances one payout as far as it can go now.
    async fn step(&self, mut p: Payout, head: &mut HeadCache<'_>) -> Result<(), StepError> {
        // Each arm either returns or leaves `p` updated for the next stage in the same pass.
        loop {
            match p.status {
                Status::Queued | Status::Retrying => {
                    let Some(next) = self.start_attempt(&p, head).await? else {
                        return Ok(());
                    };
                    p = next;
                }
                Status::Signing | Status::AwaitingApproval => {
                    let Some(next) = self.advance_signing(&p, head).await? else {
                        return Ok(());
                    };
                    p = next;
                }
                Status::Broadcast => {
                    let Some(next) = self.track(&p, head).await? else {
                        return Ok(());
                    };
                    p = next;
                }
                Status::Denied | Status::Confirmed | Status::Failed => return Ok(()),
            }
        }
    }

    /// Builds a new transaction for a queued or retrying payout (online mode only).
    async fn start_attempt(
        &self,
        p: &Payout,
        head: &mut HeadCache<'_>,
    ) -> Result<Option<Payout>, StepError> {
        if self.signer.is_none() {
            // Air-gap mode: `batch export` builds the transaction.
            return Ok(None);
        }
        let h = head.get().await?;
        let built = self.build_attempt(p, &h, Origin::Online)?;
        let margin = self.settings.margin_ms();
        let next = self.store.update(&p.key(), |p| -> Result<(), StepError> {
            if let Some(prev) = p.current() {
                if can_still_land(prev, &h, margin) {
                    return Err(StepError::Retry(format!(
                        "previous transaction {} can still land",
                        prev.txid
                    )));
                }
            }
            if !matches!(p.status, Status::Queued | Status::Retrying) {
                return Err(StepError::Retry("payout changed underneath".into()));
            }
            let note = format!(
                "built {} (expires {} ms, ref block {})",
                built.txid, built.expiration_ms, built.ref_block
            );
            p.attempts.push(built);
            p.transition(Status::Signing, now_ms(), note);
            Ok(())
        })?;
        Ok(Some(next))
    }

    /// The key `p` is sent from: its own, else the config's.
    pub fn sender(&self, p: &Payout) -> Result<Address, StepError> {
        match &p.from {
            None => Ok(self.settings.key),
            Some(s) => s
                .parse()
                .map_err(|e| StepError::Retry(format!("stored sending key unreadable: {e}"))),
        }
    }

    /// Builds an attempt for `p` against `h`; shared with `batch export`.
    pub fn build_attempt(
        &self,
        p: &Payout,
        h: &HeadBlock,
        origin: Origin,
    ) -> Result<Attempt, StepError> {
        let to: Address =
            p.to.parse()
                .map_err(|e| StepError::Retry(format!("stored destination unreadable: {e}")))?;
        let window = match origin {
            Origin::Online => self.settings.expiration,
            Origin::Batch => self.settings.batch_expiration,
        };
        let built = builder::build(
            &Transfer {
                asset: p.asset,
                owner: self.sender(p)?,
                to,
                amount_units: p.amount_units,
            },
            h,
            &BuildParams {
                usdt_contract: self.settings.usdt_contract,
                fee_limit_sun: p.fee_limit_sun.unwrap_or(self.settings.fee_limit_sun),
                expiration_ms: window.as_millis() as i64,
            },
        )
        .map_err(|e| StepError::Retry(e.to_string()))?;
        Ok(Attempt {
            txid: hex::encode(built.txid),
            raw_data: hex::encode(&built.raw_data),
            expiration_ms: built.expiration_ms,
            ref_block: h.number,
            created_at_ms: now_ms(),
            origin,
            signed_transaction: None,
            broadcast_at_ms: None,
            approval: None,
        })
    }

    /// `signing`: get a signature (online) or wait for an import (batch), then broadcast.
    async fn advance_signing(
        &self,
        p: &Payout,
        head: &mut HeadCache<'_>,
    ) -> Result<Option<Payout>, StepError> {
        let Some(a) = p.current().cloned() else {
            // Cannot happen through this code; recover by starting over.
            let next = self.store.update(&p.key(), |p| -> Result<(), StepError> {
                p.transition(Status::Queued, now_ms(), "no transaction on record");
                Ok(())
            })?;
            return Ok(Some(next));
        };
        if let Some(stx) = &a.signed_transaction {
            return self.broadcast(p, &a, stx, head).await;
        }
        let h = head.get().await?;
        match a.origin {
            Origin::Batch => {
                if !can_still_land(&a, &h, self.settings.margin_ms()) {
                    let next = self
                        .retry_after_expiry(p, &a, "batch transaction expired before import")
                        .await?;
                    return Ok(Some(next));
                }
                Ok(None)
            }
            Origin::Online => self.sign_online(p, &a, &h).await,
        }
    }

    /// Asks the signer for the signature of an online attempt, with the approvals it has
    /// taken so far plus at most one new one, and records what it said.
    async fn sign_online(
        &self,
        p: &Payout,
        a: &Attempt,
        h: &HeadBlock,
    ) -> Result<Option<Payout>, StepError> {
        if h.timestamp_ms.saturating_add(MIN_REMAINING_MS) >= a.expiration_ms {
            // Never signed-and-kept, never broadcast: safe to replace at once.
            let note = if p.status == Status::AwaitingApproval {
                format!(
                    "{} expired awaiting approval; a new transaction will be built and \
                     its approvals asked afresh (approvals of {} are void)",
                    a.txid, a.txid
                )
            } else {
                format!("{} expired before it was signed", a.txid)
            };
            let next = self.store.update(&p.key(), |p| -> Result<(), StepError> {
                p.transition(Status::Retrying, now_ms(), note);
                Ok(())
            })?;
            return Ok(Some(next));
        }
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let (taken, candidate) = match &a.approval {
            Some(st) => st.next_offer(),
            None => (Vec::new(), None),
        };
        if p.status == Status::AwaitingApproval && candidate.is_none() {
            // Nothing new to show the signer.
            return Ok(None);
        }
        let offered: Vec<tron_proto::signer::Approval> = taken
            .iter()
            .copied()
            .chain(candidate.and_then(|i| a.approval.as_ref().map(|st| &st.approvals[i])))
            .map(|c| tron_proto::signer::Approval {
                signature: c.signature.clone(),
                statement: c.statement.clone(),
            })
            .collect();
        let raw = hex::decode(&a.raw_data)
            .map_err(|e| StepError::Retry(format!("stored raw_data unreadable: {e}")))?;
        let key = self.sender(p)?;
        let outcome = signer
            .sign(&key, &raw, &p.key(), offered, p.deposit_index)
            .await;
        let txid = a.txid.clone();
        // Every arm checks the attempt is still the one asked about.
        let current = |p: &mut Payout| -> Result<(), StepError> {
            match p.current() {
                Some(cur) if cur.txid == txid => Ok(()),
                _ => Err(StepError::Retry("attempt changed underneath".into())),
            }
        };
        let next = match outcome {
            SignOutcome::Signed {
                signed_transaction, ..
            } => {
                let stx = hex::encode(signed_transaction);
                self.store.update(&p.key(), |p| -> Result<(), StepError> {
                    current(p)?;
                    let waited = p.status == Status::AwaitingApproval;
                    if let Some(cur) = p.current_mut() {
                        cur.signed_transaction = Some(stx);
                        settle_candidate(cur, candidate, ApprovalProgress::Accepted, None);
                    }
                    if waited {
                        p.transition(Status::Signing, now_ms(), "approved; signed");
                    }
                    Ok(())
                })?
            }
            SignOutcome::ApprovalRequired { reason, statement } => {
                self.store.update(&p.key(), |p| -> Result<(), StepError> {
                    current(p)?;
                    let Some(cur) = p.current_mut() else {
                        return Ok(());
                    };
                    settle_candidate(cur, candidate, ApprovalProgress::Accepted, None);
                    let st = cur.approval.get_or_insert_with(|| ApprovalState {
                        statement: statement.clone(),
                        needed: String::new(),
                        approvals: Vec::new(),
                    });
                    if st.statement != statement {
                        // The signer now asks for another text (its policy changed): what
                        // was signed so far is void there.
                        for c in &mut st.approvals {
                            if c.state != ApprovalProgress::Refused {
                                c.state = ApprovalProgress::Refused;
                                c.refusal = Some(Reason {
                                    code: "approval_statement_changed".into(),
                                    message: "the signer asks approvers to sign a new \
                                              statement; sign it again"
                                        .into(),
                                });
                            }
                        }
                        st.statement = statement;
                    }
                    st.needed = reason.message.clone();
                    if p.status != Status::AwaitingApproval {
                        p.transition(
                            Status::AwaitingApproval,
                            now_ms(),
                            format!("needs approval: {}", reason.message),
                        );
                    } else {
                        p.updated_at_ms = now_ms();
                    }
                    Ok(())
                })?
            }
            SignOutcome::Denied(reason)
                if candidate.is_some() && VOID_APPROVAL_CODES.contains(&reason.code.as_str()) =>
            {
                // That one approval does not count; the payout waits for others.
                self.store.update(&p.key(), |p| -> Result<(), StepError> {
                    current(p)?;
                    if let Some(cur) = p.current_mut() {
                        settle_candidate(cur, candidate, ApprovalProgress::Refused, Some(reason));
                    }
                    p.updated_at_ms = now_ms();
                    Ok(())
                })?
            }
            SignOutcome::Denied(reason) => {
                self.store.update(&p.key(), |p| -> Result<(), StepError> {
                    let note = format!("signer refused: [{}] {}", reason.code, reason.message);
                    if let Some(cur) = p.current_mut() {
                        settle_candidate(
                            cur,
                            candidate,
                            ApprovalProgress::Refused,
                            Some(reason.clone()),
                        );
                    }
                    p.denial = Some(reason);
                    p.transition(Status::Denied, now_ms(), note);
                    Ok(())
                })?
            }
            SignOutcome::Retry(m) => return Err(StepError::Retry(m)),
        };
        Ok(Some(next))
    }

    /// Sends a signed transaction and acts on the node's verdict.
    async fn broadcast(
        &self,
        p: &Payout,
        a: &Attempt,
        stx_hex: &str,
        head: &mut HeadCache<'_>,
    ) -> Result<Option<Payout>, StepError> {
        let stx = hex::decode(stx_hex)
            .map_err(|e| StepError::Retry(format!("stored transaction unreadable: {e}")))?;
        let verdict = self.node.broadcast_hex(&stx).await?;
        let (status, note, failure) = match verdict {
            Broadcast::Accepted => (Status::Broadcast, format!("broadcast {}", a.txid), None),
            Broadcast::Rejected { code, .. } if code == "DUP_TRANSACTION_ERROR" => (
                Status::Broadcast,
                format!("node already knows {}", a.txid),
                None,
            ),
            Broadcast::Rejected { code, message }
                if FINAL_BROADCAST_CODES.contains(&code.as_str()) =>
            {
                (
                    Status::Failed,
                    format!("node rejected {}: [{code}] {message}", a.txid),
                    Some(Reason { code, message }),
                )
            }
            Broadcast::Rejected { code, message } if STALE_CODES.contains(&code.as_str()) => {
                // The node will not take it now; rebuild only once it cannot land anywhere.
                let h = head.get().await?;
                if can_still_land(a, &h, self.settings.margin_ms()) {
                    return Err(StepError::Retry(format!(
                        "[{code}] {message}; waiting until {} expires",
                        a.txid
                    )));
                }
                return self
                    .resolve_or_retry(p, a, &format!("[{code}] {message}"))
                    .await
                    .map(Some);
            }
            Broadcast::Rejected { code, message } => {
                return Err(StepError::Retry(format!(
                    "node busy or failing: [{code}] {message}"
                )))
            }
        };
        let txid = a.txid.clone();
        let next = self.store.update(&p.key(), |p| -> Result<(), StepError> {
            if let Some(cur) = p.current_mut().filter(|c| c.txid == txid) {
                cur.broadcast_at_ms.get_or_insert(now_ms());
            }
            if let Some(f) = failure {
                p.failure = Some(f);
            }
            p.transition(status, now_ms(), note);
            Ok(())
        })?;
        self.rebroadcast
            .lock()
            .await
            .insert(p.key(), Instant::now());
        Ok(Some(next))
    }

    /// `broadcast`: poll the solidified receipt; after expiry, retry with a new transaction.
    async fn track(
        &self,
        p: &Payout,
        head: &mut HeadCache<'_>,
    ) -> Result<Option<Payout>, StepError> {
        let Some(a) = p.current().cloned() else {
            return Err(StepError::Retry(
                "broadcast payout without a transaction".into(),
            ));
        };
        if let Some(info) = self.node.transaction_info(&a.txid).await? {
            return self.settle(p, &a, info).map(Some);
        }
        let h = head.get().await?;
        if !can_still_land(&a, &h, self.settings.margin_ms()) {
            return self
                .retry_after_expiry(p, &a, "expired unconfirmed")
                .await
                .map(Some);
        }
        self.maybe_rebroadcast(p, &a).await;
        Ok(None)
    }

    async fn maybe_rebroadcast(&self, p: &Payout, a: &Attempt) {
        let due = {
            let mut map = self.rebroadcast.lock().await;
            let last = map.entry(p.key()).or_insert_with(Instant::now);
            if last.elapsed() >= REBROADCAST_EVERY {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if !due {
            return;
        }
        if let Some(stx) = a
            .signed_transaction
            .as_deref()
            .and_then(|s| hex::decode(s).ok())
        {
            match self.node.broadcast_hex(&stx).await {
                Ok(v) => tracing::debug!(payout = %p.key(), ?v, "re-broadcast"),
                Err(e) => tracing::debug!(payout = %p.key(), error = %e, "re-broadcast failed"),
            }
        }
    }

    /// Records the solidified outcome.
    fn settle(
        &self,
        p: &Payout,
        a: &Attempt,
        info: crate::node::TxInfo,
    ) -> Result<Payout, StepError> {
        let txid = a.txid.clone();
        self.store.update(&p.key(), |p| -> Result<(), StepError> {
            p.block_number = Some(info.block_number);
            p.block_timestamp_ms = Some(info.block_timestamp_ms);
            match info.failure {
                None => p.transition(
                    Status::Confirmed,
                    now_ms(),
                    format!("{txid} solidified in block {}", info.block_number),
                ),
                Some(f) => {
                    let note = format!(
                        "{txid} failed on chain in block {}: [{}] {}",
                        info.block_number, f.code, f.message
                    );
                    p.failure = Some(f);
                    p.transition(Status::Failed, now_ms(), note);
                }
            }
            Ok(())
        })
    }

    /// The transaction can no longer land: check once more whether it did, else `retrying`.
    async fn resolve_or_retry(
        &self,
        p: &Payout,
        a: &Attempt,
        why: &str,
    ) -> Result<Payout, StepError> {
        if let Some(info) = self.node.transaction_info(&a.txid).await? {
            return self.settle(p, a, info);
        }
        self.retry_after_expiry(p, a, why).await
    }

    async fn retry_after_expiry(
        &self,
        p: &Payout,
        a: &Attempt,
        why: &str,
    ) -> Result<Payout, StepError> {
        let note = format!(
            "{} {why} (expiration {} ms passed on the node)",
            a.txid, a.expiration_ms
        );
        self.store.update(&p.key(), |p| -> Result<(), StepError> {
            p.transition(Status::Retrying, now_ms(), note);
            Ok(())
        })
    }
}

/// Records what the signer made of the approval it was shown for the first time.
fn settle_candidate(
    a: &mut Attempt,
    candidate: Option<usize>,
    state: ApprovalProgress,
    refusal: Option<Reason>,
) {
    let Some(c) = candidate.and_then(|i| a.approval.as_mut()?.approvals.get_mut(i)) else {
        return;
    };
    if c.state == ApprovalProgress::Pending {
        c.state = state;
        c.refusal = refusal;
    }
}
