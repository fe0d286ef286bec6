//! `tron-signer approve`: an approver's side of a payout approval, on the approver's own
//! machine, with no signer keys and no connection to anything.
//!
//! It decodes the unsigned `raw_data` with the signer's own strict decoder, reads the policy
//! the signer has in force, prints what will be paid and who must approve, and builds the
//! statement exactly as the signer will; then, once the approver confirms, it signs the
//! statement through `ssh-keygen -Y sign` (so a FIDO2 `sk-` key asks for a touch, and a
//! public key file signs through `ssh-agent`). The signature is checked before it is written.
//! Nothing here decides anything: the signer re-checks every approval.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use tron_proto::Address;

use crate::approval::statement::utc;
use crate::approval::{statement, Verdict, NAMESPACE};
use crate::decode::{self, Decoded};
use crate::policy::{self, format_amount, LoadedPolicy};
use crate::sshsig;

/// What to approve and how.
#[derive(Debug, Clone)]
pub struct ApproveCommand {
    /// The policy file the signer has in force (its hash is in the statement).
    pub policy: PathBuf,
    /// The unsigned `raw_data`: hex text, or a file holding hex or the raw bytes.
    pub raw_data: RawSource,
    /// The signing key's address; the transaction's owner when not given.
    pub key: Option<String>,
    pub payout_id: String,
    /// The approver's SSH key file for `ssh-keygen -Y sign -f` (a private key, or a public
    /// key held by `ssh-agent`); not needed with `statement_only`.
    pub ssh_key: Option<PathBuf>,
    pub verdict: Verdict,
    /// Where to write the armored signature (must not exist); standard output when `None`.
    pub out: Option<PathBuf>,
    /// Print the statement and stop.
    pub statement_only: bool,
    /// Sign without asking for confirmation on standard input.
    pub yes: bool,
    /// Milliseconds since the epoch (the system clock; tests move it).
    pub now_ms: i64,
}

/// Where the raw_data comes from.
#[derive(Debug, Clone)]
pub enum RawSource {
    Hex(String),
    File(PathBuf),
}

