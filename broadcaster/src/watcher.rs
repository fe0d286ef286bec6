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
            match self.poll().await {
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
