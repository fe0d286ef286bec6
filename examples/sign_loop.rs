//! N sequential `Core::sign` calls in this process, on a fresh on-disk ledger under the Nile
//! example policy: a fixed workload for counting instructions per signature with
//! `valgrind --tool=callgrind` (repeatable on a machine whose speed drifts), before and after
//! a change to the decision path. See BENCHMARKS.md.
//!
//! `cargo build --release --example sign_loop && valgrind --tool=callgrind target/release/examples/sign_loop 2000`
//!
//! `sign_loop N 2` attaches two Ed25519 approvals to every request (the policy then needs
//! two of "bench" for every USDT transfer); they are made before the loop. `sign_loop N A
//! setup-only` does everything but the `Core::sign` calls, so the setup (and making the
//! approvals) can be subtracted.

use std::sync::Arc;

use secrecy::SecretBox;
use tron_proto::{Address, U256};
use tron_signer::decode::{encode, Decoded, Envelope, Intent, Trc20Transfer};
use tron_signer::keys::{KeyBackend, KeyRing, SignFuture, SoftKey};
use tron_signer::ledger::Ledger;
use tron_signer::service::Core;

/// The published development key (policies/nile.toml).
const DEV_SECRET: &str = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";

struct Key(SoftKey);

impl KeyBackend for Key {
    fn address(&self) -> Address {
        self.0.address()
    }
    fn backend(&self) -> &'static str {
        "example"
    }
    fn label(&self) -> &str {
        "sign_loop"
    }
    fn sign<'a>(&'a self, txid: &'a [u8; 32]) -> SignFuture<'a> {
        let s = self.0.sign_txid(txid).expect("the dev key signs");
        Box::pin(std::future::ready(Ok(s)))
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let approvers: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let setup_only = std::env::args().nth(3).is_some_and(|a| a == "setup-only");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut secret = [0u8; 32];
    hex::decode_to_slice(DEV_SECRET, &mut secret).expect("hex");
    let key = SoftKey::from_secret(&SecretBox::new(Box::new(secret))).expect("key");
    let owner = key.address();
    let mut ring = KeyRing::default();
    ring.insert(Arc::new(Key(key))).expect("one key");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/nile.toml");
    let mut text = std::fs::read_to_string(path).expect("policies/nile.toml");
    let approver_keys: Vec<ssh_key::PrivateKey> = (0..approvers)
        .map(|i| {
            let seed = [u8::try_from(i).expect("few approvers") + 1; 32];
            ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed))
        })
        .collect();
    for (i, k) in approver_keys.iter().enumerate() {
        text.push_str(&format!(
            "\n[[approver]]\nname = \"bench {i}\"\ngroups = [\"bench\"]\nkey = \"{}\"\n",
            k.public_key().to_openssh().expect("openssh")
        ));
    }
    if approvers > 0 {
        text.push_str(&format!(
            "\n[[approval]]\nasset = \"USDT\"\nabove = \"0\"\nrequire = {{ bench = {approvers} }}\n"
        ));
    }
    let policy = tron_signer::policy::parse(&text, "nile.toml").expect("the example policy");
    let for_statements = policy.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let clock: tron_signer::service::core::Clock = Arc::new(move || now);
    let ledger = Ledger::open(dir.path(), tron_signer::policy::MAX_WINDOW_MS, now).expect("ledger");
    let core = Core::new(ring, policy, ledger, clock);
    let to: Address = "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd"
        .parse()
        .expect("address");
    let token: Address = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
        .parse()
        .expect("address");
    // Root on the Unix socket: the example policy's "EXAMPLE local operator".
    let peer = tron_signer::service::Peer::Unix {
        uid: 0,
        gid: 0,
        pid: Some(1),
    };
    let raws: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            encode(&Decoded {
                envelope: Envelope {
                    txid: [0; 32],
                    ref_block_bytes: (i as u16).to_be_bytes(),
                    ref_block_hash: [(i >> 16) as u8; 8],
                    expiration: now + 60_000,
                    timestamp: now,
                    fee_limit: 30_000_000,
                    memo: vec![],
                    permission_id: 0,
                },
                intent: Intent::Trc20(Trc20Transfer {
                    owner,
                    token,
                    to,
                    amount: U256::from(1u8),
                }),
            })
        })
        .collect();
    let approvals: Vec<Vec<String>> = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            if approver_keys.is_empty() {
                return Vec::new();
            }
            let decoded = tron_signer::decode::decode(raw).expect("decodes");
            let statement = tron_signer::approval::statement(
                &for_statements,
                &owner,
                &decoded,
                &format!("p-{i}"),
                tron_signer::approval::Verdict::Approve,
            );
            approver_keys
                .iter()
                .map(|k| {
                    k.sign(
                        tron_signer::approval::NAMESPACE,
                        ssh_key::HashAlg::Sha512,
                        statement.as_bytes(),
                    )
                    .expect("signs")
                    .to_pem(ssh_key::LineEnding::LF)
                    .expect("armors")
                })
                .collect()
        })
        .collect();
    if setup_only {
        println!("set up {n} requests with {approvers} approvals each");
        return;
    }
    rt.block_on(async {
        for (i, (raw, sigs)) in raws.iter().zip(&approvals).enumerate() {
            let offered: Vec<tron_signer::approval::Offered<'_>> = sigs
                .iter()
                .map(|s| tron_signer::approval::Offered {
                    signature: s,
                    statement: "",
                })
                .collect();
            core.sign_with(
                &peer,
                "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1",
                raw,
                &format!("p-{i}"),
                &offered,
                None,
            )
            .await
            .expect("signed");
        }
    });
    println!("signed {n}");
    // What the ledger file grows by per signature (BENCHMARKS.md, retention); the writer has
    // committed every one by now.
    drop(core);
    let bytes = std::fs::metadata(dir.path().join("ledger.redb")).map_or(0, |m| m.len());
    println!("ledger.redb {bytes} bytes after {n} signatures");
}
