//! What the node says an account holds and what a token transfer would cost: the TRX
//! balance (`/wallet/getaccount`), the energy price (`getEnergyFee` in
//! `/wallet/getchainparameters`), a token balance and a transfer's energy
//! (`/wallet/triggerconstantcontract`).
//!
//! The sweeper plans with these; none of them is a safety check. The node is untrusted:
//! a lying node can make a sweep cost more (a top-up larger than needed, which the gas
//! key's per-transaction cap in the signer's policy bounds) or fail, never move funds
//! anywhere the signer's policy does not allow. Every answer that is not in the
//! documented shape is a [`NodeError::BadResponse`], never a guessed zero.

use serde_json::{json, Value};
use tron_proto::{abi, Address, U256};

use crate::node::{decode_message, Node, NodeError};

/// The energy price's name in `getchainparameters`.
pub const ENERGY_FEE_KEY: &str = "getEnergyFee";

/// What `triggerconstantcontract` of a transfer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Estimate {
    /// The transfer would succeed using this much energy.
    Energy(u64),
    /// It would revert (the message the node gave).
    Reverts(String),
}

fn bad(m: impl Into<String>) -> NodeError {
    NodeError::BadResponse(m.into())
}

fn node_error(v: &Value, what: &str) -> Result<(), NodeError> {
    match v.get("Error").and_then(Value::as_str) {
        Some(e) => Err(bad(format!("{what}: {e}"))),
        None => Ok(()),
    }
}

/// Reads `getEnergyFee` from a `getchainparameters` answer. A listed parameter without
/// `value` is 0 (proto JSON leaves zeros out); one not listed at all is an error.
pub fn parse_energy_fee(v: &Value) -> Result<u64, NodeError> {
    node_error(v, "getchainparameters")?;
    let list = v
        .get("chainParameter")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("getchainparameters: no chainParameter list"))?;
    let entry = list
        .iter()
        .find(|p| p.get("key").and_then(Value::as_str) == Some(ENERGY_FEE_KEY))
        .ok_or_else(|| bad("getchainparameters: getEnergyFee is not listed"))?;
    match entry.get("value") {
        None => Ok(0),
        Some(n) => n
            .as_u64()
            .ok_or_else(|| bad("getchainparameters: getEnergyFee is not a non-negative integer")),
    }
}

/// Reads the TRX balance (sun) from a `getaccount` answer: `{}` is an account that does
/// not exist (0); an account without `balance` holds 0.
pub fn parse_balance(v: &Value) -> Result<u64, NodeError> {
    node_error(v, "getaccount")?;
    let o = v
        .as_object()
        .ok_or_else(|| bad("getaccount: not an object"))?;
    match o.get("balance") {
        None => Ok(0),
        Some(b) => b
            .as_u64()
            .ok_or_else(|| bad("getaccount: balance is not a non-negative integer")),
    }
}

/// Whether a `triggerconstantcontract` answer reports a revert or a refusal, and its text.
fn failure_of(v: &Value) -> Result<Option<String>, NodeError> {
    node_error(v, "triggerconstantcontract")?;
    let result = v
        .get("result")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("triggerconstantcontract: no result object"))?;
    let message = result
        .get("message")
        .and_then(Value::as_str)
        .map(decode_message);
    let ok = result.get("result").and_then(Value::as_bool) == Some(true);
    let failed_ret = v
        .pointer("/transaction/ret/0/ret")
        .and_then(Value::as_str)
        .is_some_and(|r| r != "SUCCESS");
    if !ok || message.is_some() || failed_ret {
        let code = result.get("code").and_then(Value::as_str).unwrap_or("");
        let text = message.unwrap_or_default();
        return Ok(Some(format!("{code} {text}").trim().to_owned()));
    }
    Ok(None)
}

/// Reads a transfer estimate: the energy, or the revert.
pub fn parse_estimate(v: &Value) -> Result<Estimate, NodeError> {
    if let Some(m) = failure_of(v)? {
        return Ok(Estimate::Reverts(m));
    }
    v.get("energy_used")
        .and_then(Value::as_u64)
        .map(Estimate::Energy)
        .ok_or_else(|| bad("triggerconstantcontract: energy_used is missing"))
}

/// Reads a `balanceOf` answer: the first `constant_result` as a 32-byte word.
pub fn parse_token_balance(v: &Value) -> Result<U256, NodeError> {
    if let Some(m) = failure_of(v)? {
        return Err(bad(format!("balanceOf failed: {m}")));
    }
    let word = v
        .pointer("/constant_result/0")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("balanceOf: no constant_result"))?;
    let mut b = [0u8; 32];
    hex::decode_to_slice(word, &mut b)
        .map_err(|_| bad("balanceOf: constant_result is not a 32-byte word"))?;
    Ok(U256::from_be_bytes(b))
}

