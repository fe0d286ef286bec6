//! `tron-signer batch sign`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::batch::BatchCommand;

/// Batch files carried across an air gap.
#[derive(Debug, Clone, Subcommand)]
pub enum BatchCli {
    /// Sign an unsigned batch file from the broadcaster; refusals are listed with reasons.
    Sign {
        /// The same configuration file `serve` uses (keystore, policy, data directory).
        #[arg(long)]
        config: PathBuf,
        /// The unsigned batch exported by `tron-broadcaster batch export`.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the signed batch; must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
}

impl From<BatchCli> for BatchCommand {
    fn from(cli: BatchCli) -> Self {
        match cli {
            BatchCli::Sign { config, input, out } => BatchCommand::Sign { config, input, out },
        }
    }
}
