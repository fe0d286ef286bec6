//! TOML text to a validated [`Policy`], or every problem found in it.
//!
//! The file format is described for auditors in `policies/README.md`; the limits below are
//! documented there too.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;

use toml::de::DeTable;
use tron_proto::{Address, U256};

use super::model::{
    AssetInfo, Destination, DestinationAsset, EnvelopeRules, KeyAsset, KeyPolicy, Policy, Window,
};
use super::problem::{PolicyLoadError, ProblemCode as C, Problems};
use super::split::{split, Split};
use super::toml_walk::{duration, positive_amount, strings, At, Obj, Value};
use crate::decode::Asset;

/// The only policy format this signer understands.
pub const FORMAT_VERSION: u64 = 1;
/// TRX and sun.
pub const TRX_DECIMALS: u8 = 6;
/// Tron's network-wide fee_limit cap: 15,000 TRX.
pub const MAX_FEE_LIMIT_SUN: u64 = 15_000 * 1_000_000;
/// Tron refuses expirations more than 24 h after the head block.
pub const MAX_EXPIRATION_MS: u64 = 24 * 3_600_000;
/// A larger skew would mean the signer's clock is not a meaningful reference.
pub const MAX_CLOCK_SKEW_MS: u64 = 3_600_000;
/// The longest rolling window: bounds how much history the ledger must count.
pub const MAX_WINDOW_MS: u64 = 31 * 86_400_000;
/// The longest memo a policy may allow, in bytes.
pub const MAX_MEMO_LEN: u64 = 4096;
/// Token decimals above this are not real tokens and would overflow small amounts.
pub const MAX_DECIMALS: u64 = 36;
const MAX_SYMBOL_LEN: usize = 16;

const ENVELOPE_FIELDS: [&str; 5] = [
    "max_fee_limit",
    "max_expiration",
    "clock_skew",
    "memo_allowed",
    "max_memo_len",
];

/// What a successful load yields besides the file identity.
pub(crate) struct Parsed {
    pub(crate) version: u32,
    pub(crate) name: String,
    pub(crate) policy: Policy,
}

pub(crate) fn load(text: &str, file: &str) -> Result<Parsed, PolicyLoadError> {
    if let Some(split) = split(text) {
        if let Some(result) = load_split(text, file, &split) {
            return result;
        }
    }
    load_whole(text, file)
}

/// Checks the skeleton of `split` and parses each cut destination section on its own;
/// `None` when some part has a syntax error, so that the whole file is parsed and its
/// errors reported exactly as a whole.
fn load_split(text: &str, file: &str, split: &Split) -> Option<Result<Parsed, PolicyLoadError>> {
    let (root, errors) = DeTable::parse_recoverable(&split.skeleton);
    if !errors.is_empty() {
        return None;
    }
    let mut p = Problems::new(file, text);
    p.set_map(split.map.clone());
    let cut = Cut {
        text,
        split: Some(split),
        failed: Cell::new(false),
    };
    let root = Obj {
        table: root.get_ref(),
        span: 0..0,
        what: "the policy file".into(),
    };
    let parsed = policy(&mut p, &root, &cut);
    if cut.failed.get() {
        return None;
    }
    Some(match parsed {
        Some(parsed) if p.is_empty() => Ok(parsed),
        _ => Err(p.into_error()),
    })
}

/// Where cut destination sections are, if the file was split.
struct Cut<'t> {
    text: &'t str,
    split: Option<&'t Split>,
    /// Set when a cut section does not parse; the walk stops and its result is discarded.
    failed: Cell<bool>,
}

