//! What `tron-signer keys pkcs11 generate | list` do on a token, given already-parsed
//! arguments (the flags themselves are in `crate::cli::keys`).

use std::io::Write;
use std::path::PathBuf;

use secrecy::SecretString;

use super::context::{module, Pkcs11Module};
use super::error::Pkcs11Error;
use super::keygen::{generate_key, list_keys};
use crate::secret_source::{SecretSource, SecretSourceError};

/// Which token, and where its user PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenArgs {
    /// The vendor's PKCS#11 library.
    pub module: PathBuf,
    pub token_label: String,
    pub pin: SecretSource,
}

/// Why a token command failed. Never carries a PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenCommandError {
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] Pkcs11Error),
    #[error("PKCS#11 user PIN: {0}")]
    Pin(SecretSourceError),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl TokenCommandError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenCommandError::Pkcs11(e) => e.code(),
            TokenCommandError::Pin(e) => e.code(),
            TokenCommandError::Output(_) => "output_failed",
        }
    }
}

const PIN_PROMPT: &str = "PKCS#11 user PIN";

/// The PIN first (so a missing PIN is reported before the module is touched), then the
/// loaded module.
fn open(token: &TokenArgs) -> Result<(Pkcs11Module, SecretString), TokenCommandError> {
    let pin = token
        .pin
        .read_secret(PIN_PROMPT)
        .map_err(TokenCommandError::Pin)?;
    Ok((module(&token.module)?, pin))
}

/// Generates a key labelled `label` inside the token and prints its address.
pub fn generate(
    token: &TokenArgs,
    label: &str,
    stdout: &mut dyn Write,
) -> Result<(), TokenCommandError> {
    let (module, pin) = open(token)?;
    let key = generate_key(&module, &token.token_label, &pin, label)?;
    writeln!(stdout, "{}", key.address).map_err(TokenCommandError::Output)
}

/// Prints the token's secp256k1 keys: address, label, CKA_ID (hex) and whether the private
/// half is there (a public key alone cannot sign), as text lines or one JSON array.
pub fn list(
    token: &TokenArgs,
    json: bool,
    stdout: &mut dyn Write,
) -> Result<(), TokenCommandError> {
    let (module, pin) = open(token)?;
    let keys = list_keys(&module, &token.token_label, &pin)?;
    if json {
        let v: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "address": k.address.to_base58(),
                    "label": k.label,
                    "id": k.id_hex,
                    "can_sign": k.has_private_key,
                })
            })
            .collect();
        writeln!(stdout, "{}", serde_json::Value::Array(v)).map_err(TokenCommandError::Output)
    } else {
        for k in &keys {
            let can = if k.has_private_key {
                "can-sign"
            } else {
                "public-only"
            };
            writeln!(stdout, "{}\t{}\t{}\t{can}", k.address, k.label, k.id_hex)
                .map_err(TokenCommandError::Output)?;
        }
        Ok(())
    }
}
