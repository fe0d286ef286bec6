//! Runs the gRPC server on TCP or a Unix socket, with health, reflection, SIGHUP policy
//! reload and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tonic::transport::Server;
use tron_proto::signer::signer_server::SignerServer;

use super::connections::{LimitError, Limits};
use super::grpc::GrpcSigner;
use super::tls::{ServerTls, TlsListener};
use super::unix_socket::{self, SocketError};
use super::Core;
use crate::config::{ConnectionsConfig, Listen, UnixSocketConfig};
use crate::policy;
use crate::reason::ReasonCode;

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("unix socket: {0}")]
    Socket(#[from] SocketError),
    #[error("{0}")]
    Limits(#[from] LimitError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    /// The ledger stopped for good; a restart rebuilds the signer's state from the disk.
    #[error("the ledger stopped and cannot resume in this process: {0}")]
    LedgerFatal(String),
}

/// Where and how the server listens.
pub struct Transport<'a> {
    pub listen: &'a Listen,
    pub socket: &'a UnixSocketConfig,
    pub connections: &'a ConnectionsConfig,
    /// Mutual TLS for a TCP listener; `None` on a Unix socket or for loopback plaintext.
    pub tls: Option<Arc<ServerTls>>,
}

/// Re-reads the policy file on every SIGHUP, and the TLS certificate, key and client trust
/// with it. Settings that do not load leave the old ones in force; every outcome is logged
/// and audited.
pub fn spawn_reload_on_sighup(
    core: Arc<Core>,
    policy_path: PathBuf,
    tls: Option<Arc<ServerTls>>,
) -> Result<(), ServeError> {
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(tls) = &tls {
                reload_tls(&core, tls).await;
            }
            reload(&core, &policy_path).await;
        }
    });
    Ok(())
}

/// One reload of the TLS settings, for new connections; established ones keep theirs.
async fn reload_tls(core: &Core, tls: &ServerTls) {
    let outcome = tls.reload().map_err(|e| (e.code(), e.to_string()));
    match &outcome {
        Ok(()) => tracing::info!("TLS certificate, key and client trust reloaded"),
        Err((code, why)) => {
            tracing::error!(
                code,
                "TLS reload refused; the settings in force stay: {why}"
            )
        }
    }
    if let Err(r) = core.tls_reloaded("signal:SIGHUP", outcome).await {
        tracing::error!(code = %r.code, "TLS reload not audited: {}", r.message);
    }
}

/// One reload attempt.
pub async fn reload(core: &Core, policy_path: &std::path::Path) {
    let admitted = policy::load_file(policy_path)
        .map_err(|e| (ReasonCode::PolicyInvalid, e.to_string()))
        .and_then(|p| match core.admit_policy(&p) {
            Ok(a) => Ok((p, a)),
            Err(r) => Err((r.code, r.message)),
        });
    match admitted {
        Ok((p, admitted)) => {
            let hash = p.hash_hex();
            match core.replace_policy(p, &admitted, "signal:SIGHUP").await {
                Ok(seq) => tracing::info!(%hash, audit_sequence = seq, "policy reloaded"),
                Err(r) => {
                    tracing::error!(%hash, code = %r.code, "policy reload not recorded, so not put in force; the old policy stays: {}", r.message)
                }
            }
        }
        Err((code, problems)) => {
            tracing::error!(path = %policy_path.display(), %code, "policy reload refused; the old policy stays in force:\n{problems}");
            if let Err(r) = core.reload_refused("signal:SIGHUP", code, &problems).await {
                tracing::error!(code = %r.code, "reload refusal not audited: {}", r.message);
            }
        }
    }
}