pub(crate) fn load_whole(text: &str, file: &str) -> Result<Parsed, PolicyLoadError> {
    let mut p = Problems::new(file, text);
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        // After a syntax error the recovered tree is partial; checking it would report
        // fields as missing that are present, so only the syntax errors are listed.
        for e in &errors {
            p.at(
                e.span().unwrap_or(0..0),
                C::Syntax,
                format!("TOML syntax: {}", e.message().trim_end()),
            );
        }
        return Err(p.into_error());
    }
    let root = Obj {
        table: root.get_ref(),
        span: 0..0,
        what: "the policy file".into(),
    };
    let cut = Cut {
        text,
        split: None,
        failed: Cell::new(false),
    };
    let parsed = policy(&mut p, &root, &cut);
    match parsed {
        Some(parsed) if p.is_empty() => Ok(parsed),
        _ => Err(p.into_error()),
    }
}

fn policy(p: &mut Problems<'_>, root: &Obj<'_, '_>, cut: &Cut<'_>) -> Option<Parsed> {
    root.check_fields(p, &["version", "name", "global", "token", "key"]);
    let version = root.req_uint(p, "version");
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
    let name = root.req_str(p, "name");
    if let Some(n) = &name {
        if n.value.trim().is_empty() {
            p.at(n.span.clone(), C::MissingField, "name must not be empty");
        }
    }

    let (frozen, global_env) = match root.sub(p, "global", "[global]".into()) {
        Some(g) => {
            let mut allowed = vec!["frozen"];
            allowed.extend(ENVELOPE_FIELDS);
            g.check_fields(p, &allowed);
            (
                g.bool(p, "frozen").unwrap_or(false),
                envelope_settings(p, &g),
            )
        }
        None => (false, EnvSettings::default()),
    };
    let catalog = tokens(p, root);
    let keys = keys(p, root, &catalog, &global_env, cut);
    let assets = catalog.assets;

    let mut key_index = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        key_index.insert(k.address, i);
    }
    Some(Parsed {
        version: u32::try_from(version?.value).ok()?,
        name: name?.value.to_owned(),
        policy: Policy {
            frozen,
            assets,
            keys,
            key_index,
        },
    })
}

/// The declared assets, plus the symbols of token declarations that had problems: those
/// are known names, so uses of them are not reported a second time as undeclared.
struct Catalog {
    assets: Vec<AssetInfo>,
    broken: Vec<String>,
}

impl Catalog {
    fn find(&self, symbol: &str) -> Option<&AssetInfo> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }
}

/// Reads the `[[token]]` catalog; TRX is always present and comes first.
fn tokens(p: &mut Problems<'_>, root: &Obj<'_, '_>) -> Catalog {
    let mut assets = vec![AssetInfo {
        asset: Asset::Trx,
        symbol: "TRX".into(),
        decimals: TRX_DECIMALS,
    }];
    let mut broken = Vec::new();
    let Some(items) = root.array(p, "token") else {
        return Catalog { assets, broken };
    };
    let mut symbols: HashMap<String, Range<usize>> = HashMap::new();
    let mut contracts: HashMap<Address, Range<usize>> = HashMap::new();
    for item in items {
        let Some(t) = Obj::from_value(p, item, "[[token]]") else {
            continue;
        };
        t.check_fields(p, &["symbol", "contract", "decimals"]);
        let symbol = t.req_str(p, "symbol");
        let contract = t.req_address(p, "contract");
        let decimals = t.req_uint(p, "decimals");
        let mut ok = true;
        if let Some(s) = &symbol {
            if !valid_symbol(s.value) {
                ok = false;
                p.at(
                    s.span.clone(),
                    C::OutOfRange,
                    format!(
                        "token symbol {:?} must be 1-{MAX_SYMBOL_LEN} ASCII letters, digits, '.', '_' or '-'",
                        s.value
                    ),
                );
            } else if s.value.eq_ignore_ascii_case("TRX") {
                ok = false;
                p.at(
                    s.span.clone(),
                    C::DuplicateAsset,
                    "TRX is built in and must not be declared as a token",
                );
            } else if let Some(first) = symbols.get(&s.value.to_ascii_uppercase()) {
                ok = false;
                let (line, _) = line_of(p, first);
                p.at(
                    s.span.clone(),
                    C::DuplicateAsset,
                    format!(
                        "token symbol {:?} is already declared on line {line}",
                        s.value
                    ),
                );
            } else {
                symbols.insert(s.value.to_ascii_uppercase(), p.absolute(&s.span));
            }
        }
        if let Some(c) = &contract {
            if let Some(first) = contracts.get(&c.value) {
                ok = false;
                let (line, _) = line_of(p, first);
                p.at(
                    c.span.clone(),
                    C::DuplicateAsset,
                    format!(
                        "token contract {} is already declared on line {line}",
                        c.value
                    ),
                );
            } else {
                contracts.insert(c.value, p.absolute(&c.span));
            }
        }
        if let Some(d) = &decimals {
            if d.value > MAX_DECIMALS {
                ok = false;
                p.at(
                    d.span.clone(),
                    C::OutOfRange,
                    format!("decimals must be at most {MAX_DECIMALS}"),
                );
            }
        }
        match (ok, symbol, contract, decimals) {
            (true, Some(s), Some(c), Some(d)) => assets.push(AssetInfo {
                asset: Asset::Token(c.value),
                symbol: s.value.to_owned(),
                decimals: u8::try_from(d.value).unwrap_or(u8::MAX),
            }),
            (_, Some(s), _, _) => broken.push(s.value.to_owned()),
            _ => {}
        }
    }
    Catalog { assets, broken }
}

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SYMBOL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Line and column of a span already made absolute with [`Problems::absolute`].
fn line_of(p: &Problems<'_>, span: &Range<usize>) -> (usize, usize) {
    p.line_col(span.start)
}

