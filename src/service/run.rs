//! Starting the service from a configuration: unlock keys, load policy, open the ledger,
//! serve until SIGTERM or Ctrl-C.

use std::future::Future;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::{Config, KeystoreConfig, Pkcs11Section};
#[cfg(feature = "pkcs11")]
use crate::keys::pkcs11::{self, Pkcs11Error};
use crate::keys::soft::add_to_ring;
use crate::keys::soft::keystore::{Keystore, KeystoreError};
#[cfg(feature = "pkcs11")]
use crate::keys::KeyBackend;
use crate::keys::KeyRing;
use crate::ledger::{Ledger, LedgerError};
use crate::policy::{self, PolicyLoadError};
use crate::reason::ReasonCode;
use crate::secret_source::SecretSourceError;
use crate::service::connections::LimitError;
use crate::service::core::system_clock;
use crate::service::metrics_listener;
use crate::service::policy_gate;
use crate::service::server::{self, ServeError};
use crate::service::tls::{ServerTls, TlsError};
use crate::service::unix_socket::SocketError;
use crate::service::Core;

/// Why the service did not start. Messages name files and causes, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("keystore passphrase: {0}")]
    Passphrase(#[from] SecretSourceError),
    #[error("PKCS#11 user PIN: {0}")]
    Pin(SecretSourceError),
    #[error("[ledger] postgres url: {0}")]
    LedgerUrl(SecretSourceError),
    #[cfg(feature = "pkcs11")]
    #[error("PKCS#11 token {token:?} via {module}: {source}")]
    Pkcs11 {
        module: String,
        token: String,
        source: Pkcs11Error,
    },
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
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The policy file is not signed by the administrators' quorum, or would roll back the
    /// one recorded in force; or recording it failed.
    #[error("policy not put in force, not starting ({code}): {message}")]
    PolicyRefused { code: ReasonCode, message: String },
}

impl StartError {
    /// Stable code, for scripts that start the service.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Passphrase(e) | StartError::Pin(e) | StartError::LedgerUrl(e) => e.code(),
            #[cfg(feature = "pkcs11")]
            StartError::Pkcs11 { source, .. } => source.code(),
            StartError::Keystore { source, .. } => source.code(),
            StartError::Policy(e) => e.code(),
            StartError::Ledger(e) => e.code(),
            StartError::DuplicateKey(_) => "duplicate_key",
            StartError::Serve(ServeError::Socket(SocketError::NotASocket { .. })) => {
                "socket_path_not_a_socket"
            }
            StartError::Serve(ServeError::LedgerFatal(_)) => "ledger_fatal",
            StartError::Serve(ServeError::Limits(LimitError::FdLimit { .. })) => "fd_limit_too_low",
            StartError::Serve(_) => "serve_failed",
            StartError::Config(e) => e.code(),
            StartError::Tls(e) => e.code(),
            StartError::PolicyRefused { code, .. } => code.as_str(),
        }
    }
}

/// Builds the decision core from a configuration, reading the keystore passphrase and the
/// PKCS#11 PIN from their sources.
pub async fn build_core(cfg: &Config) -> Result<Arc<Core>, StartError> {
    // The policy is judged before the passphrase is even asked for: an unauthorised file
    // stops the start without touching the keystore or the token.
    let judged = judge_policy(cfg)?;
    let passphrase = match &cfg.keystore {
        Some(ks) => Some(ks.passphrase.read_secret("keystore passphrase")?),
        None => None,
    };
    build_core_from(cfg, judged, passphrase).await
}

/// The policy file, the ledger, and whether the policy may go into force (see
/// `policy_gate`).
struct Judged {
    policy: policy::LoadedPolicy,
    ledger: Ledger,
    admitted: policy_gate::Admitted,
}

