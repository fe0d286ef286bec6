//! The double's chain: blocks on demand, the checks a node makes at broadcast, receipts
//! with TRC-20 `Transfer` logs, scripted payments ([`crate::sim`]) and reorgs.
//!
//! Pure state, no I/O and no clock of its own: the caller passes the time to
//! [`Chain::produce_block`], so tests drive it block by block. Every block is kept (this
//! is a test double; a run lasts minutes), so any height can be served.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use prost::Message;
use sha2::{Digest, Sha256};
use tron_proto::pb::{transaction, TransferContract, TriggerSmartContract};
use tron_proto::{abi, Address, U256};

use crate::accounts::Accounts;
use crate::fees::{self, ChainParams, EnergyVerdict, Fee};

/// How many recent blocks a TAPOS reference may point at.
pub const TAPOS_BLOCKS: usize = 64;
/// A transaction may expire at most this long after the head block (java-tron's limit).
pub const MAX_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// What a TRC-20 transfer that runs out of tokens reports, as a real USDT contract does.
pub const REVERT_MESSAGE: &str = "REVERT opcode executed";
/// `keccak256("Transfer(address,address,uint256)")`, topic 0 of a TRC-20 transfer log.
pub const TRANSFER_TOPIC: [u8; 32] = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
    0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];

/// One produced block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub number: i64,
    /// First 8 bytes: the height, big-endian (as on Tron); the rest derived from the parent.
    pub id: [u8; 32],
    pub timestamp: i64,
    /// The id of the block this one builds on (genesis: all zero but its height bytes).
    pub parent: [u8; 32],
}

/// The `code` of a failed `/wallet/broadcasthex`, spelled as java-tron spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastCode {
    SigError,
    TaposError,
    ExpirationError,
    DupTransaction,
    ContractValidate,
    ServerBusy,
    OtherError,
}

impl BroadcastCode {
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastCode::SigError => "SIGERROR",
            BroadcastCode::TaposError => "TAPOS_ERROR",
            BroadcastCode::ExpirationError => "TRANSACTION_EXPIRATION_ERROR",
            BroadcastCode::DupTransaction => "DUP_TRANSACTION_ERROR",
            BroadcastCode::ContractValidate => "CONTRACT_VALIDATE_ERROR",
            BroadcastCode::ServerBusy => "SERVER_BUSY",
            BroadcastCode::OtherError => "OTHER_ERROR",
        }
    }
}

/// A refused broadcast: the code, the txid when the bytes got that far, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: BroadcastCode,
    pub txid: Option<[u8; 32]>,
    pub message: String,
}

/// What a transaction's single contract is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    Trx {
        owner: Address,
        to: Address,
        amount: u64,
    },
    /// A broadcast TriggerSmartContract; `call` is the decoded `transfer(to, amount)` when
    /// the call data is exactly that, `None` for any other call (which reverts).
    Trc20 {
        owner: Address,
        token: Address,
        call: Option<(Address, U256)>,
    },
    /// A TRC-10 `TransferAssetContract` (scripted only): `asset_id` is the numeric id.
    Trc10 {
        owner: Address,
        to: Address,
        asset_id: String,
        amount: u64,
    },
    /// A scripted TriggerSmartContract whose outcome (logs, balances) is given, not run.
    Call {
        owner: Address,
        contract: Address,
        data: Vec<u8>,
    },
}

/// The receipt result of an included transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    Success,
    Revert,
    /// The call needed more energy than `min(balance, fee_limit)` could buy.
    OutOfEnergy,
}

impl Receipt {
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Success => "SUCCESS",
            Receipt::Revert => "REVERT",
            Receipt::OutOfEnergy => "OUT_OF_ENERGY",
        }
    }
}

/// An event log as a receipt carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The emitting contract.
    pub address: Address,
    pub topics: Vec<[u8; 32]>,
    pub data: Vec<u8>,
}

impl Log {
    /// A TRC-20 `Transfer(from, to, amount)` emitted by `token`.
    pub fn transfer(token: Address, from: &Address, to: &Address, amount: U256) -> Log {
        let word = |a: &Address| {
            let mut w = [0u8; 32];
            w[12..].copy_from_slice(a.evm_bytes());
            w
        };
        Log {
            address: token,
            topics: vec![TRANSFER_TOPIC, word(from), word(to)],
            data: amount.to_be_bytes().to_vec(),
        }
    }
}

/// A balance change a transaction made; undone in reverse order when its block is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// `None`: TRX; otherwise the TRC-20 contract.
    pub token: Option<Address>,
    /// `None`: the funds come from outside the double (a scripted customer).
    pub from: Option<Address>,
    pub to: Address,
    pub amount: U256,
}

/// What executing a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub receipt: Receipt,
    /// Human-readable failure reason (hex-encoded on the wire as `resMessage`).
    pub res_message: Option<String>,
    pub logs: Vec<Log>,
    pub effects: Vec<Effect>,
    /// What it burnt ([`crate::fees`]).
    pub fee: Fee,
}

impl Outcome {
    pub fn success(logs: Vec<Log>, effects: Vec<Effect>) -> Outcome {
        Outcome {
            receipt: Receipt::Success,
            res_message: None,
            logs,
            effects,
            fee: Fee::default(),
        }
    }

    pub fn revert(message: &str) -> Outcome {
        Outcome {
            receipt: Receipt::Revert,
            res_message: Some(message.into()),
            logs: Vec::new(),
            effects: Vec::new(),
            fee: Fee::default(),
        }
    }

    /// The same outcome, burning `fee`.
    pub fn with_fee(self, fee: Fee) -> Outcome {
        Outcome { fee, ..self }
    }
}

/// An included transaction and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    pub txid: [u8; 32],
    pub block_number: i64,
    pub block_timestamp: i64,
    pub receipt: Receipt,
    pub res_message: Option<String>,
    pub transfer: Transfer,
    /// The `raw_data` bytes exactly as signed (its sha256 is the txid).
    pub raw: Vec<u8>,
    /// Empty for scripted transactions, which nobody signed.
    pub signature: Vec<Vec<u8>>,
    pub logs: Vec<Log>,
    pub effects: Vec<Effect>,
    pub fee: Fee,
    /// Accounts this transaction's TRX credits created (removed again if it is undone).
    pub created: Vec<Address>,
}

