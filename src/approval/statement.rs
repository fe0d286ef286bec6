//! The statement an approver reads and signs: one short canonical text naming everything the
//! approval is bound to (network, signing key, destination, asset, amount in token units with
//! its symbol, txid, expiration in UTC, payout id, policy hash), under a version line. It is
//! signed as an SSH signature (`ssh-keygen -Y sign -n tron-signer-approval`), so an auditor
//! checks it with `ssh-keygen -Y verify` alone; the signer rebuilds the same text from the
//! transaction and the policy in force, so an approval can only ever count for the one
//! transaction it names.

use std::fmt::Write as _;

use tron_proto::Address;

use crate::decode::{Asset, Decoded};
use crate::policy::{format_amount, LoadedPolicy};

/// The SSHSIG namespace of approvals: a signature made for another purpose (a batch file,
/// a git commit) never counts as an approval.
pub const NAMESPACE: &str = "tron-signer-approval";

/// The first line, which names the format; a statement of another version never matches.
const VERSION_LINE: &str = "tron-signer approval statement v1";

/// What the approver says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    /// Cancels the payout: a signed reject statement refuses it.
    Reject,
}

impl Verdict {
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// The statement for `decoded`, signed by `key` for `payout_id`, under `policy`.
pub fn statement(
    policy: &LoadedPolicy,
    key: &Address,
    decoded: &Decoded,
    payout_id: &str,
    verdict: Verdict,
) -> String {
    let p = &policy.policy;
    let intent = &decoded.intent;
    let to = intent.to();
    let asset = intent.asset();
    let info = p.asset_info(&asset);
    let (symbol, decimals) = info.map_or(("?", 0), |i| (i.symbol.as_str(), i.decimals));
    let key_label = p.key(key).map_or("", |k| k.label.as_str());
    let to_label = p
        .key(key)
        .and_then(|k| k.destination(to))
        .map_or("", |d| d.label.as_str());
    let asset_line = match asset {
        Asset::Trx => "TRX".to_owned(),
        Asset::Token(c) => format!("{symbol} (TRC-20 contract {})", p.address_text(&c)),
    };
    let unit = if asset == Asset::Trx {
        "sun"
    } else {
        "base units"
    };
    let amount = intent.amount();
    let mut s = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = writeln!(s, "{VERSION_LINE}");
    let _ = writeln!(s, "decision: {}", verdict.as_str());
    let _ = writeln!(s, "network: {}", p.network);
    let _ = writeln!(s, "signing key: {} {key_label:?}", p.address_text(key));
    let _ = writeln!(s, "destination: {} {to_label:?}", p.address_text(to));
    let _ = writeln!(s, "asset: {asset_line}");
    let _ = writeln!(
        s,
        "amount: {} {symbol} ({amount} {unit})",
        format_amount(amount, decimals)
    );
    let _ = writeln!(s, "txid: {}", hex::encode(decoded.envelope.txid));
    let _ = writeln!(s, "expires: {}", utc(decoded.envelope.expiration));
    let _ = writeln!(s, "payout id: {payout_id}");
    let _ = writeln!(s, "policy: {}", policy.hash_hex());
    s
}

/// The statement `approve_text` (as [`statement`] wrote it with [`Verdict::Approve`]) with
/// `verdict` instead: only the second line differs. No other line can hold that text (labels
/// are quoted with their newlines escaped; a payout id has no spaces).
pub fn with_verdict(approve_text: &str, verdict: Verdict) -> String {
    match verdict {
        Verdict::Approve => approve_text.to_owned(),
        Verdict::Reject => {
            approve_text.replacen("\ndecision: approve\n", "\ndecision: reject\n", 1)
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC).
pub use crate::policy::instant::format_utc as utc;

#[cfg(test)]
mod statement_tests {
    use super::*;
    use crate::decode::{Envelope, Intent, Trc20Transfer};
    use tron_proto::U256;

    /// The format is pinned: approvers' tools and auditors' checks rebuild it byte for byte.
    #[test]
    fn the_statement_is_pinned() {
        let text = "version = 1\nname = \"s\"\nnetwork = \"nile\"\n[global]\nmax_fee_limit = \"50\"\nmax_expiration = \"10m\"\nclock_skew = \"60s\"\n[[token]]\nsymbol = \"USDT\"\ncontract = \"TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf\"\ndecimals = 6\n[[caller]]\nname = \"c\"\nunix_uid = 1\nrpcs = [\"Sign\"]\nall_keys = true\n[[key]]\naddress = \"TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1\"\nlabel = \"hot \\\"1\\\"\"\nassets = [\"USDT\"]\nwindows = [{ asset = \"USDT\", window = \"1h\", max = \"100000\" }]\n  [[key.destination]]\n  address = \"TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd\"\n  label = \"exchange\"\n  assets = [\"USDT\"]\n  per_tx_max = { USDT = \"50000\" }\n";
        let policy = crate::policy::parse(text, "s.toml").unwrap();
        let key: Address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1".parse().unwrap();
        let decoded = Decoded {
            envelope: Envelope {
                txid: [0xab; 32],
                ref_block_bytes: [0, 1],
                ref_block_hash: [2; 8],
                expiration: 1_700_000_060_000,
                timestamp: 1_700_000_000_000,
                fee_limit: 1,
                memo: vec![],
                permission_id: 0,
            },
            intent: Intent::Trc20(Trc20Transfer {
                owner: key,
                token: "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf".parse().unwrap(),
                to: "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd".parse().unwrap(),
                amount: U256::from(15_000_500_000u64),
            }),
        };
        // The key's and the token's text come from the policy, encoded when it loaded;
        // the destination (no key or token) is encoded for the statement.
        let texts = |a: &str| policy.policy.address_text(&a.parse().unwrap()).into_owned();
        assert!(matches!(
            policy.policy.address_text(&key),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            policy
                .policy
                .address_text(&"TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd".parse().unwrap()),
            std::borrow::Cow::Owned(_)
        ));
        for a in [
            "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1",
            "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
            "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd",
        ] {
            assert_eq!(texts(a), a);
        }
        let got = statement(&policy, &key, &decoded, "payout-7", Verdict::Reject);
        let approve = statement(&policy, &key, &decoded, "payout-7", Verdict::Approve);
        assert_eq!(with_verdict(&approve, Verdict::Reject), got);
        assert_eq!(with_verdict(&approve, Verdict::Approve), approve);
        let want = format!(
            "tron-signer approval statement v1
decision: reject
network: nile
signing key: TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1 \"hot \\\"1\\\"\"
destination: TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd \"exchange\"
asset: USDT (TRC-20 contract TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf)
amount: 15000.5 USDT (15000500000 base units)
txid: {}
expires: 2023-11-14T22:14:20.000Z
payout id: payout-7
policy: {}
",
            "ab".repeat(32),
            policy.hash_hex()
        );
        assert_eq!(got, want);
    }
}
