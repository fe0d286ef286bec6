//! The dev mode's throwaway PKI: a CA, the signer's certificate (for `localhost`, 127.0.0.1
//! and the address it listens on) and one client certificate, made once under the dev
//! directory, so the quickstart serves mutual TLS like a deployment and shows how a client
//! calls it. The keys are written owner-only; none of this is for real funds.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files of the dev PKI.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Why the dev PKI could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    #[error("dev certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("dev certificate file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("dev client settings: {0}")]
    Client(String),
}

impl DevPki {
    /// The files under `dir`; made now unless all of them are already there.
    pub fn ensure(dir: &Path, listen_ip: IpAddr) -> Result<DevPki, DevPkiError> {
        let pki = DevPki {
            ca: dir.join("dev-ca.pem"),
            server_cert: dir.join("dev-server.pem"),
            server_key: dir.join("dev-server.key"),
            client_cert: dir.join("dev-client.pem"),
            client_key: dir.join("dev-client.key"),
        };
        let all = [
            &pki.ca,
            &pki.server_cert,
            &pki.server_key,
            &pki.client_cert,
            &pki.client_key,
        ];
        if all.iter().all(|p| p.exists()) {
            return Ok(pki);
        }
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tron-signer dev CA (throwaway)");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
        for ip in [IpAddr::from([127, 0, 0, 1]), listen_ip] {
            if !ip.is_unspecified() && !server.subject_alt_names.contains(&SanType::IpAddress(ip)) {
                server.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        server
            .distinguished_name
            .push(DnType::CommonName, "tron-signer dev");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server.signed_by(&server_key, &ca, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "tron-signer dev client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &ca, &ca_key)?;

        write(&pki.ca, &ca.pem(), false)?;
        write(&pki.server_cert, &server.pem(), false)?;
        write(&pki.server_key, &server_key.serialize_pem(), true)?;
        write(&pki.client_cert, &client.pem(), false)?;
        write(&pki.client_key, &client_key.serialize_pem(), true)?;
        Ok(pki)
    }

    /// The client settings the demo connects with: the dev CA, the dev client certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, DevPkiError> {
        let file_err = |path: &Path, e: rustls::pki_types::pem::Error| DevPkiError::File {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_file(&self.ca).map_err(|e| file_err(&self.ca, e))?;
        roots
            .add(ca)
            .map_err(|e| DevPkiError::Client(e.to_string()))?;
        let cert = CertificateDer::from_pem_file(&self.client_cert)
            .map_err(|e| file_err(&self.client_cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&self.client_key)
            .map_err(|e| file_err(&self.client_key, e))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| DevPkiError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| DevPkiError::Client(e.to_string()))?;
        Ok(Arc::new(config))
    }

    /// How to call the dev signer at `addr` with grpcurl.
    pub fn grpcurl(&self, addr: &str) -> String {
        format!(
            "grpcurl -cacert {} -cert {} -key {} -authority localhost {addr} list",
            self.ca.display(),
            self.client_cert.display(),
            self.client_key.display()
        )
    }
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), DevPkiError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| DevPkiError::File {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}