#[derive(Debug, Clone)]
struct Pending {
    txid: [u8; 32],
    transfer: Transfer,
    raw: Vec<u8>,
    /// `raw_data.fee_limit`: the most a contract call may burn for energy.
    fee_limit: i64,
    signature: Vec<Vec<u8>>,
    /// Scripted transactions carry their outcome; broadcast ones are executed.
    outcome: Option<Outcome>,
    /// Accepted at broadcast but never to be included (`/double/drop_next`).
    dropped: bool,
}

#[derive(Debug, Clone)]
struct Stored {
    block: Block,
    /// This block's transactions in [`Chain::included`].
    txs: Range<usize>,
}

/// Why a reorg was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReorgError {
    #[error("depth must be at least 1")]
    Zero,
    #[error("a reorg of {depth} blocks would replace block {lowest}, at or below the solidified height {solid}")]
    Solidified { depth: u32, lowest: i64, solid: i64 },
}

/// The whole simulated chain.
#[derive(Debug)]
pub struct Chain {
    /// Every block; genesis (height 1) first, so block `n` is at index `n - 1`.
    blocks: Vec<Stored>,
    solid_after: i64,
    pending: Vec<Pending>,
    seen: HashSet<[u8; 32]>,
    /// Included transactions in block order.
    included: Vec<TxInfo>,
    by_txid: HashMap<[u8; 32], usize>,
    accounts: Accounts,
    params: ChainParams,
    drop_next: u32,
    /// Bumped by each reorg, so replacement blocks get ids of their own.
    fork: u64,
    /// Makes scripted transactions distinct.
    nonce: i64,
}

