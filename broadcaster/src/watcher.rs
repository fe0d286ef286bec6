//! The chain watcher: follows the configured node block by block and turns what the
//! blocks pay to deposit addresses into invoice payments.
//!
//! Each poll: read the solidified head, then take blocks one at a time from the last one
//! processed up to the head (and the tip again if the node's block at that height has
//! another id). For each, [`crate::chain`] decides whether it extends what
//! was taken or proves a replacement; [`crate::credit`] decides what it pays us, on the
//! node's own block and receipts; [`crate::receive_store`] records that and the tracker's
//! new position in one durable transaction. A crash anywhere re-processes at most the
//! block in flight, which changes nothing the second time (payments are keyed by txid and
//! log index). Then payments at or below the solidified height settle, but only after the
//! node's block at that height is checked to be the one taken there (otherwise the next
//! poll finds the replacement first). Last, invoices past their expiry are re-evaluated.
//!
//! Any answer from the node that does not have the documented shape stops the poll with
//! its code and is retried later with backoff: guessing could credit what was not paid.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tron_proto::Address;

use crate::chain::{BlockId, Chain, ChainError, Step};
use crate::credit::{self, CreditError};
use crate::model::now_ms;
use crate::node::{Node, NodeError};
use crate::receive_store::{BlockCredits, Event, ReceiveStore, WatchState};
use crate::store::StoreError;

/// Most blocks taken in one poll, so settlement and expiry run in between when far behind.
pub const MAX_BLOCKS_PER_POLL: u64 = 500;

