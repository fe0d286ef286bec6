//! The wire contract shared by the trusted signer and the untrusted broadcaster.
//!
//! Everything here is pure: no keys, no I/O. The broadcaster may depend on this crate
//! without pulling in any key backend. The one exception, the gRPC client that connects to
//! a signer, is behind the `client` feature (off by default).
#![forbid(unsafe_code)]

pub mod abi;
pub mod address;
pub mod amount;
pub mod batch;
#[cfg(feature = "client")]
pub mod client;
pub mod contract_type;
pub mod duration;
#[cfg(feature = "hd")]
pub mod hd;
pub mod sig;

pub use address::{Address, AddressError};
pub use ethnum::U256;

/// Generated protobuf types for the Tron subset in `protos/tron.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/protocol.rs"));
}

/// The tron-signer gRPC API (`protos/signer.proto`): messages and server; the client too
/// with the `client` feature.
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

/// Encodes `Transaction { raw_data = 1; signature = 2 }` around the exact `raw_data` bytes
/// (never a re-encoding), as `/wallet/broadcasthex` expects. Shared so that the signer's
/// answer and the broadcaster's own wrapping can be compared byte for byte.
pub fn signed_transaction(raw_data: &[u8], signature: &[u8]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let mut out = Vec::with_capacity(raw_data.len() + signature.len() + 8);
    for (field, bytes) in [(1, raw_data), (2, signature)] {
        encode_key(field, WireType::LengthDelimited, &mut out);
        encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn signed_transaction_matches_prost() {
        // A raw long enough that its length prefix takes two bytes.
        let raw = crate::pb::transaction::Raw {
            ref_block_bytes: vec![1, 2],
            ref_block_hash: vec![3; 8],
            expiration: 5,
            data: vec![b'm'; 200],
            ..Default::default()
        }
        .encode_to_vec();
        let sig = [9u8; 65];
        let ours = super::signed_transaction(&raw, &sig);
        let theirs = crate::pb::Transaction {
            raw_data: Some(crate::pb::transaction::Raw::decode(&raw[..]).expect("raw")),
            signature: vec![sig.to_vec()],
        }
        .encode_to_vec();
        assert_eq!(ours, theirs);
    }
}
