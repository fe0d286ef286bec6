//! Mutual TLS on the TCP listener: TLS 1.3 only, a client certificate required, trusted
//! either through a CA bundle or by pinning each client's public key (SHA-256 of its
//! SubjectPublicKeyInfo). Nothing on TCP is served without it unless the operator asked for
//! plaintext on loopback (`insecure_plaintext`, checked by the config).
//!
//! Each handshake runs in its own task under the connection handshake deadline, so a slow or
//! silent client never holds up accepting others; at most [`MAX_HANDSHAKES`] run at once, at
//! most [`MAX_HANDSHAKES_PER_PEER`] from one address. A failed handshake is logged with the
//! peer address, at most once per [`FAILURE_LOG_INTERVAL`] with a count of the others.
//!
//! SIGHUP re-reads the certificate, key and client trust ([`ServerTls::reload`]); new
//! connections use the new settings, established ones keep theirs, and settings that do not
//! load leave the old ones in force.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;

use super::connections::{Accept, PeerAddr};
use super::peer::{ClientCert, TlsConnectInfo};
use crate::config::TlsConfig;
use crate::private_file::{self, PrivateFileError};

/// Handshakes in progress at once, all peers together.
pub const MAX_HANDSHAKES: usize = 128;
/// Handshakes in progress at once from one address; more are closed at once.
pub const MAX_HANDSHAKES_PER_PEER: usize = 8;
/// At most one log line about failed handshakes per this interval.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why the TLS settings could not be put in force. Messages name files, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert {path}: {detail}")]
    Cert { path: String, detail: String },
    #[error("tls.key {path}: {source}")]
    KeyFile {
        path: String,
        source: PrivateFileError,
    },
    #[error("tls.key {path}: {detail}")]
    Key { path: String, detail: String },
    #[error("tls.client_ca {path}: {detail}")]
    ClientCa { path: String, detail: String },
    #[error("tls.client_pins: {0}")]
    Pins(String),
    #[error("the TLS settings do not fit together: {0}")]
    Config(String),
}

impl TlsError {
    /// Stable code, for start-up failures and audit records of refused reloads.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Cert { .. } => "tls_cert_invalid",
            TlsError::KeyFile {
                source: PrivateFileError::TooOpen { .. },
                ..
            } => "tls_key_too_open",
            TlsError::KeyFile {
                source: PrivateFileError::NotOwned { .. },
                ..
            } => "tls_key_not_owned",
            TlsError::KeyFile { .. } | TlsError::Key { .. } => "tls_key_invalid",
            TlsError::ClientCa { .. } => "tls_client_ca_invalid",
            TlsError::Pins(_) => "tls_client_pins_invalid",
            TlsError::Config(_) => "tls_config_invalid",
        }
    }
}

/// The server's TLS settings in force, and where they are read from.
pub struct ServerTls {
    /// The config file whose `[tls]` section a reload reads again (pins live there).
    config_path: Option<PathBuf>,
    source: RwLock<TlsConfig>,
    /// The rustls config in force, and whether it trusts clients through a CA (rather than
    /// by pinned keys): a certificate's names identify a caller only in the first case.
    current: RwLock<(Arc<ServerConfig>, bool)>,
}

