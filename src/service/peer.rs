//! Who is on the other end, as the transport established it: the client certificate's public
//! key (its SHA-256, what pins name), subject and alternative names on TLS; uid, gid and pid
//! on the Unix socket; the exporter's key of a batch file. Shared by the transports that fill
//! it in and the decision core, which asks the policy who that is ([`Peer::presented`]).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::policy::Presented;

/// One request's transport identity.
#[derive(Debug, Clone)]
pub enum Peer {
    Tls(TlsConnectInfo),
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    /// A Unix socket peer whose credentials could not be read: recognised as no one.
    UnixUnknown,
    /// Plaintext TCP, which the config allows on loopback only (`insecure_plaintext`).
    PlainTcp(SocketAddr),
    /// An item of a batch file; `exporter` is the Ed25519 key whose signature over the file
    /// verified.
    Batch {
        file: String,
        exporter: [u8; 32],
    },
    /// The signer acting on its own (`"signal:SIGHUP"`): audited, never granted an RPC.
    Internal(&'static str),
}

impl Peer {
    /// What the policy's `[[caller]]` recognitions are matched against.
    pub fn presented(&self) -> Presented<'_> {
        match self {
            Peer::Tls(info) => Presented::Tls {
                spki_sha256: &info.client.spki_sha256,
                subject: &info.client.subject,
                sans: &info.client.sans,
                ca_verified: info.client.ca_verified,
            },
            Peer::Unix { uid, .. } => Presented::Unix { uid: *uid },
            Peer::PlainTcp(_) => Presented::LoopbackPlaintext,
            Peer::Batch { exporter, .. } => Presented::BatchExporter { ed25519: exporter },
            Peer::UnixUnknown | Peer::Internal(_) => Presented::Internal,
        }
    }

    /// The peer as audit records and budgets name it (`tls:spki=…`, `unix:uid=…`,
    /// `tcp:127.0.0.1:5000`, `batch:file,exporter=…`).
    pub fn describe(&self) -> String {
        match self {
            Peer::Tls(info) => info.caller(),
            Peer::Unix { uid, gid, pid } => format!(
                "unix:uid={uid},gid={gid},pid={}",
                pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
            ),
            Peer::UnixUnknown => "unix:unknown".into(),
            Peer::PlainTcp(a) => format!("tcp:{a}"),
            Peer::Batch { file, exporter } => {
                format!(
                    "batch:{file},exporter={}",
                    crate::policy::caller::ed25519_fingerprint(exporter)
                )
            }
            Peer::Internal(what) => (*what).to_owned(),
        }
    }
}

/// The connect info of a TLS connection, on every request it carries.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    pub remote: SocketAddr,
    pub client: Arc<ClientCert>,
}

/// What the verified client certificate says about its holder.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 of the DER SubjectPublicKeyInfo: stable across re-issued certificates for the
    /// same key, and what `[tls] client_pins` lists.
    pub spki_sha256: [u8; 32],
    /// The subject distinguished name, RFC 4514 style (`CN=payments,O=Example`).
    pub subject: String,
    /// Subject alternative names: `dns:…`, `uri:…` (a `spiffe://` id among them), `ip:…`.
    pub sans: Vec<String>,
    /// Whether the certificate was verified against `[tls] client_ca` (its names are then
    /// the CA's word) rather than accepted for a pinned key.
    pub ca_verified: bool,
}

impl TlsConnectInfo {
    /// The caller as audit records and budgets name it: the key fingerprint first (what
    /// identifies the client), then the subject and the peer address.
    pub fn caller(&self) -> String {
        format!(
            "tls:spki={},subject={:?},peer={}",
            hex::encode(self.client.spki_sha256),
            self.client.subject,
            self.remote
        )
    }
}
