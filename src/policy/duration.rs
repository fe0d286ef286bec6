//! Durations written the way people write them: "90s", "15m", "1h", "24h", "7d".
//!
//! One positive integer and one unit (`s`, `m`, `h`, `d`), nothing else: no compound forms
//! ("1h30m"), no fractions, no spaces, no leading zeros. Stored as milliseconds because
//! transaction timestamps are milliseconds.

/// Milliseconds per unit.
const UNITS: [(char, u64); 4] = [
    ('d', 86_400_000),
    ('h', 3_600_000),
    ('m', 60_000),
    ('s', 1_000),
];

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a whole number and a unit s, m, h or d (e.g. \"90s\", \"24h\", \"7d\")")]
    Syntax,
    #[error("duration must be greater than zero")]
    Zero,
    #[error("duration is too long")]
    Overflow,
}

impl DurationError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DurationError::Syntax => "duration_syntax",
            DurationError::Zero => "duration_zero",
            DurationError::Overflow => "duration_overflow",
        }
    }
}

/// Parses a duration into milliseconds; zero is refused (a zero window or skew is a mistake).
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let unit = text.chars().last().ok_or(DurationError::Syntax)?;
    let per = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|&(_, ms)| ms)
        .ok_or(DurationError::Syntax)?;
    let digits = &text[..text.len() - 1];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(DurationError::Syntax);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    if n == 0 {
        return Err(DurationError::Zero);
    }
    n.checked_mul(per).ok_or(DurationError::Overflow)
}

/// Formats milliseconds with the largest unit that divides them exactly ("24h", not "1d",
/// is kept only when not a whole number of days).
pub fn format_duration(ms: u64) -> String {
    for (unit, per) in UNITS {
        if ms != 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("15m"), Ok(900_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("24h"), Ok(86_400_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "", "s", "1", "1.5h", "1h30m", " 1h", "1h ", "-1h", "+1h", "1w", "1H", "01h", "1 h",
            "é", "1é",
        ] {
            assert_eq!(parse_duration(s), Err(DurationError::Syntax), "{s:?}");
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0d"), Err(DurationError::Zero));
        assert_eq!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("999999999999999d"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_with_largest_exact_unit() {
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(5_400_000), "90m");
        assert_eq!(format_duration(1), "1ms");
        assert_eq!(format_duration(0), "0ms");
    }
}
