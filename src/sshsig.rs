//! SSH signatures (the SSHSIG format `ssh-keygen -Y sign` writes), checked the way
//! `ssh-keygen -Y verify` checks them: the namespace must be ours for the purpose, and the
//! signature must verify under the key it names. Whether that key may sign for anything is
//! the caller's question (the policy's callers, approvers or administrators).

use ssh_key::public::KeyData;
use ssh_key::SshSig;

/// The key types a person signs with (approvers, policy administrators): Ed25519, ECDSA
/// P-256, and their FIDO2 hardware-backed forms.
pub const PERSONAL_KEY_TYPES: [&str; 4] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Why an SSH signature was not accepted. Messages never quote the armored text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshSigError {
    #[error("not an SSH signature (-----BEGIN SSH SIGNATURE----- … as ssh-keygen -Y sign writes it): {0}")]
    NotArmored(String),
    #[error("signed for namespace {found:?}, not {expected:?}: a signature made for another purpose never counts here")]
    Namespace { expected: String, found: String },
    #[error("the signature does not verify under the key it names ({key}): it was made over other content or altered")]
    Invalid { key: String },
}

/// A verified signature: the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key: KeyData,
}

impl Verified {
    /// The Ed25519 public key, if the signature was made with one.
    pub fn ed25519(&self) -> Option<[u8; 32]> {
        self.key.ed25519().map(|k| k.0)
    }

    /// `SHA256:…`, the fingerprint `ssh-keygen -l` prints.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
    }
}

/// Verifies `armored` over `message` under `namespace`.
pub fn verify(armored: &str, namespace: &str, message: &[u8]) -> Result<Verified, SshSigError> {
    let sig =
        SshSig::from_pem(armored.trim()).map_err(|e| SshSigError::NotArmored(e.to_string()))?;
    if sig.namespace() != namespace {
        return Err(SshSigError::Namespace {
            expected: namespace.to_owned(),
            found: sig.namespace().chars().take(64).collect(),
        });
    }
    let key = sig.public_key().clone();
    let public = ssh_key::PublicKey::from(key.clone());
    public
        .verify(namespace, message, &sig)
        .map_err(|_| SshSigError::Invalid {
            key: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        })?;
    Ok(Verified { key })
}

/// Signs `bytes` with `ssh-keygen -Y sign -n NAMESPACE -f KEY` (the bytes on its standard
/// input, the armored signature from its standard output), so a FIDO2 key asks for a touch
/// and a public key file signs through `ssh-agent`; its prompts reach the terminal. The error
/// says what failed, with at most 400 bytes of what ssh-keygen printed.
pub fn ssh_keygen_sign(
    key: &std::path::Path,
    namespace: &str,
    bytes: &[u8],
) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run it ({e}); install openssh-client (ssh-keygen 8.1 or later)")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(bytes)
            .map_err(|e| format!("cannot pass it the text to sign: {e}"))?;
    }
    let done = child.wait_with_output().map_err(|e| e.to_string())?;
    if !done.status.success() {
        let err = String::from_utf8_lossy(&done.stderr);
        return Err(format!(
            "signing failed ({}): {}",
            done.status,
            err.trim().chars().take(400).collect::<String>()
        ));
    }
    String::from_utf8(done.stdout).map_err(|_| "its output is not text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[9; 32]))
    }

    fn sign(ns: &str, msg: &[u8]) -> String {
        key()
            .sign(ns, ssh_key::HashAlg::Sha512, msg)
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap()
    }

    /// OpenSSH's `sk-ssh-ed25519@openssh.com` signature of "testing" under namespace
    /// "example", as published with RustCrypto's ssh-key test vectors (made by a hardware
    /// authenticator): FIDO2 signatures verify through the same path.
    #[test]
    fn a_published_sk_ed25519_vector_verifies() {
        const SIG: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAEoAAAAac2stc3NoLWVkMjU1MTlAb3BlbnNzaC5jb20AAAAg1KgSUW
V4f6c3zcWguqp6kmM37LsazmWufupeMGpBnK4AAAAEc3NoOgAAAAdleGFtcGxlAAAAAAAA
AAZzaGE1MTIAAABnAAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAQC9WcLb5NG
XRdCOHinQIS/MxdnAx7SQMYnyOt5q4+huTWh/Zk/UvWhP+wXl/ikNPlDpgliRq6o3VyKqS
LLo9lQYBAAAACQ==
-----END SSH SIGNATURE-----";
        const KEY: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAINSoElFleH+nN83FoLqqepJjN+y7Gs5lrn7qXjBqQZyuAAAABHNzaDo=";
        let v = verify(SIG, "example", b"testing").unwrap();
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        assert_eq!(v.key, *key.key_data());
        assert_eq!(v.ed25519(), None, "an sk- key is not a plain Ed25519 key");
        assert!(matches!(
            verify(SIG, "example", b"testinG"),
            Err(SshSigError::Invalid { .. })
        ));
    }

    #[test]
    fn accepts_only_our_namespace_and_the_signed_content() {
        let armored = sign("tron-batch-export", b"digest");
        let ok = verify(&armored, "tron-batch-export", b"digest").unwrap();
        assert_eq!(
            ok.ed25519(),
            Some(key().public_key().key_data().ed25519().unwrap().0)
        );
        assert!(ok.fingerprint().starts_with("SHA256:"));
        assert!(matches!(
            verify(&armored, "tron-batch-export", b"other"),
            Err(SshSigError::Invalid { .. })
        ));
        assert!(matches!(
            verify(&sign("git", b"digest"), "tron-batch-export", b"digest"),
            Err(SshSigError::Namespace { .. })
        ));
        assert!(matches!(
            verify("hello", "tron-batch-export", b"digest"),
            Err(SshSigError::NotArmored(_))
        ));
    }
}
