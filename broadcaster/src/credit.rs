//! What a block pays to our deposit addresses, decided on the node's own data: the block
//! (`/wallet/getblockbynum`, `visible` false, so addresses are hex) and its transaction
//! infos (`/wallet/gettransactioninfobyblocknum`). Pure: no I/O.
//!
//! Why these rules (issue 15):
//! - A token credit comes only from a `Transfer(address,address,uint256)` log emitted by
//!   the configured contract in a transaction whose receipt and block result both say
//!   `SUCCESS`. The log is what the token contract itself recorded, so a transfer made by
//!   another contract calling the token (a batcher, an exchange's sweeper) counts, while
//!   the top-level call data proves nothing: it may revert, or call a contract that only
//!   looks like the token. Name and symbol are never consulted; only the address.
//! - A TRX credit comes only from a top-level `TransferContract` whose block result is
//!   `SUCCESS`. A TRC-10 asset (`TransferAssetContract`), whatever it is called, is never
//!   a credit.
//! - Zero-value transfers are dropped: they are how address poisoning fills a history
//!   with look-alike senders, and they pay nothing.
//! - Each credit is keyed by txid and log index (the log's position in its transaction's
//!   `log` array), so two transfers in one transaction are two credits, and seeing a block
//!   twice produces the same keys.
//! - Input that does not have the shape the node documents (a missing or mistyped field,
//!   bad hex, infos that do not match the block's transactions, a token `Transfer` log
//!   with the wrong number of topics, a success flag missing where a credit depends on it)
//!   is an error with its own code: the watcher stops on it rather than guess.
//!
//! Un-seeing credits of a replaced block is the tracker's job ([`crate::chain`]); each
//! credit carries its block id for that.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use tron_proto::{Address, U256};

use crate::chain::{BlockId, BlockRef};

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: [u8; 32] = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
    0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];
const SUCCESS: &str = "SUCCESS";
const FAILED: &str = "FAILED";
const TRANSFER_CONTRACT: &str = "TransferContract";

/// What was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditAsset {
    /// TRX, in sun.
    Trx,
    /// The configured TRC-20 token, in its base units.
    Token,
}

/// One payment to one of our addresses; `(txid, log_index)` is its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub txid: [u8; 32],
    /// The log's index in its transaction's logs (token credits); `None` for TRX.
    pub log_index: Option<u32>,
    pub to: Address,
    pub asset: CreditAsset,
    pub amount: U256,
    pub block_number: u64,
    pub block_id: BlockId,
}

/// Why a block's data was refused. `field` names where, as a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditError {
    #[error("{field} is missing")]
    Missing { field: String },
    #[error("{field} has the wrong JSON type")]
    WrongType { field: String },
    #[error("{field} is not hex of the expected length")]
    BadHex { field: String },
    #[error("{field} is not a hex Tron address (ask the node with visible=false)")]
    BadAddress { field: String },
    #[error("blockID does not start with the block number {number}")]
    BlockIdNumber { number: u64 },
    #[error("transaction {txid} has {count} contracts, not 1")]
    ContractCount { txid: String, count: usize },
    #[error("transaction {txid} appears twice")]
    DuplicateTransaction { txid: String },
    #[error("the block has {transactions} transactions but {infos} transaction infos")]
    InfoCount { transactions: usize, infos: usize },
    #[error("transaction {txid} has no transaction info, or it appears twice")]
    InfoMismatch { txid: String },
    #[error("the info of transaction {txid} is for block {info_block}, not {block}")]
    InfoBlock {
        txid: String,
        info_block: u64,
        block: u64,
    },
    #[error("transaction {txid} would credit us but its {field} is missing")]
    StatusMissing { txid: String, field: &'static str },
    #[error("transaction {txid}: the block says {block:?}, the receipt says {receipt:?}")]
    StatusConflict {
        txid: String,
        block: String,
        receipt: String,
    },
    #[error("log {log_index} of transaction {txid} is a malformed token Transfer: {why}")]
    MalformedTransfer {
        txid: String,
        log_index: usize,
        why: &'static str,
    },
    #[error("transaction {txid}: TRX amount {amount} is negative")]
    NegativeAmount { txid: String, amount: i64 },
}

