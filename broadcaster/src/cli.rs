//! The command line: `serve`, `api-keys`, `batch export|import`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::apikeys::{self, KeyStore};
use crate::approval_api;
use crate::batch;
use crate::bounded_listener::{BoundedListener, Deadline};
use crate::config::{Config, ConfigError};
use crate::delivery_store::DeliveryStore;
use crate::invoice_api::{self, ReceiveApi};
use crate::metrics;
use crate::metrics_listener;
use crate::node::{Node, NodeError};
use crate::pipeline::{Pipeline, Settings};
use crate::receive_store::ReceiveStore;
use crate::signer::SignerConn;
use crate::store::{Store, StoreError};
use crate::sweeper::Sweeper;
use crate::watcher::Watcher;
use crate::webhooks::{Backoff, Sender};

#[derive(Debug, Parser)]
#[command(
    name = "tron-broadcaster",
    version,
    about = "Untrusted payout pipeline for tron-signer"
)]
pub struct Cli {
    /// The TOML config file.
    #[arg(short, long, global = true, default_value = "tron-broadcaster.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the payout API and the pipeline.
    Serve,
    /// Manage the payment backends' API keys (works while `serve` runs; changes count from
    /// the server's next request).
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Air-gapped signing through batch files.
    #[command(subcommand)]
    Batch(BatchCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it once.
    Create(CreateKeyArgs),
    /// List keys: id, tenant, created, revoked, label.
    List,
    /// Revoke a key by id: the running server refuses it from its next request.
    Revoke {
        /// The key id (the hex part after `tbk_`, as `list` shows it).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    #[arg(long)]
    pub label: String,
    /// The tenant whose payouts the key creates and sees; default: the label, if it is a
    /// valid tenant name.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Write pending payouts' unsigned transactions for the offline signer.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Read the offline signer's answer, verify every signature, broadcast.
    Import { file: PathBuf },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    ApiKey(#[from] apikeys::ApiKeyError),
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error(transparent)]
    SignerTls(#[from] crate::signer_tls::SignerTlsError),
    #[error("{0}")]
    NoExporterKey(String),
    #[error("cannot set up the webhook HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    pub fn code(&self) -> &'static str {
        match self {
            CliError::Config(e) => e.code(),
            CliError::Store(e) => e.code(),
            CliError::Node(e) => e.code(),
            CliError::ApiKey(e) => e.code(),
            CliError::Batch(e) => e.code(),
            CliError::SignerTls(e) => e.code(),
            CliError::NoExporterKey(_) => "batch_signing_key_missing",
            CliError::HttpClient(_) => "http_client_failed",
            CliError::Listen { .. } => "listen_failed",
        }
    }
}

fn pipeline(cfg: &Config, store: Arc<Store>, online: bool) -> Result<Pipeline, CliError> {
    let node = Node::new(&cfg.node_url, cfg.node_api_key.clone(), cfg.node_timeout)?;
    let signer = match (&cfg.signer, online) {
        (Some(endpoint), true) => {
            // Read at start, so a bad certificate or an open key stops the start.
            let tls = match &cfg.signer_tls {
                Some(t) => Some((t.client_config()?, t.server_name().to_owned())),
                None => None,
            };
            Some(SignerConn::new(endpoint.clone(), cfg.signer_timeout, tls))
        }
        _ => None,
    };
    Ok(Pipeline::new(
        store,
        node,
        signer,
        Settings::from_config(cfg),
    ))
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let cfg = Config::load(&cli.config)?;
    match cli.command {
        Command::Serve => serve(cfg).await,
        Command::ApiKeys(ApiKeysCommand::Create(a)) => {
            let keys = KeyStore::new(&cfg.api_keys);
            let tenant = a.tenant.as_deref().unwrap_or(&a.label);
            let key = keys.create(tenant, &a.label)?;
            println!("{}", key.as_str());
            eprintln!(
                "API key for {:?} (tenant {tenant:?}) created; it is shown only this once.",
                a.label
            );
            Ok(())
        }
        Command::ApiKeys(ApiKeysCommand::List) => {
            for (id, rec) in KeyStore::new(&cfg.api_keys).list()? {
                let revoked = rec
                    .revoked_at_ms
                    .map_or_else(|| "-".to_owned(), |t| format!("revoked={t}"));
                println!(
                    "{id}\t{}\t{}\t{revoked}\t{}",
                    rec.tenant, rec.created_at_ms, rec.label
                );
            }
            Ok(())
        }
        Command::ApiKeys(ApiKeysCommand::Revoke { id }) => {
            let rec = KeyStore::new(&cfg.api_keys).revoke(&id)?;
            eprintln!(
                "API key {id} ({:?}, tenant {:?}) revoked; the server refuses it from its next request.",
                rec.label, rec.tenant
            );
            Ok(())
        }
        Command::Batch(BatchCommand::Export { out }) => {
            // Before anything is built: an unsigned file would be refused by the signer.
            let Some(key_path) = &cfg.batch_signing_key else {
                return Err(CliError::NoExporterKey(
                    "batch export signs the file with the exporter key: set batch_signing_key \
                     in the config (ssh-keygen -t ed25519 -N '' -f exporter) and list its public \
                     key as a batch_key caller in the signer's policy"
                        .into(),
                ));
            };
            let exporter = crate::exporter_key::ExporterKey::load(key_path)
                .map_err(batch::BatchError::from)?;
            let store = Arc::new(Store::open(&cfg.database)?);
            let p = pipeline(&cfg, store, false)?;
            let r = batch::export(&p, &out, &exporter).await?;
            for (id, txid, exp) in &r.items {
                println!("{id}\t{txid}\texpires_ms={exp}");
            }
            eprintln!(
                "{} transaction(s) written to {}; they must be signed and imported before they expire ({} window)",
                r.items.len(),
                out.display(),
                humanize(cfg.batch_expiration)
            );
            Ok(())
        }
        Command::Batch(BatchCommand::Import { file }) => {
            let store = Arc::new(Store::open(&cfg.database)?);
            let p = pipeline(&cfg, store, false)?;
            let r = batch::import(&p, Path::new(&file)).await?;
            for id in &r.signed {
                println!("signed\t{id}");
            }
            for id in &r.denied {
                println!("denied\t{id}");
            }
            for (id, code, m) in &r.rejected {
                println!("rejected\t{id}\t{code}\t{m}");
            }
            Ok(())
        }
    }
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

async fn serve(cfg: Config) -> Result<(), CliError> {
    let store = Arc::new(Store::open(&cfg.database)?);
    let pipe = Arc::new(pipeline(&cfg, store.clone(), true)?);
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(pipe.clone().run(rx.clone()));
    // The receive side: invoices in the same API, a chain watcher beside the pipeline.
    let mut backlog: Option<Arc<Sender>> = None;
    let (receive_routes, watcher) = match &cfg.receive {
        Some(r) => {
            let rs = ReceiveStore::open(store.clone())?;
            let node = Node::new(&cfg.node_url, cfg.node_api_key.clone(), cfg.node_timeout)?;
            let w = Arc::new(Watcher::new(
                node,
                rs.clone(),
                cfg.usdt_contract,
                cfg.poll_interval,
                cfg.max_backoff,
            ));
            tracing::info!(xpub = ?r.xpub, token = %cfg.usdt_contract, webhooks = r.webhooks.len(), "receive side enabled");
            let deliveries = DeliveryStore::open(store.clone())?;
            let sender = Arc::new(
                Sender::new(
                    r.webhooks.clone(),
                    rs.clone(),
                    deliveries.clone(),
                    Backoff {
                        min: r.webhook_min_backoff,
                        max: r.webhook_max_backoff,
                        give_up_after: r.webhook_give_up_after,
                    },
                )
                .map_err(|e| CliError::HttpClient(e.to_string()))?,
            );
            let routes = invoice_api::routes(ReceiveApi {
                store: rs.clone(),
                xpub: r.xpub.clone(),
                tolerance_units: r.tolerance_units,
                default_expiry: r.default_expiry,
                deliveries,
                endpoints: r
                    .webhooks
                    .iter()
                    .map(|w| (w.name.clone(), w.tenant.clone()))
                    .collect(),
            });
            backlog = Some(sender.clone());
            let mut tasks = vec![
                tokio::spawn(w.run(rx.clone())),
                tokio::spawn(sender.run(rx.clone())),
            ];
            if let Some(sc) = &r.sweep {
                let node = Node::new(&cfg.node_url, cfg.node_api_key.clone(), cfg.node_timeout)?;
                tracing::info!(gas_key = %sc.gas_key, collection = %sc.collection, margin = sc.energy_margin_percent, "sweeps enabled");
                let sweeper = Arc::new(Sweeper::new(
                    store.clone(),
                    rs.clone(),
                    node,
                    r.xpub.clone(),
                    cfg.usdt_contract,
                    sc.clone(),
                    cfg.poll_interval,
                ));
                tasks.push(tokio::spawn(sweeper.run(rx.clone())));
            }
            (routes, tasks)
        }
        None => (axum::Router::new(), Vec::new()),
    };
    let metrics_task = match cfg.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CliError::Listen {
                    addr: addr.to_string(),
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| CliError::Listen {
                addr: addr.to_string(),
                source,
            })?;
            tracing::info!(metrics = %bound, "metrics listener: GET /metrics");
            let refresh = scrape_refresh(store.clone(), backlog);
            Some(tokio::spawn(metrics_listener::serve(
                listener,
                refresh,
                rx.clone(),
            )))
        }
        None => None,
    };
    let app = api::router_with(
        ApiState {
            store: store.clone(),
            keys: Arc::new(KeyStore::new(&cfg.api_keys)),
            owner: cfg.key,
        },
        receive_routes.merge(approval_api::routes(store)),
    );
    let listen_err = |source| CliError::Listen {
        addr: cfg.listen.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(listen_err)?;
    // The bound address, which differs from the configured one for port 0.
    let bound = listener.local_addr().map_err(listen_err)?;
    tracing::info!(
        listen = %bound,
        api_keys = %cfg.api_keys.display(),
        node = %cfg.node_url,
        signer = cfg.signer.as_deref().unwrap_or("(air gap: batch files)"),
        key = %cfg.key,
        "tron-broadcaster serving"
    );
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    let mut stop = rx;
    // Bounded: idle or slow clients cannot hold connections (descriptors) without limit.
    let listener = BoundedListener::new(
        listener,
        api::MAX_CONNECTIONS,
        Deadline::Idle(api::IDLE_TIMEOUT),
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await;
    let _ = worker.await;
    for t in watcher.into_iter().chain(metrics_task) {
        let _ = t.await;
    }
    served.map_err(|source| CliError::Listen {
        addr: cfg.listen.to_string(),
        source,
    })
}

/// What a scrape reads from the database: the payouts per status and, with webhooks, the
/// outbox's backlog. A read that fails leaves the gauges at their last values and logs.
fn scrape_refresh(store: Arc<Store>, webhooks: Option<Arc<Sender>>) -> metrics_listener::Refresh {
    Arc::new(move || {
        let m = metrics::global();
        match store.status_counts() {
            Ok(counts) => m.set_payouts(&counts),
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "metrics: payout counts unreadable")
            }
        }
        if let Some(sender) = &webhooks {
            match sender.backlog() {
                Ok(b) => m.set_webhook_backlog(b.pending, b.oldest_created_ms, b.capped),
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "metrics: webhook backlog unreadable")
                }
            }
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
