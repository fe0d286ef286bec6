//! The HTTP face of the double: the java-tron endpoints the broadcaster uses, in their JSON
//! shapes, plus test controls under `/double/`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tron_proto::Address;

use crate::accounts::Accounts;
use crate::chain::{BroadcastCode, Chain, Transfer};
use crate::fees::ParamError;
use crate::query;
use crate::render::{block_json, info_json};
use crate::sim::{self, Kind, Payment};

/// The header a TronGrid-style node reads the API key from.
pub const API_KEY_HEADER: &str = "TRON-PRO-API-KEY";

/// How the double misbehaves on request (`POST /double/outage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outage {
    /// The node is down: every real endpoint answers HTTP 503.
    pub on: bool,
    /// With `on`: the node is up but saturated instead: `broadcasthex` answers HTTP 200
    /// `{"result": false, "code": "SERVER_BUSY"}`, the other endpoints work.
    pub busy: bool,
}

/// Shared state behind the router.
pub struct App {
    chain: Mutex<Chain>,
    outage: Mutex<Outage>,
    api_key: Option<String>,
    /// The token `/double/pay` pays in when the body names none.
    default_token: Mutex<Option<Address>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl App {
    pub fn new(chain: Chain, api_key: Option<String>) -> App {
        App {
            chain: Mutex::new(chain),
            outage: Mutex::new(Outage::default()),
            api_key,
            default_token: Mutex::new(None),
        }
    }

    /// Runs `f` on the chain (for in-process tests and the block timer).
    pub fn with_chain<R>(&self, f: impl FnOnce(&mut Chain) -> R) -> R {
        f(&mut lock(&self.chain))
    }

    pub fn set_outage(&self, o: Outage) {
        *lock(&self.outage) = o;
    }

    pub fn outage(&self) -> Outage {
        *lock(&self.outage)
    }

    /// Makes `token` the one `/double/pay` pays in by default (and a contract, if the seed
    /// did not list it). Without it, the default is the only seeded token, if just one.
    pub fn set_default_token(&self, token: Address) {
        self.with_chain(|c| c.add_token(token));
        *lock(&self.default_token) = Some(token);
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub block_interval: Duration,
    pub solid_after: u32,
    pub accounts: Accounts,
    pub api_key: Option<String>,
}

/// A running double; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// `http://host:port`, the node URL to configure a client with.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Binds, starts the block timer and serves in the background.
pub async fn start(opts: Options) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let chain = Chain::new(opts.accounts, opts.solid_after, now_ms());
    let app = Arc::new(App::new(chain, opts.api_key));
    let producer = {
        let app = Arc::clone(&app);
        let every = opts.block_interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate; genesis is that block
            loop {
                tick.tick().await;
                let b = app.with_chain(|c| c.produce_block(now_ms()));
                tracing::debug!(number = b.number, "block");
            }
        })
    };
    let server = {
        let router = router(Arc::clone(&app));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("server stopped: {e}");
            }
        })
    };
    Ok(Running {
        addr,
        app,
        tasks: vec![producer, server],
    })
}

/// Every route the double serves.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/wallet/getnowblock", get(now_block).post(now_block))
        .route(
            "/walletsolidity/getnowblock",
            get(solid_now_block).post(solid_now_block),
        )
        .route(
            "/wallet/getblockbynum",
            get(block_by_num).post(block_by_num),
        )
        .route(
            "/wallet/getblockbylimitnext",
            get(blocks_by_limit_next).post(blocks_by_limit_next),
        )
        .route(
            "/wallet/gettransactioninfobyblocknum",
            get(infos_by_block_num).post(infos_by_block_num),
        )
        .route(
            "/wallet/getchainparameters",
            get(chain_parameters).post(chain_parameters),
        )
        .route("/wallet/getaccount", post(get_account))
        .route("/wallet/triggerconstantcontract", post(constant_call))
        .route("/wallet/broadcasthex", post(broadcast_hex))
        .route("/wallet/gettransactioninfobyid", post(tx_info_head))
        .route(
            "/walletsolidity/gettransactioninfobyid",
            post(tx_info_solid),
        )
        .route("/double/outage", post(set_outage))
        .route("/double/drop_next", post(drop_next))
        .route("/double/transactions", get(transactions))
        .route("/double/pay", post(pay))
        .route("/double/reorg", post(reorg))
        .route("/double/produce", post(produce))
        .route("/double/balance", get(balance))
        .route("/double/chain_parameters", post(set_chain_parameters))
        .with_state(app)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Broadcast,
    Other,
}

