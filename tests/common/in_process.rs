//! The decision core in the test's own process, on an on-disk ledger, with a clock the test
//! moves (the binary reads the system clock; tests of time need to move it).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use secrecy::SecretBox;
use tron_proto::Address;
use tron_signer::keys::{KeyBackend, KeyRing, SignFuture, SoftKey};
use tron_signer::ledger::Ledger;
use tron_signer::policy::LoadedPolicy;
use tron_signer::service::Core;

use super::KEY1_SECRET;

/// A software key as a backend.
struct TestKey(SoftKey);

impl KeyBackend for TestKey {
    fn address(&self) -> Address {
        self.0.address()
    }
    fn backend(&self) -> &'static str {
        "test"
    }
    fn label(&self) -> &str {
        "in-process test key"
    }
    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
        let signature = self.0.sign_txid(txid).expect("the test key signs");
        Box::pin(std::future::ready(Ok(signature)))
    }
}

/// A key ring holding KEY1.
pub fn ring() -> KeyRing {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(KEY1_SECRET, &mut secret).expect("hex secret");
    let key = SoftKey::from_secret(&SecretBox::new(Box::new(secret))).expect("valid secret");
    let mut ring = KeyRing::default();
    ring.insert(Arc::new(TestKey(key))).expect("one key");
    ring
}

/// The test process as a Unix socket peer: the test policies' caller.
pub fn me() -> tron_signer::service::Peer {
    tron_signer::service::Peer::Unix {
        uid: super::policy::test_uid(),
        gid: 0,
        pid: Some(std::process::id() as i32),
    }
}

/// A core on the ledger in `dir` (opened at the clock's reading, as a start-up would) whose
/// clock reads `clock`.
pub fn core(dir: &Path, clock: &Arc<AtomicI64>, policy: LoadedPolicy) -> Core {
    let c = clock.clone();
    let clock: tron_signer::service::core::Clock = Arc::new(move || c.load(Ordering::SeqCst));
    let ledger = Ledger::open(dir, tron_signer::policy::MAX_WINDOW_MS, clock()).expect("ledger");
    Core::new(ring(), policy, ledger, clock)
}
