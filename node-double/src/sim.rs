//! Scripted payments: what a customer (or an attacker) does to a deposit address, put
//! straight into the next block so a merchant can test every case without a second
//! wallet. They skip the broadcast checks (nobody signs them; their `signature` list is
//! empty) and come with their outcome: which logs the receipt carries and which balances
//! move. Funds come from outside the double, so the customer needs no balance.
//!
//! Each kind is a case a receive side must get right (issue 15):
//! a plain transfer credits; one made through another contract (a batcher, an exchange's
//! hot wallet contract) credits from the token's own log; a token with the same symbol at
//! another address, a TRC-10 asset called USDT, a reverted call and a zero-value transfer
//! (address poisoning) must credit nothing.

use prost::Message;
use tron_proto::pb::transaction::Contract;
use tron_proto::pb::{transaction, Any, TransferContract, TriggerSmartContract};
use tron_proto::{abi, Address, U256};

use crate::chain::{Chain, Effect, Log, Outcome, Transfer, REVERT_MESSAGE};
use crate::fees::{self, Fee};

/// The default payer of scripted payments.
pub fn customer() -> Address {
    Address::from_evm([0xc5; 20])
}
/// The default contract a `via_contract` payment goes through.
pub fn batcher() -> Address {
    Address::from_evm([0xba; 20])
}
/// The look-alike token of `fake_token` payments: "USDT" by name, another address.
pub fn fake_token() -> Address {
    Address::from_evm([0xfa; 20])
}
/// The id of the TRC-10 asset named "USDT" that `trc10` payments send.
pub const TRC10_USDT_ID: &str = "1002000";
/// The call a `via_contract` payment makes on the batcher: not `transfer`, so only the
/// token's log can tell what was paid.
const BATCH_SELECTOR: [u8; 4] = [0x1a, 0x69, 0x52, 0x30];

/// What kind of payment to script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transfer,
    ViaContract,
    FakeToken,
    Trc10,
    Reverted,
    ZeroValue,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Transfer,
        Kind::ViaContract,
        Kind::FakeToken,
        Kind::Trc10,
        Kind::Reverted,
        Kind::ZeroValue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transfer => "transfer",
            Kind::ViaContract => "via_contract",
            Kind::FakeToken => "fake_token",
            Kind::Trc10 => "trc10",
            Kind::Reverted => "reverted",
            Kind::ZeroValue => "zero_value",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One scripted payment.
#[derive(Debug, Clone)]
pub struct Payment {
    pub kind: Kind,
    /// TRX (`None`) or the real token (only `transfer` can pay TRX).
    pub token: Option<Address>,
    pub from: Address,
    pub to: Address,
    pub amount: U256,
    /// The contract a `via_contract` payment goes through.
    pub via: Address,
    /// How many `Transfer` logs a `via_contract` payment emits (each pays `amount`).
    pub transfers: u32,
}

/// Why a payment could not be scripted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("{0} pays a token, not TRX")]
    NeedsToken(&'static str),
    #[error("a TRX payment needs an amount of 1..=2^63-1 sun")]
    TrxAmount,
    #[error("a payment needs an amount above zero (zero_value sends zero by itself)")]
    ZeroAmount,
    #[error("transfers must be 1..=100")]
    Transfers,
}

impl SimError {
    pub fn code(&self) -> &'static str {
        match self {
            SimError::NeedsToken(_) => "sim_needs_token",
            SimError::TrxAmount => "sim_trx_amount",
            SimError::ZeroAmount => "sim_zero_amount",
            SimError::Transfers => "sim_transfers",
        }
    }
}

fn contract(ty: i32, name: &str, value: Vec<u8>) -> Contract {
    Contract {
        r#type: ty,
        parameter: Some(Any {
            type_url: format!("{}{name}", tron_proto::TYPE_URL_PREFIX),
            value,
        }),
        ..Default::default()
    }
}

/// `TransferAssetContract` (type 2), which the shared proto subset leaves out because
/// the signer refuses it.
#[derive(Clone, PartialEq, Message)]
pub struct TransferAssetContract {
    #[prost(bytes = "vec", tag = "1")]
    pub asset_name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub owner_address: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub to_address: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub amount: i64,
}

fn trigger(owner: &Address, target: &Address, data: Vec<u8>) -> Contract {
    let c = TriggerSmartContract {
        owner_address: owner.as_bytes().to_vec(),
        contract_address: target.as_bytes().to_vec(),
        data,
        ..Default::default()
    };
    contract(31, "TriggerSmartContract", c.encode_to_vec())
}

