//! `tron-signer inspect`: shows what the signer reads in a `raw_data`, as one JSON object.

use serde_json::{json, Value};

use crate::decode::{decode, DecodeError, Decoded};
use crate::ledger::intent_value;

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

/// The JSON view of a decoded transaction: the same view the audit log records.
pub fn view(d: &Decoded) -> Value {
    intent_value(d)
}
