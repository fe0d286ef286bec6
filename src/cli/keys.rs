//! `tron-signer keys ...`: one command set per backend, so clap itself decides which flags
//! go together.
//!
//! - `keys generate | import | list --keystore ...`: the soft backend (the encrypted
//!   keystore), spelled as it always was; `--backend soft` is still accepted.
//! - `keys pkcs11 generate | list --module ... --token-label ...`: keys made and kept inside
//!   a token (built with the `pkcs11` feature).
//!
//! A flag of the other backend is an unknown argument, and a missing one is a missing
//! argument, both reported by clap before anything runs.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[cfg(feature = "pkcs11")]
use crate::keys::pkcs11::commands::{self as token_commands, TokenArgs, TokenCommandError};
use crate::keys::soft::commands::{run_keys, AddKeyArgs, KdfArgs, KeysCommand, KeystoreArgs};
use crate::keys::soft::keystore::KeystoreError;
#[cfg(feature = "pkcs11")]
use crate::secret_source::SecretSource;

/// `tron-signer keys ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCli {
    #[command(flatten)]
    Soft(SoftCli),
    /// Keys inside a PKCS#11 token (HSM): generated there, never leaving it.
    #[cfg(feature = "pkcs11")]
    #[command(subcommand)]
    Pkcs11(Pkcs11Cli),
}

/// The encrypted keystore's commands.
#[derive(Debug, Clone, Subcommand)]
pub enum SoftCli {
    /// Generate a key from OS randomness in the keystore (created if missing); prints its
    /// address. (`keys pkcs11 generate` makes one inside a token.) With `--hd`, an HD
    /// deposit account instead; prints its account xpub.
    Generate(GenerateFlags),
    /// Import a private key given as 64 hex digits on standard input into the keystore;
    /// prints its address. (Keys cannot be imported into a token: they are made there.)
    Import(AddKeyFlags),
    /// List the keystore's keys (address, label, creation time), then its HD accounts
    /// (account xpub, label, creation time).
    List {
        #[command(flatten)]
        store: KeystoreFlags,
        /// One JSON array instead of text lines.
        #[arg(long)]
        json: bool,
    },
}

/// Which keystore, and where its passphrase comes from (default: prompt on the terminal).
#[derive(Debug, Clone, Args)]
pub struct KeystoreFlags {
    /// Keystore file.
    #[arg(long, value_name = "PATH")]
    pub keystore: PathBuf,
    /// Read the passphrase from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// Read the passphrase from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
    /// Accepted for scripts written before the per-backend commands; only `soft`.
    #[arg(long, hide = true, value_name = "soft", value_parser = soft_backend_only)]
    pub backend: Option<SoftBackend>,
}

/// The one value `--backend` still takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBackend;

fn soft_backend_only(value: &str) -> Result<SoftBackend, String> {
    match value {
        "soft" => Ok(SoftBackend),
        "pkcs11" => Err(
            "token keys have their own commands: `tron-signer keys pkcs11 \
                         generate | list --module PATH --token-label LABEL`"
                .into(),
        ),
        _ => Err("the keystore commands take only `--backend soft`".into()),
    }
}

/// argon2id cost for a new file, or to re-key an existing one on this write.
#[derive(Debug, Clone, Default, Args)]
pub struct KdfFlags {
    /// argon2id memory in KiB (default 65536 = 64 MiB).
    #[arg(long, value_name = "KIB")]
    pub kdf_m_cost: Option<u32>,
    /// argon2id passes (default 3).
    #[arg(long, value_name = "N")]
    pub kdf_t_cost: Option<u32>,
    /// argon2id lanes (default 1).
    #[arg(long, value_name = "N")]
    pub kdf_p_cost: Option<u32>,
}

