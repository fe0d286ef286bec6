//! Exact decimal amounts: "50000.5" in token units to integer base units and back.
//!
//! Policy limits are money; a float would round them. The accepted syntax is deliberately
//! narrow so that an auditor reading a number in the file sees exactly what is enforced:
//!
//! - one or more ASCII digits, optionally followed by `.` and one or more digits
//!   (`"0"`, `"12"`, `"0.5"`, `"50000.25"`);
//! - no sign, no exponent, no whitespace, no `_` separators;
//! - no leading zeros in the integer part except a lone `0` (`"007"` is refused);
//! - no dangling point: `"1."` and `".5"` are refused;
//! - at most `decimals` fractional digits, trailing zeros included (`"1.0000000"` with
//!   6 decimals is refused, so a typo cannot silently drop a digit);
//! - the result must fit in 256 bits.
//!
//! `"0"` parses to zero; whether zero makes sense is for the caller to decide.

use tron_proto::U256;

/// Why a decimal amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("empty amount")]
    Empty,
    #[error("amounts have no sign: write {unsigned:?}")]
    Signed { unsigned: String },
    #[error("invalid character {character:?} at position {index} (only digits and one '.')")]
    BadCharacter { character: char, index: usize },
    #[error("a decimal point needs digits on both sides (\"0.5\", not \".5\" or \"1.\")")]
    DanglingPoint,
    #[error("leading zeros are not allowed")]
    LeadingZero,
    #[error("{found} fractional digits, but the asset has only {decimals} decimals")]
    TooManyDecimals { found: usize, decimals: u8 },
    #[error("amount does not fit in 256 bits")]
    Overflow,
}

impl AmountError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AmountError::Empty => "amount_empty",
            AmountError::Signed { .. } => "amount_signed",
            AmountError::BadCharacter { .. } => "amount_bad_character",
            AmountError::DanglingPoint => "amount_dangling_point",
            AmountError::LeadingZero => "amount_leading_zero",
            AmountError::TooManyDecimals { .. } => "amount_too_many_decimals",
            AmountError::Overflow => "amount_overflow",
        }
    }
}

