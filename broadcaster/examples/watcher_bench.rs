//! Watcher throughput (issue 15's benchmark): blocks per second the chain watcher takes,
//! with ISSUED deposit addresses on record and TXS transactions per block served by the
//! node double over HTTP, against the double's own serving rate for the same blocks in the
//! same run (fetching each block and its receipts exactly as the watcher does, without
//! processing them).
//!
//! ```sh
//! cargo run --release -p tron-broadcaster --example watcher_bench -- [BLOCKS [TXS [ISSUED [OURS]]]]
//! ```
//!
//! Defaults: 30 blocks of 2,000 TRC-20 transfers, 100,000 issued addresses, 20 transfers per
//! block paying one of them (the rest move the same token between strangers). The database
//! lives on /dev/shm when it exists, so invoice creation (one durable commit each) does not
//! dominate the setup; the watcher's own commits are on the same filesystem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tron_broadcaster::invoice::{ExpiryRequest, Invoice, InvoiceStatus, StatusChange};
use tron_broadcaster::model::{now_ms, Asset};
use tron_broadcaster::node::Node;
use tron_broadcaster::receive_store::ReceiveStore;
use tron_broadcaster::store::{Store, StoreError};
use tron_broadcaster::watcher::Watcher;
use tron_node_double::sim::{self, Kind, Payment};
use tron_node_double::{Accounts, Options};
use tron_proto::{Address, U256};

const USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";

/// The deposit address of invoice `i` (synthetic: the watcher matches addresses, it does
/// not derive them).
fn deposit(i: u32) -> Address {
    let mut b = [0x11u8; 20];
    b[..4].copy_from_slice(&i.to_be_bytes());
    Address::from_evm(b)
}

fn stranger(i: u64) -> Address {
    let mut b = [0x77u8; 20];
    b[..8].copy_from_slice(&i.to_be_bytes());
    Address::from_evm(b)
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blocks = arg(1, 30);
    let txs = arg(2, 2000);
    let issued = arg(3, 100_000) as u32;
    let ours = arg(4, 20).min(txs);
    let token: Address = USDT.parse().expect("token");

    let accounts = Accounts::from_json(format!(r#"{{"trc20": {{"{USDT}": {{}}}}}}"#).as_bytes())
        .expect("accounts");
    let node = tron_node_double::start(Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        // Blocks are made below, not by the timer.
        block_interval: Duration::from_secs(24 * 3600),
        solid_after: 2,
        accounts,
        api_key: None,
    })
    .await
    .expect("node double");

    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let store = Arc::new(Store::open(&base.path().join("bench.redb")).expect("store"));
    let rs = ReceiveStore::open(store).expect("receive store");
    let t = Instant::now();
    let now = now_ms();
    for i in 0..issued {
        let invoice = Invoice {
            tenant: "bench".into(),
            id: format!("inv-{i}"),
            created_by: "bench".into(),
            asset: Asset::Usdt,
            amount_units: 1_000_000,
            tolerance_units: 0,
            expiry: ExpiryRequest::Default,
            expires_at_ms: now + 24 * 3600 * 1000,
            reference: None,
            metadata: serde_json::json!({}),
            deposit_index: 0,
            address: String::new(),
            status: InvoiceStatus::New,
            created_at_ms: now,
            updated_at_ms: now,
            payments: Vec::new(),
            history: vec![StatusChange {
                status: InvoiceStatus::New,
                at_ms: now,
            }],
            sweeps: Vec::new(),
        };
        rs.create_invoice(invoice, |index| -> Result<String, StoreError> {
            Ok(deposit(index).to_base58())
        })
        .expect("invoice");
    }
    eprintln!(
        "setup: {issued} invoices in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let client = Node::new(&node.url(), None, Duration::from_secs(30)).expect("node client");
    let watcher = Watcher::new(
        Node::new(&node.url(), None, Duration::from_secs(30)).expect("node client"),
        rs,
        token,
        Duration::from_millis(1),
        Duration::from_secs(1),
    );
    // The first poll places the watcher at the solidified block.
    watcher.poll().await.expect("first poll");
    let start = node.app.with_chain(|c| c.head().number) as u64;

    let t = Instant::now();
    let mut k = 0u64;
    for _ in 0..blocks {
        node.app.with_chain(|c| {
            for j in 0..txs {
                let to = if j < ours {
                    deposit(((k * 7919) % u64::from(issued)) as u32)
                } else {
                    stranger(k)
                };
                k += 1;
                sim::submit(
                    c,
                    &Payment {
                        kind: Kind::Transfer,
                        token: Some(token),
                        from: sim::customer(),
                        to,
                        amount: U256::from(1_000_000u64),
                        via: sim::batcher(),
                        transfers: 1,
                    },
                )
                .expect("scripted payment");
            }
            c.produce_block(now_ms());
        });
    }
    let head = node.app.with_chain(|c| c.head().number) as u64;
    eprintln!(
        "setup: {blocks} blocks of {txs} transactions in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The double's serving rate: each block and its receipts, as the watcher asks.
    let t = Instant::now();
    for n in start + 1..=head {
        client
            .block_by_num(n)
            .await
            .expect("block")
            .expect("exists");
        client.block_infos(n).await.expect("infos");
    }
    let serve_s = t.elapsed().as_secs_f64();

    // The watcher over the same blocks.
    let t = Instant::now();
    let mut credited = 0usize;
    loop {
        let p = watcher.poll().await.expect("poll");
        credited += p.events;
        if p.tip >= head {
            break;
        }
    }
    let watch_s = t.elapsed().as_secs_f64();
    let n = (head - start) as f64;
    println!(
        "blocks {} x {txs} txs, {issued} issued addresses, {ours} paying us per block",
        head - start
    );
    println!(
        "node double serving:  {:.1} blocks/s ({:.1} ms per block)",
        n / serve_s,
        serve_s * 1000.0 / n
    );
    println!(
        "watcher:              {:.1} blocks/s ({:.1} ms per block), {credited} events",
        n / watch_s,
        watch_s * 1000.0 / n
    );
    println!(
        "watcher / serving: {:.3}; watcher vs mainnet (1 block / 3 s): {:.0}x",
        serve_s / watch_s,
        (n / watch_s) * 3.0
    );
}
