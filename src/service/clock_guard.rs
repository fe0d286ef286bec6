//! Refusing to sign on a clock that jumped (`clock_jump`).
//!
//! Usage windows are judged by the signer's wall clock, so a clock moved far ahead makes
//! earlier signatures fall out of every window, and one moved back makes expired
//! transactions look live. The ledger keeps the latest time anything was signed at, durably;
//! a clock behind it by more than the policy's clock skew, or ahead of it by more than
//! `[clock] max_advance`, signs nothing until it is right again. While it is wrong the
//! service reports itself not serving (see `health`).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::refusal::{Refusal, RefusalKind};
use crate::reason::ReasonCode;

/// Concurrent requests read the clock before they queue for the ledger's lock, so one may
/// see a signing time a moment later than its own reading. A policy skew smaller than this
/// still tolerates that much.
const ORDER_SLACK_MS: i64 = 1_000;

pub struct ClockGuard {
    max_advance_ms: u64,
    /// Whether the alarm is up: read on every request, so the watch below (a lock) is only
    /// touched when the verdict changes.
    raised: AtomicBool,
    /// The last refusal's message while the clock is judged wrong; `None` once a check passes.
    alarm: watch::Sender<Option<String>>,
}

impl ClockGuard {
    pub fn new(max_advance_ms: u64) -> Self {
        ClockGuard {
            max_advance_ms,
            raised: AtomicBool::new(false),
            alarm: watch::Sender::new(None),
        }
    }

    /// Checks `now` against the latest signing time and raises or clears the alarm.
    pub fn check(
        &self,
        latest_signed_ms: Option<i64>,
        now_ms: i64,
        skew_ms: i64,
    ) -> Result<(), Refusal> {
        let verdict = judge(latest_signed_ms, now_ms, skew_ms, self.max_advance_ms);
        match &verdict {
            Ok(()) => {
                if self.raised.swap(false, Ordering::Relaxed) {
                    self.alarm.send_replace(None);
                }
            }
            Err(r) => {
                if !self.raised.swap(true, Ordering::Relaxed) {
                    tracing::error!(code = %r.code, "{}", r.message);
                }
                self.alarm.send_replace(Some(r.message.clone()));
            }
        }
        verdict
    }

    /// Follows the alarm: `Some(why)` while signing is refused for the clock.
    pub fn alarm(&self) -> watch::Receiver<Option<String>> {
        self.alarm.subscribe()
    }
}

fn judge(latest: Option<i64>, now: i64, skew_ms: i64, max_advance_ms: u64) -> Result<(), Refusal> {
    let Some(latest) = latest else {
        return Ok(());
    };
    let back = latest.saturating_sub(now);
    let tolerance = skew_ms.max(ORDER_SLACK_MS);
    if back > tolerance {
        return Err(refusal(format!(
            "the signer's clock reads {} ms, {} behind the latest signature ({} ms), more than \
             the clock skew of {} allows; nothing is signed until the clock is right",
            now,
            span(back),
            latest,
            span(tolerance)
        )));
    }
    let ahead = now.saturating_sub(latest);
    if u64::try_from(ahead).is_ok_and(|a| a > max_advance_ms) {
        return Err(refusal(format!(
            "the signer's clock reads {} ms, {} after the latest signature ({} ms), more than \
             clock.max_advance ({}) allows; if the signer really stood idle that long, raise \
             clock.max_advance for its next signature",
            now,
            span(ahead),
            latest,
            span(i64::try_from(max_advance_ms).unwrap_or(i64::MAX))
        )));
    }
    Ok(())
}

fn span(ms: i64) -> String {
    crate::policy::duration::format_duration(ms.unsigned_abs())
}

fn refusal(message: String) -> Refusal {
    Refusal::new(RefusalKind::Unavailable, ReasonCode::ClockJump, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn the_first_signature_has_nothing_to_compare_with() {
        assert!(judge(None, 0, 60_000, 31 * DAY as u64).is_ok());
    }

    #[test]
    fn behind_by_more_than_the_skew_is_a_jump() {
        let latest = 100 * DAY;
        assert!(judge(Some(latest), latest - 60_000, 60_000, DAY as u64).is_ok());
        let r = judge(Some(latest), latest - 60_001, 60_000, DAY as u64).unwrap_err();
        assert_eq!(r.code, ReasonCode::ClockJump);
        assert_eq!(r.kind, RefusalKind::Unavailable);
        assert!(r.message.contains("behind"), "{}", r.message);
    }

    #[test]
    fn a_tiny_skew_still_tolerates_request_ordering() {
        let latest = 100 * DAY;
        assert!(judge(Some(latest), latest - ORDER_SLACK_MS, 0, DAY as u64).is_ok());
        assert!(judge(Some(latest), latest - ORDER_SLACK_MS - 1, 0, DAY as u64).is_err());
    }

    #[test]
    fn ahead_by_more_than_the_maximum_is_a_jump() {
        let latest = 100 * DAY;
        assert!(judge(Some(latest), latest + 31 * DAY, 60_000, 31 * DAY as u64).is_ok());
        let r = judge(Some(latest), latest + 31 * DAY + 1, 60_000, 31 * DAY as u64).unwrap_err();
        assert_eq!(r.code, ReasonCode::ClockJump);
        assert!(r.message.contains("max_advance"), "{}", r.message);
    }

    #[test]
    fn the_alarm_is_raised_by_a_jump_and_cleared_by_a_good_reading() {
        let guard = ClockGuard::new(DAY as u64);
        let alarm = guard.alarm();
        assert!(guard.check(Some(10 * DAY), 12 * DAY, 60_000).is_err());
        assert!(alarm
            .borrow()
            .as_deref()
            .is_some_and(|m| m.contains("max_advance")));
        assert!(guard.check(Some(10 * DAY), 10 * DAY + 5, 60_000).is_ok());
        assert!(alarm.borrow().is_none());
    }
}
