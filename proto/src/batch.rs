//! Batch files that carry unsigned transactions to an air-gapped signer and signatures back.
//!
//! A batch is a JSON object. Both kinds share an envelope:
//!
//! ```json
//! { "format": "tron-batch", "version": 1, "kind": "unsigned" | "signed",
//!   "created_at_ms": 1700000000000, "network": "nile", "items": [...],
//!   "checksum": "<64 hex>" }
//! ```
//!
//! Unsigned items are `{"payout_id", "key": "T…", "raw_data": hex, "approvals"?: [...]}`, each
//! approval `{"signature": "<armored SSHSIG>", "statement"?: "<the text it signs>"}` (the
//! signer checks them as it checks `SignRequest.approvals`). Signed items are either
//! `{"payout_id", "txid", "status": "signed", "signature", "signed_transaction"}` or
//! `{"payout_id", "txid"?, "status": "refused", "reason_code", "message"}`.
//!
//! # Checksum
//!
//! Files are walked by hand across an air gap, so a truncated copy or an edited byte must
//! be caught before anything is signed or broadcast. `checksum` is the lowercase hex SHA-256
//! of the **canonical serialization** of the top-level object with the `checksum` member
//! removed. The canonical serialization is defined here, independently of any serde_json
//! feature flags, so that other implementations can reproduce it:
//!
//! - no whitespace anywhere;
//! - object members sorted by the bytes of their UTF-8 keys (ascending), keys written once;
//! - strings written as serde_json writes them: `"` and `\` escaped, control characters as
//!   `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, everything else (non-ASCII included) as raw
//!   UTF-8;
//! - integers in plain decimal (the format holds no fractional numbers); `true`, `false`,
//!   `null` as such; arrays in their order.
//!
//! The checksum covers the meaning, not the layout, so a file may be pretty-printed (as
//! [`UnsignedBatch::to_json_bytes`] does) without invalidating it. It is an integrity
//! check against accidents, not an authentication: the signer still decides on the bytes
//! of every `raw_data`, and the broadcaster still recovers every signature.
//!
//! Hex is lowercase on output and accepted in either case on input; a `0x` prefix is refused.
//!
//! # Exporter signature
//!
//! An unsigned batch also carries `exporter_signature`: an SSH signature (the SSHSIG format
//! of `ssh-keygen -Y sign`, PEM armored) made with the exporter's Ed25519 key under the
//! namespace [`EXPORTER_NAMESPACE`], over the **content digest**: the lowercase hex SHA-256
//! of the canonical serialization of the top-level object with both `checksum` and
//! `exporter_signature` removed (64 ASCII characters, no newline). The checksum covers the
//! signature too. An auditor can check a file with nothing but `ssh-keygen -Y verify`, given
//! the digest. This crate only carries the signature; the broadcaster makes it and the
//! signer verifies it against the exporters its policy lists.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The value of the `format` member.
pub const FORMAT: &str = "tron-batch";
/// The only version this code reads and writes.
pub const VERSION: u64 = 1;
/// The SSHSIG namespace of exporter signatures: a signature made for any other purpose
/// (a git commit, an approval) can never pass for one.
pub const EXPORTER_NAMESPACE: &str = "tron-batch-export";
/// Longest payout id a batch may carry (the signer refuses longer ones anyway).
pub const MAX_PAYOUT_ID_LEN: usize = 128;

/// Why a batch file was refused as a whole. Nothing in a refused file is acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("not a JSON document: {0}")]
    NotJson(String),
    #[error("not a tron-batch file (format is {found:?})")]
    WrongFormat { found: String },
    #[error("unsupported batch version {found} (this build reads version 1)")]
    UnsupportedVersion { found: String },
    #[error("batch kind is {found:?}, expected {expected:?}")]
    WrongKind { expected: String, found: String },
    #[error("checksum mismatch: the file says {stated}, its content hashes to {computed}; it was changed or truncated")]
    BadChecksum { stated: String, computed: String },
    #[error("item {index}: field {field} is not valid hex of the right length")]
    BadHex { index: usize, field: &'static str },
    #[error("payout id {payout_id:?} appears more than once")]
    DuplicatePayoutId { payout_id: String },
    #[error("malformed batch: {0}")]
    Malformed(String),
}

