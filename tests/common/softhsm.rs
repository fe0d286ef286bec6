//! A SoftHSM2 token of its own per test: a temporary SOFTHSM2_CONF and token directory,
//! passed to the `tron-signer` processes through their environment (never this process's,
//! so tests stay independent inside one test binary).
//!
//! The token itself comes from `tron_testkit::softhsm`, shared with the PKCS#11 library
//! tests and the benchmark; this adds what the CLI and service tests pass to the binary.

use std::ops::Deref;

pub use tron_testkit::softhsm::module_path;

pub const TOKEN: &str = "payouts";
pub const USER_PIN: &str = "5678";
/// The environment variable the tests' configs and CLI calls read the PIN from.
pub const PIN_VAR: &str = "TRON_SIGNER_TEST_PKCS11_PIN";

/// A token labelled [`TOKEN`] with user PIN [`USER_PIN`] (see `tron_testkit::softhsm`).
pub struct SoftHsm(tron_testkit::softhsm::SoftHsm);

impl Deref for SoftHsm {
    type Target = tron_testkit::softhsm::SoftHsm;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl SoftHsm {
    /// A fresh token labelled [`TOKEN`] with user PIN [`USER_PIN`].
    pub fn new() -> SoftHsm {
        SoftHsm(tron_testkit::softhsm::SoftHsm::with_token(TOKEN, USER_PIN))
    }

    /// The environment a `tron-signer` process needs to see this token with `pin`.
    pub fn env(&self, pin: &str) -> Vec<(String, String)> {
        let (conf_var, conf) = self.conf_env();
        vec![
            (conf_var.into(), conf.to_str().expect("utf-8 path").into()),
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