/// Why nothing was signed.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("{0}")]
    Policy(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raw_data is not hex: {0}")]
    NotHex(String),
    #[error("raw_data refused by the decoder ({code}): {message}")]
    Decode { code: &'static str, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotNeeded(String),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    NotAnApprover(String),
    #[error("not confirmed; nothing was signed")]
    NotConfirmed,
    #[error("ssh-keygen: {0}")]
    SshKeygen(String),
    #[error("{path} already exists; choose another output file")]
    OutputExists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ApproveError {
    /// Stable machine-readable code (the exit report's).
    pub fn code(&self) -> &'static str {
        match self {
            ApproveError::Policy(_) => "policy_invalid",
            ApproveError::Read { .. } => "raw_data_unreadable",
            ApproveError::NotHex(_) => "raw_data_not_hex",
            ApproveError::Decode { code, .. } => code,
            ApproveError::BadRequest(_) => "approve_bad_request",
            ApproveError::NotNeeded(_) => "approval_not_needed",
            ApproveError::Expired(_) => "approval_expired",
            ApproveError::NotAnApprover(_) => "approver_unknown",
            ApproveError::NotConfirmed => "approve_not_confirmed",
            ApproveError::SshKeygen(_) => "ssh_keygen_failed",
            ApproveError::OutputExists { .. } => "output_exists",
            ApproveError::Write { .. } => "output_unwritable",
        }
    }
}

/// Runs `approve`: what will be paid and the statement go to `out`; the confirmation is read
/// from `input`.
pub fn run_approve(
    cmd: &ApproveCommand,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), ApproveError> {
    let loaded = policy::load_file(&cmd.policy).map_err(|e| ApproveError::Policy(e.to_string()))?;
    let raw = read_raw(&cmd.raw_data)?;
    let decoded = decode::decode(&raw).map_err(|e| ApproveError::Decode {
        code: e.reason().as_str(),
        message: e.to_string(),
    })?;
    let owner = *decoded.intent.owner();
    let key = match &cmd.key {
        None => owner,
        Some(k) => {
            let k: Address = k
                .parse()
                .map_err(|e| ApproveError::BadRequest(format!("--key {k:?}: {e}")))?;
            if k != owner {
                return Err(ApproveError::BadRequest(format!(
                    "the transaction is signed by its owner {owner}, not by --key {k}"
                )));
            }
            k
        }
    };
    if !crate::service::payout_id_ok(&cmd.payout_id) {
        return Err(ApproveError::BadRequest(format!(
            "payout id {:?}: 1-{} printable ASCII characters, no spaces",
            cmd.payout_id,
            crate::service::MAX_PAYOUT_ID_LEN
        )));
    }
    let p = &loaded.policy;
    let intent = &decoded.intent;
    let quorum = p.quorum(&key, &intent.asset(), intent.to(), intent.amount());
    if quorum.is_empty() {
        return Err(ApproveError::NotNeeded(format!(
            "under policy {} this transfer needs no approval; nothing to sign",
            loaded.hash_hex()
        )));
    }
    let expiration = decoded.envelope.expiration;
    if cmd.now_ms >= expiration {
        return Err(ApproveError::Expired(format!(
            "the transaction expired at {}; its approvals would be void: ask for a new one",
            utc(expiration)
        )));
    }
    let text = statement(&loaded, &key, &decoded, &cmd.payout_id, cmd.verdict);
    summary(out, &loaded, &key, &decoded, cmd, &quorum.groups).map_err(write_err)?;
    writeln!(out, "--- statement ---\n{text}--- end of statement ---").map_err(write_err)?;
    if cmd.statement_only {
        return Ok(());
    }
    let ssh_key = cmd.ssh_key.as_ref().ok_or_else(|| {
        ApproveError::BadRequest("--ssh-key is needed to sign (or --statement-only)".into())
    })?;
    let me = approver_of(&loaded, ssh_key)?;
    if let Some((name, groups)) = &me {
        writeln!(out, "signing as approver {name:?} (groups {groups})").map_err(write_err)?;
    }
    if !cmd.yes {
        write!(
            out,
            "{} this payout? Type yes to sign: ",
            cmd.verdict.as_str()
        )
        .map_err(write_err)?;
        out.flush().map_err(write_err)?;
        let mut answer = String::new();
        input
            .read_line(&mut answer)
            .map_err(|e| ApproveError::Read {
                path: PathBuf::from("<stdin>"),
                source: e,
            })?;
        if answer.trim() != "yes" {
            return Err(ApproveError::NotConfirmed);
        }
    }
    let armored = sshsig::ssh_keygen_sign(ssh_key, NAMESPACE, text.as_bytes())
        .map_err(ApproveError::SshKeygen)?;
    let verified = sshsig::verify(&armored, NAMESPACE, text.as_bytes())
        .map_err(|e| ApproveError::SshKeygen(format!("its signature does not verify: {e}")))?;
    if p.approver(&verified.fingerprint()).is_none() {
        return Err(ApproveError::NotAnApprover(format!(
            "the key that signed ({}) is no [[approver]] of policy {}; the signer would refuse it",
            verified.fingerprint(),
            loaded.hash_hex()
        )));
    }
    match &cmd.out {
        None => write!(out, "{armored}").map_err(write_err)?,
        Some(path) => {
            write_new(path, armored.as_bytes())?;
            writeln!(
                out,
                "wrote {}: send it with the payout's approvals (POST /v1/payouts/{}/approvals, \
                 or the item's \"approvals\" in a batch file)",
                path.display(),
                cmd.payout_id
            )
            .map_err(write_err)?;
        }
    }
    Ok(())
}

fn write_err(e: std::io::Error) -> ApproveError {
    ApproveError::Write {
        path: PathBuf::from("<stdout>"),
        source: e,
    }
}

/// The raw bytes: hex text as given, or a file of hex text or raw bytes.
fn read_raw(src: &RawSource) -> Result<Vec<u8>, ApproveError> {
    let hex_of = |t: &str| hex::decode(t.trim()).map_err(|e| ApproveError::NotHex(e.to_string()));
    match src {
        RawSource::Hex(t) => hex_of(t),
        RawSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| ApproveError::Read {
                path: path.clone(),
                source: e,
            })?;
            match std::str::from_utf8(&bytes) {
                Ok(t)
                    if !t.trim().is_empty() && t.trim().bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    hex_of(t)
                }
                _ => Ok(bytes),
            }
        }
    }
}

