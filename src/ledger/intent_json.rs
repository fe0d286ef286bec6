//! The JSON view of a decoded transaction that audit records store (and `inspect` prints).
//!
//! The audit chain hashes this text, so its shape is part of the record format: fields in
//! alphabetical order, the exact rendering earlier records were written with.

use serde_json::Value;

use crate::decode::{Decoded, Intent};

/// The view as JSON text (fields in a fixed order), rendered straight from the struct: the
/// audit log stores this text for every decoded request.
pub fn intent_json(d: &Decoded) -> String {
    serde_json::to_string(&View::of(d)).unwrap_or_default()
}

/// The same view as a JSON value, for callers that embed it in a larger document.
pub fn intent_value(d: &Decoded) -> Value {
    // A struct of plain fields always serializes to a JSON value.
    serde_json::to_value(View::of(d)).unwrap_or(Value::Null)
}

/// The decoded transaction back from the view an audit record stores (the inverse of
/// [`intent_json`]), so a record can be judged again (`policy replay`). `None` when the
/// value is not such a view.
pub fn decoded_of(v: &Value) -> Option<Decoded> {
    let text = |k: &str| v.get(k)?.as_str();
    let int = |k: &str| v.get(k)?.as_i64();
    let addr = |k: &str| text(k)?.parse::<tron_proto::Address>().ok();
    let bytes = |k: &str| hex::decode(text(k)?).ok();
    let owner = addr("owner")?;
    let to = addr("to")?;
    let intent = match text("kind")? {
        "trx" => Intent::Trx(crate::decode::TrxTransfer {
            owner,
            to,
            amount: text("amount")?.parse().ok()?,
        }),
        "trc20" => Intent::Trc20(crate::decode::Trc20Transfer {
            owner,
            token: addr("token")?,
            to,
            amount: text("amount")?.parse().ok()?,
        }),
        _ => return None,
    };
    Some(Decoded {
        envelope: crate::decode::Envelope {
            txid: bytes("txid")?.try_into().ok()?,
            ref_block_bytes: bytes("ref_block_bytes")?.try_into().ok()?,
            ref_block_hash: bytes("ref_block_hash")?.try_into().ok()?,
            expiration: int("expiration")?,
            timestamp: int("timestamp")?,
            fee_limit: int("fee_limit")?,
            memo: bytes("memo")?,
            permission_id: i32::try_from(int("permission_id")?).ok()?,
        },
        intent,
    })
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

    /// The audit log hashes `intent_json`'s text; it must be exactly the sorted-key rendering
    /// of `intent_value`, as records written before the typed view were.
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
            assert_eq!(intent_json(&d), intent_value(&d).to_string());
            // And back: a record can be judged again from its view alone.
            assert_eq!(decoded_of(&intent_value(&d)), Some(d.clone()));
            let mut broken = intent_value(&d);
            broken["amount"] = Value::String("-1".into());
            assert_eq!(decoded_of(&broken), None);
        }
    }
}
