//! Durations in policy files ("90s", "15m", "1h", "24h", "7d"): the shared grammar of
//! [`tron_proto::duration`] under [`Rules::POLICY`] (no leading zeros, no `ms`, never zero).
//! The grammar and why the sides differ are documented there, in one place.

use tron_proto::duration::Rules;

pub use tron_proto::duration::DurationError;

/// Parses a duration into milliseconds; zero is refused (a zero window or skew is a mistake).
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    tron_proto::duration::parse(text, Rules::POLICY)
}

/// Formats milliseconds with the largest unit that divides them exactly ("90m", "1d").
pub fn format_duration(ms: u64) -> String {
    tron_proto::duration::format(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar's own tests live in `tron_proto::duration`; these are the policy's
    /// extra rules.
    #[test]
    fn policy_rules_refuse_zero_leading_zeros_and_millis() {
        assert_eq!(parse_duration("24h"), Ok(86_400_000));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        for s in ["01h", "1ms", "1", ""] {
            assert!(
                matches!(parse_duration(s), Err(DurationError::Syntax { .. })),
                "{s:?}"
            );
        }
        assert_eq!(
            parse_duration("1x").unwrap_err().to_string(),
            "expected a whole number and a unit s, m, h or d (e.g. \"90s\", \"24h\", \"7d\")"
        );
        assert_eq!(format_duration(5_400_000), "90m");
    }
}
