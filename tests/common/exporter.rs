//! A batch exporter for tests, with a real `ssh-keygen` key and real `ssh-keygen -Y sign`
//! signatures, so the signer is checked against the tool operators and auditors use.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use tron_proto::batch::{ExporterSignature, UnsignedBatch, EXPORTER_NAMESPACE};

/// An Ed25519 SSH key made by `ssh-keygen`.
pub struct Exporter {
    _dir: TempDir,
    pub key: PathBuf,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_line: String,
}

impl Exporter {
    pub fn new(comment: &str) -> Exporter {
        Exporter::of_type("ed25519", comment)
    }

    /// A key of another `ssh-keygen -t` type (`ecdsa`): not one an exporter may use.
    pub fn of_type(kind: &str, comment: &str) -> Exporter {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("exporter");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen runs (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_line = std::fs::read_to_string(key.with_extension("pub"))
            .expect("public key")
            .trim()
            .to_owned();
        Exporter {
            _dir: dir,
            key,
            public_line,
        }
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints the key's fingerprint.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.key.with_extension("pub"))
            .output()
            .expect("ssh-keygen -l");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint field")
            .to_owned()
    }

    /// The `[[caller]]` section recognising this exporter, with `rpcs` for `keys`.
    pub fn caller(&self, name: &str, rpcs: &str, keys: &str) -> String {
        format!(
            "\n[[caller]]\nname = \"{name}\"\nbatch_key = \"{}\"\nrpcs = {rpcs}\nkeys = {keys}\n",
            self.public_line
        )
    }

    /// `ssh-keygen -Y sign` over `message` under `namespace`: the armored signature.
    pub fn sign_text(&self, namespace: &str, message: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("digest");
        std::fs::write(&file, message).expect("write digest");
        let out = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(&self.key)
            .arg(&file)
            .output()
            .expect("ssh-keygen -Y sign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(sig_path(&file)).expect("signature file")
    }

    /// Asserts that `ssh-keygen -Y verify` alone, with an allowed-signers file naming this
    /// key as `name`, accepts `signature` over `message` under `namespace`: what an auditor
    /// runs on an audit export.
    pub fn assert_verifies(&self, name: &str, namespace: &str, signature: &str, message: &str) {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(&allowed, format!("{name} {}\n", self.public_line)).expect("write");
        let sig = dir.path().join("message.sig");
        std::fs::write(&sig, signature).expect("write");
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", namespace, "-I", name, "-f"])
            .arg(&allowed)
            .arg("-s")
            .arg(&sig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ssh-keygen -Y verify");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("ssh-keygen -Y verify");
        assert!(
            out.status.success(),
            "ssh-keygen -Y verify refused {name}'s signature: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Signs `batch` as the broadcaster does.
    pub fn sign(&self, batch: &mut UnsignedBatch) {
        let digest = batch.content_digest();
        let signature = self.sign_text(EXPORTER_NAMESPACE, &digest);
        batch.exporter = Some(ExporterSignature { signature, digest });
    }
}

fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}
