//! A clock skew against a rolling window (issue 11, item 7), on the real decision core and
//! an on-disk ledger, with the core's clock moved by the test (the binary reads the system
//! clock, and moving time is the point here).
//!
//! A transaction expiring at E can land until the signer's clock reads E + skew, so a window
//! must count it until E + skew + window. Counting it only until E + window let a key spend its
//! limit twice inside one window: once with a transaction expiring in the past (allowed, it is
//! within the skew) and again once that expiration had left the window.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::*;
use tron_signer::reason::ReasonCode;
use tron_signer::service::Core;

const MIN: i64 = 60_000;
const TRX: u64 = 1_000_000;
/// Any fixed instant: the core's clock is the test's.
const T: i64 = 1_800_000_000_000;

/// 20 min skew, 10 TRX in any 30 min for the key.
fn policy() -> tron_signer::policy::LoadedPolicy {
    let text = PolicyText::new("skew against window")
        .clock_skew("20m")
        .key(
            Key::new(KEY1, "hot", &["TRX"])
                .window("TRX", "30m", "10")
                .destination(
                    Destination::new(dest(0xa1), "sink", &["TRX"]).per_tx_max("TRX", "10"),
                ),
        )
        .text();
    tron_signer::policy::parse(&text, "skew.toml").unwrap()
}

fn core(dir: &std::path::Path, clock: &Arc<AtomicI64>) -> Core {
    common::in_process::core(dir, clock, policy())
}

/// 10 TRX to the sink, expiring at `expiration`, stamped `timestamp`.
fn ten_trx(expiration: i64, timestamp: i64, nonce: u16) -> Vec<u8> {
    Tx {
        expiration,
        timestamp,
        ..Tx::trx(KEY1, dest(0xa1), 10 * TRX).nonce(nonce)
    }
    .raw()
}

#[tokio::test]
async fn a_transaction_counts_while_it_can_still_land_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T));

    // At T: 10 TRX expiring 19 min ago (inside the 20 min skew, so a node whose clock is
    // behind ours may still take it until T + 1 min). The whole 30 min limit is used.
    let first = core(dir.path(), &clock);
    let early = ten_trx(T - 19 * MIN, T - 20 * MIN, 1);
    first
        .sign(&in_process::me(), KEY1, &early, "p-1")
        .await
        .unwrap();
    drop(first);

    // 16 min later (after a restart: usage comes from the durable ledger) the first
    // transaction expired 35 min ago, before the start of the window, but it could have
    // landed at T + 1 min, inside it. Another 10 TRX would make 20 in 30 min.
    clock.store(T + 16 * MIN, Ordering::SeqCst);
    let second = core(dir.path(), &clock);
    let now = T + 16 * MIN;
    for nonce in 2..22u16 {
        let raw = ten_trx(now + MIN, now, nonce);
        let r = second
            .sign(&in_process::me(), KEY1, &raw, &format!("p-{nonce}"))
            .await
            .expect_err("the first transfer still counts");
        assert_eq!(r.code, ReasonCode::OverKeyWindow, "{}", r.message);
        assert!(r.message.contains("used 10"), "{}", r.message);
    }

    // Once the first transaction can no longer land inside any 30 min window ending now
    // (expiration + skew + window has passed), the limit is free again.
    let free_at = T - 19 * MIN + 20 * MIN + 30 * MIN + 1;
    clock.store(free_at, Ordering::SeqCst);
    let raw = ten_trx(free_at + MIN, free_at, 30);
    let signed = second
        .sign(&in_process::me(), KEY1, &raw, "p-30")
        .await
        .unwrap();
    assert!(!signed.replayed);
}

/// The payout id check uses the same definition: a payout whose transaction can still land
/// (expiration + skew not yet passed) refuses a second transaction, and frees once it cannot.
#[tokio::test]
async fn payout_in_flight_uses_the_same_definition() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T));
    let c = core(dir.path(), &clock);
    let raw = Tx {
        expiration: T + MIN,
        timestamp: T,
        ..Tx::trx(KEY1, dest(0xa1), TRX)
    }
    .raw();
    c.sign(&in_process::me(), KEY1, &raw, "same").await.unwrap();

    // Past its expiration but within the skew: it can still land.
    let at = T + MIN + 20 * MIN;
    clock.store(at, Ordering::SeqCst);
    let other = Tx {
        expiration: at + MIN,
        timestamp: at,
        ..Tx::trx(KEY1, dest(0xa1), TRX).nonce(1)
    }
    .raw();
    let r = c
        .sign(&in_process::me(), KEY1, &other, "same")
        .await
        .unwrap_err();
    assert_eq!(r.code, ReasonCode::PayoutInFlight, "{}", r.message);

    // One millisecond after expiration + skew it cannot, and the payout may be retried.
    clock.store(at + 1, Ordering::SeqCst);
    c.sign(&in_process::me(), KEY1, &other, "same")
        .await
        .unwrap();
}
