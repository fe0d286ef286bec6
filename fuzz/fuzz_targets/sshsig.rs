//! Fuzzes the armored SSHSIG parser and verifier (`sshsig::verify`): approvals, batch
//! exporter signatures and policy signatures all go through it.
//!
//! Properties: a refused signature is one of the three refusals, and for a namespace or
//! key mismatch names what it saw; a signature that verifies over the fuzz message under
//! the approval namespace fails over any other message and under any other namespace, and
//! names a `SHA256:` fingerprint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tron_signer::approval::NAMESPACE;
use tron_signer::sshsig::{verify, SshSigError};

/// What the seed signatures sign (`ssh-keygen -Y sign -n tron-signer-approval`).
const MESSAGE: &[u8] = b"tron-signer fuzz message\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match verify(text, NAMESPACE, MESSAGE) {
        Ok(v) => {
            assert!(v.fingerprint().starts_with("SHA256:"));
            assert!(matches!(
                verify(text, NAMESPACE, b"tron-signer fuzz message\n."),
                Err(SshSigError::Invalid { .. })
            ));
            assert!(matches!(
                verify(text, "tron-batch-export", MESSAGE),
                Err(SshSigError::Namespace { .. })
            ));
        }
        Err(SshSigError::NotArmored(m)) => assert!(!m.is_empty()),
        Err(SshSigError::Namespace { expected, found }) => {
            assert_eq!(expected, NAMESPACE);
            assert_ne!(found, NAMESPACE);
            // The namespace is quoted cut to 64 characters, never the armored text.
            assert!(found.chars().count() <= 64);
        }
        Err(SshSigError::Invalid { key }) => assert!(key.starts_with("SHA256:"), "{key}"),
    }
});
