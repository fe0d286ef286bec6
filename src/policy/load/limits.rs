//! The limits a policy's values must stay within; `policies/README.md` documents each.

/// The only policy format this signer understands.
pub const FORMAT_VERSION: u64 = 1;
/// TRX and sun.
pub const TRX_DECIMALS: u8 = 6;
/// Tron's network-wide fee_limit cap: 15,000 TRX.
pub const MAX_FEE_LIMIT_SUN: u64 = 15_000 * 1_000_000;
/// Tron refuses expirations more than 24 h after the head block.
pub const MAX_EXPIRATION_MS: u64 = 24 * 3_600_000;
/// A larger skew would mean the signer's clock is not a meaningful reference.
pub const MAX_CLOCK_SKEW_MS: u64 = 3_600_000;
/// The longest rolling window: bounds how much history the ledger must count.
pub const MAX_WINDOW_MS: u64 = 31 * 86_400_000;
/// The longest memo a policy may allow, in bytes.
pub const MAX_MEMO_LEN: u64 = 4096;
/// Token decimals above this are not real tokens and would overflow small amounts.
pub const MAX_DECIMALS: u64 = 36;
