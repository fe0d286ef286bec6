//! The gRPC front end: maps requests onto [`Core`] and refusals onto status codes that
//! carry the stable reason code in the `reason-code` metadata entry.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tron_proto::signer::signer_server::Signer;
use tron_proto::signer::{
    Decision, EvaluateResponse, FreezeRequest, FreezeResponse, GetPolicyRequest, GetPolicyResponse,
    KeyInfo, ListKeysRequest, ListKeysResponse, PolicyTextChunk, ReadPolicyTextRequest,
    SignRequest, SignResponse,
};

use crate::policy::archive::ArchiveError;
use crate::policy::{LoadedPolicy, Rpc};

use crate::reason::ReasonCode;

use super::core::Core;
use super::peer::Peer;
use super::refusal::{Refusal, RefusalKind};
use crate::approval::Offered;

/// Metadata key carrying a refusal's stable reason code.
pub const REASON_CODE_KEY: &str = "reason-code";
/// Metadata key carrying the audit sequence number of a refusal.
pub const AUDIT_SEQUENCE_KEY: &str = "audit-sequence";
/// Binary metadata on an `approval_required` refusal of Sign: the statement approvers sign
/// (UTF-8), the same text Evaluate returns in `Decision.approval_statement`.
pub const APPROVAL_STATEMENT_KEY: &str = "approval-statement-bin";

/// `GetPolicy` leaves out a policy text over this size: with the other fields it would pass
/// the 4 MiB message limit most gRPC clients apply. `ReadPolicyText` serves it in chunks.
pub const MAX_INLINE_POLICY_TEXT: usize = 3 * 1024 * 1024;

/// `ReadPolicyText` sends the text in chunks of this size.
pub const POLICY_TEXT_CHUNK: usize = 1024 * 1024;

/// The `Signer` service over a shared [`Core`].
#[derive(Clone)]
pub struct GrpcSigner {
    core: Arc<Core>,
    /// Reading a policy text back (file read and SHA-256 of up to tens of MiB) takes a
    /// blocking thread on a machine that also signs: at most this many at once.
    text_reads: Arc<tokio::sync::Semaphore>,
    /// Each open `ReadPolicyText` stream holds one copy of its text until the client has
    /// read it: at most this many streams at once, so unread streams cannot pile up memory.
    text_streams: Arc<tokio::sync::Semaphore>,
}

/// Policy text reads that may run at once; the rest wait their turn.
const CONCURRENT_TEXT_READS: usize = 2;

/// `ReadPolicyText` streams that may be open at once; one more is refused
/// (RESOURCE_EXHAUSTED, `policy_reads_busy`).
pub const MAX_POLICY_TEXT_STREAMS: usize = 4;

impl GrpcSigner {
    pub fn new(core: Arc<Core>) -> Self {
        GrpcSigner {
            core,
            text_reads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_TEXT_READS)),
            text_streams: Arc::new(tokio::sync::Semaphore::new(MAX_POLICY_TEXT_STREAMS)),
        }
    }

    /// The text of the policy with `hash`, read on the blocking pool under the read limit.
    /// `snapshot` is the policy in force as the caller saw it: if `hash` is its hash, its
    /// text is served even if a reload has replaced it since.
    async fn read_text(
        &self,
        hash: [u8; 32],
        snapshot: Arc<LoadedPolicy>,
    ) -> Result<String, Status> {
        let in_force = snapshot.hash == hash;
        // The read slots are never closed and a read does not panic; should either happen,
        // the caller gets an internal error, not a text.
        let failed = || {
            coded(
                tonic::Code::Internal,
                ReasonCode::PolicyArchive,
                "reading the policy text failed".into(),
            )
        };
        // Owned by the blocking task: a cancelled request cannot free its slot while the read
        // it started still runs.
        let permit = Arc::clone(&self.text_reads)
            .acquire_owned()
            .await
            .map_err(|_| failed())?;
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if in_force {
                core.policy_text(&snapshot)
            } else {
                core.policy_text_by_hash(&hash)
            }
        })
        .await
        .map_err(|_| failed())?
        .map_err(|e| archive_status(e, &hash, in_force))
    }
}

