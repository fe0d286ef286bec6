//! Connecting to a signer over TCP (`http://host:port`, or bare `host:port`) or a Unix
//! socket (`unix:/path`), for the broadcaster, the load generator and tests.

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::signer::signer_client::SignerClient;

/// Why a signer endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid signer endpoint {endpoint:?}: {detail}")]
    BadEndpoint { endpoint: String, detail: String },
    #[error("cannot connect to signer at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
}

/// Opens one HTTP/2 channel to the signer.
pub async fn connect(endpoint: &str) -> Result<Channel, ConnectError> {
    if let Some(path) = endpoint.strip_prefix("unix:") {
        let path = path.to_owned();
        // The URI is a placeholder: the connector below ignores it.
        let ep = Endpoint::try_from("http://[::1]:1").map_err(|e| ConnectError::BadEndpoint {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?;
        return ep
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| ConnectError::Connect {
                endpoint: endpoint.into(),
                source,
            });
    }
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let ep = Endpoint::from_shared(url).map_err(|e| ConnectError::BadEndpoint {
        endpoint: endpoint.into(),
        detail: e.to_string(),
    })?;
    ep.tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ConnectError::Connect {
            endpoint: endpoint.into(),
            source,
        })
}

/// Opens one HTTP/2 channel to the signer at `addr` (`host:port`) over mutual TLS, with a
/// rustls client configuration the caller built (the signer's CA or pinned key, and the
/// client's own certificate and key); `server_name` is what the signer's certificate must
/// name (a DNS name or an IP address).
pub async fn connect_tls(
    addr: &str,
    server_name: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<Channel, ConnectError> {
    let bad = |detail: String| ConnectError::BadEndpoint {
        endpoint: addr.into(),
        detail,
    };
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| bad(format!("server name {server_name:?}: {e}")))?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    // The URI is a placeholder: the connector below dials `addr` itself.
    let ep = Endpoint::try_from("http://[::1]:1").map_err(|e| bad(e.to_string()))?;
    let addr_owned = addr.to_owned();
    ep.connect_with_connector(tower::service_fn(move |_: Uri| {
        let (addr, name, connector) = (addr_owned.clone(), name.clone(), connector.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    }))
    .await
    .map_err(|source| ConnectError::Connect {
        endpoint: addr.into(),
        source,
    })
}

/// A `Signer` client on a fresh channel.
pub async fn signer_client(endpoint: &str) -> Result<SignerClient<Channel>, ConnectError> {
    Ok(SignerClient::new(connect(endpoint).await?))
}
