//! The `tron-signer` command line.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { raw_data_hex } => inspect(&raw_data_hex),
    }
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