/// Envelope settings as written in one table; `None` means "not set here".
#[derive(Default, Clone)]
struct EnvSettings {
    max_fee_limit: Option<u64>,
    max_expiration_ms: Option<u64>,
    clock_skew_ms: Option<u64>,
    memo_allowed: Option<bool>,
    max_memo_len: Option<u64>,
    /// Fields present in the table, valid or not (a bad value is reported once, where it is).
    written: Vec<&'static str>,
}

fn envelope_settings(p: &mut Problems<'_>, t: &Obj<'_, '_>) -> EnvSettings {
    let mut s = EnvSettings {
        written: ENVELOPE_FIELDS
            .into_iter()
            .filter(|f| t.get(f).is_some())
            .collect(),
        ..EnvSettings::default()
    };
    if let Some(v) = t.get("max_fee_limit") {
        let what = format!("max_fee_limit (TRX) in {}", t.what);
        if let Some(sun) = positive_amount(p, v, TRX_DECIMALS, &what) {
            if sun > U256::from(MAX_FEE_LIMIT_SUN) {
                p.at(
                    v.span(),
                    C::OutOfRange,
                    format!("{what} is above the network maximum of 15000 TRX"),
                );
            } else {
                s.max_fee_limit = u64::try_from(sun).ok();
            }
        }
    }
    if let Some(d) = t.duration(p, "max_expiration") {
        if d.value > MAX_EXPIRATION_MS {
            p.at(
                d.span,
                C::OutOfRange,
                format!(
                    "max_expiration in {} is over 24h; Tron refuses such transactions",
                    t.what
                ),
            );
        } else {
            s.max_expiration_ms = Some(d.value);
        }
    }
    if let Some(d) = t.duration(p, "clock_skew") {
        if d.value > MAX_CLOCK_SKEW_MS {
            p.at(
                d.span,
                C::OutOfRange,
                format!("clock_skew in {} is over 1h", t.what),
            );
        } else {
            s.clock_skew_ms = Some(d.value);
        }
    }
    s.memo_allowed = t.bool(p, "memo_allowed");
    if let Some(n) = t.uint(p, "max_memo_len") {
        if s.memo_allowed == Some(false) {
            p.at(
                n.span,
                C::InconsistentLimit,
                format!(
                    "max_memo_len is set in {} but memo_allowed = false there",
                    t.what
                ),
            );
        } else if n.value == 0 || n.value > MAX_MEMO_LEN {
            p.at(
                n.span,
                C::OutOfRange,
                format!(
                    "max_memo_len in {} must be between 1 and {MAX_MEMO_LEN} bytes",
                    t.what
                ),
            );
        } else {
            s.max_memo_len = Some(n.value);
        }
    }
    s
}

