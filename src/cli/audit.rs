//! `tron-signer audit verify | export`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::ledger::AuditCommand;

/// The audit hash chain, read from the signer's data directory while it runs.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCli {
    /// Recompute the audit hash chain; name the first bad sequence number if it is broken.
    Verify {
        /// The signer's data directory (holds ledger.redb).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Write every audit record as one JSON object per line.
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        /// Output file (must not exist yet), or "-" for standard output.
        #[arg(long, default_value = "-")]
        out: String,
    },
}

impl From<AuditCli> for AuditCommand {
    fn from(cli: AuditCli) -> Self {
        match cli {
            AuditCli::Verify { data_dir } => AuditCommand::Verify { data_dir },
            AuditCli::Export { data_dir, out } => AuditCommand::Export { data_dir, out },
        }
    }
}
