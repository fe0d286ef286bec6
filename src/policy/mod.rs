//! Intent + state to decision: withdrawal policies read from TOML files.
//!
//! A policy is data an auditor reads (`policies/README.md` explains every setting). Loading
//! refuses a file with any problem and lists all of them; evaluation refuses anything the
//! policy does not explicitly allow (DESIGN invariant 3). The sha256 of the exact file bytes
//! identifies the policy in every decision record.

pub mod amount;
pub mod approval;
pub mod archive;
pub mod caller;
mod commands;
pub mod diff;
pub mod duration;
mod eval;
mod explain;
pub mod instant;
pub mod landing;
mod load;
mod model;
mod problem;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use amount::{format_amount, parse_amount, AmountError};
pub use caller::{CallerPolicy, KeyGrant, Presented, Recognised, Recognition, Rpc, RpcSet};
pub use commands::{run_policy, PolicyCommand};
pub use duration::{format_duration, parse_duration, DurationError};
pub use eval::{Allow, Decision, Deny, DenyCode, Request, Usage};
pub use landing::can_still_land;
pub use load::{
    FORMAT_VERSION, MAX_CLOCK_SKEW_MS, MAX_DECIMALS, MAX_EXPIRATION_MS, MAX_FEE_LIMIT_SUN,
    MAX_MEMO_LEN, MAX_WINDOW_MS, TRX_DECIMALS,
};
pub use model::{
    AssetInfo, Destination, DestinationAsset, EnvelopeRules, KeyAsset, KeyPolicy, Network, Policy,
    Window,
};
pub use problem::{PolicyLoadError, Problem, ProblemCode};

/// A policy together with the exact text it came from and that text's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPolicy {
    pub path: PathBuf,
    /// The file's text; `None` once the service has archived it under the data directory
    /// ([`archive`]), where `GetPolicy` reads it back by hash.
    pub text: Option<String>,
    /// Length of the text in bytes (known without reading the archive).
    pub text_len: usize,
    /// sha256 of the file bytes.
    pub hash: [u8; 32],
    pub version: u32,
    pub name: String,
    /// The `revision` the file states (0 when it states none): each policy put in force
    /// must have a higher one than any before it.
    pub revision: u64,
    pub policy: Policy,
}

impl LoadedPolicy {
    /// The hash as lowercase hex, the form recorded with every decision.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// sha256 of the exact bytes; no normalisation, so a reformatted file is a different policy.
pub fn hash_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Reads and validates a policy file.
pub fn load_file(path: &Path) -> Result<LoadedPolicy, PolicyLoadError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        PolicyLoadError::whole_file(&name, ProblemCode::Unreadable, format!("cannot read: {e}"))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        PolicyLoadError::whole_file(
            &name,
            ProblemCode::NotUtf8,
            format!(
                "not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    // The text moves into the result: a second copy would be the largest single allocation.
    let parsed = load::load(&text, &name)?;
    let mut loaded = loaded(parsed, text, &name);
    loaded.path = path.to_path_buf();
    Ok(loaded)
}

/// Validates policy text; `source_name` is used in problem locations and as the path.
pub fn parse(text: &str, source_name: &str) -> Result<LoadedPolicy, PolicyLoadError> {
    let parsed = load::load(text, source_name)?;
    Ok(loaded(parsed, text.to_owned(), source_name))
}

fn loaded(parsed: load::Parsed, text: String, source_name: &str) -> LoadedPolicy {
    LoadedPolicy {
        path: PathBuf::from(source_name),
        hash: hash_bytes(text.as_bytes()),
        text_len: text.len(),
        text: Some(text),
        version: parsed.version,
        name: parsed.name,
        revision: parsed.revision,
        policy: parsed.policy,
    }
}

#[cfg(test)]
mod tests;
