//! What checking two Ed25519 approvals costs the decision path, stage by stage, against the
//! raw primitive (ed25519-dalek's `verify` over the same signed data), in one run.
//!
//! After the measurements it prints each stage as a multiple of one raw verification and the
//! whole check as a multiple of two (see BENCHMARKS.md, issue 13).

mod common;
use common::read_mean_ns;

use criterion::{black_box, Criterion};
use ed25519_dalek::Verifier as _;
use tron_proto::{Address, U256};
use tron_signer::approval::{check, statement, Offered, Subject, Verdict, NAMESPACE};
use tron_signer::decode::{decode, encode, Decoded, Envelope, Intent, Trc20Transfer};

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/nile.toml");
    let mut text = std::fs::read_to_string(path).expect("policies/nile.toml");
    let keys: Vec<ssh_key::PrivateKey> = (1..=2u8)
        .map(|i| ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[i; 32])))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        text.push_str(&format!(
            "\n[[approver]]\nname = \"bench {i}\"\ngroups = [\"bench\"]\nkey = \"{}\"\n",
            k.public_key().to_openssh().expect("openssh")
        ));
    }
    text.push_str("\n[[approval]]\nasset = \"USDT\"\nabove = \"0\"\nrequire = { bench = 2 }\n");
    let policy = tron_signer::policy::parse(&text, "nile.toml").expect("the example policy");
    let owner: Address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
        .parse()
        .expect("address");
    let now = 1_795_000_000_000;
    let raw = encode(&Decoded {
        envelope: Envelope {
            txid: [0; 32],
            ref_block_bytes: [0x3a, 0x5c],
            ref_block_hash: [0x11; 8],
            expiration: now + 60_000,
            timestamp: now,
            fee_limit: 30_000_000,
            memo: vec![],
            permission_id: 0,
        },
        intent: Intent::Trc20(Trc20Transfer {
            owner,
            token: "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
                .parse()
                .expect("address"),
            to: "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd"
                .parse()
                .expect("address"),
            amount: U256::from(2_000_000u32),
        }),
    });
    let decoded = decode(&raw).expect("decodes");
    let text = statement(&policy, &owner, &decoded, "p-1", Verdict::Approve);
    let sigs: Vec<ssh_key::SshSig> = keys
        .iter()
        .map(|k| {
            k.sign(NAMESPACE, ssh_key::HashAlg::Sha512, text.as_bytes())
                .expect("signs")
        })
        .collect();
    let armored: Vec<String> = sigs
        .iter()
        .map(|s| s.to_pem(ssh_key::LineEnding::LF).expect("armors"))
        .collect();
    let offered: Vec<Offered<'_>> = armored
        .iter()
        .map(|s| Offered {
            signature: s,
            statement: "",
        })
        .collect();
    let subject = Subject {
        policy: &policy,
        key: &owner,
        decoded: &decoded,
        payout_id: "p-1",
        initiator: "EXAMPLE local operator",
    };
    let approved = check(&subject, &offered, now)
        .expect("two approvals meet the quorum")
        .expect("a quorum was asked");
    assert_eq!(approved.approvals.len(), 2);

    // The primitive: ed25519-dalek's verification equation over SSHSIG's signed data.
    let point = ed25519_dalek::VerifyingKey::from_bytes(
        &keys[0]
            .public_key()
            .key_data()
            .ed25519()
            .expect("ed25519")
            .0,
    )
    .expect("point");
    let signature =
        ed25519_dalek::Signature::from_slice(sigs[0].signature().as_bytes()).expect("64 bytes");
    let signed = ssh_key::SshSig::signed_data(NAMESPACE, ssh_key::HashAlg::Sha512, text.as_bytes())
        .expect("signed data");
    assert!(point.verify(&signed, &signature).is_ok());
    let approver = policy
        .policy
        .approver(&fingerprint(&keys[0]))
        .expect("approver");
    let parsed = tron_signer::sshsig::parse(&armored[0], NAMESPACE).expect("parses");

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("approval/raw_ed25519_verify", |b| {
        b.iter(|| point.verify(black_box(&signed), black_box(&signature)))
    });
    c.bench_function("approval/parse_armor", |b| {
        b.iter(|| tron_signer::sshsig::parse(black_box(&armored[0]), NAMESPACE))
    });
    c.bench_function("approval/statement", |b| {
        b.iter(|| {
            statement(
                &policy,
                &owner,
                black_box(&decoded),
                "p-1",
                Verdict::Approve,
            )
        })
    });
    c.bench_function("approval/verify_parsed", |b| {
        b.iter(|| {
            // A fresh message each time: the first approval of a statement pays its digest.
            let message = tron_signer::sshsig::Message::new(black_box(text.as_bytes()));
            parsed.verify(&approver.key, &message)
        })
    });
    c.bench_function("approval/audit_json", |b| {
        b.iter(|| black_box(&approved).to_json())
    });
    c.bench_function("approval/check_two", |b| {
        b.iter(|| check(&subject, black_box(&offered), now))
    });
    c.final_summary();

    let est = |id: &str| read_mean_ns(&format!("approval_{id}"));
    if let Some(raw) = est("raw_ed25519_verify") {
        println!("\n== against one raw Ed25519 verification ({raw:.0} ns), same run ==");
        for id in [
            "parse_armor",
            "statement",
            "verify_parsed",
            "audit_json",
            "check_two",
        ] {
            if let Some(ns) = est(id) {
                println!("{id:<14} {ns:>9.0} ns = {:.2} x raw", ns / raw);
            }
        }
        if let Some(two) = est("check_two") {
            println!(
                "check_two over two raw verifications: {:.2} x (+{:.0} ns outside the equations)",
                two / (2.0 * raw),
                two - 2.0 * raw
            );
        }
    }
}

fn fingerprint(key: &ssh_key::PrivateKey) -> String {
    key.public_key()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string()
}
