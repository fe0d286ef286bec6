//! A SoftHSM2 token of its own per test: a temporary SOFTHSM2_CONF and token directory,
//! passed to the `tron-signer` processes through their environment (never this process's,
//! so tests stay independent inside one test binary).

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

pub const TOKEN: &str = "payouts";
pub const SO_PIN: &str = "1234";
pub const USER_PIN: &str = "5678";
/// The environment variable the tests' configs and CLI calls read the PIN from.
pub const PIN_VAR: &str = "TRON_SIGNER_TEST_PKCS11_PIN";

pub fn module_path() -> PathBuf {
    std::env::var_os("SOFTHSM2_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

pub struct SoftHsm {
    pub dir: TempDir,
    pub conf: PathBuf,
    pub tokens: PathBuf,
}

impl SoftHsm {
    /// A fresh token labelled [`TOKEN`] with user PIN [`USER_PIN`].
    pub fn new() -> SoftHsm {
        assert!(
            module_path().exists(),
            "SoftHSM2 module {} missing: apt-get install softhsm2 (scripts/test.sh does)",
            module_path().display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util runs");
        assert!(
            init.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        SoftHsm { dir, conf, tokens }
    }

    /// The environment a `tron-signer` process needs to see this token with `pin`.
    pub fn env(&self, pin: &str) -> Vec<(String, String)> {
        vec![
            (
                "SOFTHSM2_CONF".into(),
                self.conf.to_str().expect("utf-8 path").into(),
            ),
            (PIN_VAR.into(), pin.into()),
        ]
    }

    /// `[pkcs11]` naming `keys` (labels) on this token, PIN from [`PIN_VAR`].
    pub fn config_section(&self, keys: &[&str]) -> String {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("{{ label = \"{k}\" }}"))
            .collect();
        format!(
            "[pkcs11]\nmodule = \"{}\"\ntoken_label = \"{TOKEN}\"\nkeys = [{}]\nsessions = 4\nsession_wait_ms = 2000\npin = {{ env = \"{PIN_VAR}\" }}\n",
            module_path().display(),
            keys.join(", ")
        )
    }

    /// Arguments selecting this token for `keys pkcs11 generate|list`.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--module".into(),
            module_path().to_str().expect("utf-8 path").into(),
            "--token-label".into(),
            TOKEN.into(),
            "--pin-env".into(),
            PIN_VAR.into(),
        ]
    }
}
