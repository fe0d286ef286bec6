//! Balances the double holds: TRX per account and TRC-20 per (token, account), seeded from
//! `--accounts FILE`:
//!
//! ```json
//! {"trx": {"T…": "1000000000"}, "trc20": {"T<token>": {"T…": "5000000"}}}
//! ```
//!
//! Amounts are base units (sun, token units) as decimal strings (JSON integers are also
//! accepted). A token appears in `trc20` to exist: a TriggerSmartContract to any other
//! contract address is refused with CONTRACT_VALIDATE_ERROR, as a node refuses a call to
//! an address with no contract.

use std::collections::HashMap;

use serde_json::Value;
use tron_proto::{Address, U256};

/// Why an accounts file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    #[error("accounts file is not JSON: {0}")]
    NotJson(String),
    #[error("accounts file: {0}")]
    Invalid(String),
}

impl AccountsError {
    pub fn code(&self) -> &'static str {
        match self {
            AccountsError::NotJson(_) => "accounts_not_json",
            AccountsError::Invalid(_) => "accounts_invalid",
        }
    }
}

/// All balances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    trx: HashMap<Address, u128>,
    trc20: HashMap<Address, HashMap<Address, U256>>,
}

impl Accounts {
    pub fn from_json(bytes: &[u8]) -> Result<Accounts, AccountsError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| AccountsError::NotJson(e.to_string()))?;
        let Value::Object(top) = v else {
            return Err(AccountsError::Invalid("top level is not an object".into()));
        };
        let mut acc = Accounts::default();
        for (k, v) in &top {
            match k.as_str() {
                "trx" => {
                    for (a, amount) in object(v, "trx")? {
                        let n = amount_of(amount, a)?;
                        let n = u128::try_from(n).map_err(|_| {
                            AccountsError::Invalid(format!("trx balance of {a} is too large"))
                        })?;
                        acc.trx.insert(address(a)?, n);
                    }
                }
                "trc20" => {
                    for (token, holders) in object(v, "trc20")? {
                        let t = acc.trc20.entry(address(token)?).or_default();
                        for (a, amount) in object(holders, token)? {
                            t.insert(address(a)?, amount_of(amount, a)?);
                        }
                    }
                }
                other => {
                    return Err(AccountsError::Invalid(format!(
                        "unknown member {other:?} (expected trx, trc20)"
                    )))
                }
            }
        }
        Ok(acc)
    }

    /// Whether `a` has an account: seeded under `trx`, or created by a TRX transfer to
    /// it. A token balance alone creates none (as on Tron, TRC-20 transfers do not).
    pub fn exists(&self, a: &Address) -> bool {
        self.trx.contains_key(a)
    }

    /// Removes the account of `a` if it holds no TRX (undoing the transfer that created it).
    pub(crate) fn remove_if_empty(&mut self, a: &Address) {
        if self.trx.get(a) == Some(&0) {
            self.trx.remove(a);
        }
    }

    pub fn trx(&self, a: &Address) -> u128 {
        self.trx.get(a).copied().unwrap_or(0)
    }

    pub fn trc20(&self, token: &Address, a: &Address) -> U256 {
        self.trc20
            .get(token)
            .and_then(|t| t.get(a))
            .copied()
            .unwrap_or(U256::ZERO)
    }

    /// True when `token` was seeded as a TRC-20 contract.
    pub fn is_token(&self, token: &Address) -> bool {
        self.trc20.contains_key(token)
    }

    /// The seeded TRC-20 contracts, in address order.
    pub fn tokens(&self) -> Vec<Address> {
        let mut t: Vec<Address> = self.trc20.keys().copied().collect();
        t.sort_by_key(|a| *a.as_bytes());
        t
    }

    /// Makes `token` a contract (with no holders) if it is not one yet.
    pub fn add_token(&mut self, token: Address) {
        self.trc20.entry(token).or_default();
    }

    /// Credits (`credit`) or debits an amount the caller has checked is covered.
    pub(crate) fn add_trx(&mut self, a: &Address, amount: u128, credit: bool) {
        let e = self.trx.entry(*a).or_insert(0);
        *e = if credit {
            e.saturating_add(amount)
        } else {
            e.saturating_sub(amount)
        };
    }

    pub(crate) fn add_trc20(&mut self, token: &Address, a: &Address, amount: U256, credit: bool) {
        let e = self
            .trc20
            .entry(*token)
            .or_default()
            .entry(*a)
            .or_insert(U256::ZERO);
        *e = if credit {
            e.saturating_add(amount)
        } else {
            e.saturating_sub(amount)
        };
    }
}

fn object<'a>(
    v: &'a Value,
    what: &str,
) -> Result<&'a serde_json::Map<String, Value>, AccountsError> {
    v.as_object()
        .ok_or_else(|| AccountsError::Invalid(format!("{what} is not an object")))
}

fn address(s: &str) -> Result<Address, AccountsError> {
    s.parse()
        .map_err(|e| AccountsError::Invalid(format!("bad address {s:?}: {e}")))
}

fn amount_of(v: &Value, who: &str) -> Result<U256, AccountsError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => {
            return Err(AccountsError::Invalid(format!(
                "balance of {who} is not a non-negative integer"
            )))
        }
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccountsError::Invalid(format!(
            "balance of {who} ({text:?}) is not a decimal integer"
        )));
    }
    U256::from_str_radix(&text, 10)
        .map_err(|_| AccountsError::Invalid(format!("balance of {who} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
    const USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";

    #[test]
    fn parses_seed_file() {
        let json = format!(
            r#"{{"trx": {{"{A}": "1000", "{USDT}": 5}}, "trc20": {{"{USDT}": {{"{A}": "7"}}}}}}"#
        );
        let acc = Accounts::from_json(json.as_bytes()).unwrap();
        let a: Address = A.parse().unwrap();
        let t: Address = USDT.parse().unwrap();
        assert_eq!(acc.trx(&a), 1000);
        assert_eq!(acc.trx(&t), 5);
        assert_eq!(acc.trc20(&t, &a), U256::from(7u32));
        assert!(acc.is_token(&t));
        assert!(!acc.is_token(&a));
        assert_eq!(acc.trc20(&a, &a), U256::ZERO);
    }

    #[test]
    fn refuses_bad_seed_files() {
        for bad in [
            "nope".to_owned(),
            "[]".into(),
            r#"{"eth": {}}"#.into(),
            format!(r#"{{"trx": {{"{A}": "-1"}}}}"#),
            format!(r#"{{"trx": {{"{A}": 1.5}}}}"#),
            format!(r#"{{"trx": {{"{A}": "1e3"}}}}"#),
            r#"{"trx": {"Tnope": "1"}}"#.into(),
            format!(r#"{{"trc20": {{"{USDT}": []}}}}"#),
        ] {
            assert!(Accounts::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
