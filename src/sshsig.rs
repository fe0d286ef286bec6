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
        fingerprint(&self.key)
    }
}

/// A public key read once (from a policy) and checked many times: a plain Ed25519 key is
/// kept as its decoded curve point, so a signature check does not decode it again, and a key
/// that is no point on the curve is refused when it is read instead of failing every
/// signature later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedKey {
    data: KeyData,
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

impl PreparedKey {
    /// Prepares `data`; the error says why the key can never verify anything.
    pub fn new(data: KeyData) -> Result<PreparedKey, String> {
        let point = match &data {
            KeyData::Ed25519(k) => Some(k.0),
            KeyData::SkEd25519(k) => Some(k.public_key().0),
            _ => None,
        };
        let decoded = point
            .map(|p| ed25519_dalek::VerifyingKey::from_bytes(&p))
            .transpose()
            .map_err(|_| "its Ed25519 public key is not a point on the curve".to_owned())?;
        // FIDO2 keys sign other bytes (ssh-key builds them); only plain keys take the fast path.
        let ed25519 = decoded.filter(|_| matches!(data, KeyData::Ed25519(_)));
        Ok(PreparedKey { data, ed25519 })
    }

    /// The key as the policy names it.
    pub fn data(&self) -> &KeyData {
        &self.data
    }
}

/// An SSH signature read and found to be in the expected namespace, not yet verified: the
/// key it names says whose it claims to be, so an unknown key is turned away before any
/// curve arithmetic is spent on it.
#[derive(Debug, Clone)]
pub struct Parsed(SshSig);

/// Reads `armored` and checks that it was made for `namespace`.
pub fn parse(armored: &str, namespace: &str) -> Result<Parsed, SshSigError> {
    let armored = armored.trim();
    let sig = match canonical(armored) {
        Some(sig) => sig,
        None => SshSig::from_pem(armored).map_err(|e| SshSigError::NotArmored(e.to_string()))?,
    };
    if sig.namespace() != namespace {
        return Err(SshSigError::Namespace {
            expected: namespace.to_owned(),
            found: sig.namespace().chars().take(64).collect(),
        });
    }
    Ok(Parsed(sig))
}

/// The longest Base64 body [`canonical`] reads; a longer signature (none of the key types
/// we take makes one) goes through ssh-key's reader.
const CANONICAL_MAX_BASE64: usize = 2048;

/// `armored` (trimmed) read quickly when it is exactly what `ssh-keygen -Y sign` writes: the
/// armor lines, LF line ends, and Base64 wrapped at 70 columns. `None` for any other text,
/// which ssh-key's PEM reader (constant-time Base64, for secret-bearing PEM) then reads, so
/// what is accepted and every error are ssh-key's: the canonical form is one ssh-key accepts
/// too, and the same SSHSIG decoder reads the bytes. The signature is public, so its Base64
/// needs no constant-time decoding.
fn canonical(armored: &str) -> Option<SshSig> {
    use base64::Engine as _;
    use ssh_encoding::{Decode as _, Reader as _};
    let body = armored
        .strip_prefix("-----BEGIN SSH SIGNATURE-----\n")?
        .strip_suffix("\n-----END SSH SIGNATURE-----")?;
    let mut base64 = [0u8; CANONICAL_MAX_BASE64];
    let mut len = 0;
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let full = line.len() == 70;
        if !(full || (lines.peek().is_none() && !line.is_empty() && line.len() < 70)) {
            return None;
        }
        base64
            .get_mut(len..len + line.len())?
            .copy_from_slice(line.as_bytes());
        len += line.len();
    }
    let mut bytes = [0u8; CANONICAL_MAX_BASE64 / 4 * 3];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(&base64[..len], &mut bytes)
        .ok()?;
    let mut reader = &bytes[..n];
    let sig = SshSig::decode(&mut reader).ok()?;
    reader.is_finished().then_some(sig)
}

impl Parsed {
    /// The key the signature says made it (unproven until [`Parsed::verify`]).
    pub fn key(&self) -> &KeyData {
        self.0.public_key()
    }

