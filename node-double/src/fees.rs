//! What transactions cost on the double: the chain parameters it prices with, the energy a
//! TRC-20 call uses, and the rule that turns energy into burnt TRX.
//!
//! The model is the part of Tron's resource rules a sweeper depends on, nothing more:
//!
//! - **Energy** is bought by burning TRX at `getEnergyFee` sun per unit (no staking, no
//!   delegated energy, no energy penalty). A `transfer(to, amount)` of a seeded token
//!   uses [`ENERGY_TRANSFER_TO_HOLDER`] when `to` already holds the token and
//!   [`ENERGY_TRANSFER_TO_NEW_HOLDER`] when it holds none (the contract writes a new
//!   storage slot), [`ENERGY_REVERT`] when it reverts. Fixed figures from mainnet USDT,
//!   not a measurement of any code.
//! - The energy a call may buy is capped by `min(owner's TRX, fee_limit)`. A call that
//!   needs more fails `OUT_OF_ENERGY`: the token does not move and the whole cap is
//!   burnt, as on the real chain.
//! - **Account creation**: a TRX transfer to an address with no account creates it and
//!   burns `getCreateAccountFee` (the bandwidth of a creating transaction, which free
//!   bandwidth never covers) plus `getCreateNewAccountFeeInSystemContract` from the sender.
//! - **Bandwidth** otherwise: assumed covered by the daily free bandwidth, so plain TRX
//!   transfers and contract calls burn nothing for it (`getTransactionFee` is served but
//!   not charged).
//!
//! Defaults are mainnet's values (energy 100 sun since 2025-08-29); tests change them with
//! `POST /double/chain_parameters` or the binary's flags.

use tron_proto::Address;

/// Energy of a `transfer` to an address that already holds the token.
pub const ENERGY_TRANSFER_TO_HOLDER: u64 = 64_285;
/// Energy of a `transfer` to an address that holds none of the token yet.
pub const ENERGY_TRANSFER_TO_NEW_HOLDER: u64 = 130_285;
/// Energy of a token call that reverts (short balance, unknown function).
pub const ENERGY_REVERT: u64 = 14_650;
/// Energy a `balanceOf` read reports in `triggerconstantcontract` (a stand-in figure).
pub const ENERGY_BALANCE_OF: u64 = 935;
/// The network's highest `fee_limit`: 15,000 TRX, in sun.
pub const MAX_FEE_LIMIT_SUN: i64 = 15_000 * 1_000_000;
/// What an out-of-energy receipt says, as java-tron words it.
pub const OUT_OF_ENERGY_MESSAGE: &str = "Not enough energy for 'SSTORE' operation executing";

/// The chain parameters the double prices with, as `/wallet/getchainparameters` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    /// `getEnergyFee`: sun per unit of energy.
    pub energy_fee: u64,
    /// `getTransactionFee`: sun per byte of bandwidth (served; free bandwidth covers it).
    pub transaction_fee: u64,
    /// `getCreateAccountFee`: sun burnt for the bandwidth of an account-creating transfer.
    pub create_account_fee: u64,
    /// `getCreateNewAccountFeeInSystemContract`: sun burnt for creating the account.
    pub create_new_account_fee_in_system_contract: u64,
}

impl Default for ChainParams {
    /// Mainnet's values at the end of 2025.
    fn default() -> ChainParams {
        ChainParams {
            energy_fee: 100,
            transaction_fee: 1_000,
            create_account_fee: 100_000,
            create_new_account_fee_in_system_contract: 1_000_000,
        }
    }
}

/// Why a chain parameter could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown chain parameter {0:?} (settable: {list})", list = SETTABLE.join(", "))]
    Unknown(String),
    #[error("chain parameter {0} must be a non-negative integer")]
    NotAnInteger(String),
}

impl ParamError {
    pub fn code(&self) -> &'static str {
        match self {
            ParamError::Unknown(_) => "param_unknown",
            ParamError::NotAnInteger(_) => "param_not_integer",
        }
    }
}

/// The parameters a test may set.
pub const SETTABLE: [&str; 4] = [
    "getEnergyFee",
    "getTransactionFee",
    "getCreateAccountFee",
    "getCreateNewAccountFeeInSystemContract",
];

impl ChainParams {
    /// Everything a transfer to a new account burns from its sender.
    pub fn account_creation_sun(&self) -> u64 {
        self.create_account_fee
            .saturating_add(self.create_new_account_fee_in_system_contract)
    }

    /// Sets parameter `key` to `value`.
    pub fn set(&mut self, key: &str, value: u64) -> Result<(), ParamError> {
        let slot = match key {
            "getEnergyFee" => &mut self.energy_fee,
            "getTransactionFee" => &mut self.transaction_fee,
            "getCreateAccountFee" => &mut self.create_account_fee,
            "getCreateNewAccountFeeInSystemContract" => {
                &mut self.create_new_account_fee_in_system_contract
            }
            other => return Err(ParamError::Unknown(other.into())),
        };
        *slot = value;
        Ok(())
    }

