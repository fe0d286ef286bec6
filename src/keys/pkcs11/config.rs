//! Where the token is and which of its keys the service may use.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::Pkcs11Error;

/// The `[pkcs11]` block of the service configuration. The PIN is not here: it comes from
/// a secret source the service reads once at startup.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Tokens are found by label because slot numbers change across restarts and re-plugs.
    pub token_label: String,
    /// The keys to serve; each must match exactly one private key on the token.
    pub keys: Vec<KeySelector>,
    /// Sessions kept open, which bounds concurrent signatures; default 2 × CPU cores.
    #[serde(default)]
    pub sessions: Option<usize>,
    /// Signing needs only read-only sessions; set false for modules that lack them
    /// (AWS CloudHSM).
    #[serde(default = "default_true")]
    pub read_only_sessions: bool,
    /// How long a request waits for a free session before UNAVAILABLE.
    #[serde(default = "default_checkout_ms")]
    pub session_wait_ms: u64,
}

fn default_true() -> bool {
    true
}

fn default_checkout_ms() -> u64 {
    5_000
}

impl Pkcs11Config {
    /// A config with defaults for everything but the module, token and keys.
    pub fn new(module: PathBuf, token_label: String, keys: Vec<KeySelector>) -> Self {
        Pkcs11Config {
            module,
            token_label,
            keys,
            sessions: None,
            read_only_sessions: true,
            session_wait_ms: default_checkout_ms(),
        }
    }

    /// The pool size actually used.
    pub fn pool_size(&self) -> usize {
        match self.sessions {
            Some(n) if n > 0 => n,
            _ => {
                2 * std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }
        }
    }
}

/// Names one key on the token. `{ label = "payout-1" }` or `{ id = "a1b2..." }` (hex CKA_ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum KeySelector {
    Label(String),
    #[serde(deserialize_with = "hex_id")]
    Id(Vec<u8>),
}

fn hex_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    KeySelector::parse_id(&s).map_err(serde::de::Error::custom)
}

impl KeySelector {
    /// Parses a hex CKA_ID (an optional `0x` prefix is allowed).
    pub fn parse_id(s: &str) -> Result<Vec<u8>, Pkcs11Error> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let id = hex::decode(s).map_err(|e| Pkcs11Error::BadSelector {
            detail: format!("id {s:?} is not hex: {e}"),
        })?;
        if id.is_empty() {
            return Err(Pkcs11Error::BadSelector {
                detail: "id is empty".into(),
            });
        }
        Ok(id)
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySelector::Label(l) => write!(f, "label {l:?}"),
            KeySelector::Id(id) => write!(f, "id {}", hex::encode(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let c: Pkcs11Config = serde_json::from_str(
            r#"{"module":"/usr/lib/softhsm/libsofthsm2.so","token_label":"payouts",
                "keys":[{"label":"hot-1"},{"id":"0x41aa"}]}"#,
        )
        .unwrap();
        assert_eq!(c.token_label, "payouts");
        assert_eq!(
            c.keys,
            vec![
                KeySelector::Label("hot-1".into()),
                KeySelector::Id(vec![0x41, 0xaa])
            ]
        );
        assert!(c.read_only_sessions);
        assert!(c.pool_size() >= 2);
        assert_eq!(c.session_wait_ms, 5_000);
        let c: Pkcs11Config = serde_json::from_str(
            r#"{"module":"m","token_label":"t","keys":[],"sessions":3,"read_only_sessions":false}"#,
        )
        .unwrap();
        assert_eq!(c.pool_size(), 3);
        assert!(!c.read_only_sessions);
    }

    #[test]
    fn refuses_unknown_fields_and_bad_ids() {
        for bad in [
            r#"{"module":"m","token_label":"t","keys":[],"slot":0}"#,
            r#"{"module":"m","token_label":"t","keys":[{"id":"zz"}]}"#,
            r#"{"module":"m","token_label":"t","keys":[{"id":""}]}"#,
            r#"{"module":"m","token_label":"t","keys":[{"name":"x"}]}"#,
            r#"{"module":"m","keys":[]}"#,
        ] {
            assert!(serde_json::from_str::<Pkcs11Config>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_display_without_ambiguity() {
        assert_eq!(KeySelector::Label("a".into()).to_string(), "label \"a\"");
        assert_eq!(KeySelector::Id(vec![1, 0xff]).to_string(), "id 01ff");
    }
}
