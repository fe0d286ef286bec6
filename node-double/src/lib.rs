//! **A test double of a Tron full node. It is not a node.**
//!
//! No real node can run in this project's test environment, so integration tests of
//! `tron-broadcaster` talk to this instead. It serves the handful of java-tron HTTP
//! endpoints the broadcaster uses, in their JSON shapes, produces blocks on a timer, and
//! makes the checks a node makes when a transaction is broadcast: it decodes, the single
//! signature recovers to the contract's owner, the TAPOS reference names one of its last
//! 64 blocks, the expiration lies within 24 h after the head block, the txid is new, and
//! the TRX balance covers a transfer. Accepted transactions land in the next block, where
//! TRC-20 transfers without enough tokens revert, and receipts become visible on the
//! solidity endpoint after `--solid-after` blocks.
//!
//! It prices transactions the way a sweeper depends on ([`fees`]): TRC-20 calls burn
//! their energy at `getEnergyFee` from the owner's TRX, fail `OUT_OF_ENERGY` when
//! `min(balance, fee_limit)` cannot buy it, and a TRX transfer that creates an account burns
//! the creation fee; `getchainparameters`, `getaccount` and `triggerconstantcontract`
//! ([`query`]) let a client price its work first. Bandwidth is assumed to be covered by
//! free bandwidth; there is no staking or delegated energy.
//!
//! It has no consensus, no network, no accounts beyond a seeded balance table and those
//! TRX transfers create, and no contracts beyond a TRC-20 `transfer(address,uint256)` /
//! `balanceOf(address)` table. Never point anything that holds real funds at it, and never
//! take its acceptance of a transaction as evidence that a real node would accept it.
//!
//! For the receive side it serves blocks (`getblockbynum`, `getblockbylimitnext`, the
//! solidified head lagging the head) and transaction infos with TRC-20 `Transfer` logs
//! (`gettransactioninfobyblocknum`), and can script payments of every kind a receive
//! side must tell apart ([`sim`]) and reorgs above the solidified height.
//!
//! Test controls live under `/double/` (outage, dropping broadcasts, scripted payments,
//! reorgs, producing blocks, listing included transactions, reading balances, setting
//! chain parameters); see
//! `README.md` for the full endpoint contract.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod chain;
pub mod fees;
pub mod http;
pub mod query;
pub mod render;
pub mod sim;

pub use accounts::Accounts;
pub use chain::{BroadcastCode, Chain, Receipt};
pub use fees::ChainParams;
pub use http::{start, App, Options, Outage, Running};

#[cfg(test)]
mod energy_tests;
