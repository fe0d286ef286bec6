//! Opening a 10,000-key keystore: the KDF run versus everything after it, and the
//! after-KDF cost per key against raw k256 key construction measured in the same run.
//!
//! The load builds keys on all cores (`available_parallelism`); the raw baseline is one
//! thread, so a ratio below 1 means the parallel load beats a single-core loop.

mod common;
use common::read_mean_ns;

use std::time::Duration;

use criterion::{black_box, Criterion};
use k256::ecdsa::SigningKey;
use secrecy::{SecretBox, SecretString};
use tron_signer::keystore::{KdfParams, Keystore, SealedKeystore, VERSION};

const KEYS: usize = 10_000;

fn main() {
    let pass = SecretString::from("bench passphrase".to_owned());
    let params = KdfParams::insecure_for_tests();

    // Deterministic, valid secrets so the raw loop and the keystore hold the same keys.
    let secrets: Vec<[u8; 32]> = (0..KEYS as u64)
        .map(|i| {
            let mut s = [0x11u8; 32];
            s[24..].copy_from_slice(&(i + 1).to_be_bytes());
            s
        })
        .collect();
    let mut ks = Keystore::new(params);
    for (i, s) in secrets.iter().enumerate() {
        ks.import(&format!("payout-hot-{i:05}"), SecretBox::new(Box::new(*s)))
            .expect("import");
    }
    let file = ks.seal(&pass).expect("seal");
    drop(ks);
    let sealed = SealedKeystore::parse(&file).expect("parse");
    let unlock = sealed.derive_key(&pass).expect("derive");

    let default_params = KdfParams::default();
    let mut default_ks = Keystore::new(default_params);
    default_ks.generate("one").expect("generate");
    let default_file = default_ks.seal(&pass).expect("seal");
    let default_sealed = SealedKeystore::parse(&default_file).expect("parse");

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group("keystore_load");
    g.bench_function("kdf_insecure", |b| {
        b.iter(|| sealed.derive_key(black_box(&pass)).expect("kdf"))
    });
    g.bench_function("kdf_default", |b| {
        b.iter(|| default_sealed.derive_key(black_box(&pass)).expect("kdf"))
    });
    g.bench_function("after_kdf_10k", |b| {
        b.iter(|| {
            let pt = sealed.decrypt(black_box(&unlock)).expect("decrypt");
            Keystore::from_plaintext(&pt, params, VERSION).expect("load")
        })
    });
    g.bench_function("open_total_10k", |b| {
        b.iter(|| Keystore::open_bytes(black_box(&file), &pass).expect("open"))
    });
    g.bench_function("raw_k256_10k", |b| {
        b.iter(|| {
            for s in &secrets {
                let k = SigningKey::from_slice(black_box(s)).expect("key");
                black_box(k.verifying_key());
            }
        })
    });
    g.finish();
    c.final_summary();

    let est = |id: &str| read_mean_ns(&format!("keystore_load/{id}"));
    if let (Some(kdf), Some(kdf_default), Some(load), Some(total), Some(raw)) = (
        est("kdf_insecure"),
        est("kdf_default"),
        est("after_kdf_10k"),
        est("open_total_10k"),
        est("raw_k256_10k"),
    ) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_key = load / KEYS as f64;
        let raw_per_key = raw / KEYS as f64;
        println!("\n== keystore load, {KEYS} keys, {threads} threads (same run) ==");
        println!("kdf (insecure test params)  {:>10.3} ms", kdf / 1e6);
        println!("kdf (default 64 MiB, t=3)   {:>10.3} ms", kdf_default / 1e6);
        println!("load after kdf              {:>10.3} ms", load / 1e6);
        println!("open total (insecure kdf)   {:>10.3} ms", total / 1e6);
        println!("load per key                {per_key:>10.1} ns");
        println!("raw k256 from_slice per key {raw_per_key:>10.1} ns (one thread)");
        println!(
            "ratio load/raw per key      {:>10.3}",
            per_key / raw_per_key
        );
    }
}
