//! Two real `tron-signer serve` processes on one real PostgreSQL ledger (issue 16): limits
//! exact across both, one signature per txid, a killed instance, a restarted database, and
//! the schema's migrations. The cluster is private to each test (`tron_testkit::postgres`:
//! initdb in /tmp, a Unix socket, no TCP) and removed after it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use tonic::Code;
use tron_proto::signer::signer_client::SignerClient;
use tron_proto::signer::SignRequest;
use tron_testkit::postgres::Cluster;

const TRX: u64 = 1_000_000;
const URL_VAR: &str = "TRON_SIGNER_TEST_PG_URL";

fn dest_a() -> tron_proto::Address {
    dest(0xa1)
}
fn dest_b() -> tron_proto::Address {
    dest(0xb2)
}

/// TRX: 1000 per hour for the key; destination A at most 300 per day.
fn policy() -> String {
    policy_with("300")
}

/// [`policy`] with destination A's daily window (and per-transaction cap) at `dest_max` TRX.
fn policy_with(dest_max: &str) -> String {
    PolicyText::new("ha test policy")
        .key(
            Key::new(KEY1, "hot 1", &["TRX"])
                .window("TRX", "1h", "1000")
                .destination(
                    Destination::new(dest_a(), "exchange", &["TRX"])
                        .per_tx_max("TRX", dest_max)
                        .window("TRX", "24h", dest_max),
                )
                .destination(
                    Destination::new(dest_b(), "treasury", &["TRX"]).per_tx_max("TRX", "100"),
                ),
        )
        .text()
}

/// A signer's directory whose config puts its ledger in database `db` of `pg`.
fn instance(pg: &Cluster, db: &str) -> Setup {
    instance_with(pg, db, &policy())
}

/// [`instance`] with its own policy text.
fn instance_with(pg: &Cluster, db: &str, policy: &str) -> Setup {
    let mut s = Setup::new(&[("hot 1", KEY1_SECRET)], policy);
    // On the run with every setup on a cluster of its own: this test's cluster instead.
    s.pg = None;
    s.env.retain(|(k, _)| k != URL_VAR);
    s.write_config(&format!(
        "{}[ledger]\npostgres = {{ url = {{ env = \"{URL_VAR}\" }}, pool_size = 8 }}\n",
        s.keystore_section()
    ));
    s.env.push((URL_VAR.into(), pg.url(db)));
    s
}

