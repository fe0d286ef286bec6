//! Emergency freeze: any one policy administrator can stop signing (for one key or for all)
//! at once, with a signed statement; only a new quorum-signed policy lifts it.
//!
//! The statement names the policy in force by hash, so it freezes that policy only: once a
//! new policy is in force, the freeze is gone and replaying the old statement is refused as
//! stale. It is signed as an SSH signature under its own namespace
//! (`ssh-keygen -Y sign -n tron-signer-freeze`), so neither a policy signature nor an
//! approval can be passed off as one. This module judges statements and holds the set of
//! freezes in force; the service records them and refuses what they cover.

use serde::{Deserialize, Serialize};
use tron_proto::Address;

use crate::governance::AdminSet;
use crate::policy::instant::{format_utc, parse_utc};
use crate::reason::ReasonCode;
use crate::sshsig;

/// The SSHSIG namespace of freeze statements.
pub const NAMESPACE: &str = "tron-signer-freeze";
/// The statement's first line: its format and version.
pub const HEADER: &str = "tron-signer freeze statement v1";
/// The largest statement or signature taken (a statement is under 300 bytes; an armored
/// SSHSIG under 1 KiB).
pub const MAX_TEXT: usize = 4096;
/// The longest reason, in characters.
pub const MAX_REASON: usize = 200;

/// What a freeze covers. Recorded as `"all"` or the key's Base58 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every key.
    All,
    /// One signing key.
    Key(Address),
}

impl Scope {
    pub fn covers(&self, key: &Address) -> bool {
        match self {
            Scope::All => true,
            Scope::Key(k) => k == key,
        }
    }

    fn line(&self) -> String {
        match self {
            Scope::All => "all keys".into(),
            Scope::Key(k) => format!("key {k}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_str("all"),
            Scope::Key(k) => s.serialize_str(&k.to_base58()),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        let text = String::deserialize(d)?;
        if text == "all" {
            return Ok(Scope::All);
        }
        text.parse::<Address>()
            .map(Scope::Key)
            .map_err(|_| serde::de::Error::custom("a freeze scope is \"all\" or an address"))
    }
}

/// A freeze statement's content, before and after signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub scope: Scope,
    /// sha256 of the policy file in force.
    pub policy_hash: [u8; 32],
    /// When the administrator wrote it (ms since the epoch; informative).
    pub issued_ms: i64,
    /// Why, in the administrator's words (one line).
    pub reason: String,
}

impl Statement {
    /// The exact text an administrator signs.
    pub fn render(&self) -> String {
        format!(
            "{HEADER}\nscope: {}\npolicy: {}\nissued: {}\nreason: {}\n",
            self.scope.line(),
            hex::encode(self.policy_hash),
            format_utc(self.issued_ms),
            self.reason
        )
    }

    /// Parses a statement; only text [`Statement::render`] would produce is taken.
    pub fn parse(text: &str) -> Result<Statement, FreezeError> {
        let bad = |why: &str| FreezeError::Malformed(why.to_owned());
        if text.len() > MAX_TEXT {
            return Err(bad("the statement is over 4096 bytes"));
        }
        let mut lines = text.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(FreezeError::Malformed(format!(
                "the first line must be {HEADER:?}"
            )));
        }
        let mut field = |name: &str| -> Result<&str, FreezeError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .ok_or_else(|| FreezeError::Malformed(format!("expected the {name:?} line next")))
        };
        let scope = match field("scope")? {
            "all keys" => Scope::All,
            s => match s.strip_prefix("key ") {
                Some(k) => Scope::Key(
                    k.parse::<Address>()
                        .map_err(|_| bad("the scope names no valid Tron address"))?,
                ),
                None => return Err(bad("the scope must be \"all keys\" or \"key T…\"")),
            },
        };
        let policy_hash = hex::decode(field("policy")?)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| bad("the policy line must be 64 hex digits"))?;
        let issued_ms = parse_utc(field("issued")?)
            .ok_or_else(|| bad("the issued line must be a UTC instant (2026-12-03T06:00:00Z)"))?;
        let reason = field("reason")?.to_owned();
        if reason.is_empty()
            || reason.chars().count() > MAX_REASON
            || reason.chars().any(char::is_control)
        {
            return Err(FreezeError::Malformed(format!(
                "the reason must be 1-{MAX_REASON} characters on one line"
            )));
        }
        if lines.next() != Some("") || lines.next().is_some() {
            return Err(bad(
                "the statement must end after the reason line's newline",
            ));
        }
        let st = Statement {
            scope,
            policy_hash,
            issued_ms,
            reason,
        };
        // Exactly one spelling of each statement (the instant above all).
        if st.render() != text {
            return Err(bad(
                "not in canonical form (write it with tron-signer freeze)",
            ));
        }
        Ok(st)
    }
}

