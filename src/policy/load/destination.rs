//! `[[key.destination]]`: one allowlisted recipient of a key, what it may receive and how
//! much. [`Destinations`] collects a key's list; each destination is checked alone, so a
//! section can be dropped as soon as it has been read.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::DeValue;
use tron_proto::{Address, U256};

use super::table::{field, positive_amount, strings, Field, Fields, Kind, Node, Obj, Schema};
use super::tokens::Catalog;
use super::windows::{self, ASSETS, WINDOWS};
use crate::decode::Asset;
use crate::policy::amount::format_amount;
use crate::policy::model::{Destination, DestinationAsset, KeyAsset, Window};
use crate::policy::problem::{ProblemCode as C, Problems};

/// An address (keys and destinations both have one).
pub(super) const ADDRESS: Field = field("address", Kind::Str, true);
/// A label for people (keys and destinations both have one).
pub(super) const LABEL: Field = field("label", Kind::Str, true);
const PER_TX_MAX: Field = field("per_tx_max", Kind::Table, true);

static SCHEMA: Schema = Schema {
    fields: &[&ADDRESS, &LABEL, &ASSETS, &PER_TX_MAX, &WINDOWS],
};

/// What a destination is checked against: its key.
pub(super) struct Owner<'k> {
    /// "key T…", for messages.
    pub(super) what: &'k str,
    /// Whether the key's `assets` is an array (so "not in its assets" means something).
    pub(super) lists_assets: bool,
    pub(super) assets: &'k [KeyAsset],
}

/// A key's destinations as they are checked, with where each address was first listed.
#[derive(Default)]
pub(super) struct Destinations {
    pub(super) list: Vec<Destination>,
    pub(super) index: HashMap<Address, usize>,
    /// File offset of each listed destination's address, by position in `list`.
    first: Vec<usize>,
}

impl Destinations {
    /// Room for `n` more, so the list is never grown by doubling (which would briefly hold
    /// up to twice a 100,000-entry list).
    pub(super) fn reserve(&mut self, n: usize) {
        self.list.reserve_exact(n);
        self.index.reserve(n);
        self.first.reserve_exact(n);
    }

    /// Checks one destination table and adds it unless it repeats an address.
    pub(super) fn add(
        &mut self,
        p: &mut Problems<'_>,
        item: Node<'_, '_>,
        key: &Owner<'_>,
        catalog: &Catalog,
    ) {
        let what = format!("a destination of {}", key.what);
        let Some(d) = Obj::from_node(p, item, what) else {
            return;
        };
        let Some((dest, span)) = destination(p, d, key, catalog) else {
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
                    dest.address, key.what
                ),
            );
            return;
        }
        self.first.push(span.start);
        self.index.insert(dest.address, self.list.len());
        self.list.push(dest);
    }
}

