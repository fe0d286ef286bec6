//! Starting the service from a configuration: unlock keys, load policy, open the ledger,
//! serve until SIGTERM or Ctrl-C.

use std::future::Future;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::Config;
use crate::keys::KeyRing;
use crate::keystore::{backend, Keystore, KeystoreError};
use crate::ledger::{Ledger, LedgerError};
use crate::policy::{self, PolicyLoadError};
use crate::secret_source::SecretSourceError;
use crate::service::core::system_clock;
use crate::service::server::{self, ServeError};
use crate::service::Core;

/// Why the service did not start. Messages name files and causes, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("keystore passphrase: {0}")]
    Passphrase(#[from] SecretSourceError),
    #[error("keystore {path}: {source}")]
    Keystore { path: String, source: KeystoreError },
    #[error("policy refused, not starting:\n{0}")]
    Policy(#[from] PolicyLoadError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("two keys have the same address {0}")]
    DuplicateKey(tron_proto::Address),
    #[error("{0}")]
    Serve(#[from] ServeError),
}

impl StartError {
    /// Stable code, for scripts that start the service.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Passphrase(e) => e.code(),
            StartError::Keystore { source, .. } => source.code(),
            StartError::Policy(e) => e.code(),
            StartError::Ledger(e) => e.code(),
            StartError::DuplicateKey(_) => "duplicate_key",
            StartError::Serve(_) => "serve_failed",
        }
    }
}

/// Builds the decision core from a configuration, reading the passphrase from its source.
pub fn build_core(cfg: &Config) -> Result<Arc<Core>, StartError> {
    let passphrase = cfg.keystore.passphrase.read_secret("keystore passphrase")?;
    build_core_with(cfg, passphrase)
}

/// Builds the decision core with a passphrase already in hand.
pub fn build_core_with(cfg: &Config, passphrase: SecretString) -> Result<Arc<Core>, StartError> {
    let store =
        Keystore::open(&cfg.keystore.path, &passphrase).map_err(|source| StartError::Keystore {
            path: cfg.keystore.path.display().to_string(),
            source,
        })?;
    drop(passphrase);
    let policy = policy::load_file(&cfg.policy)?;
    let mut keys = KeyRing::default();
    let n = backend::add_to_ring(Arc::new(store), &mut keys).map_err(StartError::DuplicateKey)?;
    tracing::info!(keys = n, "keystore unlocked");
    for k in policy.policy.keys() {
        if keys.get(k).is_none() {
            tracing::warn!(key = %k, "the policy names a key that is not loaded; requests for it are refused");
        }
    }
    let clock = system_clock();
    // Retain enough history for the longest window any policy may ever use, so a reload
    // that lengthens a window never undercounts.
    let ledger = Ledger::open(&cfg.data_dir, policy::MAX_WINDOW_MS, clock())?;
    tracing::info!(policy = %policy.hash_hex(), name = %policy.name, "policy in force");
    Ok(Arc::new(Core::new(keys, policy, ledger, clock)))
}

/// Runs the service until `shutdown` resolves, reloading the policy on SIGHUP.
pub async fn run(
    cfg: &Config,
    core: Arc<Core>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    server::spawn_reload_on_sighup(Arc::clone(&core), cfg.policy.clone())?;
    server::serve(core, &cfg.listen, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            // Without handlers the default disposition (terminate) still applies.
            std::future::pending::<()>().await;
        }
    }
}
