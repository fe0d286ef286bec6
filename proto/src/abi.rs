//! The TRC-20 call data the signer understands: `transfer(address,uint256)` only.

use crate::{Address, U256};

/// `transfer(address,uint256)`.
pub const SELECTOR_TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// `approve(address,uint256)`.
pub const SELECTOR_APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];
/// `transferFrom(address,address,uint256)`.
pub const SELECTOR_TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
/// `increaseAllowance(address,uint256)`.
pub const SELECTOR_INCREASE_ALLOWANCE: [u8; 4] = [0x39, 0x50, 0x93, 0x51];

/// Exact length of `transfer` call data: selector + two 32-byte words.
pub const TRANSFER_CALL_LEN: usize = 4 + 32 + 32;

/// Names the well-known selectors that are refused, so the refusal can say what was asked.
pub fn selector_name(selector: [u8; 4]) -> Option<&'static str> {
    match selector {
        SELECTOR_TRANSFER => Some("transfer"),
        SELECTOR_APPROVE => Some("approve"),
        SELECTOR_TRANSFER_FROM => Some("transferFrom"),
        SELECTOR_INCREASE_ALLOWANCE => Some("increaseAllowance"),
        _ => None,
    }
}

/// Encodes `transfer(to, amount)` call data (68 bytes).
pub fn encode_transfer(to: &Address, amount: U256) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRANSFER_CALL_LEN);
    out.extend_from_slice(&SELECTOR_TRANSFER);
    out.extend_from_slice(&[0u8; 12]);
    out.extend_from_slice(to.evm_bytes());
    out.extend_from_slice(&amount.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha3::{Digest, Keccak256};

    #[test]
    fn selectors_match_signatures() {
        for (sig, sel) in [
            ("transfer(address,uint256)", SELECTOR_TRANSFER),
            ("approve(address,uint256)", SELECTOR_APPROVE),
            (
                "transferFrom(address,address,uint256)",
                SELECTOR_TRANSFER_FROM,
            ),
            (
                "increaseAllowance(address,uint256)",
                SELECTOR_INCREASE_ALLOWANCE,
            ),
        ] {
            assert_eq!(Keccak256::digest(sig.as_bytes())[..4], sel, "{sig}");
        }
    }

    #[test]
    fn transfer_layout() {
        let to = Address::from_evm([0xab; 20]);
        let data = encode_transfer(&to, U256::new(1_000_000));
        assert_eq!(data.len(), TRANSFER_CALL_LEN);
        assert_eq!(data[..4], SELECTOR_TRANSFER);
        assert_eq!(data[4..16], [0u8; 12]);
        assert_eq!(data[16..36], [0xab; 20]);
        assert_eq!(data[64..68], 1_000_000u32.to_be_bytes());
    }
}