impl BatchError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::NotJson(_) => "batch_not_json",
            BatchError::WrongFormat { .. } => "batch_wrong_format",
            BatchError::UnsupportedVersion { .. } => "batch_unsupported_version",
            BatchError::WrongKind { .. } => "batch_wrong_kind",
            BatchError::BadChecksum { .. } => "batch_bad_checksum",
            BatchError::BadHex { .. } => "batch_bad_hex",
            BatchError::DuplicatePayoutId { .. } => "batch_duplicate_payout_id",
            BatchError::Malformed(_) => "batch_malformed",
        }
    }
}

/// One transaction the broadcaster wants signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedItem {
    pub payout_id: String,
    /// The signing key's address as the broadcaster names it; the signer parses and checks it.
    pub key: String,
    /// The exact `raw_data` bytes to be signed.
    pub raw_data: Vec<u8>,
    /// Approvals of this transaction, as `tron-signer approve` writes them.
    pub approvals: Vec<ItemApproval>,
}

/// One approver's SSH signature over an item's approval statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemApproval {
    /// PEM armored SSHSIG under the namespace `tron-signer-approval`.
    pub signature: String,
    /// The statement it signs; optional, compared by the signer, never trusted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub statement: String,
}

/// Unsigned transactions exported by the broadcaster for the offline signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedBatch {
    pub created_at_ms: i64,
    /// `mainnet`, `nile`, `shasta`, …: lets the operator see which chain a file is for.
    pub network: String,
    pub items: Vec<UnsignedItem>,
    /// The exporter's signature, if the file has one.
    pub exporter: Option<ExporterSignature>,
}

/// An exporter's SSH signature over a batch's content digest (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterSignature {
    /// PEM armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
    /// The content digest it is meant to sign: for a file read in, what that file's content
    /// hashes to (so a signature over other content fails to verify against it).
    pub digest: String,
}

/// The signer's answer for one unsigned item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedItem {
    Signed {
        payout_id: String,
        txid: [u8; 32],
        /// `r || s || v`.
        signature: [u8; 65],
        /// `Transaction { raw_data, signature }` bytes, ready for `/wallet/broadcasthex`.
        signed_transaction: Vec<u8>,
    },
    Refused {
        payout_id: String,
        /// Absent when the bytes could not even be decoded.
        txid: Option<[u8; 32]>,
        reason_code: String,
        message: String,
    },
}

impl SignedItem {
    pub fn payout_id(&self) -> &str {
        match self {
            SignedItem::Signed { payout_id, .. } | SignedItem::Refused { payout_id, .. } => {
                payout_id
            }
        }
    }
}

/// The offline signer's answers, carried back to the broadcaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBatch {
    pub created_at_ms: i64,
    pub network: String,
    pub items: Vec<SignedItem>,
}

// ----- wire shapes (strings only; validated on the way in) -----

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    format: String,
    version: u64,
    kind: String,
    created_at_ms: i64,
    network: String,
    items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exporter_signature: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireUnsigned {
    payout_id: String,
    key: String,
    raw_data: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approvals: Vec<ItemApproval>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
enum WireSigned {
    Signed {
        payout_id: String,
        txid: String,
        signature: String,
        signed_transaction: String,
    },
    Refused {
        payout_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        txid: Option<String>,
        reason_code: String,
        message: String,
    },
}

const KIND_UNSIGNED: &str = "unsigned";
const KIND_SIGNED: &str = "signed";

impl UnsignedBatch {
    fn wire_items(&self) -> Vec<WireUnsigned> {
        self.items
            .iter()
            .map(|i| WireUnsigned {
                payout_id: i.payout_id.clone(),
                key: i.key.clone(),
                raw_data: hex::encode(&i.raw_data),
                approvals: i.approvals.clone(),
            })
            .collect()
    }

    /// The content digest an exporter signs (module docs): of this batch as
    /// [`UnsignedBatch::to_json_bytes`] writes it.
    pub fn content_digest(&self) -> String {
        let env = envelope(
            KIND_UNSIGNED,
            self.created_at_ms,
            &self.network,
            self.wire_items(),
        );
        checksum_of(&serde_json::to_value(&env).unwrap_or(Value::Null))
    }

    /// Pretty-printed JSON with its exporter signature (if any) and checksum.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut env = envelope(
            KIND_UNSIGNED,
            self.created_at_ms,
            &self.network,
            self.wire_items(),
        );
        env.exporter_signature = self.exporter.as_ref().map(|e| e.signature.clone());
        seal(env)
    }

    /// Parses and checks a file: envelope, version, kind, checksum, hex, unique payout ids.
    /// The exporter signature is carried, not verified (that needs the signer's policy).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, BatchError> {
        let (env, digest): (Envelope<WireUnsigned>, String) = open(bytes, KIND_UNSIGNED)?;
        let mut items = Vec::with_capacity(env.items.len());
        for (index, w) in env.items.into_iter().enumerate() {
            let raw_data = hex_vec(&w.raw_data, index, "raw_data")?;
            if raw_data.is_empty() {
                return Err(BatchError::BadHex {
                    index,
                    field: "raw_data",
                });
            }
            items.push(UnsignedItem {
                payout_id: w.payout_id,
                key: w.key,
                raw_data,
                approvals: w.approvals,
            });
        }
        check_ids(items.iter().map(|i| i.payout_id.as_str()))?;
        Ok(UnsignedBatch {
            created_at_ms: env.created_at_ms,
            network: env.network,
            items,
            exporter: env
                .exporter_signature
                .map(|signature| ExporterSignature { signature, digest }),
        })
    }
}