/// API key, then outage. `Some` is the answer to send instead.
fn guard(app: &App, headers: &HeaderMap, which: Endpoint) -> Option<Response> {
    if let Some(expected) = &app.api_key {
        let given = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"Error": "missing or wrong TRON-PRO-API-KEY"})),
                )
                    .into_response(),
            );
        }
    }
    let o = app.outage();
    if o.on && !o.busy {
        return Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"Error": "node unavailable (tron-node-double outage)"})),
            )
                .into_response(),
        );
    }
    if o.on && o.busy && which == Endpoint::Broadcast {
        return Some(
            Json(json!({
                "result": false,
                "code": BroadcastCode::ServerBusy.as_str(),
                "message": hex::encode("Server busy."),
            }))
            .into_response(),
        );
    }
    None
}

fn error_json(message: impl std::fmt::Display) -> Response {
    // java-tron answers malformed requests with HTTP 200 and an `Error` member.
    Json(json!({ "Error": message.to_string() })).into_response()
}

async fn now_block(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let v = app.with_chain(|c| {
        let n = c.head().number;
        c.block(n).map(|(b, txs)| block_json(b, txs, false))
    });
    Json(v.unwrap_or_else(|| json!({}))).into_response()
}

async fn solid_now_block(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let v = app.with_chain(|c| {
        c.block(c.solid_number())
            .map(|(b, txs)| block_json(b, txs, false))
    });
    Json(v.unwrap_or_else(|| json!({}))).into_response()
}

/// A request body as JSON; java-tron also takes an empty body as `{}`.
fn body_json(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))
}

fn visible(v: &Value) -> bool {
    v.get("visible").and_then(Value::as_bool).unwrap_or(false)
}

fn number_at(v: &Value, key: &str) -> Result<i64, String> {
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("body must carry an integer {key:?}"))
}

async fn block_by_num(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let (num, vis) = match body_json(&body).and_then(|v| Ok((number_at(&v, "num")?, visible(&v)))) {
        Ok(x) => x,
        Err(m) => return error_json(m),
    };
    let v = app.with_chain(|c| c.block(num).map(|(b, txs)| block_json(b, txs, vis)));
    Json(v.unwrap_or_else(|| json!({}))).into_response()
}

/// Most blocks `getblockbylimitnext` returns at once, as on java-tron.
pub const BLOCK_LIMIT: i64 = 100;

async fn blocks_by_limit_next(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let parsed = body_json(&body).and_then(|v| {
        Ok((
            number_at(&v, "startNum")?,
            number_at(&v, "endNum")?,
            visible(&v),
        ))
    });
    let (start, end, vis) = match parsed {
        Ok(x) => x,
        Err(m) => return error_json(m),
    };
    if start < 0 || end <= start || end - start > BLOCK_LIMIT {
        return error_json(format!(
            "startNum must be >= 0 and endNum - startNum in 1..={BLOCK_LIMIT}"
        ));
    }
    let list: Vec<Value> = app.with_chain(|c| {
        (start..end)
            .filter_map(|n| c.block(n).map(|(b, txs)| block_json(b, txs, vis)))
            .collect()
    });
    if list.is_empty() {
        return Json(json!({})).into_response();
    }
    Json(json!({ "block": list })).into_response()
}

