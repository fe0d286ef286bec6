//! `[[key]]`: one signing key, the assets it may send with key-wide windows, its envelope
//! limits and its destinations. A [`Draft`] is started from the key's own table and takes
//! its destinations one at a time (inline ones, or `[[key.destination]]` sections as the
//! loader reaches them), so no destination's parse tree outlives its own check.

use std::collections::HashMap;
use std::ops::Range;

use tron_proto::Address;

use super::destination::{Destinations, Owner, ADDRESS, LABEL};
use super::global::{self, EnvSettings, FROZEN};
use super::table::{field, strings, Field, Fields, Kind, Node, Obj, Schema};
use super::tokens::Catalog;
use super::windows::{self, ASSETS, WINDOWS};
use crate::decode::Asset;
use crate::policy::model::{EnvelopeRules, KeyAsset, KeyPolicy};
use crate::policy::problem::{ProblemCode as C, Problems};

/// Destinations written inline (`destination = [...]`) instead of as sections.
pub(super) const DESTINATION: Field = field("destination", Kind::Array, false);

static SCHEMA: Schema = Schema {
    fields: &[
        &ADDRESS,
        &LABEL,
        &FROZEN,
        &ASSETS,
        &WINDOWS,
        &DESTINATION,
        &global::MAX_FEE_LIMIT,
        &global::MAX_EXPIRATION,
        &global::CLOCK_SKEW,
        &global::MEMO_ALLOWED,
        &global::MAX_MEMO_LEN_FIELD,
    ],
};

/// The keys read so far, by address, with the file span of each first section's address.
#[derive(Default)]
pub(super) struct Seen(HashMap<Address, Range<usize>>);

/// A key whose own table has been read; destinations are added to it one by one.
pub(super) struct Draft {
    address: Option<Address>,
    label: Option<String>,
    frozen: bool,
    envelope: Option<EnvelopeRules>,
    what: String,
    lists_assets: bool,
    assets: Vec<KeyAsset>,
    destinations: Destinations,
    /// Whether the key's table lists destinations inline.
    pub(super) inline_destinations: bool,
}

impl Draft {
    /// Reads a key's own table; `sections` is how many `[[key.destination]]` sections follow
    /// for it (to size the list once). `None` when the value is not a table.
    pub(super) fn begin(
        p: &mut Problems<'_>,
        node: Node<'_, '_>,
        catalog: &Catalog,
        global: &EnvSettings,
        seen: &mut Seen,
        sections: usize,
    ) -> Option<Draft> {
        let k = Obj::from_node(p, node, "[[key]]")?;
        let mut k = Fields::new(k, &SCHEMA);
        let address = k.address(p, &ADDRESS);
        k.check_unknown(p);
        if let Some(a) = &address {
            k.obj.what = format!("key {}", a.value);
            if let Some(first) = seen.0.get(&a.value) {
                let (line, _) = p.line_col(first.start);
                p.at(
                    a.span.clone(),
                    C::DuplicateKey,
                    format!("key {} already has a section on line {line}", a.value),
                );
            } else {
                seen.0.insert(a.value, a.span.clone());
            }
        }
        let label = k.str(p, &LABEL).map(|l| l.value.to_owned());
        let frozen = k.bool(p, &FROZEN).unwrap_or(false);
        let own_env = global::envelope(p, &k);
        let envelope = global::resolve(p, &k, &own_env, global);
        let assets = key_assets(p, &k, catalog);

        let mut draft = Draft {
            address: address.map(|a| a.value),
            label,
            frozen,
            envelope,
            what: k.what().to_owned(),
            lists_assets: k.is_array(&ASSETS),
            assets,
            destinations: Destinations::default(),
            inline_destinations: k.peek(&DESTINATION).is_some(),
        };
        let inline = k.array(p, &DESTINATION);
        let inline: Vec<Node<'_, '_>> = inline.into_iter().flatten().collect();
        draft.destinations.reserve(inline.len() + sections);
        for item in inline {
            draft.add_destination(p, item, catalog);
        }
        Some(draft)
    }

    /// Checks one destination of this key and adds it.
    pub(super) fn add_destination(
        &mut self,
        p: &mut Problems<'_>,
        item: Node<'_, '_>,
        catalog: &Catalog,
    ) {
        let owner = Owner {
            what: &self.what,
            lists_assets: self.lists_assets,
            assets: &self.assets,
        };
        self.destinations.add(p, item, &owner, catalog);
    }

    /// The key, if its own fields were valid (destination problems are already reported).
    pub(super) fn finish(self) -> Option<KeyPolicy> {
        Some(KeyPolicy {
            address: self.address?,
            label: self.label?,
            frozen: self.frozen,
            assets: self.assets,
            destinations: self.destinations.list,
            destination_index: self.destinations.index,
            envelope: self.envelope?,
        })
    }
}

/// The assets a key may send, each with its key-wide windows (every asset needs one).
fn key_assets(p: &mut Problems<'_>, k: &Fields<'_, '_>, catalog: &Catalog) -> Vec<KeyAsset> {
    let mut listed: Vec<(Asset, Range<usize>)> = Vec::new();
    let items = k.array(p, &ASSETS);
    let symbols = strings(p, items.into_iter().flatten(), || {
        format!("assets of {}", k.what())
    });
    for s in symbols {
        let Some(info) = catalog.lookup(p, &s) else {
            continue;
        };
        if listed.iter().any(|(a, _)| *a == info.asset) {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!("{} is listed twice in assets of {}", info.symbol, k.what()),
            );
        } else {
            listed.push((info.asset, s.span.clone()));
        }
    }
    let allowed: Vec<Asset> = listed.iter().map(|(a, _)| *a).collect();

    let windows = windows::read(p, k, catalog, &allowed);
    let mut assets = Vec::with_capacity(listed.len());
    for (asset, span) in &listed {
        let ws = windows::of(&windows, asset);
        let symbol = catalog.symbol(asset);
        if ws.is_empty() && !k.mentions(&WINDOWS, "asset", symbol) {
            p.at(
                span.clone(),
                C::MissingField,
                format!(
                    "{} allows {symbol} but sets no rolling-window limit for it; every asset needs at least one",
                    k.what()
                ),
            );
        }
        assets.push(KeyAsset {
            asset: *asset,
            windows: ws,
        });
    }
    assets
}
