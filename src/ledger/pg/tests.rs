//! The shared ledger with two handles on one real PostgreSQL database, as two signer
//! instances would hold it: usage and txids seen by both, abandoned and expired reservations,
//! a commit after its lease, a database behind a signer, and the chain checks on PostgreSQL.

use std::time::Duration;

use tron_proto::U256;
use tron_testkit::postgres::Cluster;

use super::super::tests::{pending, rec, sig, txid, HOUR, T0};
use super::super::{Decision, Ledger, LedgerError, Lookup, PendingEntry};
use crate::decode::Asset;
use crate::test_util::addr;

const NOW: i64 = T0 + 1_000;
const EXPIRES: i64 = T0 + HOUR as i64;

fn open(pg: &Cluster, db: &str, dir: &tempfile::TempDir, lease: Duration) -> Ledger {
    Ledger::open_postgres_leased(&pg.url(db), 4, dir.path(), 48 * HOUR, lease).unwrap()
}

fn cluster(db: &str) -> Cluster {
    let pg = Cluster::start();
    pg.create_db(db);
    pg
}

fn usdt_used(l: &Ledger, turn: &super::super::KeyTurn) -> U256 {
    l.state_in(turn)
        .used(&addr(1), Asset::Token(addr(9)), None, HOUR, NOW)
}

/// What key 1's usage is on `l`, as a fresh turn sees it.
async fn used_now(l: &Ledger) -> U256 {
    let turn = l.turn(&addr(1), &txid(0), NOW).await.unwrap();
    let used = usdt_used(l, &turn);
    turn.finish().await.unwrap();
    used
}

/// The service's sequence: turn, reserve, publish; the reservation is returned uncommitted.
async fn reserve(l: &Ledger, p: PendingEntry) -> Result<super::super::Reservation, LedgerError> {
    let turn = l.turn(&p.key, &p.txid, NOW).await?;
    let mut r = l.state_in(&turn).reserve(p)?;
    turn.publish(&mut r).await?;
    Ok(r)
}

