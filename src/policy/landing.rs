//! When a signed transaction "can still land": the one definition that both the usage
//! windows and the payout-id check (`payout_in_flight`) use.
//!
//! A node accepts a transaction until its expiration by the node's clock, which may be up to
//! the policy's `clock_skew` behind ours. So a transaction expiring at `e` can land until our
//! clock reads `e + skew`. A window of length W at `now` counts every transaction that can
//! land at some moment of the window, i.e. at `now - W` or later.

/// Whether a transaction expiring at `expiration_ms` can still land when the signer's clock
/// reads `at_ms`, with a clock skew of `skew_ms`.
pub fn can_still_land(expiration_ms: i64, skew_ms: u64, at_ms: i64) -> bool {
    expiration_ms >= earliest_landing_expiration(at_ms, skew_ms)
}

/// The earliest expiration that can still land at `at_ms`: `at_ms - skew`.
pub fn earliest_landing_expiration(at_ms: i64, skew_ms: u64) -> i64 {
    at_ms.saturating_sub(i64::try_from(skew_ms).unwrap_or(i64::MAX))
}

/// How far back from `now`, in expirations, a window of `window_ms` counts: a transaction
/// counts while `can_still_land(expiration, skew, now - window)`, which is
/// `expiration >= now - lookback_ms(window, skew)`.
pub fn lookback_ms(window_ms: u64, skew_ms: u64) -> u64 {
    window_ms.saturating_add(skew_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_exactly_what_can_land_inside_it() {
        let (window, skew, now) = (1_800_000u64, 1_200_000u64, 10_000_000_000i64);
        let cutoff = now - i64::try_from(lookback_ms(window, skew)).unwrap();
        let window_start = now - i64::try_from(window).unwrap();
        for exp in [cutoff - 1, cutoff, cutoff + 1, now - 1_500_000, now] {
            assert_eq!(
                exp >= cutoff,
                can_still_land(exp, skew, window_start),
                "expiration {exp}"
            );
        }
        // Expiring 25 minutes ago with a 20-minute skew: it could land 5 minutes ago, inside
        // a 30-minute window.
        assert!(can_still_land(now - 1_500_000, skew, window_start));
        // Without a skew the same window would not count it.
        assert!(!can_still_land(now - 1_900_000, 0, window_start));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert!(can_still_land(i64::MIN, u64::MAX, i64::MIN));
        assert_eq!(earliest_landing_expiration(i64::MIN, 5), i64::MIN);
        assert_eq!(lookback_ms(u64::MAX, 1), u64::MAX);
    }
}
