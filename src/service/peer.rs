//! Who is on the other end of a TLS connection, as the handshake established it: the client
//! certificate's public key (its SHA-256, what pins name), subject and alternative names.
//! Shared by the TLS listener that fills it in, the connection layer that carries it to each
//! request, and the gRPC front end that names the caller from it.

use std::net::SocketAddr;
use std::sync::Arc;

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