    /// The fingerprint of [`Parsed::key`].
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.public_key())
    }

    /// Verifies the signature over `message` under `key`, which must be the key it names.
    pub fn verify(&self, key: &PreparedKey, message: &Message<'_>) -> Result<(), SshSigError> {
        let invalid = || SshSigError::Invalid {
            key: self.fingerprint(),
        };
        let sig = &self.0;
        if sig.public_key() != key.data() {
            return Err(invalid());
        }
        match &key.ed25519 {
            // What ssh-key does for this key type, on the point decoded once and the digest
            // of the message computed once: the same signed data (namespace, reserved, hash
            // of the message) and the same verification equation (ed25519-dalek's
            // cofactorless `verify`, which also refuses a non-canonical `s`).
            Some(point)
                if sig.algorithm() == ssh_key::Algorithm::Ed25519 && sig.reserved().is_empty() =>
            {
                use ed25519_dalek::Verifier as _;
                let signature = ed25519_dalek::Signature::from_slice(sig.signature().as_bytes())
                    .map_err(|_| invalid())?;
                let digest = message.digest(sig.hash_alg()).ok_or_else(invalid)?;
                let data = signed_data(sig.namespace(), sig.hash_alg(), digest);
                point.verify(&data, &signature).map_err(|_| invalid())
            }
            _ => ssh_key::PublicKey::from(key.data().clone())
                .verify(sig.namespace(), message.bytes, sig)
                .map_err(|_| invalid()),
        }
    }
}

/// The content signatures are checked over, with each digest SSHSIG may sign computed at
/// most once: the approvals of one statement share it.
#[derive(Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    sha256: std::cell::OnceCell<[u8; 32]>,
    sha512: std::cell::OnceCell<[u8; 64]>,
}

