//! Mutual TLS to a signer on TCP: the broadcaster presents its own client certificate (which
//! the signer trusts under its CA or by the key's pin) and accepts the signer only with a
//! certificate under the configured CA, TLS 1.3 only. The client key must be readable by its
//! owner only: a leaked key lets anyone ask the signer in the broadcaster's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[signer_tls]` in the broadcaster's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerTls {
    /// The CA bundle (PEM) the signer's server certificate must chain to.
    pub ca: PathBuf,
    /// This broadcaster's client certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (unencrypted PEM), mode 0600 or 0400.
    pub key: PathBuf,
    /// The name the signer's certificate must carry (DNS name or IP); default `localhost`.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Why the TLS settings for the signer could not be used. Never quotes key bytes.
#[derive(Debug, thiserror::Error)]
pub enum SignerTlsError {
    #[error("signer_tls.{field} {path}: {detail}")]
    File {
        field: &'static str,
        path: String,
        detail: String,
    },
    #[error(
        "signer_tls.key {path}: permissions {mode:04o} are too open; the client key is the \
         broadcaster's identity to the signer (chmod 600 it)"
    )]
    KeyTooOpen { path: String, mode: u32 },
    #[error("signer_tls: {0}")]
    Config(String),
}

impl SignerTlsError {
    pub fn code(&self) -> &'static str {
        match self {
            SignerTlsError::File { .. } => "signer_tls_file",
            SignerTlsError::KeyTooOpen { .. } => "signer_tls_key_too_open",
            SignerTlsError::Config(_) => "signer_tls_invalid",
        }
    }
}

impl SignerTls {
    /// The name the signer's certificate is checked against.
    pub fn server_name(&self) -> &str {
        self.server_name.as_deref().unwrap_or("localhost")
    }

    /// Reads the files and builds the client settings.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, SignerTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs("ca", &self.ca)? {
            roots.add(cert).map_err(|e| SignerTlsError::File {
                field: "ca",
                path: self.ca.display().to_string(),
                detail: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let chain = certs("cert", &self.cert)?;
        let key = key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SignerTlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| SignerTlsError::Config(format!("key and certificate: {e}")))?;
        Ok(Arc::new(config))
    }
}

fn certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, SignerTlsError> {
    let err = |detail: String| SignerTlsError::File {
        field,
        path: path.display().to_string(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, SignerTlsError> {
    let shown = path.display().to_string();
    let err = |detail: String| SignerTlsError::File {
        field: "key",
        path: shown.clone(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SignerTlsError::KeyTooOpen {
                path: shown.clone(),
                mode: mode & 0o7777,
            });
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| err(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| err("not an unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_client_key_is_refused_before_it_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.key");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = key(&path).unwrap_err();
        assert_eq!(e.code(), "signer_tls_key_too_open", "{e}");
        assert!(e.to_string().contains("0644"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(key(&path).is_ok(), "owner-only, it is read");
        // Not a PEM key: refused without quoting it.
        std::fs::write(&path, "AAAA pasted secret\n").unwrap();
        let e = key(&path).unwrap_err();
        assert_eq!(e.code(), "signer_tls_file", "{e}");
        assert!(!e.to_string().contains("AAAA"), "{e}");
    }
}
