use std::path::Path;

use redb::{Database, ReadableTable};
use tron_proto::{Address, U256};

use super::audit::seal;
use super::schema::{AUDIT, BY_EXPIRATION, DB_FILE, ENTRIES, META, META_AUDIT_HEAD};
use super::*;
use crate::decode::Asset;
use crate::test_util::addr;

pub(crate) const HOUR: u64 = 3_600_000;
pub(crate) const T0: i64 = 1_700_000_000_000;

pub(crate) fn txid(n: u32) -> [u8; 32] {
    let mut t = [0xabu8; 32];
    t[..4].copy_from_slice(&n.to_be_bytes());
    t
}

pub(crate) fn pending(
    n: u32,
    amount: u64,
    payout: &str,
    signed_at: i64,
    expiration: i64,
) -> PendingEntry {
    PendingEntry {
        txid: txid(n),
        key: addr(1),
        asset: Asset::Token(addr(9)),
        destination: addr(2),
        amount: U256::from(amount),
        payout_id: payout.to_owned(),
        expiration_ms: expiration,
        signed_at_ms: signed_at,
        policy_hash: [7u8; 32],
    }
}

pub(crate) fn rec(method: &str, decision: Decision, txid_hex: Option<String>) -> AuditRecord {
    AuditRecord {
        time_ms: T0,
        caller: "payments".into(),
        identity: "unix_uid=1000".into(),
        peer: "unix:uid=1000,gid=1000,pid=7".into(),
        method: method.into(),
        key: Some(addr(1).to_base58()),
        txid: txid_hex,
        payout_id: Some("p".into()),
        intent: Some(serde_json::json!({"asset": "USDT", "amount": "20"}).to_string()),
        decision,
        reason_code: if decision == Decision::Allow {
            "ok"
        } else {
            "dest_not_allowed"
        }
        .into(),
        message: "a message a person understands".into(),
        policy_hash: hex::encode([7u8; 32]),
        approvals: None,
        deposit_index: None,
    }
}

pub(crate) fn sig(n: u32) -> [u8; 65] {
    let mut s = [0x5au8; 65];
    s[..4].copy_from_slice(&n.to_be_bytes());
    s
}

/// Reserves under the guard, drops it, then commits: the service's sequence.
async fn sign(ledger: &Ledger, p: PendingEntry) -> Result<u64, LedgerError> {
    let n = u32::from_be_bytes(p.txid[..4].try_into().unwrap());
    let res = {
        let mut g = ledger.state();
        g.reserve(p)?
    };
    res.commit(
        sig(n),
        rec("Sign", Decision::Allow, Some(hex::encode(txid(n)))),
    )
    .await
}

fn usdt_used(ledger: &Ledger, dest: Option<&Address>, window: u64, now: i64) -> U256 {
    ledger
        .state()
        .used(&addr(1), Asset::Token(addr(9)), dest, window, now)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn commit_survives_restart_with_usage_and_idempotent_lookup() {
    let dir = tempdir();
    {
        let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
        assert_eq!(
            sign(&ledger, pending(1, 100, "p1", T0, T0 + 60_000)).await,
            Ok(1)
        );
        assert_eq!(
            sign(&ledger, pending(2, 50, "p2", T0, T0 + 60_000)).await,
            Ok(2)
        );
        assert_eq!(usdt_used(&ledger, None, HOUR, T0), U256::from(150u8));
    }
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0 + 1000).unwrap();
    assert_eq!(usdt_used(&ledger, None, HOUR, T0 + 1000), U256::from(150u8));
    assert_eq!(
        usdt_used(&ledger, Some(&addr(2)), HOUR, T0 + 1000),
        U256::from(150u8)
    );
    assert_eq!(
        usdt_used(&ledger, Some(&addr(3)), HOUR, T0 + 1000),
        U256::ZERO
    );
    let g = ledger.state();
    match g.find_txid(&txid(1)).unwrap() {
        Some(Lookup::Committed(e)) => {
            assert_eq!(e.signature, sig(1));
            assert_eq!(e.audit_seq, 1);
            assert_eq!(e.pending, pending(1, 100, "p1", T0, T0 + 60_000));
        }
        other => panic!("expected committed entry, got {other:?}"),
    }
    assert_eq!(g.find_txid(&txid(3)).unwrap(), None);
    // The same txid cannot be counted twice.
    let mut g = g;
    let dup = g.reserve(pending(1, 100, "p1", T0, T0 + 60_000));
    assert_eq!(dup.err().map(|e| e.code()), Some("ledger_duplicate_txid"));
    assert_eq!(
        g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0 + 1000),
        U256::from(150u8)
    );
    drop(g);
    // The audit chain continues where it stopped.
    assert_eq!(
        ledger.audit(rec("Evaluate", Decision::Deny, None)).await,
        Ok(3)
    );
}