/// Who is calling, as the transport saw it: the client certificate on TLS, uid/gid/pid on a
/// Unix socket, the peer address on plaintext (loopback) TCP.
pub fn peer<T>(req: &Request<T>) -> Peer {
    if let Some(info) = req.extensions().get::<super::peer::TlsConnectInfo>() {
        return Peer::Tls(info.clone());
    }
    if let Some(info) = req
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
    {
        return match &info.peer_cred {
            Some(c) => Peer::Unix {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            None => Peer::UnixUnknown,
        };
    }
    match req.remote_addr() {
        Some(a) => Peer::PlainTcp(a),
        None => Peer::UnixUnknown,
    }
}

/// A status carrying a stable reason code, in the message and the `reason-code` metadata.
fn coded(code: tonic::Code, reason: ReasonCode, message: String) -> Status {
    let mut s = Status::new(code, format!("[{reason}] {message}"));
    s.metadata_mut()
        .insert(REASON_CODE_KEY, MetadataValue::from_static(reason.as_str()));
    s
}

/// Reading a policy text from the archive failed. An earlier policy missing from the archive
/// is NOT_FOUND; anything else, and any failure for the policy in force, is INTERNAL, and
/// nothing is served. Callers get the hash; the file's path stays in the signer's log.
fn archive_status(e: ArchiveError, hash: &[u8; 32], in_force: bool) -> Status {
    let hash = hex::encode(hash);
    match (&e, in_force) {
        // Any caller can ask for any hash: not worth an error line each time.
        (ArchiveError::Missing { .. }, false) => tracing::info!(policy = %hash, "{e}"),
        _ => tracing::error!(policy = %hash, "policy text not served: {e}"),
    }
    match e {
        ArchiveError::Missing { .. } if !in_force => coded(
            tonic::Code::NotFound,
            ReasonCode::PolicyNotArchived,
            format!(
                "policy {hash} is not in this signer's policy archive: it was never in force \
                 here, or its archived copy is gone"
            ),
        ),
        ArchiveError::Missing { .. } => coded(
            tonic::Code::Internal,
            ReasonCode::PolicyArchive,
            format!("the archived copy of policy {hash}, which is in force, is missing"),
        ),
        ArchiveError::Tampered { .. } => coded(
            tonic::Code::Internal,
            ReasonCode::PolicyArchive,
            format!(
                "the archived copy of policy {hash} does not match its hash (edited or \
                 damaged); not served"
            ),
        ),
        ArchiveError::Io { .. } => coded(
            tonic::Code::Internal,
            ReasonCode::PolicyArchive,
            format!("the archived copy of policy {hash} could not be read (see the signer's log)"),
        ),
    }
}

/// A hash given as 64 hex digits (either case).
fn parse_policy_hash(hex_text: &str) -> Result<[u8; 32], Status> {
    let invalid = |what: String| {
        coded(
            tonic::Code::InvalidArgument,
            ReasonCode::PolicyHashInvalid,
            format!("a policy hash is 64 hex digits (SHA-256 of the policy text): {what}"),
        )
    };
    let len = hex_text.chars().count();
    if len != 64 {
        return Err(invalid(format!("got {len} characters")));
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut hash)
        .map_err(|_| invalid("got a character that is not a hex digit".into()))?;
    Ok(hash)
}

/// The approvals of a request, as the decision core takes them.
fn offered(approvals: &[tron_proto::signer::Approval]) -> Vec<Offered<'_>> {
    approvals
        .iter()
        .map(|a| Offered {
            signature: &a.signature,
            statement: &a.statement,
        })
        .collect()
}

/// Turns a refusal into a status with its reason code attached.
pub fn status(r: Refusal) -> Status {
    let code = match r.kind {
        RefusalKind::InvalidArgument => tonic::Code::InvalidArgument,
        RefusalKind::Denied => tonic::Code::PermissionDenied,
        RefusalKind::Unavailable => tonic::Code::Unavailable,
        RefusalKind::Exhausted => tonic::Code::ResourceExhausted,
    };
    let mut s = coded(code, r.code, r.message);
    if let Some(seq) = r.audit_sequence {
        s.metadata_mut()
            .insert(AUDIT_SEQUENCE_KEY, MetadataValue::from(seq));
    }
    if let Some(text) = &r.statement {
        s.metadata_mut().insert_bin(
            APPROVAL_STATEMENT_KEY,
            tonic::metadata::MetadataValue::from_bytes(text.as_bytes()),
        );
    }
    s
}

type PolicyTextStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<PolicyTextChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Signer for GrpcSigner {
    type ReadPolicyTextStream = PolicyTextStream;

    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        let who = peer(&request);
        let req = request.into_inner();
        let s = self
            .core
            .sign_with(
                &who,
                &req.key,
                &req.raw_data,
                &req.payout_id,
                &offered(&req.approvals),
                req.deposit_index,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(SignResponse {
            txid: s.txid.to_vec(),
            signature: s.signature.to_vec(),
            signed_transaction: s.signed_transaction,
            decision: Some(Decision {
                allowed: true,
                policy_hash: s.policy_hash,
                rule: s.rule,
                audit_sequence: s.audit_sequence,
                reason_code: String::new(),
                message: String::new(),
                approval_statement: String::new(),
            }),
            replayed: s.replayed,
        }))
    }

    async fn evaluate(
        &self,
        request: Request<SignRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let who = peer(&request);
        let req = request.into_inner();
        let e = self
            .core
            .evaluate_with(
                &who,
                &req.key,
                &req.raw_data,
                &req.payout_id,
                &offered(&req.approvals),
                req.deposit_index,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(EvaluateResponse {
            txid: e.txid.to_vec(),
            decision: Some(Decision {
                allowed: e.allowed,
                policy_hash: e.policy_hash,
                rule: e.rule,
                audit_sequence: e.audit_sequence,
                reason_code: e
                    .reason_code
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
                message: e.message,
                approval_statement: e.approval_statement.unwrap_or_default(),
            }),
        }))
    }

    async fn freeze(
        &self,
        request: Request<FreezeRequest>,
    ) -> Result<Response<FreezeResponse>, Status> {
        let who = peer(&request);
        let req = request.into_inner();
        let taken = self
            .core
            .freeze(&who, &req.statement, &req.signature)
            .await
            .map_err(status)?;
        Ok(Response::new(FreezeResponse {
            description: taken.description,
            admin: taken.admin,
            already_frozen: taken.already,
            audit_sequence: taken.audit_sequence,
        }))
    }

    async fn list_keys(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        let allowed = self
            .core
            .allow(&peer(&request), Rpc::ListKeys)
            .await
            .map_err(status)?;
        // Only the keys the caller is granted: the others are not its business.
        let keys = self
            .core
            .keys()
            .iter()
            .filter(|k| allowed.keys.contains(&k.address()))
            .map(|k| KeyInfo {
                address: k.address().to_base58(),
                backend: k.backend().into(),
                label: k.label().into(),
            })
            .collect();
        Ok(Response::new(ListKeysResponse { keys }))
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        // One snapshot for the grant, hash and text, so a reload in between cannot mix them.
        // A text too large to send is not read at all.
        let p = self
            .core
            .allow(&peer(&request), Rpc::GetPolicy)
            .await
            .map_err(status)?
            .policy;
        let text_omitted = p.text_len > MAX_INLINE_POLICY_TEXT;
        let text = if text_omitted {
            String::new()
        } else {
            self.read_text(p.hash, Arc::clone(&p)).await?
        };
        Ok(Response::new(GetPolicyResponse {
            hash: p.hash_hex(),
            version: p.version,
            name: p.name.clone(),
            text,
            text_size: p.text_len as u64,
            text_omitted,
        }))
    }

    async fn read_policy_text(
        &self,
        request: Request<ReadPolicyTextRequest>,
    ) -> Result<Response<Self::ReadPolicyTextStream>, Status> {
        let current = self
            .core
            .allow(&peer(&request), Rpc::ReadPolicyText)
            .await
            .map_err(status)?
            .policy;
        let asked = request.into_inner().hash;
        let hash = if asked.is_empty() {
            current.hash
        } else {
            parse_policy_hash(&asked)?
        };
        // Held by the stream until it ends or the client goes away.
        let open = Arc::clone(&self.text_streams)
            .try_acquire_owned()
            .map_err(|_| {
                coded(
                    tonic::Code::ResourceExhausted,
                    ReasonCode::PolicyReadsBusy,
                    format!(
                        "{MAX_POLICY_TEXT_STREAMS} policy text streams are already open; \
                         try again when one has been read"
                    ),
                )
            })?;
        let text = self.read_text(hash, current).await?.into_bytes();
        let hash_hex = hex::encode(hash);
        // Chunks are cut as the client reads them: one copy of the text per stream.
        let chunks = text.len().div_ceil(POLICY_TEXT_CHUNK);
        let stream = tokio_stream::iter((0..chunks).map(move |i| {
            let _open = &open;
            let end = text.len().min((i + 1) * POLICY_TEXT_CHUNK);
            Ok(PolicyTextChunk {
                hash: hash_hex.clone(),
                data: text[i * POLICY_TEXT_CHUNK..end].to_vec(),
            })
        }));
        Ok(Response::new(Box::pin(stream)))
    }
}
