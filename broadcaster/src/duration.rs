//! Durations written the way operators write them in a config: `"90s"`, `"10m"`, `"12h"`.
//!
//! The grammar is the shared one of [`tron_proto::duration`] (documented there, with why the
//! sides differ) under [`Rules::CONFIG`]: `ms` and zero are accepted here, unlike in policies.

use std::time::Duration;

use tron_proto::duration::{DurationError as Shared, Rules};

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

/// Parses `<digits><unit>` with unit one of `ms`, `s`, `m`, `h`, `d`; zero is accepted
/// (fields that must be non-zero are checked by the config loader).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    match tron_proto::duration::parse(s, Rules::CONFIG) {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(Shared::Overflow) => Err(DurationError::Overflow(s.into())),
        // `Zero` cannot happen under `Rules::CONFIG`; any refusal but size is syntax.
        Err(Shared::Syntax { .. } | Shared::Zero) => Err(DurationError::Syntax(s.into())),
    }
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
