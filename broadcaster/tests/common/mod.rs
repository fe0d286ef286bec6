//! In-process doubles of the node's HTTP endpoints and of the signer's gRPC service, for
//! driving the pipeline deterministically: tests call `Pipeline::tick` and move the node's
//! clock by hand, so nothing depends on wall-clock time.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use k256::ecdsa::SigningKey;
use prost::Message;
use serde_json::{json, Value};
use tron_broadcaster::builder;
use tron_broadcaster::config::Network;
use tron_broadcaster::model::{Owner, Payout};
use tron_broadcaster::node::Node;
use tron_broadcaster::pipeline::{Pipeline, Settings};
use tron_broadcaster::signer::SignerConn;
use tron_broadcaster::store::Store;
use tron_proto::pb;
use tron_proto::signer::signer_server::{Signer, SignerServer};
use tron_proto::signer::{
    EvaluateResponse, GetPolicyRequest, GetPolicyResponse, ListKeysRequest, ListKeysResponse,
    SignRequest, SignResponse,
};
use tron_proto::Address;

/// The tenant the harness's payouts belong to.
pub const TENANT: &str = "shop";

pub fn owner() -> Owner {
    Owner {
        tenant: TENANT.into(),
        key_id: "0123456789abcdef".into(),
    }
}

/// The payout key (`<tenant>/<id>`) the signer and batch files see for `id`.
pub fn scoped(id: &str) -> String {
    tron_broadcaster::model::scoped_key(TENANT, id)
}