impl<'a> Message<'a> {
    pub fn new(bytes: &'a [u8]) -> Message<'a> {
        Message {
            bytes,
            sha256: std::cell::OnceCell::new(),
            sha512: std::cell::OnceCell::new(),
        }
    }

    /// The content's digest under `alg`; `None` for an algorithm SSHSIG does not define.
    fn digest(&self, alg: ssh_key::HashAlg) -> Option<&[u8]> {
        use sha2::Digest as _;
        match alg {
            ssh_key::HashAlg::Sha256 => Some(
                self.sha256
                    .get_or_init(|| sha2::Sha256::digest(self.bytes).into()),
            ),
            ssh_key::HashAlg::Sha512 => Some(
                self.sha512
                    .get_or_init(|| sha2::Sha512::digest(self.bytes).into()),
            ),
            _ => None,
        }
    }
}

/// What an SSHSIG signature signs (PROTOCOL.sshsig): the magic preamble, then as SSH strings
/// (a big-endian u32 length and the bytes) the namespace, the reserved field (empty on this
/// path), the hash algorithm's name and the message's digest under it.
fn signed_data(namespace: &str, alg: ssh_key::HashAlg, digest: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(6 + 16 + namespace.len() + 6 + digest.len());
    data.extend_from_slice(b"SSHSIG");
    for field in [namespace.as_bytes(), b"", alg.as_str().as_bytes(), digest] {
        // SSHSIG fields are far below 4 GiB: a namespace is ours, a digest 64 bytes.
        data.extend_from_slice(&(field.len() as u32).to_be_bytes());
        data.extend_from_slice(field);
    }
    data
}

/// `SHA256:…` of `key`.
fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

/// Verifies `armored` over `message` under `namespace`, with the key it names.
pub fn verify(armored: &str, namespace: &str, message: &[u8]) -> Result<Verified, SshSigError> {
    let parsed = parse(armored, namespace)?;
    let key = PreparedKey::new(parsed.key().clone()).map_err(|_| SshSigError::Invalid {
        key: parsed.fingerprint(),
    })?;
    parsed.verify(&key, &Message::new(message))?;
    Ok(Verified { key: key.data })
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
    /// authenticator and armored by ssh-keygen).
    const PUBLISHED_SK_SIG: &str = "-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAAEoAAAAac2stc3NoLWVkMjU1MTlAb3BlbnNzaC5jb20AAAAg1KgSUW
V4f6c3zcWguqp6kmM37LsazmWufupeMGpBnK4AAAAEc3NoOgAAAAdleGFtcGxlAAAAAAAA
AAZzaGE1MTIAAABnAAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAQC9WcLb5NG
XRdCOHinQIS/MxdnAx7SQMYnyOt5q4+huTWh/Zk/UvWhP+wXl/ikNPlDpgliRq6o3VyKqS
LLo9lQYBAAAACQ==
-----END SSH SIGNATURE-----";

    /// OpenSSH's `sk-ssh-ed25519@openssh.com` signature of "testing" under namespace
    /// "example", as published with RustCrypto's ssh-key test vectors (made by a hardware
    /// authenticator): FIDO2 signatures verify through the same path.
    #[test]
    fn a_published_sk_ed25519_vector_verifies() {
        const KEY: &str = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAINSoElFleH+nN83FoLqqepJjN+y7Gs5lrn7qXjBqQZyuAAAABHNzaDo=";
        let v = verify(PUBLISHED_SK_SIG, "example", b"testing").unwrap();
        let key = ssh_key::PublicKey::from_openssh(KEY).unwrap();
        assert_eq!(v.key, *key.key_data());
        assert_eq!(v.ed25519(), None, "an sk- key is not a plain Ed25519 key");
        assert!(matches!(
            verify(PUBLISHED_SK_SIG, "example", b"testinG"),
            Err(SshSigError::Invalid { .. })
        ));
    }

    /// The prepared Ed25519 path decides exactly as ssh-key's own verification does: good
    /// signatures under SHA-512 and SHA-256, altered content, another key's signature, a
    /// signature whose named key is swapped, and altered signature bytes.
    #[test]
    fn the_prepared_path_agrees_with_ssh_key() {
        let other =
            ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[10; 32]));
        let prepared = PreparedKey::new(key().public_key().key_data().clone()).unwrap();
        assert!(
            prepared.ed25519.is_some(),
            "a plain Ed25519 key is decoded once"
        );
        let ns = "tron-signer-approval";
        let signed = |k: &ssh_key::PrivateKey, h, m: &[u8]| k.sign(ns, h, m).unwrap();
        // A good signature of "m" with its 64 signature bytes changed by `edit`.
        let edited = |edit: &dyn Fn(&mut [u8])| {
            let good = signed(&key(), ssh_key::HashAlg::Sha512, b"m");
            let mut bytes = good.signature_bytes().to_vec();
            edit(&mut bytes);
            let sig = ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, bytes).unwrap();
            SshSig::new(good.public_key().clone(), ns, good.hash_alg(), sig).unwrap()
        };
        let altered = edited(&|b| b[3] ^= 1);
        // The same signature with L (the group order) added to its `s`: the equation still
        // holds, but a non-canonical `s` is refused by both (no malleable approvals).
        let unreduced = edited(&|b| add_group_order(&mut b[32..]));
        let swapped = SshSig::new(
            other.public_key().key_data().clone(),
            ns,
            ssh_key::HashAlg::Sha512,
            signed(&key(), ssh_key::HashAlg::Sha512, b"m")
                .signature()
                .clone(),
        )
        .unwrap();
        let cases = [
            (signed(&key(), ssh_key::HashAlg::Sha512, b"m"), true),
            (signed(&key(), ssh_key::HashAlg::Sha256, b"m"), true),
            (signed(&key(), ssh_key::HashAlg::Sha512, b"n"), false),
            (signed(&other, ssh_key::HashAlg::Sha512, b"m"), false),
            (swapped, false),
            (altered, false),
            (unreduced, false),
        ];
        // One message for every case: its digests are computed once and shared, as the
        // approvals of one statement share them.
        let message = Message::new(b"m");
        for (i, (sig, valid)) in cases.into_iter().enumerate() {
            let theirs = key().public_key().verify(ns, b"m", &sig).is_ok();
            let ours = Parsed(sig).verify(&prepared, &message);
            assert_eq!(theirs, valid, "case {i}: ssh-key");
            assert_eq!(ours.is_ok(), valid, "case {i}: prepared path");
            if let Err(e) = ours {
                assert!(matches!(e, SshSigError::Invalid { .. }), "case {i}: {e}");
            }
        }
    }

    /// What ssh-keygen writes is read by the fast path, to the same signature ssh-key's PEM
    /// reader makes of it; any other form (CRLF line ends, another wrapping, a stray
    /// character, trailing bytes) is left to ssh-key's reader, which decides as before.
    #[test]
    fn the_canonical_armor_reads_as_ssh_key_reads_it() {
        let ns = "tron-signer-approval";
        for alg in [ssh_key::HashAlg::Sha512, ssh_key::HashAlg::Sha256] {
            let sig = key().sign(ns, alg, b"m").unwrap();
            let lf = sig.to_pem(ssh_key::LineEnding::LF).unwrap();
            assert_eq!(canonical(lf.trim()), Some(sig.clone()));
            assert_eq!(SshSig::from_pem(lf.trim()).unwrap(), sig);
            let crlf = sig.to_pem(ssh_key::LineEnding::CRLF).unwrap();
            assert_eq!(canonical(crlf.trim()), None);
            assert_eq!(parse(&crlf, ns).unwrap().0, sig, "ssh-key reads CRLF");
        }
        // ssh-keygen's own output (the published FIDO2 vector): the fast path reads it.
        assert_eq!(
            canonical(PUBLISHED_SK_SIG),
            Some(SshSig::from_pem(PUBLISHED_SK_SIG).unwrap())
        );
        let good = sign(ns, b"m");
        let good = good.trim();
        let body_start = good.find('\n').unwrap() + 1;
        let rewrapped = {
            let (head, rest) = good.split_at(body_start);
            format!("{head}{}", rest.replacen('\n', "", 1))
        };
        let mut stray = good.to_owned();
        stray.replace_range(body_start + 5..body_start + 6, "*");
        let mut spaced = good.to_owned();
        spaced.replace_range(body_start + 5..body_start + 6, " ");
        // The SSHSIG blob with four more bytes after it, armored as ssh-keygen armors.
        let trailing = {
            use base64::Engine as _;
            let mut raw = Vec::new();
            ssh_encoding::Encode::encode(
                &key().sign(ns, ssh_key::HashAlg::Sha512, b"m").unwrap(),
                &mut raw,
            )
            .unwrap();
            raw.extend_from_slice(&[0; 4]);
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(70)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----",
                lines.join("\n")
            )
        };
        for (name, text) in [
            ("rewrapped", rewrapped.as_str()),
            ("stray character", stray.as_str()),
            ("space", spaced.as_str()),
            ("trailing bytes", trailing.as_str()),
            (
                "empty body",
                "-----BEGIN SSH SIGNATURE-----\n\n-----END SSH SIGNATURE-----",
            ),
        ] {
            assert_eq!(canonical(text), None, "{name}");
            let theirs = SshSig::from_pem(text).ok();
            assert_eq!(parse(text, ns).ok().map(|p| p.0), theirs, "{name}");
        }
    }

    /// The signed data built from a digest computed once is byte for byte what ssh-key builds
    /// from the message, under both hash algorithms SSHSIG defines.
    #[test]
    fn signed_data_matches_ssh_key() {
        for body in [&b""[..], b"m", &[0xa5; 1000]] {
            let message = Message::new(body);
            for alg in [ssh_key::HashAlg::Sha256, ssh_key::HashAlg::Sha512] {
                let theirs = SshSig::signed_data("tron-signer-approval", alg, body).unwrap();
                let ours = signed_data("tron-signer-approval", alg, message.digest(alg).unwrap());
                assert_eq!(ours, theirs, "{alg:?} over {} bytes", body.len());
            }
        }
    }

    /// Adds the Ed25519 group order L to the little-endian scalar `s` (a signature's `s` is
    /// below L < 2^253, so the sum fits its 32 bytes).
    fn add_group_order(s: &mut [u8]) {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (b, l) in s.iter_mut().zip(L) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
    }

    /// curve25519-dalek picks its backend when the program runs (.cargo/config.toml):
    /// scripts/test.sh runs this module's and the approval check's tests again under
    /// qemu-x86_64 with an emulated CPU without AVX-512 IFMA, and one without AVX2 either.
    /// This test makes sure such a run saw the CPU it was meant for
    /// (`TRON_SIGNER_EXPECT_CPU`: `ifma`, `avx2` or `portable`) and verifies there.
    #[test]
    #[ignore = "run by scripts/test.sh under qemu-x86_64, with TRON_SIGNER_EXPECT_CPU set"]
    #[cfg(target_arch = "x86_64")]
    fn verifies_on_the_cpu_it_was_meant_for() {
        let expected = std::env::var("TRON_SIGNER_EXPECT_CPU")
            .expect("TRON_SIGNER_EXPECT_CPU names the CPU this run is for");
        let seen = if is_x86_feature_detected!("avx512ifma") && is_x86_feature_detected!("avx512vl")
        {
            "ifma"
        } else if is_x86_feature_detected!("avx2") {
            "avx2"
        } else {
            "portable"
        };
        assert_eq!(seen, expected, "the CPU this ran on");
        let prepared = PreparedKey::new(key().public_key().key_data().clone()).unwrap();
        let ns = "tron-signer-approval";
        let good = Parsed(key().sign(ns, ssh_key::HashAlg::Sha512, b"m").unwrap());
        assert!(good.verify(&prepared, &Message::new(b"m")).is_ok());
        assert!(matches!(
            good.verify(&prepared, &Message::new(b"n")),
            Err(SshSigError::Invalid { .. })
        ));
    }

    #[test]
    fn a_key_off_the_curve_is_refused_when_prepared() {
        let line = crate::test_util::off_curve_ed25519_line();
        let data = ssh_key::PublicKey::from_openssh(&line)
            .unwrap()
            .key_data()
            .clone();
        let err = PreparedKey::new(data).unwrap_err();
        assert!(err.contains("not a point on the curve"), "{err}");
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
