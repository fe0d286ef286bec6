//! The PKCS#11 backend against a real SoftHSM2 token.
//!
//! SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and a PKCS#11 module can be
//! initialised once per process. So each test here re-runs this test binary as a child
//! process filtered to itself, with its own temporary SOFTHSM2_CONF and token directory:
//! tests stay independent, parallel-safe and deterministic.
//!
//! Needs the Debian package `softhsm2` (scripts/test.sh installs it when missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use secrecy::SecretString;
use tron_proto::sig::{is_low_s, recover_address};
use tron_proto::Address;
use tron_signer::keys::pkcs11::context::{find_slot, open_logged_in};
use tron_signer::keys::pkcs11::object::read_bool;
use tron_signer::keys::pkcs11::{
    generate_key, list_keys, module, KeySelector, Pkcs11Backend, Pkcs11Config, Pkcs11Error,
    Pkcs11Token,
};
use tron_signer::keys::{KeyBackend, KeyError, KeyRing};
use tron_testkit::softhsm::{module_path, SoftHsm};

const SCENARIO_ENV: &str = "TRON_SIGNER_PKCS11_SCENARIO";
const TOKEN_DIR_ENV: &str = "TRON_SIGNER_PKCS11_TOKEN_DIR";
const TOKEN: &str = "payouts";
const USER_PIN: &str = "5678";

fn pin() -> SecretString {
    SecretString::from(USER_PIN)
}

/// Runs `scenario` in a child process with a fresh token, or, inside that child, runs it.
fn isolated(name: &str, scenario: fn(&Path)) {
    if let Some(running) = std::env::var_os(SCENARIO_ENV) {
        if running == name {
            let tokens = PathBuf::from(std::env::var_os(TOKEN_DIR_ENV).expect("token dir"));
            scenario(&tokens);
        }
        return;
    }
    let hsm = SoftHsm::with_token(TOKEN, USER_PIN);
    let (conf_var, conf) = hsm.conf_env();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO_ENV, name)
        .env(TOKEN_DIR_ENV, &hsm.tokens)
        .env(conf_var, conf)
        .output()
        .expect("child test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "scenario {name} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

fn config(keys: Vec<KeySelector>) -> Pkcs11Config {
    let mut c = Pkcs11Config::new(module_path(), TOKEN.into(), keys);
    c.sessions = Some(4);
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Signs `n` distinct txids through the async trait and checks each one.
fn sign_many(key: &Pkcs11Backend, n: u32) {
    let rt = runtime();
    let key = Arc::new(key.clone());
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let key = Arc::clone(&key);
            tasks.push(tokio::spawn(async move {
                let txid = tron_proto::txid(&i.to_be_bytes());
                let sig = key.sign(&txid).await.expect("sign");
                (txid, sig)
            }));
        }
        for t in tasks {
            let (txid, sig) = t.await.expect("task");
            assert!(is_low_s(&sig));
            assert!(sig[64] <= 1);
            assert_eq!(
                recover_address(&txid, &sig).expect("recovers"),
                key.address()
            );
        }
    });
}

fn sign_once(key: &Pkcs11Backend, tag: &[u8]) -> Result<[u8; 65], KeyError> {
    let txid = tron_proto::txid(tag);
    let sig = runtime().block_on(key.sign(&txid))?;
    assert_eq!(
        recover_address(&txid, &sig).expect("recovers"),
        key.address()
    );
    Ok(sig)
}

fn new_key(label: &str) -> Address {
    let m = module(&module_path()).expect("module");
    generate_key(&m, TOKEN, &pin(), label)
        .expect("generate")
        .address
}

fn open_one(selector: KeySelector) -> (Pkcs11Token, Pkcs11Backend) {
    let token = Pkcs11Token::open(&config(vec![selector.clone()]), pin()).expect("open token");
    let key = token.load_key(&selector).expect("load key");
    (token, key)
}