/// A freeze an administrator signed, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub scope: Scope,
    /// The administrator's name in the admin set that judged it.
    pub admin: String,
    pub fingerprint: String,
    pub issued_ms: i64,
    pub reason: String,
    /// The statement and its armored signature, as delivered: the evidence.
    pub statement: String,
    pub signature: String,
}

impl Order {
    /// `"all keys frozen by administrator \"alice\" (SHA256:…): <reason>"`.
    pub fn describe(&self) -> String {
        format!(
            "{} frozen by administrator {:?} ({}) with a statement issued {}: {}",
            self.scope.line(),
            self.admin,
            self.fingerprint,
            format_utc(self.issued_ms),
            self.reason
        )
    }
}

/// Why a freeze statement was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    #[error("not a freeze statement: {0}")]
    Malformed(String),
    #[error("{0}")]
    Signature(String),
    #[error("the statement is signed by {0}, which is no policy administrator")]
    NotAdmin(String),
}

impl FreezeError {
    pub fn code(&self) -> ReasonCode {
        match self {
            FreezeError::Malformed(_) | FreezeError::Signature(_) => ReasonCode::FreezeInvalid,
            FreezeError::NotAdmin(_) => ReasonCode::FreezeNotAdmin,
        }
    }
}

/// Judges a delivered statement and signature: well formed, signed under [`NAMESPACE`], by
/// one of `admins`. Whether it names the policy in force is the service's check.
pub fn judge(
    admins: &AdminSet,
    statement: &str,
    signature: &str,
) -> Result<(Statement, Order), FreezeError> {
    if signature.len() > MAX_TEXT {
        return Err(FreezeError::Signature(
            "the signature is over 4096 bytes".into(),
        ));
    }
    let st = Statement::parse(statement)?;
    let verified = sshsig::verify(signature, NAMESPACE, statement.as_bytes())
        .map_err(|e| FreezeError::Signature(e.to_string()))?;
    let fingerprint = verified.fingerprint();
    let admin = admins
        .by_fingerprint(&fingerprint)
        .ok_or_else(|| FreezeError::NotAdmin(fingerprint.clone()))?;
    let order = Order {
        scope: st.scope,
        admin: admin.name.clone(),
        fingerprint,
        issued_ms: st.issued_ms,
        reason: st.reason.clone(),
        statement: statement.to_owned(),
        signature: signature.trim().to_owned(),
    };
    Ok((st, order))
}

/// The freezes in force under one policy, as the ledger keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeSet {
    /// The policy they freeze (hex); a new policy in force clears them.
    pub policy: String,
    pub orders: Vec<Order>,
}

impl FreezeSet {
    /// The first freeze covering `key`, if any.
    pub fn covering(&self, key: &Address) -> Option<&Order> {
        self.orders.iter().find(|o| o.scope.covers(key))
    }