fn judge_policy(cfg: &Config) -> Result<Judged, StartError> {
    let policy = policy::load_file(&cfg.policy)?;
    // Retain enough history for the longest window any policy may ever use, so a reload
    // that lengthens a window never undercounts.
    let ledger = match &cfg.ledger.postgres {
        None => Ledger::open(&cfg.data_dir, policy::MAX_WINDOW_MS, system_clock()())?,
        Some(pg) => {
            let url = pg
                .url
                .read_secret("the PostgreSQL connection string")
                .map_err(StartError::LedgerUrl)?;
            Ledger::open_postgres(
                secrecy::ExposeSecret::expose_secret(&url),
                pg.pool_size,
                &cfg.data_dir,
                policy::MAX_WINDOW_MS,
            )?
        }
    };
    let in_force = policy_in_force(cfg, &ledger, &policy)?;
    let admins =
        policy_gate::current_admins(cfg.policy_admins.as_ref().map(|a| &a.0), in_force.as_ref());
    let now = system_clock()();
    let admitted = policy_gate::admit(admins, ledger.policy_mark(), &policy, now).map_err(|r| {
        StartError::PolicyRefused {
            code: r.code,
            message: r.message,
        }
    })?;
    Ok(Judged {
        policy,
        ledger,
        admitted,
    })
}

/// With policy administrators configured: the policy the ledger recorded in force last,
/// when it is another file than `policy` (its `[policy_admins]`, if any, says who must sign
/// `policy`), read back from the archive. `None` when the same file starts again, or nothing
/// was ever recorded, or no administrators are configured.
fn policy_in_force(
    cfg: &Config,
    ledger: &Ledger,
    policy: &policy::LoadedPolicy,
) -> Result<Option<policy::LoadedPolicy>, StartError> {
    let Some(mark) = ledger.policy_mark().filter(|m| m.hash != policy.hash) else {
        return Ok(None);
    };
    if cfg.policy_admins.is_none() {
        return Ok(None);
    }
    let unknown = |why: String| StartError::PolicyRefused {
        code: ReasonCode::PolicyAdminsUnknown,
        message: format!(
            "the policy recorded in force last ({}) {why}, so the administrators who must \
             sign {} are unknown; restore the archive from a backup",
            hex::encode(mark.hash),
            policy.hash_hex()
        ),
    };
    let text = policy::archive::read(&cfg.data_dir, &mark.hash)
        .map_err(|e| unknown(format!("cannot be read from the archive: {e}")))?;
    policy::parse(&text, "the policy recorded in force last")
        .map(Some)
        .map_err(|e| unknown(format!("no longer loads: {e}")))
}

/// Builds the decision core with the keystore passphrase already in hand (the PKCS#11
/// PIN, if any, still comes from its source).
pub async fn build_core_with(
    cfg: &Config,
    passphrase: SecretString,
) -> Result<Arc<Core>, StartError> {
    let judged = judge_policy(cfg)?;
    build_core_from(cfg, judged, Some(passphrase)).await
}

async fn build_core_from(
    cfg: &Config,
    judged: Judged,
    passphrase: Option<SecretString>,
) -> Result<Arc<Core>, StartError> {
    let Judged {
        policy,
        ledger,
        admitted,
    } = judged;
    let admins = cfg.policy_admins.as_ref().map(|a| a.0.clone());
    let clock = system_clock();
    let mut keys = KeyRing::default();
    if let (Some(ks), Some(passphrase)) = (&cfg.keystore, passphrase) {
        add_keystore(ks, passphrase, &mut keys)?;
    }
    if let Some(section) = &cfg.pkcs11 {
        add_pkcs11(section, &mut keys)?;
    }
    for k in policy.policy.keys() {
        if keys.get(k).is_none() {
            tracing::warn!(key = %k, "the policy names a key that is not loaded; requests for it are refused");
        }
    }
    tracing::info!(policy = %policy.hash_hex(), name = %policy.name, revision = policy.revision, "policy in force");
    let core = Core::new(keys, policy, ledger, clock)
        .with_max_clock_advance(cfg.clock.max_advance_ms)
        .with_policy_admins(admins);
    let b = cfg.audit_budget.unwrap_or_default();
    let core = core.with_budgets(
        (
            b.bytes_per_second
                .unwrap_or(super::DEFAULT_BYTES_PER_SECOND),
            b.burst_bytes.unwrap_or(super::DEFAULT_BURST_BYTES),
        ),
        (
            b.unsigned_per_second
                .unwrap_or(super::DEFAULT_UNSIGNED_PER_SECOND),
            b.unsigned_burst.unwrap_or(super::DEFAULT_UNSIGNED_BURST),
        ),
    );
    core.record_policy_at_start(&admitted)
        .await
        .map_err(|r| StartError::PolicyRefused {
            code: r.code,
            message: r.message,
        })?;
    Ok(Arc::new(core))
}