/// The largest request message the server decodes: the largest valid request is a
/// `SignRequest` with 64 KiB of `raw_data`, a 44-character key, a 128-byte payout id and the
/// most approvals taken, each at its largest signature and statement; 1 KiB on top holds the
/// other fields and the framing. A larger message is refused by tonic (OUT_OF_RANGE) from
/// its length prefix, before it is buffered or parsed, instead of tonic's 4 MiB default.
pub const MAX_REQUEST_BYTES: usize = crate::decode::MAX_RAW_DATA_LEN
    + 1024
    + crate::approval::check::MAX_APPROVALS
        * (crate::approval::check::MAX_SIGNATURE_BYTES
            + crate::approval::check::MAX_STATEMENT_BYTES
            + 16);

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until `shutdown` resolves, then drains for at most [`SHUTDOWN_GRACE`] so that a
/// client holding a connection open cannot keep the signer from stopping. A ledger that
/// stopped for good stops the server the same way and is returned as
/// [`ServeError::LedgerFatal`], so the process exits non-zero and its supervisor restarts it.
pub async fn serve(
    core: Arc<Core>,
    transport: Transport<'_>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<Option<String>>();
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel::<String>();
    let signal = async move {
        let fatal = tokio::select! {
            _ = shutdown => None,
            Ok(why) = fatal_rx => Some(why),
        };
        let _ = stopping_tx.send(fatal);
    };
    let serving = serve_until(core, transport, fatal_tx, signal);
    tokio::pin!(serving);
    let fatal = tokio::select! {
        r = &mut serving => return r,
        stopping = stopping_rx => stopping.ok().flatten(),
    };
    let drained = match tokio::time::timeout(SHUTDOWN_GRACE, serving).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                "connections still open after the shutdown grace period; stopping anyway"
            );
            Ok(())
        }
    };
    match fatal {
        Some(why) => Err(ServeError::LedgerFatal(why)),
        None => drained,
    }
}

async fn serve_until(
    core: Arc<Core>,
    transport: Transport<'_>,
    fatal: tokio::sync::oneshot::Sender<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Transport {
        listen,
        socket,
        connections,
        tls,
    } = transport;
    // Caps, timeouts and HTTP/2 limits on connections (issue 11, item 4).
    let limits = Limits::new(connections)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let (store, clock) = (core.ledger().health(), core.clock_alarm());
    // Set before the first connection is accepted; `follow` keeps it current from then on.
    let initial = super::health::status(&store.borrow(), &clock.borrow());
    super::health::set(&reporter, initial).await;
    tokio::spawn(async move {
        let why = super::health::follow(reporter, store, clock).await;
        let _ = fatal.send(why);
    });
    // Both reflection versions: grpcurl speaks v1, many client libraries still v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tron_proto::signer::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tron_proto::signer::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    // Health and reflection requests are a name or two: the same cap holds them easily.
    let router = limits
        .server(Server::builder())
        .add_service(health.max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(reflection.max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(reflection_alpha.max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(
            SignerServer::new(GrpcSigner::new(core)).max_decoding_message_size(MAX_REQUEST_BYTES),
        );
    match listen {
        Listen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind {
                    listen: listen.to_string(),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| ServeError::Bind {
                listen: listen.to_string(),
                source,
            })?;
            match tls {
                Some(tls) => {
                    tracing::info!(listen = %local, "serving gRPC over mutual TLS 1.3");
                    let listener = TlsListener::new(listener, tls, connections.handshake_timeout);
                    router
                        .serve_with_incoming_shutdown(limits.incoming(listener), shutdown)
                        .await?;
                }
                None => {
                    // The config allows this only on loopback with insecure_plaintext.
                    tracing::warn!(listen = %local, "serving gRPC in PLAINTEXT (insecure_plaintext)");
                    router
                        .serve_with_incoming_shutdown(limits.tcp(listener), shutdown)
                        .await?;
                }
            }
        }
        Listen::Unix(path) => {
            let listener = unix_socket::bind(path, socket)?;
            tracing::info!(listen = %listen, mode = format!("{:04o}", socket.mode), "serving gRPC");
            let incoming = limits.unix(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}