impl SignedBatch {
    /// Pretty-printed JSON with its checksum.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let items = self
            .items
            .iter()
            .map(|i| match i {
                SignedItem::Signed {
                    payout_id,
                    txid,
                    signature,
                    signed_transaction,
                } => WireSigned::Signed {
                    payout_id: payout_id.clone(),
                    txid: hex::encode(txid),
                    signature: hex::encode(signature),
                    signed_transaction: hex::encode(signed_transaction),
                },
                SignedItem::Refused {
                    payout_id,
                    txid,
                    reason_code,
                    message,
                } => WireSigned::Refused {
                    payout_id: payout_id.clone(),
                    txid: txid.map(hex::encode),
                    reason_code: reason_code.clone(),
                    message: message.clone(),
                },
            })
            .collect();
        seal(envelope(
            KIND_SIGNED,
            self.created_at_ms,
            &self.network,
            items,
        ))
    }

    /// Parses and checks a file: envelope, version, kind, checksum, hex, unique payout ids.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, BatchError> {
        let (env, _): (Envelope<WireSigned>, _) = open(bytes, KIND_SIGNED)?;
        if env.exporter_signature.is_some() {
            return Err(BatchError::Malformed(
                "an answer file carries no exporter signature".into(),
            ));
        }
        let mut items = Vec::with_capacity(env.items.len());
        for (index, w) in env.items.into_iter().enumerate() {
            items.push(match w {
                WireSigned::Signed {
                    payout_id,
                    txid,
                    signature,
                    signed_transaction,
                } => {
                    let signed_transaction =
                        hex_vec(&signed_transaction, index, "signed_transaction")?;
                    if signed_transaction.is_empty() {
                        return Err(BatchError::BadHex {
                            index,
                            field: "signed_transaction",
                        });
                    }
                    SignedItem::Signed {
                        payout_id,
                        txid: hex_array(&txid, index, "txid")?,
                        signature: hex_array(&signature, index, "signature")?,
                        signed_transaction,
                    }
                }
                WireSigned::Refused {
                    payout_id,
                    txid,
                    reason_code,
                    message,
                } => SignedItem::Refused {
                    payout_id,
                    txid: txid.map(|t| hex_array(&t, index, "txid")).transpose()?,
                    reason_code,
                    message,
                },
            });
        }
        check_ids(items.iter().map(SignedItem::payout_id))?;
        Ok(SignedBatch {
            created_at_ms: env.created_at_ms,
            network: env.network,
            items,
        })
    }
}

fn envelope<T>(kind: &str, created_at_ms: i64, network: &str, items: Vec<T>) -> Envelope<T> {
    Envelope {
        format: FORMAT.to_owned(),
        version: VERSION,
        kind: kind.to_owned(),
        created_at_ms,
        network: network.to_owned(),
        items,
        exporter_signature: None,
    }
}

