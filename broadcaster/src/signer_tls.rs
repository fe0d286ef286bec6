//! Mutual TLS to a signer on TCP: the broadcaster presents its own client certificate (which
//! the signer trusts under its CA or by the key's pin) and accepts the signer only with a
//! certificate under the configured CA, or with the pinned key (SHA-256 of its
//! SubjectPublicKeyInfo), TLS 1.3 only. The client key must be readable by its owner only: a
//! leaked key lets anyone ask the signer in the broadcaster's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[signer_tls]` in the broadcaster's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerTls {
    /// The CA bundle (PEM) the signer's server certificate must chain to ...
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// ... or the SHA-256 (hex) of the signer's SubjectPublicKeyInfo: exactly one of the two.
    #[serde(default)]
    pub server_pin: Option<String>,
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs("cert", &self.cert)?;
        let key = key(&self.key)?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| SignerTlsError::Config(e.to_string()))?;
        let builder = match (&self.ca, &self.server_pin) {
            (Some(ca), None) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs("ca", ca)? {
                    roots.add(cert).map_err(|e| SignerTlsError::File {
                        field: "ca",
                        path: ca.display().to_string(),
                        detail: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            (None, Some(pin)) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedSigner::new(pin, provider)?)),
            _ => {
                return Err(SignerTlsError::Config(
                    "exactly one of ca and server_pin is needed".into(),
                ))
            }
        };
        let config = builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| SignerTlsError::Config(format!("key and certificate: {e}")))?;
        Ok(Arc::new(config))
    }
}

/// Accepts exactly the signer whose public key is pinned, while its certificate is within
/// its validity period; the handshake's CertificateVerify proves it holds the key. The
/// server name is not checked: the pin, not a CA's word about a name, identifies the signer.
#[derive(Debug)]
struct PinnedSigner {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedSigner {
    fn new(
        pin: &str,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, SignerTlsError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(pin.strip_prefix("sha256:").unwrap_or(pin), &mut bytes).map_err(
            |_| {
                SignerTlsError::Config(
                    "server_pin is not 64 hex digits (the SHA-256 of a SubjectPublicKeyInfo)"
                        .into(),
                )
            },
        )?;
        Ok(PinnedSigner {
            pin: bytes,
            provider,
        })
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedSigner {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::{Digest, Sha256};
        let bad = |e| rustls::Error::InvalidCertificate(e);
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| bad(rustls::CertificateError::BadEncoding))?;
        let pin: [u8; 32] = Sha256::digest(cert.tbs_certificate.subject_pki.raw).into();
        if pin != self.pin {
            return Err(bad(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        let at = i64::try_from(now.as_secs())
            .ok()
            .and_then(|s| x509_parser::time::ASN1Time::from_timestamp(s).ok())
            .ok_or_else(|| bad(rustls::CertificateError::BadEncoding))?;
        if !cert.validity().is_valid_at(at) {
            return Err(bad(rustls::CertificateError::Expired));
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