impl CreditError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CreditError::Missing { .. } => "chain_field_missing",
            CreditError::WrongType { .. } => "chain_field_wrong_type",
            CreditError::BadHex { .. } => "chain_bad_hex",
            CreditError::BadAddress { .. } => "chain_bad_address",
            CreditError::BlockIdNumber { .. } => "block_id_number_mismatch",
            CreditError::ContractCount { .. } => "tx_contract_count",
            CreditError::DuplicateTransaction { .. } => "tx_duplicate",
            CreditError::InfoCount { .. } => "tx_info_count_mismatch",
            CreditError::InfoMismatch { .. } => "tx_info_mismatch",
            CreditError::InfoBlock { .. } => "tx_info_block_mismatch",
            CreditError::StatusMissing { .. } => "tx_status_missing",
            CreditError::StatusConflict { .. } => "tx_status_conflict",
            CreditError::MalformedTransfer { .. } => "transfer_log_malformed",
            CreditError::NegativeAmount { .. } => "trx_amount_negative",
        }
    }
}

type Obj = Map<String, Value>;

fn missing(field: impl Into<String>) -> CreditError {
    CreditError::Missing {
        field: field.into(),
    }
}

fn wrong(field: impl Into<String>) -> CreditError {
    CreditError::WrongType {
        field: field.into(),
    }
}

fn get<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a Value, CreditError> {
    o.get(key).ok_or_else(|| missing(format!("{path}.{key}")))
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, CreditError> {
    v.as_object().ok_or_else(|| wrong(path))
}

fn obj_at<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a Obj, CreditError> {
    obj(get(o, key, path)?, &format!("{path}.{key}"))
}

fn str_at<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a str, CreditError> {
    get(o, key, path)?
        .as_str()
        .ok_or_else(|| wrong(format!("{path}.{key}")))
}

/// An optional string field: absent is `None`, present but not a string is an error.
fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, CreditError> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| wrong(format!("{path}.{key}"))),
    }
}

/// An optional array field: absent is empty.
fn opt_array<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a [Value], CreditError> {
    match o.get(key) {
        None => Ok(&[]),
        Some(v) => v
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| wrong(format!("{path}.{key}"))),
    }
}

fn u64_at(o: &Obj, key: &str, path: &str) -> Result<u64, CreditError> {
    get(o, key, path)?
        .as_u64()
        .ok_or_else(|| wrong(format!("{path}.{key}")))
}

/// Exactly `N` bytes of hex (no `0x`; either case).
fn hex_n<const N: usize>(s: &str, field: &str) -> Result<[u8; N], CreditError> {
    let bad = || CreditError::BadHex {
        field: field.into(),
    };
    if s.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
    Ok(out)
}

fn hex_address(s: &str, field: &str) -> Result<Address, CreditError> {
    let bad = || CreditError::BadAddress {
        field: field.into(),
    };
    if s.len() != 42 {
        return Err(bad());
    }
    Address::from_hex(s).map_err(|_| bad())
}

/// The block's number, id and parent, checked against each other.
pub fn block_ref(block: &Value) -> Result<BlockRef, CreditError> {
    let b = obj(block, "block")?;
    let raw = obj_at(
        obj_at(b, "block_header", "block")?,
        "raw_data",
        "block.block_header",
    )?;
    let number = u64_at(raw, "number", "block.block_header.raw_data")?;
    let id = hex_n::<32>(str_at(b, "blockID", "block")?, "block.blockID")?;
    let parent = hex_n::<32>(
        str_at(raw, "parentHash", "block.block_header.raw_data")?,
        "block.block_header.raw_data.parentHash",
    )?;
    if id[..8] != number.to_be_bytes() {
        return Err(CreditError::BlockIdNumber { number });
    }
    Ok(BlockRef { number, id, parent })
}

/// One transaction info, the parts the rules look at.
struct Info<'a> {
    receipt_result: Option<&'a str>,
    failed: bool,
    logs: &'a [Value],
    path: String,
}

/// The block result of a transaction: `ret[0].contractRet`.
fn contract_ret<'a>(tx: &'a Obj, path: &str) -> Result<Option<&'a str>, CreditError> {
    match opt_array(tx, "ret", path)?.first() {
        None => Ok(None),
        Some(r) => opt_str(obj(r, &format!("{path}.ret[0]"))?, "contractRet", path),
    }
}