#[tokio::test]
async fn old_entries_are_forgotten_recent_ones_replay_from_disk() {
    let dir = tempdir();
    {
        let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
        sign(&ledger, pending(1, 100, "p1", T0, T0 + 1000))
            .await
            .unwrap();
        sign(&ledger, pending(2, 7, "p2", T0, T0 + 10 * HOUR as i64))
            .await
            .unwrap();
    }
    // Two hours later with one hour of retention: entry 1 is outside, entry 2 is inside. But
    // at open the ledger cannot tell a signer that stood idle from a clock that jumped ahead,
    // so it judges by its latest signature (T0) and keeps both.
    let now = T0 + 2 * HOUR as i64;
    let ledger = Ledger::open(dir.path(), HOUR, now).unwrap();
    assert_eq!(ledger.state().state.live_entries(), 2);
    assert_eq!(ledger.state().latest_signed_ms(), Some(T0));
    // The next signature (whose clock the service checked) moves the ledger's time on.
    sign(&ledger, pending(3, 1, "p3", now, now + 1000))
        .await
        .unwrap();
    let g = ledger.state();
    assert_eq!(g.state.live_entries(), 2);
    assert_eq!(
        g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, now),
        U256::from(8u8)
    );
    assert_eq!(g.find_payout(&addr(1), "p1"), None);
    // Entry 1 expired more than the retention ago: forgotten (the policy refuses such a
    // transaction as expired, so it cannot be signed twice).
    assert_eq!(g.find_txid(&txid(1)).unwrap(), None);
    // Entry 2 is remembered, and its full record (signature included) is read back.
    match g.find_txid(&txid(2)).unwrap() {
        Some(Lookup::Committed(e)) => {
            assert_eq!(e.signature, sig(2));
            assert_eq!(e.pending, pending(2, 7, "p2", T0, T0 + 10 * HOUR as i64));
        }
        other => panic!("expected committed entry, got {other:?}"),
    }
    assert_eq!(g.find_txid(&txid(4)).unwrap(), None);
}

/// The latest signing time survives a restart, and a ledger written before it was stored
/// takes it from its newest entry.
#[tokio::test]
async fn latest_signing_time_is_durable() {
    let dir = tempdir();
    {
        let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
        assert_eq!(ledger.state().latest_signed_ms(), None);
        sign(&ledger, pending(1, 1, "p1", T0 + 5, T0 + 1000))
            .await
            .unwrap();
        sign(&ledger, pending(2, 1, "p2", T0 + 3, T0 + 1000))
            .await
            .unwrap();
        assert_eq!(ledger.state().latest_signed_ms(), Some(T0 + 5));
    }
    let ledger = Ledger::open(dir.path(), HOUR, T0 - 7 * HOUR as i64).unwrap();
    assert_eq!(ledger.state().latest_signed_ms(), Some(T0 + 5));
    drop(ledger);
    {
        let db = Database::open(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .remove(super::schema::META_LATEST_SIGNED)
            .unwrap();
        txn.commit().unwrap();
    }
    let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
    assert_eq!(
        ledger.state().latest_signed_ms(),
        Some(T0 + 3),
        "the newest entry's"
    );
}

#[tokio::test]
async fn prune_forgets_expired_entries_while_running() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
    sign(&ledger, pending(1, 100, "p1", T0, T0 + 1000))
        .await
        .unwrap();
    assert_eq!(ledger.state().state.live_entries(), 1);
    // A reservation two hours later prunes entry 1: txid, payout id and usage series.
    let later = T0 + 2 * HOUR as i64;
    sign(&ledger, pending(2, 5, "p2", later, later + 1000))
        .await
        .unwrap();
    let g = ledger.state();
    assert_eq!(g.state.live_entries(), 1);
    assert_eq!(g.find_txid(&txid(1)).unwrap(), None);
    assert_eq!(g.find_payout(&addr(1), "p1"), None);
    // Only entry 2's two series (key and key+destination) are left.
    assert_eq!(g.state.usage_series(), 2);
    assert_eq!(
        g.used(&addr(1), Asset::Token(addr(9)), None, 100 * HOUR, later),
        U256::from(5u8)
    );
}

