//! What `tron-signer keys generate | import | list` do to a keystore, given already-parsed
//! arguments (the flags themselves are in `crate::cli::keys`).
//!
//! Private keys enter only through standard input, never argv (argv is visible to every
//! local user in /proc and lands in shell history).

use std::io::{Read, Write};
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use super::keystore::{KdfParams, Keystore, KeystoreError};
use crate::secret_source::SecretSource;

const WHAT: &str = "keystore passphrase";

/// Which keystore, and where its passphrase comes from (default: prompt on the terminal).
#[derive(Debug, Clone)]
pub struct KeystoreArgs {
    /// Keystore file.
    pub keystore: PathBuf,
    /// Read the passphrase from this environment variable.
    pub passphrase_env: Option<String>,
    /// Read the passphrase from this file (one trailing newline is ignored).
    pub passphrase_file: Option<PathBuf>,
}

impl KeystoreArgs {
    pub fn source(&self) -> SecretSource {
        match (&self.passphrase_env, &self.passphrase_file) {
            (Some(var), _) => SecretSource::Env(var.clone()),
            (None, Some(path)) => SecretSource::File(path.clone()),
            (None, None) => SecretSource::Prompt,
        }
    }
}

/// argon2id cost for a new file, or to re-key an existing one on this write; each `None`
/// keeps the current (or default) value.
#[derive(Debug, Clone, Default)]
pub struct KdfArgs {
    /// argon2id memory in KiB (default 65536 = 64 MiB).
    pub kdf_m_cost: Option<u32>,
    /// argon2id passes (default 3).
    pub kdf_t_cost: Option<u32>,
    /// argon2id lanes (default 1).
    pub kdf_p_cost: Option<u32>,
}

impl KdfArgs {
    fn apply(&self, base: KdfParams) -> KdfParams {
        KdfParams {
            m_cost_kib: self.kdf_m_cost.unwrap_or(base.m_cost_kib),
            t_cost: self.kdf_t_cost.unwrap_or(base.t_cost),
            p_cost: self.kdf_p_cost.unwrap_or(base.p_cost),
        }
    }

    fn any(&self) -> bool {
        self.kdf_m_cost.is_some() || self.kdf_t_cost.is_some() || self.kdf_p_cost.is_some()
    }
}

/// Options shared by the commands that add a key.
#[derive(Debug, Clone)]
pub struct AddKeyArgs {
    pub store: KeystoreArgs,
    /// Operator-facing name of the key (unique within the keystore).
    pub label: String,
    pub kdf: KdfArgs,
    /// Replace an existing file that is not a keystore openable with this passphrase.
    pub force: bool,
}

/// One keystore command.
#[derive(Debug, Clone)]
pub enum KeysCommand {
    /// Generate a key from OS randomness (creating the keystore if missing); prints its address.
    Generate(AddKeyArgs),
    /// Generate an HD deposit account (a seed from OS randomness); prints the account xpub
    /// (`m/44'/195'/0'`) the policy and the receive side name it by.
    GenerateHd(AddKeyArgs),
    /// Import a private key given as 64 hex digits on standard input; prints its address.
    Import(AddKeyArgs),
    /// List the keys' addresses, labels and creation times (as one JSON array with `json`).
    List { store: KeystoreArgs, json: bool },
}

/// Runs one keystore command: reads the passphrase from its source, prints to `stdout`.
pub fn run_keys(
    cmd: KeysCommand,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), KeystoreError> {
    match cmd {
        KeysCommand::Generate(args) => {
            let (mut ks, pass, existed) = open_for_write(&args)?;
            let address = ks.generate(&args.label)?;
            ks.save(&args.store.keystore, &pass, existed)?;
            writeln!(stdout, "{address}").map_err(KeystoreError::Output)
        }
        KeysCommand::GenerateHd(args) => {
            let (mut ks, pass, existed) = open_for_write(&args)?;
            let xpub = ks.generate_hd(&args.label)?;
            ks.save(&args.store.keystore, &pass, existed)?;
            writeln!(stdout, "{xpub}").map_err(KeystoreError::Output)
        }
        KeysCommand::Import(args) => {
            // Read and check the key before the (slow) KDF, so a typo fails fast.
            let secret = read_hex_key(stdin)?;
            let (mut ks, pass, existed) = open_for_write(&args)?;
            let address = ks.import(&args.label, secret)?;
            ks.save(&args.store.keystore, &pass, existed)?;
            writeln!(stdout, "{address}").map_err(KeystoreError::Output)
        }
        KeysCommand::List { store, json } => {
            let pass = store.source().read_secret(WHAT)?;
            let ks = Keystore::open(&store.keystore, &pass)?;
            let keys = ks.list();
            let hd = ks.hd_list();
            if json {
                let v: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "address": k.address.to_base58(),
                            "label": k.label,
                            "created_at": k.created_at,
                        })
                    })
                    .chain(hd.iter().map(|a| {
                        serde_json::json!({
                            "hd_account_xpub": a.xpub,
                            "label": a.label,
                            "created_at": a.created_at,
                        })
                    }))
                    .collect();
                writeln!(stdout, "{}", serde_json::Value::Array(v)).map_err(KeystoreError::Output)
            } else {
                for k in &keys {
                    writeln!(stdout, "{}\t{}\t{}", k.address, k.label, k.created_at)
                        .map_err(KeystoreError::Output)?;
                }
                for a in &hd {
                    writeln!(stdout, "{}\t{}\t{}", a.xpub, a.label, a.created_at)
                        .map_err(KeystoreError::Output)?;
                }
                Ok(())
            }
        }
    }
}