/// The TRX balance of `a`, in sun (0 when it has no account).
pub async fn trx_balance(node: &Node, a: &Address) -> Result<u64, NodeError> {
    let v = node
        .post(
            "/wallet/getaccount",
            json!({ "address": a.to_base58(), "visible": true }),
        )
        .await?;
    parse_balance(&v)
}

/// The energy price in force, sun per unit.
pub async fn energy_price(node: &Node) -> Result<u64, NodeError> {
    let v = node.post("/wallet/getchainparameters", json!({})).await?;
    parse_energy_fee(&v)
}

fn word(a: &Address) -> String {
    format!("{:0>64}", hex::encode(a.evm_bytes()))
}

/// `token.balanceOf(holder)`.
pub async fn token_balance(
    node: &Node,
    token: &Address,
    holder: &Address,
) -> Result<U256, NodeError> {
    let v = node
        .post(
            "/wallet/triggerconstantcontract",
            json!({
                "owner_address": holder.to_base58(),
                "contract_address": token.to_base58(),
                "function_selector": "balanceOf(address)",
                "parameter": word(holder),
                "visible": true,
            }),
        )
        .await?;
    parse_token_balance(&v)
}

/// What `token.transfer(to, amount)` sent by `owner` would use now.
pub async fn estimate_transfer(
    node: &Node,
    token: &Address,
    owner: &Address,
    to: &Address,
    amount: U256,
) -> Result<Estimate, NodeError> {
    let data = abi::encode_transfer(to, amount);
    let v = node
        .post(
            "/wallet/triggerconstantcontract",
            json!({
                "owner_address": owner.to_base58(),
                "contract_address": token.to_base58(),
                "function_selector": "transfer(address,uint256)",
                "parameter": hex::encode(&data[4..]),
                "visible": true,
            }),
        )
        .await?;
    parse_estimate(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_energy_price_is_read_from_the_list_never_assumed() {
        let v = json!({"chainParameter": [{"key": "getTransactionFee", "value": 1000},
            {"key": "getEnergyFee", "value": 210}]});
        assert_eq!(parse_energy_fee(&v).unwrap(), 210);
        assert_eq!(
            parse_energy_fee(&json!({"chainParameter": [{"key": "getEnergyFee"}]})).unwrap(),
            0
        );
        for bad in [
            json!({}),
            json!({"chainParameter": [{"key": "getTransactionFee", "value": 1}]}),
            json!({"chainParameter": [{"key": "getEnergyFee", "value": -1}]}),
            json!({"Error": "boom"}),
        ] {
            assert_eq!(
                parse_energy_fee(&bad).unwrap_err().code(),
                "node_bad_response",
                "{bad}"
            );
        }
    }

    #[test]
    fn balances_of_accounts_and_tokens() {
        assert_eq!(parse_balance(&json!({})).unwrap(), 0);
        assert_eq!(parse_balance(&json!({"address": "T"})).unwrap(), 0);
        assert_eq!(parse_balance(&json!({"balance": 7})).unwrap(), 7);
        assert!(parse_balance(&json!({"balance": "7"})).is_err());
        assert!(parse_balance(&json!([])).is_err());
        let ok = json!({"result": {"result": true}, "constant_result": [format!("{:064x}", 500)]});
        assert_eq!(parse_token_balance(&ok).unwrap(), U256::from(500u32));
        for bad in [
            json!({"result": {"result": true}, "constant_result": ["12"]}),
            json!({"result": {"result": true}}),
            json!({"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": hex::encode("no")}}),
        ] {
            assert_eq!(
                parse_token_balance(&bad).unwrap_err().code(),
                "node_bad_response"
            );
        }
    }

    #[test]
    fn estimates_and_reverts() {
        let ok = json!({"result": {"result": true}, "energy_used": 64_285,
            "constant_result": [format!("{:064x}", 1)], "transaction": {"ret": [{}]}});
        assert_eq!(parse_estimate(&ok).unwrap(), Estimate::Energy(64_285));
        let reverted = json!({"result": {"result": true, "message": hex::encode("REVERT opcode executed")},
            "energy_used": 14_650, "transaction": {"ret": [{"ret": "FAILED"}]}});
        assert_eq!(
            parse_estimate(&reverted).unwrap(),
            Estimate::Reverts("REVERT opcode executed".into())
        );
        // A failed ret alone is a revert too.
        let failed = json!({"result": {"result": true}, "energy_used": 1,
            "transaction": {"ret": [{"ret": "FAILED"}]}});
        assert!(matches!(
            parse_estimate(&failed).unwrap(),
            Estimate::Reverts(_)
        ));
        let refused = json!({"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": hex::encode("No contract")}});
        assert_eq!(
            parse_estimate(&refused).unwrap(),
            Estimate::Reverts("CONTRACT_VALIDATE_ERROR No contract".into())
        );
        assert!(parse_estimate(&json!({"result": {"result": true}})).is_err());
        assert!(parse_estimate(&json!({"Error": "x"})).is_err());
    }
}