/// Rewrites the `entries` table of a closed ledger.
fn tamper_entries(dir: &Path, f: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
    let db = Database::open(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut entries = txn.open_table(ENTRIES).unwrap();
        f(&mut entries);
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn an_entry_missing_or_not_matching_its_index_is_refused_at_open() {
    // Entry 1 is at sequence 1, entry 2 at sequence 2 (no other audit records).
    let signed = || async {
        let dir = tempdir();
        let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
        sign(&ledger, pending(1, 10, "p1", T0, T0 + 1000))
            .await
            .unwrap();
        sign(&ledger, pending(2, 10, "p2", T0, T0 + 2000))
            .await
            .unwrap();
        dir
    };

    let dir = signed().await;
    tamper_entries(dir.path(), |t| {
        t.remove(2).unwrap();
    });
    let err = Ledger::open(dir.path(), 24 * HOUR, T0).err().unwrap();
    assert_eq!(err.code(), "ledger_corrupt");
    assert!(
        err.to_string().contains("expiration index without entry"),
        "{err}"
    );

    // Entry 2's bytes moved under sequence 1: its audit sequence no longer matches the key.
    let dir = signed().await;
    tamper_entries(dir.path(), |t| {
        let two = t.get(2).unwrap().unwrap().value().to_vec();
        t.insert(1, two.as_slice()).unwrap();
    });
    let err = Ledger::open(dir.path(), 24 * HOUR, T0).err().unwrap();
    assert!(
        err.to_string().contains("does not match its index"),
        "{err}"
    );

    // An index row pointing at an expiration the entry does not have.
    let dir = signed().await;
    {
        let db = Database::open(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut idx = txn.open_table(BY_EXPIRATION).unwrap();
            idx.remove((T0 + 2000, 2)).unwrap();
            idx.insert((T0 + 3000, 2), ()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Ledger::open(dir.path(), 24 * HOUR, T0).err().unwrap();
    assert!(
        err.to_string().contains("does not match its index"),
        "{err}"
    );
}

#[tokio::test]
async fn a_replay_whose_entry_vanished_is_an_error_not_a_fresh_signature() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    sign(&ledger, pending(1, 10, "p1", T0, T0 + 1000))
        .await
        .unwrap();
    // Remove the row behind the running ledger's back (a second handle on the same file
    // is not possible, so go through the ledger's own database).
    {
        let txn = ledger.redb_store().db().unwrap().begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            entries.remove(1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = ledger.state().find_txid(&txid(1)).unwrap_err();
    assert_eq!(err.code(), "ledger_corrupt");
    assert!(
        err.to_string().contains("committed txid without entry"),
        "{err}"
    );

    // A row under that sequence that belongs to another txid is refused the same way.
    let other = Entry {
        pending: pending(9, 10, "p9", T0, T0 + 1000),
        signature: sig(9),
        audit_seq: 1,
    };
    {
        let txn = ledger.redb_store().db().unwrap().begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            entries.insert(1, other.encode().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = ledger.state().find_txid(&txid(1)).unwrap_err();
    assert!(err.to_string().contains("does not match its txid"), "{err}");
}

#[test]
fn an_older_schema_is_refused_by_name() {
    let dir = tempdir();
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(schema::META_SCHEMA, b"tron-signer-ledger/1".as_slice())
                .unwrap();
            // The old layout's entries table, keyed by txid.
            let old: redb::TableDefinition<&[u8; 32], &[u8]> =
                redb::TableDefinition::new("entries");
            txn.open_table(old).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = Ledger::open(dir.path(), HOUR, T0).err().unwrap();
    assert_eq!(err.code(), "ledger_corrupt");
    let msg = err.to_string();
    assert!(
        msg.contains("tron-signer-ledger/1") && msg.contains("tron-signer-ledger/2"),
        "{msg}"
    );
}

#[tokio::test]
async fn payout_in_flight_then_committed_then_superseded_after_expiry() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    let exp = T0 + 60_000;
    let res = ledger
        .state()
        .reserve(pending(1, 10, "pay-1", T0, exp))
        .unwrap();
    {
        let g = ledger.state();
        let r = g.find_payout(&addr(1), "pay-1").unwrap();
        assert_eq!((r.txid, r.expiration_ms, r.in_flight), (txid(1), exp, true));
        assert_eq!(g.find_txid(&txid(1)).unwrap(), Some(Lookup::InFlight));
        // Another key's payout ids are separate.
        assert_eq!(g.find_payout(&addr(4), "pay-1"), None);
    }
    res.commit(sig(1), rec("Sign", Decision::Allow, None))
        .await
        .unwrap();
    let r = ledger.state().find_payout(&addr(1), "pay-1").unwrap();
    assert_eq!((r.txid, r.in_flight), (txid(1), false));
    // While the first can land (expiration >= now) the service refuses a second txid: the
    // ledger reports the live one. Once expired, a new txid for the payout is allowed and wins.
    assert!(r.expiration_ms >= exp - 1);
    let later = exp + 1;
    assert!(r.expiration_ms < later);
    sign(&ledger, pending(2, 10, "pay-1", later, later + 60_000))
        .await
        .unwrap();
    let r = ledger.state().find_payout(&addr(1), "pay-1").unwrap();
    assert_eq!(r.txid, txid(2));
    drop(ledger);
    // After a restart the newest still wins.
    let ledger = Ledger::open(dir.path(), 24 * HOUR, later).unwrap();
    let r = ledger.state().find_payout(&addr(1), "pay-1").unwrap();
    assert_eq!((r.txid, r.in_flight), (txid(2), false));
}

#[tokio::test]
async fn dropped_reservation_rolls_back_everything() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    sign(&ledger, pending(1, 10, "pay-1", T0, T0 + 1000))
        .await
        .unwrap();
    let res = ledger
        .state()
        .reserve(pending(2, 5, "pay-1", T0 + 2000, T0 + 9000))
        .unwrap();
    assert_eq!(usdt_used(&ledger, None, HOUR, T0 + 2000), U256::from(15u8));
    drop(res);
    let g = ledger.state();
    assert_eq!(
        g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0 + 2000),
        U256::from(10u8)
    );
    assert_eq!(g.find_txid(&txid(2)).unwrap(), None);
    // The payout id points back at the committed transaction.
    assert_eq!(g.find_payout(&addr(1), "pay-1").unwrap().txid, txid(1));
}

#[tokio::test]
async fn reservation_dropped_while_holding_the_guard_is_rolled_back_on_next_lock() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    {
        let mut g = ledger.state();
        let res = g.reserve(pending(1, 5, "p", T0, T0 + 9000)).unwrap();
        drop(res); // must not deadlock
                   // Still counted while this guard is held: the safe direction.
        assert_eq!(
            g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0),
            U256::from(5u8)
        );
    }
    let g = ledger.state();
    assert_eq!(
        g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0),
        U256::ZERO
    );
    assert_eq!(g.find_txid(&txid(1)).unwrap(), None);
    assert_eq!(g.find_payout(&addr(1), "p"), None);
}

#[tokio::test]
async fn failed_commit_releases_nothing_and_rolls_back() {
    let dir = tempdir();
    {
        let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
        assert_eq!(
            sign(&ledger, pending(1, 10, "a", T0, T0 + 9000)).await,
            Ok(1)
        );
        ledger.fail_next_commits(1);
        let err = sign(&ledger, pending(2, 20, "b", T0, T0 + 9000))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ledger_injected_failure");
        {
            let g = ledger.state();
            assert_eq!(
                g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0),
                U256::from(10u8)
            );
            assert_eq!(g.find_txid(&txid(2)).unwrap(), None);
            assert_eq!(g.find_payout(&addr(1), "b"), None);
        }
        // An audit-only record fails the same way, and the chain does not skip a number.
        ledger.fail_next_commits(1);
        assert_eq!(
            ledger.audit(rec("Evaluate", Decision::Deny, None)).await,
            Err(LedgerError::Injected)
        );
        assert_eq!(
            sign(&ledger, pending(3, 30, "b", T0, T0 + 9000)).await,
            Ok(2)
        );
    }
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    assert_eq!(ledger.state().find_txid(&txid(2)).unwrap(), None);
    assert_eq!(usdt_used(&ledger, None, HOUR, T0), U256::from(40u8));
    drop(ledger);
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_exceed_a_limit() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    let limit = U256::from(1_000u32);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let p = pending(i, 7, &format!("p{i}"), T0, T0 + 60_000);
            let res = {
                let mut g = ledger.state();
                let used = g.used(&addr(1), Asset::Token(addr(9)), None, HOUR, T0);
                if used + p.amount > limit {
                    return false;
                }
                g.reserve(p).unwrap()
            };
            tokio::task::yield_now().await;
            res.commit(sig(i), rec("Sign", Decision::Allow, None))
                .await
                .is_ok()
        }));
    }
    let mut ok = 0u32;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1_000 / 7);
    assert_eq!(usdt_used(&ledger, None, HOUR, T0), U256::from(7 * ok));
    // Sequence numbers are contiguous across group-committed batches.
    drop(ledger);
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, ok as u64);
}