/// Options of the commands that add a key to the keystore.
#[derive(Debug, Clone, Args)]
pub struct AddKeyFlags {
    #[command(flatten)]
    pub store: KeystoreFlags,
    /// Operator-facing name of the key (unique within the keystore).
    #[arg(long)]
    pub label: String,
    #[command(flatten)]
    pub kdf: KdfFlags,
    /// Replace an existing file that is not a keystore openable with this passphrase.
    #[arg(long)]
    pub force: bool,
}

/// `keys generate`'s options.
#[derive(Debug, Clone, Args)]
pub struct GenerateFlags {
    #[command(flatten)]
    pub add: AddKeyFlags,
    /// Store a BIP-32 seed (encrypted like every key) for deposit keys `m/44'/195'/0'/0/i`
    /// and print the account xpub for the policy's [[deposit_account]] and the receive side.
    #[arg(long)]
    pub hd: bool,
}

/// A PKCS#11 token's commands.
#[cfg(feature = "pkcs11")]
#[derive(Debug, Clone, Subcommand)]
pub enum Pkcs11Cli {
    /// Generate a secp256k1 key inside the token; prints its address.
    Generate {
        /// Operator-facing name of the key (unique within the token).
        #[arg(long)]
        label: String,
        #[command(flatten)]
        token: TokenFlags,
    },
    /// List the token's secp256k1 keys: address, label, CKA_ID, whether it can sign.
    List {
        #[command(flatten)]
        token: TokenFlags,
        /// One JSON array instead of text lines.
        #[arg(long)]
        json: bool,
    },
}

/// Which token, and where its user PIN comes from (default: prompt on the terminal).
#[cfg(feature = "pkcs11")]
#[derive(Debug, Clone, Args)]
pub struct TokenFlags {
    /// Path to the vendor's PKCS#11 module.
    #[arg(long, value_name = "PATH")]
    pub module: PathBuf,
    /// Label of the token to use.
    #[arg(long, value_name = "LABEL")]
    pub token_label: String,
    /// Read the user PIN from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "pin_file")]
    pub pin_env: Option<String>,
    /// Read the user PIN from this file (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub pin_file: Option<PathBuf>,
}

/// Why a `keys` command failed. Never carries a passphrase or PIN.
#[derive(Debug, thiserror::Error)]
pub enum KeysCliError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Token(#[from] TokenCommandError),
}

impl KeysCliError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            KeysCliError::Keystore(e) => e.code(),
            #[cfg(feature = "pkcs11")]
            KeysCliError::Token(e) => e.code(),
        }
    }
}

impl From<KeystoreFlags> for KeystoreArgs {
    fn from(f: KeystoreFlags) -> Self {
        KeystoreArgs {
            keystore: f.keystore,
            passphrase_env: f.passphrase_env,
            passphrase_file: f.passphrase_file,
        }
    }
}

impl From<AddKeyFlags> for AddKeyArgs {
    fn from(f: AddKeyFlags) -> Self {
        AddKeyArgs {
            store: f.store.into(),
            label: f.label,
            kdf: KdfArgs {
                kdf_m_cost: f.kdf.kdf_m_cost,
                kdf_t_cost: f.kdf.kdf_t_cost,
                kdf_p_cost: f.kdf.kdf_p_cost,
            },
            force: f.force,
        }
    }
}

#[cfg(feature = "pkcs11")]
impl From<TokenFlags> for TokenArgs {
    fn from(f: TokenFlags) -> Self {
        let pin = match (f.pin_env, f.pin_file) {
            (Some(var), _) => SecretSource::Env(var),
            (None, Some(path)) => SecretSource::File(path),
            (None, None) => SecretSource::Prompt,
        };
        TokenArgs {
            module: f.module,
            token_label: f.token_label,
            pin,
        }
    }
}

