//! The exporter's key: the Ed25519 SSH key this broadcaster signs its batch files with, so
//! the offline signer knows which caller a file comes from (its policy lists the public key
//! as a `[[caller]]` `batch_key`). Made with `ssh-keygen -t ed25519 -N '' -f exporter`; the
//! file must be the owner's alone and unencrypted (the broadcaster runs unattended). It can
//! sign batch files and nothing else: a signature is made under the batch namespace only.

use std::path::Path;

use tron_proto::batch::{ExporterSignature, UnsignedBatch, EXPORTER_NAMESPACE};

/// Why the exporter key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ExporterKeyError {
    #[error("batch_signing_key {path}: {detail}")]
    File { path: String, detail: String },
    #[error("batch_signing_key {path}: permissions {mode:04o} are too open; the exporter key must be readable by its owner only (chmod 600)")]
    TooOpen { path: String, mode: u32 },
    #[error("batch_signing_key {path}: {detail}")]
    Key { path: String, detail: String },
    #[error("signing the batch failed: {0}")]
    Sign(String),
}

impl ExporterKeyError {
    pub fn code(&self) -> &'static str {
        match self {
            ExporterKeyError::File { .. } => "batch_signing_key_unreadable",
            ExporterKeyError::TooOpen { .. } => "batch_signing_key_too_open",
            ExporterKeyError::Key { .. } => "batch_signing_key_invalid",
            ExporterKeyError::Sign(_) => "batch_signing_failed",
        }
    }
}

/// A loaded exporter key. Its `Debug` shows the public half only.
pub struct ExporterKey {
    key: ssh_key::PrivateKey,
}

impl std::fmt::Debug for ExporterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExporterKey({})", self.public_line())
    }
}

impl ExporterKey {
    /// Reads an unencrypted OpenSSH Ed25519 private key that only its owner may read.
    pub fn load(path: &Path) -> Result<ExporterKey, ExporterKeyError> {
        let shown = path.display().to_string();
        let file_err = |detail: String| ExporterKeyError::File {
            path: shown.clone(),
            detail,
        };
        let file = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file
                .metadata()
                .map_err(|e| file_err(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(ExporterKeyError::TooOpen {
                    path: shown,
                    mode: mode & 0o7777,
                });
            }
        }
        let mut text = zeroize::Zeroizing::new(Vec::new());
        std::io::Read::read_to_end(&mut &file, &mut text).map_err(|e| file_err(e.to_string()))?;
        let key_err = |detail: &str| ExporterKeyError::Key {
            path: shown.clone(),
            detail: detail.to_owned(),
        };
        // The parser's error is not quoted: it could describe the key's bytes.
        let key = ssh_key::PrivateKey::from_openssh(&*text).map_err(|_| {
            key_err("not an OpenSSH private key (ssh-keygen -t ed25519 writes one)")
        })?;
        if key.is_encrypted() {
            return Err(key_err(
                "the key is passphrase-protected; the exporter key is used unattended (ssh-keygen -N '')",
            ));
        }
        if key.key_data().ed25519().is_none() {
            return Err(key_err(&format!(
                "it is an {} key; batch files are signed with Ed25519 (ssh-keygen -t ed25519)",
                key.algorithm()
            )));
        }
        Ok(ExporterKey { key })
    }

    /// The public key line (`ssh-ed25519 AAAA…`) to put in the signer policy's `batch_key`.
    pub fn public_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| "ssh-ed25519 ?".into())
    }

    /// Signs `batch`'s content digest and attaches the signature.
    pub fn sign(&self, batch: &mut UnsignedBatch) -> Result<(), ExporterKeyError> {
        let digest = batch.content_digest();
        let sig = self
            .key
            .sign(
                EXPORTER_NAMESPACE,
                ssh_key::HashAlg::Sha512,
                digest.as_bytes(),
            )
            .map_err(|e| ExporterKeyError::Sign(e.to_string()))?;
        let signature = sig
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|e| ExporterKeyError::Sign(e.to_string()))?;
        batch.exporter = Some(ExporterSignature { signature, digest });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_key(dir: &Path, mode: u32) -> std::path::PathBuf {
        let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[4; 32]));
        let path = dir.join("exporter");
        std::fs::write(
            &path,
            key.to_openssh(ssh_key::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_open_key_file_is_refused_and_debug_shows_only_the_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), 0o644);
        let e = ExporterKey::load(&path).unwrap_err();
        assert_eq!(e.code(), "batch_signing_key_too_open");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = ExporterKey::load(&path).unwrap();
        let shown = format!("{k:?}");
        assert!(shown.starts_with("ExporterKey(ssh-ed25519 AAAA"), "{shown}");
        assert!(!shown.contains("PRIVATE"));
    }

    #[test]
    fn a_file_that_is_not_an_ed25519_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            ExporterKey::load(&path).unwrap_err().code(),
            "batch_signing_key_invalid"
        );
        assert_eq!(
            ExporterKey::load(&dir.path().join("absent"))
                .unwrap_err()
                .code(),
            "batch_signing_key_unreadable"
        );
    }

    #[test]
    fn signs_the_content_digest_under_the_batch_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let k = ExporterKey::load(&write_key(dir.path(), 0o600)).unwrap();
        let mut b = UnsignedBatch {
            created_at_ms: 1,
            network: "nile".into(),
            items: Vec::new(),
            exporter: None,
        };
        k.sign(&mut b).unwrap();
        let e = b.exporter.clone().unwrap();
        let sig = ssh_key::SshSig::from_pem(&e.signature).unwrap();
        assert_eq!(sig.namespace(), EXPORTER_NAMESPACE);
        let public = k.key.public_key();
        public
            .verify(EXPORTER_NAMESPACE, b.content_digest().as_bytes(), &sig)
            .unwrap();
        // Round trip through the file keeps the signature verifiable.
        let back = UnsignedBatch::from_json_bytes(&b.to_json_bytes()).unwrap();
        public
            .verify(
                EXPORTER_NAMESPACE,
                back.exporter.unwrap().digest.as_bytes(),
                &sig,
            )
            .unwrap();
    }
}