#[tokio::test]
async fn usage_window_counts_until_expiration_plus_window() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    let exp = T0 + 60_000;
    sign(&ledger, pending(1, 9, "p", T0, exp)).await.unwrap();
    let w = HOUR;
    // now - W == expiration: still counts.
    assert_eq!(usdt_used(&ledger, None, w, exp + w as i64), U256::from(9u8));
    // One ms later it does not.
    assert_eq!(usdt_used(&ledger, None, w, exp + w as i64 + 1), U256::ZERO);
    // Before signing time it counts too (expiration not passed).
    assert_eq!(usdt_used(&ledger, None, w, T0), U256::from(9u8));
    // Other asset, other key: nothing.
    let g = ledger.state();
    assert_eq!(g.used(&addr(1), Asset::Trx, None, w, T0), U256::ZERO);
    assert_eq!(
        g.used(&addr(5), Asset::Token(addr(9)), None, w, T0),
        U256::ZERO
    );
}

#[tokio::test]
async fn reserve_refuses_oversized_payout_id() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
    let long = "x".repeat(70_000);
    let err = ledger
        .state()
        .reserve(pending(1, 1, &long, T0, T0 + 1))
        .err()
        .unwrap();
    assert_eq!(err.code(), "ledger_payout_id_too_long");
    assert_eq!(usdt_used(&ledger, None, HOUR, T0), U256::ZERO);
}