/// Queues `p` for the next block and returns its txid.
pub fn submit(chain: &mut Chain, p: &Payment) -> Result<[u8; 32], SimError> {
    if p.kind != Kind::ZeroValue && p.amount == U256::ZERO {
        return Err(SimError::ZeroAmount);
    }
    let need_token = |k: Kind| p.token.ok_or(SimError::NeedsToken(k.as_str()));
    let mint = |token: Option<Address>, amount: U256| Effect {
        token,
        from: None,
        to: p.to,
        amount,
    };
    let (transfer, c, outcome) = match p.kind {
        Kind::Transfer => match p.token {
            None => {
                let amount = u64::try_from(p.amount)
                    .ok()
                    .filter(|a| i64::try_from(*a).is_ok())
                    .ok_or(SimError::TrxAmount)?;
                let c = TransferContract {
                    owner_address: p.from.as_bytes().to_vec(),
                    to_address: p.to.as_bytes().to_vec(),
                    amount: amount as i64,
                };
                (
                    Transfer::Trx {
                        owner: p.from,
                        to: p.to,
                        amount,
                    },
                    contract(1, "TransferContract", c.encode_to_vec()),
                    Outcome::success(Vec::new(), vec![mint(None, p.amount)]),
                )
            }
            Some(token) => (
                Transfer::Trc20 {
                    owner: p.from,
                    token,
                    call: Some((p.to, p.amount)),
                },
                trigger(&p.from, &token, abi::encode_transfer(&p.to, p.amount)),
                Outcome::success(
                    vec![Log::transfer(token, &p.from, &p.to, p.amount)],
                    vec![mint(Some(token), p.amount)],
                ),
            ),
        },
        Kind::ViaContract => {
            let token = need_token(p.kind)?;
            if !(1..=100).contains(&p.transfers) {
                return Err(SimError::Transfers);
            }
            let mut data = BATCH_SELECTOR.to_vec();
            data.extend_from_slice(&abi::encode_transfer(&p.to, p.amount)[4..]);
            let n = p.transfers as usize;
            (
                Transfer::Call {
                    owner: p.from,
                    contract: p.via,
                    data: data.clone(),
                },
                trigger(&p.from, &p.via, data),
                Outcome::success(
                    vec![Log::transfer(token, &p.via, &p.to, p.amount); n],
                    vec![mint(Some(token), p.amount); n],
                ),
            )
        }
        Kind::FakeToken => {
            let fake = fake_token();
            let data = abi::encode_transfer(&p.to, p.amount);
            (
                Transfer::Call {
                    owner: p.from,
                    contract: fake,
                    data: data.clone(),
                },
                trigger(&p.from, &fake, data),
                Outcome::success(
                    vec![Log::transfer(fake, &p.from, &p.to, p.amount)],
                    vec![mint(Some(fake), p.amount)],
                ),
            )
        }
        Kind::Trc10 => {
            let amount = u64::try_from(p.amount)
                .ok()
                .filter(|a| i64::try_from(*a).is_ok())
                .ok_or(SimError::TrxAmount)?;
            let c = TransferAssetContract {
                asset_name: TRC10_USDT_ID.as_bytes().to_vec(),
                owner_address: p.from.as_bytes().to_vec(),
                to_address: p.to.as_bytes().to_vec(),
                amount: amount as i64,
            };
            (
                Transfer::Trc10 {
                    owner: p.from,
                    to: p.to,
                    asset_id: TRC10_USDT_ID.into(),
                    amount,
                },
                contract(2, "TransferAssetContract", c.encode_to_vec()),
                // TRC-10 balances are not kept by the double.
                Outcome::success(Vec::new(), Vec::new()),
            )
        }
        Kind::Reverted => {
            let token = need_token(p.kind)?;
            (
                Transfer::Trc20 {
                    owner: p.from,
                    token,
                    call: Some((p.to, p.amount)),
                },
                trigger(&p.from, &token, abi::encode_transfer(&p.to, p.amount)),
                Outcome::revert(REVERT_MESSAGE),
            )
        }
        Kind::ZeroValue => {
            let token = need_token(p.kind)?;
            (
                Transfer::Trc20 {
                    owner: p.from,
                    token,
                    call: Some((p.to, U256::ZERO)),
                },
                trigger(&p.from, &token, abi::encode_transfer(&p.to, U256::ZERO)),
                Outcome::success(
                    vec![Log::transfer(token, &p.from, &p.to, U256::ZERO)],
                    Vec::new(),
                ),
            )
        }
    };
    // The payer is outside the double, so nothing is burnt; the receipt still shows the
    // energy a real call of that kind uses.
    let outcome = match transfer {
        Transfer::Trc20 { .. } | Transfer::Call { .. } => {
            let energy = if outcome.receipt == crate::chain::Receipt::Success {
                fees::ENERGY_TRANSFER_TO_HOLDER
            } else {
                fees::ENERGY_REVERT
            };
            let fee = Fee {
                energy_usage_total: energy,
                ..Fee::default()
            };
            outcome.with_fee(fee)
        }
        Transfer::Trx { .. } | Transfer::Trc10 { .. } => outcome,
    };
    let head = chain.head().clone();
    let nonce = chain.next_nonce();
    let raw = transaction::Raw {
        ref_block_bytes: head.id[6..8].to_vec(),
        ref_block_hash: head.id[8..16].to_vec(),
        expiration: head.timestamp + 60_000,
        contract: vec![c],
        timestamp: head.timestamp + nonce,
        fee_limit: if matches!(transfer, Transfer::Trx { .. } | Transfer::Trc10 { .. }) {
            0
        } else {
            30_000_000
        },
        ..Default::default()
    }
    .encode_to_vec();
    Ok(chain.submit_scripted(transfer, raw, outcome))
}
