//! Builds the unsigned `Transaction.raw` bytes locally from a payout and a head block.
//!
//! Never through the node's `create*` endpoints: the node is untrusted, and the bytes built
//! here are exactly what the signer decodes and signs. The shape matches what the signer's
//! strict decoder accepts: one contract, no `ref_block_num`, no auths/scripts/provider,
//! `fee_limit` only on TRC-20 calls.

use prost::Message;
use tron_proto::pb::{self, transaction};
use tron_proto::{abi, contract_type, Address, TYPE_URL_PREFIX, U256};

use crate::model::Asset;

/// The head block a transaction takes its TAPOS reference and clock from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadBlock {
    pub number: u64,
    pub id: [u8; 32],
    pub timestamp_ms: i64,
}

impl HeadBlock {
    /// Block number bytes [6..8] (big-endian), as the node checks them.
    pub fn ref_block_bytes(&self) -> [u8; 2] {
        let b = self.number.to_be_bytes();
        [b[6], b[7]]
    }

    /// Block id bytes [8..16].
    pub fn ref_block_hash(&self) -> [u8; 8] {
        let mut h = [0u8; 8];
        h.copy_from_slice(&self.id[8..16]);
        h
    }
}

/// What to pay, resolved to addresses and base units.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub asset: Asset,
    pub owner: Address,
    pub to: Address,
    pub amount_units: u64,
}

/// Network constants the builder needs.
#[derive(Debug, Clone, Copy)]
pub struct BuildParams {
    pub usdt_contract: Address,
    pub fee_limit_sun: i64,
    pub expiration_ms: i64,
}

/// An unsigned transaction ready for the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub raw_data: Vec<u8>,
    pub txid: [u8; 32],
    pub expiration_ms: i64,
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("amount {0} does not fit a Tron int64 amount")]
    AmountTooLarge(u64),
    #[error("expiration overflows")]
    ExpirationOverflow,
}

impl BuildError {
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::AmountTooLarge(_) => "amount_too_large",
            BuildError::ExpirationOverflow => "expiration_overflow",
        }
    }
}

fn any(name_code: i32, value: Vec<u8>) -> pb::Any {
    let name = contract_type::name(name_code).unwrap_or("TransferContract");
    pb::Any {
        type_url: format!("{TYPE_URL_PREFIX}{name}"),
        value,
    }
}

/// Builds `raw_data` for `t` against `head`. Deterministic: the same inputs give the same
/// bytes (and txid), which is what lets the signer replay a signature idempotently.
pub fn build(t: &Transfer, head: &HeadBlock, p: &BuildParams) -> Result<Built, BuildError> {
    let amount =
        i64::try_from(t.amount_units).map_err(|_| BuildError::AmountTooLarge(t.amount_units))?;
    let (type_code, value, fee_limit) = match t.asset {
        Asset::Trx => (
            contract_type::TRANSFER,
            pb::TransferContract {
                owner_address: t.owner.as_bytes().to_vec(),
                to_address: t.to.as_bytes().to_vec(),
                amount,
            }
            .encode_to_vec(),
            0,
        ),
        Asset::Usdt => (
            contract_type::TRIGGER_SMART_CONTRACT,
            pb::TriggerSmartContract {
                owner_address: t.owner.as_bytes().to_vec(),
                contract_address: p.usdt_contract.as_bytes().to_vec(),
                call_value: 0,
                data: abi::encode_transfer(&t.to, U256::from(t.amount_units)),
                call_token_value: 0,
                token_id: 0,
            }
            .encode_to_vec(),
            p.fee_limit_sun,
        ),
    };
    let expiration = head
        .timestamp_ms
        .checked_add(p.expiration_ms)
        .ok_or(BuildError::ExpirationOverflow)?;
    let raw = transaction::Raw {
        ref_block_bytes: head.ref_block_bytes().to_vec(),
        ref_block_num: 0,
        ref_block_hash: head.ref_block_hash().to_vec(),
        expiration,
        auths: Vec::new(),
        data: Vec::new(),
        contract: vec![transaction::Contract {
            r#type: type_code,
            parameter: Some(any(type_code, value)),
            provider: Vec::new(),
            contract_name: Vec::new(),
            permission_id: 0,
        }],
        scripts: Vec::new(),
        timestamp: head.timestamp_ms,
        fee_limit,
    };
    let raw_data = raw.encode_to_vec();
    let txid = tron_proto::txid(&raw_data);
    Ok(Built {
        raw_data,
        txid,
        expiration_ms: expiration,
    })
}