#[test]
fn generate_list_and_sign() {
    isolated("generate_list_and_sign", |_| {
        let m = module(&module_path()).unwrap();
        let ctx = m.context();
        let a = generate_key(&m, TOKEN, &pin(), "hot-1").unwrap();
        let b = generate_key(&m, TOKEN, &pin(), "hot-2").unwrap();
        assert_ne!(a.address, b.address);
        assert_eq!(a.id, a.address.evm_bytes());
        assert_eq!(
            generate_key(&m, TOKEN, &pin(), "hot-1"),
            Err(Pkcs11Error::LabelExists {
                label: "hot-1".into()
            })
        );

        // The private key as the token stores it.
        let slot = find_slot(ctx, TOKEN).unwrap();
        let s = open_logged_in(ctx, slot, false, &pin()).unwrap();
        let privs = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(a.id.clone()),
            ])
            .unwrap();
        assert_eq!(privs.len(), 1);
        let want = [
            (AttributeType::Token, true),
            (AttributeType::Private, true),
            (AttributeType::Sensitive, true),
            (AttributeType::AlwaysSensitive, true),
            (AttributeType::Extractable, false),
            (AttributeType::NeverExtractable, true),
            (AttributeType::Sign, true),
            (AttributeType::Decrypt, false),
            (AttributeType::Unwrap, false),
            (AttributeType::Derive, false),
        ];
        for (attr, value) in want {
            assert_eq!(
                read_bool(&s, privs[0], attr).unwrap(),
                Some(value),
                "{attr:?}"
            );
        }
        // The scalar itself cannot be read.
        assert!(s
            .get_attributes(privs[0], &[AttributeType::Value])
            .map_or(true, |v| !v
                .iter()
                .any(|a| matches!(a, Attribute::Value(_)))));
        drop(s);

        let listed = list_keys(&m, TOKEN, &pin()).unwrap();
        let summary: Vec<_> = listed
            .iter()
            .map(|k| {
                (
                    k.label.as_str(),
                    k.address,
                    k.has_private_key,
                    k.id_hex.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("hot-1", a.address, true, hex::encode(&a.id)),
                ("hot-2", b.address, true, hex::encode(&b.id)),
            ]
        );

        // Both selector kinds find the same key; signatures recover and are low-S.
        let (_t, by_label) = open_one(KeySelector::Label("hot-1".into()));
        let (_t2, by_id) = open_one(KeySelector::Id(a.id.clone()));
        assert_eq!(by_label.address(), a.address);
        assert_eq!(by_id.address(), a.address);
        assert_eq!(by_label.backend(), "pkcs11");
        assert_eq!(by_label.label(), "hot-1");
        sign_many(&by_label, 200);
        sign_many(&by_id, 50);
    });
}

#[test]
fn wrong_pin_and_missing_token_are_specific() {
    isolated("wrong_pin_and_missing_token_are_specific", |_| {
        new_key("k");
        let cfg = config(vec![KeySelector::Label("k".into())]);
        let err = Pkcs11Token::open(&cfg, SecretString::from("0000"))
            .err()
            .expect("wrong PIN refused");
        assert_eq!(err, Pkcs11Error::PinIncorrect);
        assert!(!err.is_transient());
        assert_eq!(KeyError::from(err).code(), "key_backend_failed");

        let mut other = cfg.clone();
        other.token_label = "no-such-token".into();
        let err = Pkcs11Token::open(&other, pin()).err().expect("no token");
        assert_eq!(
            err,
            Pkcs11Error::TokenNotFound {
                label: "no-such-token".into()
            }
        );

        let token = Pkcs11Token::open(&cfg, pin()).expect("right PIN works");
        assert_eq!(
            token
                .load_key(&KeySelector::Label("absent".into()))
                .unwrap_err(),
            Pkcs11Error::KeyNotFound {
                selector: "label \"absent\"".into()
            }
        );
        let key = token.load_key(&KeySelector::Label("k".into())).unwrap();
        sign_once(&key, b"after a wrong PIN").unwrap();
    });
}

#[test]
fn saturated_pool_times_out_then_recovers() {
    isolated("saturated_pool_times_out_then_recovers", |_| {
        new_key("k");
        let selector = KeySelector::Label("k".into());
        let mut cfg = config(vec![selector.clone()]);
        cfg.sessions = Some(1);
        cfg.session_wait_ms = 300;
        let token = Pkcs11Token::open(&cfg, pin()).expect("open token");
        let key = token.load_key(&selector).expect("load key");
        runtime().block_on(async {
            let held = token.hold_admission().await.expect("the one permit");
            let started = std::time::Instant::now();
            let err = key
                .sign(&tron_proto::txid(b"while the pool is full"))
                .await
                .expect_err("no room within the wait");
            assert!(started.elapsed() >= std::time::Duration::from_millis(300));
            assert_eq!(err.code(), "key_backend_unavailable", "{err}");
            assert_eq!(err.reason().as_str(), "pkcs11_pool_timeout", "{err}");
            drop(held);
            let txid = tron_proto::txid(b"after the pool freed up");
            let sig = key.sign(&txid).await.expect("signs once there is room");
            assert_eq!(
                recover_address(&txid, &sig).expect("recovers"),
                key.address()
            );
        });
    });
}

