//! `[[approver]]` and `[[approval]]`: who may approve, and which transfers need how many
//! approvers of which group. Read after the keys and callers they may name. A rule that no
//! set of the listed approvers could ever satisfy is a load problem, not a payout stuck
//! forever.

use std::collections::{HashMap, HashSet};

use toml::de::DeValue;
use tron_proto::{Address, U256};

use super::table::{address, field, strings, At, Field, Fields, Kind, Obj, Schema};
use super::tokens::Catalog;
use crate::policy::amount::parse_amount;
use crate::policy::approval::{ApprovalRule, Approver};
use crate::policy::model::KeyPolicy;
use crate::policy::problem::{ProblemCode as C, Problems};

const NAME: Field = field("name", Kind::Str, true);
const GROUPS: Field = field("groups", Kind::Array, true);
const KEY: Field = field("key", Kind::Str, true);
const CALLER: Field = field("caller", Kind::Str, false);

static APPROVER: Schema = Schema {
    fields: &[&NAME, &GROUPS, &KEY, &CALLER],
};

const ASSET: Field = field("asset", Kind::Str, true);
const ABOVE: Field = field("above", Kind::Any, true);
const RULE_KEY: Field = field("key", Kind::Str, false);
const DESTINATION: Field = field("destination", Kind::Str, false);
const REQUIRE: Field = field("require", Kind::Table, true);

static RULE: Schema = Schema {
    fields: &[&ASSET, &ABOVE, &RULE_KEY, &DESTINATION, &REQUIRE],
};

/// Key types an approver may sign with: Ed25519 and P-256, in software or on a FIDO2 token.
const ALGORITHMS: [&str; 4] = crate::sshsig::PERSONAL_KEY_TYPES;

const MAX_NAME_LEN: usize = 64;

/// The approvers read so far.
#[derive(Default)]
pub(super) struct Approvers {
    pub(super) list: Vec<Approver>,
    names: HashSet<String>,
    keys: HashMap<String, String>,
}

impl Approvers {
    /// Reads one `[[approver]]`; one with a problem is reported and left out.
    pub(super) fn add(&mut self, p: &mut Problems<'_>, obj: Obj<'_, '_>, callers: &[String]) {
        let before = p.len();
        let f = Fields::new(obj, &APPROVER);
        f.check_unknown(p);
        let name = f.str(p, &NAME).and_then(|n| {
            let ok = !n.value.trim().is_empty()
                && n.value.len() <= MAX_NAME_LEN
                && !n.value.chars().any(char::is_control);
            if !ok {
                p.at(
                    n.span.clone(),
                    C::OutOfRange,
                    format!(
                        "an approver name is 1 to {MAX_NAME_LEN} bytes of printable text: {:?}",
                        n.value
                    ),
                );
                return None;
            }
            if !self.names.insert(n.value.to_owned()) {
                p.at(
                    n.span.clone(),
                    C::DuplicateApprover,
                    format!("approver {:?} is already defined", n.value),
                );
                return None;
            }
            Some(n.value.to_owned())
        });
        let what = name
            .as_deref()
            .map_or_else(|| "[[approver]]".to_owned(), |n| format!("approver {n:?}"));
        let mut groups = Vec::new();
        if let Some(items) = f.array(p, &GROUPS) {
            for g in strings(p, items, || format!("\"groups\" of {what}")) {
                if g.value.trim().is_empty() || g.value.len() > MAX_NAME_LEN {
                    p.at(
                        g.span,
                        C::OutOfRange,
                        format!("a group name in {what} is 1 to {MAX_NAME_LEN} bytes"),
                    );
                } else if groups.iter().any(|x| x == g.value) {
                    p.at(
                        g.span,
                        C::OutOfRange,
                        format!("group {:?} is listed twice for {what}", g.value),
                    );
                } else {
                    groups.push(g.value.to_owned());
                }
            }
            if groups.is_empty() && p.len() == before {
                p.at(
                    f.span(),
                    C::MissingField,
                    format!("{what} is in no group, so it could approve nothing"),
                );
            }
        }
        let key = f.str(p, &KEY).and_then(|k| self.key(p, &k, &what));
        let caller = f.str(p, &CALLER).and_then(|c| {
            if callers.iter().any(|x| x == c.value) {
                Some(c.value.to_owned())
            } else {
                p.at(
                    c.span,
                    C::UnknownCaller,
                    format!(
                        "{what} names caller {:?}, which has no [[caller]] section",
                        c.value
                    ),
                );
                None
            }
        });
        let (Some(name), Some(key)) = (name, key) else {
            return;
        };
        if p.len() != before {
            return;
        }
        let fingerprint = key.data().fingerprint(ssh_key::HashAlg::Sha256).to_string();
        self.keys.insert(fingerprint.clone(), name.clone());
        self.list.push(Approver {
            name,
            groups,
            key,
            fingerprint,
            caller,
        });
    }

