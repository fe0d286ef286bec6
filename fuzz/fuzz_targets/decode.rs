//! Fuzzes the strict decoder: it must never panic, and whatever it accepts must
//! re-encode to exactly the input (so the txid covers everything that was decided on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tron_signer::decode::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode(data) {
        assert_eq!(
            encode(&d),
            data,
            "accepted input does not re-encode to itself"
        );
        assert_eq!(d.envelope.txid, tron_proto::txid(data));
    }
});
