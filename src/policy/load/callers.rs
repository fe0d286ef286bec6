//! `[[caller]]`: who may ask for what. Read after the keys, since a caller's key grants must
//! name keys the policy has. Every identity may recognise one caller only, and a name is
//! used once, so an audit record's caller name means one thing.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use toml::de::DeValue;
use tron_proto::Address;

use super::table::{address, field, strings, At, Field, Fields, Kind, Node, Obj, Schema};
use crate::policy::caller::{CallerPolicy, KeyGrant, Recognition, Rpc, RpcSet};
use crate::policy::problem::{ProblemCode as C, Problems};

const NAME: Field = field("name", Kind::Str, true);
const TLS_PIN: Field = field("tls_pin", Kind::Any, false);
const TLS_SUBJECT: Field = field("tls_subject", Kind::Any, false);
const TLS_SAN: Field = field("tls_san", Kind::Any, false);
const UNIX_UID: Field = field("unix_uid", Kind::Any, false);
const INSECURE_LOOPBACK: Field = field("insecure_loopback", Kind::Bool, false);
const BATCH_KEY: Field = field("batch_key", Kind::Any, false);
const RPCS: Field = field("rpcs", Kind::Array, true);
const KEYS: Field = field("keys", Kind::Array, false);
const ALL_KEYS: Field = field("all_keys", Kind::Bool, false);
const DEPOSIT_ACCOUNTS: Field = field("deposit_accounts", Kind::Array, false);

static SCHEMA: Schema = Schema {
    fields: &[
        &NAME,
        &TLS_PIN,
        &TLS_SUBJECT,
        &TLS_SAN,
        &UNIX_UID,
        &INSECURE_LOOPBACK,
        &BATCH_KEY,
        &RPCS,
        &KEYS,
        &ALL_KEYS,
        &DEPOSIT_ACCOUNTS,
    ],
};

/// The identity fields, in the order messages list them.
const IDENTITIES: [&Field; 6] = [
    &TLS_PIN,
    &TLS_SUBJECT,
    &TLS_SAN,
    &UNIX_UID,
    &INSECURE_LOOPBACK,
    &BATCH_KEY,
];

/// Longest caller name: it is written into every audit record.
const MAX_NAME_LEN: usize = 64;

/// The callers read so far, with what each name and identity was first used by.
pub(super) struct Callers<'k> {
    pub(super) callers: Vec<CallerPolicy>,
    names: HashMap<String, Range<usize>>,
    identities: HashMap<Recognition, String>,
    /// The addresses of the policy's `[[key]]`s.
    keys: &'k HashSet<Address>,
    /// The names of the policy's `[[deposit_account]]`s.
    deposit_accounts: &'k [&'k str],
}

