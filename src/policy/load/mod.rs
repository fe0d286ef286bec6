//! TOML text to a validated [`Policy`], or every problem found in it.
//!
//! One path for every file: the text is cut into its top-level sections (`sections`), each
//! section is parsed alone when the walk reaches it and dropped after, and each kind of
//! section is read by its own module against one const field table (`table`): the root
//! here, then `global`, `tokens`, `key` with its `destination`s, and `windows` inside both.
//! The walk reads the root, `[global]` and the `[[token]]` catalog first (wherever they are
//! in the file), then each `[[key]]` with the destination sections that belong to it.
//!
//! The file format is described for auditors in `policies/README.md`; the limits below are
//! documented there too.

mod admins;
mod approvals;
mod callers;
mod deposit;
mod destination;
mod global;
mod key;
mod limits;
mod sections;
mod table;
mod tokens;
mod windows;

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::model::{Network, Policy};
use super::problem::{PolicyLoadError, ProblemCode as C, Problems};
use key::{Draft, Seen};
use sections::{destinations_of, Header, Plan, Section};
use table::{field, Field, Fields, Kind, Node, Obj, Schema};
use tokens::Catalog;

pub use limits::{
    FORMAT_VERSION, MAX_CLOCK_SKEW_MS, MAX_DECIMALS, MAX_EXPIRATION_MS, MAX_FEE_LIMIT_SUN,
    MAX_MEMO_LEN, MAX_WINDOW_MS, TRX_DECIMALS,
};

const VERSION: Field = field("version", Kind::Uint, true);
const NAME: Field = field("name", Kind::Str, true);
/// The policy's revision: each policy put in force must have a higher one (no rollback).
const REVISION: Field = field("revision", Kind::Uint, false);
/// When the policy may first be put in force, and when it stops allowing anything (UTC).
const NOT_BEFORE: Field = field("not_before", Kind::Str, false);
const EXPIRES_AT: Field = field("expires_at", Kind::Str, false);
/// The network the policy signs for (`Network::as_str`).
const NETWORK: Field = field("network", Kind::Str, true);
/// `[global]` written inline (`global = { ... }`).
const GLOBAL: Field = field("global", Kind::Table, false);
/// Tokens written inline (`token = [...]`).
const TOKEN: Field = field("token", Kind::Array, false);
/// Keys written inline (`key = [...]`).
const KEY: Field = field("key", Kind::Array, false);
/// Callers written inline (`caller = [...]`).
const CALLER: Field = field("caller", Kind::Array, false);
/// `[policy_admins]`: who must sign the next policy (see `admins`).
const POLICY_ADMINS: Field = field("policy_admins", Kind::Table, false);
/// Approvers and approval rules written inline.
const APPROVER: Field = field("approver", Kind::Array, false);
const APPROVAL: Field = field("approval", Kind::Array, false);
/// HD deposit accounts written inline (`deposit_account = [...]`).
const DEPOSIT_ACCOUNT: Field = field("deposit_account", Kind::Array, false);

static ROOT: Schema = Schema {
    fields: &[
        &VERSION,
        &NAME,
        &REVISION,
        &NOT_BEFORE,
        &EXPIRES_AT,
        &NETWORK,
        &GLOBAL,
        &TOKEN,
        &KEY,
        &CALLER,
        &APPROVER,
        &APPROVAL,
        &POLICY_ADMINS,
        &DEPOSIT_ACCOUNT,
    ],
};

/// What a successful load yields besides the file identity.
pub(crate) struct Parsed {
    pub(crate) version: u32,
    pub(crate) name: String,
    /// 0 when the file has none.
    pub(crate) revision: u64,
    pub(crate) policy: Policy,
}

pub(crate) fn load(text: &str, file: &str) -> Result<Parsed, PolicyLoadError> {
    let mut p = Problems::new(file, text);
    let plan = Plan::new(sections::sections(text));
    let parsed = walk(&mut p, text, &plan);
    match parsed {
        Some(parsed) if p.is_empty() => Ok(parsed),
        _ => Err(p.into_error()),
    }
}