/// Parses `text` (token units) into base units with `decimals` fractional digits.
pub fn parse_amount(text: &str, decimals: u8) -> Result<U256, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if let Some(rest) = text.strip_prefix(['-', '+']) {
        return Err(AmountError::Signed {
            unsigned: rest.to_owned(),
        });
    }
    if let Some((index, character)) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
    {
        return Err(AmountError::BadCharacter { character, index });
    }
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => {
            if let Some(index) = frac.find('.') {
                return Err(AmountError::BadCharacter {
                    character: '.',
                    index: int.len() + 1 + index,
                });
            }
            if int.is_empty() || frac.is_empty() {
                return Err(AmountError::DanglingPoint);
            }
            (int, frac)
        }
        None => (text, ""),
    };
    if int.len() > 1 && int.starts_with('0') {
        return Err(AmountError::LeadingZero);
    }
    if frac.len() > usize::from(decimals) {
        return Err(AmountError::TooManyDecimals {
            found: frac.len(),
            decimals,
        });
    }
    let mut value = U256::ZERO;
    let ten = U256::from(10u8);
    // Integer digits, then fractional digits, then zero padding up to `decimals`.
    let padding = usize::from(decimals) - frac.len();
    let digits = int
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', padding));
    for d in digits {
        value = value
            .checked_mul(ten)
            .and_then(|v| v.checked_add(U256::from(d - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    Ok(value)
}

/// Formats base units as token units: no exponent, no trailing fractional zeros, no point
/// for whole amounts. `parse_amount(&format_amount(v, d), d) == Ok(v)` for every `v`.
pub fn format_amount(value: U256, decimals: u8) -> String {
    let digits = value.to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return digits;
    }
    let padded = if digits.len() <= d {
        format!("{}{digits}", "0".repeat(d + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<U256, AmountError> {
        parse_amount(s, 6)
    }

    #[test]
    fn accepts_plain_decimals() {
        assert_eq!(p("0"), Ok(U256::ZERO));
        assert_eq!(p("1"), Ok(U256::from(1_000_000u32)));
        assert_eq!(p("50000.5"), Ok(U256::from(50_000_500_000u64)));
        assert_eq!(p("0.000001"), Ok(U256::ONE));
        assert_eq!(p("0.5"), Ok(U256::from(500_000u32)));
        assert_eq!(p("10.100000"), Ok(U256::from(10_100_000u32)));
        assert_eq!(parse_amount("42", 0), Ok(U256::from(42u8)));
    }

    #[test]
    fn refuses_empty_signs_and_garbage() {
        assert_eq!(p(""), Err(AmountError::Empty));
        assert!(matches!(p("-1"), Err(AmountError::Signed { .. })));
        assert!(matches!(p("+1"), Err(AmountError::Signed { .. })));
        for s in [
            " 1", "1 ", "1e6", "1E6", "1_000", "0x10", "1,5", "abc", "1.5x", "٣",
        ] {
            assert!(
                matches!(p(s), Err(AmountError::BadCharacter { .. })),
                "{s:?} -> {:?}",
                p(s)
            );
        }
        assert!(matches!(
            p("1.2.3"),
            Err(AmountError::BadCharacter {
                character: '.',
                index: 3
            })
        ));
    }

    #[test]
    fn refuses_dangling_points_and_leading_zeros() {
        assert_eq!(p("1."), Err(AmountError::DanglingPoint));
        assert_eq!(p(".5"), Err(AmountError::DanglingPoint));
        assert_eq!(p("."), Err(AmountError::DanglingPoint));
        assert_eq!(p("007"), Err(AmountError::LeadingZero));
        assert_eq!(p("00.5"), Err(AmountError::LeadingZero));
    }

    #[test]
    fn refuses_too_many_decimals_even_trailing_zeros() {
        assert_eq!(
            p("1.0000001"),
            Err(AmountError::TooManyDecimals {
                found: 7,
                decimals: 6
            })
        );
        assert!(matches!(
            p("1.0000000"),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_amount("1.5", 0),
            Err(AmountError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn overflow_beyond_u256() {
        let max = U256::MAX.to_string();
        assert_eq!(parse_amount(&max, 0), Ok(U256::MAX));
        // Same digits scaled by 10^6 no longer fit.
        assert_eq!(p(&max), Err(AmountError::Overflow));
        let bigger = format!("{max}0");
        assert_eq!(parse_amount(&bigger, 0), Err(AmountError::Overflow));
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format_amount(U256::ZERO, 6), "0");
        assert_eq!(format_amount(U256::ONE, 6), "0.000001");
        assert_eq!(format_amount(U256::from(50_000_500_000u64), 6), "50000.5");
        assert_eq!(format_amount(U256::from(1_000_000u32), 6), "1");
        assert_eq!(format_amount(U256::from(42u8), 0), "42");
        assert_eq!(format_amount(U256::MAX, 0), U256::MAX.to_string());
    }

    #[test]
    fn round_trips() {
        for v in [0u64, 1, 9, 10, 999_999, 1_000_000, 1_000_001, u64::MAX] {
            for d in [0u8, 1, 6, 18] {
                let v = U256::from(v);
                assert_eq!(parse_amount(&format_amount(v, d), d), Ok(v), "{v} {d}");
            }
        }
        assert_eq!(
            parse_amount(&format_amount(U256::MAX, 18), 18),
            Ok(U256::MAX)
        );
    }

    #[test]
    fn codes_are_distinct() {
        let errs = [
            AmountError::Empty,
            AmountError::Signed {
                unsigned: String::new(),
            },
            AmountError::BadCharacter {
                character: 'x',
                index: 0,
            },
            AmountError::DanglingPoint,
            AmountError::LeadingZero,
            AmountError::TooManyDecimals {
                found: 0,
                decimals: 0,
            },
            AmountError::Overflow,
        ];
        let codes: std::collections::HashSet<_> = errs.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), errs.len());
    }
}
