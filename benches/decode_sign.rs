//! Decode cost per intent, and our signing against raw k256 `sign_prehash`, in one run.
//!
//! After the measurements it prints the ratios the project tracks (see BENCHMARKS.md):
//! decode as a share of one signature, and our sign over the raw primitive.

mod common;
use common::read_mean_ns;

use criterion::{black_box, Criterion};
use k256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
use secrecy::SecretBox;
use tron_proto::{Address, U256};
use tron_signer::decode::{decode, encode, Decoded, Envelope, Intent, Trc20Transfer, TrxTransfer};
use tron_signer::keys::SoftKey;

const SECRET: [u8; 32] = [0x27; 32];

fn sample(intent: Intent) -> Vec<u8> {
    encode(&Decoded {
        envelope: Envelope {
            txid: [0; 32],
            ref_block_bytes: [0x3a, 0x5c],
            ref_block_hash: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            expiration: 1_795_000_060_000,
            timestamp: 1_795_000_000_000,
            fee_limit: if matches!(intent, Intent::Trc20(_)) {
                30_000_000
            } else {
                0
            },
            memo: b"payout 8f3c".to_vec(),
            permission_id: 0,
        },
        intent,
    })
}

fn main() {
    let owner = Address::from_evm([0x94; 20]);
    let to = Address::from_evm([0xa6; 20]);
    let usdt: Address = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
        .parse()
        .expect("usdt address");
    let trx = sample(Intent::Trx(TrxTransfer {
        owner,
        to,
        amount: 12_345_678,
    }));
    let trc20 = sample(Intent::Trc20(Trc20Transfer {
        owner,
        token: usdt,
        to,
        amount: U256::new(50_000_000_000),
    }));
    assert!(decode(&trx).is_ok() && decode(&trc20).is_ok());

    let raw_key = SigningKey::from_slice(&SECRET).expect("key");
    let ours = SoftKey::from_secret(&SecretBox::new(Box::new(SECRET))).expect("key");
    let txid = tron_proto::txid(&trc20);

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("decode/trx", |b| b.iter(|| decode(black_box(&trx))));
    c.bench_function("decode/trc20", |b| b.iter(|| decode(black_box(&trc20))));
    c.bench_function("sign/k256_sign_prehash", |b| {
        b.iter(|| {
            let s: Signature = raw_key.sign_prehash(black_box(&txid)).expect("sign");
            s
        })
    });
    c.bench_function("sign/tron_signer_sign_txid", |b| {
        b.iter(|| ours.sign_txid(black_box(&txid)))
    });
    c.final_summary();

    // Ratios, from the estimates criterion just wrote for this run.
    let est = |id: &str| read_mean_ns(id);
    if let (Some(d_trx), Some(d_trc20), Some(raw), Some(sign)) = (
        est("decode_trx"),
        est("decode_trc20"),
        est("sign_k256_sign_prehash"),
        est("sign_tron_signer_sign_txid"),
    ) {
        println!("\n== ratios (same run) ==");
        println!(
            "decode/trx   {d_trx:>10.1} ns = {:.2}% of raw k256 sign",
            100.0 * d_trx / raw
        );
        println!(
            "decode/trc20 {d_trc20:>10.1} ns = {:.2}% of raw k256 sign",
            100.0 * d_trc20 / raw
        );
        println!(
            "k256 sign_prehash {raw:>10.1} ns ({:.0}/s on one core)",
            1e9 / raw
        );
        println!("our sign_txid     {sign:>10.1} ns = {:.3}x raw", sign / raw);
    }
}