#[test]
fn entry_roundtrip_and_truncation() {
    let e = Entry {
        pending: PendingEntry {
            asset: Asset::Trx,
            ..pending(3, u64::MAX, "é-payout", T0, T0 + 5)
        },
        signature: sig(3),
        audit_seq: 42,
    };
    let bytes = e.encode();
    assert_eq!(Entry::decode(&bytes).unwrap(), e);
    let token = Entry {
        pending: pending(4, 1, "", T0, T0),
        signature: sig(4),
        audit_seq: 1,
    };
    assert_eq!(Entry::decode(&token.encode()).unwrap(), token);
    for cut in 0..bytes.len() {
        assert_eq!(
            Entry::decode(&bytes[..cut]).unwrap_err().code(),
            "ledger_corrupt"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Entry::decode(&longer).is_err());
    let mut bad_tag = bytes;
    bad_tag[1 + 32 + 21] = 7;
    assert!(Entry::decode(&bad_tag).is_err());
}

// ---- audit chain tampering -------------------------------------------------------------

/// Five audit records: two signs, three denials.
async fn five_records(dir: &Path) {
    let ledger = Ledger::open(dir, HOUR, T0).unwrap();
    sign(&ledger, pending(1, 1, "a", T0, T0 + 1000))
        .await
        .unwrap();
    ledger
        .audit(rec("Sign", Decision::Deny, None))
        .await
        .unwrap();
    ledger
        .audit(rec("Evaluate", Decision::Allow, None))
        .await
        .unwrap();
    sign(&ledger, pending(2, 1, "b", T0, T0 + 1000))
        .await
        .unwrap();
    assert_eq!(
        ledger.audit(rec("Reload", Decision::Error, None)).await,
        Ok(5)
    );
}

fn tamper(dir: &Path, f: impl FnOnce(&mut redb::Table<u64, &[u8]>, &mut redb::Table<&str, &[u8]>)) {
    let db = Database::open(dir.join(DB_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut audit = txn.open_table(AUDIT).unwrap();
        let mut meta = txn.open_table(META).unwrap();
        f(&mut audit, &mut meta);
    }
    txn.commit().unwrap();
}

fn row(t: &redb::Table<u64, &[u8]>, k: u64) -> Vec<u8> {
    t.get(k).unwrap().unwrap().value().to_vec()
}

#[tokio::test]
async fn untouched_chain_verifies_and_exports() {
    let dir = tempdir();
    five_records(dir.path()).await;
    let report = Ledger::verify_audit(dir.path()).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.head_hash.len(), 64);
    let mut out = Vec::new();
    assert_eq!(Ledger::export_audit(dir.path(), &mut out).unwrap(), 5);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["sequence"], (i + 1) as u64);
    }
    assert_eq!(lines[0]["prev_hash"], hex::encode([0u8; 32]));
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert_eq!(lines[4]["hash"], report.head_hash);
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[4]["method"], "Reload");
    assert_eq!(lines[0]["intent"]["amount"], "20");
    assert_eq!(lines[0]["policy_hash"], hex::encode([7u8; 32]));
}