fn seal<T: Serialize>(env: Envelope<T>) -> Vec<u8> {
    // Serializing plain structs of strings and integers to a Value cannot fail.
    let mut value = serde_json::to_value(&env).unwrap_or(Value::Null);
    let sum = checksum_of(&value);
    if let Value::Object(map) = &mut value {
        map.insert("checksum".into(), Value::String(sum));
    }
    let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The checked envelope, and the content digest of the file (without `checksum` and
/// `exporter_signature`).
fn open<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    kind: &str,
) -> Result<(Envelope<T>, String), BatchError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| BatchError::NotJson(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(BatchError::Malformed(
            "the top level is not an object".into(),
        ));
    };
    match map.get("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        other => {
            return Err(BatchError::WrongFormat {
                found: describe(other),
            })
        }
    }
    match map.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        other => {
            return Err(BatchError::UnsupportedVersion {
                found: describe(other),
            })
        }
    }
    match map.get("kind") {
        Some(Value::String(k)) if k == kind => {}
        other => {
            return Err(BatchError::WrongKind {
                expected: kind.to_owned(),
                found: describe(other),
            })
        }
    }
    let stated = match map.remove("checksum") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(BatchError::Malformed("checksum is not a string".into())),
        None => return Err(BatchError::Malformed("no checksum".into())),
    };
    let rest = Value::Object(map);
    let computed = checksum_of(&rest);
    if !stated.eq_ignore_ascii_case(&computed) {
        return Err(BatchError::BadChecksum { stated, computed });
    }
    let Value::Object(mut content) = rest else {
        return Err(BatchError::Malformed(
            "the top level is not an object".into(),
        ));
    };
    let signature = content.remove("exporter_signature");
    let content = Value::Object(content);
    let digest = checksum_of(&content);
    let Value::Object(mut content) = content else {
        return Err(BatchError::Malformed(
            "the top level is not an object".into(),
        ));
    };
    if let Some(sig) = signature {
        content.insert("exporter_signature".into(), sig);
    }
    let env = serde_json::from_value(Value::Object(content))
        .map_err(|e| BatchError::Malformed(e.to_string()))?;
    Ok((env, digest))
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn check_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), BatchError> {
    let mut seen = HashSet::new();
    for id in ids {
        if id.is_empty() || id.len() > MAX_PAYOUT_ID_LEN {
            return Err(BatchError::Malformed(format!(
                "payout id {id:?} is empty or longer than {MAX_PAYOUT_ID_LEN} bytes"
            )));
        }
        if !seen.insert(id) {
            return Err(BatchError::DuplicatePayoutId {
                payout_id: id.to_owned(),
            });
        }
    }
    Ok(())
}

fn hex_vec(s: &str, index: usize, field: &'static str) -> Result<Vec<u8>, BatchError> {
    hex::decode(s).map_err(|_| BatchError::BadHex { index, field })
}

fn hex_array<const N: usize>(
    s: &str,
    index: usize,
    field: &'static str,
) -> Result<[u8; N], BatchError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| BatchError::BadHex { index, field })?;
    Ok(out)
}

/// Lowercase hex SHA-256 of [`canonical`] of `value`.
pub fn checksum_of(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value)))
}

