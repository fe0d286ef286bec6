//! The background task that sweeps closed invoices' deposit addresses ([`crate::sweep`]
//! says how a round goes).
//!
//! Its work list is the receive store's `sweep_due`: the watcher flags a closed invoice
//! whenever a payment to its address settles. Each pass takes every flagged invoice one
//! step: plan a round (or take the invoice off the list when its address holds less than
//! the minimum), create the round's payouts, and record what the pipeline made of them.
//! The payouts themselves are the pipeline's to build, sign, broadcast and confirm; this
//! task only reads their status. Every decision is read back from the database and the
//! node on each pass, so a restart at any point resumes: a round's payouts are found by
//! their ids, never asked for twice.
//!
//! Nothing here is a safety check. The signer alone decides whether a deposit key may
//! send (only to the policy's collection address) and how much TRX a gas key may send
//! (only to addresses of the deposit account, up to its caps).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tron_proto::{Address, U256};

use crate::config::SweepConfig;
use crate::deposit_address::AccountXpub;
use crate::invoice::Invoice;
use crate::model::{now_ms, Asset, Owner, Payout, PayoutKind, Reason, Status};
use crate::node::{Node, NodeError};
use crate::receive_store::ReceiveStore;
use crate::resources::{self, Estimate};
use crate::store::{Created, Store, StoreError};
use crate::sweep::{self, payout_id, PlanError, Step, Sweep, SweepStatus};

/// The `created_by` of the sweeper's payouts (they come from no API key).
pub const SWEEPER: &str = "sweeper";
/// The event of a round that swept.
pub const EVENT_SWEPT: &str = "invoice.swept";
/// The event of a round that failed or was refused.
pub const EVENT_SWEEP_FAILED: &str = "invoice.sweep_failed";

/// Why one step on one invoice stopped early; retried on a later pass.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Retry(String),
}

impl SweepError {
    pub fn code(&self) -> &'static str {
        match self {
            SweepError::Node(e) => e.code(),
            SweepError::Store(e) => e.code(),
            SweepError::Retry(_) => "sweep_retry",
        }
    }
}

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepPass {
    /// Flagged invoices looked at.
    pub looked: usize,
    pub errors: Vec<(String, String)>,
}

pub struct Sweeper {
    store: Arc<Store>,
    receive: ReceiveStore,
    node: Node,
    xpub: AccountXpub,
    token: Address,
    cfg: SweepConfig,
    poll_interval: Duration,
}

fn reason(code: &str, message: impl Into<String>) -> Reason {
    Reason {
        code: code.into(),
        message: message.into(),
    }
}

impl Sweeper {
    pub fn new(
        store: Arc<Store>,
        receive: ReceiveStore,
        node: Node,
        xpub: AccountXpub,
        token: Address,
        cfg: SweepConfig,
        poll_interval: Duration,
    ) -> Sweeper {
        Sweeper {
            store,
            receive,
            node,
            xpub,
            token,
            cfg,
            poll_interval,
        }
    }

    /// Passes every `poll_interval` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let pass = self.pass().await;
            for (key, e) in &pass.errors {
                tracing::warn!(invoice = %key, error = %e, "sweep step will be retried");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }

