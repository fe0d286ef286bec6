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
    // A struct of plain fields always serializes to a JSON value.
    serde_json::to_value(View::of(d)).unwrap_or(Value::Null)
}

/// The same view as JSON text (fields in a fixed order), rendered straight from the struct:
/// the audit log stores this text for every decoded request.
pub fn view_json(d: &Decoded) -> String {
    serde_json::to_string(&View::of(d)).unwrap_or_default()
}

/// Fields in alphabetical order: the JSON text is then byte for byte what the earlier
/// `serde_json::Value` rendering produced (its maps are sorted), so audit records hash the
/// same text for the same request whichever way it was rendered.
#[derive(serde::Serialize)]
struct View {
    amount: String,
    expiration: i64,
    fee_limit: i64,
    kind: &'static str,
    memo: String,
    owner: String,
    permission_id: i32,
    ref_block_bytes: String,
    ref_block_hash: String,
    timestamp: i64,
    to: String,
    token: Option<String>,
    txid: String,
}

impl View {
    fn of(d: &Decoded) -> View {
        let e = &d.envelope;
        let (kind, token, amount) = match &d.intent {
            Intent::Trx(t) => ("trx", None, t.amount.to_string()),
            Intent::Trc20(t) => ("trc20", Some(t.token.to_base58()), t.amount.to_string()),
        };
        View {
            txid: hex::encode(e.txid),
            kind,
            owner: d.intent.owner().to_base58(),
            to: d.intent.to().to_base58(),
            token,
            amount,
            expiration: e.expiration,
            timestamp: e.timestamp,
            fee_limit: e.fee_limit,
            memo: hex::encode(&e.memo),
            ref_block_bytes: hex::encode(e.ref_block_bytes),
            ref_block_hash: hex::encode(e.ref_block_hash),
            permission_id: e.permission_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Envelope, Trc20Transfer, TrxTransfer};
    use crate::test_util::addr;
    use tron_proto::U256;

    fn decoded(intent: Intent) -> Decoded {
        Decoded {
            envelope: Envelope {
                txid: [0x5a; 32],
                ref_block_bytes: [1, 2],
                ref_block_hash: [3; 8],
                expiration: 1_700_000_060_000,
                timestamp: 1_700_000_000_000,
                fee_limit: 30_000_000,
                memo: b"invoice 42".to_vec(),
                permission_id: 0,
            },
            intent,
        }
    }

    /// The audit log hashes `view_json`'s text; it must be exactly the sorted-key rendering
    /// of `view`, as records written before the typed view were.
    #[test]
    fn json_text_is_the_sorted_value_rendering() {
        for intent in [
            Intent::Trx(TrxTransfer {
                owner: addr(1),
                to: addr(2),
                amount: 1_500_000,
            }),
            Intent::Trc20(Trc20Transfer {
                owner: addr(1),
                token: addr(3),
                to: addr(2),
                amount: U256::from(20_000_000u64),
            }),
        ] {
            let d = decoded(intent);
            assert_eq!(view_json(&d), view(&d).to_string());
        }
    }
}
