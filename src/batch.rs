//! `tron-signer batch sign`: the air-gapped front end of the decision core.
//!
//! A batch file is just another transport. Every item goes through [`Core::sign`], the
//! same decode, policy, ledger and audit path a gRPC call takes, so limits consumed here
//! count for gRPC and the other way round. The caller is the exporter: the file carries the
//! exporter's SSH signature (Ed25519), and the policy's `[[caller]]` with that `batch_key`
//! must hold a Sign grant for each item's key, or the item is refused and audited like a
//! gRPC request from an unlisted or ungranted caller. A file without a signature, or whose
//! signature does not verify over its content, is refused whole; so is a file whose
//! checksum, envelope or hex is wrong; both before the keystore is even opened: nothing in
//! it is signed. A file for another network than the
//! policy's gets an answer file in which every item is refused with `network_mismatch`:
//! Tron addresses look the same on every network, so only the policy can tell them apart.
//!
//! The answer file is written to a temporary file beside the target, fsynced, then linked
//! into place, so it either appears complete or not at all, and an existing file is never
//! replaced (an operator carrying the wrong USB stick must not lose yesterday's answers).

use std::io::Write;
use std::path::{Path, PathBuf};

use tron_proto::batch::{BatchError, SignedBatch, SignedItem, UnsignedBatch};

use crate::approval::Offered;
use crate::config::{Config, ConfigError};
use crate::durable_file;
use crate::reason::ReasonCode;
use crate::service::core::system_clock;
use crate::service::run::{build_core, StartError};
use crate::service::{Core, Peer};
use crate::sshsig::{self, SshSigError};

/// `tron-signer batch …`, already parsed (the flags are in `crate::cli::batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchCommand {
    /// Sign the unsigned batch `input` (exported by `tron-broadcaster batch export`) with the
    /// `serve` configuration `config`, writing the answers to `out`, which must not exist yet.
    Sign {
        config: PathBuf,
        input: PathBuf,
        out: PathBuf,
    },
}

/// Why a batch was not processed. When any of these is returned, no output file exists.
#[derive(Debug, thiserror::Error)]
pub enum BatchCliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}")]
    ReadInput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input batch {path} refused, nothing signed: {source}")]
    Input { path: PathBuf, source: BatchError },
    #[error("input batch {path} refused, nothing signed: it has no exporter signature (export it with a broadcaster that has [batch] signing_key)")]
    Unsigned { path: PathBuf },
    #[error("input batch {path} refused, nothing signed: exporter signature: {source}")]
    BadSignature { path: PathBuf, source: SshSigError },
    #[error("input batch {path} refused, nothing signed: exporter signature made with a {algorithm} key; exporters sign with Ed25519")]
    NotEd25519 { path: PathBuf, algorithm: String },
    #[error("{path} already exists; choose another output file (answers are never overwritten)")]
    OutputExists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    WriteOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl BatchCliError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            BatchCliError::Config(_) => "config_invalid",
            BatchCliError::ReadInput { .. } => "batch_input_unreadable",
            BatchCliError::Input { source, .. } => source.code(),
            BatchCliError::Unsigned { .. } => ReasonCode::BatchUnsigned.as_str(),
            BatchCliError::BadSignature { .. } | BatchCliError::NotEd25519 { .. } => {
                ReasonCode::BatchSignatureInvalid.as_str()
            }
            BatchCliError::OutputExists { .. } => "batch_output_exists",
            BatchCliError::WriteOutput { .. } => "batch_output_unwritable",
            BatchCliError::Start(e) => e.code(),
            BatchCliError::Runtime(_) => "runtime",
        }
    }
}

/// What a batch run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub signed: usize,
    pub refused: usize,
}

/// Runs a batch command, printing a one-line summary to `out`.
pub fn run_batch(cmd: BatchCommand, out: &mut dyn Write) -> Result<BatchSummary, BatchCliError> {
    match cmd {
        BatchCommand::Sign {
            config,
            input,
            out: out_path,
        } => {
            let cfg = Config::load(&config)?;
            // Everything that can refuse the whole file is checked before keys are unlocked.
            let batch = read_input(&input)?;
            let exporter = exporter_of(&input, &batch)?;
            if out_path.exists() {
                return Err(BatchCliError::OutputExists { path: out_path });
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BatchCliError::Runtime)?;
            let signed = rt.block_on(async {
                let core = build_core(&cfg).await?;
                let peer = Peer::Batch {
                    file: file_name(&input),
                    exporter,
                };
                Ok::<_, BatchCliError>(sign_batch(&core, &peer, &batch).await)
            })?;
            write_new(&out_path, &signed.to_json_bytes())?;
            let summary = summarize(&signed);
            // A closed stdout must not turn a completed, durable batch into an error.
            let _ = writeln!(
                out,
                "{}: {} signed, {} refused",
                out_path.display(),
                summary.signed,
                summary.refused
            );
            Ok(summary)
        }
    }
}

