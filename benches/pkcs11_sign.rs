//! Signing with a SoftHSM2 key: raw `C_Sign` against our backend, both on both cores.
//!
//! Raw: two threads, each with its own logged-in session, calling C_Sign(CKM_ECDSA) in a
//! loop. Ours: two concurrent requests through `KeyBackend::sign` (spawn_blocking, session
//! pool, low-S normalisation, trial recovery of v, verification) on a 2-worker runtime.
//! The token lives in a temporary directory created here. After criterion's figures the
//! bench prints both rates from one interleaved run and their ratio (see BENCHMARKS.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use secrecy::SecretString;
use tron_signer::keys::pkcs11::context::{find_slot, open_logged_in};
use tron_signer::keys::pkcs11::{
    generate_key, module, KeySelector, Pkcs11Backend, Pkcs11Config, Pkcs11Module, Pkcs11Token,
};
use tron_signer::keys::KeyBackend;
use tron_testkit::softhsm::{module_path, SoftHsm};

const TOKEN: &str = "bench";
const PIN: &str = "5678";
const THREADS: u64 = 2;

/// Makes a token and points this process's SoftHSM at it (before C_Initialize).
fn make_token() -> SoftHsm {
    let hsm = SoftHsm::with_token(TOKEN, PIN);
    let (var, conf) = hsm.conf_env();
    // Single-threaded here: nothing else reads the environment yet.
    std::env::set_var(var, conf);
    hsm
}

fn raw_sign_parallel(m: &Pkcs11Module, key_id: &[u8], iters: u64) -> Duration {
    let per_thread = iters.div_ceil(THREADS);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let ctx = m.context().clone();
            s.spawn(move || {
                let slot = find_slot(&ctx, TOKEN).expect("slot");
                let pin = SecretString::from(PIN);
                let session = open_logged_in(&ctx, slot, false, &pin).expect("session");
                let handle: ObjectHandle = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Id(key_id.to_vec()),
                    ])
                    .expect("find")[0];
                for i in 0..per_thread {
                    let txid = tron_proto::txid(&(t * per_thread + i).to_be_bytes());
                    let rs = session
                        .sign(&Mechanism::Ecdsa, handle, &txid)
                        .expect("C_Sign");
                    std::hint::black_box(rs);
                }
            });
        }
    });
    start.elapsed()
}

fn ours_parallel(rt: &tokio::runtime::Runtime, key: &Arc<Pkcs11Backend>, iters: u64) -> Duration {
    let per_task = iters.div_ceil(THREADS);
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..THREADS {
            let key = Arc::clone(key);
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let txid = tron_proto::txid(&(t * per_task + i).to_be_bytes());
                    std::hint::black_box(key.sign(&txid).await.expect("sign"));
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
    });
    start.elapsed()
}

fn main() {
    let _hsm = make_token();
    let m = module(&module_path()).expect("module");
    let pin = SecretString::from(PIN);
    let generated = generate_key(&m, TOKEN, &pin, "bench-key").expect("generate");
    let cfg = Pkcs11Config::new(
        module_path(),
        TOKEN.into(),
        vec![KeySelector::Id(generated.id.clone())],
    );
    let token = Pkcs11Token::open(&cfg, pin).expect("open token");
    let key = Arc::new(token.load_key(&cfg.keys[0]).expect("load key"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS as usize)
        .enable_all()
        .build()
        .expect("runtime");

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("pkcs11_sign_2_threads");
    g.bench_function("raw_C_Sign", |b| {
        b.iter_custom(|iters| raw_sign_parallel(&m, &generated.id, iters))
    });
    g.bench_function("backend_sign", |b| {
        b.iter_custom(|iters| ours_parallel(&rt, &key, iters))
    });
    g.finish();
    c.final_summary();

    // Same-run ratio: interleave rounds so drift hits both sides alike.
    let (n, rounds) = (400, 10);
    let (mut raw, mut ours) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        raw += raw_sign_parallel(&m, &generated.id, n);
        ours += ours_parallel(&rt, &key, n);
    }
    let rate = |d: Duration| (rounds * n) as f64 / d.as_secs_f64();
    println!("\n== pkcs11 sign, {THREADS} threads, same run ==");
    println!("raw C_Sign        : {:>8.0} signatures/s", rate(raw));
    println!("backend sign      : {:>8.0} signatures/s", rate(ours));
    println!("backend / raw     : {:>8.3}", rate(ours) / rate(raw));
}