/// Key-level settings override `[global]`; a limit set in neither place is a problem.
fn resolve_envelope(
    p: &mut Problems<'_>,
    k: &Obj<'_, '_>,
    own: &EnvSettings,
    global: &EnvSettings,
) -> Option<EnvelopeRules> {
    let mut need = |value: Option<u64>, field: &str| {
        let written = own.written.contains(&field) || global.written.contains(&field);
        if value.is_none() && !written {
            p.at(
                k.span.clone(),
                C::MissingField,
                format!("{}: {field} is set neither here nor in [global]", k.what),
            );
        }
        value
    };
    let max_fee_limit = need(own.max_fee_limit.or(global.max_fee_limit), "max_fee_limit");
    let max_expiration_ms = need(
        own.max_expiration_ms.or(global.max_expiration_ms),
        "max_expiration",
    );
    let clock_skew_ms = need(own.clock_skew_ms.or(global.clock_skew_ms), "clock_skew");
    let memo_allowed = own.memo_allowed.or(global.memo_allowed).unwrap_or(false);
    let max_memo_len = if memo_allowed {
        need(own.max_memo_len.or(global.max_memo_len), "max_memo_len")
    } else {
        Some(0)
    };
    Some(EnvelopeRules {
        max_fee_limit: max_fee_limit?,
        max_expiration_ms: max_expiration_ms?,
        clock_skew_ms: clock_skew_ms?,
        memo_allowed,
        max_memo_len: usize::try_from(max_memo_len?).ok()?,
    })
}

fn keys(
    p: &mut Problems<'_>,
    root: &Obj<'_, '_>,
    assets: &Catalog,
    global: &EnvSettings,
    cut: &Cut<'_>,
) -> Vec<KeyPolicy> {
    let items = root.array(p, "key").unwrap_or(&[]);
    if items.is_empty() && root.get("key").is_none() {
        p.at(
            0..0,
            C::NoKeys,
            "the policy has no [[key]] sections, so it could never allow anything",
        );
    }
    let mut seen: HashMap<Address, Range<usize>> = HashMap::new();
    let mut out = Vec::new();
    for item in items {
        if cut.failed.get() {
            break;
        }
        let Some(mut k) = Obj::from_value(p, item, "[[key]]") else {
            continue;
        };
        let mut allowed = vec![
            "address",
            "label",
            "frozen",
            "assets",
            "windows",
            "destination",
        ];
        allowed.extend(ENVELOPE_FIELDS);
        let address = k.req_address(p, "address");
        k.check_fields(p, &allowed);
        if let Some(a) = &address {
            k.what = format!("key {}", a.value);
            if let Some(first) = seen.get(&a.value) {
                let (line, _) = line_of(p, first);
                p.at(
                    a.span.clone(),
                    C::DuplicateKey,
                    format!("key {} already has a section on line {line}", a.value),
                );
            } else {
                seen.insert(a.value, p.absolute(&a.span));
            }
        }
        if let Some(key) = key(p, &k, address.map(|a| a.value), assets, global, cut) {
            out.push(key);
        }
    }
    out
}