impl<'k> Callers<'k> {
    pub(super) fn new(keys: &'k HashSet<Address>, deposit_accounts: &'k [&'k str]) -> Self {
        Callers {
            callers: Vec::new(),
            names: HashMap::new(),
            identities: HashMap::new(),
            keys,
            deposit_accounts,
        }
    }

    /// Reads one `[[caller]]`; a caller with any problem is reported and left out.
    pub(super) fn add(&mut self, p: &mut Problems<'_>, obj: Obj<'_, '_>) {
        let before = p.len();
        let f = Fields::new(obj, &SCHEMA);
        f.check_unknown(p);
        let name = f.str(p, &NAME).and_then(|n| self.name(p, &n, &f));
        let what = match &name {
            Some(n) => format!("caller {n:?}"),
            None => "[[caller]]".to_owned(),
        };
        let recognised_by = self.identities(p, &f, &what);
        let rpcs = rpcs(p, &f, &what);
        let keys = self.keys_of(p, &f, &what, rpcs);
        let deposit_accounts = self.deposit_accounts_of(p, &f, &what);
        let (Some(name), Some(rpcs)) = (name, rpcs) else {
            return;
        };
        if p.len() != before {
            return;
        }
        for r in &recognised_by {
            self.identities.insert(r.clone(), name.clone());
        }
        self.callers.push(CallerPolicy {
            name,
            recognised_by,
            rpcs,
            keys,
            deposit_accounts,
        });
    }

    /// The deposit accounts it may sweep from, each a `[[deposit_account]]` of the policy.
    fn deposit_accounts_of(
        &self,
        p: &mut Problems<'_>,
        f: &Fields<'_, '_>,
        what: &str,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Some(items) = f.array(p, &DEPOSIT_ACCOUNTS) else {
            return out;
        };
        for s in strings(p, items, || format!("\"deposit_accounts\" of {what}")) {
            if !self.deposit_accounts.contains(&s.value) {
                p.at(
                    s.span,
                    C::UnknownDepositAccount,
                    format!(
                        "{what} is granted deposit account {:?}, which has no [[deposit_account]] section in this policy",
                        s.value
                    ),
                );
            } else if out.iter().any(|a| a == s.value) {
                p.at(
                    s.span,
                    C::DuplicateDepositAccount,
                    format!("deposit account {:?} is listed twice for {what}", s.value),
                );
            } else {
                out.push(s.value.to_owned());
            }
        }
        out
    }

    fn name(&mut self, p: &mut Problems<'_>, n: &At<&str>, f: &Fields<'_, '_>) -> Option<String> {
        let name = n.value;
        let printable = name.chars().all(|c| !c.is_control());
        if name.trim().is_empty() || name.len() > MAX_NAME_LEN || !printable {
            p.at(
                n.span.clone(),
                C::OutOfRange,
                format!(
                    "a caller name is 1 to {MAX_NAME_LEN} bytes of printable text, not blank: {name:?}"
                ),
            );
            return None;
        }
        if let Some(first) = self.names.get(name) {
            let line = p.line_col(first.start).0;
            p.at(
                n.span.clone(),
                C::DuplicateCaller,
                format!("caller {name:?} is already defined on line {line}"),
            );
            return None;
        }
        self.names.insert(name.to_owned(), f.span());
        Some(name.to_owned())
    }

    fn identities(
        &mut self,
        p: &mut Problems<'_>,
        f: &Fields<'_, '_>,
        what: &str,
    ) -> Vec<Recognition> {
        let mut out: Vec<Recognition> = Vec::new();
        let mut push = |p: &mut Problems<'_>, r: Recognition, span: Range<usize>| {
            if let Some(other) = self.identities.get(&r) {
                p.at(
                    span,
                    C::DuplicateCaller,
                    format!(
                        "{r} already recognises caller {other:?}; an identity names one caller"
                    ),
                );
            } else if out.contains(&r) {
                p.at(
                    span,
                    C::DuplicateCaller,
                    format!("{r} is listed twice in {what}"),
                );
            } else {
                out.push(r);
            }
        };
        for v in one_or_many(f, &TLS_PIN) {
            if let Some(r) = text(p, v, what, "tls_pin").and_then(|s| pin(p, &s)) {
                push(p, r, v.span());
            }
        }
        for v in one_or_many(f, &TLS_SUBJECT) {
            if let Some(s) = text(p, v, what, "tls_subject") {
                if s.value.trim().is_empty() {
                    p.at(s.span, C::BadIdentity, "tls_subject must not be empty");
                } else {
                    push(p, Recognition::TlsSubject(s.value.to_owned()), v.span());
                }
            }
        }
        for v in one_or_many(f, &TLS_SAN) {
            if let Some(r) = text(p, v, what, "tls_san").and_then(|s| san(p, &s)) {
                push(p, r, v.span());
            }
        }
        for v in one_or_many(f, &UNIX_UID) {
            if let Some(uid) = uid(p, v, what) {
                push(p, Recognition::UnixUid(uid), v.span());
            }
        }
        if let Some(v) = f.peek(&INSECURE_LOOPBACK) {
            match f.bool(p, &INSECURE_LOOPBACK) {
                Some(true) => push(p, Recognition::InsecureLoopback, v.span()),
                Some(false) => p.at(
                    v.span(),
                    C::OutOfRange,
                    format!("insecure_loopback in {what} is written true or left out"),
                ),
                None => {}
            }
        }
        for v in one_or_many(f, &BATCH_KEY) {
            if let Some(r) = text(p, v, what, "batch_key").and_then(|s| batch_key(p, &s)) {
                push(p, r, v.span());
            }
        }
        let given = IDENTITIES.iter().any(|field| f.peek(field).is_some());
        if !given {
            let names: Vec<&str> = IDENTITIES.iter().map(|f| f.name).collect();
            p.at(
                f.span(),
                C::MissingField,
                format!(
                    "{what} says nothing it is recognised by: give one or more of {}",
                    names.join(", ")
                ),
            );
        }
        out
    }

