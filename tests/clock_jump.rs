//! A wall-clock jump must not reset the limits (issue 11, item 5).
//!
//! The attack: a clock set 32 days ahead made the ledger forget every entry (they were older
//! than its retention by that clock), and once the clock was back a key had 20 TRX of a
//! 10 TRX / 24 h limit. Now the signer records the latest time it signed at, durably, and
//! refuses to sign (`clock_jump`, audited, health NOT_SERVING) on a clock behind that by
//! more than the skew or ahead of it by more than `[clock] max_advance`; and the ledger never
//! forgets by a clock later than its latest signature.
//!
//! The first tests move the decision core's clock in this process; the last runs the real
//! binary under libfaketime (wall clock only), as the finding did.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::*;
use tron_signer::reason::ReasonCode;
use tron_signer::service::RefusalKind;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;
const TRX: u64 = 1_000_000;
/// Any fixed instant: the core's clock is the test's.
const T: i64 = 1_800_000_000_000;

/// 10 TRX in any 24 h for the key, 1 min of clock skew.
fn policy_text() -> String {
    PolicyText::new("clock jump")
        .clock_skew("1m")
        .key(
            Key::new(KEY1, "hot", &["TRX"])
                .window("TRX", "24h", "10")
                .destination(
                    Destination::new(dest(0xa1), "sink", &["TRX"]).per_tx_max("TRX", "10"),
                ),
        )
        .text()
}

fn policy() -> tron_signer::policy::LoadedPolicy {
    tron_signer::policy::parse(&policy_text(), "clock.toml").expect("test policy loads")
}

/// 10 TRX to the sink, valid for a minute from `now`.
fn ten_trx(now: i64, nonce: u16) -> Vec<u8> {
    Tx {
        expiration: now + MIN,
        timestamp: now,
        ..Tx::trx(KEY1, dest(0xa1), 10 * TRX).nonce(nonce)
    }
    .raw()
}

#[tokio::test]
async fn a_clock_32_days_ahead_and_back_does_not_reset_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T));
    let core = in_process::core(dir.path(), &clock, policy());
    core.sign(&in_process::me(), KEY1, &ten_trx(T, 1), "p-1")
        .await
        .unwrap();
    let alarm = core.clock_alarm();
    assert!(alarm.borrow().is_none());

    // 32 days ahead: refused, before the policy, for Sign and (as what Sign would do) for
    // Evaluate (UNAVAILABLE, like Sign); the alarm is up.
    let ahead = T + 32 * DAY;
    clock.store(ahead, Ordering::SeqCst);
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(ahead, 2), "p-2")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::ClockJump, "{}", r.message);
    assert_eq!(r.kind, RefusalKind::Unavailable);
    assert!(r.message.contains("max_advance"), "{}", r.message);
    assert!(r.audit_sequence.is_some(), "the refusal is audited");
    let e = core
        .evaluate(&in_process::me(), KEY1, &ten_trx(ahead, 3), "p-3")
        .await
        .unwrap_err();
    assert_eq!(e.code, ReasonCode::ClockJump, "{}", e.message);
    assert!(e.audit_sequence.is_some(), "the refusal is audited");
    assert!(alarm.borrow().is_some(), "the clock alarm is raised");

    // A restart at the jumped clock still knows the latest signing time.
    drop(core);
    let core = in_process::core(dir.path(), &clock, policy());
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(ahead, 4), "p-4")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::ClockJump, "{}", r.message);

    // Back to an hour after the first signature, after another restart: the 10 TRX are
    // still counted (the finding signed 20 here).
    drop(core);
    let back = T + 60 * MIN;
    clock.store(back, Ordering::SeqCst);
    let core = in_process::core(dir.path(), &clock, policy());
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(back, 5), "p-5")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::OverKeyWindow, "{}", r.message);
    assert!(r.message.contains("used 10"), "{}", r.message);
}

