//! Property tests: every accepted input re-encodes to itself, and random mutations of
//! valid transactions are either refused or decode to exactly what they encode.

use proptest::prelude::*;
use tron_proto::{Address, U256};
use tron_signer::decode::{decode, encode, Decoded, Envelope, Intent, Trc20Transfer, TrxTransfer};

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from_evm)
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        (address(), address(), 1..=i64::MAX as u64)
            .prop_map(|(owner, to, amount)| Intent::Trx(TrxTransfer { owner, to, amount })),
        (address(), address(), address(), any::<[u8; 32]>())
            .prop_filter("non-zero amount", |(_, _, _, a)| a.iter().any(|&b| b != 0))
            .prop_map(|(owner, token, to, a)| Intent::Trc20(Trc20Transfer {
                owner,
                token,
                to,
                amount: U256::from_be_bytes(a),
            })),
    ]
}

fn decoded() -> impl Strategy<Value = Decoded> {
    (
        intent(),
        any::<[u8; 2]>(),
        any::<[u8; 8]>(),
        1..=i64::MAX,
        0..=i64::MAX,
        0..=i64::MAX,
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(intent, rbb, rbh, expiration, timestamp, fee_limit, memo)| Decoded {
                envelope: Envelope {
                    txid: [0; 32],
                    ref_block_bytes: rbb,
                    ref_block_hash: rbh,
                    expiration,
                    timestamp,
                    fee_limit,
                    memo,
                    permission_id: 0,
                },
                intent,
            },
        )
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn apply(raw: &mut Vec<u8>, m: &Mutation) {
    let n = raw.len();
    match m {
        Mutation::Flip(i, x) => raw[i % n] ^= x,
        Mutation::Insert(i, b) => raw.insert(i % (n + 1), *b),
        Mutation::Delete(i) => {
            raw.remove(i % n);
        }
        Mutation::Truncate(i) => raw.truncate(i % n),
        Mutation::Append(b) => raw.extend_from_slice(b),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_transactions_round_trip(d in decoded()) {
        let raw = encode(&d);
        let back = decode(&raw).expect("a canonically encoded transfer must decode");
        prop_assert_eq!(&back.intent, &d.intent);
        prop_assert_eq!(back.envelope.txid, tron_proto::txid(&raw));
        prop_assert_eq!(encode(&back), raw);
    }

    #[test]
    fn mutations_are_refused_or_exact(d in decoded(), ms in proptest::collection::vec(mutation(), 1..4)) {
        let mut raw = encode(&d);
        for m in &ms {
            if raw.is_empty() { break; }
            apply(&mut raw, m);
        }
        if let Ok(back) = decode(&raw) {
            prop_assert_eq!(encode(&back), raw.clone());
            prop_assert_eq!(back.envelope.txid, tron_proto::txid(&raw));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(back) = decode(&raw) {
            prop_assert_eq!(encode(&back), raw);
        }
    }
}