    fn keys_of(
        &self,
        p: &mut Problems<'_>,
        f: &Fields<'_, '_>,
        what: &str,
        rpcs: Option<RpcSet>,
    ) -> KeyGrant {
        let mut out = Vec::new();
        if let Some(v) = f.peek(&ALL_KEYS) {
            match f.bool(p, &ALL_KEYS) {
                Some(true) if f.peek(&KEYS).is_some() => p.at(
                    v.span(),
                    C::OutOfRange,
                    format!("{what} has both \"keys\" and all_keys = true; give one"),
                ),
                Some(true) => return KeyGrant::All,
                Some(false) => p.at(
                    v.span(),
                    C::OutOfRange,
                    format!("all_keys in {what} is written true or left out"),
                ),
                None => {}
            }
        }
        let Some(items) = f.array(p, &KEYS) else {
            if f.peek(&ALL_KEYS).is_none()
                && f.peek(&DEPOSIT_ACCOUNTS).is_none()
                && rpcs.is_some_and(|r| r.iter().any(Rpc::uses_keys))
            {
                p.at(
                    f.span(),
                    C::MissingField,
                    format!("{what} may Sign or Evaluate, so it needs \"keys\" (the signing keys it may name) or all_keys = true"),
                );
            }
            return KeyGrant::Listed(out);
        };
        for s in strings(p, items, || format!("\"keys\" of {what}")) {
            let Some(a) = address(p, &s) else { continue };
            if !self.keys.contains(&a.value) {
                p.at(
                    a.span,
                    C::UnknownKey,
                    format!(
                        "{what} is granted key {}, which has no [[key]] section in this policy",
                        a.value
                    ),
                );
            } else if out.contains(&a.value) {
                p.at(
                    a.span,
                    C::DuplicateKey,
                    format!("key {} is listed twice for {what}", a.value),
                );
            } else {
                out.push(a.value);
            }
        }
        KeyGrant::Listed(out)
    }
}