impl Chain {
    /// A chain with a genesis block at height 1 and time `now_ms`.
    pub fn new(accounts: Accounts, solid_after: u32, now_ms: i64) -> Chain {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&1i64.to_be_bytes());
        id[8..].copy_from_slice(&Sha256::digest(b"tron-node-double genesis")[..24]);
        let genesis = Block {
            number: 1,
            id,
            timestamp: now_ms,
            parent: [0; 32],
        };
        Chain {
            blocks: vec![Stored {
                block: genesis,
                txs: 0..0,
            }],
            solid_after: i64::from(solid_after),
            pending: Vec::new(),
            seen: HashSet::new(),
            included: Vec::new(),
            by_txid: HashMap::new(),
            accounts,
            params: ChainParams::default(),
            drop_next: 0,
            fork: 0,
            nonce: 0,
        }
    }

    pub fn head(&self) -> &Block {
        // Never empty: it starts with genesis, and a reorg never removes a solid block.
        &self.blocks[self.blocks.len() - 1].block
    }

    /// The highest block at least `solid_after` blocks deep (genesis at the least).
    pub fn solid_number(&self) -> i64 {
        (self.head().number - self.solid_after).max(1)
    }

    /// Block `number` and its transactions, if produced.
    pub fn block(&self, number: i64) -> Option<(&Block, &[TxInfo])> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        let s = self.blocks.get(index)?;
        Some((&s.block, &self.included[s.txs.clone()]))
    }

    /// Produces the next block, including every pending transaction not marked dropped,
    /// and applies their balance changes.
    pub fn produce_block(&mut self, now_ms: i64) -> Block {
        let parent = self.head().clone();
        let number = parent.number + 1;
        let timestamp = now_ms.max(parent.timestamp + 1);
        let mut h = Sha256::new();
        h.update(parent.id);
        h.update(number.to_be_bytes());
        h.update(timestamp.to_be_bytes());
        h.update(self.fork.to_be_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&number.to_be_bytes());
        id[8..].copy_from_slice(&digest[..24]);
        let block = Block {
            number,
            id,
            timestamp,
            parent: parent.id,
        };
        let first = self.included.len();
        for p in std::mem::take(&mut self.pending) {
            if p.dropped {
                continue;
            }
            let outcome = match p.outcome {
                Some(o) => o,
                None => self.execute(&p.transfer, p.fee_limit),
            };
            let mut created = Vec::new();
            for e in &outcome.effects {
                if e.token.is_none() && !self.accounts.exists(&e.to) {
                    created.push(e.to);
                }
                self.apply(e, false);
            }
            if let Some(payer) = outcome.fee.payer {
                self.accounts
                    .add_trx(&payer, u128::from(outcome.fee.total()), false);
            }
            self.by_txid.insert(p.txid, self.included.len());
            self.included.push(TxInfo {
                txid: p.txid,
                block_number: number,
                block_timestamp: timestamp,
                receipt: outcome.receipt,
                res_message: outcome.res_message,
                transfer: p.transfer,
                raw: p.raw,
                signature: p.signature,
                logs: outcome.logs,
                effects: outcome.effects,
                fee: outcome.fee,
                created,
            });
        }
        self.blocks.push(Stored {
            block: block.clone(),
            txs: first..self.included.len(),
        });
        block
    }

    /// Replaces the top `depth` blocks with as many new ones (new ids, same heights), as
    /// when the network switches to another fork. Their transactions are undone; with
    /// `keep_transactions` they are included again in the first replacement block,
    /// otherwise they are gone (as if never broadcast, but their txids stay known).
    /// Only blocks above the solidified height can be replaced.
    pub fn reorg(
        &mut self,
        depth: u32,
        keep_transactions: bool,
        now_ms: i64,
    ) -> Result<Vec<Block>, ReorgError> {
        if depth == 0 {
            return Err(ReorgError::Zero);
        }
        let head = self.head().number;
        let lowest = head - i64::from(depth) + 1;
        let solid = self.solid_number();
        if lowest <= solid {
            return Err(ReorgError::Solidified {
                depth,
                lowest,
                solid,
            });
        }
        // `lowest > solid >= 1`, so the index is in range and genesis stays.
        let cut = (lowest - 1) as usize;
        let first_tx = self.blocks[cut].txs.start;
        self.blocks.truncate(cut);
        let removed: Vec<TxInfo> = self.included.split_off(first_tx);
        for info in removed.iter().rev() {
            if let Some(payer) = info.fee.payer {
                self.accounts
                    .add_trx(&payer, u128::from(info.fee.total()), true);
            }
            for e in info.effects.iter().rev() {
                self.apply(e, true);
            }
            for a in &info.created {
                self.accounts.remove_if_empty(a);
            }
            self.by_txid.remove(&info.txid);
        }
        self.fork += 1;
        if keep_transactions {
            let mut again: Vec<Pending> = removed
                .into_iter()
                .map(|i| {
                    // Scripted ones keep their script; broadcast ones run again.
                    let outcome = i.signature.is_empty().then_some(Outcome {
                        receipt: i.receipt,
                        res_message: i.res_message,
                        logs: i.logs,
                        effects: i.effects,
                        fee: i.fee,
                    });
                    let fee_limit = fee_limit_of(&i.raw);
                    Pending {
                        txid: i.txid,
                        transfer: i.transfer,
                        raw: i.raw,
                        fee_limit,
                        signature: i.signature,
                        outcome,
                        dropped: false,
                    }
                })
                .collect();
            again.append(&mut self.pending);
            self.pending = again;
        }
        Ok((0..depth).map(|_| self.produce_block(now_ms)).collect())
    }

    /// Moves balances for `e`, or back with `undo`. Debits never go below zero: the
    /// amounts were checked when the transaction ran, and undo runs in reverse order.
    fn apply(&mut self, e: &Effect, undo: bool) {
        let (debit, credit) = if undo {
            (Some(e.to), e.from)
        } else {
            (e.from, Some(e.to))
        };
        for (who, add) in [(debit, false), (credit, true)] {
            let Some(who) = who else { continue };
            match &e.token {
                None => {
                    let amount = u128::try_from(e.amount).unwrap_or(u128::MAX);
                    self.accounts.add_trx(&who, amount, add)
                }
                Some(t) => self.accounts.add_trc20(t, &who, e.amount, add),
            }
        }
    }

    /// Runs a broadcast transaction against the balances, burning what it costs
    /// ([`crate::fees`]).
    fn execute(&self, t: &Transfer, fee_limit: i64) -> Outcome {
        match t {
            Transfer::Trx { owner, to, amount } => {
                let creating = !self.accounts.exists(to);
                let create_fee = if creating {
                    self.params.account_creation_sun()
                } else {
                    0
                };
                // Checked at broadcast against balance minus pending debits, so this holds
                // unless an earlier transaction in the block spent it.
                let need = u128::from(*amount).saturating_add(u128::from(create_fee));
                if self.accounts.trx(owner) < need {
                    return Outcome::revert("balance is not sufficient");
                }
                let fee = if creating {
                    Fee {
                        payer: Some(*owner),
                        net_fee: self.params.create_account_fee,
                        account_create_fee: self.params.create_new_account_fee_in_system_contract,
                        ..Fee::default()
                    }
                } else {
                    Fee::default()
                };
                Outcome::success(
                    Vec::new(),
                    vec![Effect {
                        token: None,
                        from: Some(*owner),
                        to: *to,
                        amount: U256::from(*amount),
                    }],
                )
                .with_fee(fee)
            }
            Transfer::Trc20 { owner, token, call } => {
                let run = self.run_token_call(owner, token, *call);
                let energy = match &run {
                    Ok((_, energy)) | Err(energy) => *energy,
                };
                let verdict = fees::price_energy(
                    energy,
                    self.params.energy_fee,
                    self.accounts.trx(owner),
                    fee_limit,
                );
                let fee = |energy, burn| Fee {
                    payer: Some(*owner),
                    energy_usage_total: energy,
                    energy_fee: burn,
                    ..Fee::default()
                };
                match (verdict, run) {
                    (EnergyVerdict::OutOfEnergy { energy, burn }, _) => Outcome {
                        receipt: Receipt::OutOfEnergy,
                        res_message: Some(fees::OUT_OF_ENERGY_MESSAGE.into()),
                        logs: Vec::new(),
                        effects: Vec::new(),
                        fee: fee(energy, burn),
                    },
                    (EnergyVerdict::Paid { energy, burn }, Ok(((to, amount), _))) => {
                        Outcome::success(
                            vec![Log::transfer(*token, owner, &to, amount)],
                            vec![Effect {
                                token: Some(*token),
                                from: Some(*owner),
                                to,
                                amount,
                            }],
                        )
                        .with_fee(fee(energy, burn))
                    }
                    (EnergyVerdict::Paid { energy, burn }, Err(_)) => {
                        Outcome::revert(REVERT_MESSAGE).with_fee(fee(energy, burn))
                    }
                }
            }
            // Only scripted, and scripted transactions carry their outcome.
            Transfer::Trc10 { .. } | Transfer::Call { .. } => Outcome::revert("not executable"),
        }
    }

    /// What a token call would do now: `Ok` with the transfer and its energy, or `Err`
    /// with the energy of the revert (not `transfer(address,uint256)`, or the owner holds
    /// too little).
    fn run_token_call(
        &self,
        owner: &Address,
        token: &Address,
        call: Option<(Address, U256)>,
    ) -> Result<((Address, U256), u64), u64> {
        let Some((to, amount)) = call else {
            return Err(fees::ENERGY_REVERT);
        };
        if self.accounts.trc20(token, owner) < amount {
            return Err(fees::ENERGY_REVERT);
        }
        let energy = if self.accounts.trc20(token, &to) > U256::ZERO {
            fees::ENERGY_TRANSFER_TO_HOLDER
        } else {
            fees::ENERGY_TRANSFER_TO_NEW_HOLDER
        };
        Ok(((to, amount), energy))
    }

    /// `triggerconstantcontract` of `transfer(to, amount)` on `token` from `owner`: the
    /// energy it would use now, or `Err` with the energy of its revert. Balances as of
    /// the last block (pending transactions are not run).
    pub fn estimate_transfer(
        &self,
        owner: &Address,
        token: &Address,
        to: &Address,
        amount: U256,
    ) -> Result<u64, u64> {
        self.run_token_call(owner, token, Some((*to, amount)))
            .map(|(_, e)| e)
    }

    /// The prices in force.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Changes the prices; transactions included from the next block on pay them.
    pub fn params_mut(&mut self) -> &mut ChainParams {
        &mut self.params
    }

    /// Queues a scripted transaction for the next block: its `raw` is built by the caller
    /// ([`crate::sim`]) and its outcome is given. Returns the txid.
    pub fn submit_scripted(
        &mut self,
        transfer: Transfer,
        raw: Vec<u8>,
        outcome: Outcome,
    ) -> [u8; 32] {
        let txid = tron_proto::txid(&raw);
        self.seen.insert(txid);
        let fee_limit = fee_limit_of(&raw);
        self.pending.push(Pending {
            txid,
            transfer,
            raw,
            fee_limit,
            signature: Vec::new(),
            outcome: Some(outcome),
            dropped: false,
        });
        txid
    }

    /// A fresh number for a scripted transaction's timestamp, so two identical payments
    /// are two transactions.
    pub fn next_nonce(&mut self) -> i64 {
        self.nonce += 1;
        self.nonce
    }

    /// Accept but never include the next `n` successful broadcasts.
    pub fn drop_next(&mut self, n: u32) {
        self.drop_next = n;
    }

    /// The receipt of an included transaction; with `solid`, only once it is
    /// `solid_after` blocks deep.
    pub fn tx_info(&self, txid: &[u8; 32], solid: bool) -> Option<&TxInfo> {
        let info = self.included.get(*self.by_txid.get(txid)?)?;
        if solid && info.block_number > self.solid_number() {
            return None;
        }
        Some(info)
    }

    /// Every included transaction, oldest first.
    pub fn included(&self) -> &[TxInfo] {
        &self.included
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Makes `token` a TRC-20 contract the double knows.
    pub fn add_token(&mut self, token: Address) {
        self.accounts.add_token(token);
    }

    /// The checks a node makes on `/wallet/broadcasthex`, in this order: the bytes decode
    /// as a Transaction with exactly one signature and one Transfer/TriggerSmartContract;
    /// TAPOS; expiration; duplicate txid; signature recovers to the owner; contract
    /// validation (TRX balance, TRC-20 contract exists). On success the transaction is
    /// pending for the next block.
    pub fn broadcast(&mut self, tx_bytes: &[u8]) -> Result<[u8; 32], Rejection> {
        let reject = |code, txid, message: String| Rejection {
            code,
            txid,
            message,
        };
        let tx = SignedTx::decode(tx_bytes).map_err(|e| {
            reject(
                BroadcastCode::OtherError,
                None,
                format!("not a Transaction: {e}"),
            )
        })?;
        let txid = tron_proto::txid(&tx.raw_data);
        let raw = transaction::Raw::decode(&tx.raw_data[..]).map_err(|e| {
            reject(
                BroadcastCode::OtherError,
                Some(txid),
                format!("raw_data does not decode: {e}"),
            )
        })?;
        let fail = |code, message: String| reject(code, Some(txid), message);
        if tx.signature.len() != 1 {
            return Err(fail(
                BroadcastCode::SigError,
                format!("expected 1 signature, found {}", tx.signature.len()),
            ));
        }
        let (owner, transfer) =
            parse_contract(&raw).map_err(|m| fail(BroadcastCode::ContractValidate, m))?;

        self.check_tapos(&raw)
            .map_err(|m| fail(BroadcastCode::TaposError, m))?;
        let head_ts = self.head().timestamp;
        if raw.expiration <= head_ts || raw.expiration > head_ts + MAX_EXPIRATION_MS {
            return Err(fail(
                BroadcastCode::ExpirationError,
                format!(
                    "transaction expiration, exp time is {}, but head block time is {head_ts}",
                    raw.expiration
                ),
            ));
        }
        if self.seen.contains(&txid) {
            return Err(fail(
                BroadcastCode::DupTransaction,
                "dup trans: this transaction is already known".into(),
            ));
        }
        match tron_proto::sig::recover_address(&txid, &tx.signature[0]) {
            Ok(signer) if signer == owner => {}
            Ok(signer) => {
                return Err(fail(
                    BroadcastCode::SigError,
                    format!("signature recovers to {signer}, but the owner is {owner}"),
                ))
            }
            Err(e) => return Err(fail(BroadcastCode::SigError, format!("bad signature: {e}"))),
        }
        self.validate_contract(&transfer, raw.fee_limit)
            .map_err(|m| fail(BroadcastCode::ContractValidate, m))?;

        self.seen.insert(txid);
        let dropped = self.drop_next > 0;
        if dropped {
            self.drop_next -= 1;
        }
        self.pending.push(Pending {
            txid,
            transfer,
            raw: tx.raw_data,
            fee_limit: raw.fee_limit,
            signature: tx.signature,
            outcome: None,
            dropped,
        });
        Ok(txid)
    }

    fn check_tapos(&self, raw: &transaction::Raw) -> Result<(), String> {
        let recent = &self.blocks[self.blocks.len().saturating_sub(TAPOS_BLOCKS)..];
        let found = recent.iter().map(|s| &s.block).any(|b| {
            raw.ref_block_bytes.as_slice() == &b.id[6..8]
                && raw.ref_block_hash.as_slice() == &b.id[8..16]
        });
        if found {
            Ok(())
        } else {
            Err(format!(
                "Tapos check error: ref_block_bytes {} / ref_block_hash {} is not one of the last {TAPOS_BLOCKS} blocks",
                hex::encode(&raw.ref_block_bytes),
                hex::encode(&raw.ref_block_hash)
            ))
        }
    }

    fn validate_contract(&self, t: &Transfer, fee_limit: i64) -> Result<(), String> {
        match t {
            Transfer::Trx { owner, to, amount } => {
                if *amount == 0 {
                    return Err("amount must be greater than 0".into());
                }
                if owner == to {
                    return Err("Cannot transfer TRX to yourself.".into());
                }
                let committed: u128 = self
                    .pending
                    .iter()
                    .filter_map(|p| match &p.transfer {
                        Transfer::Trx {
                            owner: o, amount, ..
                        } if o == owner && !p.dropped => Some(u128::from(*amount)),
                        _ => None,
                    })
                    .sum();
                let available = self.accounts.trx(owner).saturating_sub(committed);
                let create_fee = if self.accounts.exists(to) {
                    0
                } else {
                    self.params.account_creation_sun()
                };
                let need = u128::from(*amount).saturating_add(u128::from(create_fee));
                if available < need {
                    return Err(format!(
                        "Validate TransferContract error, balance is not sufficient: {available} sun available, {amount} asked plus {create_fee} to create the account"
                    ));
                }
                Ok(())
            }
            Transfer::Trc20 { owner, token, .. } => {
                if !self.accounts.exists(owner) {
                    return Err(format!(
                        "Validate TriggerSmartContract error, account {owner} does not exist"
                    ));
                }
                if !(0..=fees::MAX_FEE_LIMIT_SUN).contains(&fee_limit) {
                    return Err(format!(
                        "feeLimit must be >= 0 and <= {}",
                        fees::MAX_FEE_LIMIT_SUN
                    ));
                }
                if self.accounts.is_token(token) {
                    Ok(())
                } else {
                    Err(format!("No contract or not a smart contract: {token}"))
                }
            }
            // `parse_contract` produces neither from broadcast bytes.
            Transfer::Trc10 { .. } | Transfer::Call { .. } => {
                Err("this contract type is only scripted in the double".into())
            }
        }
    }
}