fn walk(p: &mut Problems<'_>, text: &str, plan: &Plan) -> Option<Parsed> {
    let root_tree = parse(p, text, &plan.root);
    let empty = DeTable::new();
    let root = Obj {
        table: root_tree.as_ref().unwrap_or(&empty),
        span: 0..0,
        base: 0,
        what: "the policy file".into(),
    };
    let root = Fields::new(root, &ROOT);
    root.check_unknown(p);
    let version = root.uint(p, &VERSION);
    if let Some(v) = &version {
        if v.value != FORMAT_VERSION {
            p.at(
                v.span.clone(),
                C::UnsupportedVersion,
                format!(
                    "policy format version {} is not supported; this signer reads version {FORMAT_VERSION}",
                    v.value
                ),
            );
        }
    }
    let name = root.str(p, &NAME);
    if let Some(n) = &name {
        if n.value.trim().is_empty() {
            p.at(n.span.clone(), C::MissingField, "name must not be empty");
        }
    }

    let revision = root.uint(p, &REVISION);
    if let Some(r) = revision.as_ref().filter(|r| r.value == 0) {
        p.at(
            r.span.clone(),
            C::OutOfRange,
            "revision starts at 1 (leave it out only where no rollback protection is wanted)",
        );
    }
    let instant = |p: &mut Problems<'_>, f: &Field| {
        let at = root.str(p, f)?;
        let ms = super::instant::parse_utc(at.value);
        if ms.is_none() {
            p.at(
                at.span.clone(),
                C::BadTime,
                format!(
                    "{} must be an instant in UTC like \"2026-12-01T00:00:00Z\"",
                    f.name
                ),
            );
        }
        ms.map(|ms| (ms, at.span))
    };
    let not_before = instant(p, &NOT_BEFORE);
    let expires_at = instant(p, &EXPIRES_AT);
    if let (Some((from, _)), Some((until, span))) = (&not_before, &expires_at) {
        if until <= from {
            p.at(
                span.clone(),
                C::BadTime,
                "expires_at must be after not_before",
            );
        }
    }
    let network = read_network(p, &root);

    let global = read_global(p, text, &root, plan.with(Header::Global));
    let catalog = read_tokens(p, text, &root, plan.with(Header::Token), network);
    let mut deposits = deposit::Accounts::default();
    each_element(
        p,
        text,
        &root,
        plan.with(Header::DepositAccount),
        &DEPOSIT_ACCOUNT,
        |p, obj| deposits.add(p, obj, &catalog, &global.envelope),
    );
    let deposit_names: Vec<&str> = deposits.list.iter().map(|a| a.name.as_str()).collect();
    let keys = read_keys(
        p,
        text,
        &root,
        plan,
        &catalog,
        &global.envelope,
        &deposit_names,
    );
    let callers = read_callers(
        p,
        text,
        &root,
        plan.with(Header::Caller),
        &keys,
        &deposit_names,
    );
    let caller_names: Vec<String> = callers.iter().map(|c| c.name.clone()).collect();
    let mut approvers = approvals::Approvers::default();
    each_element(
        p,
        text,
        &root,
        plan.with(Header::Approver),
        &APPROVER,
        |p, obj| approvers.add(p, obj, &caller_names),
    );
    let mut approval_rules = Vec::new();
    each_element(
        p,
        text,
        &root,
        plan.with(Header::Approval),
        &APPROVAL,
        |p, obj| {
            let n = approval_rules.len() + 1;
            approval_rules.extend(approvals::rule(p, obj, n, &catalog, &keys, &approvers));
        },
    );
    let admins = read_single(
        p,
        text,
        &root,
        plan.with(Header::PolicyAdmins),
        &POLICY_ADMINS,
        admins::read,
    );
    for s in plan.strays() {
        stray(p, text, s);
    }

    let mut key_index = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        key_index.insert(k.address, i);
    }
    let contracts = catalog.assets.iter().filter_map(|a| match a.asset {
        crate::decode::Asset::Token(c) => Some(c),
        crate::decode::Asset::Trx => None,
    });
    let address_text = keys
        .iter()
        .map(|k| k.address)
        .chain(contracts)
        .map(|a| (a, a.to_base58()))
        .collect();
    Some(Parsed {
        version: u32::try_from(version?.value).ok()?,
        name: name?.value.to_owned(),
        revision: revision.map_or(0, |r| r.value),
        policy: Policy {
            network: network?,
            frozen: global.frozen,
            assets: catalog.assets,
            keys,
            key_index,
            address_text,
            deposit_accounts: deposits.list,
            callers,
            approvers: approvers.list,
            approval_rules,
            admins,
            not_before_ms: not_before.map(|(ms, _)| ms),
            expires_at_ms: expires_at.map(|(ms, _)| ms),
        },
    })
}