/// A scripted answer to the next broadcast.
#[derive(Debug, Clone)]
pub enum Script {
    Reject(&'static str),
    Http(u16),
}

#[derive(Default)]
pub struct NodeState {
    pub number: u64,
    pub timestamp_ms: i64,
    pub head_down: bool,
    pub script: VecDeque<Script>,
    /// Every signed transaction received (hex), in order.
    pub received: Vec<String>,
    /// txids the node accepted.
    pub accepted: Vec<String>,
    /// Solidified transaction infos by txid.
    pub solid: HashMap<String, Value>,
    pub auto_solidify: bool,
    pub api_keys: Vec<Option<String>>,
}

#[derive(Clone)]
pub struct MockNode {
    pub state: Arc<Mutex<NodeState>>,
    pub url: String,
}

fn block_id(number: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&number.to_be_bytes());
    for (i, b) in id.iter_mut().enumerate().skip(8) {
        *b = (number as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    id
}

fn note_key(s: &Arc<Mutex<NodeState>>, h: &HeaderMap) {
    let k = h
        .get("TRON-PRO-API-KEY")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.lock().unwrap().api_keys.push(k);
}

async fn now_block(State(s): State<Arc<Mutex<NodeState>>>, h: HeaderMap) -> Response {
    note_key(&s, &h);
    let st = s.lock().unwrap();
    if st.head_down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({
        "blockID": hex::encode(block_id(st.number)),
        "block_header": {"raw_data": {"number": st.number, "timestamp": st.timestamp_ms}}
    }))
    .into_response()
}

/// txid of a signed transaction: sha256 of its raw bytes.
pub fn txid_of_signed(stx: &[u8]) -> String {
    let tx = pb::Transaction::decode(stx).unwrap();
    hex::encode(tron_proto::txid(&tx.raw_data.unwrap().encode_to_vec()))
}

pub fn success_info(txid: &str, number: u64) -> Value {
    json!({"id": txid, "blockNumber": number, "blockTimeStamp": 1, "receipt": {"result": "SUCCESS"}})
}

async fn broadcast_hex(
    State(s): State<Arc<Mutex<NodeState>>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    note_key(&s, &h);
    let hex_tx = body["transaction"].as_str().unwrap_or_default().to_owned();
    let stx = hex::decode(&hex_tx).unwrap();
    let txid = txid_of_signed(&stx);
    let mut st = s.lock().unwrap();
    st.received.push(hex_tx);
    if let Some(script) = st.script.pop_front() {
        return match script {
            Script::Http(code) => StatusCode::from_u16(code).unwrap().into_response(),
            Script::Reject(code) => Json(json!({
                "result": false, "code": code, "txid": txid,
                "message": hex::encode(format!("{code} from the mock"))
            }))
            .into_response(),
        };
    }
    let expiration = pb::Transaction::decode(stx.as_slice())
        .ok()
        .and_then(|t| t.raw_data)
        .map(|r| r.expiration)
        .unwrap_or(0);
    if expiration <= st.timestamp_ms {
        return Json(
            json!({"result": false, "code": "TRANSACTION_EXPIRATION_ERROR", "txid": txid,
            "message": hex::encode("expired")}),
        )
        .into_response();
    }
    if st.accepted.contains(&txid) {
        return Json(
            json!({"result": false, "code": "DUP_TRANSACTION_ERROR", "txid": txid,
            "message": hex::encode("dup")}),
        )
        .into_response();
    }
    st.accepted.push(txid.clone());
    if st.auto_solidify {
        let n = st.number;
        st.solid.insert(txid.clone(), success_info(&txid, n));
    }
    Json(json!({"result": true, "txid": txid})).into_response()
}

async fn tx_info(
    State(s): State<Arc<Mutex<NodeState>>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    note_key(&s, &h);
    let id = body["value"].as_str().unwrap_or_default();
    let st = s.lock().unwrap();
    Json(st.solid.get(id).cloned().unwrap_or_else(|| json!({}))).into_response()
}

impl MockNode {
    pub async fn start() -> MockNode {
        let state = Arc::new(Mutex::new(NodeState {
            number: 1000,
            timestamp_ms: 1_700_000_000_000,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/wallet/getnowblock", post(now_block))
            .route("/wallet/broadcasthex", post(broadcast_hex))
            .route("/walletsolidity/gettransactioninfobyid", post(tx_info))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        MockNode {
            state,
            url: format!("http://{addr}"),
        }
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap()
    }

    /// Produces blocks until the head time is `ms` later.
    pub fn advance(&self, ms: i64) {
        let mut s = self.st();
        s.timestamp_ms += ms;
        s.number += (ms / 3000).max(1) as u64;
    }

    pub fn solidify_all(&self) {
        let mut s = self.st();
        let n = s.number;
        for t in s.accepted.clone() {
            s.solid
                .entry(t.clone())
                .or_insert_with(|| success_info(&t, n));
        }
    }
}

/// A signer double: signs anything unless told to refuse; remembers every request.
#[derive(Default)]
pub struct SignerState {
    /// (payout_id, txid hex) of every Sign call.
    pub calls: Vec<(String, String)>,
    /// Refuse the next calls with (grpc code, reason code, message).
    pub refuse: VecDeque<(tonic::Code, &'static str, &'static str)>,
    /// The approvals each Sign call carried (armored signatures), in call order.
    pub approvals: Vec<Vec<String>>,
    /// Sent as the `approval-statement-bin` metadata of an `approval_required` refusal,
    /// with the txid appended so each transaction has its own.
    pub statement: String,
}

#[derive(Clone)]
pub struct MockSigner {
    pub key: Arc<SigningKey>,
    pub state: Arc<Mutex<SignerState>>,
    pub endpoint: String,
}

pub fn test_key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

pub fn address_of(k: &SigningKey) -> Address {
    Address::from_verifying_key(k.verifying_key())
}

pub fn sign_raw(k: &SigningKey, raw: &[u8]) -> Vec<u8> {
    let txid = tron_proto::txid(raw);
    let (sig, recid) = k.sign_prehash_recoverable(&txid).unwrap();
    let mut out = sig.to_bytes().to_vec();
    out.push(recid.to_byte());
    out
}

#[tonic::async_trait]
impl Signer for MockSigner {
    async fn sign(
        &self,
        request: tonic::Request<SignRequest>,
    ) -> Result<tonic::Response<SignResponse>, tonic::Status> {
        let req = request.into_inner();
        let txid = tron_proto::txid(&req.raw_data);
        let refusal = {
            let mut s = self.state.lock().unwrap();
            s.calls.push((req.payout_id.clone(), hex::encode(txid)));
            s.approvals
                .push(req.approvals.iter().map(|a| a.signature.clone()).collect());
            s.refuse
                .pop_front()
                .map(|r| (r, format!("{}\ntxid: {}\n", s.statement, hex::encode(txid))))
        };
        if let Some(((code, reason, msg), statement)) = refusal {
            let mut st = tonic::Status::new(code, format!("[{reason}] {msg}"));
            st.metadata_mut()
                .insert("reason-code", reason.parse().unwrap());
            if reason == "approval_required" {
                st.metadata_mut().insert_bin(
                    "approval-statement-bin",
                    tonic::metadata::MetadataValue::from_bytes(statement.as_bytes()),
                );
            }
            return Err(st);
        }
        let signature = sign_raw(&self.key, &req.raw_data);
        Ok(tonic::Response::new(SignResponse {
            txid: txid.to_vec(),
            signed_transaction: builder::signed_transaction(&req.raw_data, &signature),
            signature,
            decision: None,
            replayed: false,
        }))
    }
    async fn evaluate(
        &self,
        _: tonic::Request<SignRequest>,
    ) -> Result<tonic::Response<EvaluateResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("mock"))
    }
    async fn list_keys(
        &self,
        _: tonic::Request<ListKeysRequest>,
    ) -> Result<tonic::Response<ListKeysResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("mock"))
    }
    async fn freeze(
        &self,
        _: tonic::Request<tron_proto::signer::FreezeRequest>,
    ) -> Result<tonic::Response<tron_proto::signer::FreezeResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("mock"))
    }
    async fn get_policy(
        &self,
        _: tonic::Request<GetPolicyRequest>,
    ) -> Result<tonic::Response<GetPolicyResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("mock"))
    }
    type ReadPolicyTextStream = tokio_stream::Iter<
        std::vec::IntoIter<Result<tron_proto::signer::PolicyTextChunk, tonic::Status>>,
    >;
    async fn read_policy_text(
        &self,
        _: tonic::Request<tron_proto::signer::ReadPolicyTextRequest>,
    ) -> Result<tonic::Response<Self::ReadPolicyTextStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("mock"))
    }
}