/// What will be paid, in words.
fn summary(
    out: &mut dyn Write,
    loaded: &LoadedPolicy,
    key: &Address,
    d: &Decoded,
    cmd: &ApproveCommand,
    needs: &[(String, u32)],
) -> std::io::Result<()> {
    let p = &loaded.policy;
    let intent = &d.intent;
    let (symbol, decimals) = p
        .asset_info(&intent.asset())
        .map_or(("?", 0), |i| (i.symbol.as_str(), i.decimals));
    let key_policy = p.key(key);
    let key_label = key_policy.map_or("NOT A KEY OF THIS POLICY", |k| k.label.as_str());
    let to_label = key_policy
        .and_then(|k| k.destination(intent.to()))
        .map_or("NOT ON THIS KEY'S ALLOWLIST", |dest| dest.label.as_str());
    let verb = match cmd.verdict {
        Verdict::Approve => "APPROVE",
        Verdict::Reject => "REJECT",
    };
    writeln!(out, "You are asked to {verb} this payout on {}:", p.network)?;
    writeln!(
        out,
        "  pay      {} {symbol}",
        format_amount(intent.amount(), decimals)
    )?;
    writeln!(out, "  from     {key} ({key_label})")?;
    writeln!(out, "  to       {} ({to_label})", intent.to())?;
    writeln!(out, "  payout   {}", cmd.payout_id)?;
    let left = (d.envelope.expiration - cmd.now_ms) / 1000;
    writeln!(
        out,
        "  expires  {} (in {}m {}s)",
        utc(d.envelope.expiration),
        left / 60,
        left % 60
    )?;
    let needs: Vec<String> = needs.iter().map(|(g, n)| format!("{n} of {g:?}")).collect();
    writeln!(out, "  needs    {}", needs.join(" and "))?;
    writeln!(out, "  policy   {}", loaded.hash_hex())
}

/// The approver the key file belongs to, by its public half (`KEY.pub`, or the file itself
/// when it is a public key); `None` when no public half is readable here (the signature is
/// checked after signing instead).
fn approver_of(
    loaded: &LoadedPolicy,
    ssh_key: &Path,
) -> Result<Option<(String, String)>, ApproveError> {
    let public_path = if ssh_key.extension().is_some_and(|e| e == "pub") {
        ssh_key.to_path_buf()
    } else {
        let mut p = ssh_key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let Ok(text) = std::fs::read_to_string(&public_path) else {
        return Ok(None);
    };
    let public = ssh_key::PublicKey::from_openssh(text.trim()).map_err(|e| {
        ApproveError::BadRequest(format!(
            "{} is not an SSH public key: {e}",
            public_path.display()
        ))
    })?;
    let fp = public.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    match loaded.policy.approver(&fp) {
        Some(a) => Ok(Some((a.name.clone(), a.groups.join(", ")))),
        None => Err(ApproveError::NotAnApprover(format!(
            "key {fp} ({}) is no [[approver]] of policy {}; nothing was signed",
            public_path.display(),
            loaded.hash_hex()
        ))),
    }
}

/// Writes `bytes` to a new file at `path`, never replacing one.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ApproveError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ApproveError::OutputExists {
                path: path.to_path_buf(),
            },
            _ => ApproveError::Write {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| ApproveError::Write {
            path: path.to_path_buf(),
            source: e,
        })
}