/// `audit <verb> --postgres-url-env` with the real binary; returns stdout, panics on failure.
fn audit(s: &Setup, verb: &str) -> String {
    let out = s.run(&["audit", verb, "--postgres-url-env", URL_VAR]);
    assert!(
        out.status.success(),
        "audit {verb}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The exported records, parsed.
fn records(s: &Setup) -> Vec<serde_json::Value> {
    audit(s, "export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

/// What came back for one request: the txid and signature, or the refusal's reason code.
type Outcome = Result<(Vec<u8>, Vec<u8>), (Code, String)>;

/// Sends every request at once, spread over `clients` in turn; outcomes in request order.
async fn hammer(
    clients: &[SignerClient<tonic::transport::Channel>],
    reqs: Vec<SignRequest>,
) -> Vec<Outcome> {
    let mut tasks = Vec::new();
    for (i, req) in reqs.into_iter().enumerate() {
        let mut c = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            match c.sign(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    Ok((r.txid, r.signature))
                }
                Err(st) => Err((st.code(), reason(&st))),
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

/// How many requests got each answer ("signed" or the reason code): short enough to print.
fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for o in outcomes {
        let k = match o {
            Ok(_) => "signed".to_owned(),
            Err((code, reason)) => format!("{code:?}/{reason}"),
        };
        *t.entry(k).or_default() += 1;
    }
    t
}

fn count_ok(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| o.is_ok()).count()
}

/// Every refusal is the expected limit's code.
fn refused_only_with(outcomes: &[Outcome], code: &str) {
    for o in outcomes {
        if let Err((_, c)) = o {
            assert_eq!(c, code, "{:?}", tally(outcomes));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_signers_sign_exactly_the_limit_and_one_signature_per_txid() {
    let pg = Cluster::start();
    pg.create_db("ha");
    let a = instance(&pg, "ha");
    let b = instance(&pg, "ha");
    let sa = a.start().await;
    let sb = b.start().await;
    let clients = [sa.client.clone(), sb.client.clone()];

    // Destination A's window: 300 per day, 11 each: 27 fit (297), never a 28th.
    let reqs: Vec<SignRequest> = (0..90u16)
        .map(|i| {
            request(
                KEY1,
                Tx::trx(KEY1, dest_a(), 11 * TRX).nonce(i).raw(),
                &format!("a-{i}"),
            )
        })
        .collect();
    let out = hammer(&clients, reqs).await;
    assert_eq!(count_ok(&out), 27, "{:?}", tally(&out));
    refused_only_with(&out, "over_destination_window");
    // Both instances signed some: the limit was shared, not each instance's own.
    let by_a = out.iter().step_by(2).filter(|o| o.is_ok()).count();
    assert!(by_a > 0 && by_a < 27, "instance A signed {by_a} of 27");

    // The key's window: 1000 per hour, 297 used; 7 each to B: 100 more fit (700), no more.
    let reqs: Vec<SignRequest> = (0..160u16)
        .map(|i| {
            request(
                KEY1,
                Tx::trx(KEY1, dest_b(), 7 * TRX).nonce(1000 + i).raw(),
                &format!("b-{i}"),
            )
        })
        .collect();
    let out = hammer(&clients, reqs).await;
    assert_eq!(count_ok(&out), 100, "{:?}", tally(&out));
    refused_only_with(&out, "over_key_window");

    srv_done(sa, sb, &a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn windows_of_several_sizes_are_exact_to_the_base_unit_across_signers() {
    let pg = Cluster::start();
    // (destination A's window in TRX, each payout in sun, how many fit)
    let cases = [
        ("0.0001", 7u64, 14usize),
        ("50", 3 * TRX, 16),
        ("77", 13 * TRX, 5),
    ];
    for (i, (max, each, fit)) in cases.into_iter().enumerate() {
        let db = format!("w{i}");
        pg.create_db(&db);
        let text = policy_with(max);
        let (a, b) = (
            instance_with(&pg, &db, &text),
            instance_with(&pg, &db, &text),
        );
        let (sa, sb) = (a.start().await, b.start().await);
        let clients = [sa.client.clone(), sb.client.clone()];
        let reqs: Vec<SignRequest> = (0..(3 * fit as u16 + 6))
            .map(|n| {
                let raw = Tx::trx(KEY1, dest_a(), each).nonce(n).raw();
                request(KEY1, raw, &format!("w{i}-{n}"))
            })
            .collect();
        let out = hammer(&clients, reqs).await;
        assert_eq!(
            count_ok(&out),
            fit,
            "window {max}, {each} sun each: {:?}",
            tally(&out)
        );
        refused_only_with(&out, "over_destination_window");
        srv_done(sa, sb, &a);
    }
}

/// Stops both servers and checks the shared chain with the real `audit verify`.
fn srv_done(sa: Server, sb: Server, s: &Setup) {
    sa.stop();
    sb.stop();
    let v = audit(s, "verify");
    assert!(v.starts_with("ok: "), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_txid_or_payout_id_on_both_signers_signs_once() {
    let pg = Cluster::start();
    pg.create_db("ha");
    let a = instance(&pg, "ha");
    let b = instance(&pg, "ha");
    let sa = a.start().await;
    let sb = b.start().await;
    let clients = [sa.client.clone(), sb.client.clone()];

    // The same bytes to both, at once, 30 times over: one txid, one signature. A loser
    // either gets the same signature back or is told the txid is in flight (and retries).
    let mut signatures: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for i in 0..30u16 {
        let raw = Tx::trx(KEY1, dest_b(), TRX).nonce(i).raw();
        let reqs = vec![
            request(KEY1, raw.clone(), &format!("same-{i}")),
            request(KEY1, raw, &format!("same-{i}")),
        ];
        let out = hammer(&clients, reqs).await;
        assert!(count_ok(&out) >= 1, "{:?}", tally(&out));
        for o in &out {
            match o {
                Ok((txid, sig)) => {
                    signatures
                        .entry(txid.clone())
                        .or_default()
                        .insert(sig.clone());
                }
                Err((code, reason)) => {
                    assert_eq!(
                        (*code, reason.as_str()),
                        (Code::Unavailable, "txid_in_flight")
                    )
                }
            }
        }
    }
    assert_eq!(signatures.len(), 30);
    for (txid, sigs) in &signatures {
        assert_eq!(
            sigs.len(),
            1,
            "txid {} got {} signatures",
            hex::encode(txid),
            sigs.len()
        );
    }

    // One payout id, a different transaction on each signer: exactly one is signed.
    for i in 0..30u16 {
        let reqs = vec![
            request(
                KEY1,
                Tx::trx(KEY1, dest_b(), TRX).nonce(500 + i).raw(),
                &format!("p-{i}"),
            ),
            request(
                KEY1,
                Tx::trx(KEY1, dest_b(), TRX).nonce(600 + i).raw(),
                &format!("p-{i}"),
            ),
        ];
        let out = hammer(&clients, reqs).await;
        assert_eq!(count_ok(&out), 1, "payout p-{i}: {:?}", tally(&out));
        refused_only_with(&out, "payout_in_flight");
    }

    // Every signature either instance released is in the one chain, once.
    let signed: Vec<String> = records(&a)
        .into_iter()
        .filter(|r| r["reason_code"] == "signed")
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(signed.len(), 60, "30 txids and 30 payouts signed once each");
    let unique: BTreeSet<&String> = signed.iter().collect();
    assert_eq!(unique.len(), 60);
    for txid in signatures.keys() {
        assert!(unique.contains(&hex::encode(txid)));
    }
    srv_done(sa, sb, &b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_signer_loses_nothing_and_the_other_keeps_serving() {
    let pg = Cluster::start();
    pg.create_db("ha");
    let a = instance(&pg, "ha");
    let b = instance(&pg, "ha");
    let mut sa = a.start().await;
    let sb = b.start().await;

    // Load on both; A is killed with SIGKILL while its requests are in flight.
    let mut tasks = Vec::new();
    for i in 0..120u16 {
        let mut c = if i % 2 == 0 {
            sa.client.clone()
        } else {
            sb.client.clone()
        };
        tasks.push(tokio::spawn(async move {
            let raw = Tx::trx(KEY1, dest_b(), TRX).nonce(i).raw();
            (
                i % 2 == 0,
                c.sign(request(KEY1, raw, &format!("k-{i}"))).await,
            )
        }));
        if i == 60 {
            sa.child.kill().expect("SIGKILL");
        }
    }
    let mut released = BTreeSet::new();
    let mut b_ok = 0;
    for t in tasks {
        let (on_a, r) = t.await.expect("task");
        if let Ok(r) = r {
            released.insert(hex::encode(r.into_inner().txid));
            if !on_a {
                b_ok += 1;
            }
        }
    }
    let _ = sa.child.wait();
    assert_eq!(b_ok, 60, "every request to the surviving signer was signed");
    // And it keeps serving after the kill.
    let mut c = sb.client.clone();
    c.sign(request(
        KEY1,
        Tx::trx(KEY1, dest_b(), TRX).nonce(9999).raw(),
        "after",
    ))
    .await
    .expect("the survivor signs after the kill");

    let v = audit(&b, "verify");
    assert!(v.starts_with("ok: "), "{v}");
    let in_ledger: BTreeSet<String> = records(&b)
        .into_iter()
        .filter(|r| r["reason_code"] == "signed")
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    for txid in &released {
        assert!(
            in_ledger.contains(txid),
            "released {txid} is not in the ledger"
        );
    }
    sb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_down_refuses_with_a_reason_and_recovers_without_a_restart() {
    let pg = Cluster::start();
    pg.create_db("ha");
    let a = instance(&pg, "ha");
    let mut sa = a.start().await;
    let mut n = 0u16;
    let mut next = |client: &mut SignerClient<tonic::transport::Channel>| {
        n += 1;
        let req = request(
            KEY1,
            Tx::trx(KEY1, dest_b(), TRX).nonce(n).raw(),
            &format!("r-{n}"),
        );
        let mut c = client.clone();
        async move { c.sign(req).await }
    };
    next(&mut sa.client).await.expect("signs before");

    // Load all along: 8 clients signing fresh transactions until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(10_000));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, counter, mut c) = (stop.clone(), counter.clone(), sa.client.clone());
        load.push(tokio::spawn(async move {
            let (mut released, mut refused) = (Vec::new(), BTreeMap::<String, usize>::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let raw = Tx::trx(KEY1, dest_b(), TRX).nonce(i).raw();
                match c.sign(request(KEY1, raw, &format!("l-{i}"))).await {
                    Ok(r) => released.push(hex::encode(r.into_inner().txid)),
                    Err(st) => *refused.entry(reason(&st)).or_default() += 1,
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (released, refused)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    pg.stop("immediate");
    for _ in 0..3 {
        let st = next(&mut sa.client)
            .await
            .expect_err("no ledger, no signature");
        assert_eq!(st.code(), Code::Unavailable, "{st:?}");
        assert_eq!(reason(&st), "ledger_unavailable", "{st:?}");
    }
    assert!(
        wait_for_health(&a.endpoint(), ServingStatus::NotServing).await,
        "health NOT_SERVING while the database is down"
    );
    pg.start_again();
    // Recovery needs no restart: within a few seconds the same process signs again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match next(&mut sa.client).await {
            Ok(_) => break,
            Err(st) => {
                assert_eq!(reason(&st), "ledger_unavailable", "{st:?}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "did not recover: {st:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    assert!(
        wait_for_health(&a.endpoint(), ServingStatus::Serving).await,
        "SERVING again without a restart"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut released, mut refused) = (BTreeSet::new(), BTreeMap::<String, usize>::new());
    for t in load {
        let (r, f) = t.await.expect("load task");
        released.extend(r);
        for (k, v) in f {
            *refused.entry(k).or_default() += v;
        }
    }
    // Signed before and after the outage, refused only for the ledger during it.
    assert!(released.len() > 20, "{} released", released.len());
    assert!(
        refused.get("ledger_unavailable").is_some_and(|n| *n > 0),
        "{refused:?}"
    );
    assert_eq!(refused.len(), 1, "only ledger_unavailable: {refused:?}");
    assert!(
        sa.child.try_wait().expect("wait").is_none(),
        "the signer kept running"
    );
    sa.stop();
    let v = audit(&a, "verify");
    assert!(v.starts_with("ok: "), "{v}");
    // Every signature the load got is in the chain: none left without its commit.
    let signed: BTreeSet<String> = records(&a)
        .into_iter()
        .filter(|r| r["reason_code"] == "signed")
        .filter_map(|r| r["txid"].as_str().map(str::to_owned))
        .collect();
    for txid in &released {
        assert!(
            signed.contains(txid),
            "released {txid} is not in the ledger"
        );
    }
}

#[test]
fn an_empty_database_is_migrated_and_a_newer_schema_is_refused() {
    let pg = Cluster::start();
    pg.create_db("fresh");
    let s = instance(&pg, "fresh");
    // `audit verify` on a database no signer has migrated yet: nothing to verify.
    let out = s.run(&["audit", "verify", "--postgres-url-env", URL_VAR]);
    assert!(!out.status.success());

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_rt = rt.enter();
    let srv = rt.block_on(s.start());
    assert_eq!(
        pg.psql("fresh", "SELECT max(version) FROM ledger_migrations"),
        "1"
    );
    srv.stop();
    let v = audit(&s, "verify");
    assert!(v.starts_with("ok: "), "{v}");

    // A database migrated by a newer signer is refused, not written to.
    pg.psql(
        "fresh",
        "INSERT INTO ledger_migrations (version) VALUES (2)",
    );
    let (status, log) = s.serve_until_exit();
    assert!(!status.success());
    assert!(
        log.contains("ledger_open") && log.contains("schema is at version 2"),
        "{log}"
    );
}

/// The hash of the policy `srv` has in force.
async fn policy_hash(srv: &mut Server) -> String {
    srv.client
        .get_policy(tron_proto::signer::GetPolicyRequest {})
        .await
        .expect("GetPolicy")
        .into_inner()
        .hash
}

/// Sends SIGHUP and waits until the policy in force is no longer `before`.
async fn reload(srv: &mut Server, before: &str) {
    srv.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while policy_hash(srv).await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "reload not taken: {}",
            srv.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_put_in_force_by_one_signer_stops_the_other_until_it_reloads() {
    let pg = Cluster::start();
    pg.create_db("ha");
    let a = instance(&pg, "ha");
    let b = instance(&pg, "ha");
    let mut sa = a.start().await;
    let mut sb = b.start().await;
    let sign = |srv: &Server, n: u16| {
        let mut c = srv.client.clone();
        let req = request(
            KEY1,
            Tx::trx(KEY1, dest_b(), TRX).nonce(n).raw(),
            &format!("r-{n}"),
        );
        async move { c.sign(req).await }
    };
    sign(&sb, 1).await.expect("both on the same policy");

    // Revision 1 in force on both; revision 2 then goes into force on A only.
    let revised = |n: u32| format!("revision = {n}\n{}", policy());
    for (s, srv) in [(&a, &mut sa), (&b, &mut sb)] {
        std::fs::write(&s.policy, revised(1)).unwrap();
        let before = policy_hash(srv).await;
        reload(srv, &before).await;
    }
    let newer = revised(2);
    std::fs::write(&a.policy, &newer).unwrap();
    let old = policy_hash(&mut sa).await;
    reload(&mut sa, &old).await;
    let new = policy_hash(&mut sa).await;
    sign(&sa, 2).await.expect("A signs under the new policy");
    let st = sign(&sb, 3)
        .await
        .expect_err("B still holds the old policy");
    assert_eq!(
        (st.code(), reason(&st).as_str()),
        (Code::Unavailable, "policy_not_current"),
        "{st:?}"
    );
    assert!(st.message().contains(&new), "{}", st.message());

    // Reloaded with the policy in force, B signs again.
    std::fs::write(&b.policy, &newer).unwrap();
    reload(&mut sb, &old).await;
    sign(&sb, 4).await.expect("B signs after its reload");

    // B cannot put revision 1 back in force for everyone.
    std::fs::write(&b.policy, revised(1)).unwrap();
    sb.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(policy_hash(&mut sb).await, new, "revision 1 was refused");
    sign(&sa, 5)
        .await
        .expect("A is not stopped by B's refused reload");
    srv_done(sa, sb, &a);
}
