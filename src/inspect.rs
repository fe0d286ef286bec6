//! `tron-signer inspect`: shows what the signer reads in a `raw_data`, as one JSON object.

use serde_json::{json, Value};

use crate::decode::{decode, DecodeError, Decoded, Intent};

/// Why `inspect` could not produce a view. Codes are stable.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("input is not hex: {0}")]
    NotHex(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl InspectError {
    pub fn code(&self) -> &'static str {
        match self {
            InspectError::NotHex(_) => "not_hex",
            InspectError::Decode(e) => e.code(),
        }
    }

    /// `{"error": {"code", "message"}}`.
    pub fn to_json(&self) -> Value {
        json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }
}

/// Parses hex (surrounding whitespace and an optional `0x` allowed) and decodes it.
pub fn inspect_hex(input: &str) -> Result<Value, InspectError> {
    let trimmed = input.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let raw = hex::decode(digits).map_err(|e| InspectError::NotHex(e.to_string()))?;
    Ok(view(&decode(&raw)?))
}

/// The JSON view of a decoded transaction.
pub fn view(d: &Decoded) -> Value {
    let e = &d.envelope;
    let (kind, token, amount) = match &d.intent {
        Intent::Trx(t) => ("trx", Value::Null, t.amount.to_string()),
        Intent::Trc20(t) => ("trc20", json!(t.token.to_base58()), t.amount.to_string()),
    };
    json!({
        "txid": hex::encode(e.txid),
        "kind": kind,
        "owner": d.intent.owner().to_base58(),
        "to": d.intent.to().to_base58(),
        "token": token,
        "amount": amount,
        "expiration": e.expiration,
        "timestamp": e.timestamp,
        "fee_limit": e.fee_limit,
        "memo": hex::encode(&e.memo),
        "ref_block_bytes": hex::encode(e.ref_block_bytes),
        "ref_block_hash": hex::encode(e.ref_block_hash),
        "permission_id": e.permission_id,
    })
}