#[tokio::test]
async fn verify_detects_a_modified_byte() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        let mut r = row(a, 3);
        let at = r.len() - 40; // inside the last string field, before the hash
        r[at] ^= 1;
        a.insert(3, r.as_slice()).unwrap();
    });
    let err = Ledger::verify_audit(dir.path()).unwrap_err();
    assert_eq!(err, LedgerError::AuditModified { seq: 3 });
    assert_eq!(err.bad_sequence(), Some(3));
}

#[tokio::test]
async fn verify_detects_an_unparseable_record_as_modified() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        a.insert(2, &b"garbage"[..]).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditModified { seq: 2 })
    );
}

#[tokio::test]
async fn verify_detects_a_rewritten_record_with_recomputed_hash() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        let prev = row(a, 2);
        let prev_hash: [u8; 32] = prev[prev.len() - 32..].try_into().unwrap();
        let mut forged = rec("Evaluate", Decision::Allow, None);
        forged.message = "nothing to see".into();
        let (bytes, _) = seal(&forged, 3, &prev_hash);
        a.insert(3, bytes.as_slice()).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditChainBroken { seq: 4, prev: 3 })
    );
}

#[tokio::test]
async fn verify_detects_a_deleted_record() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        a.remove(3).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditDeleted { seq: 3 })
    );
}

#[tokio::test]
async fn verify_detects_deleted_first_record() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        a.remove(1).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditDeleted { seq: 1 })
    );
}

#[tokio::test]
async fn verify_detects_swapped_records() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        let (r3, r4) = (row(a, 3), row(a, 4));
        a.insert(3, r4.as_slice()).unwrap();
        a.insert(4, r3.as_slice()).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditReordered { seq: 3 })
    );
}

#[tokio::test]
async fn verify_detects_a_truncated_tail() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        a.remove(5).unwrap();
        a.remove(4).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditTruncated { seq: 4, head: 5 })
    );
    // The service refuses to append to such a chain.
    assert_eq!(
        Ledger::open(dir.path(), HOUR, T0).err().map(|e| e.code()),
        Some("ledger_head_mismatch")
    );
}

#[tokio::test]
async fn verify_detects_tail_and_head_row_removed_together() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, m| {
        a.remove(5).unwrap();
        m.remove(META_AUDIT_HEAD).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditHeadInvalid { seq: 4 })
    );
}

#[tokio::test]
async fn verify_detects_records_beyond_the_head() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |a, _| {
        let last = row(a, 5);
        let prev_hash: [u8; 32] = last[last.len() - 32..].try_into().unwrap();
        let (bytes, _) = seal(&rec("Sign", Decision::Allow, None), 6, &prev_hash);
        a.insert(6, bytes.as_slice()).unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditBeyondHead { seq: 6, head: 5 })
    );
}

#[tokio::test]
async fn verify_detects_a_forged_head_hash() {
    let dir = tempdir();
    five_records(dir.path()).await;
    tamper(dir.path(), |_, m| {
        let forged = super::schema::Head {
            seq: 5,
            hash: [1u8; 32],
        };
        m.insert(META_AUDIT_HEAD, forged.encode().as_slice())
            .unwrap();
    });
    assert_eq!(
        Ledger::verify_audit(dir.path()),
        Err(LedgerError::AuditHeadInvalid { seq: 5 })
    );
}

#[tokio::test]
async fn verify_runs_beside_an_open_ledger() {
    let dir = tempdir();
    let ledger = Ledger::open(dir.path(), HOUR, T0).unwrap();
    ledger
        .audit(rec("Sign", Decision::Deny, None))
        .await
        .unwrap();
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, 1);
    ledger
        .audit(rec("Sign", Decision::Deny, None))
        .await
        .unwrap();
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, 2);
}

