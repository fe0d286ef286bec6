//! The broadcaster's side of the air gap: export unsigned transactions to a batch file,
//! import the signed answer.
//!
//! The file format here is the contract agreed with `tron-signer batch sign`
//! (`tron_proto::batch` on the signer side): a versioned JSON document whose `checksum` is
//! the SHA-256 of the document serialised without it. It is kept in this one module so it
//! can be swapped for the shared types in one place.
//!
//! Import trusts nothing in the file but the signature bytes and the refusal reasons: the
//! txid is recomputed from the raw bytes this broadcaster stored at export, and every
//! signature must recover to the configured owner over that txid.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::builder::HeadBlock;
use crate::model::{now_ms, Origin, Reason, Status};
use crate::node::NodeError;
use crate::pipeline::{can_still_land, Pipeline, StepError};
use crate::signer::{self, SignOutcome};
use crate::store::StoreError;

/// Format version written and accepted.
pub const VERSION: u32 = 1;
pub const KIND_REQUEST: &str = "tron-signer-batch-request";
pub const KIND_RESPONSE: &str = "tron-signer-batch-response";

/// One transaction to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestItem {
    pub payout_id: String,
    /// The signing key's address (Base58).
    pub key: String,
    /// `Transaction.raw` bytes, hex.
    pub raw_data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    pub version: u32,
    pub kind: String,
    pub created_at_ms: i64,
    pub items: Vec<RequestItem>,
}

/// A signature the offline signer produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedItem {
    pub payout_id: String,
    pub key: String,
    pub txid: String,
    /// 65 bytes `r || s || v`, hex.
    pub signature: String,
    /// The signed `Transaction`, hex (ignored: rebuilt from our own bytes).
    #[serde(default)]
    pub signed_transaction: String,
}

/// A refusal the offline signer recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedItem {
    pub payout_id: String,
    pub key: String,
    #[serde(default)]
    pub txid: String,
    pub reason_code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    pub version: u32,
    pub kind: String,
    pub created_at_ms: i64,
    pub signed: Vec<SignedItem>,
    pub refused: Vec<RefusedItem>,
}

/// A body and its checksum, as stored in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed<B> {
    #[serde(flatten)]
    pub body: B,
    pub checksum: String,
}

/// Why a batch could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("batch file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("batch file is not a valid batch document: {0}")]
    Format(String),
    #[error("batch version {0} is not supported (expected {VERSION})")]
    Version(u32),
    #[error("batch kind {0:?} is not {1:?}")]
    Kind(String, &'static str),
    #[error("batch checksum mismatch: the file was altered or truncated")]
    Checksum,
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Step(String),
}

impl BatchError {
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::Io { .. } => "batch_io",
            BatchError::Format(_) => "batch_format",
            BatchError::Version(_) => "batch_version",
            BatchError::Kind(..) => "batch_kind",
            BatchError::Checksum => "batch_checksum",
            BatchError::Node(e) => e.code(),
            BatchError::Store(e) => e.code(),
            BatchError::Step(_) => "batch_step",
        }
    }
}

impl From<StepError> for BatchError {
    fn from(e: StepError) -> BatchError {
        match e {
            StepError::Node(n) => BatchError::Node(n),
            StepError::Store(s) => BatchError::Store(s),
            StepError::Retry(m) => BatchError::Step(m),
        }
    }
}