impl MockSigner {
    pub async fn start() -> MockSigner {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let s = MockSigner {
            key: Arc::new(test_key()),
            state: Arc::new(Mutex::new(SignerState::default())),
            endpoint: addr.to_string(),
        };
        let svc = SignerServer::new(s.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        s
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, SignerState> {
        self.state.lock().unwrap()
    }
}

pub const USDT_NILE: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
pub const DEST: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

pub fn settings(key: Address) -> Settings {
    Settings {
        network: Network::Nile,
        key,
        usdt_contract: Address::from_base58(USDT_NILE).unwrap(),
        fee_limit_sun: 30_000_000,
        expiration: Duration::from_secs(600),
        batch_expiration: Duration::from_secs(12 * 3600),
        solidity_margin: Duration::from_secs(60),
        poll_interval: Duration::from_millis(1),
        max_backoff: Duration::ZERO,
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub node: MockNode,
    pub signer: Option<MockSigner>,
    pub pipeline: Pipeline,
}

impl Harness {
    pub async fn new(online: bool, api_key: Option<&str>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let node = MockNode::start().await;
        let signer = if online {
            Some(MockSigner::start().await)
        } else {
            None
        };
        let pipeline = Self::pipeline_for(&dir, &node, signer.as_ref(), api_key);
        Harness {
            dir,
            node,
            signer,
            pipeline,
        }
    }

    pub fn pipeline_for(
        dir: &tempfile::TempDir,
        node: &MockNode,
        signer: Option<&MockSigner>,
        api_key: Option<&str>,
    ) -> Pipeline {
        let store = Arc::new(Store::open(&dir.path().join("b.redb")).unwrap());
        let n = Node::new(
            &node.url,
            api_key.map(|k| tron_broadcaster::secret::Secret::new(k.into())),
            Duration::from_secs(5),
        )
        .unwrap();
        let conn =
            signer.map(|s| SignerConn::new(s.endpoint.clone(), Duration::from_secs(5), None));
        Pipeline::new(store, n, conn, settings(address_of(&test_key())))
    }

    /// Simulates a crash and restart: the pipeline and its database handle are dropped and
    /// reopened from disk.
    pub fn restart(&mut self) {
        // The old pipeline (and its Store) must be gone before the file is reopened.
        let scratch = tempfile::tempdir().unwrap();
        let old = std::mem::replace(
            &mut self.pipeline,
            Self::pipeline_for(&scratch, &self.node, None, None),
        );
        drop(old);
        self.pipeline = Self::pipeline_for(&self.dir, &self.node, self.signer.as_ref(), None);
    }

    pub fn add(&self, id: &str, asset: tron_broadcaster::model::Asset, units: u64) {
        let p = Payout::new(&owner(), id.into(), asset, DEST.into(), units, 1);
        self.pipeline.store().create_payout(p).unwrap();
    }

    /// Payout `id` of [`TENANT`].
    pub fn get(&self, id: &str) -> Payout {
        self.pipeline.store().get_for(TENANT, id).unwrap().unwrap()
    }

    pub fn statuses(&self, id: &str) -> Vec<&'static str> {
        self.get(id)
            .history
            .iter()
            .map(|t| t.status.as_str())
            .collect()
    }
}
