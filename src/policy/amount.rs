//! Exact decimal amounts in policy files: the shared grammar of [`tron_proto::amount`] in
//! its canonical spelling (no leading zeros, no digits beyond the asset's decimals), so an
//! auditor sees exactly what is enforced. The grammar and why the sides differ are
//! documented there, in one place.

use tron_proto::amount::Spelling;
use tron_proto::U256;

pub use tron_proto::amount::AmountError;

/// Parses `text` (token units) into base units with `decimals` fractional digits.
/// `"0"` parses to zero; the loader refuses zero limits.
pub fn parse_amount(text: &str, decimals: u8) -> Result<U256, AmountError> {
    tron_proto::amount::parse(text, decimals, Spelling::Canonical)
}

/// Formats base units as token units: no exponent, no trailing fractional zeros, no point
/// for whole amounts. `parse_amount(&format_amount(v, d), d) == Ok(v)` for every `v`.
pub fn format_amount(value: U256, decimals: u8) -> String {
    tron_proto::amount::format(value, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar's own tests live in `tron_proto::amount`; this checks the policy uses
    /// the canonical spelling.
    #[test]
    fn policy_amounts_are_canonical() {
        assert_eq!(
            parse_amount("50000.5", 6),
            Ok(U256::from(50_000_500_000u64))
        );
        assert_eq!(parse_amount("007", 6), Err(AmountError::LeadingZero));
        assert!(matches!(
            parse_amount("1.0000000", 6),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert_eq!(format_amount(U256::from(50_000_500_000u64), 6), "50000.5");
    }
}
