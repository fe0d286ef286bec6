//! Durations written the way operators write them in a config: `"90s"`, `"10m"`, `"12h"`.
//!
//! Kept tiny and local so the config format does not depend on a parsing crate's
//! extensions (e.g. fractional or compound units an auditor would have to learn).

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration {0:?} must be a whole number followed by ms, s, m, h or d")]
    Syntax(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

impl DurationError {
    pub fn code(&self) -> &'static str {
        match self {
            DurationError::Syntax(_) => "duration_syntax",
            DurationError::Overflow(_) => "duration_overflow",
        }
    }
}

/// Parses `<digits><unit>` with unit one of `ms`, `s`, `m`, `h`, `d`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError::Syntax(s.into()))?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::Syntax(s.into()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| DurationError::Overflow(s.into()))?;
    let ms_per: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError::Syntax(s.into())),
    };
    let ms = n
        .checked_mul(ms_per)
        .ok_or_else(|| DurationError::Overflow(s.into()))?;
    Ok(Duration::from_millis(ms))
}

/// Serde adapter: a duration field written as a string.
pub mod serde_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn refusals() {
        for bad in ["", "10", "m", "1.5h", "10 m", "10x", "-1s"] {
            assert!(matches!(parse(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        assert!(matches!(
            parse("99999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("18446744073709551615d"),
            Err(DurationError::Overflow(_))
        ));
    }
}
