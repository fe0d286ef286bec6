//! Unsigned transfers for the signer's `Sign`, built the way a payout client builds them.

use tron_proto::{Address, U256};
use tron_signer::decode::{encode, Decoded, Envelope, Intent, Trc20Transfer, TrxTransfer};

/// Milliseconds since the Unix epoch by this machine's clock (the signer's, on one host).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The uid this process runs as (the owner of `/proc/self`): a signer the tool starts runs
/// as the same user, so a policy's `unix_uid` caller can name it.
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// The raw_data of a transfer of `amount` base units (TRX when `token` is `None`) from
/// `owner` to `to`, stamped now and expiring `ttl_ms` later. `n` goes into the reference
/// block fields, so transfers built in the same millisecond still have distinct txids.
pub fn transfer(
    owner: Address,
    to: Address,
    token: Option<Address>,
    amount: u64,
    n: u64,
    ttl_ms: i64,
) -> Vec<u8> {
    let now = now_ms();
    let intent = match token {
        Some(token) => Intent::Trc20(Trc20Transfer {
            owner,
            token,
            to,
            amount: U256::from(amount),
        }),
        None => Intent::Trx(TrxTransfer { owner, to, amount }),
    };
    encode(&Decoded {
        envelope: Envelope {
            txid: [0; 32],
            ref_block_bytes: [(n >> 8) as u8, n as u8],
            ref_block_hash: n.to_be_bytes(),
            expiration: now + ttl_ms,
            // Milliseconds, like the chain (the policy checks it against the clock).
            timestamp: now,
            fee_limit: if token.is_some() { 30_000_000 } else { 0 },
            memo: Vec::new(),
            permission_id: 0,
        },
        intent,
    })
}
