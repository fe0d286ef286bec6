//! The `tron-signer` command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tron_signer::batch::{run_batch, BatchCommand};
use tron_signer::config::{Config, Listen};
use tron_signer::keys::cli::{run_keys_cli, KeysCli};
use tron_signer::ledger::{run_audit, AuditCommand};
use tron_signer::policy::{run_policy, PolicyCommand};
use tron_signer::service::run;

/// mimalloc instead of glibc malloc: under concurrent load glibc's arena locking and chunk
/// consolidation showed as ~13 % of the signer's CPU in a profile (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tron-signer",
    version,
    about = "Hardened offline signer for Tron payouts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode an unsigned raw_data (hex) strictly and print what it would do, as JSON.
    Inspect {
        /// raw_data as hex, or `-` to read it from standard input.
        raw_data_hex: String,
    },
    /// Run the gRPC signing service.
    Serve {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Quickstart: serve on embedded development defaults and show one allowed and one
    /// refused payout. Uses a published test key: never for real funds.
    Dev {
        /// Where the development keystore, policy and ledger live.
        #[arg(long, default_value = "tron-signer-dev")]
        dir: PathBuf,
        /// host:port or unix:/path.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: Listen,
        /// Stop after the demo instead of serving on.
        #[arg(long)]
        exit_after_demo: bool,
    },
    /// Manage signing keys: the encrypted keystore (default) or a PKCS#11 token.
    Keys {
        #[command(subcommand)]
        cmd: KeysCli,
    },
    /// Check, hash or explain a policy file.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCommand,
    },
    /// Verify or export the audit chain.
    Audit {
        #[command(subcommand)]
        cmd: AuditCommand,
    },
    /// Sign batch files carried across an air gap (same decision path as gRPC).
    Batch {
        #[command(subcommand)]
        cmd: BatchCommand,
    },
}

/// mimalloc's defaults trade memory for speed: arenas committed up front and freed pages kept
/// for a while. The signer keeps its footprint small instead (measured: 137 -> 83 MiB after
/// loading 10,000 keys and a 100,000-destination policy, the same signing rate). The option
/// ids are those of mimalloc 3's `mi_option_e`; another major version is left at its defaults.
fn tune_allocator() {
    use libmimalloc_sys as mi;
    const ARENA_EAGER_COMMIT: mi::mi_option_t = 4;
    const PURGE_DELAY: mi::mi_option_t = 15;
    // SAFETY: mi_version takes no arguments and returns a compile-time constant.
    let version = unsafe { mi::mi_version() };
    if (30_000..40_000).contains(&version) {
        // SAFETY: mi_option_set stores an integer in mimalloc's option table; the ids are from
        // the version checked above, and both options may be changed while running.
        unsafe {
            mi::mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { raw_data_hex } => inspect(&raw_data_hex),
        Command::Serve { config } => serve(config),
        Command::Dev {
            dir,
            listen,
            exit_after_demo,
        } => dev(dir, listen, exit_after_demo),
        Command::Keys { cmd } => {
            if let Err(e) = tron_signer::no_dumps::deny_core_dumps_and_tracing() {
                eprintln!("warning: {e}");
            }
            let result = run_keys_cli(
                cmd,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            );
            report(result.map_err(|e| (e.code(), e.to_string())))
        }
        Command::Policy { cmd } => {
            let code = run_policy(
                cmd,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Audit { cmd } => {
            let result = run_audit(cmd, &mut std::io::stdout().lock());
            report(result.map_err(|e| (e.code(), e.to_string())))
        }
        Command::Batch { cmd } => {
            init_logging();
            protect_key_memory();
            let result = run_batch(cmd, &mut std::io::stdout().lock());
            report(result.map(|_| ()).map_err(|e| (e.code(), e.to_string())))
        }
    }
}

fn report(result: Result<(), (&'static str, String)>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error [{code}]: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime, (&'static str, String)> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ("runtime", e.to_string()))
}

/// Before any key is read: no core dumps, no same-user tracing (see `no_dumps`).
fn protect_key_memory() {
    if let Err(e) = tron_signer::no_dumps::deny_core_dumps_and_tracing() {
        tracing::warn!("{e}; key material could reach a core dump");
    }
}

fn serve(config: PathBuf) -> ExitCode {
    init_logging();
    protect_key_memory();
    let result = (|| {
        let cfg = Config::load(&config).map_err(|e| (e.code(), e.to_string()))?;
        let rt = runtime()?;
        rt.block_on(async {
            let core = run::build_core(&cfg)?;
            run::run(&cfg, core, run::termination()).await
        })
        .map_err(|e| (e.code(), e.to_string()))
    })();
    if let Err((code, message)) = &result {
        tracing::error!(code, "{message}");
    }
    report(result)
}

fn dev(dir: PathBuf, listen: Listen, exit_after_demo: bool) -> ExitCode {
    init_logging();
    protect_key_memory();
    let result = runtime().and_then(|rt| {
        rt.block_on(tron_signer::dev::run_dev(&dir, listen, exit_after_demo))
            .map_err(|e| ("dev_failed", e.to_string()))
    });
    report(result)
}

fn inspect(arg: &str) -> ExitCode {
    let input = if arg == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            let err = serde_json::json!({
                "error": { "code": "stdin_unreadable", "message": e.to_string() }
            });
            println!("{err}");
            return ExitCode::FAILURE;
        }
        s
    } else {
        arg.to_owned()
    };
    match tron_signer::inspect::inspect_hex(&input) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", e.to_json());
            ExitCode::FAILURE
        }
    }
}
