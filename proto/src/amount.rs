//! The one grammar for human decimal amounts ("50000.5" token units to integer base units
//! and back), shared by the signer's policy files and the broadcaster's payout API.
//!
//! Money is never parsed through a float: a limit or a payout must be exactly the number
//! written, or refused. Both sides parse with [`parse`]; they differ only where the
//! [`Spelling`] parameter or a check on top says so, and every such difference is listed here.
//!
//! # Grammar (both sides)
//!
//! - one or more ASCII digits, optionally followed by `.` and one or more digits
//!   (`"0"`, `"12"`, `"0.5"`, `"50000.25"`);
//! - no sign, no exponent, no whitespace, no `_` or `,` separators;
//! - no dangling point: `"1."`, `".5"` and `"."` are refused;
//! - no non-zero digit beyond the asset's `decimals` (nothing is ever rounded);
//! - the result fits in 256 bits (TRC-20 amounts are `uint256`).
//!
//! `"0"` parses to zero; whether zero makes sense is for the caller to decide.
//!
//! # Spelling: the one parameter
//!
//! - [`Spelling::Canonical`] (policy files): no leading zeros in the integer part except a
//!   lone `0` (`"007"` is refused), and no fractional digit beyond `decimals`, trailing zeros
//!   included (`"1.0000000"` with 6 decimals is refused). An auditor reading a number in
//!   the file sees exactly what is enforced, and a typo cannot silently drop a digit.
//! - [`Spelling::Padded`] (the broadcaster's payout API): also accepts leading zeros
//!   (`"007.5"`) and zeros beyond `decimals` (`"1.500000000"`), the fixed-width forms that
//!   payment backends' number formatters emit. The value is unchanged by either, so
//!   nothing is rounded; a non-zero digit beyond `decimals` is still refused.
//!
//! # Checks on top, per side
//!
//! - Policy: a limit of zero is refused by the policy loader (a zero limit is written by
//!   removing the permission instead).
//! - Broadcaster: a payout must be greater than zero and at most `i64::MAX` base units,
//!   because Tron's amount fields are `int64`; its API maps these errors onto its own
//!   four stable codes.

use ethnum::U256;

/// How strictly digits that do not change the value are refused (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// One spelling per value: no leading zeros, at most `decimals` fractional digits.
    Canonical,
    /// Leading zeros and fractional zeros beyond `decimals` accepted.
    Padded,
}

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
    /// Every variant once, so tests can check that the codes are distinct.
    pub const ALL: [AmountError; 7] = [
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
///
/// Errors are checked in this order: empty, sign, characters, point, leading zeros,
/// decimals, size; so one input always gets the same error.
pub fn parse(text: &str, decimals: u8, spelling: Spelling) -> Result<U256, AmountError> {
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
    let frac = match spelling {
        Spelling::Canonical => {
            if int.len() > 1 && int.starts_with('0') {
                return Err(AmountError::LeadingZero);
            }
            frac
        }
        // Zeros after the last non-zero digit do not change the value.
        Spelling::Padded => frac.trim_end_matches('0'),
    };
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

/// Formats base units as token units in the canonical spelling: no exponent, no trailing
/// fractional zeros, no point for whole amounts. For every `v` and `d`,
/// `parse(&format(v, d), d, Spelling::Canonical) == Ok(v)`.
pub fn format(value: U256, decimals: u8) -> String {
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
        parse(s, 6, Spelling::Canonical)
    }

    fn padded(s: &str) -> Result<U256, AmountError> {
        parse(s, 6, Spelling::Padded)
    }

    #[test]
    fn accepts_plain_decimals() {
        assert_eq!(p("0"), Ok(U256::ZERO));
        assert_eq!(p("1"), Ok(U256::from(1_000_000u32)));
        assert_eq!(p("50000.5"), Ok(U256::from(50_000_500_000u64)));
        assert_eq!(p("0.000001"), Ok(U256::ONE));
        assert_eq!(p("0.5"), Ok(U256::from(500_000u32)));
        assert_eq!(p("10.100000"), Ok(U256::from(10_100_000u32)));
        assert_eq!(parse("42", 0, Spelling::Canonical), Ok(U256::from(42u8)));
    }

    #[test]
    fn refuses_empty_signs_and_garbage() {
        for spelling in [Spelling::Canonical, Spelling::Padded] {
            let p = |s: &str| parse(s, 6, spelling);
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
            assert_eq!(p("1."), Err(AmountError::DanglingPoint));
            assert_eq!(p(".5"), Err(AmountError::DanglingPoint));
            assert_eq!(p("."), Err(AmountError::DanglingPoint));
        }
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
            parse("1.5", 0, Spelling::Canonical),
            Err(AmountError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn padded_accepts_zeros_that_do_not_change_the_value() {
        assert_eq!(padded("007.5"), Ok(U256::from(7_500_000u32)));
        assert_eq!(padded("000"), Ok(U256::ZERO));
        assert_eq!(padded("00.5"), Ok(U256::from(500_000u32)));
        assert_eq!(padded("1.500000000"), Ok(U256::from(1_500_000u32)));
        assert_eq!(padded("1.0000000"), Ok(U256::from(1_000_000u32)));
        assert_eq!(parse("1.000", 0, Spelling::Padded), Ok(U256::ONE));
        // A non-zero digit beyond the decimals is still refused, never rounded.
        assert_eq!(
            padded("1.0000001"),
            Err(AmountError::TooManyDecimals {
                found: 7,
                decimals: 6
            })
        );
        assert!(matches!(
            padded("0.00000010"),
            Err(AmountError::TooManyDecimals { found: 7, .. })
        ));
    }

    #[test]
    fn overflow_beyond_u256() {
        let max = U256::MAX.to_string();
        assert_eq!(parse(&max, 0, Spelling::Canonical), Ok(U256::MAX));
        // Same digits scaled by 10^6 no longer fit.
        assert_eq!(p(&max), Err(AmountError::Overflow));
        let bigger = format!("{max}0");
        assert_eq!(
            parse(&bigger, 0, Spelling::Canonical),
            Err(AmountError::Overflow)
        );
        assert_eq!(padded(&max), Err(AmountError::Overflow));
        // Leading zeros never overflow by themselves.
        assert_eq!(
            parse(&format!("0000{max}"), 0, Spelling::Padded),
            Ok(U256::MAX)
        );
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format(U256::ZERO, 6), "0");
        assert_eq!(format(U256::ONE, 6), "0.000001");
        assert_eq!(format(U256::from(50_000_500_000u64), 6), "50000.5");
        assert_eq!(format(U256::from(1_000_000u32), 6), "1");
        assert_eq!(format(U256::from(42u8), 0), "42");
        assert_eq!(format(U256::MAX, 0), U256::MAX.to_string());
    }

    #[test]
    fn round_trips() {
        for v in [0u64, 1, 9, 10, 999_999, 1_000_000, 1_000_001, u64::MAX] {
            for d in [0u8, 1, 6, 18] {
                let v = U256::from(v);
                for spelling in [Spelling::Canonical, Spelling::Padded] {
                    assert_eq!(parse(&format(v, d), d, spelling), Ok(v), "{v} {d}");
                }
            }
        }
        assert_eq!(
            parse(&format(U256::MAX, 18), 18, Spelling::Canonical),
            Ok(U256::MAX)
        );
    }

    #[test]
    fn codes_are_distinct() {
        let codes: std::collections::HashSet<_> =
            AmountError::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), AmountError::ALL.len());
    }
}
