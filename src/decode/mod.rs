//! Bytes to intent: turns unsigned `raw_data` into a typed payout intent, or refuses it.
//!
//! The signer decides on exactly these bytes (DESIGN invariants 1-2). Decoding is strict:
//! only the shapes a canonical encoder produces for a single TRX or TRC-20 `transfer` are
//! accepted, and as a final guard the decoded message must re-encode to the input bytes.

mod error;
pub mod wire;

use prost::Message;
use tron_proto::{abi, contract_type, pb, txid, Address, TYPE_URL_PREFIX, U256};

pub use error::DecodeError;
use wire::{FieldSpec, Kind, Schema};

/// Largest `raw_data` the signer will look at. A single transfer is ~200-300 bytes; the cap
/// leaves room for long memos while bounding work per request.
pub const MAX_RAW_DATA_LEN: usize = 64 * 1024;

/// A decoded, accepted unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub envelope: Envelope,
    pub intent: Intent,
}

/// The transaction fields around the single contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// sha256 of the exact `raw_data` bytes.
    pub txid: [u8; 32],
    pub ref_block_bytes: [u8; 2],
    pub ref_block_hash: [u8; 8],
    /// Milliseconds since the Unix epoch.
    pub expiration: i64,
    /// Milliseconds since the Unix epoch; 0 when absent.
    pub timestamp: i64,
    /// In sun; 0 when absent.
    pub fee_limit: i64,
    /// The `data` field (the memo), raw bytes.
    pub memo: Vec<u8>,
    /// Always 0 for accepted transactions (multi-sig permissions are not supported yet).
    pub permission_id: i32,
}

/// What the transaction would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Trx(TrxTransfer),
    Trc20(Trc20Transfer),
}

/// A TransferContract: TRX in sun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrxTransfer {
    pub owner: Address,
    pub to: Address,
    /// Strictly positive, in sun.
    pub amount: u64,
}

/// A TriggerSmartContract calling `transfer(address,uint256)` on a token contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trc20Transfer {
    pub owner: Address,
    pub token: Address,
    pub to: Address,
    /// Strictly positive, in token base units.
    pub amount: U256,
}

/// What is being moved: TRX, or a TRC-20 token identified by its contract address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Asset {
    Trx,
    Token(Address),
}

impl std::fmt::Display for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asset::Trx => f.write_str("TRX"),
            Asset::Token(a) => write!(f, "{a}"),
        }
    }
}

impl Intent {
    /// The asset moved.
    pub fn asset(&self) -> Asset {
        match self {
            Intent::Trx(_) => Asset::Trx,
            Intent::Trc20(t) => Asset::Token(t.token),
        }
    }

    /// The amount moved, in base units (sun or token units).
    pub fn amount(&self) -> U256 {
        match self {
            Intent::Trx(t) => U256::from(t.amount),
            Intent::Trc20(t) => t.amount,
        }
    }

    /// The account whose key must sign.
    pub fn owner(&self) -> &Address {
        match self {
            Intent::Trx(t) => &t.owner,
            Intent::Trc20(t) => &t.owner,
        }
    }

    /// The recipient of the funds.
    pub fn to(&self) -> &Address {
        match self {
            Intent::Trx(t) => &t.to,
            Intent::Trc20(t) => &t.to,
        }
    }
}

const fn field(number: u32, name: &'static str, kind: Kind, repeated: bool) -> FieldSpec {
    FieldSpec {
        number,
        name,
        kind,
        repeated,
    }
}

const RAW: Schema = Schema {
    message: "raw",
    fields: &[
        field(1, "ref_block_bytes", Kind::Bytes, false),
        field(3, "ref_block_num", Kind::Varint, false),
        field(4, "ref_block_hash", Kind::Bytes, false),
        field(8, "expiration", Kind::Varint, false),
        field(9, "auths", Kind::Bytes, true),
        field(10, "data", Kind::Bytes, false),
        field(11, "contract", Kind::Bytes, true),
        field(12, "scripts", Kind::Bytes, false),
        field(14, "timestamp", Kind::Varint, false),
        field(18, "fee_limit", Kind::Varint, false),
    ],
};

const CONTRACT: Schema = Schema {
    message: "Contract",
    fields: &[
        field(1, "type", Kind::Varint, false),
        field(2, "parameter", Kind::Bytes, false),
        field(3, "provider", Kind::Bytes, false),
        field(4, "ContractName", Kind::Bytes, false),
        field(5, "Permission_id", Kind::Varint, false),
    ],
};

