//! The Tron full node's HTTP API, the java-tron endpoint shapes the pipeline uses.
//!
//! The node is untrusted: it only supplies the TAPOS reference and clock, relays
//! transactions and reports receipts. Every request carries the configured
//! `TRON-PRO-API-KEY`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::builder::HeadBlock;
use crate::model::Reason;
use crate::secret::Secret;

/// The header TronGrid reads the API key from.
pub const API_KEY_HEADER: &str = "TRON-PRO-API-KEY";

/// A failure to talk to the node. All of these are transient: retry with backoff.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("node request timed out")]
    Timeout,
    #[error("node unreachable: {0}")]
    Transport(String),
    #[error("node answered HTTP {0}")]
    Http(u16),
    #[error("node answer not understood: {0}")]
    BadResponse(String),
}

impl NodeError {
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Timeout => "node_timeout",
            NodeError::Transport(_) => "node_unreachable",
            NodeError::Http(_) => "node_http_error",
            NodeError::BadResponse(_) => "node_bad_response",
        }
    }
}

/// The node's verdict on a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    Accepted,
    /// `code` as the node named it (`DUP_TRANSACTION_ERROR`, `TAPOS_ERROR`, ...), message
    /// decoded from hex when it is hex.
    Rejected {
        code: String,
        message: String,
    },
}

/// A solidified transaction's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    pub block_number: u64,
    pub block_timestamp_ms: i64,
    /// `None` when the receipt says SUCCESS.
    pub failure: Option<Reason>,
    /// `fee`: every sun the transaction burnt (energy, account creation); 0 when absent.
    pub fee_sun: u64,
}

/// The HTTP client for one node.
#[derive(Clone)]
pub struct Node {
    http: reqwest::Client,
    base: String,
    api_key: Option<Secret>,
}

#[derive(Deserialize)]
struct NowBlock {
    #[serde(rename = "blockID")]
    block_id: String,
    block_header: BlockHeader,
}
#[derive(Deserialize)]
struct BlockHeader {
    raw_data: BlockRaw,
}
#[derive(Deserialize)]
struct BlockRaw {
    #[serde(default)]
    number: u64,
    timestamp: i64,
}

/// java-tron hex-encodes messages; show them as text when they decode.
pub fn decode_message(m: &str) -> String {
    match hex::decode(m) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| m.to_owned()),
        Err(_) => m.to_owned(),
    }
}

impl Node {
    pub fn new(base: &str, api_key: Option<Secret>, timeout: Duration) -> Result<Node, NodeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Only the configured node: no proxy taken from the environment.
            .no_proxy()
            .build()
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        Ok(Node {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    /// POSTs `body` to `path` and returns the JSON answer (for [`crate::resources`]).
    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<Value, NodeError> {
        let started = std::time::Instant::now();
        let out = self.request(path, body).await;
        let outcome = match &out {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        crate::metrics::global().node_request(path, outcome, started.elapsed());
        out
    }

    async fn request(&self, path: &str, body: Value) -> Result<Value, NodeError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(k) = &self.api_key {
            req = req.header(API_KEY_HEADER, k.expose());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                NodeError::Timeout
            } else {
                NodeError::Transport(e.without_url().to_string())
            }
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(NodeError::Http(status.as_u16()));
        }
        resp.json::<Value>().await.map_err(|e| {
            if e.is_timeout() {
                NodeError::Timeout
            } else {
                NodeError::BadResponse(e.without_url().to_string())
            }
        })
    }

    /// The head block: TAPOS reference and the node's clock.
    pub async fn head(&self) -> Result<HeadBlock, NodeError> {
        let v = self.post("/wallet/getnowblock", json!({})).await?;
        let b: NowBlock =
            serde_json::from_value(v).map_err(|e| NodeError::BadResponse(e.to_string()))?;
        let id = hex::decode(&b.block_id)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| NodeError::BadResponse("blockID is not 32 bytes of hex".into()))?;
        crate::metrics::global().head(b.block_header.raw_data.number);
        Ok(HeadBlock {
            number: b.block_header.raw_data.number,
            id,
            timestamp_ms: b.block_header.raw_data.timestamp,
        })
    }

    /// `/wallet/broadcasthex`.
    pub async fn broadcast_hex(&self, signed_transaction: &[u8]) -> Result<Broadcast, NodeError> {
        let v = self
            .post(
                "/wallet/broadcasthex",
                json!({ "transaction": hex::encode(signed_transaction) }),
            )
            .await?;
        if v.get("result").and_then(Value::as_bool) == Some(true) {
            return Ok(Broadcast::Accepted);
        }
        let code = v
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("OTHER_ERROR")
            .to_owned();
        let message = v
            .get("message")
            .and_then(Value::as_str)
            .map(decode_message)
            .unwrap_or_default();
        Ok(Broadcast::Rejected { code, message })
    }

    /// `/wallet/getblockbynum` with `visible: false` (hex addresses, as [`crate::credit`]
    /// reads them): `None` while the node has no such block (it answers `{}`).
    pub async fn block_by_num(&self, number: u64) -> Result<Option<Value>, NodeError> {
        let v = self
            .post(
                "/wallet/getblockbynum",
                json!({ "num": number, "visible": false }),
            )
            .await?;
        if let Some(e) = v.get("Error").and_then(Value::as_str) {
            return Err(NodeError::BadResponse(format!("getblockbynum: {e}")));
        }
        match v.as_object() {
            Some(o) if o.is_empty() => Ok(None),
            Some(_) => Ok(Some(v)),
            None => Err(NodeError::BadResponse("block is not an object".into())),
        }
    }

