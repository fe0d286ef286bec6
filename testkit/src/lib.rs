//! Scaffolding shared by tests, benchmarks and the load generator, so each exists once:
//! large synthetic policies, SoftHSM2 tokens, and the dependency graph the trust-boundary
//! tests check. Never a runtime dependency of the signer.
#![forbid(unsafe_code)]

pub mod big_policy;
pub mod deps;
pub mod postgres;
pub mod softhsm;
