//! `windows = [{ asset, window, max }, ...]` of a key or a destination: rolling-window
//! maxima, restricted to the assets that section lists.

use std::ops::Range;

use super::limits::MAX_WINDOW_MS;
use super::table::{duration, field, positive_amount, Field, Fields, Kind, Obj, Schema};
use super::tokens::Catalog;
use crate::decode::Asset;
use crate::policy::amount::format_amount;
use crate::policy::model::Window;
use crate::policy::problem::{ProblemCode as C, Problems};

/// The assets a key or destination lists (both sections have the field).
pub(super) const ASSETS: Field = field("assets", Kind::Array, true);
/// Its windows (both sections have the field).
pub(super) const WINDOWS: Field = field("windows", Kind::Array, false);

const ASSET: Field = field("asset", Kind::Str, true);
const WINDOW: Field = field("window", Kind::Str, true);
const MAX: Field = field("max", Kind::Any, true);

static SCHEMA: Schema = Schema {
    fields: &[&ASSET, &WINDOW, &MAX],
};

/// Parses the windows of `t`, restricted to `allowed` assets, then checks duplicates and
/// that a shorter window never allows more than a longer one. Returned sorted by asset then
/// shortest window first.
pub(super) fn read(
    p: &mut Problems<'_>,
    t: &Fields<'_, '_>,
    catalog: &Catalog,
    allowed: &[Asset],
) -> Vec<(Asset, Window)> {
    let mut out: Vec<(Asset, Window, Range<usize>)> = Vec::new();
    let items = t.array(p, &WINDOWS);
    for item in items.into_iter().flatten() {
        let what = format!("a window of {}", t.what());
        let Some(w) = Obj::from_node(p, item, what) else {
            continue;
        };
        let w = Fields::new(w, &SCHEMA);
        w.check_unknown(p);
        let sym = w.str(p, &ASSET);
        let dur = w.str(p, &WINDOW);
        let max_value = w.value(p, &MAX);
        let info = sym.as_ref().and_then(|s| catalog.lookup(p, s));
        if let (Some(info), Some(s)) = (info, &sym) {
            if !allowed.contains(&info.asset) && t.is_array(&ASSETS) {
                p.at(
                    s.span.clone(),
                    C::UndeclaredAsset,
                    format!(
                        "window for {} in {}, which does not list it in assets",
                        info.symbol,
                        t.what()
                    ),
                );
            }
        }
        let ms = dur
            .as_ref()
            .and_then(|d| duration(p, d, || format!("a window of {}", t.what())));
        if let Some(d) = &ms {
            if d.value > MAX_WINDOW_MS {
                p.at(
                    d.span.clone(),
                    C::OutOfRange,
                    "windows longer than 31d are not supported",
                );
            }
        }
        let max = match (info, max_value) {
            (Some(info), Some(v)) => positive_amount(p, v, info.decimals, || {
                format!("max of a {} window of {}", info.symbol, t.what())
            }),
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
                    w.span(),
                ));
            }
        }
    }
    out.sort_by_key(|w| (w.0, w.1.window_ms));
    consistent(p, t.what(), catalog, out)
}

/// Drops (and reports) duplicate windows and windows that allow less than a shorter one.
fn consistent(
    p: &mut Problems<'_>,
    what: &str,
    catalog: &Catalog,
    sorted: Vec<(Asset, Window, Range<usize>)>,
) -> Vec<(Asset, Window)> {
    let mut keep: Vec<(Asset, Window)> = Vec::new();
    for (asset, w, span) in sorted {
        let sym = catalog.symbol(&asset);
        let dec = catalog.decimals(&asset);
        if let Some((_, prev)) = keep.last().filter(|(a, _)| *a == asset) {
            if prev.window_ms == w.window_ms {
                p.at(
                    span,
                    C::DuplicateWindow,
                    format!(
                        "{what} has two {sym} windows of {} ({} and {})",
                        w.label, prev.label, w.label
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
                        "{what}: the {sym} window of {} allows {} but the shorter {} window allows {}; a shorter window cannot allow more",
                        w.label,
                        format_amount(w.max, dec),
                        prev.label,
                        format_amount(prev.max, dec)
                    ),
                );
                continue;
            }
        }
        keep.push((asset, w));
    }
    keep
}

/// The windows of `asset` from a [`read`] result, sized to fit (a policy may hold 100,000
/// destinations, so spare capacity adds up).
pub(super) fn of(windows: &[(Asset, Window)], asset: &Asset) -> Vec<Window> {
    let mut ws: Vec<Window> = windows
        .iter()
        .filter(|(a, _)| a == asset)
        .map(|(_, w)| w.clone())
        .collect();
    ws.shrink_to_fit();
    ws
}
