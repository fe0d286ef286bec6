//! Fuzzes the batch file parsers (`UnsignedBatch::from_json_bytes`, what `batch sign` reads,
//! and `SignedBatch::from_json_bytes`, what the broadcaster reads back).
//!
//! The first byte picks the kind (low bit) and whether the target first makes the file's
//! checksum right (second bit), so that mutations of a seed reach the checks behind it
//! instead of all stopping at `batch_bad_checksum`.
//!
//! Properties: a refused file has a `batch_` code; an accepted file written out again
//! (`to_json_bytes`) reads back to the same batch, and for an unsigned one the digest an
//! exporter signs is the one `content_digest` computes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tron_proto::batch::{checksum_of, BatchError, SignedBatch, UnsignedBatch};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fixed;
    let bytes = if mode & 2 != 0 {
        match with_checksum(rest) {
            Some(b) => {
                fixed = b;
                &fixed[..]
            }
            None => rest,
        }
    } else {
        rest
    };
    if mode & 1 == 0 {
        unsigned(bytes);
    } else {
        signed(bytes);
    }
});

/// `bytes` with `checksum` set to what its content hashes to, if it is a JSON object.
fn with_checksum(bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    map.remove("checksum");
    let sum = checksum_of(&Value::Object(map.clone()));
    map.insert("checksum".into(), Value::String(sum));
    serde_json::to_vec(&Value::Object(map)).ok()
}

fn refused(e: &BatchError) {
    assert!(e.code().starts_with("batch_"), "{}", e.code());
    assert!(!e.to_string().is_empty());
}

fn unsigned(bytes: &[u8]) {
    match UnsignedBatch::from_json_bytes(bytes) {
        Ok(b) => {
            let out = b.to_json_bytes();
            let back = match UnsignedBatch::from_json_bytes(&out) {
                Ok(back) => back,
                Err(e) => panic!("an accepted batch written out is refused: {e}"),
            };
            // The digest is of the file as read: the same content, but a file may spell it
            // differently (upper-case hex, an empty `approvals` list), so compare it apart.
            let want = b.content_digest();
            let strip = |mut x: UnsignedBatch| {
                if let Some(e) = &mut x.exporter {
                    e.digest.clear();
                }
                x
            };
            if let Some(e) = &back.exporter {
                assert_eq!(e.digest, want, "written-out digest is not content_digest");
            }
            assert_eq!(strip(back), strip(b));
        }
        Err(e) => refused(&e),
    }
}

fn signed(bytes: &[u8]) {
    match SignedBatch::from_json_bytes(bytes) {
        Ok(b) => match SignedBatch::from_json_bytes(&b.to_json_bytes()) {
            Ok(back) => assert_eq!(back, b),
            Err(e) => panic!("an accepted answer file written out is refused: {e}"),
        },
        Err(e) => refused(&e),
    }
}