    /// Whether `scope` is already covered by a freeze in the set.
    pub fn already(&self, scope: &Scope) -> Option<&Order> {
        self.orders.iter().find(|o| match scope {
            Scope::All => o.scope == Scope::All,
            Scope::Key(k) => o.scope.covers(k),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        // A set of plain strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<FreezeSet> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";

    fn statement(scope: Scope) -> Statement {
        Statement {
            scope,
            policy_hash: [7; 32],
            issued_ms: 1_764_741_600_000,
            reason: "suspected compromise of the hot wallet host".into(),
        }
    }

    fn admin_key(seed: u8) -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn admins() -> AdminSet {
        let line = |s| admin_key(s).public_key().to_openssh().unwrap();
        AdminSet::new(&[("alice".into(), line(1)), ("bob".into(), line(2))], 2).unwrap()
    }

    fn sign(seed: u8, namespace: &str, text: &str) -> String {
        admin_key(seed)
            .sign(namespace, ssh_key::HashAlg::Sha512, text.as_bytes())
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn statements_round_trip_and_only_the_canonical_text_parses() {
        let key: Address = KEY.parse().unwrap();
        for scope in [Scope::All, Scope::Key(key)] {
            let st = statement(scope);
            assert_eq!(Statement::parse(&st.render()).unwrap(), st);
        }
        let text = statement(Scope::All).render();
        assert!(text.starts_with("tron-signer freeze statement v1\nscope: all keys\npolicy: 0707"));
        for (what, bad) in [
            ("header", text.replacen("v1", "v2", 1)),
            ("scope", text.replacen("all keys", "everything", 1)),
            ("address", text.replacen("all keys", "key Tnot", 1)),
            ("hash", text.replacen("0707", "07", 1)),
            ("instant", text.replacen("Z\n", "+00:00\n", 1)),
            ("no newline", text.trim_end().to_owned()),
            ("trailing", format!("{text}more\n")),
            ("order", text.replacen("scope: all keys\n", "", 1)),
        ] {
            let e = Statement::parse(&bad).unwrap_err();
            assert_eq!(e.code(), ReasonCode::FreezeInvalid, "{what}: {e}");
        }
        let long = Statement {
            reason: "x".repeat(MAX_REASON + 1),
            ..statement(Scope::All)
        };
        assert!(Statement::parse(&long.render()).is_err());
    }

    #[test]
    fn one_administrator_signs_under_the_freeze_namespace() {
        let text = statement(Scope::All).render();
        let (st, order) = judge(&admins(), &text, &sign(2, NAMESPACE, &text)).unwrap();
        assert_eq!(st.scope, Scope::All);
        assert_eq!(order.admin, "bob");
        assert!(order
            .describe()
            .contains("all keys frozen by administrator \"bob\""));

        let e = judge(&admins(), &text, &sign(9, NAMESPACE, &text)).unwrap_err();
        assert_eq!(e.code(), ReasonCode::FreezeNotAdmin);
        // A policy signature is never a freeze.
        let e = judge(&admins(), &text, &sign(1, "tron-signer-policy", &text)).unwrap_err();
        assert_eq!(e.code(), ReasonCode::FreezeInvalid);
        let other = statement(Scope::Key(KEY.parse().unwrap())).render();
        let e = judge(&admins(), &other, &sign(1, NAMESPACE, &text)).unwrap_err();
        assert_eq!(e.code(), ReasonCode::FreezeInvalid);
        let e = judge(&admins(), &text, "frozen!").unwrap_err();
        assert_eq!(e.code(), ReasonCode::FreezeInvalid);
    }

    #[test]
    fn a_set_covers_its_keys_and_survives_encoding() {
        let key: Address = KEY.parse().unwrap();
        let other: Address = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf".parse().unwrap();
        let text = statement(Scope::Key(key)).render();
        let (_, order) = judge(&admins(), &text, &sign(1, NAMESPACE, &text)).unwrap();
        let set = FreezeSet {
            policy: hex::encode([7; 32]),
            orders: vec![order],
        };
        assert!(set.covering(&key).is_some());
        assert!(set.covering(&other).is_none());
        assert!(set.already(&Scope::Key(key)).is_some());
        assert!(set.already(&Scope::All).is_none());
        assert_eq!(FreezeSet::decode(&set.encode()).unwrap(), set);
        assert!(FreezeSet::decode(b"{").is_none());
    }
}
