//! Throwaway SoftHSM2 tokens in a temporary directory, for PKCS#11 tests and benchmarks.
//!
//! SoftHSM finds its tokens through the file named by `SOFTHSM2_CONF`, read once at
//! `C_Initialize`. A [`SoftHsm`] writes such a file pointing at its own token directory and
//! initialises one token there; the caller decides where the variable is set: in a child
//! process's environment (tests, so tests in one binary stay independent) or, before any
//! PKCS#11 call, in its own (a benchmark that loads the module itself).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The variable SoftHSM2 reads its configuration file's path from.
pub const CONF_VAR: &str = "SOFTHSM2_CONF";
/// The security officer PIN of every token made here (tests only: not a secret).
pub const SO_PIN: &str = "1234";

/// The SoftHSM2 module: `$SOFTHSM2_MODULE`, or where Debian's `softhsm2` package puts it.
pub fn module_path() -> PathBuf {
    std::env::var_os("SOFTHSM2_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

/// A temporary SoftHSM2 configuration with one initialised token; removed on drop.
pub struct SoftHsm {
    /// Holds the configuration file and the token directory.
    pub dir: TempDir,
    /// The configuration file, to pass as [`CONF_VAR`].
    pub conf: PathBuf,
    /// The token directory (tests move it away to simulate a token that disappears).
    pub tokens: PathBuf,
}

impl SoftHsm {
    /// A fresh token labelled `label` with user PIN `user_pin` (SO PIN [`SO_PIN`]).
    ///
    /// # Panics
    ///
    /// When the module is missing (`apt-get install softhsm2`; `scripts/test.sh` does) or
    /// `softhsm2-util --init-token` fails: scaffolding, so it stops the test with the reason.
    pub fn with_token(label: &str, user_pin: &str) -> SoftHsm {
        assert!(
            module_path().exists(),
            "SoftHSM2 module {} missing: apt-get install softhsm2 (scripts/test.sh does)",
            module_path().display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(&conf, conf_text(&tokens)).expect("write softhsm2.conf");
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", user_pin])
            .env(CONF_VAR, &conf)
            .output()
            .expect("softhsm2-util runs (apt-get install softhsm2)");
        assert!(
            init.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        SoftHsm { dir, conf, tokens }
    }

    /// `(CONF_VAR, conf)`: the environment entry a process needs to see this token.
    pub fn conf_env(&self) -> (&'static str, &Path) {
        (CONF_VAR, &self.conf)
    }
}

/// A configuration keeping tokens as files in `tokens`, logging errors only.
fn conf_text(tokens: &Path) -> String {
    format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
        tokens.display()
    )
}
