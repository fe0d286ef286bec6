//! The crash harness's parts that are not process plumbing: the setup it signs under, the
//! seeded randomness that makes a run repeatable, and the checks of the evidence a run
//! leaves (`audit export`, the ledger) against what the clients received.

pub mod check;
pub mod rng;
pub mod setup;