const ANY: Schema = Schema {
    message: "Any",
    fields: &[
        field(1, "type_url", Kind::Bytes, false),
        field(2, "value", Kind::Bytes, false),
    ],
};

const TRANSFER: Schema = Schema {
    message: "TransferContract",
    fields: &[
        field(1, "owner_address", Kind::Bytes, false),
        field(2, "to_address", Kind::Bytes, false),
        field(3, "amount", Kind::Varint, false),
    ],
};

const TRIGGER: Schema = Schema {
    message: "TriggerSmartContract",
    fields: &[
        field(1, "owner_address", Kind::Bytes, false),
        field(2, "contract_address", Kind::Bytes, false),
        field(3, "call_value", Kind::Varint, false),
        field(4, "data", Kind::Bytes, false),
        field(5, "call_token_value", Kind::Varint, false),
        field(6, "token_id", Kind::Varint, false),
    ],
};

/// Decodes and checks `raw_data`; see the module docs for what is refused.
pub fn decode(raw: &[u8]) -> Result<Decoded, DecodeError> {
    if raw.len() > MAX_RAW_DATA_LEN {
        return Err(DecodeError::TooLarge {
            len: raw.len(),
            max: MAX_RAW_DATA_LEN,
        });
    }
    let f = wire::parse(raw, &RAW)?;

    if f.count(9) > 0 {
        return Err(DecodeError::AuthsPresent);
    }
    if f.count(12) > 0 {
        return Err(DecodeError::ScriptsPresent);
    }
    if f.count(3) > 0 {
        return Err(DecodeError::RefBlockNumSet);
    }
    match f.count(11) {
        0 => return Err(DecodeError::NoContract),
        1 => {}
        count => return Err(DecodeError::MultipleContracts { count }),
    }
    let ref_block_bytes: [u8; 2] =
        f.bytes(1)
            .try_into()
            .map_err(|_| DecodeError::RefBlockBytesLength {
                len: f.bytes(1).len(),
            })?;
    let ref_block_hash: [u8; 8] =
        f.bytes(4)
            .try_into()
            .map_err(|_| DecodeError::RefBlockHashLength {
                len: f.bytes(4).len(),
            })?;
    let expiration = f.int64(8);
    if expiration < 0 {
        return Err(DecodeError::NegativeExpiration { value: expiration });
    }
    if expiration == 0 {
        return Err(DecodeError::ExpirationMissing);
    }
    let timestamp = f.int64(14);
    if timestamp < 0 {
        return Err(DecodeError::NegativeTimestamp { value: timestamp });
    }
    let fee_limit = f.int64(18);
    if fee_limit < 0 {
        return Err(DecodeError::NegativeFeeLimit { value: fee_limit });
    }
    let memo = f.bytes(10);

    let c = wire::parse(f.bytes(11), &CONTRACT)?;
    let type_code = int32(&c, 1, "type")?;
    if c.count(3) > 0 {
        return Err(DecodeError::ProviderPresent);
    }
    if c.count(4) > 0 {
        return Err(DecodeError::ContractNamePresent);
    }
    let permission = c.int64(5);
    if permission != 0 {
        return Err(DecodeError::PermissionId { id: permission });
    }
    let name = contract_type::name(type_code).unwrap_or("unknown");
    if type_code != contract_type::TRANSFER && type_code != contract_type::TRIGGER_SMART_CONTRACT {
        return Err(DecodeError::UnsupportedContractType { type_code, name });
    }

    let any = wire::parse(c.bytes(2), &ANY)?;
    let type_url = std::str::from_utf8(any.bytes(1)).map_err(|_| DecodeError::InvalidUtf8 {
        message: "Any",
        field: "type_url",
    })?;
    if type_url.strip_prefix(TYPE_URL_PREFIX) != Some(name) {
        return Err(DecodeError::TypeUrlMismatch {
            expected: format!("{TYPE_URL_PREFIX}{name}"),
            found: type_url.to_owned(),
        });
    }
    let value = any.bytes(2);
    let intent = if type_code == contract_type::TRANSFER {
        Intent::Trx(transfer(value)?)
    } else {
        Intent::Trc20(trigger(value)?)
    };

    let decoded = Decoded {
        envelope: Envelope {
            txid: txid(raw),
            ref_block_bytes,
            ref_block_hash,
            expiration,
            timestamp,
            fee_limit,
            memo: memo.to_vec(),
            permission_id: 0,
        },
        intent,
    };
    if !reencodes_to(&decoded, raw) {
        return Err(DecodeError::NonCanonical);
    }
    Ok(decoded)
}