/// The granted RPCs: at least one, each known and listed once.
fn rpcs(p: &mut Problems<'_>, f: &Fields<'_, '_>, what: &str) -> Option<RpcSet> {
    let items = f.array(p, &RPCS)?;
    let mut set = RpcSet::default();
    let mut ok = true;
    for s in strings(p, items, || format!("\"rpcs\" of {what}")) {
        match Rpc::from_name(s.value) {
            Some(r) => {
                if !set.insert(r) {
                    p.at(
                        s.span,
                        C::OutOfRange,
                        format!("{r} is listed twice in \"rpcs\" of {what}"),
                    );
                    ok = false;
                }
            }
            None => {
                let names: Vec<&str> = Rpc::ALL.iter().map(|r| r.as_str()).collect();
                p.at(
                    s.span,
                    C::UnknownRpc,
                    format!(
                        "{:?} in \"rpcs\" of {what} is not one of {}",
                        s.value,
                        names.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    if set.is_empty() && ok {
        p.at(
            f.span(),
            C::MissingField,
            format!("{what} is granted no RPC; remove it, or list what it may call in \"rpcs\""),
        );
        return None;
    }
    ok.then_some(set)
}

/// A field that holds one value or an array of them.
fn one_or_many<'a, 'i>(f: &Fields<'a, 'i>, field: &Field) -> Vec<Node<'a, 'i>> {
    match f.peek(field) {
        None => Vec::new(),
        Some(v) if matches!(v.get_ref(), DeValue::Array(_)) => v.items().collect(),
        Some(v) => vec![v],
    }
}

fn text<'a>(p: &mut Problems<'_>, v: Node<'a, '_>, what: &str, name: &str) -> Option<At<&'a str>> {
    match v.get_ref() {
        DeValue::String(s) => Some(At {
            value: s.as_ref(),
            span: v.span(),
        }),
        other => {
            p.at(
                v.span(),
                C::WrongType,
                format!(
                    "{name:?} in {what} must be a string or an array of strings, found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

/// 64 hex digits, optionally after `sha256:` (the form `[tls] client_pins` takes).
fn pin(p: &mut Problems<'_>, s: &At<&str>) -> Option<Recognition> {
    let hexed = s.value.strip_prefix("sha256:").unwrap_or(s.value);
    let mut bytes = [0u8; 32];
    if hexed.len() != 64 || hex::decode_to_slice(hexed, &mut bytes).is_err() {
        p.at(
            s.span.clone(),
            C::BadIdentity,
            format!(
                "tls_pin {:?} is not 64 hex digits (the SHA-256 of the client's SubjectPublicKeyInfo)",
                s.value
            ),
        );
        return None;
    }
    Some(Recognition::TlsPin(bytes))
}

/// `dns:`, `uri:` or `ip:` and a value, as the signer names certificate SANs.
fn san(p: &mut Problems<'_>, s: &At<&str>) -> Option<Recognition> {
    let known = ["dns:", "uri:", "ip:"]
        .iter()
        .find_map(|k| s.value.strip_prefix(k).map(|rest| (*k, rest)));
    let ok = match known {
        Some(("ip:", rest)) => rest.parse::<std::net::IpAddr>().is_ok(),
        Some((_, rest)) => !rest.is_empty() && !rest.contains(char::is_whitespace),
        None => false,
    };
    if !ok {
        p.at(
            s.span.clone(),
            C::BadIdentity,
            format!(
                "tls_san {:?} is not dns:NAME, uri:URI (e.g. uri:spiffe://example.org/payments) or ip:ADDRESS",
                s.value
            ),
        );
        return None;
    }
    Some(Recognition::TlsSan(s.value.to_owned()))
}

fn uid(p: &mut Problems<'_>, v: Node<'_, '_>, what: &str) -> Option<u32> {
    let parsed = match v.get_ref() {
        DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    };
    if parsed.is_none() {
        p.at(
            v.span(),
            C::BadIdentity,
            format!("unix_uid in {what} must be a uid (0 to 4294967295) or an array of them"),
        );
    }
    parsed
}

/// An OpenSSH `ssh-ed25519` public key line (`ssh-ed25519 AAAA… comment`).
fn batch_key(p: &mut Problems<'_>, s: &At<&str>) -> Option<Recognition> {
    let why = match ssh_key::PublicKey::from_openssh(s.value.trim()) {
        Err(_) => "it is not an OpenSSH public key line".to_owned(),
        Ok(k) => match k.key_data().ed25519() {
            None => format!("it is an {} key", k.algorithm()),
            Some(e) => match crate::sshsig::PreparedKey::new(k.key_data().clone()) {
                Ok(_) => return Some(Recognition::BatchKey(e.0)),
                Err(why) => why,
            },
        },
    };
    p.at(
        s.span.clone(),
        C::BadIdentity,
        format!("batch_key must be an ssh-ed25519 public key line (ssh-ed25519 AAAA…): {why}"),
    );
    None
}
