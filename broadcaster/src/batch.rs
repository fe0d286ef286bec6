//! The broadcaster's side of the air gap: export unsigned transactions to a batch file,
//! import the signed answer.
//!
//! The file format is `tron_proto::batch`, the one `tron-signer batch sign` reads and
//! writes: versioned, checksummed JSON. What `batch export` writes is exactly what the
//! signer reads, and what the signer writes is exactly what `batch import` reads.
//!
//! Import trusts nothing in the file but the signature bytes and the refusal reasons: the
//! txid is recomputed from the raw bytes this broadcaster stored at export, and every
//! signature must recover to the configured owner over that txid. The signed transaction
//! that is broadcast is rebuilt from our own bytes.

use std::path::Path;

use tron_proto::batch::{SignedBatch, SignedItem, UnsignedBatch, UnsignedItem};

use crate::builder::HeadBlock;
use crate::exporter_key::{ExporterKey, ExporterKeyError};
use crate::model::{now_ms, Origin, PayoutKind, Reason, Status};
use crate::node::NodeError;
use crate::pipeline::{can_still_land, Pipeline, StepError};
use crate::signer::{self, SignOutcome};
use crate::store::StoreError;

/// Why a batch could not be written or read. A file refused here is not acted on at all.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("batch file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Envelope, version, kind, checksum, hex or duplicate ids: see `tron_proto::batch`.
    #[error("batch file refused, nothing imported: {0}")]
    File(#[from] tron_proto::batch::BatchError),
    #[error("batch file is for network {found:?}, this broadcaster runs on {expected:?}")]
    NetworkMismatch {
        expected: &'static str,
        found: String,
    },
    #[error(transparent)]
    ExporterKey(#[from] ExporterKeyError),
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
            BatchError::File(e) => e.code(),
            BatchError::NetworkMismatch { .. } => "batch_network_mismatch",
            BatchError::ExporterKey(e) => e.code(),
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
    /// (payout key `<tenant>/<id>`, txid, expiration ms).
    pub items: Vec<(String, String, i64)>,
}

/// Writes every payout that needs a signature to `out`. New transactions are built with the
/// batch expiration window and recorded (txid, expiration) before the file is written;
/// already-exported, still-valid ones are written again unchanged (same txid). The file is
/// signed with the exporter key, which the signer's policy must list as a caller.
pub async fn export(
    pipeline: &Pipeline,
    out: &Path,
    exporter: &ExporterKey,
) -> Result<ExportReport, BatchError> {
    let store = pipeline.store();
    let key = pipeline.settings().key;
    let margin = pipeline.settings().solidity_margin.as_millis() as i64;
    let mut head: Option<HeadBlock> = None;
    let mut report = ExportReport::default();
    let mut items = Vec::new();
    for p in store.active()? {
        // Sweeps and top-ups name a deposit index, which batch files do not carry: they
        // are signed online only.
        if p.kind != PayoutKind::Merchant {
            continue;
        }
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
                store.update(&p.key(), |p| -> Result<(), StoreError> {
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
            .push((p.key(), attempt.txid.clone(), attempt.expiration_ms));
        let raw_data = hex::decode(&attempt.raw_data).map_err(|e| {
            BatchError::Step(format!("stored raw_data of {} unreadable: {e}", p.key()))
        })?;
        items.push(UnsignedItem {
            payout_id: p.key(),
            key: key.to_base58(),
            raw_data,
            approvals: vec![],
        });
    }
    let mut batch = UnsignedBatch {
        created_at_ms: now_ms(),
        network: pipeline.settings().network.as_str().to_owned(),
        items,
        exporter: None,
    };
    exporter.sign(&mut batch)?;
    write_atomic(out, &batch.to_json_bytes())?;
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
    let batch = SignedBatch::from_json_bytes(&bytes)?;
    let expected = pipeline.settings().network.as_str();
    if batch.network != expected {
        return Err(BatchError::NetworkMismatch {
            expected,
            found: batch.network,
        });
    }
    let mut report = ImportReport::default();
    for item in &batch.items {
        let id = item.payout_id().to_owned();
        match item {
            SignedItem::Signed {
                payout_id,
                txid,
                signature,
                signed_transaction,
            } => match apply_signature(pipeline, payout_id, txid, signature, signed_transaction) {
                Ok(()) => report.signed.push(id),
                Err((code, m)) => report.rejected.push((id, code, m)),
            },
            SignedItem::Refused {
                payout_id,
                txid,
                reason_code,
                message,
            } => {
                let reason = Reason {
                    code: reason_code.clone(),
                    message: message.clone(),
                };
                match apply_refusal(pipeline, payout_id, txid.as_ref(), reason) {
                    Ok(()) => report.denied.push(id),
                    Err((code, m)) => report.rejected.push((id, code, m)),
                }
            }
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

fn apply_signature(
    pipeline: &Pipeline,
    payout_id: &str,
    file_txid: &[u8; 32],
    signature: &[u8; 65],
    file_signed_transaction: &[u8],
) -> ItemResult {
    let key = pipeline.settings().key;
    let a = awaiting(pipeline, payout_id)?;
    if a.signed_transaction.is_some() {
        return Ok(()); // imported before: idempotent
    }
    let raw = hex::decode(&a.raw_data).map_err(|e| ("stored_raw_unreadable", e.to_string()))?;
    let txid = tron_proto::txid(&raw);
    if file_txid != &txid {
        return Err((
            "txid_mismatch",
            format!(
                "item txid {} is not the exported transaction {}",
                hex::encode(file_txid),
                hex::encode(txid)
            ),
        ));
    }
    // The signature is checked over the txid of our own bytes; the signed transaction we
    // broadcast is rebuilt from those bytes (and the file's copy must be the same).
    let stx = match signer::verify(
        &key,
        &raw,
        signature.to_vec(),
        file_signed_transaction.to_vec(),
    ) {
        SignOutcome::Signed {
            signed_transaction, ..
        } => signed_transaction,
        SignOutcome::Retry(m)
        | SignOutcome::Denied(Reason { message: m, .. })
        | SignOutcome::ApprovalRequired {
            reason: Reason { message: m, .. },
            ..
        } => return Err(("signature_invalid", m)),
    };
    let txid_hex = hex::encode(txid);
    pipeline
        .store()
        .update(payout_id, |p| -> Result<(), StoreError> {
            if let Some(cur) = p.current_mut().filter(|c| c.txid == txid_hex) {
                cur.signed_transaction = Some(hex::encode(&stx));
            }
            p.updated_at_ms = now_ms();
            Ok(())
        })
        .map_err(|e| (e.code(), e.to_string()))?;
    Ok(())
}

fn apply_refusal(
    pipeline: &Pipeline,
    payout_id: &str,
    file_txid: Option<&[u8; 32]>,
    reason: Reason,
) -> ItemResult {
    let a = awaiting(pipeline, payout_id)?;
    if let Some(t) = file_txid {
        let t = hex::encode(t);
        if !t.eq_ignore_ascii_case(&a.txid) {
            return Err((
                "txid_mismatch",
                format!(
                    "refusal is for {t}, not the exported transaction {}",
                    a.txid
                ),
            ));
        }
    }
    pipeline
        .store()
        .update(payout_id, |p| -> Result<(), StoreError> {
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