/// One destination; returns it with the span of its address.
fn destination(
    p: &mut Problems<'_>,
    d: Obj<'_, '_>,
    key: &Owner<'_>,
    catalog: &Catalog,
) -> Option<(Destination, Range<usize>)> {
    let mut d = Fields::new(d, &SCHEMA);
    let address = d.address(p, &ADDRESS);
    let label = d.str(p, &LABEL);
    if let Some(l) = &label {
        d.obj.what = format!("destination {:?} of {}", l.value, key.what);
    }
    d.check_unknown(p);

    let mut assets: Vec<Asset> = Vec::new();
    let listed = d.array(p, &ASSETS);
    let listed = strings(p, listed.into_iter().flatten(), || {
        format!("assets of {}", d.what())
    });
    for s in listed {
        let Some(info) = catalog.lookup(p, &s) else {
            continue;
        };
        if !key.assets.iter().any(|a| a.asset == info.asset) {
            if !key.lists_assets {
                continue;
            }
            p.at(
                s.span.clone(),
                C::UndeclaredAsset,
                format!(
                    "{} lists {}, which {} does not allow in its assets",
                    d.what(),
                    info.symbol,
                    key.what
                ),
            );
        } else if assets.contains(&info.asset) {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!("{} is listed twice in assets of {}", info.symbol, d.what()),
            );
        } else {
            assets.push(info.asset);
        }
    }

    // per_tx_max: exactly one entry per listed asset.
    let per_tx_node = d.peek(&PER_TX_MAX);
    let per_tx = match d.table(p, &PER_TX_MAX, format!("per_tx_max of {}", d.what())) {
        Some(t) => per_tx_max(p, &t, catalog, &assets),
        None => Vec::new(),
    };
    let named = |a: &Asset| {
        let sym = catalog.symbol(a);
        per_tx_node.is_some_and(|v| match v.get_ref() {
            DeValue::Table(t) => t.iter().any(|(k, _)| {
                let name: &str = k.get_ref();
                name == sym
            }),
            _ => true,
        })
    };
    for a in &assets {
        if !per_tx.iter().any(|(x, _, _)| x == a) && per_tx_node.is_some() && !named(a) {
            p.at(
                d.span(),
                C::MissingField,
                format!("{} has no per_tx_max for {}", d.what(), catalog.symbol(a)),
            );
        }
    }

    let windows = windows::read(p, &d, catalog, &assets);
    let mut out_assets = Vec::new();
    for asset in &assets {
        let ws = windows::of(&windows, asset);
        let Some((_, max, span)) = per_tx.iter().find(|(a, _, _)| a == asset) else {
            continue;
        };
        per_tx_within_windows(p, &d, key, catalog, asset, (*max, span), &ws);
        out_assets.push(DestinationAsset {
            asset: *asset,
            per_tx_max: *max,
            windows: ws,
        });
    }

    // Built by pushing, so the capacity is at least 4; a policy can hold 100,000 of these,
    // so spare capacity adds up (BENCHMARKS.md, policy load).
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

/// A per-transaction maximum above a window maximum could never be used in full.
fn per_tx_within_windows(
    p: &mut Problems<'_>,
    d: &Fields<'_, '_>,
    key: &Owner<'_>,
    catalog: &Catalog,
    asset: &Asset,
    (max, span): (U256, &Range<usize>),
    own: &[Window],
) {
    let sym = catalog.symbol(asset);
    let dec = catalog.decimals(asset);
    let smallest_dest = own.iter().min_by_key(|w| w.max);
    let smallest_key = key
        .assets
        .iter()
        .find(|a| a.asset == *asset)
        .and_then(|a| a.windows.iter().min_by_key(|w| w.max));
    for (w, of_key) in [(smallest_dest, false), (smallest_key, true)] {
        if let Some(w) = w.filter(|w| max > w.max) {
            let whose = if of_key {
                format!("set for {}", key.what)
            } else {
                "of this destination".to_owned()
            };
            p.at(
                span.clone(),
                C::InconsistentLimit,
                format!(
                    "{}: per_tx_max {} {sym} is above the {} window maximum of {} {sym} {whose}, so it could never be used in full",
                    d.what(),
                    format_amount(max, dec),
                    w.label,
                    format_amount(w.max, dec)
                ),
            );
        }
    }
}

/// `per_tx_max = { SYMBOL = "amount", ... }`, each for an asset the destination lists.
fn per_tx_max(
    p: &mut Problems<'_>,
    t: &Obj<'_, '_>,
    catalog: &Catalog,
    assets: &[Asset],
) -> Vec<(Asset, U256, Range<usize>)> {
    let mut out = Vec::new();
    for (name, span, v) in t.entries() {
        let s = super::table::At {
            value: name,
            span: span.clone(),
        };
        let Some(info) = catalog.lookup(p, &s) else {
            continue;
        };
        if !assets.contains(&info.asset) {
            p.at(
                span,
                C::UndeclaredAsset,
                format!(
                    "{} sets a maximum for {}, which is not in its assets",
                    t.what, info.symbol
                ),
            );
            continue;
        }
        let what = || format!("{} {}", t.what, info.symbol);
        if let Some(max) = positive_amount(p, v, info.decimals, what) {
            out.push((info.asset, max, v.span()));
        }
    }
    out
}
