//! `[[deposit_account]]`: an HD account whose derived deposit keys may sweep the listed
//! assets to one collection address, and nothing else. Read before the keys, whose
//! `gas_for` names an account.

use tron_proto::hd::AccountXpub;

use super::global::{self, EnvSettings};
use super::table::{field, strings, Field, Fields, Kind, Obj, Schema};
use super::tokens::Catalog;
use crate::decode::Asset;
use crate::policy::model::DepositAccount;
use crate::policy::problem::{ProblemCode as C, Problems};

const NAME: Field = field("name", Kind::Str, true);
const XPUB: Field = field("xpub", Kind::Str, true);
const FIRST_INDEX: Field = field("first_index", Kind::Uint, true);
const LAST_INDEX: Field = field("last_index", Kind::Uint, true);
const COLLECTION: Field = field("collection", Kind::Str, true);
const ASSETS: Field = field("assets", Kind::Array, true);

static SCHEMA: Schema = Schema {
    fields: &[
        &NAME,
        &XPUB,
        &FIRST_INDEX,
        &LAST_INDEX,
        &COLLECTION,
        &ASSETS,
        &global::MAX_FEE_LIMIT,
        &global::MAX_EXPIRATION,
        &global::CLOCK_SKEW,
        &global::MEMO_ALLOWED,
        &global::MAX_MEMO_LEN_FIELD,
    ],
};

/// The highest non-hardened child index.
const MAX_INDEX: u64 = (1 << 31) - 1;

/// The accounts read so far.
#[derive(Default)]
pub(super) struct Accounts {
    pub(super) list: Vec<DepositAccount>,
}

impl Accounts {
    /// Checks one `[[deposit_account]]` and adds it.
    pub(super) fn add(
        &mut self,
        p: &mut Problems<'_>,
        obj: Obj<'_, '_>,
        catalog: &Catalog,
        global: &EnvSettings,
    ) {
        let mut f = Fields::new(obj, &SCHEMA);
        f.check_unknown(p);
        let name = f.str(p, &NAME);
        if let Some(n) = &name {
            f.obj.what = format!("deposit account {:?}", n.value);
            if n.value.trim().is_empty() {
                p.at(n.span.clone(), C::MissingField, "name must not be empty");
            } else if self.list.iter().any(|a| a.name == n.value) {
                p.at(
                    n.span.clone(),
                    C::DuplicateDepositAccount,
                    format!("deposit account {:?} is defined twice", n.value),
                );
            }
        }
        let xpub = f
            .str(p, &XPUB)
            .and_then(|x| match AccountXpub::parse(x.value) {
                Ok(k) => {
                    if self.list.iter().any(|a| a.xpub.same_account(&k)) {
                        p.at(
                            x.span.clone(),
                            C::DuplicateDepositAccount,
                            format!("{}: this xpub is already another deposit account", f.what()),
                        );
                    }
                    Some(k)
                }
                Err(e) => {
                    p.at(
                        x.span.clone(),
                        C::BadXpub,
                        format!("{}: {e} ({})", f.what(), e.code()),
                    );
                    None
                }
            });
        let index = |p: &mut Problems<'_>, field: &Field| {
            let v = f.uint(p, field)?;
            if v.value > MAX_INDEX {
                p.at(
                    v.span.clone(),
                    C::OutOfRange,
                    format!(
                        "{}: {} is above {MAX_INDEX}, the highest non-hardened index",
                        f.what(),
                        field.name
                    ),
                );
                return None;
            }
            Some((u32::try_from(v.value).ok()?, v.span))
        };
        let first = index(p, &FIRST_INDEX);
        let last = index(p, &LAST_INDEX);
        if let (Some((a, _)), Some((b, span))) = (&first, &last) {
            if b < a {
                p.at(
                    span.clone(),
                    C::OutOfRange,
                    format!("{}: last_index is below first_index", f.what()),
                );
            }
        }
        let collection = f.address(p, &COLLECTION);
        let assets = assets(p, &f, catalog);
        let own = global::envelope(p, &f);
        let envelope = global::resolve(p, &f, &own, global);
        let (Some(name), Some(xpub), Some((first, _)), Some((last, _)), Some(collection)) =
            (name, xpub, first, last, collection)
        else {
            return;
        };
        let Some(envelope) = envelope else { return };
        self.list.push(DepositAccount {
            name: name.value.to_owned(),
            xpub,
            first_index: first,
            last_index: last,
            collection: collection.value,
            assets,
            envelope,
        });
    }
}

/// The assets the account's keys may sweep (at least one, each declared once).
fn assets(p: &mut Problems<'_>, f: &Fields<'_, '_>, catalog: &Catalog) -> Vec<Asset> {
    let items = f.array(p, &ASSETS);
    let symbols = strings(p, items.into_iter().flatten(), || {
        format!("assets of {}", f.what())
    });
    let mut out: Vec<Asset> = Vec::new();
    for s in &symbols {
        let Some(info) = catalog.lookup(p, s) else {
            continue;
        };
        if out.contains(&info.asset) {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!("{} is listed twice in assets of {}", info.symbol, f.what()),
            );
        } else {
            out.push(info.asset);
        }
    }
    if out.is_empty() && symbols.is_empty() && f.is_array(&ASSETS) {
        p.at(
            f.span(),
            C::MissingField,
            format!(
                "{} lists no assets, so its keys could sweep nothing",
                f.what()
            ),
        );
    }
    out
}
