//! `tron-signer policy check | hash | explain`.

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
}

impl From<PolicyCli> for PolicyCommand {
    fn from(cli: PolicyCli) -> Self {
        match cli {
            PolicyCli::Check { file } => PolicyCommand::Check { file },
            PolicyCli::Hash { file } => PolicyCommand::Hash { file },
            PolicyCli::Explain { file } => PolicyCommand::Explain { file },
        }
    }
}