impl ServerTls {
    /// Reads the certificate, key and client trust named by `source`; `config_path` is the
    /// file it came from, read again on reload.
    pub fn load(source: &TlsConfig, config_path: Option<PathBuf>) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            current: RwLock::new((Arc::new(build(source)?), source.client_ca.is_some())),
            source: RwLock::new(source.clone()),
            config_path,
        })
    }

    /// Reads the config's `[tls]` section and the files it names again and, if they load,
    /// puts them in force for new connections (established ones keep theirs). On an error the
    /// settings in force stay. Nothing else in the config is re-read.
    pub fn reload(&self) -> Result<(), TlsError> {
        let source = match &self.config_path {
            Some(path) => crate::config::Config::load(path)
                .map_err(|e| TlsError::Config(e.to_string()))?
                .tls
                .ok_or_else(|| {
                    TlsError::Config(
                        "the config no longer has a [tls] section; the listener stays TLS".into(),
                    )
                })?,
            None => self
                .source
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let fresh = (Arc::new(build(&source)?), source.client_ca.is_some());
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = source;
        Ok(())
    }

    /// An acceptor for the settings in force, and whether they verify clients by CA.
    fn acceptor(&self) -> (tokio_rustls::TlsAcceptor, bool) {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let (config, by_ca) = &*current;
        (tokio_rustls::TlsAcceptor::from(Arc::clone(config)), *by_ca)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(cfg: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(&cfg.cert).map_err(|detail| TlsError::Cert {
        path: cfg.cert.display().to_string(),
        detail,
    })?;
    let key = read_key(&cfg.key)?;
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match (&cfg.client_ca, cfg.client_pins.is_empty()) {
        (Some(ca), true) => {
            let ca_err = |detail: String| TlsError::ClientCa {
                path: ca.display().to_string(),
                detail,
            };
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca).map_err(ca_err)? {
                roots
                    .add(cert)
                    .map_err(|e| ca_err(format!("not a usable CA certificate: {e}")))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| ca_err(e.to_string()))?
        }
        (None, false) => Arc::new(PinnedClients::new(&cfg.client_pins, Arc::clone(&provider))?),
        _ => {
            return Err(TlsError::Config(
                "exactly one of client_ca and client_pins is needed".into(),
            ))
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Key {
            path: cfg.key.display().to_string(),
            detail: format!("does not fit the certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Every certificate in a PEM file, in order; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// The private key, from a file only its owner may read (the keystore's rule).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let shown = || path.display().to_string();
    let bytes = private_file::read(path).map_err(|source| TlsError::KeyFile {
        path: shown(),
        source,
    })?;
    // The parser's error never quotes the key; only its kind is kept.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Key {
        path: shown(),
        detail: format!(
            "not an unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1): {}",
            pem_error_kind(&e)
        ),
    })
}

fn pem_error_kind(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match e {
        Error::NoItemsFound => "no key found",
        Error::MissingSectionEnd { .. } => "a section has no end",
        Error::IllegalSectionStart { .. } => "a malformed section start",
        Error::Base64Decode(_) => "bad base64",
        _ => "unreadable",
    }
}

/// Reads what a verified client certificate says about its holder.
pub fn client_cert(der: &[u8], ca_verified: bool) -> Result<ClientCert, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not X.509: {e}"))?;
    let spki_sha256 = Sha256::digest(cert.tbs_certificate.subject_pki.raw).into();
    let subject = cert.subject().to_string();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(format!("dns:{d}")),
                GeneralName::URI(u) => sans.push(format!("uri:{u}")),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(format!("ip:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(ClientCert {
        spki_sha256,
        subject,
        sans,
        ca_verified,
    })
}

/// Trusts exactly the clients whose public keys are pinned, while their certificate is
/// within its validity period. Possession of the key is proven by the handshake's
/// CertificateVerify signature, checked here with the provider's algorithms.
#[derive(Debug)]
struct PinnedClients {
    pins: HashSet<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl PinnedClients {
    fn new(pins: &[String], provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let mut set = HashSet::new();
        for (i, pin) in pins.iter().enumerate() {
            let hexed = pin.strip_prefix("sha256:").unwrap_or(pin);
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hexed, &mut bytes).map_err(|_| {
                TlsError::Pins(format!(
                    "entry {} is not 64 hex digits (the SHA-256 of a SubjectPublicKeyInfo)",
                    i + 1
                ))
            })?;
            if !set.insert(bytes) {
                return Err(TlsError::Pins(format!("entry {} is listed twice", i + 1)));
            }
        }
        Ok(PinnedClients {
            pins: set,
            provider,
        })
    }
}

fn refuse(why: rustls::CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(why)
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| refuse(rustls::CertificateError::BadEncoding))?;
        let pin: [u8; 32] = Sha256::digest(cert.tbs_certificate.subject_pki.raw).into();
        if !self.pins.contains(&pin) {
            return Err(refuse(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        let at = i64::try_from(now.as_secs())
            .ok()
            .and_then(|s| x509_parser::time::ASN1Time::from_timestamp(s).ok())
            .ok_or_else(|| refuse(rustls::CertificateError::BadEncoding))?;
        if !cert.validity().is_valid_at(at) {
            return Err(refuse(rustls::CertificateError::Expired));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An established TLS connection and who is on the other end.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = TlsConnectInfo;

    fn connect_info(&self) -> TlsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Handshakes in progress and the failure log's state.
#[derive(Default)]
struct Handshakes {
    running: usize,
    per_peer: HashMap<IpAddr, usize>,
    failed_since_log: u64,
    logged_at: Option<Instant>,
}

/// Releases a handshake's place when its task ends, however it ends.
struct Running {
    shared: Arc<Mutex<Handshakes>>,
    ip: IpAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut h = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        h.running = h.running.saturating_sub(1);
        if let Some(n) = h.per_peer.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.per_peer.remove(&self.ip);
            }
        }
    }
}

/// Accepts TCP connections and hands on those whose TLS handshake succeeded, for the
/// connection layer to admit under its caps.
pub struct TlsListener {
    tcp: TcpListener,
    tls: Arc<ServerTls>,
    timeout: Duration,
    shared: Arc<Mutex<Handshakes>>,
    /// `None` from a handshake that failed: it only wakes the listener, whose room for
    /// another handshake it freed.
    done_tx: mpsc::Sender<Option<TlsConn>>,
    done_rx: mpsc::Receiver<Option<TlsConn>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>, handshake_timeout: Duration) -> Self {
        let (done_tx, done_rx) = mpsc::channel(MAX_HANDSHAKES);
        TlsListener {
            tcp,
            tls,
            timeout: handshake_timeout,
            shared: Arc::new(Mutex::new(Handshakes::default())),
            done_tx,
            done_rx,
        }
    }

    /// Starts the handshake of one accepted connection, unless its peer already has
    /// [`MAX_HANDSHAKES_PER_PEER`] running (then the socket is closed at once).
    fn start(&self, stream: TcpStream, remote: SocketAddr) {
        let ip = remote.ip().to_canonical();
        let running = {
            let mut h = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let of_peer = h.per_peer.entry(ip).or_insert(0);
            if *of_peer >= MAX_HANDSHAKES_PER_PEER {
                drop(h);
                note_failure(&self.shared, remote, "too many handshakes from this peer");
                return;
            }
            *of_peer += 1;
            h.running += 1;
            Running {
                shared: Arc::clone(&self.shared),
                ip,
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(peer = %remote, "cannot set TCP_NODELAY: {e}");
        }
        let (acceptor, by_ca) = self.tls.acceptor();
        let timeout = self.timeout;
        let shared = Arc::clone(&self.shared);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Err(_) => Err("no completed handshake before the deadline".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(tls)) => identify(tls, remote, by_ca),
            };
            drop(running);
            let conn = match outcome {
                Ok(conn) => Some(conn),
                Err(why) => {
                    note_failure(&shared, remote, &why);
                    None
                }
            };
            // The listener gone means the server is stopping; the connection goes with it.
            let _ = done.send(conn).await;
        });
    }

    fn room(&self) -> bool {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
            < MAX_HANDSHAKES
    }
}