/// One `[[key]]` section; `address` is `None` when it was missing or invalid (already reported).
fn key(
    p: &mut Problems<'_>,
    k: &Obj<'_, '_>,
    address: Option<Address>,
    catalog: &Catalog,
    global: &EnvSettings,
    cut: &Cut<'_>,
) -> Option<KeyPolicy> {
    let label = k.req_str(p, "label");
    let frozen = k.bool(p, "frozen").unwrap_or(false);
    let own_env = envelope_settings(p, k);
    let envelope = resolve_envelope(p, k, &own_env, global);

    // Assets this key may send.
    let mut key_assets: Vec<(Asset, Range<usize>)> = Vec::new();
    if k.get("assets").is_none() {
        p.at(
            k.span.clone(),
            C::MissingField,
            format!("{} is missing the required field \"assets\"", k.what),
        );
    }
    let listed = k.array(p, "assets").unwrap_or(&[]);
    for s in strings(p, listed, &format!("assets of {}", k.what)) {
        let Some(info) = lookup(p, catalog, &s) else {
            continue;
        };
        if key_assets.iter().any(|(a, _)| *a == info.asset) {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!("{} is listed twice in assets of {}", info.symbol, k.what),
            );
        } else {
            key_assets.push((info.asset, s.span.clone()));
        }
    }
    let allowed: Vec<Asset> = key_assets.iter().map(|(a, _)| *a).collect();

    // Key-wide windows: every allowed asset needs at least one.
    let windows = windows(p, k, catalog, &allowed);
    let mut assets = Vec::new();
    for (asset, span) in &key_assets {
        let mut ws: Vec<Window> = windows
            .iter()
            .filter(|(a, _)| a == asset)
            .map(|(_, w)| w.clone())
            .collect();
        ws.shrink_to_fit();
        if ws.is_empty() && !window_mentions(k, symbol(catalog, asset)) {
            p.at(
                span.clone(),
                C::MissingField,
                format!(
                    "{} allows {} but sets no rolling-window limit for it; every asset needs at least one",
                    k.what,
                    symbol(catalog, asset)
                ),
            );
        }
        assets.push(KeyAsset {
            asset: *asset,
            windows: ws,
        });
    }

    // Destinations.
    let mut dests = Destinations::default();
    let items = k.array(p, "destination").unwrap_or(&[]);
    let placeholder = |item: &Value<'_>| cut.split.and_then(|s| s.sections(item.span().start));
    // Sized once: growing by doubling would briefly hold up to twice the list.
    let total = items
        .iter()
        .map(|item| placeholder(item).map_or(1, |s| s.len()))
        .sum();
    dests.list.reserve_exact(total);
    dests.index.reserve(total);
    dests.first.reserve_exact(total);
    for item in items {
        let sections = placeholder(item);
        let Some(sections) = sections else {
            dests.add(p, item, k, catalog, &assets);
            continue;
        };
        for range in sections {
            let root = cut.text.get(range.clone()).and_then(parse_section);
            let Some(item) = root.as_ref().and_then(section_item) else {
                cut.failed.set(true);
                return None;
            };
            p.set_base(Some(range.start));
            dests.add(p, item, k, catalog, &assets);
            p.set_base(None);
        }
    }
    let Destinations {
        list: destinations,
        index: destination_index,
        ..
    } = dests;

    Some(KeyPolicy {
        address: address?,
        label: label?.value.to_owned(),
        frozen,
        assets,
        destinations,
        destination_index,
        envelope: envelope?,
    })
}

/// Parses one cut `[[key.destination]]` section alone; `None` on any syntax error.
fn parse_section(section: &str) -> Option<DeTable<'_>> {
    let (root, errors) = DeTable::parse_recoverable(section);
    errors.is_empty().then(|| root.into_inner())
}

/// The destination table in a section parsed alone: `key.destination[0]`.
fn section_item<'a, 'i>(root: &'a DeTable<'i>) -> Option<&'a Value<'i>> {
    let field = |t: &'a DeTable<'i>, name: &str| {
        t.iter()
            .find(|(k, _)| {
                let k: &str = k.get_ref();
                k == name
            })
            .map(|(_, v)| v.get_ref())
    };
    let key = field(root, "key")?.as_table()?;
    field(key, "destination")?.as_array()?.iter().next()
}

/// A key's destinations as they are checked, with where each address was first listed.
#[derive(Default)]
struct Destinations {
    list: Vec<Destination>,
    index: HashMap<Address, usize>,
    /// File offset of each listed destination's address, by position in `list`.
    first: Vec<usize>,
}