/// The canonical serialization described in the module docs.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    // Sorted here, not by the map, so the result never depends on serde_json's
    // `preserve_order` feature being switched on by some other crate in the build.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_canonical(v, out);
    }
    out.push(b'}');
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned() -> UnsignedBatch {
        UnsignedBatch {
            created_at_ms: 1_700_000_000_000,
            network: "nile".into(),
            items: vec![
                UnsignedItem {
                    payout_id: "p-1".into(),
                    key: "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1".into(),
                    raw_data: vec![0x0a, 0x02, 0x01, 0x02],
                    approvals: vec![],
                },
                UnsignedItem {
                    payout_id: "p-2 \"quoted\" é\n".into(),
                    key: "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1".into(),
                    raw_data: vec![0xff; 40],
                    approvals: vec![ItemApproval {
                        signature:
                            "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"
                                .into(),
                        statement: String::new(),
                    }],
                },
            ],
            exporter: None,
        }
    }

    /// The signature rides along, covered by the checksum; the digest read back is the one
    /// the exporter computed before signing, and does not depend on the signature or layout.
    #[test]
    fn exporter_signature_round_trips_with_its_digest() {
        let mut b = unsigned();
        let digest = b.content_digest();
        assert_eq!(digest.len(), 64);
        b.exporter = Some(ExporterSignature {
            signature: "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n".into(),
            digest: digest.clone(),
        });
        let bytes = b.to_json_bytes();
        let back = UnsignedBatch::from_json_bytes(&bytes).unwrap();
        assert_eq!(back, b);
        // The same content without a signature has the same digest.
        let mut plain = b.clone();
        plain.exporter = None;
        let back = UnsignedBatch::from_json_bytes(&plain.to_json_bytes()).unwrap();
        assert_eq!(back.exporter, None);
        assert_eq!(back.content_digest(), digest);
        // A changed signature without a new checksum is caught like any edit.
        let edited = edit(&bytes, |m| {
            m.insert("exporter_signature".into(), Value::String("x".into()));
        });
        assert!(matches!(
            UnsignedBatch::from_json_bytes(&edited),
            Err(BatchError::BadChecksum { .. })
        ));
        // Content changed and re-sealed keeps the old signature but gets a new digest: the
        // signature no longer signs what the file says.
        let resealed = edit_resealed(&bytes, |m| {
            m.insert("created_at_ms".into(), Value::from(1));
        });
        let back = UnsignedBatch::from_json_bytes(&resealed).unwrap();
        assert_ne!(back.exporter.unwrap().digest, digest);
    }

    fn signed() -> SignedBatch {
        SignedBatch {
            created_at_ms: 1_700_000_000_001,
            network: "mainnet".into(),
            items: vec![
                SignedItem::Signed {
                    payout_id: "p-1".into(),
                    txid: [1; 32],
                    signature: [2; 65],
                    signed_transaction: vec![3; 10],
                },
                SignedItem::Refused {
                    payout_id: "p-2".into(),
                    txid: Some([4; 32]),
                    reason_code: "destination_not_allowed".into(),
                    message: "no".into(),
                },
                SignedItem::Refused {
                    payout_id: "p-3".into(),
                    txid: None,
                    reason_code: "decode_truncated".into(),
                    message: "bad bytes".into(),
                },
            ],
        }
    }

    /// Rewrites a batch through a closure on its JSON value, keeping the old checksum.
    fn edit(bytes: &[u8], f: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        f(v.as_object_mut().unwrap());
        serde_json::to_vec(&v).unwrap()
    }

    /// Rewrites and re-seals, so only the targeted check can fail.
    fn edit_resealed(bytes: &[u8], f: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        let m = v.as_object_mut().unwrap();
        f(m);
        m.remove("checksum");
        let sum = checksum_of(&v);
        v.as_object_mut()
            .unwrap()
            .insert("checksum".into(), Value::String(sum));
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn round_trips() {
        let u = unsigned();
        assert_eq!(
            UnsignedBatch::from_json_bytes(&u.to_json_bytes()).unwrap(),
            u
        );
        let s = signed();
        assert_eq!(SignedBatch::from_json_bytes(&s.to_json_bytes()).unwrap(), s);
    }

    #[test]
    fn layout_does_not_matter_but_content_does() {
        let bytes = unsigned().to_json_bytes();
        // Compact re-serialization keeps the checksum valid.
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let compact = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            UnsignedBatch::from_json_bytes(&compact).unwrap(),
            unsigned()
        );
    }

    #[test]
    fn canonical_form_is_pinned() {
        let v: Value =
            serde_json::from_str(r#"{"b":[1,true,null],"a":"x\"\\\n\u0001é","A":{"z":1,"y":-2}}"#)
                .unwrap();
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            "{\"A\":{\"y\":-2,\"z\":1},\"a\":\"x\\\"\\\\\\n\\u0001é\",\"b\":[1,true,null]}"
        );
    }

    #[test]
    fn every_tampered_byte_is_caught() {
        let bytes = unsigned().to_json_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let start = text.find("\"raw_data\"").unwrap() + "\"raw_data\": \"".len();
        for i in start..start + 8 {
            let mut t = bytes.clone();
            t[i] = if t[i] == b'0' { b'1' } else { b'0' };
            let err = UnsignedBatch::from_json_bytes(&t).unwrap_err();
            assert_eq!(err.code(), "batch_bad_checksum", "byte {i}");
        }
        // An item dropped or an amount-bearing field changed.
        let dropped = edit(&bytes, |m| {
            m.get_mut("items").unwrap().as_array_mut().unwrap().pop();
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&dropped).unwrap_err().code(),
            "batch_bad_checksum"
        );
        let renamed = edit(&bytes, |m| {
            m.insert("network".into(), "mainnet".into());
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&renamed).unwrap_err().code(),
            "batch_bad_checksum"
        );
        let signed_bytes = signed().to_json_bytes();
        let flipped = edit(&signed_bytes, |m| {
            m["items"][1]["reason_code"] = "signed".into();
        });
        assert_eq!(
            SignedBatch::from_json_bytes(&flipped).unwrap_err().code(),
            "batch_bad_checksum"
        );
    }

    #[test]
    fn truncated_or_not_json() {
        let bytes = unsigned().to_json_bytes();
        let e = UnsignedBatch::from_json_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        assert_eq!(e.code(), "batch_not_json");
        assert_eq!(
            UnsignedBatch::from_json_bytes(b"[1,2]").unwrap_err().code(),
            "batch_malformed"
        );
    }

    #[test]
    fn envelope_checks() {
        let bytes = unsigned().to_json_bytes();
        let wrong_format = edit_resealed(&bytes, |m| {
            m.insert("format".into(), "other".into());
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&wrong_format)
                .unwrap_err()
                .code(),
            "batch_wrong_format"
        );
        let v2 = edit_resealed(&bytes, |m| {
            m.insert("version".into(), 2.into());
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&v2).unwrap_err(),
            BatchError::UnsupportedVersion { found: "2".into() }
        );
        // An unsigned file handed where a signed one is expected, and back.
        assert_eq!(
            SignedBatch::from_json_bytes(&bytes).unwrap_err().code(),
            "batch_wrong_kind"
        );
        assert_eq!(
            UnsignedBatch::from_json_bytes(&signed().to_json_bytes())
                .unwrap_err()
                .code(),
            "batch_wrong_kind"
        );
        let no_sum = edit(&bytes, |m| {
            m.remove("checksum");
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&no_sum).unwrap_err().code(),
            "batch_malformed"
        );
        let extra = edit_resealed(&bytes, |m| {
            m.insert("surprise".into(), 1.into());
        });
        assert_eq!(
            UnsignedBatch::from_json_bytes(&extra).unwrap_err().code(),
            "batch_malformed"
        );
    }

    #[test]
    fn bad_hex_is_refused() {
        let bytes = unsigned().to_json_bytes();
        for bad in ["zz", "0x0a02", "abc", ""] {
            let t = edit_resealed(&bytes, |m| {
                m["items"][1]["raw_data"] = bad.into();
            });
            assert_eq!(
                UnsignedBatch::from_json_bytes(&t).unwrap_err(),
                BatchError::BadHex {
                    index: 1,
                    field: "raw_data"
                },
                "{bad}"
            );
        }
        let sb = signed().to_json_bytes();
        for (field, bad) in [
            ("signature", "02".repeat(64)),
            ("txid", "01".repeat(33)),
            ("signed_transaction", "q".into()),
        ] {
            let t = edit_resealed(&sb, |m| {
                m["items"][0][field] = bad.clone().into();
            });
            assert_eq!(
                SignedBatch::from_json_bytes(&t).unwrap_err(),
                BatchError::BadHex { index: 0, field },
            );
        }
        let t = edit_resealed(&sb, |m| {
            m["items"][1]["txid"] = "nothex".into();
        });
        assert_eq!(
            SignedBatch::from_json_bytes(&t).unwrap_err(),
            BatchError::BadHex {
                index: 1,
                field: "txid"
            },
        );
    }

    #[test]
    fn duplicate_and_empty_payout_ids() {
        let mut u = unsigned();
        u.items[1].payout_id = u.items[0].payout_id.clone();
        assert_eq!(
            UnsignedBatch::from_json_bytes(&u.to_json_bytes()).unwrap_err(),
            BatchError::DuplicatePayoutId {
                payout_id: "p-1".into()
            }
        );
        let mut s = signed();
        if let SignedItem::Refused { payout_id, .. } = &mut s.items[2] {
            *payout_id = "p-1".into();
        }
        assert_eq!(
            SignedBatch::from_json_bytes(&s.to_json_bytes())
                .unwrap_err()
                .code(),
            "batch_duplicate_payout_id"
        );
        let mut u = unsigned();
        u.items[0].payout_id.clear();
        assert_eq!(
            UnsignedBatch::from_json_bytes(&u.to_json_bytes())
                .unwrap_err()
                .code(),
            "batch_malformed"
        );
    }

    #[test]
    fn unknown_status_is_malformed() {
        let sb = signed().to_json_bytes();
        let t = edit_resealed(&sb, |m| {
            m["items"][0]["status"] = "maybe".into();
        });
        assert_eq!(
            SignedBatch::from_json_bytes(&t).unwrap_err().code(),
            "batch_malformed"
        );
    }
}
