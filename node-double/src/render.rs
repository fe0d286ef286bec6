//! The JSON shapes java-tron's HTTP API gives blocks, transactions and transaction infos.
//!
//! `visible` is the request flag of the same name: addresses in Base58 (`T…`) when true,
//! hex with the `41` prefix when false (the default), TRC-10 asset names as text or hex
//! likewise. Log addresses are always 20 bytes of hex without `41`, as on a real node.

use prost::Message;
use serde_json::{json, Value};
use tron_proto::pb::{transaction, TransferContract, TriggerSmartContract};
use tron_proto::Address;

use crate::chain::{Block, Receipt, Transfer, TxInfo};
use crate::sim::TransferAssetContract;

fn addr(bytes: &[u8], visible: bool) -> Value {
    match Address::from_bytes(bytes) {
        Ok(a) if visible => Value::String(a.to_base58()),
        _ => Value::String(hex::encode(bytes)),
    }
}

/// A block as `getblockbynum` / `getnowblock` answer it; `transactions` is left out when
/// empty, as java-tron's proto JSON does.
pub fn block_json(b: &Block, txs: &[TxInfo], visible: bool) -> Value {
    let witness = Address::from_evm([0x5e; 20]);
    let mut v = json!({
        "blockID": hex::encode(b.id),
        "block_header": {
            "raw_data": {
                "number": b.number,
                "txTrieRoot": "00".repeat(32),
                "witness_address": addr(witness.as_bytes(), visible),
                "parentHash": hex::encode(b.parent),
                "version": 32,
                "timestamp": b.timestamp,
            },
            "witness_signature": "00".repeat(65),
        },
    });
    if !txs.is_empty() {
        v["transactions"] = txs.iter().map(|t| tx_json(t, visible)).collect();
    }
    v
}

/// One transaction inside a block.
pub fn tx_json(i: &TxInfo, visible: bool) -> Value {
    let raw = transaction::Raw::decode(i.raw.as_slice()).unwrap_or_default();
    let contracts: Vec<Value> = raw
        .contract
        .iter()
        .map(|c| contract_json(c, visible))
        .collect();
    let mut raw_json = json!({
        "contract": contracts,
        "ref_block_bytes": hex::encode(&raw.ref_block_bytes),
        "ref_block_hash": hex::encode(&raw.ref_block_hash),
        "expiration": raw.expiration,
        "timestamp": raw.timestamp,
    });
    if raw.fee_limit != 0 {
        raw_json["fee_limit"] = json!(raw.fee_limit);
    }
    json!({
        "ret": [{ "contractRet": i.receipt.as_str() }],
        "signature": i.signature.iter().map(hex::encode).collect::<Vec<_>>(),
        "txID": hex::encode(i.txid),
        "raw_data": raw_json,
        "raw_data_hex": hex::encode(&i.raw),
    })
}

fn contract_json(c: &transaction::Contract, visible: bool) -> Value {
    let (type_url, value) = c
        .parameter
        .as_ref()
        .map(|p| (p.type_url.as_str(), p.value.as_slice()))
        .unwrap_or(("", &[]));
    let name = tron_proto::contract_type::name(c.r#type).unwrap_or("UnknownContract");
    let value = match c.r#type {
        1 => {
            let t = TransferContract::decode(value).unwrap_or_default();
            json!({
                "amount": t.amount,
                "owner_address": addr(&t.owner_address, visible),
                "to_address": addr(&t.to_address, visible),
            })
        }
        2 => {
            let t = TransferAssetContract::decode(value).unwrap_or_default();
            let name = if visible {
                Value::String(String::from_utf8_lossy(&t.asset_name).into_owned())
            } else {
                Value::String(hex::encode(&t.asset_name))
            };
            json!({
                "amount": t.amount,
                "asset_name": name,
                "owner_address": addr(&t.owner_address, visible),
                "to_address": addr(&t.to_address, visible),
            })
        }
        _ => {
            let t = TriggerSmartContract::decode(value).unwrap_or_default();
            let mut v = json!({
                "data": hex::encode(&t.data),
                "owner_address": addr(&t.owner_address, visible),
                "contract_address": addr(&t.contract_address, visible),
            });
            if t.call_value != 0 {
                v["call_value"] = json!(t.call_value);
            }
            v
        }
    };
    json!({
        "parameter": { "value": value, "type_url": type_url },
        "type": name,
    })
}

/// A transaction info as `gettransactioninfobyid` and `gettransactioninfobyblocknum`
/// answer it.
pub fn info_json(i: &TxInfo) -> Value {
    let mut v = json!({
        "id": hex::encode(i.txid),
        "blockNumber": i.block_number,
        "blockTimeStamp": i.block_timestamp,
    });
    let contract = match &i.transfer {
        Transfer::Trc20 { token, .. } => Some(token),
        Transfer::Call { contract, .. } => Some(contract),
        Transfer::Trx { .. } | Transfer::Trc10 { .. } => None,
    };
    match contract {
        // Real nodes leave `receipt.result` out for plain TRX (and TRC-10) transfers: only
        // bandwidth figures are there, so clients that insist on it are caught here. A
        // transfer that created its recipient's account paid its bandwidth by burning
        // (`net_fee`) instead of using free bandwidth (`net_usage`).
        None => {
            v["receipt"] = if i.fee.net_fee > 0 {
                json!({ "net_fee": i.fee.net_fee })
            } else {
                json!({ "net_usage": 268 })
            };
            v["contractResult"] = json!([""]);
            if i.receipt != Receipt::Success {
                v["receipt"]["result"] = json!(i.receipt.as_str());
            }
        }
        Some(c) => {
            v["contract_address"] = Value::String(c.to_hex());
            let ok = i.receipt == Receipt::Success;
            v["receipt"] = json!({
                "energy_usage_total": i.fee.energy_usage_total,
                "net_usage": 345,
                "result": i.receipt.as_str(),
            });
            if i.fee.energy_fee > 0 {
                v["receipt"]["energy_fee"] = json!(i.fee.energy_fee);
            }
            let result = if ok && matches!(i.transfer, Transfer::Trc20 { .. }) {
                format!("{:064x}", 1)
            } else {
                String::new()
            };
            v["contractResult"] = json!([result]);
        }
    }
    // Everything burnt, in sun; left out when nothing was (proto JSON omits zeros).
    if i.fee.total() > 0 {
        v["fee"] = json!(i.fee.total());
    }
    if !i.logs.is_empty() {
        v["log"] = i
            .logs
            .iter()
            .map(|l| {
                json!({
                    "address": hex::encode(l.address.evm_bytes()),
                    "topics": l.topics.iter().map(hex::encode).collect::<Vec<_>>(),
                    "data": hex::encode(&l.data),
                })
            })
            .collect();
    }
    if i.receipt != Receipt::Success {
        v["result"] = Value::String("FAILED".into());
        v["resMessage"] = Value::String(hex::encode(i.res_message.as_deref().unwrap_or("")));
    }
    v
}
