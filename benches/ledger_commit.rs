//! Committed ledger entries per second, fsync on: group commit under 64 concurrent submitters
//! against one-at-a-time commits, beside the raw primitive (one fsynced redb transaction
//! holding one row) measured in the same run.
//!
//! After the measurements it prints the ratios recorded in BENCHMARKS.md.

mod common;
use common::read_mean_ns;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use redb::{Database, Durability, TableDefinition};
use tron_proto::{Address, U256};
use tron_signer::decode::Asset;
use tron_signer::ledger::{AuditRecord, Decision, Ledger, PendingEntry};

const T0: i64 = 1_795_000_000_000;
const DAY: u64 = 86_400_000;
const CONCURRENCY: [u64; 2] = [64, 256];
const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");

fn entry(n: u32) -> PendingEntry {
    let mut txid = [0x3cu8; 32];
    txid[..4].copy_from_slice(&n.to_be_bytes());
    PendingEntry {
        txid,
        key: Address::from_evm([0x94; 20]),
        asset: Asset::Token(Address::from_evm([0x11; 20])),
        destination: Address::from_evm([0xa6; 20]),
        amount: U256::new(20_000_000),
        payout_id: format!("payout-{n}"),
        expiration_ms: T0 + 60_000,
        signed_at_ms: T0,
        policy_hash: [7; 32],
    }
}

fn record(n: u32) -> AuditRecord {
    AuditRecord {
        time_ms: T0,
        caller: "bench".into(),
        identity: "unix_uid=0".into(),
        peer: "unix:uid=0,gid=0,pid=1".into(),
        method: "Sign".into(),
        key: Some("TPbench".into()),
        txid: Some(format!("{n:064x}")),
        payout_id: Some(format!("payout-{n}")),
        intent: Some(
            serde_json::json!({"asset": "USDT", "amount": "20", "to": "TXbench"}).to_string(),
        ),
        decision: Decision::Allow,
        reason_code: "ok".into(),
        message: "allowed by rule usdt-hot".into(),
        policy_hash: "07".repeat(32),
        approvals: None,
        deposit_index: None,
    }
}

async fn sign_one(ledger: &Ledger, n: u32) {
    let res = {
        let mut g = ledger.state();
        let _ = g.used(
            &Address::from_evm([0x94; 20]),
            Asset::Token(Address::from_evm([0x11; 20])),
            None,
            DAY,
            T0,
        );
        g.reserve(entry(n)).expect("reserve")
    };
    res.commit([0x5a; 65], record(n)).await.expect("commit");
}

fn bench_dir(name: &str) -> PathBuf {
    // On the real disk (not a tmpfs) so that fsync costs what it costs.
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = base.join("ledger-bench").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));

    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));

    let raw_dir = bench_dir("raw");
    let raw_db = Database::create(raw_dir.join("raw.redb")).expect("raw db");
    let payload = vec![0x42u8; 400];
    let mut raw_key = 0u64;
    g.bench_function("raw_redb_fsync_commit", |b| {
        b.iter(|| {
            raw_key += 1;
            let mut txn = raw_db.begin_write().expect("begin");
            txn.set_durability(Durability::Immediate)
                .expect("durability");
            {
                let mut t = txn.open_table(RAW).expect("table");
                t.insert(raw_key, payload.as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        })
    });

    let seq_ledger = Ledger::open(&bench_dir("sequential"), DAY, T0).expect("open");
    let counter = AtomicU32::new(0);
    g.bench_function("commit_sequential", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            rt.block_on(sign_one(&seq_ledger, n));
        })
    });

    for concurrency in CONCURRENCY {
        let group_ledger =
            Ledger::open(&bench_dir(&format!("group{concurrency}")), DAY, T0).expect("open");
        let counter = Arc::new(AtomicU32::new(0));
        g.bench_function(format!("commit_group_{concurrency}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for t in 0..concurrency {
                        let share = iters / concurrency + u64::from(t < iters % concurrency);
                        let ledger = group_ledger.clone();
                        let counter = counter.clone();
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..share {
                                let n = counter.fetch_add(1, Ordering::Relaxed);
                                sign_one(&ledger, n).await;
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.expect("task");
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
    c.final_summary();

    let est = |id: &str| read_mean_ns(id);
    if let (Some(raw), Some(seq)) = (
        est("ledger/raw_redb_fsync_commit"),
        est("ledger/commit_sequential"),
    ) {
        println!("\n== ratios (same run) ==");
        println!(
            "raw fsynced redb commit  {raw:>12.0} ns ({:.0} commits/s)",
            1e9 / raw
        );
        println!(
            "one-at-a-time entries   {seq:>12.0} ns ({:.0} entries/s) = {:.2}x raw commit",
            1e9 / seq,
            seq / raw
        );
        for concurrency in CONCURRENCY {
            if let Some(group) = est(&format!("ledger/commit_group_{concurrency}")) {
                println!(
                    "group commit, {concurrency:>3} tasks {group:>12.0} ns ({:.0} entries/s) = {:.1}x one-at-a-time, {:.1} entries per raw commit time",
                    1e9 / group,
                    seq / group,
                    raw / group
                );
            }
        }
    }
}