#[test]
fn verify_on_a_missing_ledger_is_an_open_error() {
    let dir = tempdir();
    assert_eq!(
        Ledger::verify_audit(&dir.path().join("nope"))
            .unwrap_err()
            .code(),
        "ledger_open"
    );
}

#[tokio::test]
async fn cli_verify_and_export() {
    let dir = tempdir();
    five_records(dir.path()).await;
    let mut out = Vec::new();
    run_audit(
        AuditCommand::Verify {
            data_dir: dir.path().to_owned(),
        },
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("ok: 5 records, head "), "{text}");

    let file = dir.path().join("audit.jsonl");
    let export = AuditCommand::Export {
        data_dir: dir.path().to_owned(),
        out: file.display().to_string(),
    };
    let mut out = Vec::new();
    run_audit(export.clone(), &mut out).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 5);
    // An existing export is never overwritten.
    assert_eq!(
        run_audit(export, &mut Vec::new()).unwrap_err().code(),
        "output"
    );
    let mut stdout = Vec::new();
    run_audit(
        AuditCommand::Export {
            data_dir: dir.path().to_owned(),
            out: "-".into(),
        },
        &mut stdout,
    )
    .unwrap();
    assert_eq!(String::from_utf8(stdout).unwrap().lines().count(), 5);

    tamper(dir.path(), |a, _| {
        a.remove(2).unwrap();
    });
    let err = run_audit(
        AuditCommand::Verify {
            data_dir: dir.path().to_owned(),
        },
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.bad_sequence(), Some(2));
}

/// The ledger file is the owner's alone (callers, destinations, amounts); one left readable
/// by others is narrowed at open. Nothing in it is lost either way.
#[cfg(unix)]
#[tokio::test]
async fn ledger_file_is_private_and_a_wider_one_is_narrowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let file = dir.path().join(DB_FILE);
    let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    {
        let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
        assert_eq!(
            sign(&ledger, pending(1, 100, "p1", T0, T0 + 60_000)).await,
            Ok(1)
        );
    }
    assert_eq!(mode(), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ledger = Ledger::open(dir.path(), 24 * HOUR, T0).unwrap();
    assert_eq!(mode(), 0o600);
    let found = ledger.state().find_txid(&txid(1)).unwrap();
    match found {
        Some(Lookup::Committed(e)) => assert_eq!(e.signature, sig(1)),
        other => panic!("expected the committed entry, got {other:?}"),
    }
}

/// Three entries signed at T0 (expiring a minute later), three more three hours on, with one
/// hour of retention: the first three are past every window. The ledger is closed after.
async fn old_and_recent(dir: &Path) {
    let ledger = Ledger::open(dir, HOUR, T0).unwrap();
    for n in 1..=3 {
        sign(&ledger, pending(n, 100, &format!("p{n}"), T0, T0 + 60_000))
            .await
            .unwrap();
    }
    let later = T0 + 3 * HOUR as i64;
    for n in 4..=6 {
        sign(
            &ledger,
            pending(n, 100, &format!("p{n}"), later, later + 60_000),
        )
        .await
        .unwrap();
    }
}

fn stretch(dir: &Path, from: u64, to: u64) -> Stretch {
    read_stretch(dir, from, to, usize::MAX, usize::MAX).unwrap()
}