/// Opens the existing keystore (to update it in place) or starts a new one. Returns
/// whether the file existed, which is what allows `save` to replace it.
fn open_for_write(args: &AddKeyArgs) -> Result<(Keystore, SecretString, bool), KeystoreError> {
    let path = &args.store.keystore;
    let source = args.store.source();
    let exists = std::fs::symlink_metadata(path).is_ok();
    if exists {
        let pass = source.read_secret(WHAT)?;
        match Keystore::open(path, &pass) {
            Ok(mut ks) => {
                if args.kdf.any() {
                    ks.set_params(args.kdf.apply(ks.params()))?;
                }
                return Ok((ks, pass, true));
            }
            Err(cause) if !args.force => {
                return Err(KeystoreError::ExistingUnopenable {
                    path: path.clone(),
                    cause: Box::new(cause),
                })
            }
            Err(cause) => tracing::warn!(
                path = %path.display(),
                cause = cause.code(),
                "--force: replacing a file that does not open as a keystore with this passphrase"
            ),
        }
        let pass = confirm_new(&source, pass)?;
        return Ok((new_keystore(&args.kdf)?, pass, true));
    }
    let pass = source.read_secret(WHAT)?;
    let pass = confirm_new(&source, pass)?;
    Ok((new_keystore(&args.kdf)?, pass, false))
}

fn new_keystore(kdf: &KdfArgs) -> Result<Keystore, KeystoreError> {
    let params = kdf.apply(KdfParams::default());
    params.validate()?;
    Ok(Keystore::new(params))
}

/// A typo in a new passphrase typed at a prompt would lock the keys away for good.
fn confirm_new(source: &SecretSource, pass: SecretString) -> Result<SecretString, KeystoreError> {
    if *source != SecretSource::Prompt {
        return Ok(pass);
    }
    let again = source.read_secret("new keystore passphrase (again)")?;
    if again.expose_secret() != pass.expose_secret() {
        return Err(KeystoreError::PassphraseMismatch);
    }
    Ok(pass)
}