#[allow(unsafe_code)]
fn close_all_sessions(slot: u64) {
    // SAFETY: opens the same shared object the backend already loaded and initialised
    // (dlopen returns the loaded instance) and calls C_CloseAllSessions with a plain slot id.
    let rv = unsafe {
        let lib = cryptoki_sys::Pkcs11::new(module_path()).expect("dlopen module");
        lib.C_CloseAllSessions(slot)
    };
    assert_eq!(rv, 0, "C_CloseAllSessions");
}

#[test]
fn closed_sessions_are_reopened() {
    isolated("closed_sessions_are_reopened", |_| {
        new_key("k");
        let (token, key) = open_one(KeySelector::Label("k".into()));
        sign_many(&key, 8);
        let before = token.stats();
        let m = module(&module_path()).unwrap();
        let ctx = m.context();
        close_all_sessions(find_slot(ctx, TOKEN).unwrap().id());
        sign_once(&key, b"after C_CloseAllSessions").expect("recovers on the next sign");
        let after = token.stats();
        assert!(after.generation > before.generation, "{before:?} {after:?}");
        assert!(after.sessions_opened > before.sessions_opened);
        sign_many(&key, 8);
    });
}

#[test]
fn logout_is_followed_by_login() {
    isolated("logout_is_followed_by_login", |_| {
        new_key("k");
        let (token, key) = open_one(KeySelector::Label("k".into()));
        sign_many(&key, 8);
        let before = token.stats();
        let m = module(&module_path()).unwrap();
        let ctx = m.context();
        let slot = find_slot(ctx, TOKEN).unwrap();
        let s = ctx.open_ro_session(slot).unwrap();
        s.logout().expect("C_Logout");
        sign_once(&key, b"after C_Logout").expect("logs in again");
        assert!(token.stats().generation > before.generation);
        drop(s);
        sign_many(&key, 8);
    });
}

#[test]
fn token_removed_then_restored() {
    isolated("token_removed_then_restored", |tokens| {
        new_key("k");
        let (token, key) = open_one(KeySelector::Label("k".into()));
        sign_many(&key, 4);
        let aside = tokens.with_file_name("tokens-aside");
        std::fs::rename(tokens, &aside).unwrap();
        for i in 0..3u8 {
            match sign_once(&key, &[b'r', i]) {
                Err(KeyError::Unavailable {
                    backend, detail, ..
                }) => {
                    assert_eq!(backend, "pkcs11");
                    eprintln!("token gone: {detail}");
                }
                other => panic!("expected Unavailable with the token gone, got {other:?}"),
            }
        }
        std::fs::rename(&aside, tokens).unwrap();
        sign_once(&key, b"token back").expect("recovers without a new context");
        sign_many(&key, 8);
        eprintln!("{:?}", token.stats());
    });
}

#[test]
fn never_signs_with_another_key() {
    isolated("never_signs_with_another_key", |_| {
        let a = new_key("a");
        let b = new_key("b");
        let (_token, key_a) = open_one(KeySelector::Label("a".into()));
        let mut ring = KeyRing::default();
        ring.insert(Arc::new(key_a.clone())).unwrap();
        assert!(
            ring.get(&b).is_none(),
            "a key not loaded is not in the ring"
        );
        assert_eq!(ring.get(&a).unwrap().address(), a);

        // Replace key "a" on the token behind the backend's back with a new key of the
        // same label: the backend must refuse, not sign with the impostor.
        let m = module(&module_path()).unwrap();
        let ctx = m.context();
        let slot = find_slot(ctx, TOKEN).unwrap();
        let s = open_logged_in(ctx, slot, true, &pin()).unwrap();
        for h in s.find_objects(&[Attribute::Label(b"a".to_vec())]).unwrap() {
            s.destroy_object(h).unwrap();
        }
        drop(s);
        let impostor = new_key("a");
        assert_ne!(impostor, a);
        match sign_once(&key_a, b"after swap") {
            Err(KeyError::Failed { detail, .. }) => {
                assert!(detail.contains("pkcs11_key_changed"), "{detail}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Still refusing on later requests.
        assert!(matches!(
            sign_once(&key_a, b"again"),
            Err(KeyError::Failed { .. })
        ));
    });
}
