//! `tron-signer policy check | hash | explain | diff`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::policy::PolicyCommand;

/// Policy file tools for operators and auditors.
#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCli {
    /// Validate a policy file; lists every problem and exits non-zero if there is any.
    Check {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Print the sha256 (hex) of the exact file bytes, as recorded with every decision.
    Hash {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Print a plain-language summary of what the policy allows.
    Explain {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// What changed from OLD to NEW: keys, destinations, tokens, callers and approvers added
    /// or removed, limits raised or lowered. Exit 0 when equal, 1 when different, 2 on error.
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// One JSON document, for tools.
        #[arg(long)]
        json: bool,
    },
}

impl From<PolicyCli> for PolicyCommand {
    fn from(cli: PolicyCli) -> Self {
        match cli {
            PolicyCli::Check { file } => PolicyCommand::Check { file },
            PolicyCli::Hash { file } => PolicyCommand::Hash { file },
            PolicyCli::Explain { file } => PolicyCommand::Explain { file },
            PolicyCli::Diff { old, new, json } => PolicyCommand::Diff { old, new, json },
        }
    }
}