    /// A subset of the `chainParameter` list, in java-tron's order and names: the four
    /// priced here with their values, and a few other fee parameters at mainnet's values.
    /// A parameter whose value is 0 has no `value` member (proto JSON leaves it out).
    pub fn list(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("getMaintenanceTimeInterval", 21_600_000),
            ("getAccountUpgradeCost", 9_999_000_000),
            ("getCreateAccountFee", self.create_account_fee),
            ("getTransactionFee", self.transaction_fee),
            ("getAssetIssueFee", 1_024_000_000),
            (
                "getCreateNewAccountFeeInSystemContract",
                self.create_new_account_fee_in_system_contract,
            ),
            ("getCreateNewAccountBandwidthRate", 1),
            ("getAllowCreationOfContracts", 1),
            ("getEnergyFee", self.energy_fee),
            ("getExchangeCreateFee", 1_024_000_000),
            ("getMaxCpuTimeOfOneTx", 80),
            ("getMemoFee", 1_000_000),
            ("getFreeNetLimit", 600),
        ]
    }
}

/// What one transaction burnt, and from whom. All zero for scripted transactions (their
/// payer is outside the double) except the energy figure their receipt shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fee {
    /// The account the burn is taken from; `None`: nothing is burnt.
    pub payer: Option<Address>,
    /// Energy the call used (`receipt.energy_usage_total`).
    pub energy_usage_total: u64,
    /// Sun burnt for that energy (`receipt.energy_fee`).
    pub energy_fee: u64,
    /// Sun burnt for an account-creating transfer's bandwidth (`receipt.net_fee`).
    pub net_fee: u64,
    /// Sun burnt for creating an account (part of `fee`, not of the receipt).
    pub account_create_fee: u64,
}

impl Fee {
    /// The transaction info's `fee`: everything burnt.
    pub fn total(&self) -> u64 {
        self.energy_fee
            .saturating_add(self.net_fee)
            .saturating_add(self.account_create_fee)
    }
}

/// What a contract call's energy comes to, given what it needs and what may be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergyVerdict {
    /// The call runs; `burn` sun pay for its energy.
    Paid { energy: u64, burn: u64 },
    /// The energy cap ran out first: `burn` (the whole cap) is gone, `energy` is what it
    /// bought.
    OutOfEnergy { energy: u64, burn: u64 },
}

/// Prices `energy` at `price` sun against the cap `min(balance, fee_limit)`.
pub fn price_energy(energy: u64, price: u64, balance: u128, fee_limit: i64) -> EnergyVerdict {
    let cost = energy.saturating_mul(price);
    let limit = u64::try_from(fee_limit.max(0)).unwrap_or(0);
    let cap = u64::try_from(balance).unwrap_or(u64::MAX).min(limit);
    if cost <= cap {
        return EnergyVerdict::Paid { energy, burn: cost };
    }
    let bought = cap.checked_div(price).unwrap_or(energy);
    EnergyVerdict::OutOfEnergy {
        energy: bought,
        burn: cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_paid_up_to_the_smaller_of_balance_and_fee_limit() {
        assert_eq!(
            price_energy(64_285, 100, 10_000_000, 20_000_000),
            EnergyVerdict::Paid {
                energy: 64_285,
                burn: 6_428_500
            }
        );
        // Exactly enough is enough.
        assert_eq!(
            price_energy(64_285, 100, 6_428_500, 6_428_500),
            EnergyVerdict::Paid {
                energy: 64_285,
                burn: 6_428_500
            }
        );
        // One sun short of balance: the whole balance goes.
        assert_eq!(
            price_energy(64_285, 100, 6_428_499, 20_000_000),
            EnergyVerdict::OutOfEnergy {
                energy: 64_284,
                burn: 6_428_499
            }
        );
        // Fee limit lower than the cost: the fee limit goes, not the balance.
        assert_eq!(
            price_energy(130_285, 100, 50_000_000, 1_000_000),
            EnergyVerdict::OutOfEnergy {
                energy: 10_000,
                burn: 1_000_000
            }
        );
        assert_eq!(
            price_energy(64_285, 0, 0, 0),
            EnergyVerdict::Paid {
                energy: 64_285,
                burn: 0
            }
        );
        assert_eq!(
            price_energy(64_285, 100, 5, -1),
            EnergyVerdict::OutOfEnergy { energy: 0, burn: 0 }
        );
    }

    #[test]
    fn parameters_are_listed_and_set_by_their_java_tron_names() {
        let mut p = ChainParams::default();
        assert_eq!(p.account_creation_sun(), 1_100_000);
        p.set("getEnergyFee", 420).unwrap();
        assert!(p.list().contains(&("getEnergyFee", 420)));
        assert_eq!(p.set("getNope", 1).unwrap_err().code(), "param_unknown");
        assert_eq!(
            ParamError::NotAnInteger("x".into()).code(),
            "param_not_integer"
        );
        let f = Fee {
            payer: None,
            energy_usage_total: 1,
            energy_fee: 100,
            net_fee: 100_000,
            account_create_fee: 1_000_000,
        };
        assert_eq!(f.total(), 1_100_100);
    }
}