/// The verified client's identity, taken off the finished handshake.
fn identify(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    remote: SocketAddr,
    by_ca: bool,
) -> Result<TlsConn, String> {
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| "the client sent no certificate".to_owned())?;
    let client = client_cert(der, by_ca)?;
    Ok(TlsConn {
        inner: tls,
        info: TlsConnectInfo {
            remote,
            client: Arc::new(client),
        },
    })
}

/// Logs a failed handshake: the first at once, then at most one line per interval with
/// the number of failures since the last.
fn note_failure(shared: &Mutex<Handshakes>, remote: SocketAddr, why: &str) {
    crate::metrics::global().tls_refused();
    let mut h = shared.lock().unwrap_or_else(|p| p.into_inner());
    h.failed_since_log += 1;
    let now = Instant::now();
    if h.logged_at
        .is_none_or(|at| now.duration_since(at) >= FAILURE_LOG_INTERVAL)
    {
        let failed = std::mem::take(&mut h.failed_since_log);
        h.logged_at = Some(now);
        drop(h);
        tracing::warn!(
            peer = %remote,
            failed_since_last_report = failed,
            "TLS handshake refused: {why}"
        );
    }
}

impl Accept for TlsListener {
    type Io = TlsConn;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TlsConn, PeerAddr)>> {
        loop {
            match self.done_rx.poll_recv(cx) {
                Poll::Ready(Some(Some(conn))) => {
                    let peer = PeerAddr::Tcp(conn.info.remote);
                    return Poll::Ready(Ok((conn, peer)));
                }
                // A failed handshake freed a place: accept again.
                Poll::Ready(Some(None)) => continue,
                // Never: the listener holds a sender itself.
                Poll::Ready(None) | Poll::Pending => {}
            }
            if !self.room() {
                // Woken by the next handshake to finish, which frees a place.
                return Poll::Pending;
            }
            match self.tcp.poll_accept(cx) {
                Poll::Ready(Ok((stream, remote))) => self.start(stream, remote),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
