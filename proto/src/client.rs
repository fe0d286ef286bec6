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

/// A `Signer` client on a fresh channel.
pub async fn signer_client(endpoint: &str) -> Result<SignerClient<Channel>, ConnectError> {
    Ok(SignerClient::new(connect(endpoint).await?))
}