fn int32(f: &wire::Fields<'_>, n: usize, field: &'static str) -> Result<i32, DecodeError> {
    // proto3 int32 is sign-extended to 64 bits on the wire.
    i32::try_from(f.int64(n)).map_err(|_| DecodeError::Int32OutOfRange {
        message: "Contract",
        field,
    })
}

fn address(bytes: &[u8], field: &'static str) -> Result<Address, DecodeError> {
    Address::from_bytes(bytes).map_err(|source| DecodeError::BadAddress { field, source })
}

fn transfer(value: &[u8]) -> Result<TrxTransfer, DecodeError> {
    let f = wire::parse(value, &TRANSFER)?;
    let owner = address(f.bytes(1), "owner_address")?;
    let to = address(f.bytes(2), "to_address")?;
    let amount = f.int64(3);
    if amount <= 0 {
        return Err(DecodeError::AmountNotPositive { amount });
    }
    Ok(TrxTransfer {
        owner,
        to,
        amount: amount.unsigned_abs(),
    })
}

fn trigger(value: &[u8]) -> Result<Trc20Transfer, DecodeError> {
    let f = wire::parse(value, &TRIGGER)?;
    let owner = address(f.bytes(1), "owner_address")?;
    let token = address(f.bytes(2), "contract_address")?;
    let call_value = f.int64(3);
    if call_value != 0 {
        return Err(DecodeError::CallValueNonZero { value: call_value });
    }
    let call_token_value = f.int64(5);
    if call_token_value != 0 {
        return Err(DecodeError::CallTokenValueNonZero {
            value: call_token_value,
        });
    }
    let token_id = f.int64(6);
    if token_id != 0 {
        return Err(DecodeError::TokenIdNonZero { value: token_id });
    }
    let data = f.bytes(4);
    if let Some(sel) = data.get(..4) {
        let mut selector = [0u8; 4];
        selector.copy_from_slice(sel);
        if selector != abi::SELECTOR_TRANSFER {
            return Err(DecodeError::Trc20Selector {
                selector: hex::encode(selector),
                name: abi::selector_name(selector).unwrap_or("unknown"),
            });
        }
    }
    if data.len() != abi::TRANSFER_CALL_LEN {
        return Err(DecodeError::Trc20DataLength { len: data.len() });
    }
    if data[4..16].iter().any(|&b| b != 0) {
        return Err(DecodeError::Trc20AddressPadding);
    }
    let mut body = [0u8; 20];
    body.copy_from_slice(&data[16..36]);
    let mut word = [0u8; 32];
    word.copy_from_slice(&data[36..68]);
    let amount = U256::from_be_bytes(word);
    if amount == U256::ZERO {
        return Err(DecodeError::Trc20ZeroAmount);
    }
    Ok(Trc20Transfer {
        owner,
        token,
        to: Address::from_evm(body),
        amount,
    })
}

/// Re-encodes `decoded` with the generated protobuf types.
pub fn encode(decoded: &Decoded) -> Vec<u8> {
    let (type_code, name, value) = match &decoded.intent {
        Intent::Trx(t) => (
            contract_type::TRANSFER,
            "TransferContract",
            pb::TransferContract {
                owner_address: t.owner.as_bytes().to_vec(),
                to_address: t.to.as_bytes().to_vec(),
                amount: t.amount as i64,
            }
            .encode_to_vec(),
        ),
        Intent::Trc20(t) => (
            contract_type::TRIGGER_SMART_CONTRACT,
            "TriggerSmartContract",
            pb::TriggerSmartContract {
                owner_address: t.owner.as_bytes().to_vec(),
                contract_address: t.token.as_bytes().to_vec(),
                data: abi::encode_transfer(&t.to, t.amount),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    };
    let e = &decoded.envelope;
    pb::transaction::Raw {
        ref_block_bytes: e.ref_block_bytes.to_vec(),
        ref_block_hash: e.ref_block_hash.to_vec(),
        expiration: e.expiration,
        data: e.memo.clone(),
        contract: vec![pb::transaction::Contract {
            r#type: type_code,
            parameter: Some(pb::Any {
                type_url: format!("{TYPE_URL_PREFIX}{name}"),
                value,
            }),
            permission_id: e.permission_id,
            ..Default::default()
        }],
        timestamp: e.timestamp,
        fee_limit: e.fee_limit,
        ..Default::default()
    }
    .encode_to_vec()
}

fn reencodes_to(decoded: &Decoded, raw: &[u8]) -> bool {
    encode(decoded) == raw
}

#[cfg(test)]
mod tests;