async fn infos_by_block_num(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let num = match body_json(&body).and_then(|v| number_at(&v, "num")) {
        Ok(n) => n,
        Err(m) => return error_json(m),
    };
    let list: Vec<Value> = app.with_chain(|c| {
        c.block(num)
            .map(|(_, txs)| txs.iter().map(info_json).collect())
            .unwrap_or_default()
    });
    Json(Value::Array(list)).into_response()
}

async fn chain_parameters(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    Json(app.with_chain(|c| query::chain_parameters(c.params()))).into_response()
}

async fn get_account(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let answer = body_json(&body).and_then(|v| app.with_chain(|c| query::account(c, &v)));
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(m) => error_json(m),
    }
}

async fn constant_call(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Other) {
        return r;
    }
    let answer = body_json(&body).and_then(|v| app.with_chain(|c| query::constant_call(c, &v)));
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(m) => error_json(m),
    }
}

async fn broadcast_hex(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = guard(&app, &headers, Endpoint::Broadcast) {
        return r;
    }
    let fail = |code: BroadcastCode, txid: Option<[u8; 32]>, message: &str| {
        let mut v = json!({
            "result": false,
            "code": code.as_str(),
            "message": hex::encode(message),
        });
        if let Some(t) = txid {
            v["txid"] = Value::String(hex::encode(t));
        }
        Json(v).into_response()
    };
    let bytes = match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("transaction")?.as_str().map(str::to_owned))
    {
        Some(h) => match hex::decode(h) {
            Ok(b) => b,
            Err(e) => {
                return fail(
                    BroadcastCode::OtherError,
                    None,
                    &format!("transaction is not hex: {e}"),
                )
            }
        },
        None => {
            return fail(
                BroadcastCode::OtherError,
                None,
                "body must be {\"transaction\": \"<hex>\"}",
            )
        }
    };
    match app.with_chain(|c| c.broadcast(&bytes)) {
        Ok(txid) => Json(json!({ "result": true, "txid": hex::encode(txid) })).into_response(),
        Err(r) => fail(r.code, r.txid, &r.message),
    }
}

fn parse_txid(body: &[u8]) -> Result<[u8; 32], String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let s = v
        .get("value")
        .and_then(Value::as_str)
        .ok_or("body must be {\"value\": \"<txid hex>\"}")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| "value is not a 64-digit hex txid")?;
    Ok(out)
}

async fn tx_info(app: &App, headers: &HeaderMap, body: &[u8], solid: bool) -> Response {
    if let Some(r) = guard(app, headers, Endpoint::Other) {
        return r;
    }
    let txid = match parse_txid(body) {
        Ok(t) => t,
        Err(m) => return error_json(m),
    };
    let v = app.with_chain(|c| c.tx_info(&txid, solid).map(info_json));
    Json(v.unwrap_or_else(|| json!({}))).into_response()
}

async fn tx_info_head(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    tx_info(&app, &headers, &body, false).await
}

async fn tx_info_solid(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    tx_info(&app, &headers, &body, true).await
}

// ----- test controls -----

fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "Error": message.to_string() })),
    )
        .into_response()
}

async fn set_outage(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(on) = v.get("on").and_then(Value::as_bool) else {
        return bad_request("body must be {\"on\": true|false, \"busy\"?: true|false}");
    };
    let busy = v.get("busy").and_then(Value::as_bool).unwrap_or(false);
    app.set_outage(Outage { on, busy });
    Json(json!({ "on": on, "busy": busy })).into_response()
}

async fn drop_next(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let n = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("count")?.as_u64())
        .and_then(|n| u32::try_from(n).ok());
    let Some(n) = n else {
        return bad_request("body must be {\"count\": n}");
    };
    app.with_chain(|c| c.drop_next(n));
    Json(json!({ "count": n })).into_response()
}

