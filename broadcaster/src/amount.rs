//! Payout amounts: human decimals into base units (sun or token units), with the API's
//! four stable error codes.
//!
//! The grammar is the shared one of [`tron_proto::amount`] (documented there, with why the
//! sides differ) in its padded spelling: `"007.5"` and `"1.500000000"` are accepted, since
//! they change no value, while a non-zero digit beyond 6 decimals is refused rather than
//! rounded, because rounding a payout silently changes what the payment backend asked for.
//! On top: a payout is positive and fits Tron's `int64` amount field.

use tron_proto::amount::{AmountError as Shared, Spelling};
use tron_proto::U256;

/// Decimals of both supported assets (TRX in sun, USDT in its token units).
pub const DECIMALS: u8 = 6;

/// Why an amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {0:?} is not a plain decimal number (digits, at most one '.')")]
    Syntax(String),
    #[error("amount {0:?} must be greater than zero")]
    NotPositive(String),
    #[error("amount {0:?} has more than 6 decimal places")]
    TooPrecise(String),
    #[error("amount {0:?} is larger than a transaction can carry")]
    TooLarge(String),
}

impl AmountError {
    pub fn code(&self) -> &'static str {
        match self {
            AmountError::Syntax(_) => "invalid_amount",
            AmountError::NotPositive(_) => "amount_not_positive",
            AmountError::TooPrecise(_) => "amount_too_precise",
            AmountError::TooLarge(_) => "amount_too_large",
        }
    }
}

/// Parses `"12.5"` into `12_500_000`. The result fits an `i64` (Tron's amount field).
pub fn parse(s: &str) -> Result<u64, AmountError> {
    let units = tron_proto::amount::parse(s, DECIMALS, Spelling::Padded).map_err(|e| {
        match e {
            // A well-formed negative number is reported as such, not as a syntax error.
            Shared::Signed { unsigned }
                if s.starts_with('-')
                    && unsigned.chars().all(|c| c.is_ascii_digit() || c == '.') =>
            {
                AmountError::NotPositive(s.into())
            }
            Shared::TooManyDecimals { .. } => AmountError::TooPrecise(s.into()),
            Shared::Overflow => AmountError::TooLarge(s.into()),
            Shared::Empty
            | Shared::Signed { .. }
            | Shared::BadCharacter { .. }
            | Shared::DanglingPoint
            | Shared::LeadingZero => AmountError::Syntax(s.into()),
        }
    })?;
    if units > U256::from(i64::MAX as u64) {
        return Err(AmountError::TooLarge(s.into()));
    }
    if units == U256::ZERO {
        return Err(AmountError::NotPositive(s.into()));
    }
    Ok(units.as_u64())
}

/// Like [`parse`], but zero is allowed (a tolerance, not a payment).
pub fn parse_allowing_zero(s: &str) -> Result<u64, AmountError> {
    match parse(s) {
        Err(AmountError::NotPositive(_)) if !s.starts_with('-') => Ok(0),
        other => other,
    }
}

/// Formats base units back as the canonical decimal string (no trailing zeros).
pub fn format(units: u64) -> String {
    tron_proto::amount::format(U256::from(units), DECIMALS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_values() {
        assert_eq!(parse("1").unwrap(), 1_000_000);
        assert_eq!(parse("0.1").unwrap(), 100_000);
        assert_eq!(parse("12.345678").unwrap(), 12_345_678);
        assert_eq!(parse("0.000001").unwrap(), 1);
        assert_eq!(parse("1.500000000").unwrap(), 1_500_000);
        assert_eq!(parse("007.5").unwrap(), 7_500_000);
        assert_eq!(parse("9223372036854.775807").unwrap(), i64::MAX as u64);
    }

    #[test]
    fn refusals() {
        for s in [
            "", ".", "1.", ".5", "1e6", "+1", "1,5", " 1", "0x10", "1.2.3", "abc",
        ] {
            assert_eq!(parse(s).unwrap_err().code(), "invalid_amount", "{s:?}");
        }
        for s in ["0", "0.0", "-1", "-0.5", "000"] {
            assert_eq!(parse(s).unwrap_err().code(), "amount_not_positive", "{s:?}");
        }
        assert_eq!(parse("0.0000001").unwrap_err().code(), "amount_too_precise");
        assert_eq!(parse("1.1234567").unwrap_err().code(), "amount_too_precise");
        assert_eq!(
            parse("9223372036854.775808").unwrap_err().code(),
            "amount_too_large"
        );
        assert_eq!(
            parse("99999999999999999999999").unwrap_err().code(),
            "amount_too_large"
        );
    }

    #[test]
    fn zero_only_where_allowed() {
        for s in ["0", "0.0", "000"] {
            assert_eq!(parse_allowing_zero(s).unwrap(), 0, "{s:?}");
        }
        assert_eq!(parse_allowing_zero("0.01").unwrap(), 10_000);
        assert_eq!(
            parse_allowing_zero("-1").unwrap_err().code(),
            "amount_not_positive"
        );
        assert_eq!(
            parse_allowing_zero("x").unwrap_err().code(),
            "invalid_amount"
        );
    }

    #[test]
    fn format_round_trip() {
        for (u, s) in [(1_000_000, "1"), (1, "0.000001"), (12_345_600, "12.3456")] {
            assert_eq!(format(u), s);
            assert_eq!(parse(s).unwrap(), u);
        }
    }
}