/// The top-level `network`; `None` (reported) when missing or not a known network.
fn read_network(p: &mut Problems<'_>, root: &Fields<'_, '_>) -> Option<Network> {
    let n = root.str(p, &NETWORK)?;
    let network = Network::from_name(n.value);
    if network.is_none() {
        let names: Vec<&str> = Network::ALL.iter().map(|n| n.as_str()).collect();
        p.at(
            n.span.clone(),
            C::BadNetwork,
            format!("network {:?} is not one of {}", n.value, names.join(", ")),
        );
    }
    network
}

/// Parses one section alone; `None` (with its syntax errors reported) when it does not parse.
fn parse<'t>(p: &mut Problems<'_>, text: &'t str, s: &Section) -> Option<DeTable<'t>> {
    let (tree, errors) = DeTable::parse_recoverable(text.get(s.range.clone()).unwrap_or(""));
    if errors.is_empty() {
        return Some(tree.into_inner());
    }
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        p.syntax(
            s.start() + span.start,
            format!("TOML syntax: {}", e.message().trim_end()),
        );
    }
    None
}

/// The table a section's header names, inside the section's own parse tree: `path` leads
/// from the root, and an array of tables holds exactly the one element this section adds.
fn element<'a, 'i>(tree: &'a DeTable<'i>, path: &[&str], base: usize) -> Option<Node<'a, 'i>> {
    let (first, rest) = path.split_first()?;
    let mut value = entry(tree, first)?;
    for name in rest {
        let DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        value = entry(t, name)?;
    }
    if let DeValue::Array(items) = value.get_ref() {
        value = items.first()?;
    }
    Some(Node { value, base })
}

fn entry<'a, 'i>(t: &'a DeTable<'i>, name: &str) -> Option<&'a table::Value<'i>> {
    t.iter()
        .find(|(k, _)| {
            let k: &str = k.get_ref();
            k == name
        })
        .map(|(_, v)| v)
}

/// Reports a section header that repeats or contradicts what is already defined (the TOML
/// rules the whole-file parser would enforce: one `[global]`, no array both inline and as
/// sections).
fn redefined(p: &mut Problems<'_>, s: &Section, message: String) {
    p.syntax(s.header_at, format!("TOML syntax: {message}"));
}

fn line_of(p: &Problems<'_>, at: Range<usize>) -> usize {
    p.line_col(at.start).0
}

fn read_global<'s>(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    sections: impl Iterator<Item = &'s Section>,
) -> global::Global {
    read_single(p, text, root, sections, &GLOBAL, global::read)
}