/// 64 hex digits (optional `0x`, surrounding whitespace allowed) into a secret box,
/// reading into a fixed buffer so no reallocation leaves copies behind.
fn read_hex_key(stdin: &mut dyn Read) -> Result<SecretBox<[u8; 32]>, KeystoreError> {
    let mut buf = Zeroizing::new([0u8; 256]);
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(KeystoreError::InvalidKeyEncoding);
        }
        match stdin.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(KeystoreError::InvalidKeyEncoding),
        }
    }
    let text = buf[..n].trim_ascii();
    let digits = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
        .unwrap_or(text);
    if digits.len() != 64 {
        return Err(KeystoreError::InvalidKeyEncoding);
    }
    let mut ok = false;
    let secret = SecretBox::<[u8; 32]>::init_with_mut(|b| {
        ok = hex::decode_to_slice(digits, b).is_ok();
    });
    if !ok {
        return Err(KeystoreError::InvalidKeyEncoding);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_key_parsing() {
        let k = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";
        for input in [k.to_string(), format!("0x{k}\n"), format!("  {k}\r\n")] {
            let s = read_hex_key(&mut input.as_bytes()).unwrap();
            assert_eq!(hex::encode(s.expose_secret()), k);
        }
        for bad in [
            "".to_string(),
            k[..63].to_string(),
            format!("{k}00"),
            k.replace('2', "g"),
            format!("{k} {k}"),
            "a".repeat(300),
        ] {
            let e = read_hex_key(&mut bad.as_bytes()).unwrap_err();
            assert_eq!(e.code(), "keystore_invalid_key_encoding");
            assert!(!e.to_string().contains("279ff36d"));
        }
    }

    // ---- commands on a keystore file (moved here from keystore/tests.rs) ----

    use std::path::Path;

    use crate::keys::soft::keystore::KdfParams;

    const VECTOR_HEX: &str = "279ff36d9bf9f305af3280034bb4187c6dd299bac6b26a3c20b999c7c0d50e6e";
    const VECTOR_ADDR: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn cheap() -> KdfParams {
        KdfParams::insecure_for_tests()
    }

    fn store_args(path: &Path, passfile: &Path) -> KeystoreArgs {
        KeystoreArgs {
            keystore: path.to_path_buf(),
            passphrase_env: None,
            passphrase_file: Some(passfile.to_path_buf()),
        }
    }

    fn add(path: &Path, passfile: &Path, label: &str, force: bool) -> AddKeyArgs {
        AddKeyArgs {
            store: store_args(path, passfile),
            label: label.into(),
            kdf: KdfArgs {
                kdf_m_cost: Some(8),
                kdf_t_cost: Some(1),
                kdf_p_cost: None,
            },
            force,
        }
    }

    /// A passphrase file as an operator must write it: owner-only (others are refused).
    fn write_private(p: &std::path::Path, content: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, content).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn run(cmd: KeysCommand, stdin: &str) -> Result<String, KeystoreError> {
        let mut out = Vec::new();
        run_keys(cmd, &mut stdin.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn cli_generate_import_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks");
        let pf = dir.path().join("pass");
        write_private(&pf, "cli pass\n");

        let a = run(KeysCommand::Generate(add(&path, &pf, "hot", false)), "").unwrap();
        let a = a.trim().to_string();
        assert!(a.starts_with('T') && a.len() == 34);
        let b = run(
            KeysCommand::Import(add(&path, &pf, "imported", false)),
            &format!("{VECTOR_HEX}\n"),
        )
        .unwrap();
        assert_eq!(b.trim(), VECTOR_ADDR);

        let listed = run(
            KeysCommand::List {
                store: store_args(&path, &pf),
                json: true,
            },
            "",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(v[0]["address"], a.as_str());
        assert_eq!(v[0]["label"], "hot");
        assert_eq!(v[1]["address"], VECTOR_ADDR);
        assert_eq!(v[1]["label"], "imported");
        assert!(!listed.contains(&VECTOR_HEX[..16]));
        let text = run(
            KeysCommand::List {
                store: store_args(&path, &pf),
                json: false,
            },
            "",
        )
        .unwrap();
        assert_eq!(text.lines().count(), 2);

        // Duplicate import and bad stdin change nothing.
        let before = std::fs::read(&path).unwrap();
        let e = run(
            KeysCommand::Import(add(&path, &pf, "again", false)),
            VECTOR_HEX,
        )
        .unwrap_err();
        assert_eq!(e.code(), "keystore_duplicate_address");
        let e = run(KeysCommand::Import(add(&path, &pf, "bad", false)), "nothex").unwrap_err();
        assert_eq!(e.code(), "keystore_invalid_key_encoding");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn cli_refuses_to_replace_what_it_cannot_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks");
        let pf = dir.path().join("pass");
        let wrong = dir.path().join("wrong");
        write_private(&pf, "right");
        write_private(&wrong, "wrong");

        std::fs::write(&path, b"precious non-keystore data").unwrap();
        // Readable by others: not opened at all, and so not replaced either.
        match run(KeysCommand::Generate(add(&path, &pf, "k", false)), "") {
            Err(KeystoreError::ExistingUnopenable { cause, .. }) => {
                assert_eq!(cause.code(), "keystore_too_open")
            }
            other => panic!("{other:?}"),
        }
        write_private(&path, "precious non-keystore data");
        match run(KeysCommand::Generate(add(&path, &pf, "k", false)), "") {
            Err(KeystoreError::ExistingUnopenable { cause, .. }) => {
                assert_eq!(cause.code(), "keystore_bad_magic")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"precious non-keystore data");
        run(KeysCommand::Generate(add(&path, &pf, "k", true)), "").unwrap();

        match run(KeysCommand::Generate(add(&path, &wrong, "k2", false)), "") {
            Err(KeystoreError::ExistingUnopenable { cause, .. }) => {
                assert_eq!(cause.code(), "keystore_wrong_passphrase")
            }
            other => panic!("{other:?}"),
        }
        let ks = Keystore::open(&path, &pass("right")).unwrap();
        assert_eq!(ks.len(), 1);
        assert_eq!(ks.params(), cheap());
    }

    #[test]
    fn cli_missing_passphrase_source_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks");
        let mut args = add(&path, &dir.path().join("absent-pass"), "k", false);
        let e = run(KeysCommand::Generate(args.clone()), "").unwrap_err();
        assert_eq!(e.code(), "secret_file_missing");
        assert!(e.to_string().contains("absent-pass"));
        args.store.passphrase_file = None;
        args.store.passphrase_env = Some("TRON_SIGNER_TEST_KEYSTORE_NO_SUCH_VAR".into());
        let e = run(KeysCommand::Generate(args), "").unwrap_err();
        assert_eq!(e.code(), "secret_env_missing");
        assert!(!path.exists());
    }

    #[test]
    fn secret_is_used_verbatim_from_env_source() {
        // The passphrase from the env source opens what the file source wrote.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks");
        let pf = dir.path().join("pass");
        write_private(&pf, "same secret\n");
        run(KeysCommand::Generate(add(&path, &pf, "k", false)), "").unwrap();
        let var = "TRON_SIGNER_TEST_KEYSTORE_ENV_PASS";
        std::env::set_var(var, "same secret");
        let src = crate::secret_source::SecretSource::Env(var.into());
        let p = src.read_secret("keystore passphrase").unwrap();
        assert_eq!(p.expose_secret(), "same secret");
        assert_eq!(Keystore::open(&path, &p).unwrap().len(), 1);
    }
}