    fn key(
        &self,
        p: &mut Problems<'_>,
        k: &At<&str>,
        what: &str,
    ) -> Option<crate::sshsig::PreparedKey> {
        let parsed = match ssh_key::PublicKey::from_openssh(k.value.trim()) {
            Ok(key) => key,
            Err(_) => {
                p.at(
                    k.span.clone(),
                    C::BadIdentity,
                    format!("the key of {what} is not an OpenSSH public key line (ssh-ed25519 AAAA… as in a .pub file)"),
                );
                return None;
            }
        };
        let algorithm = parsed.algorithm().to_string();
        if !ALGORITHMS.contains(&algorithm.as_str()) {
            p.at(
                k.span.clone(),
                C::BadIdentity,
                format!(
                    "the key of {what} is {algorithm}; approvers sign with one of {}",
                    ALGORITHMS.join(", ")
                ),
            );
            return None;
        }
        let data = parsed.key_data().clone();
        let fingerprint = data.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        if let Some(other) = self.keys.get(&fingerprint) {
            p.at(
                k.span.clone(),
                C::DuplicateApprover,
                format!("the key of {what} ({fingerprint}) is already approver {other:?}'s: one key, one approver"),
            );
            return None;
        }
        match crate::sshsig::PreparedKey::new(data) {
            Ok(key) => Some(key),
            Err(why) => {
                p.at(
                    k.span.clone(),
                    C::BadIdentity,
                    format!("the key of {what} cannot verify any signature: {why}"),
                );
                None
            }
        }
    }

    /// How many approvers count for `group`.
    fn in_group(&self, group: &str) -> usize {
        self.list
            .iter()
            .filter(|a| a.groups.iter().any(|g| g == group))
            .count()
    }
}

/// Reads one `[[approval]]` rule (`n`: its place among the rules, from 1).
pub(super) fn rule(
    p: &mut Problems<'_>,
    obj: Obj<'_, '_>,
    n: usize,
    catalog: &Catalog,
    keys: &[KeyPolicy],
    approvers: &Approvers,
) -> Option<ApprovalRule> {
    let before = p.len();
    let f = Fields::new(obj, &RULE);
    f.check_unknown(p);
    let label = format!("approval rule {n}");
    let asset = f
        .str(p, &ASSET)
        .and_then(|s| catalog.lookup(p, &s).map(|i| (i.asset, i.decimals)));
    let above = match (f.value(p, &ABOVE), asset) {
        (Some(v), Some((_, decimals))) => match v.get_ref() {
            DeValue::String(s) => match parse_amount(s, decimals) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.at(
                        v.span(),
                        C::BadAmount,
                        format!("bad amount {s:?} for \"above\" of {label}: {e}"),
                    );
                    None
                }
            },
            other => {
                p.at(
                    v.span(),
                    C::WrongType,
                    format!("\"above\" of {label} must be a quoted decimal string such as \"10000\", found {}", other.type_str()),
                );
                None
            }
        },
        _ => None,
    };
    let key = f
        .str(p, &RULE_KEY)
        .and_then(|s| address(p, &s))
        .and_then(|a| {
            if keys.iter().any(|k| k.address == a.value) {
                Some(a.value)
            } else {
                p.at(
                    a.span,
                    C::UnknownKey,
                    format!(
                        "{label} names key {}, which has no [[key]] section",
                        a.value
                    ),
                );
                None
            }
        });
    let destination: Option<Address> = f
        .str(p, &DESTINATION)
        .and_then(|s| address(p, &s))
        .map(|a| a.value);
    let mut require = Vec::new();
    if let Some(t) = f.table(p, &REQUIRE, format!("\"require\" of {label}")) {
        for (group, span, v) in t.entries() {
            let count = match v.get_ref() {
                DeValue::Integer(i) => u32::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .filter(|c| *c >= 1),
                _ => None,
            };
            let Some(count) = count else {
                p.at(v.span(), C::OutOfRange, format!("the count of group {group:?} in {label} must be a whole number of at least 1"));
                continue;
            };
            let have = approvers.in_group(group);
            if have < count as usize {
                p.at(
                    span,
                    C::ApprovalUnreachable,
                    format!(
                        "{label} needs {count} of group {group:?}, which has {have} approver{}: it could never be met",
                        if have == 1 { "" } else { "s" }
                    ),
                );
                continue;
            }
            require.push((group.to_owned(), count));
        }
        if require.is_empty() && p.len() == before {
            p.at(
                f.span(),
                C::MissingField,
                format!("{label} requires no group"),
            );
        }
    }
    if p.len() != before {
        return None;
    }
    Some(ApprovalRule {
        asset: asset?.0,
        above: above.unwrap_or(U256::ZERO),
        key,
        destination,
        require,
        label,
    })
}
