//! The gRPC front end: maps requests onto [`Core`] and refusals onto status codes that
//! carry the stable reason code in the `reason-code` metadata entry.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use tron_proto::signer::signer_server::Signer;
use tron_proto::signer::{
    Decision, EvaluateResponse, GetPolicyRequest, GetPolicyResponse, KeyInfo, ListKeysRequest,
    ListKeysResponse, PolicyTextChunk, ReadPolicyTextRequest, SignRequest, SignResponse,
};

use crate::policy::archive::ArchiveError;

use super::core::{Core, Refusal, RefusalKind};

/// Metadata key carrying a refusal's stable reason code.
pub const REASON_CODE_KEY: &str = "reason-code";
/// Metadata key carrying the audit sequence number of a refusal.
pub const AUDIT_SEQUENCE_KEY: &str = "audit-sequence";

/// `GetPolicy` leaves out a policy text over this size: with the other fields it would pass
/// the 4 MiB message limit most gRPC clients apply. `ReadPolicyText` serves it in chunks.
pub const MAX_INLINE_POLICY_TEXT: usize = 3 * 1024 * 1024;

/// `ReadPolicyText` sends the text in chunks of this size.
pub const POLICY_TEXT_CHUNK: usize = 1024 * 1024;

/// The `Signer` service over a shared [`Core`].
#[derive(Clone)]
pub struct GrpcSigner {
    core: Arc<Core>,
}

impl GrpcSigner {
    pub fn new(core: Arc<Core>) -> Self {
        GrpcSigner { core }
    }
}

/// Who is calling, as the transport saw it: peer address on TCP, uid/pid on a Unix socket.
pub fn caller<T>(req: &Request<T>) -> String {
    if let Some(info) = req
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
    {
        return match &info.peer_cred {
            Some(c) => format!(
                "unix:uid={},gid={},pid={}",
                c.uid(),
                c.gid(),
                c.pid().map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ),
            None => "unix:unknown".into(),
        };
    }
    match req.remote_addr() {
        Some(a) => format!("tcp:{a}"),
        None => "unknown".into(),
    }
}

/// A status carrying a stable reason code, in the message and the `reason-code` metadata.
fn coded(code: tonic::Code, reason: &'static str, message: String) -> Status {
    let mut s = Status::new(code, format!("[{reason}] {message}"));
    s.metadata_mut()
        .insert(REASON_CODE_KEY, MetadataValue::from_static(reason));
    s
}

/// Reading a policy text from the archive failed. An earlier policy missing from the archive
/// is NOT_FOUND (it was never in force here); anything else, and any failure for the policy
/// in force, is INTERNAL, and nothing is served.
fn archive_status(e: ArchiveError, in_force: bool) -> Status {
    match e {
        ArchiveError::Missing { .. } if !in_force => coded(
            tonic::Code::NotFound,
            "policy_not_archived",
            format!("no policy with this hash has been in force here ({e})"),
        ),
        other => coded(tonic::Code::Internal, "policy_archive", other.to_string()),
    }
}

/// A hash given as 64 hex digits.
fn parse_policy_hash(hex_text: &str) -> Result<[u8; 32], Status> {
    let invalid = || {
        coded(
            tonic::Code::InvalidArgument,
            "policy_hash_invalid",
            format!(
                "a policy hash is 64 hex digits (SHA-256 of the policy text); got {} characters",
                hex_text.chars().count()
            ),
        )
    };
    let bytes = hex::decode(hex_text).map_err(|_| invalid())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| invalid())
}

/// Turns a refusal into a status with its reason code attached.
pub fn status(r: Refusal) -> Status {
    let code = match r.kind {
        RefusalKind::InvalidArgument => tonic::Code::InvalidArgument,
        RefusalKind::Denied => tonic::Code::PermissionDenied,
        RefusalKind::Unavailable => tonic::Code::Unavailable,
    };
    let mut s = Status::new(code, format!("[{}] {}", r.code, r.message));
    if let Ok(v) = MetadataValue::try_from(r.code.as_str()) {
        s.metadata_mut().insert(REASON_CODE_KEY, v);
    }
    if let Some(seq) = r.audit_sequence {
        s.metadata_mut()
            .insert(AUDIT_SEQUENCE_KEY, MetadataValue::from(seq));
    }
    s
}

type PolicyTextStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<PolicyTextChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Signer for GrpcSigner {
    type ReadPolicyTextStream = PolicyTextStream;

    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        let who = caller(&request);
        let req = request.into_inner();
        let s = self
            .core
            .sign(&who, &req.key, &req.raw_data, &req.payout_id)
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
            }),
            replayed: s.replayed,
        }))
    }

    async fn evaluate(
        &self,
        request: Request<SignRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let who = caller(&request);
        let req = request.into_inner();
        let e = self
            .core
            .evaluate(&who, &req.key, &req.raw_data, &req.payout_id)
            .await
            .map_err(status)?;
        Ok(Response::new(EvaluateResponse {
            txid: e.txid.to_vec(),
            decision: Some(Decision {
                allowed: e.allowed,
                policy_hash: e.policy_hash,
                rule: e.rule,
                audit_sequence: e.audit_sequence,
                reason_code: e.reason_code,
                message: e.message,
            }),
        }))
    }

    async fn list_keys(
        &self,
        _request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        let keys = self
            .core
            .keys()
            .iter()
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
        _request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        // One snapshot for hash and text, so a reload in between cannot mix them.
        let p = self.core.policy();
        let (core, snapshot) = (Arc::clone(&self.core), Arc::clone(&p));
        let text = tokio::task::spawn_blocking(move || core.policy_text(&snapshot))
            .await
            .map_err(|_| Status::internal("[policy_archive] reading the policy text failed"))?
            .map_err(|e| archive_status(e, true))?;
        let text_size = text.len() as u64;
        let text_omitted = text.len() > MAX_INLINE_POLICY_TEXT;
        Ok(Response::new(GetPolicyResponse {
            hash: p.hash_hex(),
            version: p.version,
            name: p.name.clone(),
            text: if text_omitted { String::new() } else { text },
            text_size,
            text_omitted,
        }))
    }

    async fn read_policy_text(
        &self,
        request: Request<ReadPolicyTextRequest>,
    ) -> Result<Response<Self::ReadPolicyTextStream>, Status> {
        let asked = request.into_inner().hash;
        let in_force = self.core.policy().hash;
        let hash = if asked.is_empty() {
            in_force
        } else {
            parse_policy_hash(&asked)?
        };
        let core = Arc::clone(&self.core);
        let text = tokio::task::spawn_blocking(move || core.policy_text_by_hash(&hash))
            .await
            .map_err(|_| Status::internal("[policy_archive] reading the policy text failed"))?
            .map_err(|e| archive_status(e, hash == in_force))?;
        let hash_hex = hex::encode(hash);
        let bytes = text.into_bytes();
        let chunks: Vec<Result<PolicyTextChunk, Status>> = bytes
            .chunks(POLICY_TEXT_CHUNK)
            .map(|c| {
                Ok(PolicyTextChunk {
                    hash: hash_hex.clone(),
                    data: c.to_vec(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}
