//! The wire contract shared by the trusted signer and the untrusted broadcaster.
//!
//! Everything here is pure: no keys, no I/O. The broadcaster may depend on this crate
//! without pulling in any key backend.
#![forbid(unsafe_code)]

pub mod abi;
pub mod address;
pub mod batch;
pub mod client;
pub mod contract_type;
pub mod sig;

pub use address::{Address, AddressError};
pub use ethnum::U256;

/// Generated protobuf types for the Tron subset in `protos/tron.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/protocol.rs"));
}

/// The tron-signer gRPC API (`protos/signer.proto`): client and server.
#[allow(clippy::all, missing_docs)]
pub mod signer {
    tonic::include_proto!("tronsigner.v1");

    /// Encoded descriptor set of every proto in this crate, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/signer_descriptor.bin"));
}

/// The Any `type_url` prefix Tron uses for contract parameters.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/protocol.";

/// txid = sha256(raw_data bytes). The signer computes it itself; a client's txid is never trusted.
pub fn txid(raw_data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(raw_data).into()
}