/// A section that may appear once (`[name]`, or `name = { ... }` inline), read by `read`
/// (given `None` when it is absent).
fn read_single<'s, T>(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    sections: impl Iterator<Item = &'s Section>,
    field: &Field,
    mut read: impl FnMut(&mut Problems<'_>, Option<Obj<'_, '_>>) -> T,
) -> T {
    let what = format!("[{}]", field.name);
    let inline = root.peek(field).map(|v| v.span());
    let mut first: Option<&Section> = None;
    let mut out = None;
    for s in sections {
        let tree = parse(p, text, s);
        if let Some(at) = &inline {
            let line = line_of(p, at.clone());
            redefined(p, s, format!("{what} is already defined on line {line}"));
            continue;
        }
        if let Some(f) = first {
            let line = p.line_col(f.header_at).0;
            redefined(p, s, format!("{what} is already defined on line {line}"));
            continue;
        }
        first = Some(s);
        let Some(tree) = tree else { continue };
        let table = element(&tree, &[field.name], s.start())
            .and_then(|node| Obj::from_node(p, node, what.clone()));
        out = Some(read(p, table));
    }
    match out {
        Some(g) => g,
        None => {
            let table = root.table(p, field, what);
            read(p, table)
        }
    }
}

fn read_tokens<'s>(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    sections: impl Iterator<Item = &'s Section>,
    network: Option<Network>,
) -> Catalog {
    let mut catalog = Catalog::for_network(network);
    if let Some(items) = root.array(p, &TOKEN) {
        for item in items {
            if let Some(t) = Obj::from_node(p, item, "[[token]]") {
                catalog.add(p, t);
            }
        }
    }
    let inline = root.peek(&TOKEN).map(|v| v.span());
    for s in sections {
        let Some(tree) = parse(p, text, s) else {
            continue;
        };
        if let Some(at) = &inline {
            let line = line_of(p, at.clone());
            redefined(
                p,
                s,
                format!("[[token]] cannot add to the token array defined inline on line {line}"),
            );
            continue;
        }
        if let Some(t) = element(&tree, &["token"], s.start())
            .and_then(|node| Obj::from_node(p, node, "[[token]]"))
        {
            catalog.add(p, t);
        }
    }
    catalog
}

/// Hands each element of the array of tables `field` to `f`: those written inline at the
/// top, then those written as `[[field]]` sections (not both: the second form would add to
/// an array already closed). Returns whether the file has any, valid or not.
fn each_element<'s>(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    sections: impl Iterator<Item = &'s Section>,
    field: &Field,
    mut f: impl FnMut(&mut Problems<'_>, Obj<'_, '_>),
) -> bool {
    let what = format!("[[{}]]", field.name);
    let mut any = false;
    if let Some(items) = root.array(p, field) {
        for item in items {
            any = true;
            if let Some(obj) = Obj::from_node(p, item, what.clone()) {
                f(p, obj);
            }
        }
    }
    let inline = root.peek(field).map(|v| v.span());
    for s in sections {
        any = true;
        let Some(tree) = parse(p, text, s) else {
            continue;
        };
        if let Some(at) = &inline {
            let line = line_of(p, at.clone());
            redefined(
                p,
                s,
                format!("{what} cannot add to the array defined inline on line {line}"),
            );
            continue;
        }
        if let Some(obj) = element(&tree, &[field.name], s.start())
            .and_then(|node| Obj::from_node(p, node, what.clone()))
        {
            f(p, obj);
        }
    }
    any
}

fn read_callers<'s>(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    sections: impl Iterator<Item = &'s Section>,
    keys: &[crate::policy::model::KeyPolicy],
    deposit_accounts: &[&str],
) -> Vec<crate::policy::caller::CallerPolicy> {
    let addresses: std::collections::HashSet<_> = keys.iter().map(|k| k.address).collect();
    let mut callers = callers::Callers::new(&addresses, deposit_accounts);
    let any = each_element(p, text, root, sections, &CALLER, |p, c| callers.add(p, c));
    if !any {
        p.at(
            0..0,
            C::NoCallers,
            "the policy has no [[caller]] sections, so nobody may ask it anything (default deny)",
        );
    }
    callers.callers
}