#[tokio::test]
async fn a_clock_behind_the_latest_signature_by_more_than_the_skew_signs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T));
    let core = in_process::core(dir.path(), &clock, policy());
    let first = ten_trx(T, 1);
    core.sign(&in_process::me(), KEY1, &first, "p-1")
        .await
        .unwrap();

    // Within the skew (1 min) behind: still judged by the policy (which refuses the amount).
    clock.store(T - MIN, Ordering::SeqCst);
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(T - MIN, 2), "p-2")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::OverKeyWindow, "{}", r.message);

    // Two hours behind: refused for the clock, and the alarm is up.
    let behind = T - 120 * MIN;
    clock.store(behind, Ordering::SeqCst);
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(behind, 3), "p-3")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::ClockJump, "{}", r.message);
    assert!(r.message.contains("behind"), "{}", r.message);
    assert!(core.clock_alarm().borrow().is_some());

    // A replay signs nothing new: the stored signature is still returned.
    let replay = core
        .sign(&in_process::me(), KEY1, &first, "p-1")
        .await
        .unwrap();
    assert!(replay.replayed);

    // Once the clock is right again the alarm clears.
    clock.store(T + 2 * MIN, Ordering::SeqCst);
    let e = core
        .evaluate(&in_process::me(), KEY1, &ten_trx(T + 2 * MIN, 4), "p-4")
        .await
        .unwrap();
    assert_eq!(e.reason_code, Some(ReasonCode::OverKeyWindow));
    assert!(core.clock_alarm().borrow().is_none());
}

#[tokio::test]
async fn max_advance_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T));
    let core = in_process::core(dir.path(), &clock, policy()).with_max_clock_advance(DAY as u64);
    core.sign(&in_process::me(), KEY1, &ten_trx(T, 1), "p-1")
        .await
        .unwrap();
    let later = T + DAY + MIN;
    clock.store(later, Ordering::SeqCst);
    let r = core
        .sign(&in_process::me(), KEY1, &ten_trx(later, 2), "p-2")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::ClockJump, "{}", r.message);
}

/// Debian's libfaketime, installed by scripts/test.sh.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The finding, reproduced on the real binary: sign 10 TRX, restart with the wall clock 32
/// days ahead (libfaketime, monotonic clock untouched), then restart on the real clock.
#[tokio::test]
async fn the_real_signer_under_libfaketime_refuses_a_jumped_clock() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (scripts/test.sh does)"
    );
    let mut s = Setup::new(&[("hot", KEY1_SECRET)], &policy_text());
    let mut srv = s.start().await;
    let now = now_ms();
    srv.client
        .sign(request(KEY1, ten_trx(now, 1), "p-1"))
        .await
        .expect("signed on the real clock");
    srv.stop();

    // 32 days ahead. The transaction is built for that clock, as an attacker would.
    s.replace_env(vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        ("FAKETIME".into(), "+32d".into()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]);
    let mut srv = s.start().await;
    let ahead = now_ms() + 32 * DAY;
    let status = srv
        .client
        .sign(request(KEY1, ten_trx(ahead, 2), "p-2"))
        .await
        .expect_err("a clock 32 days ahead signs nothing");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "clock_jump", "{status:?}");
    assert!(
        wait_for_health(&s.endpoint(), ServingStatus::NotServing).await,
        "health says NOT_SERVING while the clock is wrong"
    );
    assert!(srv.log_text().contains("clock_jump"), "{}", srv.log_text());
    srv.stop();

    // Back on the real clock: the first 10 TRX still count.
    s.replace_env(Vec::new());
    let mut srv = s.start().await;
    let now = now_ms();
    let status = srv
        .client
        .sign(request(KEY1, ten_trx(now, 3), "p-3"))
        .await
        .expect_err("the limit is still used");
    assert_eq!(reason(&status), "over_key_window", "{status:?}");
    assert!(wait_for_health(&s.endpoint(), ServingStatus::Serving).await);
    srv.stop();

    let jumps: Vec<_> = s.records_with("clock_jump");
    assert_eq!(jumps.len(), 1, "the refusal is audited once: {jumps:?}");
    s.assert_audit_verifies();
    // The faketime run really saw a later clock: its audit record is stamped 32 days on.
    let stamped = jumps[0]["time_ms"].as_i64().unwrap_or(0);
    assert!(
        stamped > now + 31 * DAY,
        "stamped {stamped}, real now {now}"
    );
}