/// Why a poll stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("the node's block data: {0}")]
    Credit(#[from] CreditError),
    #[error("chain tracking: {0}")]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("block {number}: {what}")]
    Shape { number: u64, what: &'static str },
    #[error("the node returned block {got} when asked for {asked}")]
    WrongBlock { asked: u64, got: u64 },
    /// A block taken in this poll was replaced again in the same poll: the node's blocks
    /// do not chain (say, two nodes behind one load balancer). Stepping back again would
    /// only repeat.
    #[error("block {number} was replaced twice in one poll: the node's blocks do not chain")]
    Inconsistent { number: u64 },
}

impl WatchError {
    pub fn code(&self) -> &'static str {
        match self {
            WatchError::Node(e) => e.code(),
            WatchError::Credit(e) => e.code(),
            WatchError::Chain(e) => e.code(),
            WatchError::Store(e) => e.code(),
            WatchError::Shape { .. } => "block_shape",
            WatchError::WrongBlock { .. } => "block_number_mismatch",
            WatchError::Inconsistent { .. } => "node_inconsistent",
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Poll {
    /// Blocks taken (including ones replaced later in the same poll).
    pub blocks: u64,
    /// The last block taken, and the height settled up to.
    pub tip: u64,
    pub settled: u64,
    pub events: usize,
}

pub struct Watcher {
    node: Node,
    store: ReceiveStore,
    token: Address,
    poll_interval: Duration,
    max_backoff: Duration,
}

fn state_of(chain: &Chain) -> WatchState {
    WatchState {
        solidified: chain.solidified(),
        blocks: chain.blocks().map(|(n, id)| (n, hex::encode(id))).collect(),
    }
}

fn chain_of(state: &WatchState) -> Result<Chain, WatchError> {
    let mut blocks = Vec::with_capacity(state.blocks.len());
    for (n, id) in &state.blocks {
        let mut b: BlockId = [0; 32];
        hex::decode_to_slice(id, &mut b).map_err(|_| StoreError::Corrupt {
            key: "watch_state".into(),
            message: format!("block {n} has a bad id"),
        })?;
        blocks.push((*n, b));
    }
    Ok(Chain::resume(state.solidified, blocks)?)
}

fn timestamp_of(block: &Value, number: u64) -> Result<i64, WatchError> {
    block
        .pointer("/block_header/raw_data/timestamp")
        .and_then(Value::as_i64)
        .ok_or(WatchError::Shape {
            number,
            what: "block_header.raw_data.timestamp is missing or not an integer",
        })
}

impl Watcher {
    pub fn new(
        node: Node,
        store: ReceiveStore,
        token: Address,
        poll_interval: Duration,
        max_backoff: Duration,
    ) -> Watcher {
        Watcher {
            node,
            store,
            token,
            poll_interval,
            max_backoff,
        }
    }

    /// One poll; see the module doc.
    pub async fn poll(&self) -> Result<Poll, WatchError> {
        let now = now_ms();
        let solid_block = self.node.solid_block().await?;
        let solid = credit::block_ref(&solid_block)?;
        let mut chain = match self.store.watch_state()? {
            Some(s) => chain_of(&s)?,
            None => {
                // First start: from the solidified block; nothing before it is looked at.
                let c = Chain::start(solid.number, solid.id);
                self.store.save_watch_state(&state_of(&c))?;
                tracing::info!(
                    block = solid.number,
                    "chain watcher starts at the solidified block"
                );
                c
            }
        };
        let head = self.node.head().await?;
        let mut out = Poll::default();
        let mut events: Vec<Event> = Vec::new();
        let mut taken: Vec<(u64, BlockId)> = Vec::new();
        let churn = |unseen: &[(u64, BlockId)], taken: &[(u64, BlockId)]| match unseen
            .iter()
            .find(|u| taken.contains(u))
        {
            Some((number, _)) => Err(WatchError::Inconsistent { number: *number }),
            None => Ok(()),
        };
        while out.blocks < MAX_BLOCKS_PER_POLL {
            let (tip, tip_id) = chain.tip();
            // The next block; or the tip again when the node's head is at the same height
            // with another id (a replaced tip, before any block is built on top of it).
            let number = if tip < head.number {
                tip + 1
            } else if tip == head.number && head.id != tip_id && out.blocks == 0 {
                tip
            } else {
                break;
            };
            let Some(block) = self.node.block_by_num(number).await? else {
                break;
            };
            let r = credit::block_ref(&block)?;
            if r.number != number {
                return Err(WatchError::WrongBlock {
                    asked: number,
                    got: r.number,
                });
            }
            out.blocks += 1;
            match chain.observe(&r)? {
                Step::AlreadySeen => {}
                Step::Accepted { unseen } => {
                    churn(&unseen, &taken)?;
                    taken.push((r.number, r.id));
                    let infos = self.node.block_infos(number).await?;
                    let ours = self.store.deposit_addresses()?;
                    let credits =
                        credit::credits(&block, &infos, &self.token, |a| ours.contains(a))?;
                    if let Some(e) = ours.failure() {
                        return Err(e.into());
                    }
                    let ids: Vec<BlockId> = unseen.iter().map(|(_, id)| *id).collect();
                    if !ids.is_empty() {
                        tracing::warn!(
                            block = number,
                            replaced = ids.len(),
                            "blocks replaced: their payments are un-seen"
                        );
                    }
                    let b = BlockCredits {
                        credits,
                        block_timestamp_ms: timestamp_of(&block, number)?,
                    };
                    events.extend(self.store.apply_block(
                        &ids,
                        Some(&b),
                        &state_of(&chain),
                        now,
                    )?);
                }
                Step::Rewind {
                    unseen,
                    resume_from,
                } => {
                    churn(&unseen, &taken)?;
                    tracing::warn!(
                        block = number,
                        resume_from,
                        replaced = unseen.len(),
                        "fork: stepping back"
                    );
                    let ids: Vec<BlockId> = unseen.iter().map(|(_, id)| *id).collect();
                    events.extend(self.store.apply_block(&ids, None, &state_of(&chain), now)?);
                }
            }
        }
        out.tip = chain.tip().0;
        let height = solid.number.min(out.tip);
        if height > chain.solidified() {
            let ours = chain.blocks().find(|(n, _)| *n == height).map(|(_, id)| id);
            let node_id = if height == solid.number {
                Some(solid.id)
            } else {
                match self.node.block_by_num(height).await? {
                    Some(b) => Some(credit::block_ref(&b)?.id),
                    None => None,
                }
            };
            if ours.is_some() && ours == node_id {
                chain.set_solidified(height);
                events.extend(self.store.settle(height, &state_of(&chain), now)?);
            } else {
                tracing::warn!(
                    height,
                    "the block taken at the solidified height is not the node's; settling waits"
                );
            }
        }
        out.settled = chain.solidified();
        crate::metrics::global().watched(head.number, solid.number, out.tip, out.settled);
        events.extend(self.store.expire(now)?);
        out.events = events.len();
        for e in &events {
            tracing::info!(event = %e.id, kind = %e.kind, tenant = %e.tenant, "invoice event");
        }
        Ok(out)
    }

    /// Polls until `stop` turns true; after a failed poll waits with exponential backoff
    /// (up to `max_backoff`) and logs the error code.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut wait = self.poll_interval;
        loop {
            let polled = self.poll().await;
            crate::metrics::global().watcher_poll(match &polled {
                Ok(_) => "ok",
                Err(e) => e.code(),
            });
            match polled {
                Ok(p) => {
                    tracing::debug!(
                        blocks = p.blocks,
                        tip = p.tip,
                        settled = p.settled,
                        "watch poll"
                    );
                    wait = self.poll_interval;
                    if p.blocks >= MAX_BLOCKS_PER_POLL {
                        wait = Duration::ZERO;
                    }
                }
                Err(e) => {
                    tracing::error!(code = e.code(), error = %e, "chain watcher poll failed; retrying");
                    wait = (wait * 2).clamp(self.poll_interval, self.max_backoff);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::json;

    use crate::store::Store;

    /// A node that answers what the test put in, to reach the refusals a well-behaved
    /// node double never produces.
    #[derive(Default)]
    struct Stub {
        solid: Value,
        head: u64,
        blocks: HashMap<u64, Value>,
        infos: HashMap<u64, Value>,
        down: bool,
    }

    type Shared = Arc<Mutex<Stub>>;

    fn id(n: u64) -> String {
        format!("{n:016x}{}", "ab".repeat(24))
    }

    fn block(n: u64) -> Value {
        json!({"blockID": id(n), "block_header": {"raw_data": {
            "number": n, "parentHash": id(n - 1), "timestamp": 1_700_000_000_000u64 + n}}})
    }

    fn num(body: &Value) -> u64 {
        body["num"].as_u64().unwrap_or(0)
    }

    async fn answer(s: &Shared, f: impl FnOnce(&Stub) -> Value) -> Response {
        let st = s.lock().unwrap();
        if st.down {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Json(f(&st)).into_response()
    }

    async fn start(stub: Stub) -> (Shared, String) {
        let s: Shared = Arc::new(Mutex::new(stub));
        let app = Router::new()
            .route(
                "/walletsolidity/getnowblock",
                post(|State(s): State<Shared>| async move { answer(&s, |st| st.solid.clone()).await }),
            )
            .route(
                "/wallet/getnowblock",
                post(|State(s): State<Shared>| async move {
                    answer(&s, |st| block(st.head)).await
                }),
            )
            .route(
                "/wallet/getblockbynum",
                post(|State(s): State<Shared>, Json(b): Json<Value>| async move {
                    answer(&s, |st| st.blocks.get(&num(&b)).cloned().unwrap_or(json!({}))).await
                }),
            )
            .route(
                "/wallet/gettransactioninfobyblocknum",
                post(|State(s): State<Shared>, Json(b): Json<Value>| async move {
                    answer(&s, |st| st.infos.get(&num(&b)).cloned().unwrap_or(json!([]))).await
                }),
            )
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (s, format!("http://{addr}"))
    }

    fn good() -> Stub {
        let mut st = Stub {
            solid: block(10),
            head: 12,
            ..Default::default()
        };
        for n in 10..=12 {
            st.blocks.insert(n, block(n));
        }
        st
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: ReceiveStore,
        watcher: Watcher,
        stub: Shared,
    }

    async fn setup(stub: Stub) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ReceiveStore::open(Arc::new(Store::open(&dir.path().join("w.redb")).unwrap())).unwrap();
        let (stub, url) = start(stub).await;
        let node = Node::new(&url, None, Duration::from_secs(5)).unwrap();
        let watcher = Watcher::new(
            node,
            store.clone(),
            Address::from_evm([0x77; 20]),
            Duration::from_millis(10),
            Duration::from_millis(20),
        );
        Setup {
            _dir: dir,
            store,
            watcher,
            stub,
        }
    }

    #[tokio::test]
    async fn takes_blocks_to_the_head_and_settles_at_the_solid_height() {
        let s = setup(good()).await;
        let p = s.watcher.poll().await.unwrap();
        assert_eq!((p.blocks, p.tip, p.settled), (2, 12, 10));
        let state = s.store.watch_state().unwrap().unwrap();
        assert_eq!(state.blocks.first().map(|b| b.0), Some(10));
        assert_eq!(state.blocks.last().map(|b| b.0), Some(12));
        // Solidification moves on: settles to 12, and the tracker forgets below.
        s.stub.lock().unwrap().solid = block(12);
        let p = s.watcher.poll().await.unwrap();
        assert_eq!((p.blocks, p.settled), (0, 12));
        assert_eq!(s.store.watch_state().unwrap().unwrap().blocks.len(), 1);
    }

    async fn refused(s: &Setup, code: &str) {
        let before = s.store.watch_state().unwrap();
        let e = s.watcher.poll().await.unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert_eq!(
            s.store.watch_state().unwrap(),
            before,
            "a refused poll changes nothing"
        );
    }

    #[tokio::test]
    async fn a_node_that_is_down_or_answers_the_wrong_shape_is_refused_by_code() {
        let s = setup(good()).await;
        let edit = |f: &dyn Fn(&mut Stub)| f(&mut s.stub.lock().unwrap());
        edit(&|st| st.down = true);
        refused(&s, "node_http_error").await;
        edit(&|st| {
            st.down = false;
            st.solid = json!({"blockID": id(10)});
        });
        refused(&s, "chain_field_missing").await;
        edit(&|st| st.solid = block(10));
        s.watcher.poll().await.unwrap();

        // The node answers another block than the one asked for.
        edit(&|st| {
            st.head = 13;
            st.blocks.insert(13, block(14));
        });
        refused(&s, "block_number_mismatch").await;
        // A block without a timestamp.
        edit(&|st| {
            let mut b = block(13);
            if let Some(raw) = b["block_header"]["raw_data"].as_object_mut() {
                raw.remove("timestamp");
            }
            st.blocks.insert(13, b);
        });
        refused(&s, "block_shape").await;
        // Receipts that do not match the block's transactions.
        edit(&|st| {
            st.blocks.insert(13, block(13));
            st.infos
                .insert(13, json!([{"id": "00".repeat(32), "blockNumber": 13}]));
        });
        refused(&s, "tx_info_count_mismatch").await;
        // A block 13 that does not build on the node's own 12: stepping back to 12 and
        // taking it again would loop.
        edit(&|st| {
            st.infos.clear();
            let mut fork = block(13);
            fork["block_header"]["raw_data"]["parentHash"] =
                json!(format!("{:016x}{}", 12, "cd".repeat(24)));
            st.blocks.insert(13, fork);
        });
        refused(&s, "node_inconsistent").await;
        // Once 12 is settled, a 13 that replaces it is a replaced solidified block: never
        // repaired silently.
        edit(&|st| {
            st.head = 12;
            st.solid = block(12);
        });
        assert_eq!(s.watcher.poll().await.unwrap().settled, 12);
        edit(&|st| st.head = 13);
        refused(&s, "chain_solidified_replaced").await;
    }

    #[tokio::test]
    async fn unusable_stored_state_is_refused() {
        let s = setup(good()).await;
        s.store
            .save_watch_state(&WatchState {
                solidified: 10,
                blocks: vec![(10, "zz".into())],
            })
            .unwrap();
        refused(&s, "database_corrupt").await;
        s.store
            .save_watch_state(&WatchState {
                solidified: 10,
                blocks: vec![(10, id(10)), (12, id(12))],
            })
            .unwrap();
        refused(&s, "chain_bad_resume").await;
    }
}
