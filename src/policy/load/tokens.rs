//! `[[token]]`: the asset catalog. TRX is built in and comes first; tokens follow in file
//! order, each identified by its contract address, never by its symbol.

use std::collections::HashMap;
use std::ops::Range;

use tron_proto::Address;

use super::limits::{MAX_DECIMALS, TRX_DECIMALS};
use super::table::{field, At, Field, Fields, Kind, Obj, Schema};
use crate::decode::Asset;
use crate::policy::model::AssetInfo;
use crate::policy::problem::{ProblemCode as C, Problems};

const MAX_SYMBOL_LEN: usize = 16;

const SYMBOL: Field = field("symbol", Kind::Str, true);
const CONTRACT: Field = field("contract", Kind::Str, true);
const DECIMALS: Field = field("decimals", Kind::Uint, true);

static SCHEMA: Schema = Schema {
    fields: &[&SYMBOL, &CONTRACT, &DECIMALS],
};

/// The declared assets, plus the symbols of token declarations that had problems: those
/// are known names, so uses of them are not reported a second time as undeclared.
pub(super) struct Catalog {
    pub(super) assets: Vec<AssetInfo>,
    broken: Vec<String>,
    /// First declaration of each symbol (upper case) and contract, as file offsets.
    symbols: HashMap<String, Range<usize>>,
    contracts: HashMap<Address, Range<usize>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            assets: vec![AssetInfo {
                asset: Asset::Trx,
                symbol: "TRX".into(),
                decimals: TRX_DECIMALS,
            }],
            broken: Vec::new(),
            symbols: HashMap::new(),
            contracts: HashMap::new(),
        }
    }
}

impl Catalog {
    fn find(&self, symbol: &str) -> Option<&AssetInfo> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }

    /// The asset a symbol names, reporting one that is neither TRX nor declared.
    pub(super) fn lookup(&self, p: &mut Problems<'_>, s: &At<&str>) -> Option<&AssetInfo> {
        let found = self.find(s.value);
        if found.is_none() && !self.broken.iter().any(|b| b == s.value) {
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

    fn info(&self, asset: &Asset) -> Option<&AssetInfo> {
        self.assets.iter().find(|a| a.asset == *asset)
    }

    pub(super) fn symbol(&self, asset: &Asset) -> &str {
        self.info(asset).map_or("?", |a| a.symbol.as_str())
    }

    pub(super) fn decimals(&self, asset: &Asset) -> u8 {
        self.info(asset).map_or(0, |a| a.decimals)
    }

    /// Reads one `[[token]]` table into the catalog.
    pub(super) fn add(&mut self, p: &mut Problems<'_>, table: Obj<'_, '_>) {
        let t = Fields::new(table, &SCHEMA);
        t.check_unknown(p);
        let symbol = t.str(p, &SYMBOL);
        let contract = t.address(p, &CONTRACT);
        let decimals = t.uint(p, &DECIMALS);
        let mut ok = true;
        if let Some(s) = &symbol {
            ok &= self.check_symbol(p, s);
        }
        if let Some(c) = &contract {
            if let Some(first) = self.contracts.get(&c.value) {
                ok = false;
                let (line, _) = p.line_col(first.start);
                p.at(
                    c.span.clone(),
                    C::DuplicateAsset,
                    format!(
                        "token contract {} is already declared on line {line}",
                        c.value
                    ),
                );
            } else {
                self.contracts.insert(c.value, c.span.clone());
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
            (true, Some(s), Some(c), Some(d)) => self.assets.push(AssetInfo {
                asset: Asset::Token(c.value),
                symbol: s.value.to_owned(),
                decimals: u8::try_from(d.value).unwrap_or(u8::MAX),
            }),
            (_, Some(s), _, _) => self.broken.push(s.value.to_owned()),
            _ => {}
        }
    }

    /// Whether a symbol is well formed, not TRX and not declared before.
    fn check_symbol(&mut self, p: &mut Problems<'_>, s: &At<&str>) -> bool {
        if !valid_symbol(s.value) {
            p.at(
                s.span.clone(),
                C::OutOfRange,
                format!(
                    "token symbol {:?} must be 1-{MAX_SYMBOL_LEN} ASCII letters, digits, '.', '_' or '-'",
                    s.value
                ),
            );
            return false;
        }
        if s.value.eq_ignore_ascii_case("TRX") {
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                "TRX is built in and must not be declared as a token",
            );
            return false;
        }
        if let Some(first) = self.symbols.get(&s.value.to_ascii_uppercase()) {
            let (line, _) = p.line_col(first.start);
            p.at(
                s.span.clone(),
                C::DuplicateAsset,
                format!(
                    "token symbol {:?} is already declared on line {line}",
                    s.value
                ),
            );
            return false;
        }
        self.symbols
            .insert(s.value.to_ascii_uppercase(), s.span.clone());
        true
    }
}

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SYMBOL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