/// Runs one `keys` command; key material enters only through `stdin`.
pub fn run_keys_cli(
    cmd: KeysCli,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), KeysCliError> {
    match cmd {
        KeysCli::Soft(soft) => {
            let cmd = match soft {
                SoftCli::Generate(GenerateFlags { add, hd: false }) => {
                    KeysCommand::Generate(add.into())
                }
                SoftCli::Generate(GenerateFlags { add, hd: true }) => {
                    KeysCommand::GenerateHd(add.into())
                }
                SoftCli::Import(args) => KeysCommand::Import(args.into()),
                SoftCli::List { store, json } => KeysCommand::List {
                    store: store.into(),
                    json,
                },
            };
            Ok(run_keys(cmd, stdin, stdout)?)
        }
        #[cfg(feature = "pkcs11")]
        KeysCli::Pkcs11(Pkcs11Cli::Generate { label, token }) => {
            Ok(token_commands::generate(&token.into(), &label, stdout)?)
        }
        #[cfg(feature = "pkcs11")]
        KeysCli::Pkcs11(Pkcs11Cli::List { token, json }) => {
            Ok(token_commands::list(&token.into(), json, stdout)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
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

    /// The parse error for `args`, which must not parse.
    fn refused(args: &[&str]) -> clap::Error {
        match parse(args) {
            Ok(cmd) => panic!("{args:?} parsed as {cmd:?}"),
            Err(e) => e,
        }
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
        // Soft commands need their keystore.
        let e = refused(&["generate", "--label", "a"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--keystore"), "{e}");
        let e = refused(&["list"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--keystore"), "{e}");
        // Token flags are not keystore flags.
        let e = refused(&[
            "generate",
            "--label",
            "a",
            "--keystore",
            "k",
            "--module",
            "m",
            "--token-label",
            "t",
        ]);
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        let e = refused(&[
            "list",
            "--backend",
            "soft",
            "--pin-env",
            "X",
            "--keystore",
            "k",
        ]);
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        // The old spelling of the token backend points at the new one; other values fail.
        let e = refused(&["generate", "--backend", "pkcs11", "--label", "a"]);
        assert!(e.to_string().contains("keys pkcs11"), "{e}");
        assert!(parse(&["list", "--backend", "hsm", "--keystore", "k"]).is_err());
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn token_flags_are_their_own() {
        // Token commands need their module and token.
        let e = refused(&["pkcs11", "generate", "--label", "a"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--module"), "{e}");
        let e = refused(&["pkcs11", "list", "--module", "m"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--token-label"), "{e}");
        // Keystore flags are not token flags.
        for extra in [["--keystore", "k"], ["--kdf-t-cost", "1"]] {
            let mut args = vec![
                "pkcs11",
                "generate",
                "--label",
                "a",
                "--module",
                "m",
                "--token-label",
                "t",
            ];
            args.extend(extra);
            assert_eq!(refused(&args).kind(), ErrorKind::UnknownArgument);
        }
        let e = refused(&["pkcs11", "list", "--keystore", "k"]);
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        // Import exists only for the keystore.
        assert!(parse(&["pkcs11", "import", "--module", "m", "--token-label", "t"]).is_err());
        // One PIN source at most.
        let e = refused(&[
            "pkcs11",
            "list",
            "--module",
            "m",
            "--token-label",
            "t",
            "--pin-env",
            "P",
            "--pin-file",
            "f",
        ]);
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn missing_module_and_pin_are_specific() {
        let list_with = |var: &str| {
            run(&[
                "pkcs11",
                "list",
                "--module",
                "/nonexistent/libnope.so",
                "--token-label",
                "t",
                "--pin-env",
                var,
            ])
            .unwrap_err()
        };
        let var = "TRON_SIGNER_TEST_KEYS_CLI_PIN_UNSET";
        std::env::remove_var(var);
        assert_eq!(list_with(var).code(), "secret_env_missing");
        let var = "TRON_SIGNER_TEST_KEYS_CLI_PIN_SET";
        std::env::set_var(var, "9999");
        let e = list_with(var);
        assert_eq!(e.code(), "pkcs11_module_load");
        assert!(!e.to_string().contains("9999"));
    }
}
