//! The `tron-signer` command line: every clap type lives in this tree, and each command
//! hands plain arguments to the module that does the work.
//!
//! - [`keys`]: `keys ...`, one command set per key backend.
//! - [`policy`], [`audit`], [`batch`]: `policy ...`, `audit ...`, `batch ...`.
//! - [`serve`]: `serve` and `dev`; [`inspect`]: `inspect`.
//! - [`process`]: logging, runtime, key-memory protection, exit status.

pub mod approve;
pub mod audit;
pub mod batch;
pub mod freeze;
pub mod inspect;
pub mod keys;
pub mod policy;
pub mod process;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::approve::ApproveCli;
use self::audit::AuditCli;
use self::batch::BatchCli;
use self::keys::{run_keys_cli, KeysCli};
use self::policy::PolicyCli;
use self::process::{init_logging, protect_key_memory, protect_key_memory_quietly, report};
use crate::batch::run_batch;
use crate::config::Listen;

/// `tron-signer`.
#[derive(Debug, Parser)]
#[command(
    name = "tron-signer",
    version,
    about = "Hardened offline signer for Tron payouts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Manage signing keys: the encrypted keystore, or a PKCS#11 token (`keys pkcs11 ...`).
    Keys {
        #[command(subcommand)]
        cmd: KeysCli,
    },
    /// Check, hash or explain a policy file.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCli,
    },
    /// Verify or export the audit chain, or bundle a stretch of it as offline evidence.
    Audit {
        #[command(subcommand)]
        cmd: AuditCli,
    },
    /// Sign batch files carried across an air gap (same decision path as gRPC).
    Batch {
        #[command(subcommand)]
        cmd: BatchCli,
    },
    /// On an approver's machine: show what a payout will pay and sign its approval
    /// statement with your SSH key (ssh-keygen -Y sign). Needs no signer keys.
    Approve(ApproveCli),
    /// Freeze one key or all keys with your policy administrator's SSH signature; only a new
    /// quorum-signed policy lifts it.
    Freeze(freeze::FreezeCli),
}

/// Parses the process's arguments and runs the command.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Inspect { raw_data_hex } => inspect::run(&raw_data_hex),
        Command::Serve { config } => serve::serve(&config),
        Command::Dev {
            dir,
            listen,
            exit_after_demo,
        } => serve::dev(dir, listen, exit_after_demo),
        Command::Keys { cmd } => {
            protect_key_memory_quietly();
            let result = run_keys_cli(
                cmd,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            );
            report(result.map_err(|e| (e.code(), e.to_string())))
        }
        Command::Policy { cmd } => {
            let code = policy::run(
                cmd,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Audit { cmd } => audit::run(cmd),
        Command::Approve(cli) => {
            let now = crate::service::core::system_clock()();
            let result = crate::approve::run_approve(
                &cli.command(now),
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            );
            report(result.map_err(|e| (e.code(), e.to_string())))
        }
        Command::Freeze(cli) => {
            let now = crate::service::core::system_clock()();
            report(freeze::run(cli, now, &mut std::io::stdout().lock()))
        }
        Command::Batch { cmd } => {
            init_logging();
            protect_key_memory();
            let result = run_batch(cmd.into(), &mut std::io::stdout().lock());
            report(result.map(|_| ()).map_err(|e| (e.code(), e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