impl Destinations {
    fn add(
        &mut self,
        p: &mut Problems<'_>,
        item: &Value<'_>,
        k: &Obj<'_, '_>,
        catalog: &Catalog,
        key_assets: &[KeyAsset],
    ) {
        let what = format!("a destination of {}", k.what);
        let Some(d) = Obj::from_value(p, item, what) else {
            return;
        };
        let Some((dest, span)) = destination(p, d, k, catalog, key_assets) else {
            return;
        };
        if let Some(&i) = self.index.get(&dest.address) {
            let first = self.first.get(i).copied().unwrap_or(0);
            let (line, _) = p.line_col(first);
            p.at(
                span,
                C::DuplicateDestination,
                format!(
                    "destination {} is already listed for {} on line {line}",
                    dest.address, k.what
                ),
            );
            return;
        }
        self.first.push(p.absolute(&span).start);
        self.index.insert(dest.address, self.list.len());
        self.list.push(dest);
    }
}

fn lookup<'c>(p: &mut Problems<'_>, catalog: &'c Catalog, s: &At<&str>) -> Option<&'c AssetInfo> {
    let found = catalog.find(s.value);
    if found.is_none() && !catalog.broken.iter().any(|b| b == s.value) {
        p.at(
            s.span.clone(),
            C::UndeclaredAsset,
            format!(
                "asset {:?} is neither TRX nor a declared [[token]] symbol",
                s.value
            ),
        );
    }
    found
}

fn symbol<'c>(catalog: &'c Catalog, asset: &Asset) -> &'c str {
    catalog
        .assets
        .iter()
        .find(|a| a.asset == *asset)
        .map_or("?", |a| a.symbol.as_str())
}

fn decimals(catalog: &Catalog, asset: &Asset) -> u8 {
    catalog
        .assets
        .iter()
        .find(|a| a.asset == *asset)
        .map_or(0, |a| a.decimals)
}

/// Parses `windows = [{ asset, window, max }, ...]` of `t`, restricted to `allowed` assets,
/// then checks duplicates and that a shorter window never allows more than a longer one.
/// Returned sorted by asset then shortest window first.
fn windows(
    p: &mut Problems<'_>,
    t: &Obj<'_, '_>,
    catalog: &Catalog,
    allowed: &[Asset],
) -> Vec<(Asset, Window)> {
    let mut out: Vec<(Asset, Window, Range<usize>)> = Vec::new();
    for item in t.array(p, "windows").unwrap_or(&[]) {
        let what = format!("a window of {}", t.what);
        let Some(w) = Obj::from_value(p, item, what) else {
            continue;
        };
        w.check_fields(p, &["asset", "window", "max"]);
        let sym = w.req_str(p, "asset");
        let dur = w.req_str(p, "window");
        if w.get("max").is_none() {
            p.at(
                w.span.clone(),
                C::MissingField,
                format!("{} is missing the required field \"max\"", w.what),
            );
        }
        let info = sym.as_ref().and_then(|s| lookup(p, catalog, s));
        if let (Some(info), Some(s)) = (info, &sym) {
            if !allowed.contains(&info.asset) && listed_ok(t) {
                p.at(
                    s.span.clone(),
                    C::UndeclaredAsset,
                    format!(
                        "window for {} in {}, which does not list it in assets",
                        info.symbol, t.what
                    ),
                );
            }
        }
        let ms = dur
            .as_ref()
            .and_then(|d| duration(p, d, &format!("a window of {}", t.what)));
        if let Some(d) = &ms {
            if d.value > MAX_WINDOW_MS {
                p.at(
                    d.span.clone(),
                    C::OutOfRange,
                    "windows longer than 31d are not supported",
                );
            }
        }
        let max = match (info, w.get("max")) {
            (Some(info), Some(v)) => positive_amount(
                p,
                v,
                info.decimals,
                &format!("max of a {} window of {}", info.symbol, t.what),
            ),
            _ => None,
        };
        if let (Some(info), Some(d), Some(max)) = (info, ms, max) {
            if allowed.contains(&info.asset) && d.value <= MAX_WINDOW_MS {
                out.push((
                    info.asset,
                    Window {
                        window_ms: d.value,
                        label: dur.map(|s| s.value.to_owned()).unwrap_or_default(),
                        max,
                    },
                    w.span.clone(),
                ));
            }
        }
    }
    out.sort_by_key(|w| (w.0, w.1.window_ms));
    let mut keep: Vec<(Asset, Window)> = Vec::new();
    for (asset, w, span) in out {
        let sym = symbol(catalog, &asset);
        let dec = decimals(catalog, &asset);
        if let Some((_, prev)) = keep.last().filter(|(a, _)| *a == asset) {
            if prev.window_ms == w.window_ms {
                p.at(
                    span,
                    C::DuplicateWindow,
                    format!(
                        "{} has two {sym} windows of {} ({} and {})",
                        t.what, w.label, prev.label, w.label
                    ),
                );
                continue;
            }
            // Sorted: `prev` is the next shorter window. Checking neighbours suffices because
            // the kept maxima are non-decreasing.
            if prev.max > w.max {
                p.at(
                    span,
                    C::InconsistentLimit,
                    format!(
                        "{}: the {sym} window of {} allows {} but the shorter {} window allows {}; a shorter window cannot allow more",
                        t.what,
                        w.label,
                        super::amount::format_amount(w.max, dec),
                        prev.label,
                        super::amount::format_amount(prev.max, dec)
                    ),
                );
                continue;
            }
        }
        keep.push((asset, w));
    }
    keep
}

