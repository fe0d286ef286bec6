//! A sweep of one deposit address: its record on the invoice, and the pure rules that
//! plan it. The sweeper ([`crate::sweeper`]) drives it; nothing here does I/O.
//!
//! A sweep moves the address's whole balance of the invoice's asset (as the node reports
//! it, not as we credited it) to the collection address, in rounds: a round starts when
//! a closed invoice's address holds at least the configured minimum and the previous
//! round (if any) swept. Each round is
//!
//! 1. **planned** from the node's figures: the token balance `B`, the energy `E` of
//!    `transfer(collection, B)` from `triggerconstantcontract`, the price `P` from
//!    `getEnergyFee` (never a constant), and the address's TRX `T`. The energy cost is
//!    `ceil(E × P × (100 + margin) / 100)`; the top-up is what `T` lacks of it;
//! 2. **topped up** (`topping_up`) if the top-up is not zero: a TRX payout of exactly the
//!    top-up from the gas key to the address, signed with the address's `deposit_index`,
//!    confirmed at the solidified height;
//! 3. **swept** (`sweeping`): the payout of `B` from the deposit key (the signer derives
//!    it from `deposit_index`) to the collection address with `fee_limit` = the energy
//!    cost, confirmed;
//! 4. recorded (`swept`) with what the chain says it cost: the sun the top-up burnt (an
//!    account-creating transfer burns the creation fee from the gas key) and the sun the
//!    sweep burnt for energy (its transaction info's `fee`).
//!
//! Both payouts have ids derived from the invoice and the round (`<invoice>#gas<n>`,
//! `<invoice>#sweep<n>`), so a restart finds them instead of paying twice, and go
//! through the payout pipeline (TAPOS, expiry and rebuild, confirmation). A refusal by
//! the signer ends the sweep `refused`, a failure on chain `failed`, each with its
//! reason, and neither is tried again by itself.
//!
//! TRX invoices are swept the same way without energy or top-up: a TRX transfer uses
//! bandwidth only, which the address's free bandwidth is assumed to cover.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::SUN_PER_TRX;
use crate::model::{Asset, Reason};

/// The network's highest `fee_limit` (15,000 TRX): a plan above it is refused.
pub const MAX_FEE_LIMIT_SUN: u64 = crate::config::MAX_FEE_LIMIT_TRX * SUN_PER_TRX;
/// The highest `energy_margin_percent` a config may set.
pub const MAX_MARGIN_PERCENT: u32 = 100;

/// Where a sweep round stands. `swept`, `failed` and `refused` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    /// Waiting for the gas key's top-up to confirm.
    ToppingUp,
    /// Waiting for the sweep itself to confirm.
    Sweeping,
    Swept,
    /// Failed on chain or could not be planned (see `reason`).
    Failed,
    /// The signer refused the top-up or the sweep (see `reason`).
    Refused,
}

impl SweepStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SweepStatus::Swept | SweepStatus::Failed | SweepStatus::Refused
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::ToppingUp => "topping_up",
            SweepStatus::Sweeping => "sweeping",
            SweepStatus::Swept => "swept",
            SweepStatus::Failed => "failed",
            SweepStatus::Refused => "refused",
        }
    }
}

/// The two payouts of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Gas,
    Sweep,
}

/// The payout id of `step` of round `round` of `invoice`. `#` never appears in an id
/// the payouts API accepts, so these never meet a merchant's own payout ids.
pub fn payout_id(invoice: &str, round: u32, step: Step) -> String {
    match step {
        Step::Gas => format!("{invoice}#gas{round}"),
        Step::Sweep => format!("{invoice}#sweep{round}"),
    }
}

/// One round of sweeping an invoice's address, as stored on the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// 1 for the first round of this address.
    pub round: u32,
    pub status: SweepStatus,
    pub asset: Asset,
    /// What is swept: the address's balance when the round was planned (base units).
    pub units: u64,
    /// The energy the node estimated for the transfer (0 for TRX).
    pub energy: u64,
    /// `getEnergyFee` when planned, sun per energy.
    pub energy_price_sun: u64,
    /// The energy cost with the margin: the sweep's `fee_limit`.
    pub fee_limit_sun: u64,
    /// TRX asked of the gas key (0: the address already held enough).
    pub topup_sun: u64,
    pub topup_txid: Option<String>,
    /// Sun the top-up burnt (the account-creation fee when the address had no account).
    pub topup_fee_sun: u64,
    pub sweep_txid: Option<String>,
    /// Sun the sweep burnt for energy: its transaction info's `fee`.
    pub energy_fee_sun: u64,
    pub reason: Option<Reason>,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Sweep {
    /// Sun burnt on chain for this round: the top-up's fee plus the sweep's.
    pub fn cost_sun(&self) -> u64 {
        self.topup_fee_sun.saturating_add(self.energy_fee_sun)
    }

    /// Moves to `status` with `reason`, at `now`.
    pub fn finish(&mut self, status: SweepStatus, reason: Option<Reason>, now: i64) {
        self.status = status;
        self.reason = reason;
        self.updated_at_ms = now;
    }

    /// As the invoice API and webhooks show it.
    pub fn view(&self) -> Value {
        json!({
            "round": self.round,
            "status": self.status,
            "asset": self.asset,
            "swept_units": self.units.to_string(),
            "energy": self.energy,
            "energy_price_sun": self.energy_price_sun,
            "fee_limit_sun": self.fee_limit_sun.to_string(),
            "topup_sun": self.topup_sun.to_string(),
            "topup_txid": self.topup_txid,
            "topup_fee_sun": self.topup_fee_sun.to_string(),
            "sweep_txid": self.sweep_txid,
            "energy_fee_sun": self.energy_fee_sun.to_string(),
            "cost_sun": self.cost_sun().to_string(),
            "reason": self.reason,
            "started_at": self.started_at_ms,
            "updated_at": self.updated_at_ms,
        })
    }
}

