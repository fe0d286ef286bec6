//! A ledger entry (one issued signature) and its fixed binary encoding.
//!
//! Layout, all integers big-endian: version `1`, txid (32), key (21), asset tag (0 = TRX,
//! 1 = token followed by the 21-byte contract), destination (21), amount (32), expiration_ms
//! (8), signed_at_ms (8), signature (65), policy hash (32), audit sequence (8), payout id
//! length (2) and UTF-8 bytes. A hand-written layout keeps the stored bytes independent of any
//! serializer's version.

use tron_proto::{Address, U256};

use super::error::LedgerError;
use crate::decode::Asset;

const VERSION: u8 = 1;
const ADDR: usize = tron_proto::address::ADDRESS_LEN;

/// What the service knows before signing: everything a ledger entry holds except the
/// signature and the audit sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub txid: [u8; 32],
    pub key: Address,
    pub asset: Asset,
    pub destination: Address,
    pub amount: U256,
    pub payout_id: String,
    pub expiration_ms: i64,
    pub signed_at_ms: i64,
    pub policy_hash: [u8; 32],
}

/// One issued signature, as committed. Returned on a txid retry so that the same signature is
/// released again instead of a second one being counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub pending: PendingEntry,
    pub signature: [u8; 65],
    pub audit_seq: u64,
}

impl Entry {
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_parts(&self.pending, &self.signature, self.audit_seq)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, LedgerError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take::<1>()? != [VERSION] {
            return Err(LedgerError::corrupt("entry version"));
        }
        let txid = r.take::<32>()?;
        let key = r.address()?;
        let asset = match r.take::<1>()? {
            [0] => Asset::Trx,
            [1] => Asset::Token(r.address()?),
            _ => return Err(LedgerError::corrupt("entry asset tag")),
        };
        let destination = r.address()?;
        let amount = U256::from_be_bytes(r.take::<32>()?);
        let expiration_ms = i64::from_be_bytes(r.take::<8>()?);
        let signed_at_ms = i64::from_be_bytes(r.take::<8>()?);
        let signature = r.take::<65>()?;
        let policy_hash = r.take::<32>()?;
        let audit_seq = u64::from_be_bytes(r.take::<8>()?);
        let len = u16::from_be_bytes(r.take::<2>()?) as usize;
        let id = r.slice(len)?;
        let payout_id = std::str::from_utf8(id)
            .map_err(|_| LedgerError::corrupt("entry payout id"))?
            .to_owned();
        if r.pos != bytes.len() {
            return Err(LedgerError::corrupt("entry trailing bytes"));
        }
        Ok(Entry {
            pending: PendingEntry {
                txid,
                key,
                asset,
                destination,
                amount,
                payout_id,
                expiration_ms,
                signed_at_ms,
                policy_hash,
            },
            signature,
            audit_seq,
        })
    }
}

/// The stored bytes of an entry, from its parts (the writer has them apart).
pub(crate) fn encode_parts(p: &PendingEntry, signature: &[u8; 65], audit_seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 32 + ADDR * 3 + 1 + 32 + 16 + 65 + 32 + 8 + 2 + 64);
    out.push(VERSION);
    out.extend_from_slice(&p.txid);
    out.extend_from_slice(p.key.as_bytes());
    match p.asset {
        Asset::Trx => out.push(0),
        Asset::Token(contract) => {
            out.push(1);
            out.extend_from_slice(contract.as_bytes());
        }
    }
    out.extend_from_slice(p.destination.as_bytes());
    out.extend_from_slice(&p.amount.to_be_bytes());
    out.extend_from_slice(&p.expiration_ms.to_be_bytes());
    out.extend_from_slice(&p.signed_at_ms.to_be_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(&p.policy_hash);
    out.extend_from_slice(&audit_seq.to_be_bytes());
    // Payout ids are bounded by the service; longer ones are cut rather than failing here.
    let id = p.payout_id.as_bytes();
    let len = id.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&id[..len]);
    out
}

/// Bounds-checked cursor; every short read is a `Corrupt` error, never a panic.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn slice(&mut self, n: usize) -> Result<&'a [u8], LedgerError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| LedgerError::corrupt("short row"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], LedgerError> {
        let s = self.slice(N)?;
        s.try_into().map_err(|_| LedgerError::corrupt("short row"))
    }

    fn address(&mut self) -> Result<Address, LedgerError> {
        let raw = self.take::<ADDR>()?;
        Address::from_bytes(&raw).map_err(|_| LedgerError::corrupt("entry address"))
    }
}
