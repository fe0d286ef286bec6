//! `[global]`: the global freeze and the envelope limits every key inherits unless its own
//! section sets them ([`resolve`]).

use std::ops::Range;

use tron_proto::U256;

use super::limits::{
    MAX_CLOCK_SKEW_MS, MAX_EXPIRATION_MS, MAX_FEE_LIMIT_SUN, MAX_MEMO_LEN, TRX_DECIMALS,
};
use super::table::{field, positive_amount, Field, Fields, Kind, Obj, Schema};
use crate::policy::model::EnvelopeRules;
use crate::policy::problem::{ProblemCode as C, Problems};

pub(super) const FROZEN: Field = field("frozen", Kind::Bool, false);
pub(super) const MAX_FEE_LIMIT: Field = field("max_fee_limit", Kind::Any, false);
pub(super) const MAX_EXPIRATION: Field = field("max_expiration", Kind::Str, false);
pub(super) const CLOCK_SKEW: Field = field("clock_skew", Kind::Str, false);
pub(super) const MEMO_ALLOWED: Field = field("memo_allowed", Kind::Bool, false);
pub(super) const MAX_MEMO_LEN_FIELD: Field = field("max_memo_len", Kind::Uint, false);

/// The envelope fields, which `[global]` and `[[key]]` share.
pub(super) const ENVELOPE: [&Field; 5] = [
    &MAX_FEE_LIMIT,
    &MAX_EXPIRATION,
    &CLOCK_SKEW,
    &MEMO_ALLOWED,
    &MAX_MEMO_LEN_FIELD,
];

pub(super) static SCHEMA: Schema = Schema {
    fields: &[
        &FROZEN,
        &MAX_FEE_LIMIT,
        &MAX_EXPIRATION,
        &CLOCK_SKEW,
        &MEMO_ALLOWED,
        &MAX_MEMO_LEN_FIELD,
    ],
};

/// What `[global]` says.
#[derive(Default)]
pub(super) struct Global {
    pub(super) frozen: bool,
    pub(super) envelope: EnvSettings,
}

/// Reads `[global]` (absent: not frozen, no envelope defaults).
pub(super) fn read(p: &mut Problems<'_>, table: Option<Obj<'_, '_>>) -> Global {
    let Some(table) = table else {
        return Global::default();
    };
    let g = Fields::new(table, &SCHEMA);
    g.check_unknown(p);
    Global {
        frozen: g.bool(p, &FROZEN).unwrap_or(false),
        envelope: envelope(p, &g),
    }
}

/// Envelope settings as written in one table; `None` means "not set here".
#[derive(Default, Clone)]
pub(super) struct EnvSettings {
    max_fee_limit: Option<u64>,
    max_expiration_ms: Option<u64>,
    clock_skew_ms: Option<u64>,
    /// Where the valid `clock_skew` is written (the windows are checked against it there).
    clock_skew_at: Option<Range<usize>>,
    memo_allowed: Option<bool>,
    max_memo_len: Option<u64>,
    /// Fields present in the table, valid or not (a bad value is reported once, where it is).
    written: Vec<&'static str>,
}

/// Reads the envelope fields of `t` (`[global]` or a `[[key]]`).
pub(super) fn envelope(p: &mut Problems<'_>, t: &Fields<'_, '_>) -> EnvSettings {
    let mut s = EnvSettings {
        written: ENVELOPE
            .into_iter()
            .filter(|f| t.peek(f).is_some())
            .map(|f| f.name)
            .collect(),
        ..EnvSettings::default()
    };
    if let Some(v) = t.value(p, &MAX_FEE_LIMIT) {
        let what = || format!("max_fee_limit (TRX) in {}", t.what());
        if let Some(sun) = positive_amount(p, v, TRX_DECIMALS, what) {
            if sun > U256::from(MAX_FEE_LIMIT_SUN) {
                p.at(
                    v.span(),
                    C::OutOfRange,
                    format!("{} is above the network maximum of 15000 TRX", what()),
                );
            } else {
                s.max_fee_limit = u64::try_from(sun).ok();
            }
        }
    }
    if let Some(d) = t.duration(p, &MAX_EXPIRATION) {
        if d.value > MAX_EXPIRATION_MS {
            p.at(
                d.span,
                C::OutOfRange,
                format!(
                    "max_expiration in {} is over 24h; Tron refuses such transactions",
                    t.what()
                ),
            );
        } else {
            s.max_expiration_ms = Some(d.value);
        }
    }
    if let Some(d) = t.duration(p, &CLOCK_SKEW) {
        if d.value > MAX_CLOCK_SKEW_MS {
            p.at(
                d.span,
                C::OutOfRange,
                format!("clock_skew in {} is over 1h", t.what()),
            );
        } else {
            s.clock_skew_ms = Some(d.value);
            s.clock_skew_at = Some(d.span);
        }
    }
    s.memo_allowed = t.bool(p, &MEMO_ALLOWED);
    if let Some(n) = t.uint(p, &MAX_MEMO_LEN_FIELD) {
        if s.memo_allowed == Some(false) {
            p.at(
                n.span,
                C::InconsistentLimit,
                format!(
                    "max_memo_len is set in {} but memo_allowed = false there",
                    t.what()
                ),
            );
        } else if n.value == 0 || n.value > MAX_MEMO_LEN {
            p.at(
                n.span,
                C::OutOfRange,
                format!(
                    "max_memo_len in {} must be between 1 and {MAX_MEMO_LEN} bytes",
                    t.what()
                ),
            );
        } else {
            s.max_memo_len = Some(n.value);
        }
    }
    s
}

impl EnvSettings {
    /// Where the clock skew that applies to a key with settings `self` is written.
    pub(super) fn clock_skew_at(&self, global: &EnvSettings) -> Option<Range<usize>> {
        match self.clock_skew_ms {
            Some(_) => self.clock_skew_at.clone(),
            None => global.clock_skew_at.clone(),
        }
    }
}

/// Key-level settings override `[global]`; a limit set in neither place is a problem.
pub(super) fn resolve(
    p: &mut Problems<'_>,
    k: &Fields<'_, '_>,
    own: &EnvSettings,
    global: &EnvSettings,
) -> Option<EnvelopeRules> {
    let mut need = |value: Option<u64>, field: &Field| {
        let written = own.written.contains(&field.name) || global.written.contains(&field.name);
        if value.is_none() && !written {
            p.at(
                k.span(),
                C::MissingField,
                format!(
                    "{}: {} is set neither here nor in [global]",
                    k.what(),
                    field.name
                ),
            );
        }
        value
    };
    let max_fee_limit = need(own.max_fee_limit.or(global.max_fee_limit), &MAX_FEE_LIMIT);
    let max_expiration_ms = need(
        own.max_expiration_ms.or(global.max_expiration_ms),
        &MAX_EXPIRATION,
    );
    let clock_skew_ms = need(own.clock_skew_ms.or(global.clock_skew_ms), &CLOCK_SKEW);
    let memo_allowed = own.memo_allowed.or(global.memo_allowed).unwrap_or(false);
    let max_memo_len = if memo_allowed {
        need(
            own.max_memo_len.or(global.max_memo_len),
            &MAX_MEMO_LEN_FIELD,
        )
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
