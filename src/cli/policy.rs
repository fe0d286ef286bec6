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
    /// Which policy administrators (from the signer config) signed FILE and whether they
    /// meet the quorum. Exit 0 when met, 1 when not, 2 on error.
    Verify {
        file: PathBuf,
        /// The signer's configuration file (its [policy_admins] section).
        #[arg(long)]
        config: PathBuf,
    },
    /// Sign FILE as policy administrator NAME with your SSH key (ssh-keygen -Y sign -n
    /// tron-signer-policy), writing FILE.sig.NAME beside it.
    Sign {
        file: PathBuf,
        /// Your SSH key for ssh-keygen -f (a private key, or a public key held by ssh-agent).
        #[arg(long)]
        ssh_key: PathBuf,
        /// Your administrator name, as the signer config lists it.
        #[arg(long)]
        name: String,
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
            PolicyCli::Verify { file, config } => PolicyCommand::Verify { file, config },
            PolicyCli::Sign {
                file,
                ssh_key,
                name,
            } => PolicyCommand::Sign {
                file,
                ssh_key,
                name,
            },
        }
    }
}