fn refused(r: Result<PruneReport, LedgerError>) -> String {
    match r {
        Err(LedgerError::PruneRefused { why }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn prune_removes_archived_records_past_retention_and_what_is_left_verifies() {
    let dir = tempdir();
    old_and_recent(dir.path()).await;
    let archive = stretch(dir.path(), 1, 3);

    let report = Ledger::prune_archived(dir.path(), 3, &archive.records, HOUR).unwrap();
    assert_eq!((report.from, report.through, report.entries), (1, 3, 3));
    // The archive verifies on its own and ends on the anchor the ledger keeps.
    let checked = check_stretch(&archive, 1, 3).unwrap();
    assert_eq!(checked.len(), 3);
    assert_eq!(report.anchor_hash, hex::encode(archive.records[2].hash));
    let v = Ledger::verify_audit(dir.path()).unwrap();
    assert_eq!(v.records, 3);
    assert_eq!(v.anchor, Some((3, report.anchor_hash.clone())));

    // A bundle of what is left links to the anchor; one reaching into the archive is refused.
    let rest = stretch(dir.path(), 4, 6);
    assert_eq!(hex::encode(rest.anchor), report.anchor_hash);
    check_stretch(&rest, 4, 6).unwrap();
    let err = read_stretch(dir.path(), 3, 6, usize::MAX, usize::MAX).unwrap_err();
    assert_eq!(err.code(), "audit_range", "{err}");

    // The service opens it as before: recent entries found and counted, nothing lost.
    let ledger = Ledger::open(dir.path(), HOUR, T0 + 3 * HOUR as i64).unwrap();
    assert!(matches!(
        ledger.state().find_txid(&txid(5)).unwrap(),
        Some(Lookup::Committed(_))
    ));
    assert_eq!(
        usdt_used(&ledger, None, HOUR, T0 + 3 * HOUR as i64 + 1),
        U256::from(300u64)
    );
    assert_eq!(
        sign(
            &ledger,
            pending(
                7,
                100,
                "p7",
                T0 + 4 * HOUR as i64,
                T0 + 4 * HOUR as i64 + 60_000
            )
        )
        .await,
        Ok(7)
    );
    drop(ledger);
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, 4);
}

#[tokio::test]
async fn prune_refuses_what_retention_still_needs_and_removes_nothing() {
    let dir = tempdir();
    old_and_recent(dir.path()).await;
    let archive = stretch(dir.path(), 1, 5);
    let why = refused(Ledger::prune_archived(
        dir.path(),
        4,
        &archive.records,
        HOUR,
    ));
    assert!(
        why.contains("record 4") && why.contains("at most 3"),
        "{why}"
    );
    // With four hours of retention even the oldest entries are still counted.
    let why = refused(Ledger::prune_archived(
        dir.path(),
        1,
        &archive.records,
        4 * HOUR,
    ));
    assert!(why.contains("record 1"), "{why}");
    let v = Ledger::verify_audit(dir.path()).unwrap();
    assert_eq!((v.records, v.anchor), (6, None));
}

#[tokio::test]
async fn prune_refuses_an_archive_that_misses_or_differs_from_a_record() {
    let dir = tempdir();
    old_and_recent(dir.path()).await;
    let mut archive = stretch(dir.path(), 1, 3);

    let without_two: Vec<_> = archive
        .records
        .iter()
        .filter(|r| r.sequence != 2)
        .cloned()
        .collect();
    let why = refused(Ledger::prune_archived(dir.path(), 3, &without_two, HOUR));
    assert!(why.contains("does not hold record 2"), "{why}");

    archive.records[1].canonical[10] ^= 1;
    let why = refused(Ledger::prune_archived(
        dir.path(),
        3,
        &archive.records,
        HOUR,
    ));
    assert!(why.contains("record 2 in the archive differs"), "{why}");

    // The head always stays.
    let all = stretch(dir.path(), 1, 6);
    let why = refused(Ledger::prune_archived(dir.path(), 6, &all.records, 0));
    assert!(why.contains("chain head"), "{why}");
    assert_eq!(Ledger::verify_audit(dir.path()).unwrap().records, 6);

    // Twice over the same records: the second finds them gone.
    Ledger::prune_archived(dir.path(), 2, &all.records, HOUR).unwrap();
    let why = refused(Ledger::prune_archived(dir.path(), 2, &all.records, HOUR));
    assert!(why.contains("pruned already"), "{why}");
    // And a later prune goes on from the anchor.
    let r = Ledger::prune_archived(dir.path(), 3, &all.records, HOUR).unwrap();
    assert_eq!((r.from, r.through), (3, 3));
    assert_eq!(
        Ledger::verify_audit(dir.path())
            .unwrap()
            .anchor
            .map(|a| a.0),
        Some(3)
    );
}

#[tokio::test]
async fn prune_refuses_while_the_ledger_is_open() {
    let dir = tempdir();
    old_and_recent(dir.path()).await;
    let archive = stretch(dir.path(), 1, 3);
    let ledger = Ledger::open(dir.path(), HOUR, T0 + 3 * HOUR as i64).unwrap();
    let why = refused(Ledger::prune_archived(
        dir.path(),
        3,
        &archive.records,
        HOUR,
    ));
    assert!(why.contains("stop it first"), "{why}");
    drop(ledger);
}