async fn transactions(State(app): State<Arc<App>>) -> Response {
    let list: Vec<Value> = app.with_chain(|c| {
        c.included()
            .iter()
            .map(|i| {
                let mut v = json!({
                    "txid": hex::encode(i.txid),
                    "blockNumber": i.block_number,
                    "blockTimeStamp": i.block_timestamp,
                    "receipt": i.receipt.as_str(),
                    // Sun burnt (the transaction info's `fee`), so tests can account for it.
                    "fee": i.fee.total(),
                });
                match &i.transfer {
                    Transfer::Trx { owner, to, amount } => {
                        v["kind"] = "trx".into();
                        v["owner"] = owner.to_base58().into();
                        v["to"] = to.to_base58().into();
                        v["amount"] = amount.to_string().into();
                    }
                    Transfer::Trc20 { owner, token, call } => {
                        v["kind"] = "trc20".into();
                        v["owner"] = owner.to_base58().into();
                        v["token"] = token.to_base58().into();
                        if let Some((to, amount)) = call {
                            v["to"] = to.to_base58().into();
                            v["amount"] = amount.to_string().into();
                        }
                    }
                    Transfer::Trc10 {
                        owner,
                        to,
                        asset_id,
                        amount,
                    } => {
                        v["kind"] = "trc10".into();
                        v["owner"] = owner.to_base58().into();
                        v["to"] = to.to_base58().into();
                        v["asset_id"] = asset_id.as_str().into();
                        v["amount"] = amount.to_string().into();
                    }
                    Transfer::Call {
                        owner, contract, ..
                    } => {
                        v["kind"] = "call".into();
                        v["owner"] = owner.to_base58().into();
                        v["contract"] = contract.to_base58().into();
                    }
                }
                v["logs"] = i.logs.len().into();
                v
            })
            .collect()
    });
    Json(Value::Array(list)).into_response()
}

fn parse_address(v: &Value, key: &str) -> Result<Option<Address>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| format!("{key}: {e}")),
        Some(_) => Err(format!("{key} must be a Base58 address")),
    }
}

/// `POST /double/pay`: scripts a payment into the next block (see [`crate::sim`]).
async fn pay(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let default = *lock(&app.default_token);
    let tokens = match default {
        Some(t) => vec![t],
        None => app.with_chain(|c| c.accounts().tokens()),
    };
    let payment = payment_of(&v, tokens);
    let p = match payment {
        Ok(p) => p,
        Err(m) => return bad_request(m),
    };
    match app.with_chain(|c| sim::submit(c, &p)) {
        Ok(txid) => Json(json!({
            "txid": hex::encode(txid),
            "kind": p.kind.as_str(),
            "to": p.to.to_base58(),
        }))
        .into_response(),
        Err(e) => bad_request(format!("{}: {e}", e.code())),
    }
}

/// Reads a `/double/pay` body. With exactly one of `tokens`, it is the default `token`.
fn payment_of(v: &Value, tokens: Vec<Address>) -> Result<Payment, String> {
    let kind = match v.get("kind").and_then(Value::as_str) {
        None => Kind::Transfer,
        Some(k) => Kind::parse(k).ok_or_else(|| {
            format!(
                "kind {k:?} is not one of {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            )
        })?,
    };
    let to = parse_address(v, "to")?.ok_or("to (a Base58 address) is required")?;
    let asset = v.get("asset").and_then(Value::as_str).unwrap_or("USDT");
    let token = match asset {
        "TRX" => None,
        "USDT" => match parse_address(v, "token")? {
            Some(t) => Some(t),
            None => match tokens.as_slice() {
                [only] => Some(*only),
                _ => return Err("several or no TRC-20 tokens are seeded: name the token".into()),
            },
        },
        other => return Err(format!("asset {other:?} is not TRX or USDT")),
    };
    let amount = match v.get("amount") {
        None if kind == Kind::ZeroValue => tron_proto::U256::ZERO,
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            tron_proto::U256::from_str_radix(s, 10).map_err(|_| "amount is too large")?
        }
        Some(Value::Number(n)) if n.is_u64() => tron_proto::U256::from(n.as_u64().unwrap_or(0)),
        _ => return Err("amount must be base units as a decimal string".into()),
    };
    let transfers = match v.get("transfers") {
        None => 1,
        Some(t) => t
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("transfers must be a small integer")?,
    };
    Ok(Payment {
        kind,
        token,
        from: parse_address(v, "from")?.unwrap_or_else(sim::customer),
        to,
        amount,
        via: parse_address(v, "via")?.unwrap_or_else(sim::batcher),
        transfers,
    })
}

