//! Test certificates for the mutual-TLS tests, made with rcgen: a CA, a server certificate
//! for `localhost` and 127.0.0.1, and client certificates (under that CA, under another CA,
//! expired), written as PEM files with owner-only keys, plus the rustls client settings a
//! test connects with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority that can issue certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// An issued certificate and its key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// DER of the certificate, for reading its key fingerprint.
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, mut params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("issue certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// The signer's certificate: `localhost` and 127.0.0.1.
    pub fn server(&self) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params
            .distinguished_name
            .push(DnType::CommonName, "tron-signer test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate named `cn`, valid now (or expired since 2021 when `expired`).
    pub fn client(&self, cn: &str, expired: bool) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names.push(SanType::URI(
            format!("spiffe://test/{cn}").try_into().expect("uri"),
        ));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        self.issue(params)
    }
}

impl Issued {
    /// Writes `NAME.pem` and `NAME.key` (mode 0600) under `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        write_private(&key, &self.key_pem);
        (cert, key)
    }

    /// The SHA-256 of this certificate's SubjectPublicKeyInfo, hex: what a pin names.
    pub fn pin(&self) -> String {
        let info = tron_signer::service::tls::client_cert(&self.der, false).expect("readable cert");
        hex::encode(info.spki_sha256)
    }
}

/// Writes `text` to a new file readable by its owner only.
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create private file");
    f.write_all(text.as_bytes()).expect("write private file");
}

/// Client settings trusting `server_ca`, presenting `client` (or no certificate).
pub fn client_config(server_ca: &Ca, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.pem().as_bytes()).expect("CA pem"))
        .expect("CA root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).expect("cert pem")],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key pem"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}