/// The credits `block` pays to addresses for which `ours` is true: TRX from top-level
/// transfers and `token` from its `Transfer` logs. `infos` is the node's list of
/// transaction infos for the same block.
pub fn credits(
    block: &Value,
    infos: &Value,
    token: &Address,
    ours: impl Fn(&Address) -> bool,
) -> Result<Vec<Credit>, CreditError> {
    let head = block_ref(block)?;
    let b = obj(block, "block")?;
    let txs = opt_array(b, "transactions", "block")?;
    let infos = index_infos(infos, head.number)?;
    if infos.len() != txs.len() {
        return Err(CreditError::InfoCount {
            transactions: txs.len(),
            infos: infos.len(),
        });
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, tx) in txs.iter().enumerate() {
        let path = format!("block.transactions[{i}]");
        let tx = obj(tx, &path)?;
        let txid_hex = str_at(tx, "txID", &path)?;
        let txid = hex_n::<32>(txid_hex, &format!("{path}.txID"))?;
        if !seen.insert(txid) {
            return Err(CreditError::DuplicateTransaction {
                txid: hex::encode(txid),
            });
        }
        let info = infos.get(&txid).ok_or_else(|| CreditError::InfoMismatch {
            txid: hex::encode(txid),
        })?;
        let ret = contract_ret(tx, &path)?;
        let raw = obj_at(tx, "raw_data", &path)?;
        let contracts = opt_array(raw, "contract", &format!("{path}.raw_data"))?;
        // Tron executes exactly one contract per transaction; anything else is not a
        // transaction the node would have produced.
        let [contract] = contracts else {
            return Err(CreditError::ContractCount {
                txid: hex::encode(txid),
                count: contracts.len(),
            });
        };
        let cpath = format!("{path}.raw_data.contract[0]");
        let contract = obj(contract, &cpath)?;
        if str_at(contract, "type", &cpath)? == TRANSFER_CONTRACT {
            if let Some(c) = trx_credit(contract, &cpath, txid, ret, info, &ours)? {
                out.push(Credit {
                    block_number: head.number,
                    block_id: head.id,
                    ..c
                });
            }
        }
        for c in token_credits(info, txid, ret, token, &ours)? {
            out.push(Credit {
                block_number: head.number,
                block_id: head.id,
                ..c
            });
        }
    }
    Ok(out)
}

/// The infos by txid. An empty object is read as an empty list (the node's JSON for an
/// empty message); it then has to match a block without transactions.
fn index_infos(infos: &Value, block: u64) -> Result<HashMap<[u8; 32], Info<'_>>, CreditError> {
    let list: &[Value] = match infos {
        Value::Array(a) => a,
        Value::Object(o) if o.is_empty() => &[],
        _ => return Err(wrong("infos")),
    };
    let mut out = HashMap::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("infos[{i}]");
        let o = obj(v, &path)?;
        let id = hex_n::<32>(str_at(o, "id", &path)?, &format!("{path}.id"))?;
        let info_block = u64_at(o, "blockNumber", &path)?;
        if info_block != block {
            return Err(CreditError::InfoBlock {
                txid: hex::encode(id),
                info_block,
                block,
            });
        }
        let receipt_result = match o.get("receipt") {
            None => None,
            Some(r) => opt_str(obj(r, &format!("{path}.receipt"))?, "result", &path)?,
        };
        let failed = match opt_str(o, "result", &path)? {
            None => false,
            Some(FAILED) => true,
            Some(_) => return Err(wrong(format!("{path}.result"))),
        };
        let info = Info {
            receipt_result,
            failed,
            logs: opt_array(o, "log", &path)?,
            path,
        };
        if out.insert(id, info).is_some() {
            return Err(CreditError::InfoMismatch {
                txid: hex::encode(id),
            });
        }
    }
    Ok(out)
}

