//! Fuzzes the armored SSHSIG parser and verifier (`sshsig::verify`): approvals, batch
//! exporter signatures and policy signatures all go through it.
//!
//! Properties: a refused signature is one of the three refusals, and for a namespace or
//! key mismatch names what it saw; a signature that verifies over the fuzz message under
//! the approval namespace fails over any other message and under any other namespace, and
//! names a `SHA256:` fingerprint; and whatever it is, it is accepted exactly when ssh-key's
//! own verification accepts it (the signer verifies plain Ed25519 signatures on a key point
//! decoded once, the way ssh-key does on one it decodes each time).
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
    let ours = verify(text, NAMESPACE, MESSAGE);
    if let Ok(sig) = ssh_key::SshSig::from_pem(text.trim()) {
        let theirs = ssh_key::PublicKey::from(sig.public_key().clone())
            .verify(NAMESPACE, MESSAGE, &sig)
            .is_ok();
        assert_eq!(ours.is_ok(), theirs, "ssh-key decides otherwise");
    }
    match ours {
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
