//! Key backends. Each turns a txid into a low-S `r || s || v` signature without ever
//! exposing the private key.

pub mod soft;

pub use soft::SoftKey;
