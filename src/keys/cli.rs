//! `tron-signer keys ...` across backends: `--backend soft` (the default, the encrypted
//! keystore, exactly as [`crate::keystore::cli`] defines it) or `--backend pkcs11` (keys
//! made and kept inside a token).
//!
//! The soft commands accept the same flags as before and reach the same code
//! ([`run_keys`]); each backend's flags are optional at parse time and checked here, so a
//! flag of the other backend is refused instead of silently ignored.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::pkcs11::{self, Pkcs11Args, Pkcs11Error};
use crate::keystore::cli::{run_keys, AddKeyArgs, KdfArgs, KeysCommand, KeystoreArgs};
use crate::keystore::KeystoreError;
use crate::secret_source::{SecretSource, SecretSourceError};

/// Where keys are made and listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Backend {
    /// The encrypted keystore file.
    #[default]
    Soft,
    /// A PKCS#11 token (HSM); the private key never leaves it.
    Pkcs11,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCli {
    /// Generate a key (in the keystore, or inside the token with `--backend pkcs11`);
    /// prints its address.
    Generate(GenerateArgs),
    /// Import a private key given as 64 hex digits on standard input into the keystore;
    /// prints its address. (Keys cannot be imported into a token: they are made there.)
    Import(AddKeyArgs),
    /// List keys with their addresses.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[arg(long, value_enum, default_value_t)]
    pub backend: Backend,
    /// Operator-facing name of the key (unique within the keystore or token).
    #[arg(long)]
    pub label: String,
    #[command(flatten)]
    pub store: SoftFlags,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Replace an existing file that is not a keystore openable with this passphrase.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pkcs11: Pkcs11Flags,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t)]
    pub backend: Backend,
    #[command(flatten)]
    pub store: SoftFlags,
    #[command(flatten)]
    pub pkcs11: Pkcs11Flags,
    /// One JSON array instead of text lines.
    #[arg(long)]
    pub json: bool,
}

/// [`KeystoreArgs`] with the path optional, since `--backend pkcs11` has no keystore.
#[derive(Debug, Clone, Default, Args)]
pub struct SoftFlags {
    /// Keystore file (`--backend soft`).
    #[arg(long, value_name = "PATH")]
    pub keystore: Option<PathBuf>,
    /// Read the passphrase from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// Read the passphrase from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
}

/// [`Pkcs11Args`] with every flag optional at parse time.
#[derive(Debug, Clone, Default, Args)]
pub struct Pkcs11Flags {
    /// Path to the vendor's PKCS#11 module (`--backend pkcs11`).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// Label of the token to use.
    #[arg(long, value_name = "LABEL")]
    pub token_label: Option<String>,
    /// Read the user PIN from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "pin_file")]
    pub pin_env: Option<String>,
    /// Read the user PIN from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub pin_file: Option<PathBuf>,
}

impl SoftFlags {
    fn any(&self) -> bool {
        self.keystore.is_some() || self.passphrase_env.is_some() || self.passphrase_file.is_some()
    }

    fn required(self) -> Result<KeystoreArgs, KeysCliError> {
        let keystore = self.keystore.ok_or(KeysCliError::Usage(NEEDS_KEYSTORE))?;
        Ok(KeystoreArgs {
            keystore,
            passphrase_env: self.passphrase_env,
            passphrase_file: self.passphrase_file,
        })
    }
}

impl Pkcs11Flags {
    fn any(&self) -> bool {
        self.module.is_some()
            || self.token_label.is_some()
            || self.pin_env.is_some()
            || self.pin_file.is_some()
    }

    fn required(self) -> Result<Pkcs11Args, KeysCliError> {
        match (self.module, self.token_label) {
            (Some(module), Some(token_label)) => Ok(Pkcs11Args {
                module,
                token_label,
                pin_env: self.pin_env,
                pin_file: self.pin_file,
            }),
            _ => Err(KeysCliError::Usage(NEEDS_MODULE)),
        }
    }
}

/// Why a `keys` command failed. Never carries a passphrase or PIN.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] Pkcs11Error),
    #[error("PKCS#11 user PIN: {0}")]
    Pin(SecretSourceError),
    #[error("{0}")]
    Usage(&'static str),
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl KeysCliError {
    pub fn code(&self) -> &'static str {
        match self {
            KeysCliError::Keystore(e) => e.code(),
            KeysCliError::Pkcs11(e) => e.code(),
            KeysCliError::Pin(e) => e.code(),
            KeysCliError::Usage(_) => "keys_usage",
            KeysCliError::Output(_) => "output_failed",
        }
    }
}

