//! Scaffolding shared by tests, benchmarks and the load generator, so each exists once:
//! large synthetic policies and SoftHSM2 tokens. Never a runtime dependency of the signer.
#![forbid(unsafe_code)]

pub mod big_policy;
pub mod softhsm;
