//! Fuzzes the policy loader (`policy::parse`, the path every policy file takes).
//!
//! Properties: a refused file lists at least one problem, each with a code, a message and a
//! position inside the text; an accepted file has keys and callers, is identified by the
//! sha256 of its exact bytes, and loads to the same policy with a comment line appended
//! (the section-by-section loader must not depend on where the text ends).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tron_signer::policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match policy::parse(text, "fuzz.toml") {
        Ok(loaded) => {
            assert_eq!(loaded.hash, policy::hash_bytes(data));
            assert_eq!(u64::from(loaded.version), policy::FORMAT_VERSION);
            assert!(
                loaded.policy.keys().next().is_some(),
                "accepted with no key"
            );
            let longer = format!("{text}\n# appended by the fuzzer\n");
            match policy::parse(&longer, "fuzz.toml") {
                Ok(again) => {
                    assert_eq!(again.policy, loaded.policy);
                    assert_eq!(again.name, loaded.name);
                    assert_eq!(again.revision, loaded.revision);
                }
                Err(e) => panic!("accepted text refused with a comment appended: {e}"),
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused without a problem");
            assert_eq!(e.code(), "policy_invalid");
            let lines = text.matches('\n').count() + 1;
            for p in &e.problems {
                assert!(!p.code.as_str().is_empty());
                assert!(!p.message.is_empty(), "problem without a message: {p:?}");
                assert!(
                    p.line >= 1 && p.line <= lines,
                    "line out of the text: {p:?}"
                );
                assert!(p.column >= 1, "column 0: {p:?}");
            }
        }
    }
});
