//! The one grammar for durations ("90s", "15m", "24h", "7d"), shared by the signer's policy
//! files and the broadcaster's config, parsed into milliseconds (Tron timestamps are ms).
//!
//! Kept tiny and local so neither file format depends on a parsing crate's extensions
//! (fractional or compound units an auditor would have to learn). Both sides parse with
//! [`parse`]; they differ only in the [`Rules`] they pass, and every difference is listed here.
//!
//! # Grammar (both sides)
//!
//! One whole number of ASCII digits, then one unit, nothing else: no compound forms
//! ("1h30m"), no fractions, no sign, no spaces, no upper case. Units: `ms` (only where
//! [`Rules::millis`] allows it), `s`, `m`, `h`, `d`.
//!
//! # Rules: the parameters
//!
//! - Policy files ([`Rules::POLICY`]): no leading zeros (`"01h"`: one spelling per value,
//!   as for amounts), no `ms` (windows and skews are in whole seconds or more), and zero
//!   refused (a zero window or clock skew is a mistake, never a setting).
//! - Broadcaster config ([`Rules::CONFIG`]): leading zeros, `ms` (poll intervals and
//!   back-offs below a second) and zero (`solidity_margin = "0s"`) accepted; fields that
//!   must be non-zero or bounded (poll interval, expiration) are checked by the config loader.

/// Milliseconds per unit, longest unit name first so that `ms` is not read as `m`.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Which spellings one side accepts on top of the shared grammar (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Accept the `ms` unit.
    pub millis: bool,
    /// Accept leading zeros in the number ("010s").
    pub leading_zeros: bool,
    /// Accept a zero duration.
    pub zero: bool,
}

impl Rules {
    /// Policy files: canonical spelling, whole seconds or more, never zero.
    pub const POLICY: Rules = Rules {
        millis: false,
        leading_zeros: false,
        zero: false,
    };
    /// Broadcaster config: any spelling of the grammar, `ms` and zero included.
    pub const CONFIG: Rules = Rules {
        millis: true,
        leading_zeros: true,
        zero: true,
    };
}

/// Why a duration string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number and a unit the rules allow.
    #[error("expected a whole number and a unit {} (e.g. \"90s\", \"24h\", \"7d\")", unit_list(*.millis))]
    Syntax {
        /// Whether `ms` was among the allowed units (for the message).
        millis: bool,
    },
    #[error("duration must be greater than zero")]
    Zero,
    #[error("duration is too long")]
    Overflow,
}

fn unit_list(millis: bool) -> &'static str {
    if millis {
        "ms, s, m, h or d"
    } else {
        "s, m, h or d"
    }
}

impl DurationError {
    /// Every variant once, so tests can check that the codes are distinct.
    pub const ALL: [DurationError; 3] = [
        DurationError::Syntax { millis: false },
        DurationError::Zero,
        DurationError::Overflow,
    ];

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DurationError::Syntax { .. } => "duration_syntax",
            DurationError::Zero => "duration_zero",
            DurationError::Overflow => "duration_overflow",
        }
    }
}

/// Parses a duration into milliseconds under `rules`.
///
/// Errors are checked in this order: syntax (leading zeros included), size, zero.
pub fn parse(text: &str, rules: Rules) -> Result<u64, DurationError> {
    let syntax = DurationError::Syntax {
        millis: rules.millis,
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or(syntax)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || (!rules.leading_zeros && digits.len() > 1 && digits.starts_with('0')) {
        return Err(syntax);
    }
    let per = UNITS
        .iter()
        .find(|&&(name, _)| name == unit && (rules.millis || name != "ms"))
        .map(|&(_, ms)| ms)
        .ok_or(syntax)?;
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    if n == 0 && !rules.zero {
        return Err(DurationError::Zero);
    }
    n.checked_mul(per).ok_or(DurationError::Overflow)
}

/// Formats milliseconds with the largest unit that divides them exactly ("90m", "1d"), or
/// in `ms` when no other unit does (and for zero).
pub fn format(ms: u64) -> String {
    for (unit, per) in UNITS.iter().rev() {
        if ms != 0 && ms % per == 0 && *per > 1 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(s: &str) -> Result<u64, DurationError> {
        parse(s, Rules::POLICY)
    }

    fn config(s: &str) -> Result<u64, DurationError> {
        parse(s, Rules::CONFIG)
    }

    const POLICY_SYNTAX: DurationError = DurationError::Syntax { millis: false };
    const CONFIG_SYNTAX: DurationError = DurationError::Syntax { millis: true };

    #[test]
    fn parses_units() {
        for p in [policy, config] {
            assert_eq!(p("90s"), Ok(90_000));
            assert_eq!(p("15m"), Ok(900_000));
            assert_eq!(p("10m"), Ok(600_000));
            assert_eq!(p("1h"), Ok(3_600_000));
            assert_eq!(p("12h"), Ok(43_200_000));
            assert_eq!(p("24h"), Ok(86_400_000));
            assert_eq!(p("1d"), Ok(86_400_000));
            assert_eq!(p("7d"), Ok(604_800_000));
        }
        assert_eq!(config("250ms"), Ok(250));
    }

    #[test]
    fn policy_refuses_everything_else() {
        for s in [
            "",
            "s",
            "1",
            "1.5h",
            "1h30m",
            " 1h",
            "1h ",
            "-1h",
            "+1h",
            "1w",
            "1H",
            "01h",
            "1 h",
            "é",
            "1é",
            "1ms",
            "0ms",
            "99999999999999999999ms",
        ] {
            assert_eq!(policy(s), Err(POLICY_SYNTAX), "{s:?}");
        }
        assert_eq!(policy("0s"), Err(DurationError::Zero));
        assert_eq!(policy("0d"), Err(DurationError::Zero));
        assert_eq!(
            policy("99999999999999999999d"),
            Err(DurationError::Overflow)
        );
        assert_eq!(policy("999999999999999d"), Err(DurationError::Overflow));
    }

    #[test]
    fn config_accepts_zero_leading_zeros_and_millis() {
        assert_eq!(config("0s"), Ok(0));
        assert_eq!(config("0ms"), Ok(0));
        assert_eq!(config("010s"), Ok(10_000));
        assert_eq!(config("1ms"), Ok(1));
    }

    #[test]
    fn config_refuses_everything_else() {
        for bad in [
            "", "10", "m", "1.5h", "10 m", "10x", "-1s", "1h30m", "1H", "1w", " 1s", "1s ",
        ] {
            assert_eq!(config(bad), Err(CONFIG_SYNTAX), "{bad}");
        }
        assert_eq!(
            config("99999999999999999999s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            config("18446744073709551615d"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn messages_name_the_allowed_units() {
        assert_eq!(
            POLICY_SYNTAX.to_string(),
            "expected a whole number and a unit s, m, h or d (e.g. \"90s\", \"24h\", \"7d\")"
        );
        assert!(CONFIG_SYNTAX.to_string().contains("ms, s, m, h or d"));
    }

    #[test]
    fn formats_with_largest_exact_unit() {
        assert_eq!(format(90_000), "90s");
        assert_eq!(format(86_400_000), "1d");
        assert_eq!(format(3_600_000), "1h");
        assert_eq!(format(5_400_000), "90m");
        assert_eq!(format(1), "1ms");
        assert_eq!(format(1_500), "1500ms");
        assert_eq!(format(0), "0ms");
    }

    #[test]
    fn codes_are_distinct() {
        let codes: std::collections::HashSet<_> =
            DurationError::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), DurationError::ALL.len());
    }
}