async fn sign(l: &Ledger, n: u32, amount: u64, payout: &str) -> Result<u64, LedgerError> {
    let r = reserve(l, pending(n, amount, payout, NOW, EXPIRES)).await?;
    r.commit(
        sig(n),
        rec("Sign", Decision::Allow, Some(hex::encode(txid(n)))),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_share_usage_txids_and_payout_ids() {
    let pg = cluster("share");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l1 = open(&pg, "share", &d1, super::LEASE);
    let l2 = open(&pg, "share", &d2, super::LEASE);

    sign(&l1, 1, 10, "p1").await.unwrap();
    assert_eq!(used_now(&l2).await, U256::from(10u64));

    // The txid signed on one is a replay on the other, with the same signature.
    let turn = l2.turn(&addr(1), &txid(1), NOW).await.unwrap();
    match l2.state_in(&turn).find_txid(&txid(1)).unwrap() {
        Some(Lookup::Committed(e)) => assert_eq!(e.signature, sig(1)),
        other => panic!("{other:?}"),
    }
    // And its payout id is taken there too.
    assert_eq!(
        l2.state_in(&turn)
            .find_payout(&addr(1), "p1")
            .map(|p| p.txid),
        Some(txid(1))
    );
    turn.finish().await.unwrap();

    // A reservation on one is in flight on the other, and counts.
    let r = reserve(&l2, pending(2, 5, "p2", NOW, EXPIRES))
        .await
        .unwrap();
    let turn = l1.turn(&addr(1), &txid(2), NOW).await.unwrap();
    assert_eq!(
        l1.state_in(&turn).find_txid(&txid(2)).unwrap(),
        Some(Lookup::InFlight)
    );
    assert_eq!(usdt_used(&l1, &turn), U256::from(15u64));
    turn.finish().await.unwrap();
    r.commit(sig(2), rec("Sign", Decision::Allow, None))
        .await
        .unwrap();
    assert_eq!(used_now(&l1).await, U256::from(15u64));

    // Reserving a txid the other holds fails on the database's constraint too, even
    // past the state's check (as if the state had missed it).
    let p = pending(2, 5, "p2", NOW, EXPIRES);
    let turn = l1.turn(&addr(1), &txid(99), NOW).await.unwrap();
    let e = turn
        .publish_entry_for_test(&p)
        .await
        .expect_err("a signed txid is not reserved again");
    assert!(matches!(e, LedgerError::Duplicate { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_reservation_stops_counting_everywhere_at_once() {
    let pg = cluster("abandon");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l1 = open(&pg, "abandon", &d1, super::LEASE);
    let l2 = open(&pg, "abandon", &d2, super::LEASE);
    let r = reserve(&l1, pending(3, 40, "p3", NOW, EXPIRES))
        .await
        .unwrap();
    assert_eq!(used_now(&l2).await, U256::from(40u64));
    // The key failed to sign: the reservation is dropped. Well within the 30 s lease, the
    // other handle no longer counts it.
    drop(r);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while used_now(&l2).await != U256::ZERO {
        assert!(
            std::time::Instant::now() < deadline,
            "still counted on the other signer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pg.psql("abandon", "SELECT state FROM entries"),
        "void",
        "voided in the database"
    );
    // And the same txid can be signed again (on either).
    sign(&l2, 3, 40, "p3").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_given_up_is_not_in_flight_for_its_own_retry() {
    let pg = cluster("retry");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l1 = open(&pg, "retry", &d1, super::LEASE);
    let l2 = open(&pg, "retry", &d2, super::LEASE);
    // The key fails to sign and the client retries the same bytes at once, before the
    // writer has voided the given-up row (it does so within a second): each retry's turn
    // reads that row back and must not take it for another signer's reservation.
    for attempt in 0..3 {
        let r = reserve(&l1, pending(5, 25, "p5", NOW, EXPIRES))
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        drop(r);
        let turn = l1.turn(&addr(1), &txid(5), NOW).await.unwrap();
        assert_eq!(
            l1.state_in(&turn).find_txid(&txid(5)).unwrap(),
            None,
            "attempt {attempt}: its own given-up reservation is not in flight"
        );
        assert_eq!(usdt_used(&l1, &turn), U256::ZERO, "attempt {attempt}");
        turn.finish().await.unwrap();
    }
    // The retry that signs counts once, here and on the other signer.
    sign(&l1, 5, 25, "p5").await.unwrap();
    assert_eq!(used_now(&l1).await, U256::from(25u64));
    assert_eq!(used_now(&l2).await, U256::from(25u64));
    // The writer's late void of the given-up attempts leaves the signed row alone.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(pg.psql("retry", "SELECT state FROM entries"), "signed");
    assert_eq!(used_now(&l2).await, U256::from(25u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_signers_reservation_ends_with_its_lease_and_cannot_be_committed_after() {
    let pg = cluster("lease");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let lease = Duration::from_millis(800);
    let l1 = open(&pg, "lease", &d1, lease);
    let l2 = open(&pg, "lease", &d2, lease);
    let r = reserve(&l1, pending(4, 70, "p4", NOW, EXPIRES))
        .await
        .unwrap();
    assert_eq!(used_now(&l2).await, U256::from(70u64));
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    // The next turn on the key voids it: it no longer counts...
    assert_eq!(used_now(&l2).await, U256::ZERO);
    // ...so its signature must never be recorded or released.
    let e = r
        .commit(sig(4), rec("Sign", Decision::Allow, None))
        .await
        .expect_err("a commit after the lease ended fails");
    assert!(e.to_string().contains("voided after their lease"), "{e}");
    assert_eq!(used_now(&l1).await, U256::ZERO);
    assert_eq!(pg.psql("lease", "SELECT count(*) FROM audit"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_behind_what_a_signer_saw_is_refused() {
    let pg = cluster("behind");
    let d1 = tempfile::tempdir().unwrap();
    let l1 = open(&pg, "behind", &d1, super::LEASE);
    sign(&l1, 5, 1, "p5").await.unwrap();
    sign(&l1, 6, 1, "p6").await.unwrap();
    let _ = used_now(&l1).await;
    pg.psql("behind", "UPDATE key_versions SET kver = 1");
    let e = l1
        .turn(&addr(1), &txid(7), NOW)
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, LedgerError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("restored from a backup"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_on_postgres_verifies_and_names_a_tampered_record() {
    let pg = cluster("chain");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l1 = open(&pg, "chain", &d1, super::LEASE);
    let l2 = open(&pg, "chain", &d2, super::LEASE);
    // Both append to the one chain, interleaved.
    for n in 10..20u32 {
        let l = if n % 2 == 0 { &l1 } else { &l2 };
        sign(l, n, 1, &format!("c{n}")).await.unwrap();
        l.audit(rec("Evaluate", Decision::Deny, None))
            .await
            .unwrap();
    }
    let url = pg.url("chain");
    let report = Ledger::verify_audit_postgres(&url).unwrap();
    assert_eq!(report.records, 20);
    let mut out = Vec::new();
    assert_eq!(Ledger::export_audit_postgres(&url, &mut out).unwrap(), 20);

    // A changed byte in record 7, then record 12 gone.
    pg.psql(
        "chain",
        "UPDATE audit SET row = overlay(row placing '\\x00'::bytea from 40 for 1) WHERE seq = 7",
    );
    let e = Ledger::verify_audit_postgres(&url).unwrap_err();
    assert_eq!(
        (e.code(), e.bad_sequence()),
        ("audit_modified", Some(7)),
        "{e}"
    );
    pg.psql("chain", "DELETE FROM audit WHERE seq IN (7, 12)");
    let e = Ledger::verify_audit_postgres(&url).unwrap_err();
    assert_eq!(
        (e.code(), e.bad_sequence()),
        ("audit_deleted", Some(7)),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_reservation_cannot_commit_over_the_same_txid_reserved_again() {
    let pg = cluster("stale");
    let d1 = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(800);
    let l1 = open(&pg, "stale", &d1, lease);
    let first = reserve(&l1, pending(8, 30, "p8", NOW, EXPIRES))
        .await
        .unwrap();
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    // The lease ended (the key was slow); the client retried the same bytes.
    let second = reserve(&l1, pending(8, 30, "p8", NOW, EXPIRES))
        .await
        .unwrap();
    let e = first
        .commit(sig(8), rec("Sign", Decision::Allow, None))
        .await
        .expect_err("the first reservation is void");
    assert!(e.to_string().contains("no longer held"), "{e}");
    // Its failure did not undo the second, which still counts and commits.
    assert_eq!(used_now(&l1).await, U256::from(30u64));
    second
        .commit(sig(80), rec("Sign", Decision::Allow, None))
        .await
        .unwrap();
    let turn = l1.turn(&addr(1), &txid(8), NOW).await.unwrap();
    match l1.state_in(&turn).find_txid(&txid(8)).unwrap() {
        Some(Lookup::Committed(e)) => assert_eq!(e.signature, sig(80)),
        other => panic!("{other:?}"),
    }
    turn.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezes_and_policies_from_two_signers_never_overwrite_each_other() {
    use super::super::PolicyMark;
    let pg = cluster("meta");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let l1 = open(&pg, "meta", &d1, super::LEASE);
    let l2 = open(&pg, "meta", &d2, super::LEASE);
    let mark = |revision, h| PolicyMark {
        revision,
        hash: [h; 32],
    };
    l1.put_policy(rec("Reload", Decision::Allow, None), mark(2, 1))
        .await
        .unwrap();
    // Another signer may put the same policy in force again, or a higher revision...
    l2.put_policy(rec("Reload", Decision::Allow, None), mark(2, 1))
        .await
        .unwrap();
    // ...never a lower one, nor another policy of the same revision.
    for m in [mark(1, 3), mark(2, 4)] {
        let e = l2
            .put_policy(rec("Reload", Decision::Allow, None), m)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "ledger_conflict", "{e}");
    }
    let turn = l2.turn(&addr(1), &txid(0), NOW).await.unwrap();
    assert_eq!(
        turn.recorded().and_then(|r| r.policy_mark),
        Some(mark(2, 1))
    );
    turn.finish().await.unwrap();

    // Two freezes made from the same set: the second is refused, not lost.
    l1.put_freeze(
        rec("Freeze", Decision::Allow, None),
        b"set-a".to_vec(),
        None,
    )
    .await
    .unwrap();
    let e = l2
        .put_freeze(
            rec("Freeze", Decision::Allow, None),
            b"set-b".to_vec(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ledger_conflict", "{e}");
    // Made from the set recorded now, it is recorded, and every signer's turn sees it.
    l2.put_freeze(
        rec("Freeze", Decision::Allow, None),
        b"set-a+b".to_vec(),
        Some(b"set-a".to_vec()),
    )
    .await
    .unwrap();
    let now = l1.recorded_now().await.unwrap().unwrap();
    assert_eq!(now.freezes.as_deref(), Some(&b"set-a+b"[..]));
    // A new policy lifts them for everyone.
    l1.put_policy(rec("Reload", Decision::Allow, None), mark(3, 5))
        .await
        .unwrap();
    let turn = l2.turn(&addr(1), &txid(0), NOW).await.unwrap();
    assert_eq!(turn.recorded().and_then(|r| r.freezes.clone()), None);
    turn.finish().await.unwrap();
    // The refused changes are not in the chain; the accepted ones are, and it verifies.
    let report = Ledger::verify_audit_postgres(&pg.url("meta")).unwrap();
    assert_eq!(report.records, 5);
}