impl Pkcs11Args {
    /// `--pin-env`, `--pin-file`, or a prompt on the terminal.
    pub fn pin_source(&self) -> SecretSource {
        match (&self.pin_env, &self.pin_file) {
            (Some(var), _) => SecretSource::Env(var.clone()),
            (None, Some(path)) => SecretSource::File(path.clone()),
            (None, None) => SecretSource::Prompt,
        }
    }
}

const NEEDS_KEYSTORE: &str = "--backend soft needs --keystore";
const NO_PKCS11_FLAGS: &str =
    "--module/--token-label/--pin-env/--pin-file belong to --backend pkcs11";
const NEEDS_MODULE: &str = "--backend pkcs11 needs --module and --token-label";
const NO_KEYSTORE_FLAGS: &str =
    "--keystore/--passphrase-*/--kdf-*/--force belong to --backend soft";

pub fn run_keys_cli(
    cmd: KeysCli,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), KeysCliError> {
    match cmd {
        KeysCli::Import(args) => Ok(run_keys(KeysCommand::Import(args), stdin, stdout)?),
        KeysCli::Generate(args) => match args.backend {
            Backend::Soft => {
                if args.pkcs11.any() {
                    return Err(KeysCliError::Usage(NO_PKCS11_FLAGS));
                }
                let store = args.store.required()?;
                let add = AddKeyArgs {
                    store,
                    label: args.label,
                    kdf: args.kdf,
                    force: args.force,
                };
                Ok(run_keys(KeysCommand::Generate(add), stdin, stdout)?)
            }
            Backend::Pkcs11 => {
                if args.store.any() || args.kdf_given() || args.force {
                    return Err(KeysCliError::Usage(NO_KEYSTORE_FLAGS));
                }
                let p = args.pkcs11.required()?;
                let pin = p
                    .pin_source()
                    .read_secret("PKCS#11 user PIN")
                    .map_err(KeysCliError::Pin)?;
                let module = pkcs11::module(&p.module)?;
                let key = pkcs11::generate_key(&module, &p.token_label, &pin, &args.label)?;
                writeln!(stdout, "{}", key.address).map_err(KeysCliError::Output)
            }
        },
        KeysCli::List(args) => match args.backend {
            Backend::Soft => {
                if args.pkcs11.any() {
                    return Err(KeysCliError::Usage(NO_PKCS11_FLAGS));
                }
                let store = args.store.required()?;
                let json = args.json;
                Ok(run_keys(KeysCommand::List { store, json }, stdin, stdout)?)
            }
            Backend::Pkcs11 => {
                if args.store.any() {
                    return Err(KeysCliError::Usage(NO_KEYSTORE_FLAGS));
                }
                let p = args.pkcs11.required()?;
                list_pkcs11(&p, args.json, stdout)
            }
        },
    }
}

impl GenerateArgs {
    fn kdf_given(&self) -> bool {
        self.kdf.kdf_m_cost.is_some()
            || self.kdf.kdf_t_cost.is_some()
            || self.kdf.kdf_p_cost.is_some()
    }
}

