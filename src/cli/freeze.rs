//! `tron-signer freeze`: an administrator writes a freeze statement for the policy in force,
//! signs it with `ssh-keygen -Y sign -n tron-signer-freeze` (a FIDO2 key asks for a touch),
//! and hands it to a running signer over its `Freeze` RPC.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use tron_proto::signer::{FreezeRequest, GetPolicyRequest};
use tron_proto::Address;

use super::process::{runtime, Failure};
use crate::freeze::{self, Scope, Statement};
use crate::reason::ReasonCode;

/// Freeze one key or every key at once; only a new quorum-signed policy lifts it.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["all", "key"])))]
pub struct FreezeCli {
    /// The running signer: `unix:/path/to/signer.sock` or `http://host:port` (plaintext
    /// loopback); the connection's caller needs the `Freeze` grant.
    #[arg(long)]
    pub endpoint: String,
    /// Your SSH key for `ssh-keygen -Y sign -f` (a private key, or a public key held by
    /// ssh-agent or on a FIDO2 token): one of the config's policy administrators.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// Freeze every key.
    #[arg(long)]
    pub all: bool,
    /// Freeze this key only (its Tron address).
    #[arg(long)]
    pub key: Option<String>,
    /// Why, in one line (recorded in the audit log).
    #[arg(long)]
    pub reason: String,
    /// The hash of the policy in force (64 hex digits); asked of the signer with GetPolicy
    /// when not given.
    #[arg(long)]
    pub policy_hash: Option<String>,
    /// Print the statement and stop: sign and deliver nothing.
    #[arg(long)]
    pub statement_only: bool,
}

/// Runs `freeze`, writing what happened to `out`.
pub fn run(cli: FreezeCli, now_ms: i64, out: &mut dyn std::io::Write) -> Result<(), Failure> {
    let scope = match &cli.key {
        Some(k) => Scope::Key(
            k.parse::<Address>()
                .map_err(|e| ("bad_key_address", format!("--key {k:?}: {e}")))?,
        ),
        None => Scope::All,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let mut client = tron_proto::client::signer_client(&cli.endpoint)
            .await
            .map_err(|e| ("connect", e.to_string()))?;
        let policy_hash = match &cli.policy_hash {
            Some(h) => h.clone(),
            None => {
                client
                    .get_policy(GetPolicyRequest {})
                    .await
                    .map_err(refused)?
                    .into_inner()
                    .hash
            }
        };
        let policy_hash = hex::decode(&policy_hash)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                (
                    ReasonCode::PolicyHashInvalid.as_str(),
                    "the policy hash must be 64 hex digits".to_owned(),
                )
            })?;
        let text = Statement {
            scope,
            policy_hash,
            issued_ms: now_ms,
            reason: cli.reason.clone(),
        }
        .render();
        // The signer would refuse it; say so before asking for a signature.
        Statement::parse(&text).map_err(|e| (e.code().as_str(), e.to_string()))?;
        let say = |out: &mut dyn std::io::Write, s: &str| {
            out.write_all(s.as_bytes())
                .map_err(|e| ("write", e.to_string()))
        };
        say(out, &text)?;
        if cli.statement_only {
            return Ok(());
        }
        let Some(key) = &cli.ssh_key else {
            return Err((
                "ssh_key_missing",
                "--ssh-key is needed to sign the statement".to_owned(),
            ));
        };
        let signature = crate::sshsig::ssh_keygen_sign(key, freeze::NAMESPACE, text.as_bytes())
            .map_err(|e| ("ssh_keygen_failed", e))?;
        let taken = client
            .freeze(FreezeRequest {
                statement: text,
                signature,
            })
            .await
            .map_err(refused)?
            .into_inner();
        say(
            out,
            &format!(
                "{}{} (audit record {})\n",
                taken.description,
                if taken.already_frozen {
                    "; it was frozen already"
                } else {
                    ""
                },
                taken.audit_sequence
            ),
        )
    })
}

/// A refusal from the signer, by its reason code.
fn refused(status: tonic::Status) -> Failure {
    let code = status
        .metadata()
        .get("reason-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.parse::<ReasonCode>().ok())
        .map_or("signer_refused", ReasonCode::as_str);
    (code, status.message().to_owned())
}