fn read_keys(
    p: &mut Problems<'_>,
    text: &str,
    root: &Fields<'_, '_>,
    plan: &Plan,
    catalog: &Catalog,
    global: &global::EnvSettings,
    deposit_accounts: &[&str],
) -> Vec<crate::policy::model::KeyPolicy> {
    let inline = root.peek(&KEY);
    if inline.is_none() && plan.keys.is_empty() {
        p.at(
            0..0,
            C::NoKeys,
            "the policy has no [[key]] sections, so it could never allow anything",
        );
    }
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(plan.keys.len());
    if let Some(items) = root.array(p, &KEY) {
        for item in items {
            if let Some(key) =
                Draft::begin(p, item, catalog, global, deposit_accounts, &mut seen, 0)
            {
                out.extend(key.finish(p));
            }
        }
    }
    for (s, count) in &plan.keys {
        let tree = parse(p, text, s);
        if let Some(at) = inline.map(|v| v.span()) {
            let line = line_of(p, at);
            redefined(
                p,
                s,
                format!("[[key]] cannot add to the key array defined inline on line {line}"),
            );
        }
        let mut draft = match &tree {
            Some(tree) if inline.is_none() => element(tree, &["key"], s.start()).and_then(|node| {
                Draft::begin(
                    p,
                    node,
                    catalog,
                    global,
                    deposit_accounts,
                    &mut seen,
                    *count,
                )
            }),
            _ => None,
        };
        for d in destinations_of(text, s) {
            let d = &d;
            let Some(dtree) = parse(p, text, d) else {
                continue;
            };
            let Some(key) = draft.as_mut() else {
                continue;
            };
            if key.inline_destinations {
                let line = p.line_col(s.header_at).0;
                redefined(
                    p,
                    d,
                    format!("[[key.destination]] cannot add to the destinations listed inline in the key on line {line}"),
                );
                continue;
            }
            if let Some(node) = element(&dtree, &["key", "destination"], d.start()) {
                key.add_destination(p, node, catalog);
            }
        }
        out.extend(draft.and_then(|d| d.finish(p)));
    }
    out
}

fn is_root_field(name: &str) -> bool {
    ROOT.fields.iter().any(|f| f.name == name)
}

/// A section no reader takes: parsed for its syntax errors, then reported.
fn stray(p: &mut Problems<'_>, text: &str, s: &Section) {
    if parse(p, text, s).is_none() {
        return;
    }
    match &s.header {
        Header::Destination => redefined(
            p,
            s,
            "[[key.destination]] must follow the [[key]] it belongs to".into(),
        ),
        Header::Other(foreign) => match foreign.path.as_deref().and_then(|p| p.first()) {
            Some((name, span)) if !is_root_field(name) => p.at(
                span.clone(),
                C::UnknownField,
                format!(
                    "unknown field {name:?} in the policy file (allowed: {})",
                    ROOT.allowed()
                ),
            ),
            // Like a syntax error, it changes what the sections around it mean, so it is
            // reported alone.
            _ => p.syntax(
                s.header_at,
                format!(
                    "section header {} is not part of the policy format: the sections are [global], [[token]], [[deposit_account]], [[key]], [[key.destination]], [[caller]], [[approver]], [[approval]] and [policy_admins], and a header for a table inside one must directly follow it",
                    text.get(foreign.span.clone()).unwrap_or("")
                ),
            ),
        },
        _ => {}
    }
}

/// The same walk over the whole file parsed as one `toml` tree (every section then reads as
/// inline): the reference the section-by-section load is tested against.
#[cfg(test)]
pub(crate) fn load_whole(text: &str, file: &str) -> Result<Parsed, PolicyLoadError> {
    let mut p = Problems::new(file, text);
    let plan = Plan::new(std::iter::once(Section {
        header: Header::Root,
        range: 0..text.len(),
        header_at: 0,
    }));
    let parsed = walk(&mut p, text, &plan);
    match parsed {
        Some(parsed) if p.is_empty() => Ok(parsed),
        _ => Err(p.into_error()),
    }
}

/// Whether `text` has a section header the format does not have (see `stray`).
#[cfg(test)]
pub(crate) fn has_foreign_header(text: &str) -> bool {
    sections::sections(text).any(|s| matches!(s.header, Header::Other(_)))
}