fn checksum<B: Serialize>(body: &B) -> Result<String, BatchError> {
    let bytes = serde_json::to_vec(body).map_err(|e| BatchError::Format(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

/// Serialises `body` with its checksum.
pub fn seal<B: Serialize + Clone>(body: &B) -> Result<Vec<u8>, BatchError> {
    let sealed = Sealed {
        body: body.clone(),
        checksum: checksum(body)?,
    };
    serde_json::to_vec_pretty(&sealed).map_err(|e| BatchError::Format(e.to_string()))
}

/// Parses and checks a sealed document.
pub fn open<B: Serialize + for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<B, BatchError> {
    let sealed: Sealed<B> =
        serde_json::from_slice(bytes).map_err(|e| BatchError::Format(e.to_string()))?;
    if checksum(&sealed.body)? != sealed.checksum {
        return Err(BatchError::Checksum);
    }
    Ok(sealed.body)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// (payout id, txid, expiration ms).
    pub items: Vec<(String, String, i64)>,
}

/// Writes every payout that needs a signature to `out`. New transactions are built with the
/// batch expiration window and recorded (txid, expiration) before the file is written;
/// already-exported, still-valid ones are written again unchanged (same txid).
pub async fn export(pipeline: &Pipeline, out: &Path) -> Result<ExportReport, BatchError> {
    let store = pipeline.store();
    let key = pipeline.settings().key;
    let margin = pipeline.settings().solidity_margin.as_millis() as i64;
    let mut head: Option<HeadBlock> = None;
    let mut report = ExportReport::default();
    let mut items = Vec::new();
    for p in store.active()? {
        let h = match head {
            Some(h) => h,
            None => {
                let h = pipeline.node().head().await?;
                head = Some(h);
                h
            }
        };
        let attempt = match p.status {
            Status::Queued | Status::Retrying => {
                if p.current().is_some_and(|a| can_still_land(a, &h, margin)) {
                    continue;
                }
                let a = pipeline.build_attempt(&p, &h, Origin::Batch)?;
                let rec = a.clone();
                store.update(&p.id, |p| -> Result<(), StoreError> {
                    let note = format!(
                        "exported {} for offline signing (expires {} ms)",
                        rec.txid, rec.expiration_ms
                    );
                    p.attempts.push(rec);
                    p.transition(Status::Signing, now_ms(), note);
                    Ok(())
                })?;
                a
            }
            Status::Signing => match p.current() {
                Some(a)
                    if a.origin == Origin::Batch
                        && a.signed_transaction.is_none()
                        && can_still_land(a, &h, margin) =>
                {
                    a.clone()
                }
                _ => continue,
            },
            _ => continue,
        };
        report
            .items
            .push((p.id.clone(), attempt.txid.clone(), attempt.expiration_ms));
        items.push(RequestItem {
            payout_id: p.id.clone(),
            key: key.to_base58(),
            raw_data: attempt.raw_data.clone(),
        });
    }
    let body = RequestBody {
        version: VERSION,
        kind: KIND_REQUEST.into(),
        created_at_ms: now_ms(),
        items,
    };
    write_atomic(out, &seal(&body)?)?;
    Ok(report)
}

/// What an import did, item by item.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub signed: Vec<String>,
    pub denied: Vec<String>,
    /// (payout id, code, message) of items that were not applied.
    pub rejected: Vec<(String, &'static str, String)>,
}

/// Reads a signed batch, checks every signature against our own bytes and owner, records
/// signatures and refusals, then runs one pipeline pass to broadcast.
pub async fn import(pipeline: &Pipeline, file: &Path) -> Result<ImportReport, BatchError> {
    let bytes = std::fs::read(file).map_err(|source| BatchError::Io {
        path: file.display().to_string(),
        source,
    })?;
    let body: ResponseBody = open(&bytes)?;
    if body.version != VERSION {
        return Err(BatchError::Version(body.version));
    }
    if body.kind != KIND_RESPONSE {
        return Err(BatchError::Kind(body.kind, KIND_RESPONSE));
    }
    let mut report = ImportReport::default();
    for item in &body.signed {
        match apply_signature(pipeline, item) {
            Ok(()) => report.signed.push(item.payout_id.clone()),
            Err((code, m)) => report.rejected.push((item.payout_id.clone(), code, m)),
        }
    }
    for item in &body.refused {
        match apply_refusal(pipeline, item) {
            Ok(()) => report.denied.push(item.payout_id.clone()),
            Err((code, m)) => report.rejected.push((item.payout_id.clone(), code, m)),
        }
    }
    let tick = pipeline.tick().await;
    for (id, e) in tick.errors {
        tracing::warn!(payout = %id, error = %e, "will be retried by the running service");
    }
    Ok(report)
}

type ItemResult = Result<(), (&'static str, String)>;

fn awaiting(
    pipeline: &Pipeline,
    payout_id: &str,
) -> Result<crate::model::Attempt, (&'static str, String)> {
    let p = pipeline
        .store()
        .get(payout_id)
        .map_err(|e| (e.code(), e.to_string()))?
        .ok_or(("unknown_payout", format!("no payout {payout_id:?}")))?;
    match p.current() {
        Some(a) if p.status == Status::Signing && a.origin == Origin::Batch => Ok(a.clone()),
        _ => Err((
            "not_awaiting_signature",
            format!(
                "payout {payout_id:?} is {} and not waiting for an offline signature",
                p.status.as_str()
            ),
        )),
    }
}

fn apply_signature(pipeline: &Pipeline, item: &SignedItem) -> ItemResult {
    let key = pipeline.settings().key;
    if item.key != key.to_base58() && item.key != key.to_hex() {
        return Err((
            "key_mismatch",
            format!("item is for key {}, not {key}", item.key),
        ));
    }
    let a = awaiting(pipeline, &item.payout_id)?;
    if a.signed_transaction.is_some() {
        return Ok(()); // imported before: idempotent
    }
    let raw = hex::decode(&a.raw_data).map_err(|e| ("stored_raw_unreadable", e.to_string()))?;
    let txid = hex::encode(tron_proto::txid(&raw));
    if !item.txid.eq_ignore_ascii_case(&txid) {
        return Err((
            "txid_mismatch",
            format!(
                "item txid {} is not the exported transaction {txid}",
                item.txid
            ),
        ));
    }
    let sig = hex::decode(&item.signature)
        .map_err(|_| ("signature_invalid", "signature is not hex".to_owned()))?;
    let stx = match signer::verify(&key, &raw, sig, Vec::new()) {
        SignOutcome::Signed {
            signed_transaction, ..
        } => signed_transaction,
        SignOutcome::Retry(m) | SignOutcome::Denied(Reason { message: m, .. }) => {
            return Err(("signature_invalid", m))
        }
    };
    pipeline
        .store()
        .update(&item.payout_id, |p| -> Result<(), StoreError> {
            if let Some(cur) = p.current_mut().filter(|c| c.txid == txid) {
                cur.signed_transaction = Some(hex::encode(&stx));
            }
            p.updated_at_ms = now_ms();
            Ok(())
        })
        .map_err(|e| (e.code(), e.to_string()))?;
    Ok(())
}

fn apply_refusal(pipeline: &Pipeline, item: &RefusedItem) -> ItemResult {
    let a = awaiting(pipeline, &item.payout_id)?;
    if !item.txid.is_empty() && !item.txid.eq_ignore_ascii_case(&a.txid) {
        return Err((
            "txid_mismatch",
            format!(
                "refusal is for {}, not the exported transaction {}",
                item.txid, a.txid
            ),
        ));
    }
    let reason = Reason {
        code: item.reason_code.clone(),
        message: item.message.clone(),
    };
    pipeline
        .store()
        .update(&item.payout_id, |p| -> Result<(), StoreError> {
            let note = format!(
                "offline signer refused: [{}] {}",
                reason.code, reason.message
            );
            p.denial = Some(reason);
            p.transition(Status::Denied, now_ms(), note);
            Ok(())
        })
        .map_err(|e| (e.code(), e.to_string()))?;
    Ok(())
}

/// Reads a request file (for the offline side and for tests).
pub fn read_request(bytes: &[u8]) -> Result<RequestBody, BatchError> {
    let body: RequestBody = open(bytes)?;
    if body.version != VERSION {
        return Err(BatchError::Version(body.version));
    }
    if body.kind != KIND_REQUEST {
        return Err(BatchError::Kind(body.kind, KIND_REQUEST));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let body = RequestBody {
            version: VERSION,
            kind: KIND_REQUEST.into(),
            created_at_ms: 5,
            items: vec![RequestItem {
                payout_id: "p".into(),
                key: "T".into(),
                raw_data: "0a".into(),
            }],
        };
        let bytes = seal(&body).unwrap();
        assert_eq!(read_request(&bytes).unwrap(), body);
        let tampered = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"0a\"", "\"0b\"");
        assert_eq!(
            read_request(tampered.as_bytes()).unwrap_err().code(),
            "batch_checksum"
        );
        let mut v2 = body.clone();
        v2.version = 2;
        assert_eq!(
            read_request(&seal(&v2).unwrap()).unwrap_err().code(),
            "batch_version"
        );
        let mut k = body.clone();
        k.kind = KIND_RESPONSE.into();
        assert_eq!(
            read_request(&seal(&k).unwrap()).unwrap_err().code(),
            "batch_kind"
        );
        assert_eq!(read_request(b"{").unwrap_err().code(), "batch_format");
    }
}