fn add_keystore(
    ks: &KeystoreConfig,
    passphrase: SecretString,
    keys: &mut KeyRing,
) -> Result<(), StartError> {
    let store = Keystore::open(&ks.path, &passphrase).map_err(|source| StartError::Keystore {
        path: ks.path.display().to_string(),
        source,
    })?;
    drop(passphrase);
    let n = add_to_ring(Arc::new(store), keys).map_err(StartError::DuplicateKey)?;
    tracing::info!(keys = n, "keystore unlocked");
    Ok(())
}

/// Opens the token, logs in and loads every configured key. Blocking (PKCS#11 calls),
/// which is acceptable once at startup. Any failure stops the start: a wrong PIN is never
/// retried (that would lock it), and a key the config names but the token lacks is an
/// operator's mistake, not a transient fault.
#[cfg(feature = "pkcs11")]
fn add_pkcs11(section: &Pkcs11Section, keys: &mut KeyRing) -> Result<(), StartError> {
    let pin = section
        .pin
        .read_secret("PKCS#11 user PIN")
        .map_err(StartError::Pin)?;
    let cfg = &section.token;
    let (token, loaded) = pkcs11::load_backends(cfg, pin).map_err(|source| StartError::Pkcs11 {
        module: cfg.module.display().to_string(),
        token: cfg.token_label.clone(),
        source,
    })?;
    for key in loaded {
        tracing::info!(
            address = %key.address(),
            key = %key.selector(),
            token = %cfg.token_label,
            "PKCS#11 key loaded"
        );
        keys.insert(Arc::new(key))
            .map_err(StartError::DuplicateKey)?;
    }
    tracing::info!(
        sessions = token.stats().sessions_live,
        token = %cfg.token_label,
        "PKCS#11 token logged in"
    );
    Ok(())
}

/// A build without the `pkcs11` feature never reads a `[pkcs11]` section (the config
/// refuses it), so there is nothing to add.
#[cfg(not(feature = "pkcs11"))]
fn add_pkcs11(section: &Pkcs11Section, _keys: &mut KeyRing) -> Result<(), StartError> {
    match *section {}
}

/// The transport's security, checked and loaded before any key is unlocked: a config built
/// in code (the dev mode) never went through `Config::load`, so the plaintext rule is checked
/// again, and the TLS certificate, key and client trust are read.
pub fn prepare_transport(cfg: &Config) -> Result<Option<Arc<ServerTls>>, StartError> {
    cfg.check_transport(std::path::Path::new("(the configuration)"))?;
    match &cfg.tls {
        Some(t) => Ok(Some(Arc::new(ServerTls::load(t, cfg.source_path.clone())?))),
        None => Ok(None),
    }
}

/// Runs the service until `shutdown` resolves, reloading the policy (and the TLS settings)
/// on SIGHUP. `tls` is what [`prepare_transport`] loaded.
pub async fn run(
    cfg: &Config,
    core: Arc<Core>,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    server::spawn_reload_on_sighup(Arc::clone(&core), cfg.policy.clone(), tls.clone())?;
    let _metrics = match &cfg.metrics {
        Some(m) => {
            let listener =
                metrics_listener::bind(m.listen)
                    .await
                    .map_err(|source| ServeError::Bind {
                        listen: format!("[metrics] {}", m.listen),
                        source,
                    })?;
            tracing::info!(listen = %m.listen, "metrics listener ready");
            // Aborted when `run` returns, with the server.
            Some(AbortOnDrop(tokio::spawn(metrics_listener::serve(
                listener,
                Arc::clone(&core),
            ))))
        }
        None => None,
    };
    let transport = server::Transport {
        listen: &cfg.listen,
        socket: &cfg.unix_socket,
        connections: &cfg.connections,
        tls,
    };
    server::serve(core, transport, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