    /// One step for every flagged invoice.
    pub async fn pass(&self) -> SweepPass {
        let mut out = SweepPass::default();
        let due = match self.receive.sweep_due() {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(("*".into(), e.to_string()));
                return out;
            }
        };
        for (key, mark) in due {
            out.looked += 1;
            if let Err(e) = self.step(&key, mark).await {
                out.errors.push((key, format!("[{}] {e}", e.code())));
            }
        }
        out
    }

    async fn step(&self, key: &str, mark: u64) -> Result<(), SweepError> {
        let Some(inv) = self.receive.invoice_by_key(key)? else {
            self.receive.clear_sweep_due(key, mark)?;
            return Ok(());
        };
        let Some(min) = self.cfg.min_units(inv.asset) else {
            // This asset is not swept.
            self.receive.clear_sweep_due(key, mark)?;
            return Ok(());
        };
        match inv.sweeps.last().map(|s| s.status) {
            None | Some(SweepStatus::Swept) => self.start_round(&inv, key, mark, min).await,
            // Never tried again by itself: the reason is on the invoice for a person.
            Some(SweepStatus::Failed | SweepStatus::Refused) => {
                self.receive.clear_sweep_due(key, mark)?;
                Ok(())
            }
            Some(SweepStatus::ToppingUp) => self.after_topup(&inv, key).await,
            Some(SweepStatus::Sweeping) => self.after_sweep(&inv, key).await,
        }
    }

    fn deposit_of(&self, inv: &Invoice) -> Result<Address, SweepError> {
        inv.address
            .parse()
            .map_err(|e| SweepError::Retry(format!("stored deposit address unreadable: {e}")))
    }

    /// Plans round `n + 1` from the node's figures and creates its first payout.
    async fn start_round(
        &self,
        inv: &Invoice,
        key: &str,
        mark: u64,
        min: u64,
    ) -> Result<(), SweepError> {
        if !inv.status.is_closed() {
            self.receive.clear_sweep_due(key, mark)?;
            return Ok(());
        }
        let deposit = self.deposit_of(inv)?;
        let round = u32::try_from(inv.sweeps.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let now = now_ms();
        let blank = Sweep {
            round,
            status: SweepStatus::Failed,
            asset: inv.asset,
            units: 0,
            energy: 0,
            energy_price_sun: 0,
            fee_limit_sun: 0,
            topup_sun: 0,
            topup_txid: None,
            topup_fee_sun: 0,
            sweep_txid: None,
            energy_fee_sun: 0,
            reason: None,
            started_at_ms: now,
            updated_at_ms: now,
        };
        // The address we would sweep must be the one the account xpub derives at the
        // invoice's index: the signer derives the key from the index alone.
        match self.xpub.address(inv.deposit_index) {
            Ok(a) if a == deposit => {}
            _ => {
                let r = reason(
                    "sweep_address_mismatch",
                    format!(
                        "index {} of the configured xpub is not {}",
                        inv.deposit_index, inv.address
                    ),
                );
                return self.record_new(
                    key,
                    round,
                    Sweep {
                        reason: Some(r),
                        ..blank
                    },
                    true,
                );
            }
        }
        let balance: U256 = match inv.asset {
            Asset::Usdt => resources::token_balance(&self.node, &self.token, &deposit).await?,
            Asset::Trx => U256::from(resources::trx_balance(&self.node, &deposit).await?),
        };
        if balance < U256::from(min) {
            self.receive.clear_sweep_due(key, mark)?;
            return Ok(());
        }
        let Some(units) = u64::try_from(balance)
            .ok()
            .filter(|u| i64::try_from(*u).is_ok())
        else {
            let r = PlanError::BalanceTooLarge(balance.to_string()).reason();
            return self.record_new(
                key,
                round,
                Sweep {
                    reason: Some(r),
                    ..blank
                },
                true,
            );
        };
        let (energy, price, plan) = match inv.asset {
            // A TRX transfer needs bandwidth only (free bandwidth assumed): no top-up.
            Asset::Trx => (
                0,
                0,
                sweep::Plan {
                    fee_limit_sun: 0,
                    topup_sun: 0,
                },
            ),
            Asset::Usdt => {
                let estimate = resources::estimate_transfer(
                    &self.node,
                    &self.token,
                    &deposit,
                    &self.cfg.collection,
                    balance,
                )
                .await?;
                let energy = match estimate {
                    Estimate::Energy(e) => e,
                    Estimate::Reverts(m) => {
                        let r = PlanError::WouldRevert(m).reason();
                        let s = Sweep {
                            units,
                            reason: Some(r),
                            ..blank
                        };
                        return self.record_new(key, round, s, true);
                    }
                };
                let price = resources::energy_price(&self.node).await?;
                let trx = resources::trx_balance(&self.node, &deposit).await?;
                match sweep::plan(energy, price, self.cfg.energy_margin_percent, trx) {
                    Ok(p) => (energy, price, p),
                    Err(e) => {
                        let s = Sweep {
                            units,
                            energy,
                            energy_price_sun: price,
                            reason: Some(e.reason()),
                            ..blank
                        };
                        return self.record_new(key, round, s, true);
                    }
                }
            }
        };
        // The top-up payout before the record: its id is the round's, so a crash between
        // the two finds it on the next pass and adopts it instead of asking again.
        let gas_id = payout_id(&inv.id, round, Step::Gas);
        let topup = if plan.topup_sun > 0 {
            self.create(self.gas_payout(inv, &gas_id, &deposit, plan.topup_sun))?
                .amount_units
        } else {
            match self.store.get_for(&inv.tenant, &gas_id)? {
                Some(p) => p.amount_units,
                None => 0,
            }
        };
        let status = if topup > 0 {
            SweepStatus::ToppingUp
        } else {
            SweepStatus::Sweeping
        };
        let s = Sweep {
            status,
            units,
            energy,
            energy_price_sun: price,
            fee_limit_sun: plan.fee_limit_sun,
            topup_sun: topup,
            ..blank
        };
        tracing::info!(
            invoice = %key, round, units, energy, price, topup, fee_limit = plan.fee_limit_sun,
            "sweep planned"
        );
        self.record_new(key, round, s.clone(), false)?;
        if status == SweepStatus::Sweeping {
            self.ensure_sweep_payout(inv, &s)?;
        }
        Ok(())
    }

    /// Appends round `round` (failed rounds with their event).
    fn record_new(&self, key: &str, round: u32, s: Sweep, failed: bool) -> Result<(), SweepError> {
        if failed {
            tracing::warn!(invoice = %key, round, reason = ?s.reason, "sweep cannot be made");
        }
        self.receive
            .update_sweeps(key, |inv| -> Result<Option<&'static str>, SweepError> {
                if u32::try_from(inv.sweeps.len()).ok() != Some(round - 1) {
                    return Err(SweepError::Retry(
                        "the invoice's sweeps changed underneath".into(),
                    ));
                }
                inv.sweeps.push(s);
                Ok(failed.then_some(EVENT_SWEEP_FAILED))
            })?;
        Ok(())
    }

    /// Creates `p`, or returns the payout already stored under its id (the same round
    /// asked before a restart): never a second one. Looks first, so a pass that finds
    /// it writes nothing.
    fn create(&self, p: Payout) -> Result<Payout, SweepError> {
        if let Some(existing) = self.store.get(&p.key())? {
            return Ok(existing);
        }
        Ok(match self.store.create_payout(p)? {
            Created::New(p) | Created::Existing(p) | Created::Conflict(p) => p,
        })
    }

    fn owner(inv: &Invoice) -> Owner {
        Owner {
            tenant: inv.tenant.clone(),
            key_id: SWEEPER.into(),
        }
    }

    fn gas_payout(&self, inv: &Invoice, id: &str, deposit: &Address, sun: u64) -> Payout {
        let mut p = Payout::new(
            &Self::owner(inv),
            id.into(),
            Asset::Trx,
            deposit.to_base58(),
            sun,
            now_ms(),
        );
        p.kind = PayoutKind::Gas;
        p.from = Some(self.cfg.gas_key.to_base58());
        // The signer derives the address the gas key may fund from this index.
        p.deposit_index = Some(inv.deposit_index);
        p
    }

    fn ensure_sweep_payout(&self, inv: &Invoice, s: &Sweep) -> Result<Payout, SweepError> {
        let mut p = Payout::new(
            &Self::owner(inv),
            payout_id(&inv.id, s.round, Step::Sweep),
            s.asset,
            self.cfg.collection.to_base58(),
            s.units,
            now_ms(),
        );
        p.kind = PayoutKind::Sweep;
        p.from = Some(inv.address.clone());
        p.deposit_index = Some(inv.deposit_index);
        if s.asset == Asset::Usdt {
            let limit = i64::try_from(s.fee_limit_sun)
                .map_err(|_| SweepError::Retry("fee limit does not fit".into()))?;
            p.fee_limit_sun = Some(limit);
        }
        self.create(p)
    }

    /// The sun a confirmed payout's transaction burnt, from its solidified info.
    async fn burnt(&self, p: &Payout) -> Result<(Option<String>, u64), SweepError> {
        let Some(txid) = p.current().map(|a| a.txid.clone()) else {
            return Ok((None, 0));
        };
        let fee = match self.node.transaction_info(&txid).await? {
            Some(info) => info.fee_sun,
            // Confirmed or failed on chain means solidified: the node must know it.
            None if p.block_number.is_some() => {
                return Err(SweepError::Retry(format!(
                    "{txid} is not on the node's solidified chain yet"
                )))
            }
            None => 0,
        };
        Ok((Some(txid), fee))
    }

    /// A final payout that did not confirm ends the round: `refused` or `failed`.
    fn end(
        &self,
        key: &str,
        p: &Payout,
        txid_fee: (Option<String>, u64),
        step: Step,
    ) -> Result<(), SweepError> {
        let (status, why) = match p.status {
            Status::Denied => (
                SweepStatus::Refused,
                p.denial
                    .clone()
                    .unwrap_or_else(|| reason("denied", "the signer refused")),
            ),
            _ => (
                SweepStatus::Failed,
                p.failure
                    .clone()
                    .unwrap_or_else(|| reason("failed", "the payout failed")),
            ),
        };
        tracing::warn!(invoice = %key, payout = %p.key(), code = %why.code, "sweep stopped");
        self.receive
            .update_sweeps(key, |inv| -> Result<Option<&'static str>, SweepError> {
                let Some(s) = inv.sweeps.last_mut() else {
                    return Err(SweepError::Retry("no sweep on record".into()));
                };
                match step {
                    Step::Gas => {
                        s.topup_txid = txid_fee.0;
                        s.topup_fee_sun = txid_fee.1;
                    }
                    Step::Sweep => {
                        s.sweep_txid = txid_fee.0;
                        s.energy_fee_sun = txid_fee.1;
                    }
                }
                s.finish(status, Some(why), now_ms());
                Ok(Some(EVENT_SWEEP_FAILED))
            })?;
        crate::metrics::global().sweep(match status {
            SweepStatus::Refused => "refused",
            _ => "failed",
        });
        Ok(())
    }

    /// `topping_up`: once the top-up confirms, record it and create the sweep payout.
    async fn after_topup(&self, inv: &Invoice, key: &str) -> Result<(), SweepError> {
        let Some(s) = inv.sweeps.last().cloned() else {
            return Ok(());
        };
        let deposit = self.deposit_of(inv)?;
        let gas_id = payout_id(&inv.id, s.round, Step::Gas);
        let gas = self.create(self.gas_payout(inv, &gas_id, &deposit, s.topup_sun))?;
        match gas.status {
            Status::Confirmed => {
                let (txid, fee) = self.burnt(&gas).await?;
                let updated = self.receive.update_sweeps(
                    key,
                    |inv| -> Result<Option<&'static str>, SweepError> {
                        let Some(s) = inv.sweeps.last_mut() else {
                            return Err(SweepError::Retry("no sweep on record".into()));
                        };
                        if s.status == SweepStatus::ToppingUp {
                            s.topup_txid = txid;
                            s.topup_fee_sun = fee;
                            s.status = SweepStatus::Sweeping;
                            s.updated_at_ms = now_ms();
                        }
                        Ok(None)
                    },
                )?;
                if let Some(s) = updated.sweeps.last() {
                    tracing::info!(invoice = %key, round = s.round, topup = s.topup_sun, "top-up confirmed; sweeping");
                    self.ensure_sweep_payout(&updated, s)?;
                }
                Ok(())
            }
            Status::Denied => self.end(key, &gas, (None, 0), Step::Gas),
            Status::Failed => {
                let burnt = self.burnt(&gas).await?;
                self.end(key, &gas, burnt, Step::Gas)
            }
            _ => Ok(()),
        }
    }

    /// `sweeping`: once the sweep confirms, record what it moved and burnt.
    async fn after_sweep(&self, inv: &Invoice, key: &str) -> Result<(), SweepError> {
        let Some(s) = inv.sweeps.last().cloned() else {
            return Ok(());
        };
        let p = self.ensure_sweep_payout(inv, &s)?;
        match p.status {
            Status::Confirmed => {
                let (txid, fee) = self.burnt(&p).await?;
                self.receive.update_sweeps(
                    key,
                    |inv| -> Result<Option<&'static str>, SweepError> {
                        let Some(s) = inv.sweeps.last_mut() else {
                            return Err(SweepError::Retry("no sweep on record".into()));
                        };
                        s.sweep_txid = txid;
                        s.energy_fee_sun = fee;
                        s.finish(SweepStatus::Swept, None, now_ms());
                        Ok(Some(EVENT_SWEPT))
                    },
                )?;
                crate::metrics::global().sweep("swept");
                tracing::info!(invoice = %key, round = s.round, units = s.units, energy_fee = fee, "swept");
                Ok(())
            }
            // Refused before anything was broadcast: no txid, nothing burnt.
            Status::Denied => self.end(key, &p, (None, 0), Step::Sweep),
            Status::Failed => {
                let burnt = self.burnt(&p).await?;
                self.end(key, &p, burnt, Step::Sweep)
            }
            _ => Ok(()),
        }
    }
}