fn trx_credit(
    contract: &Obj,
    cpath: &str,
    txid: [u8; 32],
    ret: Option<&str>,
    info: &Info<'_>,
    ours: &impl Fn(&Address) -> bool,
) -> Result<Option<Credit>, CreditError> {
    let vpath = format!("{cpath}.parameter.value");
    let value = obj_at(
        obj_at(contract, "parameter", cpath)?,
        "value",
        &format!("{cpath}.parameter"),
    )?;
    let to = hex_address(
        str_at(value, "to_address", &vpath)?,
        &format!("{vpath}.to_address"),
    )?;
    // proto3 JSON leaves a zero amount out.
    let amount = match value.get("amount") {
        None => 0,
        Some(a) => a.as_i64().ok_or_else(|| wrong(format!("{vpath}.amount")))?,
    };
    if amount < 0 {
        return Err(CreditError::NegativeAmount {
            txid: hex::encode(txid),
            amount,
        });
    }
    if amount == 0 || !ours(&to) {
        return Ok(None);
    }
    match ret {
        None => {
            return Err(CreditError::StatusMissing {
                txid: hex::encode(txid),
                field: "ret[0].contractRet",
            })
        }
        Some(SUCCESS) if !info.failed => {}
        Some(_) => return Ok(None),
    }
    Ok(Some(Credit {
        txid,
        log_index: None,
        to,
        asset: CreditAsset::Trx,
        amount: U256::from(amount as u64),
        block_number: 0,
        block_id: [0; 32],
    }))
}

/// Token credits from the info's logs; status is checked only if one would credit us.
fn token_credits(
    info: &Info<'_>,
    txid: [u8; 32],
    ret: Option<&str>,
    token: &Address,
    ours: &impl Fn(&Address) -> bool,
) -> Result<Vec<Credit>, CreditError> {
    let mut out = Vec::new();
    for (i, log) in info.logs.iter().enumerate() {
        let lpath = format!("{}.log[{i}]", info.path);
        let log = obj(log, &lpath)?;
        // The log address is the emitting contract's 20 bytes, without the 0x41 prefix.
        let emitter = hex_n::<20>(str_at(log, "address", &lpath)?, &format!("{lpath}.address"))?;
        if emitter != token.evm_bytes() {
            continue;
        }
        let topics = opt_array(log, "topics", &lpath)?;
        let topic = |k: usize| -> Result<[u8; 32], CreditError> {
            let field = format!("{lpath}.topics[{k}]");
            let s = topics
                .get(k)
                .ok_or_else(|| missing(field.as_str()))?
                .as_str()
                .ok_or_else(|| wrong(field.as_str()))?;
            hex_n::<32>(s, &field)
        };
        if topics.is_empty() || topic(0)? != TRANSFER_TOPIC {
            continue;
        }
        let malformed = |why| CreditError::MalformedTransfer {
            txid: hex::encode(txid),
            log_index: i,
            why,
        };
        if topics.len() != 3 {
            return Err(malformed("not 3 topics"));
        }
        let to_word = topic(2)?;
        let from_word = topic(1)?;
        if to_word[..12] != [0; 12] || from_word[..12] != [0; 12] {
            return Err(malformed("an address topic is not a 20-byte address word"));
        }
        let data = str_at(log, "data", &lpath)?;
        let amount = U256::from_be_bytes(
            hex_n::<32>(data, &format!("{lpath}.data"))
                .map_err(|_| malformed("data is not one 32-byte word"))?,
        );
        let mut body = [0u8; 20];
        body.copy_from_slice(&to_word[12..]);
        let to = Address::from_evm(body);
        if amount == U256::ZERO || !ours(&to) {
            continue;
        }
        if !succeeded(info, txid, ret)? {
            continue;
        }
        let log_index = u32::try_from(i).map_err(|_| malformed("log index beyond u32"))?;
        out.push(Credit {
            txid,
            log_index: Some(log_index),
            to,
            asset: CreditAsset::Token,
            amount,
            block_number: 0,
            block_id: [0; 32],
        });
    }
    Ok(out)
}

