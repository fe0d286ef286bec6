//! Exact parsing of human decimal amounts into base units (sun or token units).
//!
//! Never through floats: `"0.1"` must be exactly 100000 units, and anything with more
//! decimals than the asset has is refused rather than rounded, because rounding a payout
//! silently changes what the payment backend asked for.

/// Decimals of both supported assets (TRX in sun, USDT in its token units).
pub const DECIMALS: u32 = 6;

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
    if let Some(rest) = s.strip_prefix('-') {
        // A well-formed negative number is reported as such, not as a syntax error.
        if parse(rest).is_ok() || rest.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(AmountError::NotPositive(s.into()));
        }
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits_ok = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits_ok(int) || !digits_ok(frac) || (s.contains('.') && frac.is_empty())
    {
        return Err(AmountError::Syntax(s.into()));
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > DECIMALS as usize {
        return Err(AmountError::TooPrecise(s.into()));
    }
    let too_large = || AmountError::TooLarge(s.into());
    let int_trimmed = int.trim_start_matches('0');
    let whole: u64 = if int_trimmed.is_empty() {
        0
    } else {
        int_trimmed.parse().map_err(|_| too_large())?
    };
    let mut frac_units: u64 = 0;
    for (i, c) in frac_trimmed.chars().enumerate() {
        let d = u64::from(c.to_digit(10).unwrap_or(0));
        frac_units += d * 10u64.pow(DECIMALS - 1 - i as u32);
    }
    let total = whole
        .checked_mul(10u64.pow(DECIMALS))
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(too_large)?;
    if total > i64::MAX as u64 {
        return Err(too_large());
    }
    if total == 0 {
        return Err(AmountError::NotPositive(s.into()));
    }
    Ok(total)
}

/// Formats base units back as the canonical decimal string (no trailing zeros).
pub fn format(units: u64) -> String {
    let scale = 10u64.pow(DECIMALS);
    let whole = units / scale;
    let frac = units % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:06}");
    format!("{whole}.{}", f.trim_end_matches('0'))
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
    fn format_round_trip() {
        for (u, s) in [(1_000_000, "1"), (1, "0.000001"), (12_345_600, "12.3456")] {
            assert_eq!(format(u), s);
            assert_eq!(parse(s).unwrap(), u);
        }
    }
}