/// The token's secp256k1 keys: address, label, CKA_ID (hex) and whether the private half
/// is there (a public key alone cannot sign).
fn list_pkcs11(p: &Pkcs11Args, json: bool, stdout: &mut dyn Write) -> Result<(), KeysCliError> {
    let pin = p
        .pin_source()
        .read_secret("PKCS#11 user PIN")
        .map_err(KeysCliError::Pin)?;
    let module = pkcs11::module(&p.module)?;
    let keys = pkcs11::list_keys(&module, &p.token_label, &pin)?;
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
        writeln!(stdout, "{}", serde_json::Value::Array(v)).map_err(KeysCliError::Output)
    } else {
        for k in &keys {
            let can = if k.has_private_key {
                "can-sign"
            } else {
                "public-only"
            };
            writeln!(stdout, "{}\t{}\t{}\t{can}", k.address, k.label, k.id_hex)
                .map_err(KeysCliError::Output)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: KeysCli,
    }

    fn parse(args: &[&str]) -> Result<KeysCli, clap::Error> {
        T::try_parse_from(std::iter::once("keys").chain(args.iter().copied())).map(|t| t.cmd)
    }

    fn run(args: &[&str]) -> Result<String, KeysCliError> {
        let cmd = parse(args).expect("parses");
        let mut out = Vec::new();
        run_keys_cli(cmd, &mut std::io::empty(), &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn soft_is_the_default_and_keeps_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        let ks = dir.path().join("k.tks");
        let var = "TRON_SIGNER_TEST_KEYS_CLI_PASS";
        std::env::set_var(var, "a passphrase");
        let ks_s = ks.to_str().unwrap();
        let common = [
            "--keystore",
            ks_s,
            "--passphrase-env",
            var,
            "--kdf-m-cost",
            "1024",
            "--kdf-t-cost",
            "1",
        ];
        let mut gen = vec!["generate", "--label", "a"];
        gen.extend(common);
        let addr = run(&gen).unwrap();
        let mut gen2 = vec!["generate", "--backend", "soft", "--label", "b"];
        gen2.extend(common);
        let addr2 = run(&gen2).unwrap();
        let listed = run(&["list", "--keystore", ks_s, "--passphrase-env", var]).unwrap();
        assert!(listed.contains(addr.trim()) && listed.contains(addr2.trim()));
        assert!(listed.contains("\ta\t") && listed.contains("\tb\t"));
    }

    #[test]
    fn backend_flags_do_not_mix() {
        let e = run(&["generate", "--label", "a"]).unwrap_err();
        assert_eq!(e.to_string(), NEEDS_KEYSTORE);
        let e = run(&["list"]).unwrap_err();
        assert_eq!(e.to_string(), NEEDS_KEYSTORE);
        let e = run(&[
            "generate",
            "--label",
            "a",
            "--keystore",
            "k",
            "--module",
            "m",
            "--token-label",
            "t",
        ])
        .unwrap_err();
        assert_eq!(e.code(), "keys_usage");
        assert_eq!(e.to_string(), NO_PKCS11_FLAGS);
        let e = run(&["generate", "--backend", "pkcs11", "--label", "a"]).unwrap_err();
        assert_eq!(e.to_string(), NEEDS_MODULE);
        for extra in [["--keystore", "k"], ["--kdf-t-cost", "1"]] {
            let mut args = vec![
                "generate",
                "--backend",
                "pkcs11",
                "--label",
                "a",
                "--module",
                "m",
                "--token-label",
                "t",
            ];
            args.extend(extra);
            assert_eq!(run(&args).unwrap_err().to_string(), NO_KEYSTORE_FLAGS);
        }
        let e = run(&["list", "--backend", "pkcs11", "--keystore", "k"]).unwrap_err();
        assert_eq!(e.to_string(), NO_KEYSTORE_FLAGS);
        let e = run(&["list", "--backend", "pkcs11", "--module", "m"]).unwrap_err();
        assert_eq!(e.to_string(), NEEDS_MODULE);
        let e = run(&[
            "list",
            "--backend",
            "soft",
            "--pin-env",
            "X",
            "--keystore",
            "k",
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), NO_PKCS11_FLAGS);
        assert!(parse(&["list", "--backend", "hsm"]).is_err());
    }

    #[test]
    fn missing_module_and_pin_are_specific() {
        let var = "TRON_SIGNER_TEST_KEYS_CLI_PIN_UNSET";
        std::env::remove_var(var);
        let e = run(&[
            "list",
            "--backend",
            "pkcs11",
            "--module",
            "/nonexistent/libnope.so",
            "--token-label",
            "t",
            "--pin-env",
            var,
        ])
        .unwrap_err();
        assert_eq!(e.code(), "secret_env_missing");
        let var = "TRON_SIGNER_TEST_KEYS_CLI_PIN_SET";
        std::env::set_var(var, "9999");
        let e = run(&[
            "list",
            "--backend",
            "pkcs11",
            "--module",
            "/nonexistent/libnope.so",
            "--token-label",
            "t",
            "--pin-env",
            var,
        ])
        .unwrap_err();
        assert_eq!(e.code(), "pkcs11_module_load");
        assert!(!e.to_string().contains("9999"));
    }
}
