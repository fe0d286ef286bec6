//! The read-only endpoints a sweeper prices its work with, as java-tron shapes them:
//! `getchainparameters`, `getaccount` and `triggerconstantcontract` (for the seeded tokens'
//! `balanceOf(address)` and `transfer(address,uint256)`). Pure: a chain and a request body
//! in, the answer's JSON out; [`crate::http`] serves them.

use serde_json::{json, Value};
use tron_proto::{abi, Address, U256};

use crate::chain::{Chain, REVERT_MESSAGE};
use crate::fees::{self, ChainParams};

/// `balanceOf(address)`.
pub const SELECTOR_BALANCE_OF: [u8; 4] = [0x70, 0xa0, 0x82, 0x31];
/// The text of `balanceOf`, as a `function_selector` names it.
const BALANCE_OF: &str = "balanceOf(address)";
const TRANSFER: &str = "transfer(address,uint256)";

/// `{"chainParameter": [{"key", "value"?}, …]}`.
pub fn chain_parameters(p: &ChainParams) -> Value {
    let list: Vec<Value> = p
        .list()
        .into_iter()
        .map(|(key, value)| {
            if value == 0 {
                json!({ "key": key })
            } else {
                json!({ "key": key, "value": value })
            }
        })
        .collect();
    json!({ "chainParameter": list })
}

/// An address member: Base58 with `visible`, else hex with the `41` prefix.
fn address_at(body: &Value, key: &str, visible: bool) -> Result<Address, String> {
    let text = body
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key} is required"))?;
    let parsed = if visible {
        Address::from_base58(text).map_err(|e| e.to_string())
    } else {
        hex::decode(text)
            .map_err(|e| e.to_string())
            .and_then(|b| Address::from_bytes(&b).map_err(|e| e.to_string()))
    };
    parsed.map_err(|e| {
        format!(
            "{key} is not a {} address: {e}",
            if visible { "Base58" } else { "hex" }
        )
    })
}

fn show(a: &Address, visible: bool) -> Value {
    if visible {
        Value::String(a.to_base58())
    } else {
        Value::String(hex::encode(a.as_bytes()))
    }
}

/// `getaccount {address, visible?}`: `{}` when the account does not exist; otherwise its
/// address and `balance` in sun (left out at 0, as proto JSON does). `Err` is the text of
/// an `{"Error": …}` answer.
pub fn account(chain: &Chain, body: &Value) -> Result<Value, String> {
    let visible = body
        .get("visible")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let a = address_at(body, "address", visible)?;
    let acc = chain.accounts();
    if !acc.exists(&a) {
        return Ok(json!({}));
    }
    let mut v = json!({ "address": show(&a, visible) });
    let balance = acc.trx(&a);
    if balance > 0 {
        v["balance"] = json!(u64::try_from(balance).unwrap_or(u64::MAX));
    }
    Ok(v)
}

/// The call data of a `triggerconstantcontract` body: `data`, or `function_selector`
/// (its text hashed to the 4-byte selector) followed by `parameter`.
fn call_data(body: &Value) -> Result<Vec<u8>, String> {
    if let Some(d) = body.get("data").and_then(Value::as_str) {
        return hex::decode(d).map_err(|e| format!("data is not hex: {e}"));
    }
    let selector = body
        .get("function_selector")
        .and_then(Value::as_str)
        .ok_or("function_selector or data is required")?;
    let mut data = match selector.replace(' ', "").as_str() {
        BALANCE_OF => SELECTOR_BALANCE_OF.to_vec(),
        TRANSFER => abi::SELECTOR_TRANSFER.to_vec(),
        // Any other function: a selector no seeded token has, so the call reverts.
        _ => vec![0xff; 4],
    };
    let parameter = body.get("parameter").and_then(Value::as_str).unwrap_or("");
    data.extend(hex::decode(parameter).map_err(|e| format!("parameter is not hex: {e}"))?);
    Ok(data)
}

fn address_word(w: &[u8]) -> Option<Address> {
    if w.len() != 32 || w[..12].iter().any(|b| *b != 0) {
        return None;
    }
    let mut evm = [0u8; 20];
    evm.copy_from_slice(&w[12..]);
    Some(Address::from_evm(evm))
}

/// `triggerconstantcontract`: runs `balanceOf` or `transfer` of a seeded token against
/// the last block's balances without changing anything.
///
/// - success: `{"result": {"result": true}, "energy_used", "constant_result": [word],
///   "transaction": {"ret": [{}]}}`;
/// - revert (short balance, another function): `result.message` is set (hex, or text with
///   `visible`), `constant_result` is `[""]` and `transaction.ret[0].ret` is `FAILED`;
/// - not a seeded token: `{"result": {"code": "CONTRACT_VALIDATE_ERROR", "message"}}`.
///
/// `Err` is the text of an `{"Error": …}` answer (malformed addresses or hex).
pub fn constant_call(chain: &Chain, body: &Value) -> Result<Value, String> {
    let visible = body
        .get("visible")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let owner = address_at(body, "owner_address", visible)?;
    let contract = address_at(body, "contract_address", visible)?;
    let data = call_data(body)?;
    let message = |text: &str| {
        if visible {
            Value::String(text.into())
        } else {
            Value::String(hex::encode(text))
        }
    };
    if !chain.accounts().is_token(&contract) {
        return Ok(json!({ "result": {
            "code": "CONTRACT_VALIDATE_ERROR",
            "message": message("No contract or not a valid smart contract"),
        }}));
    }
    let answer = if data.len() == 36 && data[..4] == SELECTOR_BALANCE_OF {
        address_word(&data[4..])
            .map(|who| {
                let units = chain.accounts().trc20(&contract, &who);
                Ok((units.to_be_bytes().to_vec(), fees::ENERGY_BALANCE_OF))
            })
            .unwrap_or(Err(fees::ENERGY_REVERT))
    } else if data.len() == abi::TRANSFER_CALL_LEN && data[..4] == abi::SELECTOR_TRANSFER {
        let mut amount = [0u8; 32];
        amount.copy_from_slice(&data[36..68]);
        match address_word(&data[4..36]) {
            Some(to) => chain
                .estimate_transfer(&owner, &contract, &to, U256::from_be_bytes(amount))
                .map(|energy| (U256::ONE.to_be_bytes().to_vec(), energy)),
            None => Err(fees::ENERGY_REVERT),
        }
    } else {
        Err(fees::ENERGY_REVERT)
    };
    Ok(match answer {
        Ok((word, energy)) => json!({
            "result": { "result": true },
            "energy_used": energy,
            "constant_result": [hex::encode(word)],
            "transaction": { "ret": [{}], "visible": visible },
        }),
        Err(energy) => json!({
            "result": { "result": true, "message": message(REVERT_MESSAGE) },
            "energy_used": energy,
            "constant_result": [""],
            "transaction": { "ret": [{ "ret": "FAILED" }], "visible": visible },
        }),
    })
}
