//! `tron-signer approve`.

use std::path::PathBuf;

use clap::Args;

use crate::approval::Verdict;
use crate::approve::{ApproveCommand, RawSource};

/// Approve (or reject) one payout by signing its statement with your SSH key.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("raw").required(true).args(["raw_data", "raw_data_file"])))]
pub struct ApproveCli {
    /// The policy file the signer has in force.
    #[arg(long)]
    pub policy: PathBuf,
    /// The unsigned raw_data, as hex.
    #[arg(long)]
    pub raw_data: Option<String>,
    /// A file holding the unsigned raw_data (hex text or the raw bytes).
    #[arg(long)]
    pub raw_data_file: Option<PathBuf>,
    /// The payout id the initiator gave the payout.
    #[arg(long)]
    pub payout_id: String,
    /// The signing key's address (default: the transaction's owner).
    #[arg(long)]
    pub key: Option<String>,
    /// Your SSH key for `ssh-keygen -Y sign -f`: a private key file, or a public key file
    /// whose private half is in ssh-agent (or on a FIDO2 token).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Sign the reject statement: the payout is cancelled.
    #[arg(long)]
    pub reject: bool,
    /// Write the signature to this new file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print what will be paid and the statement, and sign nothing.
    #[arg(long)]
    pub statement_only: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

impl ApproveCli {
    /// The command, read at `now_ms`.
    pub fn command(self, now_ms: i64) -> ApproveCommand {
        let raw_data = match (self.raw_data, self.raw_data_file) {
            (_, Some(path)) => RawSource::File(path),
            (Some(hex), None) => RawSource::Hex(hex),
            // clap's argument group requires one of the two.
            (None, None) => RawSource::Hex(String::new()),
        };
        ApproveCommand {
            policy: self.policy,
            raw_data,
            key: self.key,
            payout_id: self.payout_id,
            ssh_key: self.ssh_key,
            verdict: if self.reject {
                Verdict::Reject
            } else {
                Verdict::Approve
            },
            out: self.out,
            statement_only: self.statement_only,
            yes: self.yes,
            now_ms,
        }
    }
}