/// Whether a contract call succeeded: the receipt and the block must both say SUCCESS
/// (and the info must not say FAILED). Either missing is an error; one SUCCESS against
/// an explicit other result is a conflict, also an error; both other than SUCCESS is a
/// plain failure (REVERT, OUT_OF_ENERGY, ...): no credit.
fn succeeded(info: &Info<'_>, txid: [u8; 32], ret: Option<&str>) -> Result<bool, CreditError> {
    let missing = |field| CreditError::StatusMissing {
        txid: hex::encode(txid),
        field,
    };
    let receipt = info
        .receipt_result
        .ok_or_else(|| missing("receipt.result"))?;
    let block = ret.ok_or_else(|| missing("ret[0].contractRet"))?;
    let ok = receipt == SUCCESS && !info.failed;
    if ok != (block == SUCCESS) {
        return Err(CreditError::StatusConflict {
            txid: hex::encode(txid),
            block: block.into(),
            receipt: if info.failed {
                format!("{receipt} (result FAILED)")
            } else {
                receipt.into()
            },
        });
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, Step};
    use serde_json::json;

    const NUMBER: u64 = 70_000_000;

    fn token() -> Address {
        // Mainnet USDT.
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t".parse().unwrap()
    }
    /// A look-alike token: same name and symbol, another address.
    fn fake_token() -> Address {
        Address::from_evm([0x7e; 20])
    }
    fn batcher() -> Address {
        Address::from_evm([0xba; 20])
    }
    fn ours() -> Address {
        Address::from_evm([0x11; 20])
    }
    fn other() -> Address {
        Address::from_evm([0x22; 20])
    }
    fn sender() -> Address {
        Address::from_evm([0x33; 20])
    }
    fn is_ours(a: &Address) -> bool {
        *a == ours()
    }

    fn block_id(number: u64, fork: u8) -> [u8; 32] {
        let mut id = [fork; 32];
        id[..8].copy_from_slice(&number.to_be_bytes());
        id
    }
    fn txid(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn block_fork(fork: u8, txs: Vec<Value>) -> Value {
        json!({
            "blockID": hex::encode(block_id(NUMBER, fork)),
            "block_header": {"raw_data": {
                "number": NUMBER,
                "parentHash": hex::encode(block_id(NUMBER - 1, 0)),
                "timestamp": 1_700_000_000_000u64,
            }},
            "transactions": txs,
        })
    }
    fn block(txs: Vec<Value>) -> Value {
        block_fork(0, txs)
    }

    fn tx(n: u8, ty: &str, value: Value, ret: Option<&str>) -> Value {
        let mut t = json!({
            "txID": hex::encode(txid(n)),
            "raw_data": {"contract": [{
                "type": ty,
                "parameter": {"value": value, "type_url": format!("type.googleapis.com/protocol.{ty}")},
            }]},
        });
        if let Some(r) = ret {
            t["ret"] = json!([{"contractRet": r}]);
        }
        t
    }
    fn trx_tx(n: u8, to: &Address, amount: i64, ret: &str) -> Value {
        let mut v = json!({"owner_address": sender().to_hex(), "to_address": to.to_hex()});
        if amount != 0 {
            v["amount"] = json!(amount);
        }
        tx(n, "TransferContract", v, Some(ret))
    }
    fn call_tx(n: u8, contract: &Address, data: &str, ret: &str) -> Value {
        tx(
            n,
            "TriggerSmartContract",
            json!({"owner_address": sender().to_hex(), "contract_address": contract.to_hex(), "data": data}),
            Some(ret),
        )
    }

    fn info(n: u8, receipt: Option<&str>, failed: bool, logs: Vec<Value>) -> Value {
        let mut i = json!({"id": hex::encode(txid(n)), "blockNumber": NUMBER, "fee": 1, "receipt": {"net_usage": 345}});
        if let Some(r) = receipt {
            i["receipt"]["result"] = json!(r);
            i["receipt"]["energy_usage_total"] = json!(64_285);
        }
        if failed {
            i["result"] = json!("FAILED");
        }
        if !logs.is_empty() {
            i["log"] = json!(logs);
        }
        i
    }
    fn word(a: &Address) -> String {
        format!("{:0>64}", hex::encode(a.evm_bytes()))
    }
    fn transfer_log(emitter: &Address, from: &Address, to: &Address, amount: u64) -> Value {
        json!({
            "address": hex::encode(emitter.evm_bytes()),
            "topics": [hex::encode(TRANSFER_TOPIC), word(from), word(to)],
            "data": format!("{amount:064x}"),
        })
    }

    fn token_credit(n: u8, log_index: u32, amount: u64) -> Credit {
        Credit {
            txid: txid(n),
            log_index: Some(log_index),
            to: ours(),
            asset: CreditAsset::Token,
            amount: U256::from(amount),
            block_number: NUMBER,
            block_id: block_id(NUMBER, 0),
        }
    }

    fn run(block: &Value, infos: Vec<Value>) -> Result<Vec<Credit>, CreditError> {
        credits(block, &json!(infos), &token(), is_ours)
    }

    fn transfer_data(to: &Address, amount: u64) -> String {
        hex::encode(tron_proto::abi::encode_transfer(to, U256::from(amount)))
    }

    #[test]
    fn the_transfer_topic_is_the_documented_one() {
        assert_eq!(
            hex::encode(TRANSFER_TOPIC),
            "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
    }

    // ---- what credits ----

    #[test]
    fn a_direct_token_transfer() {
        let b = block(vec![call_tx(
            1,
            &token(),
            &transfer_data(&ours(), 5_000_000),
            SUCCESS,
        )]);
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![transfer_log(&token(), &sender(), &ours(), 5_000_000)],
        );
        assert_eq!(
            run(&b, vec![i]).unwrap(),
            vec![token_credit(1, 0, 5_000_000)]
        );
    }

    #[test]
    fn a_transfer_emitted_by_another_contract_calling_the_token() {
        // The top-level call goes to a batcher; the token's own log is what counts.
        let b = block(vec![call_tx(1, &batcher(), "deadbeef", SUCCESS)]);
        let batcher_event = json!({"address": hex::encode(batcher().evm_bytes()), "topics": [hex::encode([9u8; 32])], "data": ""});
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![
                batcher_event,
                transfer_log(&token(), &batcher(), &ours(), 42),
            ],
        );
        assert_eq!(run(&b, vec![i]).unwrap(), vec![token_credit(1, 1, 42)]);
    }

    #[test]
    fn two_transfers_in_one_transaction_are_two_credits() {
        let b = block(vec![call_tx(1, &batcher(), "", SUCCESS)]);
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![
                transfer_log(&token(), &batcher(), &ours(), 7),
                transfer_log(&token(), &batcher(), &other(), 8),
                transfer_log(&token(), &batcher(), &ours(), 7),
            ],
        );
        assert_eq!(
            run(&b, vec![i]).unwrap(),
            vec![token_credit(1, 0, 7), token_credit(1, 2, 7)]
        );
    }

    #[test]
    fn a_trx_transfer_to_our_address() {
        let b = block(vec![
            trx_tx(1, &ours(), 1_500_000, SUCCESS),
            trx_tx(2, &other(), 9, SUCCESS),
        ]);
        let credits = run(
            &b,
            vec![info(1, None, false, vec![]), info(2, None, false, vec![])],
        )
        .unwrap();
        assert_eq!(
            credits,
            vec![Credit {
                txid: txid(1),
                log_index: None,
                to: ours(),
                asset: CreditAsset::Trx,
                amount: U256::from(1_500_000u64),
                block_number: NUMBER,
                block_id: block_id(NUMBER, 0),
            }]
        );
    }

    #[test]
    fn an_empty_block_credits_nothing() {
        let mut b = block(vec![]);
        b.as_object_mut().unwrap().remove("transactions");
        assert_eq!(run(&b, vec![]).unwrap(), vec![]);
        assert_eq!(credits(&b, &json!({}), &token(), is_ours).unwrap(), vec![]);
    }

    // ---- what never credits ----

    #[test]
    fn never_a_look_alike_token() {
        let b = block(vec![call_tx(
            1,
            &fake_token(),
            &transfer_data(&ours(), 5),
            SUCCESS,
        )]);
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![transfer_log(&fake_token(), &sender(), &ours(), 5)],
        );
        assert_eq!(run(&b, vec![i]).unwrap(), vec![]);
    }

    #[test]
    fn never_a_trc10_asset_named_usdt() {
        let value = json!({
            "owner_address": sender().to_hex(),
            "to_address": ours().to_hex(),
            "asset_name": hex::encode("USDT"),
            "amount": 1_000_000,
        });
        let b = block(vec![tx(1, "TransferAssetContract", value, Some(SUCCESS))]);
        assert_eq!(run(&b, vec![info(1, None, false, vec![])]).unwrap(), vec![]);
    }

    #[test]
    fn never_call_data_alone() {
        // transfer(ours, 5) to the real token, but no log: nothing moved.
        let b = block(vec![call_tx(
            1,
            &token(),
            &transfer_data(&ours(), 5),
            SUCCESS,
        )]);
        assert_eq!(
            run(&b, vec![info(1, Some(SUCCESS), false, vec![])]).unwrap(),
            vec![]
        );
    }

    #[test]
    fn never_a_reverted_or_out_of_energy_transaction() {
        for result in ["REVERT", "OUT_OF_ENERGY"] {
            let b = block(vec![call_tx(1, &token(), "", result)]);
            let i = info(
                1,
                Some(result),
                true,
                vec![transfer_log(&token(), &sender(), &ours(), 5)],
            );
            assert_eq!(run(&b, vec![i]).unwrap(), vec![], "{result}");
        }
        let b = block(vec![trx_tx(1, &ours(), 5, "REVERT")]);
        assert_eq!(run(&b, vec![info(1, None, true, vec![])]).unwrap(), vec![]);
    }

    #[test]
    fn never_a_zero_value_transfer() {
        let b = block(vec![
            call_tx(1, &batcher(), "", SUCCESS),
            trx_tx(2, &ours(), 0, SUCCESS),
        ]);
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![transfer_log(&token(), &ours(), &ours(), 0)],
        );
        assert_eq!(
            run(&b, vec![i, info(2, None, false, vec![])]).unwrap(),
            vec![]
        );
    }

    #[test]
    fn never_a_transfer_to_someone_else() {
        let b = block(vec![call_tx(1, &token(), "", SUCCESS)]);
        let i = info(
            1,
            Some(SUCCESS),
            false,
            vec![transfer_log(&token(), &ours(), &other(), 5)],
        );
        assert_eq!(run(&b, vec![i]).unwrap(), vec![]);
    }

    #[test]
    fn a_replaced_block_is_unseen_by_its_id() {
        let log = || transfer_log(&token(), &sender(), &ours(), 5);
        let first = block_fork(0, vec![call_tx(1, &token(), "", SUCCESS)]);
        let replacement = block_fork(1, vec![]);
        let mut chain = Chain::start(NUMBER - 1, block_id(NUMBER - 1, 0));
        assert_eq!(
            chain.observe(&block_ref(&first).unwrap()).unwrap(),
            Step::Accepted { unseen: vec![] }
        );
        let mut seen = run(&first, vec![info(1, Some(SUCCESS), false, vec![log()])]).unwrap();
        assert_eq!(seen.len(), 1);
        let Step::Accepted { unseen } = chain.observe(&block_ref(&replacement).unwrap()).unwrap()
        else {
            panic!("not accepted");
        };
        assert_eq!(unseen, vec![(NUMBER, block_id(NUMBER, 0))]);
        seen.retain(|c| {
            !unseen
                .iter()
                .any(|(n, id)| c.block_number == *n && c.block_id == *id)
        });
        seen.extend(run(&replacement, vec![]).unwrap());
        assert_eq!(seen, vec![]);
    }

    // ---- malformed or ambiguous input: errors, by code ----

    fn code(r: Result<Vec<Credit>, CreditError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn mismatched_infos() {
        let b = block(vec![trx_tx(1, &ours(), 5, SUCCESS)]);
        assert_eq!(code(run(&b, vec![])), "tx_info_count_mismatch");
        assert_eq!(
            code(run(&b, vec![info(2, None, false, vec![])])),
            "tx_info_mismatch"
        );
        let mut i = info(1, None, false, vec![]);
        i["blockNumber"] = json!(NUMBER + 1);
        assert_eq!(code(run(&b, vec![i])), "tx_info_block_mismatch");
        let two = block(vec![
            trx_tx(1, &ours(), 5, SUCCESS),
            trx_tx(2, &ours(), 5, SUCCESS),
        ]);
        assert_eq!(
            code(run(
                &two,
                vec![info(1, None, false, vec![]), info(1, None, false, vec![])]
            )),
            "tx_info_mismatch"
        );
        let dup = block(vec![
            trx_tx(1, &ours(), 5, SUCCESS),
            trx_tx(1, &ours(), 5, SUCCESS),
        ]);
        assert_eq!(
            code(run(
                &dup,
                vec![info(1, None, false, vec![]), info(2, None, false, vec![])]
            )),
            "tx_duplicate"
        );
        assert_eq!(
            code(credits(&b, &json!("x"), &token(), is_ours)),
            "chain_field_wrong_type"
        );
    }

    #[test]
    fn a_missing_or_conflicting_status_where_a_credit_depends_on_it() {
        let log = || transfer_log(&token(), &sender(), &ours(), 5);
        let b = block(vec![call_tx(1, &token(), "", SUCCESS)]);
        assert_eq!(
            code(run(&b, vec![info(1, None, false, vec![log()])])),
            "tx_status_missing"
        );
        let mut no_ret = block(vec![call_tx(1, &token(), "", SUCCESS)]);
        no_ret["transactions"][0]
            .as_object_mut()
            .unwrap()
            .remove("ret");
        assert_eq!(
            code(run(
                &no_ret,
                vec![info(1, Some(SUCCESS), false, vec![log()])]
            )),
            "tx_status_missing"
        );
        assert_eq!(
            code(run(&b, vec![info(1, Some("REVERT"), true, vec![log()])])),
            "tx_status_conflict"
        );
        let mut t = trx_tx(1, &ours(), 5, SUCCESS);
        t.as_object_mut().unwrap().remove("ret");
        assert_eq!(
            code(run(&block(vec![t]), vec![info(1, None, false, vec![])])),
            "tx_status_missing"
        );
    }

    #[test]
    fn a_malformed_token_transfer_log() {
        let b = block(vec![call_tx(1, &token(), "", SUCCESS)]);
        let mut four = transfer_log(&token(), &sender(), &ours(), 5);
        four["topics"]
            .as_array_mut()
            .unwrap()
            .push(json!(hex::encode([0u8; 32])));
        let mut short = transfer_log(&token(), &sender(), &ours(), 5);
        short["data"] = json!("05");
        let mut dirty = transfer_log(&token(), &sender(), &ours(), 5);
        dirty["topics"][2] = json!(hex::encode([0xffu8; 32]));
        for log in [four, short, dirty] {
            assert_eq!(
                code(run(&b, vec![info(1, Some(SUCCESS), false, vec![log])])),
                "transfer_log_malformed"
            );
        }
        let mut prefixed = transfer_log(&token(), &sender(), &ours(), 5);
        prefixed["address"] = json!(token().to_hex());
        assert_eq!(
            code(run(&b, vec![info(1, Some(SUCCESS), false, vec![prefixed])])),
            "chain_bad_hex"
        );
    }

    #[test]
    fn malformed_blocks() {
        let good = block(vec![trx_tx(1, &ours(), 5, SUCCESS)]);
        let infos = || vec![info(1, None, false, vec![])];

        let mut visible = good.clone();
        visible["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"]["to_address"] =
            json!(ours().to_base58());
        assert_eq!(code(run(&visible, infos())), "chain_bad_address");

        let mut wrong_id = good.clone();
        wrong_id["blockID"] = json!(hex::encode(block_id(NUMBER + 1, 0)));
        assert_eq!(code(run(&wrong_id, infos())), "block_id_number_mismatch");

        let mut no_number = good.clone();
        no_number["block_header"]["raw_data"]
            .as_object_mut()
            .unwrap()
            .remove("number");
        assert_eq!(code(run(&no_number, infos())), "chain_field_missing");

        let mut string_number = good.clone();
        string_number["block_header"]["raw_data"]["number"] = json!("70000000");
        assert_eq!(code(run(&string_number, infos())), "chain_field_wrong_type");

        let mut bad_txid = good.clone();
        bad_txid["transactions"][0]["txID"] = json!("zz");
        assert_eq!(code(run(&bad_txid, infos())), "chain_bad_hex");

        let mut two_contracts = good.clone();
        let c = two_contracts["transactions"][0]["raw_data"]["contract"][0].clone();
        two_contracts["transactions"][0]["raw_data"]["contract"] = json!([c.clone(), c]);
        assert_eq!(code(run(&two_contracts, infos())), "tx_contract_count");

        let negative = block(vec![trx_tx(1, &ours(), -5, SUCCESS)]);
        assert_eq!(code(run(&negative, infos())), "trx_amount_negative");
    }
}