/// Why a round could not be planned. Recorded as the `failed` round's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the energy cost overflows")]
    Overflow,
    #[error("the energy cost {0} sun is above the network's fee_limit maximum")]
    AboveFeeLimit(u64),
    #[error("the balance {0} does not fit a Tron amount")]
    BalanceTooLarge(String),
    #[error("the node says the transfer would fail: {0}")]
    WouldRevert(String),
}

impl PlanError {
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::Overflow => "sweep_cost_overflow",
            PlanError::AboveFeeLimit(_) => "sweep_cost_above_fee_limit",
            PlanError::BalanceTooLarge(_) => "sweep_balance_too_large",
            PlanError::WouldRevert(_) => "sweep_would_revert",
        }
    }

    pub fn reason(&self) -> Reason {
        Reason {
            code: self.code().into(),
            message: self.to_string(),
        }
    }
}

/// The energy cost and top-up of a token sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub fee_limit_sun: u64,
    pub topup_sun: u64,
}

/// `ceil(energy × price × (100 + margin) / 100)` as the fee limit, and what `trx_sun`
/// lacks of it as the top-up.
pub fn plan(energy: u64, price: u64, margin_percent: u32, trx_sun: u64) -> Result<Plan, PlanError> {
    let base = u128::from(energy) * u128::from(price);
    let with_margin = base
        .checked_mul(100 + u128::from(margin_percent))
        .ok_or(PlanError::Overflow)?
        .div_ceil(100);
    let cost = u64::try_from(with_margin).map_err(|_| PlanError::Overflow)?;
    if cost > MAX_FEE_LIMIT_SUN {
        return Err(PlanError::AboveFeeLimit(cost));
    }
    Ok(Plan {
        fee_limit_sun: cost,
        topup_sun: cost.saturating_sub(trx_sun),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_up_is_exactly_what_the_address_lacks() {
        // 64,285 energy at 100 sun: 6,428,500 sun.
        assert_eq!(
            plan(64_285, 100, 0, 0).unwrap(),
            Plan {
                fee_limit_sun: 6_428_500,
                topup_sun: 6_428_500
            }
        );
        assert_eq!(plan(64_285, 100, 0, 428_500).unwrap().topup_sun, 6_000_000);
        assert_eq!(plan(64_285, 100, 0, 6_428_500).unwrap().topup_sun, 0);
        assert_eq!(plan(64_285, 100, 0, 9_000_000).unwrap().topup_sun, 0);
        // A margin rounds up, never down.
        assert_eq!(plan(130_285, 100, 10, 0).unwrap().fee_limit_sun, 14_331_350);
        assert_eq!(plan(3, 1, 10, 0).unwrap().fee_limit_sun, 4);
        // The price is an input: a new price, a new plan.
        assert_eq!(plan(64_285, 210, 0, 0).unwrap().fee_limit_sun, 13_499_850);
    }

    #[test]
    fn plans_the_network_would_refuse_are_refused_with_their_codes() {
        let e = plan(1_000_000_000, 100, 0, 0).unwrap_err();
        assert_eq!(e.code(), "sweep_cost_above_fee_limit");
        assert_eq!(
            plan(u64::MAX, u64::MAX, 0, 0).unwrap_err().code(),
            "sweep_cost_overflow"
        );
        assert_eq!(
            PlanError::WouldRevert("x".into()).reason().code,
            "sweep_would_revert"
        );
        assert_eq!(
            PlanError::BalanceTooLarge("1".into()).code(),
            "sweep_balance_too_large"
        );
    }

    #[test]
    fn ids_statuses_and_the_cost() {
        assert_eq!(payout_id("inv-1", 1, Step::Gas), "inv-1#gas1");
        assert_eq!(payout_id("inv-1", 2, Step::Sweep), "inv-1#sweep2");
        assert!(SweepStatus::Swept.is_final() && !SweepStatus::ToppingUp.is_final());
        let s = Sweep {
            round: 1,
            status: SweepStatus::Swept,
            asset: Asset::Usdt,
            units: 5,
            energy: 130_285,
            energy_price_sun: 100,
            fee_limit_sun: 13_028_500,
            topup_sun: 13_028_500,
            topup_txid: Some("aa".into()),
            topup_fee_sun: 1_100_000,
            sweep_txid: Some("bb".into()),
            energy_fee_sun: 13_028_500,
            reason: None,
            started_at_ms: 1,
            updated_at_ms: 2,
        };
        assert_eq!(s.cost_sun(), 14_128_500);
        let v = s.view();
        assert_eq!(v["status"], "swept");
        assert_eq!(v["cost_sun"], "14128500");
        assert_eq!(v["swept_units"], "5");
    }
}
