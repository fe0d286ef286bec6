//! `[[key]]`: one signing key, the assets it may send with key-wide windows, its envelope
//! limits and its destinations. A [`Draft`] is started from the key's own table and takes
//! its destinations one at a time (inline ones, or `[[key.destination]]` sections as the
//! loader reaches them), so no destination's parse tree outlives its own check.

use std::collections::HashMap;
use std::ops::Range;

use tron_proto::Address;

use super::destination::{Destinations, Owner, ADDRESS, LABEL};
use super::global::{self, EnvSettings, FROZEN};
use super::limits::MAX_WINDOW_MS;
use super::table::{field, strings, Field, Fields, Kind, Node, Obj, Schema};
use super::tokens::Catalog;
use super::windows::{self, ASSETS, WINDOWS};
use crate::decode::Asset;
use crate::policy::duration::format_duration;
use crate::policy::model::{EnvelopeRules, GasFor, KeyAsset, KeyPolicy};
use crate::policy::problem::{ProblemCode as C, Problems};

/// Destinations written inline (`destination = [...]`) instead of as sections.
pub(super) const DESTINATION: Field = field("destination", Kind::Array, false);
/// A gas key: the `[[deposit_account]]` whose addresses it may fund with TRX, and the most
/// it may send one of them in one transaction (TRX).
const GAS_FOR: Field = field("gas_for", Kind::Str, false);
const GAS_PER_TX_MAX: Field = field("gas_per_tx_max", Kind::Any, false);

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
        &GAS_FOR,
        &GAS_PER_TX_MAX,
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
    /// Where the key's clock skew is written (its own section or `[global]`).
    skew_at: Range<usize>,
    what: String,
    lists_assets: bool,
    assets: Vec<KeyAsset>,
    destinations: Destinations,
    /// Whether the key's table lists destinations inline.
    pub(super) inline_destinations: bool,
    gas_for: Option<GasFor>,
}

impl Draft {
    /// Reads a key's own table; `sections` is how many `[[key.destination]]` sections follow
    /// for it (to size the list once). `None` when the value is not a table.
    pub(super) fn begin(
        p: &mut Problems<'_>,
        node: Node<'_, '_>,
        catalog: &Catalog,
        global: &EnvSettings,
        deposit_accounts: &[&str],
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
        let skew_at = own_env.clock_skew_at(global).unwrap_or_else(|| k.span());
        let assets = key_assets(p, &k, catalog);
        let gas_for = gas_for(p, &k, &assets, deposit_accounts);

        let mut draft = Draft {
            address: address.map(|a| a.value),
            label,
            frozen,
            envelope,
            skew_at,
            what: k.what().to_owned(),
            lists_assets: k.is_array(&ASSETS),
            assets,
            destinations: Destinations::default(),
            inline_destinations: k.peek(&DESTINATION).is_some(),
            gas_for,
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

    /// The key, if its own fields were valid (destination problems are already reported),
    /// once its clock skew is checked against every window it applies to.
    pub(super) fn finish(self, p: &mut Problems<'_>) -> Option<KeyPolicy> {
        if let Some(env) = &self.envelope {
            self.check_skew(p, env.clock_skew_ms);
        }
        Some(KeyPolicy {
            address: self.address?,
            label: self.label?,
            frozen: self.frozen,
            assets: self.assets,
            destinations: self.destinations.list,
            destination_index: self.destinations.index,
            envelope: self.envelope?,
            gas_for: self.gas_for,
        })
    }
}

impl Draft {
    /// A transaction counts in a window while it can still land (`policy::landing`): up to
    /// `clock_skew` after its expiration. A skew as long as a window would let that window
    /// count transactions that are already spent as if they were not, so the skew must be
    /// shorter than the key's shortest window (its own and its destinations'); and a window
    /// plus the skew must fit in the history the ledger keeps ([`MAX_WINDOW_MS`]).
    fn check_skew(&self, p: &mut Problems<'_>, skew_ms: u64) {
        let key_windows = self
            .assets
            .iter()
            .flat_map(|a| a.windows.iter().map(|w| (w, String::from("key-wide"))));
        let dest_windows = self.destinations.list.iter().flat_map(|d| {
            d.assets.iter().flat_map(move |a| {
                a.windows
                    .iter()
                    .map(move |w| (w, format!("destination {:?}", d.label)))
            })
        });
        let all: Vec<_> = key_windows.chain(dest_windows).collect();
        let skew = format_duration(skew_ms);
        if let Some((w, whose)) = all.iter().min_by_key(|(w, _)| w.window_ms) {
            if skew_ms >= w.window_ms {
                p.at(
                    self.skew_at.clone(),
                    C::ClockSkewTooLong,
                    format!(
                        "the clock_skew of {skew} for {} is not shorter than its {whose} {} window; a transaction counts in a window until its expiration plus the skew, so the skew must be shorter than every window",
                        self.what, w.label
                    ),
                );
            }
        }
        if let Some((w, whose)) = all.iter().max_by_key(|(w, _)| w.window_ms) {
            if w.window_ms.saturating_add(skew_ms) > MAX_WINDOW_MS {
                p.at(
                    self.skew_at.clone(),
                    C::OutOfRange,
                    format!(
                        "the {whose} {} window of {} plus its clock_skew of {skew} is longer than 31d, the history the ledger keeps",
                        w.label, self.what
                    ),
                );
            }
        }
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

/// `gas_for` and `gas_per_tx_max`: both or neither; the account must exist and the key must
/// allow TRX (with its key-wide windows, which cap the gas it spends over time).
fn gas_for(
    p: &mut Problems<'_>,
    k: &Fields<'_, '_>,
    assets: &[KeyAsset],
    deposit_accounts: &[&str],
) -> Option<GasFor> {
    let account = k.str(p, &GAS_FOR);
    let cap = k.peek(&GAS_PER_TX_MAX);
    let (account, cap) = match (account, cap) {
        (None, None) => return None,
        (Some(a), Some(c)) => (a, c),
        (Some(a), None) => {
            p.at(
                a.span,
                C::MissingField,
                format!("{} has gas_for but no gas_per_tx_max (TRX)", k.what()),
            );
            return None;
        }
        (None, Some(c)) => {
            p.at(
                c.span(),
                C::MissingField,
                format!("{} has gas_per_tx_max but no gas_for", k.what()),
            );
            return None;
        }
    };
    let per_tx_max = super::table::positive_amount(p, cap, super::TRX_DECIMALS, || {
        format!("gas_per_tx_max of {}", k.what())
    });
    if !deposit_accounts.contains(&account.value) {
        p.at(
            account.span.clone(),
            C::UnknownDepositAccount,
            format!(
                "{} has gas_for {:?}, which has no [[deposit_account]] section in this policy",
                k.what(),
                account.value
            ),
        );
        return None;
    }
    if !assets.iter().any(|a| a.asset == Asset::Trx) {
        p.at(
            account.span.clone(),
            C::MissingField,
            format!(
                "{} has gas_for but does not list TRX in its assets (gas is paid in TRX, under the key's TRX windows)",
                k.what()
            ),
        );
        return None;
    }
    Some(GasFor {
        account: account.value.to_owned(),
        per_tx_max: per_tx_max?,
    })
}