    /// `/wallet/gettransactioninfobyblocknum`: the receipts and logs of block `number`.
    pub async fn block_infos(&self, number: u64) -> Result<Value, NodeError> {
        let v = self
            .post(
                "/wallet/gettransactioninfobyblocknum",
                json!({ "num": number }),
            )
            .await?;
        if let Some(e) = v.get("Error").and_then(Value::as_str) {
            return Err(NodeError::BadResponse(format!(
                "gettransactioninfobyblocknum: {e}"
            )));
        }
        Ok(v)
    }

    /// `/walletsolidity/getnowblock`: the solidified head block.
    pub async fn solid_block(&self) -> Result<Value, NodeError> {
        self.post("/walletsolidity/getnowblock", json!({})).await
    }

    /// `/walletsolidity/gettransactioninfobyid`: `None` while unknown or not yet solid.
    pub async fn transaction_info(&self, txid_hex: &str) -> Result<Option<TxInfo>, NodeError> {
        let v = self
            .post(
                "/walletsolidity/gettransactioninfobyid",
                json!({ "value": txid_hex }),
            )
            .await?;
        parse_info(&v)
    }
}

/// Reads a `TransactionInfo` answer; `{}` means not (yet) solidified.
pub fn parse_info(v: &Value) -> Result<Option<TxInfo>, NodeError> {
    let Some(obj) = v.as_object() else {
        return Err(NodeError::BadResponse(
            "transaction info is not an object".into(),
        ));
    };
    if obj.get("id").is_none() {
        return Ok(None);
    }
    let block_number = obj.get("blockNumber").and_then(Value::as_u64).unwrap_or(0);
    let block_timestamp_ms = obj
        .get("blockTimeStamp")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let receipt = obj
        .get("receipt")
        .and_then(|r| r.get("result"))
        .and_then(Value::as_str);
    let top_failed = obj.get("result").and_then(Value::as_str) == Some("FAILED");
    let receipt_failed = receipt.is_some_and(|r| r != "SUCCESS");
    let failure = (top_failed || receipt_failed).then(|| Reason {
        code: receipt
            .filter(|r| *r != "SUCCESS")
            .unwrap_or("FAILED")
            .to_owned(),
        message: obj
            .get("resMessage")
            .and_then(Value::as_str)
            .map(decode_message)
            .unwrap_or_default(),
    });
    Ok(Some(TxInfo {
        block_number,
        block_timestamp_ms,
        failure,
        fee_sun: obj.get("fee").and_then(Value::as_u64).unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_shapes() {
        assert_eq!(parse_info(&json!({})).unwrap(), None);
        let ok = parse_info(&json!({"id": "ab", "blockNumber": 5, "blockTimeStamp": 9,
            "receipt": {"net_usage": 1}}))
        .unwrap()
        .unwrap();
        assert_eq!(ok.block_number, 5);
        assert_eq!(ok.failure, None);
        // Real nodes omit receipt.result (and the whole receipt may be bare) for TRX.
        let ok = parse_info(&json!({"id": "ab", "blockNumber": 6, "fee": 0, "receipt": {}}))
            .unwrap()
            .unwrap();
        assert_eq!(ok.failure, None);
        assert_eq!(ok.fee_sun, 0);
        let burnt = parse_info(&json!({"id": "ab", "fee": 6_428_500,
            "receipt": {"energy_fee": 6_428_500, "result": "SUCCESS"}}))
        .unwrap()
        .unwrap();
        assert_eq!(burnt.fee_sun, 6_428_500);
        let ok = parse_info(&json!({"id": "ab", "blockNumber": 6}))
            .unwrap()
            .unwrap();
        assert_eq!(ok.failure, None);
        let ok = parse_info(&json!({"id": "ab", "receipt": {"result": "SUCCESS"}}))
            .unwrap()
            .unwrap();
        assert_eq!(ok.failure, None);
        let bad = parse_info(&json!({"id": "ab", "blockNumber": 5, "result": "FAILED",
            "receipt": {"result": "REVERT"}, "resMessage": hex::encode("boom")}))
        .unwrap()
        .unwrap();
        assert_eq!(
            bad.failure,
            Some(Reason {
                code: "REVERT".into(),
                message: "boom".into()
            })
        );
        let bad = parse_info(&json!({"id": "ab", "result": "FAILED"}))
            .unwrap()
            .unwrap();
        assert_eq!(bad.failure.unwrap().code, "FAILED");
        let oute = parse_info(&json!({"id": "ab", "result": "FAILED", "fee": 30,
            "receipt": {"result": "OUT_OF_ENERGY"}}))
        .unwrap()
        .unwrap();
        assert_eq!(oute.failure.unwrap().code, "OUT_OF_ENERGY");
        assert_eq!(oute.fee_sun, 30);
        assert!(parse_info(&json!([])).is_err());
    }

    #[test]
    fn messages_decode_from_hex() {
        assert_eq!(
            decode_message(&hex::encode("Validate signature error")),
            "Validate signature error"
        );
        assert_eq!(decode_message("not hex"), "not hex");
    }
}