/// Whether any entry of `t.windows` names `symbol`, valid or not (a bad window is reported
/// where it is, not again as a missing one).
fn window_mentions(t: &Obj<'_, '_>, symbol: &str) -> bool {
    let Some(toml::de::DeValue::Array(items)) = t.get("windows").map(|v| v.get_ref()) else {
        return false;
    };
    items.iter().any(|w| match w.get_ref() {
        toml::de::DeValue::Table(w) => w.iter().any(|(k, v)| {
            let name: &str = k.get_ref();
            name == "asset" && v.get_ref().as_str() == Some(symbol)
        }),
        _ => false,
    })
}

/// Whether `t.assets` is an array, so "not listed in assets" is a meaningful complaint.
fn listed_ok(t: &Obj<'_, '_>) -> bool {
    matches!(
        t.get("assets").map(|v| v.get_ref()),
        Some(toml::de::DeValue::Array(_))
    )
}

/// One `[[key.destination]]`; returns it with the span of its address.
fn destination(
    p: &mut Problems<'_>,
    mut d: Obj<'_, '_>,
    k: &Obj<'_, '_>,
    catalog: &Catalog,
    key_assets: &[KeyAsset],
) -> Option<(Destination, Range<usize>)> {
    let address = d.req_address(p, "address");
    let label = d.req_str(p, "label");
    if let Some(l) = &label {
        d.what = format!("destination {:?} of {}", l.value, k.what);
    }
    d.check_fields(p, &["address", "label", "assets", "per_tx_max", "windows"]);

    let mut assets: Vec<Asset> = Vec::new();
    if d.get("assets").is_none() {
        p.at(
            d.span.clone(),
            C::MissingField,
            format!("{} is missing the required field \"assets\"", d.what),
        );
    }
    let listed = d.array(p, "assets").unwrap_or(&[]);
    for s in strings(p, listed, &format!("assets of {}", d.what)) {
        let Some(info) = lookup(p, catalog, &s) else {
            continue;
        };
        if !key_assets.iter().any(|a| a.asset == info.asset) {
            if !listed_ok(k) {
                continue;
            }
            p.at(
                s.span.clone(),
                C::UndeclaredAsset,
                format!(
                    "{} lists {}, which {} does not allow in its assets",
                    d.what, info.symbol, k.what
                ),
            );
        } else if assets.contains(&info.asset) {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!("{} is listed twice in assets of {}", info.symbol, d.what),
            );
        } else {
            assets.push(info.asset);
        }
    }

    // per_tx_max: exactly one entry per listed asset.
    let mut per_tx: Vec<(Asset, U256, Range<usize>)> = Vec::new();
    let named = |a: &Asset| {
        let sym = symbol(catalog, a);
        d.get("per_tx_max").is_some_and(|v| match v.get_ref() {
            toml::de::DeValue::Table(t) => t.iter().any(|(k, _)| {
                let name: &str = k.get_ref();
                name == sym
            }),
            _ => true,
        })
    };
    match d.get("per_tx_max") {
        None => p.at(
            d.span.clone(),
            C::MissingField,
            format!("{} is missing the required field \"per_tx_max\"", d.what),
        ),
        Some(v) => {
            let what = format!("per_tx_max of {}", d.what);
            if let Some(t) = Obj::from_value(p, v, what) {
                per_tx = per_tx_max(p, &t, catalog, &assets);
            }
        }
    }
    for a in &assets {
        if !per_tx.iter().any(|(x, _, _)| x == a) && d.get("per_tx_max").is_some() && !named(a) {
            p.at(
                d.span.clone(),
                C::MissingField,
                format!("{} has no per_tx_max for {}", d.what, symbol(catalog, a)),
            );
        }
    }

    let windows = windows(p, &d, catalog, &assets);
    let mut out_assets = Vec::new();
    for asset in &assets {
        let sym = symbol(catalog, asset);
        let dec = decimals(catalog, asset);
        let mut ws: Vec<Window> = windows
            .iter()
            .filter(|(a, _)| a == asset)
            .map(|(_, w)| w.clone())
            .collect();
        ws.shrink_to_fit();
        let Some((_, max, span)) = per_tx.iter().find(|(a, _, _)| a == asset) else {
            continue;
        };
        // A per-transaction maximum above a window maximum could never be used in full.
        let smallest_dest = ws.iter().min_by_key(|w| w.max);
        let smallest_key = key_assets
            .iter()
            .find(|a| a.asset == *asset)
            .and_then(|a| a.windows.iter().min_by_key(|w| w.max));
        let key_scope = format!("set for {}", k.what);
        for (w, whose) in [
            (smallest_dest, "of this destination"),
            (smallest_key, key_scope.as_str()),
        ] {
            if let Some(w) = w.filter(|w| *max > w.max) {
                p.at(
                    span.clone(),
                    C::InconsistentLimit,
                    format!(
                        "{}: per_tx_max {} {sym} is above the {} window maximum of {} {sym} {whose}, so it could never be used in full",
                        d.what,
                        super::amount::format_amount(*max, dec),
                        w.label,
                        super::amount::format_amount(w.max, dec)
                    ),
                );
            }
        }
        out_assets.push(DestinationAsset {
            asset: *asset,
            per_tx_max: *max,
            windows: ws,
        });
    }

    // Built by pushing, so the capacity is at least 4; a policy can hold 100,000 of these
    // (measured: ~43 MiB of unused capacity across assets and windows at that size).
    out_assets.shrink_to_fit();
    let address = address?;
    Some((
        Destination {
            address: address.value,
            label: label?.value.to_owned(),
            assets: out_assets,
        },
        address.span,
    ))
}

fn per_tx_max(
    p: &mut Problems<'_>,
    t: &Obj<'_, '_>,
    catalog: &Catalog,
    assets: &[Asset],
) -> Vec<(Asset, U256, Range<usize>)> {
    let mut out = Vec::new();
    for (k, v) in t.table.iter() {
        let s = At {
            value: {
                let name: &str = k.get_ref();
                name
            },
            span: k.span(),
        };
        let Some(info) = lookup(p, catalog, &s) else {
            continue;
        };
        if !assets.contains(&info.asset) {
            p.at(
                k.span(),
                C::UndeclaredAsset,
                format!(
                    "{} sets a maximum for {}, which is not in its assets",
                    t.what, info.symbol
                ),
            );
            continue;
        }
        let what = format!("{} {}", t.what, info.symbol);
        if let Some(max) = positive_amount(p, v, info.decimals, &what) {
            out.push((info.asset, max, v.span()));
        }
    }
    out
}
