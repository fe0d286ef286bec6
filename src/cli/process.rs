//! What every command shares: logging, the runtime, key-memory protection and how an
//! error becomes an exit status.

use std::process::ExitCode;

/// A failed command: its stable code and a message for people.
pub type Failure = (&'static str, String);

/// Prints `error [code]: message` on standard error for a failure.
pub fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error [{code}]: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The PostgreSQL connection string in environment variable `var` (never an argument: it
/// may hold a password), or the failure to report.
pub fn url_from_env(var: &str) -> Result<String, Failure> {
    let source = crate::secret_source::SecretSource::Env(var.to_owned());
    source
        .read_secret("the PostgreSQL connection string")
        .map(|url| secrecy::ExposeSecret::expose_secret(&url).to_owned())
        .map_err(|e| (e.code(), e.to_string()))
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The multi-threaded runtime the service runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ("runtime", e.to_string()))
}

/// Before any key is read: no core dumps, no same-user tracing (see `no_dumps`). Logged,
/// for commands that log.
pub fn protect_key_memory() {
    if let Err(e) = crate::no_dumps::deny_core_dumps_and_tracing() {
        tracing::warn!("{e}; key material could reach a core dump");
    }
}

/// [`protect_key_memory`] for commands that do not log: the warning goes to standard error.
pub fn protect_key_memory_quietly() {
    if let Err(e) = crate::no_dumps::deny_core_dumps_and_tracing() {
        eprintln!("warning: {e}");
    }
}