/// The outer Transaction, keeping `raw_data` as the exact bytes received so the txid is
/// the hash of what was signed (wire-identical to `tron_proto::pb::Transaction`).
#[derive(Clone, PartialEq, Message)]
struct SignedTx {
    #[prost(bytes = "vec", tag = "1")]
    raw_data: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    signature: Vec<Vec<u8>>,
}

fn parse_contract(raw: &transaction::Raw) -> Result<(Address, Transfer), String> {
    use transaction::contract::ContractType;
    let [contract] = raw.contract.as_slice() else {
        return Err(format!(
            "expected exactly 1 contract, found {}",
            raw.contract.len()
        ));
    };
    let value = contract
        .parameter
        .as_ref()
        .map(|p| p.value.as_slice())
        .unwrap_or(&[]);
    let addr =
        |b: &[u8], what: &str| Address::from_bytes(b).map_err(|e| format!("invalid {what}: {e}"));
    if contract.r#type == ContractType::TransferContract as i32 {
        let c =
            TransferContract::decode(value).map_err(|e| format!("bad TransferContract: {e}"))?;
        let owner = addr(&c.owner_address, "owner_address")?;
        let to = addr(&c.to_address, "to_address")?;
        let amount =
            u64::try_from(c.amount).map_err(|_| "amount must be greater than 0".to_owned())?;
        Ok((owner, Transfer::Trx { owner, to, amount }))
    } else if contract.r#type == ContractType::TriggerSmartContract as i32 {
        let c = TriggerSmartContract::decode(value)
            .map_err(|e| format!("bad TriggerSmartContract: {e}"))?;
        let owner = addr(&c.owner_address, "owner_address")?;
        let token = addr(&c.contract_address, "contract_address")?;
        Ok((
            owner,
            Transfer::Trc20 {
                owner,
                token,
                call: decode_transfer_call(&c.data),
            },
        ))
    } else {
        Err(format!(
            "contract type {} is not supported by this double",
            contract.r#type
        ))
    }
}