/// Reads and checks an unsigned batch file.
pub fn read_input(path: &Path) -> Result<UnsignedBatch, BatchCliError> {
    let bytes = std::fs::read(path).map_err(|source| BatchCliError::ReadInput {
        path: path.to_owned(),
        source,
    })?;
    UnsignedBatch::from_json_bytes(&bytes).map_err(|source| BatchCliError::Input {
        path: path.to_owned(),
        source,
    })
}

/// The Ed25519 key whose signature over the batch's content verifies: the exporter, whom
/// the policy must list as a caller.
pub fn exporter_of(path: &Path, batch: &UnsignedBatch) -> Result<[u8; 32], BatchCliError> {
    let Some(e) = &batch.exporter else {
        return Err(BatchCliError::Unsigned {
            path: path.to_owned(),
        });
    };
    let verified = sshsig::verify(
        &e.signature,
        tron_proto::batch::EXPORTER_NAMESPACE,
        e.digest.as_bytes(),
    )
    .map_err(|source| BatchCliError::BadSignature {
        path: path.to_owned(),
        source,
    })?;
    verified.ed25519().ok_or_else(|| BatchCliError::NotEd25519 {
        path: path.to_owned(),
        algorithm: verified.key.algorithm().to_string(),
    })
}

/// The input file's name, as audit records name the batch.
pub fn file_name(input: &Path) -> String {
    input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| input.display().to_string())
}

/// Signs every item through the decision core, in file order, and collects the answers.
/// Items of a batch for another network than the policy's are refused without being asked.
pub async fn sign_batch(core: &Core, peer: &Peer, batch: &UnsignedBatch) -> SignedBatch {
    let mut items = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let offered: Vec<Offered<'_>> = item
            .approvals
            .iter()
            .map(|a| Offered {
                signature: &a.signature,
                statement: &a.statement,
            })
            .collect();
        let answer = match core
            .sign_on(
                Some(&batch.network),
                peer,
                &item.key,
                &item.raw_data,
                &item.payout_id,
                &offered,
                None,
            )
            .await
        {
            Ok(s) => SignedItem::Signed {
                payout_id: item.payout_id.clone(),
                txid: s.txid,
                signature: s.signature,
                signed_transaction: s.signed_transaction,
            },
            Err(r) => SignedItem::Refused {
                payout_id: item.payout_id.clone(),
                // The hash of the bytes as received, so the broadcaster can match its own.
                txid: Some(tron_proto::txid(&item.raw_data)),
                reason_code: r.code.as_str().to_owned(),
                message: r.message,
            },
        };
        items.push(answer);
    }
    SignedBatch {
        created_at_ms: (system_clock())(),
        network: batch.network.clone(),
        items,
    }
}

/// At most 32 characters of a name from the file, for messages (the network is free text).
fn summarize(b: &SignedBatch) -> BatchSummary {
    let signed = b
        .items
        .iter()
        .filter(|i| matches!(i, SignedItem::Signed { .. }))
        .count();
    BatchSummary {
        signed,
        refused: b.items.len() - signed,
    }
}

/// Writes `bytes` to `path` atomically and only if `path` does not exist
/// ([`durable_file::Mode::CreateNew`]).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), BatchCliError> {
    durable_file::write_atomic(path, bytes, durable_file::Mode::CreateNew, &|| Ok(())).map_err(
        |e| {
            if e.already_exists() {
                BatchCliError::OutputExists {
                    path: path.to_owned(),
                }
            } else {
                BatchCliError::WriteOutput {
                    path: path.to_owned(),
                    source: e.source,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_new(&p, b"first").unwrap();
        let e = write_new(&p, b"second").unwrap_err();
        assert_eq!(e.code(), "batch_output_exists");
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn audit_records_name_the_file() {
        assert_eq!(
            file_name(Path::new("/media/usb/batch-42.json")),
            "batch-42.json"
        );
    }
}