/// `POST /double/reorg {"depth": n, "keep_transactions"?: bool}`.
async fn reorg(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(depth) = v
        .get("depth")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
    else {
        return bad_request("body must be {\"depth\": n, \"keep_transactions\"?: bool}");
    };
    let keep = v
        .get("keep_transactions")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match app.with_chain(|c| c.reorg(depth, keep, now_ms())) {
        Ok(blocks) => Json(json!({
            "replaced": blocks.iter().map(|b| json!({
                "number": b.number,
                "blockID": hex::encode(b.id),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => bad_request(e),
    }
}

/// `POST /double/produce {"count": n}`: produces blocks now, besides the timer.
async fn produce(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let n = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("count")?.as_u64())
        .filter(|n| (1..=1000).contains(n));
    let Some(n) = n else {
        return bad_request("body must be {\"count\": 1..=1000}");
    };
    let head = app.with_chain(|c| {
        for _ in 0..n {
            c.produce_block(now_ms());
        }
        c.head().number
    });
    Json(json!({ "head": head })).into_response()
}

/// `POST /double/chain_parameters {"getEnergyFee": n, …}`: sets prices (the names
/// `getchainparameters` uses); answers the full list. Nothing changes unless every member
/// is valid.
async fn set_chain_parameters(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("body must be an object such as {\"getEnergyFee\": 210}");
    };
    let outcome = app.with_chain(|c| {
        let mut p = *c.params();
        for (k, v) in &members {
            let n = v
                .as_u64()
                .ok_or_else(|| ParamError::NotAnInteger(k.clone()))?;
            p.set(k, n)?;
        }
        *c.params_mut() = p;
        Ok::<_, ParamError>(query::chain_parameters(&p))
    });
    match outcome {
        Ok(v) => Json(v).into_response(),
        Err(e) => bad_request(format!("{}: {e}", e.code())),
    }
}

#[derive(serde::Deserialize)]
struct BalanceQuery {
    address: String,
    token: Option<String>,
}

async fn balance(State(app): State<Arc<App>>, Query(q): Query<BalanceQuery>) -> Response {
    let address: Address = match q.address.parse() {
        Ok(a) => a,
        Err(e) => return bad_request(format!("address: {e}")),
    };
    let token: Option<Address> = match q.token.as_deref().map(str::parse).transpose() {
        Ok(t) => t,
        Err(e) => return bad_request(format!("token: {e}")),
    };
    let bal = app.with_chain(|c| match &token {
        Some(t) => c.accounts().trc20(t, &address).to_string(),
        None => c.accounts().trx(&address).to_string(),
    });
    Json(json!({
        "address": address.to_base58(),
        "token": token.map(|t| t.to_base58()),
        "balance": bal,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::{accounts, address, key, token, Build};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(api_key: Option<&str>) -> (Arc<App>, k256::ecdsa::SigningKey, Address) {
        let k = key(0x11);
        let owner = address(&k);
        let chain = Chain::new(accounts(owner), 2, 1_000_000);
        (
            Arc::new(App::new(chain, api_key.map(str::to_owned))),
            k,
            owner,
        )
    }

    async fn call(
        app: &Arc<App>,
        method: &str,
        path: &str,
        body: Value,
        api_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = api_key {
            req = req.header(API_KEY_HEADER, k);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let resp = router(Arc::clone(app)).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(app: &Arc<App>, path: &str, body: Value) -> Value {
        let (s, v) = call(app, "POST", path, body, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    fn msg(v: &Value) -> String {
        String::from_utf8(hex::decode(v["message"].as_str().unwrap()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn now_block_broadcast_and_receipts_in_java_tron_shapes() {
        let (app, k, owner) = app(None);
        app.with_chain(|c| c.produce_block(1_003_000));
        let head = post(&app, "/wallet/getnowblock", json!({})).await;
        let id = hex::decode(head["blockID"].as_str().unwrap()).unwrap();
        assert_eq!(id.len(), 32);
        let n = head["block_header"]["raw_data"]["number"].as_i64().unwrap();
        assert_eq!(id[..8], n.to_be_bytes());
        let ts = head["block_header"]["raw_data"]["timestamp"]
            .as_i64()
            .unwrap();
        let block = crate::chain::Block {
            number: n,
            id: id.try_into().unwrap(),
            timestamp: ts,
            parent: [0; 32],
        };

        let dest = Address::from_evm([0xd1; 20]);
        let tx = Build::on(&block).trx(owner, dest, 10).sign(&k);
        let v = post(
            &app,
            "/wallet/broadcasthex",
            json!({"transaction": hex::encode(&tx)}),
        )
        .await;
        assert_eq!(v["result"], true, "{v}");
        let txid = v["txid"].as_str().unwrap().to_owned();
        let again = post(
            &app,
            "/wallet/broadcasthex",
            json!({"transaction": hex::encode(&tx)}),
        )
        .await;
        assert_eq!(again["result"], false);
        assert_eq!(again["code"], "DUP_TRANSACTION_ERROR");
        assert_eq!(again["txid"], txid.as_str());
        assert!(msg(&again).contains("dup"));

        let usdt = Build::on(&block)
            .trc20(
                owner,
                token(),
                tron_proto::abi::encode_transfer(&dest, tron_proto::U256::from(900u32)),
            )
            .sign(&k);
        let v = post(
            &app,
            "/wallet/broadcasthex",
            json!({"transaction": hex::encode(&usdt)}),
        )
        .await;
        assert_eq!(v["result"], true, "{v}");
        let reverted = v["txid"].as_str().unwrap().to_owned();

        let q = |t: &str| json!({ "value": t });
        assert_eq!(
            post(&app, "/wallet/gettransactioninfobyid", q(&txid)).await,
            json!({})
        );
        app.with_chain(|c| c.produce_block(0));
        let info = post(&app, "/wallet/gettransactioninfobyid", q(&txid)).await;
        assert_eq!(info["id"], txid.as_str());
        assert_eq!(info["blockNumber"], n + 1);
        assert!(info["blockTimeStamp"].as_i64().unwrap() > ts);
        // A TRX transfer: like a real node, no receipt.result and no top-level result.
        assert!(info["receipt"].get("result").is_none(), "{info}");
        assert_eq!(info["receipt"]["net_usage"], 268);
        assert!(info.get("result").is_none());
        // Not solid until two blocks deep.
        assert_eq!(
            post(&app, "/walletsolidity/gettransactioninfobyid", q(&txid)).await,
            json!({})
        );
        app.with_chain(|c| c.produce_block(0));
        app.with_chain(|c| c.produce_block(0));
        let solid = post(&app, "/walletsolidity/gettransactioninfobyid", q(&txid)).await;
        assert_eq!(solid, info);
        let failed = post(&app, "/walletsolidity/gettransactioninfobyid", q(&reverted)).await;
        assert_eq!(failed["receipt"]["result"], "REVERT");
        assert_eq!(failed["result"], "FAILED");
        assert_eq!(
            hex::decode(failed["resMessage"].as_str().unwrap()).unwrap(),
            crate::chain::REVERT_MESSAGE.as_bytes()
        );
        // Unknown txid and malformed queries.
        assert_eq!(
            post(
                &app,
                "/walletsolidity/gettransactioninfobyid",
                q(&"00".repeat(32))
            )
            .await,
            json!({})
        );
        let bad = post(&app, "/wallet/gettransactioninfobyid", q("xyz")).await;
        assert!(bad["Error"].is_string());

        let (s, list) = call(&app, "GET", "/double/transactions", Value::Null, None).await;
        assert_eq!(s, StatusCode::OK);
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["receipt"], "SUCCESS");
        assert_eq!(list[0]["kind"], "trx");
        assert_eq!(list[0]["amount"], "10");
        assert_eq!(list[1]["receipt"], "REVERT");
        let (_, bal) = call(
            &app,
            "GET",
            &format!("/double/balance?address={dest}"),
            Value::Null,
            None,
        )
        .await;
        assert_eq!(bal["balance"], "10");
        let (_, bal) = call(
            &app,
            "GET",
            &format!("/double/balance?address={owner}&token={}", token()),
            Value::Null,
            None,
        )
        .await;
        assert_eq!(bal["balance"], "500");
        let (s, _) = call(
            &app,
            "GET",
            "/double/balance?address=nope",
            Value::Null,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn malformed_broadcasts_are_other_error() {
        let (app, _, _) = app(None);
        for body in [
            json!({}),
            json!({"transaction": "zz"}),
            json!({"transaction": "ffff"}),
        ] {
            let v = post(&app, "/wallet/broadcasthex", body.clone()).await;
            assert_eq!(v["result"], false, "{body}");
            assert_eq!(v["code"], "OTHER_ERROR", "{body}");
        }
    }

    #[tokio::test]
    async fn api_key_is_required_when_configured() {
        let (app, _, _) = app(Some("sekrit"));
        for path in [
            "/wallet/getnowblock",
            "/wallet/broadcasthex",
            "/wallet/gettransactioninfobyid",
            "/walletsolidity/gettransactioninfobyid",
        ] {
            let (s, _) = call(&app, "POST", path, json!({}), None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
            let (s, _) = call(&app, "POST", path, json!({}), Some("wrong")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        }
        let (s, v) = call(
            &app,
            "POST",
            "/wallet/getnowblock",
            json!({}),
            Some("sekrit"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(v["blockID"].is_string());
    }

    #[tokio::test]
    async fn outage_and_busy_modes() {
        let (app, _, _) = app(None);
        post(&app, "/double/outage", json!({"on": true})).await;
        for path in [
            "/wallet/getnowblock",
            "/wallet/broadcasthex",
            "/walletsolidity/gettransactioninfobyid",
        ] {
            let (s, _) = call(&app, "POST", path, json!({}), None).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
        post(&app, "/double/outage", json!({"on": true, "busy": true})).await;
        let v = post(&app, "/wallet/broadcasthex", json!({"transaction": "00"})).await;
        assert_eq!(v["code"], "SERVER_BUSY");
        assert_eq!(v["result"], false);
        assert!(post(&app, "/wallet/getnowblock", json!({})).await["blockID"].is_string());
        post(&app, "/double/outage", json!({"on": false})).await;
        assert!(post(&app, "/wallet/getnowblock", json!({})).await["blockID"].is_string());
        let (s, _) = call(&app, "POST", "/double/outage", json!({"x": 1}), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn drop_next_control() {
        let (app, k, owner) = app(None);
        post(&app, "/double/drop_next", json!({"count": 1})).await;
        let head = app.with_chain(|c| c.head().clone());
        let tx = Build::on(&head)
            .trx(owner, Address::from_evm([0xd1; 20]), 1)
            .sign(&k);
        let v = post(
            &app,
            "/wallet/broadcasthex",
            json!({"transaction": hex::encode(&tx)}),
        )
        .await;
        assert_eq!(v["result"], true);
        for _ in 0..4 {
            app.with_chain(|c| c.produce_block(0));
        }
        assert_eq!(
            post(
                &app,
                "/wallet/gettransactioninfobyid",
                json!({"value": v["txid"]})
            )
            .await,
            json!({})
        );
        let (s, _) = call(
            &app,
            "POST",
            "/double/drop_next",
            json!({"count": -1}),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}