/// `raw_data.fee_limit` of stored bytes (0 when they do not decode: scripted ones do).
fn fee_limit_of(raw: &[u8]) -> i64 {
    transaction::Raw::decode(raw).map_or(0, |r| r.fee_limit)
}

fn decode_transfer_call(data: &[u8]) -> Option<(Address, U256)> {
    if data.len() != abi::TRANSFER_CALL_LEN || data[..4] != abi::SELECTOR_TRANSFER {
        return None;
    }
    if data[4..16].iter().any(|b| *b != 0) {
        return None;
    }
    let mut evm = [0u8; 20];
    evm.copy_from_slice(&data[16..36]);
    let mut amount = [0u8; 32];
    amount.copy_from_slice(&data[36..68]);
    Some((Address::from_evm(evm), U256::from_be_bytes(amount)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use tron_proto::pb::{transaction::Contract, Any};

    pub fn key(b: u8) -> SigningKey {
        SigningKey::from_slice(&[b; 32]).unwrap()
    }

    pub fn address(k: &SigningKey) -> Address {
        Address::from_verifying_key(k.verifying_key())
    }

    pub fn token() -> Address {
        Address::from_evm([0x77; 20])
    }

    /// Builds `raw_data` for a chain's head TAPOS.
    pub struct Build {
        pub ref_bytes: Vec<u8>,
        pub ref_hash: Vec<u8>,
        pub expiration: i64,
        pub contract: Contract,
        pub timestamp: i64,
        pub fee_limit: i64,
    }

    impl Build {
        pub fn on(block: &Block) -> Build {
            Build {
                ref_bytes: block.id[6..8].to_vec(),
                ref_hash: block.id[8..16].to_vec(),
                expiration: block.timestamp + 60_000,
                contract: Contract::default(),
                timestamp: block.timestamp,
                fee_limit: 30_000_000,
            }
        }

        pub fn trx(mut self, owner: Address, to: Address, amount: i64) -> Build {
            let c = TransferContract {
                owner_address: owner.as_bytes().to_vec(),
                to_address: to.as_bytes().to_vec(),
                amount,
            };
            self.contract = Contract {
                r#type: 1,
                parameter: Some(Any {
                    type_url: "type.googleapis.com/protocol.TransferContract".into(),
                    value: c.encode_to_vec(),
                }),
                ..Default::default()
            };
            self
        }

        pub fn trc20(mut self, owner: Address, token: Address, data: Vec<u8>) -> Build {
            let c = TriggerSmartContract {
                owner_address: owner.as_bytes().to_vec(),
                contract_address: token.as_bytes().to_vec(),
                data,
                ..Default::default()
            };
            self.contract = Contract {
                r#type: 31,
                parameter: Some(Any {
                    type_url: "type.googleapis.com/protocol.TriggerSmartContract".into(),
                    value: c.encode_to_vec(),
                }),
                ..Default::default()
            };
            self
        }

        pub fn raw(&self) -> Vec<u8> {
            transaction::Raw {
                ref_block_bytes: self.ref_bytes.clone(),
                ref_block_hash: self.ref_hash.clone(),
                expiration: self.expiration,
                contract: vec![self.contract.clone()],
                timestamp: self.timestamp,
                fee_limit: self.fee_limit,
                ..Default::default()
            }
            .encode_to_vec()
        }

        /// Signed bytes with the signature v in 0/1 plus `v_offset`.
        pub fn sign_with(&self, k: &SigningKey, v_offset: u8) -> Vec<u8> {
            let raw = self.raw();
            let txid = tron_proto::txid(&raw);
            let (sig, recid) = k.sign_prehash_recoverable(&txid).unwrap();
            let mut s = sig.to_bytes().to_vec();
            s.push(recid.to_byte() + v_offset);
            signed_bytes(&raw, vec![s])
        }

        pub fn sign(&self, k: &SigningKey) -> Vec<u8> {
            self.sign_with(k, 0)
        }
    }

    pub fn signed_bytes(raw: &[u8], sigs: Vec<Vec<u8>>) -> Vec<u8> {
        SignedTx {
            raw_data: raw.to_vec(),
            signature: sigs,
        }
        .encode_to_vec()
    }

    /// The TRX the test owner starts with: 1,000 TRX, enough for energy and new accounts.
    pub const START_SUN: u128 = 1_000_000_000;
    const SIXTY_PERCENT: i64 = (START_SUN as i64) / 10 * 6;

    /// The owner with TRX and 500 token units; `dest()` (`41d1…d1`) as an existing account
    /// with no TRX, so transfers to it create nothing.
    pub fn accounts(owner: Address) -> Accounts {
        let json = format!(
            r#"{{"trx": {{"{owner}": "{START_SUN}", "{}": "0"}}, "trc20": {{"{}": {{"{owner}": "500"}}}}}}"#,
            dest(),
            token()
        );
        Accounts::from_json(json.as_bytes()).unwrap()
    }

    fn setup() -> (Chain, SigningKey, Address) {
        let k = key(0x11);
        let owner = address(&k);
        let mut chain = Chain::new(accounts(owner), 3, 1_000_000);
        chain.produce_block(1_003_000);
        (chain, k, owner)
    }

    pub fn dest() -> Address {
        Address::from_evm([0xd1; 20])
    }

    fn code(r: Result<[u8; 32], Rejection>) -> &'static str {
        r.unwrap_err().code.as_str()
    }

    fn transfer_call(to: Address, amount: u128) -> Vec<u8> {
        abi::encode_transfer(&to, U256::from(amount))
    }

    #[test]
    fn block_ids_carry_the_height() {
        let (mut chain, _, _) = setup();
        for _ in 0..100 {
            let b = chain.produce_block(0);
            assert_eq!(b.id[..8], b.number.to_be_bytes());
            assert!(b.timestamp > 0);
        }
        assert_eq!(chain.head().number, 102);
        assert_eq!(chain.block(102).unwrap().0, chain.head());
        assert_eq!(chain.block(50).unwrap().0.number, 50);
        assert!(chain.block(103).is_none() && chain.block(0).is_none());
    }

    #[test]
    fn accepted_trx_moves_in_the_next_block_and_solidifies() {
        let (mut chain, k, owner) = setup();
        let tx = Build::on(chain.head()).trx(owner, dest(), 400).sign(&k);
        let txid = chain.broadcast(&tx).unwrap();
        assert_eq!(
            chain.tx_info(&txid, false),
            None,
            "pending until the next block"
        );
        assert_eq!(chain.accounts().trx(&owner), START_SUN);
        let b = chain.produce_block(1_006_000);
        let info = chain.tx_info(&txid, false).unwrap();
        assert_eq!(info.block_number, b.number);
        assert_eq!(info.receipt, Receipt::Success);
        assert_eq!(chain.accounts().trx(&owner), START_SUN - 400);
        assert_eq!(chain.accounts().trx(&dest()), 400);
        for _ in 0..2 {
            chain.produce_block(0);
            assert_eq!(chain.tx_info(&txid, true), None, "not solid yet");
        }
        chain.produce_block(0);
        assert!(chain.tx_info(&txid, true).is_some());
    }

    #[test]
    fn every_v_convention_is_accepted() {
        let (mut chain, k, owner) = setup();
        for (i, v) in [0u8, 27].into_iter().enumerate() {
            let tx = Build::on(chain.head())
                .trx(owner, dest(), 1 + i as i64)
                .sign_with(&k, v);
            chain.broadcast(&tx).unwrap();
        }
    }

    #[test]
    fn sigerror_for_wrong_key_missing_extra_or_garbage_signature() {
        let (mut chain, k, owner) = setup();
        let b = Build::on(chain.head()).trx(owner, dest(), 1);
        assert_eq!(code(chain.broadcast(&b.sign(&key(0x22)))), "SIGERROR");
        let raw = b.raw();
        assert_eq!(
            code(chain.broadcast(&signed_bytes(&raw, vec![]))),
            "SIGERROR"
        );
        let good = {
            let txid = tron_proto::txid(&raw);
            let (s, r) = k.sign_prehash_recoverable(&txid).unwrap();
            let mut v = s.to_bytes().to_vec();
            v.push(r.to_byte());
            v
        };
        assert_eq!(
            code(chain.broadcast(&signed_bytes(&raw, vec![good.clone(), good.clone()]))),
            "SIGERROR"
        );
        let mut bad_v = good.clone();
        bad_v[64] = 5;
        assert_eq!(
            code(chain.broadcast(&signed_bytes(&raw, vec![bad_v]))),
            "SIGERROR"
        );
        assert_eq!(
            code(chain.broadcast(&signed_bytes(&raw, vec![good[..64].to_vec()]))),
            "SIGERROR"
        );
        // The good one still goes through afterwards: rejections are not remembered.
        chain.broadcast(&signed_bytes(&raw, vec![good])).unwrap();
    }

    #[test]
    fn tapos_must_name_a_recent_block() {
        let (mut chain, k, owner) = setup();
        let old = chain.head().clone();
        let mut b = Build::on(&old).trx(owner, dest(), 1);
        b.ref_hash[0] ^= 1;
        assert_eq!(code(chain.broadcast(&b.sign(&k))), "TAPOS_ERROR");
        let mut b = Build::on(&old).trx(owner, dest(), 1);
        b.ref_bytes = vec![0xff, 0xff];
        assert_eq!(code(chain.broadcast(&b.sign(&k))), "TAPOS_ERROR");
        let mut b = Build::on(&old).trx(owner, dest(), 1);
        b.ref_bytes.clear();
        assert_eq!(code(chain.broadcast(&b.sign(&k))), "TAPOS_ERROR");
        // A reference 63 blocks back is fine; once it falls out of the window it is not.
        for _ in 0..(TAPOS_BLOCKS - 1) {
            chain.produce_block(0);
        }
        let mut b = Build::on(&old).trx(owner, dest(), 1);
        b.expiration = chain.head().timestamp + 1000;
        chain.broadcast(&b.sign(&k)).unwrap();
        chain.produce_block(0);
        let mut b = Build::on(&old).trx(owner, dest(), 2);
        b.expiration = chain.head().timestamp + 1000;
        assert_eq!(code(chain.broadcast(&b.sign(&k))), "TAPOS_ERROR");
    }

    #[test]
    fn expiration_window_is_enforced() {
        let (mut chain, k, owner) = setup();
        let head = chain.head().clone();
        for (exp, ok) in [
            (head.timestamp, false),
            (head.timestamp - 1, false),
            (head.timestamp + 1, true),
            (head.timestamp + MAX_EXPIRATION_MS, true),
            (head.timestamp + MAX_EXPIRATION_MS + 1, false),
        ] {
            let mut b = Build::on(&head).trx(owner, dest(), 1);
            b.expiration = exp;
            b.timestamp = exp; // distinct txids
            let r = chain.broadcast(&b.sign(&k));
            if ok {
                r.unwrap();
            } else {
                assert_eq!(code(r), "TRANSACTION_EXPIRATION_ERROR", "{exp}");
            }
        }
    }

    #[test]
    fn duplicates_are_refused_before_and_after_inclusion() {
        let (mut chain, k, owner) = setup();
        let tx = Build::on(chain.head()).trx(owner, dest(), 1).sign(&k);
        let txid = chain.broadcast(&tx).unwrap();
        let r = chain.broadcast(&tx).unwrap_err();
        assert_eq!(r.code, BroadcastCode::DupTransaction);
        assert_eq!(r.txid, Some(txid));
        chain.produce_block(0);
        assert_eq!(code(chain.broadcast(&tx)), "DUP_TRANSACTION_ERROR");
        assert_eq!(chain.included().len(), 1);
    }

    #[test]
    fn trx_over_balance_is_contract_validate_error() {
        let (mut chain, k, owner) = setup();
        let head = chain.head().clone();
        let too_much = Build::on(&head)
            .trx(owner, dest(), START_SUN as i64 + 1)
            .sign(&k);
        assert_eq!(code(chain.broadcast(&too_much)), "CONTRACT_VALIDATE_ERROR");
        // Pending debits count: 60 % then 60 % more does not fit.
        chain
            .broadcast(&Build::on(&head).trx(owner, dest(), SIXTY_PERCENT).sign(&k))
            .unwrap();
        let second = Build::on(&head).trx(owner, dest(), SIXTY_PERCENT);
        let mut second = second;
        second.timestamp += 1;
        assert_eq!(
            code(chain.broadcast(&second.sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
        assert_eq!(
            code(chain.broadcast(&Build::on(&head).trx(owner, owner, 1).sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
        assert_eq!(
            code(chain.broadcast(&Build::on(&head).trx(owner, dest(), 0).sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
        assert_eq!(
            code(chain.broadcast(&Build::on(&head).trx(owner, dest(), -5).sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
    }

    #[test]
    fn trc20_transfer_moves_tokens_or_reverts() {
        let (mut chain, k, owner) = setup();
        let head = chain.head().clone();
        let ok = chain
            .broadcast(
                &Build::on(&head)
                    .trc20(owner, token(), transfer_call(dest(), 300))
                    .sign(&k),
            )
            .unwrap();
        chain.produce_block(0);
        // 200 left: 300 more is accepted at broadcast and reverts in the block.
        let head = chain.head().clone();
        let short = chain
            .broadcast(
                &Build::on(&head)
                    .trc20(owner, token(), transfer_call(dest(), 300))
                    .sign(&k),
            )
            .unwrap();
        let mut other_call = transfer_call(dest(), 1);
        other_call[0] = 0x09; // not transfer(): reverts
        let weird = chain
            .broadcast(&Build::on(&head).trc20(owner, token(), other_call).sign(&k))
            .unwrap();
        chain.produce_block(0);
        assert_eq!(chain.tx_info(&ok, false).unwrap().receipt, Receipt::Success);
        for t in [short, weird] {
            let info = chain.tx_info(&t, false).unwrap();
            assert_eq!(info.receipt, Receipt::Revert);
            assert_eq!(info.res_message.as_deref(), Some(REVERT_MESSAGE));
        }
        assert_eq!(chain.accounts().trc20(&token(), &owner), U256::from(200u32));
        assert_eq!(
            chain.accounts().trc20(&token(), &dest()),
            U256::from(300u32)
        );
    }

    #[test]
    fn unknown_token_or_contract_shape_is_contract_validate_error() {
        let (mut chain, k, owner) = setup();
        let head = chain.head().clone();
        let other = Address::from_evm([0x78; 20]);
        assert_eq!(
            code(
                chain.broadcast(
                    &Build::on(&head)
                        .trc20(owner, other, transfer_call(dest(), 1))
                        .sign(&k)
                )
            ),
            "CONTRACT_VALIDATE_ERROR"
        );
        let mut b = Build::on(&head).trx(owner, dest(), 1);
        b.contract.r#type = 2;
        assert_eq!(
            code(chain.broadcast(&b.sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
        let mut b = Build::on(&head).trx(owner, dest(), 1);
        b.contract.parameter = None;
        assert_eq!(
            code(chain.broadcast(&b.sign(&k))),
            "CONTRACT_VALIDATE_ERROR"
        );
    }

    #[test]
    fn garbage_bytes_are_other_error() {
        let (mut chain, _, _) = setup();
        assert_eq!(code(chain.broadcast(&[0xff, 0xff])), "OTHER_ERROR");
        // Valid outer message whose raw_data is not a raw.
        assert_eq!(
            code(chain.broadcast(&signed_bytes(&[0x0a, 0x05], vec![vec![0; 65]]))),
            "OTHER_ERROR"
        );
    }

    #[test]
    fn dropped_broadcasts_are_accepted_but_never_included() {
        let (mut chain, k, owner) = setup();
        chain.drop_next(1);
        let head = chain.head().clone();
        let lost = chain
            .broadcast(&Build::on(&head).trx(owner, dest(), 5).sign(&k))
            .unwrap();
        let mut b = Build::on(&head).trx(owner, dest(), 5);
        b.timestamp += 1;
        let kept = chain.broadcast(&b.sign(&k)).unwrap();
        for _ in 0..5 {
            chain.produce_block(0);
        }
        assert_eq!(chain.tx_info(&lost, false), None);
        assert!(chain.tx_info(&kept, true).is_some());
        assert_eq!(chain.accounts().trx(&owner), START_SUN - 5);
        // The lost one is still known: rebroadcasting it is a duplicate.
        assert_eq!(
            code(chain.broadcast(&Build::on(&head).trx(owner, dest(), 5).sign(&k))),
            "DUP_TRANSACTION_ERROR"
        );
    }
}

#[cfg(test)]
mod reorg_tests {
    use super::tests::{accounts, address, key, token, Build, START_SUN};
    use super::*;
    use crate::sim::{self, Kind, Payment};

    fn pay(chain: &mut Chain, to: Address, amount: u32) -> [u8; 32] {
        sim::submit(
            chain,
            &Payment {
                kind: Kind::Transfer,
                token: Some(token()),
                from: sim::customer(),
                to,
                amount: U256::from(amount),
                via: sim::batcher(),
                transfers: 1,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_reorg_replaces_blocks_above_the_solid_height_and_undoes_them() {
        let k = key(0x11);
        let owner = address(&k);
        let dest = Address::from_evm([0xd1; 20]);
        let mut chain = Chain::new(accounts(owner), 3, 1_000_000);
        for _ in 0..5 {
            chain.produce_block(0);
        }
        let tx = Build::on(chain.head()).trx(owner, dest, 400).sign(&k);
        let sent = chain.broadcast(&tx).unwrap();
        let paid = pay(&mut chain, dest, 7);
        let old = chain.produce_block(0);
        assert_eq!(chain.accounts().trx(&dest), 400);
        assert_eq!(chain.accounts().trc20(&token(), &dest), U256::from(7u32));
        let (_, txs) = chain.block(old.number).unwrap();
        assert_eq!(txs.len(), 2);
        assert_eq!(txs[1].logs.len(), 1);

        let new = chain.reorg(1, false, 0).unwrap();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].number, old.number);
        assert_ne!(new[0].id, old.id);
        assert_eq!(new[0].parent, old.parent);
        assert!(chain.block(old.number).unwrap().1.is_empty());
        assert_eq!(chain.tx_info(&sent, false), None);
        assert_eq!(chain.tx_info(&paid, false), None);
        assert_eq!(chain.accounts().trx(&dest), 0);
        assert_eq!(chain.accounts().trx(&owner), START_SUN);
        assert_eq!(chain.accounts().trc20(&token(), &dest), U256::ZERO);
        // Its txid stays known, as a node that saw it would remember it.
        assert_eq!(
            chain.broadcast(&tx).unwrap_err().code,
            BroadcastCode::DupTransaction
        );

        // Head 7, solid 4: three blocks can go, a fourth would touch the solid one.
        assert_eq!(
            chain.reorg(4, false, 0).unwrap_err(),
            ReorgError::Solidified {
                depth: 4,
                lowest: 4,
                solid: 4
            }
        );
        assert_eq!(chain.reorg(0, false, 0).unwrap_err(), ReorgError::Zero);
        assert_eq!(chain.reorg(3, false, 0).unwrap().len(), 3);
        assert_eq!(chain.head().number, 7);
    }

    #[test]
    fn a_reorg_that_keeps_transactions_includes_them_again_once() {
        let k = key(0x11);
        let owner = address(&k);
        let dest = Address::from_evm([0xd1; 20]);
        let mut chain = Chain::new(accounts(owner), 3, 1_000_000);
        for _ in 0..4 {
            chain.produce_block(0);
        }
        let tx = Build::on(chain.head())
            .trc20(
                owner,
                token(),
                abi::encode_transfer(&dest, U256::from(100u32)),
            )
            .sign(&k);
        let sent = chain.broadcast(&tx).unwrap();
        let paid = pay(&mut chain, dest, 5);
        let old = chain.produce_block(0);
        chain.produce_block(0);
        let new = chain.reorg(2, true, 0).unwrap();
        assert_eq!(new[0].number, old.number);
        for t in [sent, paid] {
            let info = chain.tx_info(&t, false).unwrap();
            assert_eq!(info.block_number, old.number);
            assert_eq!(info.receipt, Receipt::Success);
        }
        assert_eq!(chain.included().len(), 2);
        assert_eq!(chain.accounts().trc20(&token(), &dest), U256::from(105u32));
        assert_eq!(chain.accounts().trc20(&token(), &owner), U256::from(400u32));
    }
}
