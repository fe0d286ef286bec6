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
//! It has no consensus, no network, no fees, no energy or bandwidth, no accounts beyond a
//! seeded balance table and no contracts beyond a TRC-20 `transfer(address,uint256)`
//! table. Never point anything that holds real funds at it, and never take its acceptance
//! of a transaction as evidence that a real node would accept it.
//!
//! For the receive side it serves blocks (`getblockbynum`, `getblockbylimitnext`, the
//! solidified head lagging the head) and transaction infos with TRC-20 `Transfer` logs
//! (`gettransactioninfobyblocknum`), and can script payments of every kind a receive
//! side must tell apart ([`sim`]) and reorgs above the solidified height.
//!
//! Test controls live under `/double/` (outage, dropping broadcasts, scripted payments,
//! reorgs, producing blocks, listing included transactions, reading balances); see
//! `README.md` for the full endpoint contract.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod chain;
pub mod http;
pub mod render;
pub mod sim;

pub use accounts::Accounts;
pub use chain::{BroadcastCode, Chain, Receipt};
pub use http::{start, App, Options, Outage, Running};
