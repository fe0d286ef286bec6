//! Fuzzes the approval path a request's approvals take (`approval::check`): each offered
//! approval's statement text is compared with the statement this signer builds
//! (`approval::statement`) and its armored SSHSIG is parsed and verified over it. The
//! subject is fixed: a 21,000 USDT payout under `policies/mainnet.toml`, which asks two
//! treasury approvers and one risk approver; the payout id comes from the input.
//!
//! Input: UTF-8 cut at U+0001 into the payout id, then signature and statement pairs. A
//! statement of exactly `=` (`!`) stands for this request's approve (reject) text, so
//! mutations reach the signature checks behind the comparison.
//!
//! Properties: the reject statement is the approve statement with only its decision line
//! changed, and (for a payout id the service takes) the statement names the payout id, txid
//! and policy hash as the audit check (`evidence::field`) reads them; approvals offered never meet the quorum (no private key
//! of the policy's EXAMPLE approvers exists); every refusal has a reason code and a message,
//! and `approval_required` carries the approve statement.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tron_proto::{Address, U256};
use tron_signer::approval::evidence::field;
use tron_signer::approval::statement::with_verdict;
use tron_signer::approval::{check, statement, Offered, Subject, Verdict};
use tron_signer::decode::{Decoded, Envelope, Intent, Trc20Transfer};
use tron_signer::policy::{self, LoadedPolicy};
use tron_signer::reason::ReasonCode;
use tron_signer::service::payout_id_ok;

const NOW_MS: i64 = 1_700_000_000_000;

struct Fixed {
    policy: LoadedPolicy,
    key: Address,
    decoded: Decoded,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let text = include_str!("../../policies/mainnet.toml");
        let policy = policy::parse(text, "mainnet.toml").expect("the example policy loads");
        let addr = |s: &str| s.parse::<Address>().expect("a valid example address");
        let key = addr("TQVSgo3fKUrNwwzFTKWvXPFT3jqmu22Diu");
        let decoded = Decoded {
            envelope: Envelope {
                txid: [0x5a; 32],
                ref_block_bytes: [0, 1],
                ref_block_hash: [2; 8],
                expiration: NOW_MS + 60_000,
                timestamp: NOW_MS,
                fee_limit: 1_000_000,
                memo: vec![],
                permission_id: 0,
            },
            intent: Intent::Trc20(Trc20Transfer {
                owner: key,
                token: addr("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
                to: addr("TKrVe1tFhjgjMUAAAzmU5JBr2bgxQUUMAe"),
                amount: U256::from(21_000_000_000u64),
            }),
        };
        Fixed {
            policy,
            key,
            decoded,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixed();
    let mut parts = text.split('\u{1}');
    let payout_id = parts.next().unwrap_or("");
    let approve = statement(&f.policy, &f.key, &f.decoded, payout_id, Verdict::Approve);
    let reject = statement(&f.policy, &f.key, &f.decoded, payout_id, Verdict::Reject);
    assert_eq!(with_verdict(&approve, Verdict::Reject), reject);
    assert_eq!(with_verdict(&approve, Verdict::Approve), approve);
    // The service refuses any other payout id before a statement is built
    // (`bad_payout_id`); with one, the statement's lines are as the audit check reads them.
    if payout_id_ok(payout_id) {
        let txid = "5a".repeat(32);
        assert_eq!(field(&approve, "txid"), Some(txid.as_str()));
        assert_eq!(field(&approve, "payout id"), Some(payout_id));
        assert_eq!(
            field(&approve, "policy"),
            Some(f.policy.hash_hex().as_str())
        );
        assert_eq!(field(&approve, "decision"), Some("approve"));
        assert_eq!(field(&reject, "decision"), Some("reject"));
    }

    let rest: Vec<&str> = parts.take(40).collect();
    let offered: Vec<Offered<'_>> = rest
        .chunks(2)
        .map(|pair| {
            let statement = match pair.get(1).copied().unwrap_or("") {
                "=" => approve.as_str(),
                "!" => reject.as_str(),
                s => s,
            };
            Offered {
                signature: pair[0],
                statement,
            }
        })
        .collect();
    let subject = Subject {
        policy: &f.policy,
        key: &f.key,
        decoded: &f.decoded,
        payout_id,
        initiator: "EXAMPLE payments backend",
    };
    match check(&subject, &offered, NOW_MS) {
        Ok(counted) => panic!(
            "{} approvals offered met the quorum: {counted:?}",
            offered.len()
        ),
        Err(e) => {
            assert!(!e.code.as_str().is_empty());
            assert!(!e.message.is_empty());
            if e.code == ReasonCode::ApprovalRequired {
                assert_eq!(e.statement.as_deref(), Some(approve.as_str()));
            }
            assert!(e.counted.is_none() || e.code == ReasonCode::ApprovalRejected);
        }
    }
});