pub use tron_proto::signed_transaction;

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Address {
        Address::from_evm([0x11; 20])
    }
    fn to() -> Address {
        Address::from_evm([0x22; 20])
    }
    fn head() -> HeadBlock {
        let mut id = [0u8; 32];
        for (i, b) in id.iter_mut().enumerate() {
            *b = i as u8;
        }
        HeadBlock {
            number: 0x0102_0304_0506_0708,
            id,
            timestamp_ms: 1_700_000_000_000,
        }
    }
    fn params() -> BuildParams {
        BuildParams {
            usdt_contract: Address::from_evm([0x33; 20]),
            fee_limit_sun: 30_000_000,
            expiration_ms: 600_000,
        }
    }

    /// A strict decode: the bytes must parse, re-encode to the identical bytes, and carry
    /// exactly the fields the signer accepts.
    fn strict(raw: &[u8]) -> transaction::Raw {
        let r = transaction::Raw::decode(raw).unwrap();
        assert_eq!(r.encode_to_vec(), raw, "not canonical");
        assert_eq!(r.ref_block_num, 0);
        assert!(r.auths.is_empty() && r.scripts.is_empty() && r.data.is_empty());
        assert_eq!(r.contract.len(), 1);
        let c = &r.contract[0];
        assert!(c.provider.is_empty() && c.contract_name.is_empty());
        assert_eq!(c.permission_id, 0);
        r
    }

    #[test]
    fn tapos_bytes() {
        let h = head();
        assert_eq!(h.ref_block_bytes(), [0x07, 0x08]);
        assert_eq!(h.ref_block_hash(), [8, 9, 10, 11, 12, 13, 14, 15]);
    }

    #[test]
    fn trx_transfer() {
        let t = Transfer {
            asset: Asset::Trx,
            owner: owner(),
            to: to(),
            amount_units: 1_500_000,
        };
        let b = build(&t, &head(), &params()).unwrap();
        assert_eq!(b.txid, tron_proto::txid(&b.raw_data));
        let r = strict(&b.raw_data);
        assert_eq!(r.ref_block_bytes, vec![7, 8]);
        assert_eq!(r.ref_block_hash, (8u8..16).collect::<Vec<_>>());
        assert_eq!(r.timestamp, 1_700_000_000_000);
        assert_eq!(r.expiration, 1_700_000_600_000);
        assert_eq!(b.expiration_ms, r.expiration);
        assert_eq!(r.fee_limit, 0, "no fee_limit on TRX transfers");
        let c = &r.contract[0];
        assert_eq!(c.r#type, 1);
        let any = c.parameter.as_ref().unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/protocol.TransferContract"
        );
        let tc = pb::TransferContract::decode(any.value.as_slice()).unwrap();
        assert_eq!(tc.encode_to_vec(), any.value);
        assert_eq!(tc.owner_address, owner().as_bytes().to_vec());
        assert_eq!(tc.to_address, to().as_bytes().to_vec());
        assert_eq!(tc.amount, 1_500_000);
        // Deterministic.
        assert_eq!(build(&t, &head(), &params()).unwrap(), b);
    }

    #[test]
    fn usdt_transfer() {
        let t = Transfer {
            asset: Asset::Usdt,
            owner: owner(),
            to: to(),
            amount_units: 2_000_000,
        };
        let b = build(&t, &head(), &params()).unwrap();
        let r = strict(&b.raw_data);
        assert_eq!(r.fee_limit, 30_000_000);
        let c = &r.contract[0];
        assert_eq!(c.r#type, 31);
        let any = c.parameter.as_ref().unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/protocol.TriggerSmartContract"
        );
        let tc = pb::TriggerSmartContract::decode(any.value.as_slice()).unwrap();
        assert_eq!(tc.encode_to_vec(), any.value);
        assert_eq!(
            tc.contract_address,
            params().usdt_contract.as_bytes().to_vec()
        );
        assert_eq!(tc.call_value, 0);
        assert_eq!(
            tc.data,
            abi::encode_transfer(&to(), U256::from(2_000_000u64))
        );
    }

    #[test]
    fn refusals() {
        let t = Transfer {
            asset: Asset::Trx,
            owner: owner(),
            to: to(),
            amount_units: u64::MAX,
        };
        assert_eq!(
            build(&t, &head(), &params()).unwrap_err().code(),
            "amount_too_large"
        );
        let t = Transfer {
            amount_units: 1,
            ..t
        };
        let mut h = head();
        h.timestamp_ms = i64::MAX;
        assert_eq!(
            build(&t, &h, &params()).unwrap_err().code(),
            "expiration_overflow"
        );
    }

    #[test]
    fn signed_transaction_wraps_exact_bytes() {
        let t = Transfer {
            asset: Asset::Trx,
            owner: owner(),
            to: to(),
            amount_units: 1,
        };
        let b = build(&t, &head(), &params()).unwrap();
        let sig = [0x5a; 65];
        let stx = signed_transaction(&b.raw_data, &sig);
        let tx = pb::Transaction::decode(stx.as_slice()).unwrap();
        assert_eq!(tx.raw_data.unwrap().encode_to_vec(), b.raw_data);
        assert_eq!(tx.signature, vec![sig.to_vec()]);
    }
}
