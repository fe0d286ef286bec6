//! `[[token]]`: the asset catalog. TRX is built in and comes first; tokens follow in file
//! order, each identified by its contract address, never by its symbol. Contracts in the
//! built-in [`WELL_KNOWN`] table must be declared with their real decimals and only under a
//! policy for their own network.

use std::collections::HashMap;
use std::ops::Range;

use tron_proto::Address;

use super::limits::{MAX_DECIMALS, TRX_DECIMALS};
use super::table::{field, At, Field, Fields, Kind, Obj, Schema};
use crate::decode::Asset;
use crate::policy::model::{AssetInfo, Network};
use crate::policy::problem::{ProblemCode as C, Problems};

const MAX_SYMBOL_LEN: usize = 16;

/// A token contract whose decimals are a fact of the chain, not a setting.
struct WellKnown {
    /// Base58Check address of the contract.
    contract: &'static str,
    network: Network,
    /// What the contract is, for messages.
    name: &'static str,
    decimals: u8,
}

/// Contracts a policy cannot contradict: a wrong `decimals` rescales every limit of the
/// token (USDT declared with 18 would make "10000" mean 10^22 base units), and a contract of
/// another network can never be what the policy's keys send.
const WELL_KNOWN: &[WellKnown] = &[
    WellKnown {
        contract: "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        network: Network::Mainnet,
        name: "Tether USD (USDT) on mainnet",
        decimals: 6,
    },
    WellKnown {
        contract: "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
        network: Network::Nile,
        name: "Tether USD (USDT) on Nile",
        decimals: 6,
    },
];

/// The built-in entry for `contract`, if it has one.
fn well_known(contract: &Address) -> Option<&'static WellKnown> {
    let text = contract.to_base58();
    WELL_KNOWN.iter().find(|w| w.contract == text)
}

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
    /// The policy's network, when it is valid (well-known contracts are checked against it).
    network: Option<Network>,
}

impl Catalog {
    /// An empty catalog (TRX only) for a policy on `network`.
    pub(super) fn for_network(network: Option<Network>) -> Self {
        Catalog {
            assets: vec![AssetInfo {
                asset: Asset::Trx,
                symbol: "TRX".into(),
                decimals: TRX_DECIMALS,
            }],
            broken: Vec::new(),
            symbols: HashMap::new(),
            contracts: HashMap::new(),
            network,
        }
    }

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
        if let (Some(c), Some(d)) = (&contract, &decimals) {
            ok &= self.check_well_known(p, c, d);
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

    /// Whether a declared contract agrees with the built-in table: its decimals, and its
    /// network (when the policy's is known).
    fn check_well_known(&self, p: &mut Problems<'_>, c: &At<Address>, d: &At<u64>) -> bool {
        let Some(known) = well_known(&c.value) else {
            return true;
        };
        let mut ok = true;
        if d.value != u64::from(known.decimals) {
            ok = false;
            p.at(
                d.span.clone(),
                C::KnownTokenDecimals,
                format!(
                    "contract {} is {}, which has {} decimals, not {}",
                    c.value, known.name, known.decimals, d.value
                ),
            );
        }
        if let Some(network) = self.network.filter(|n| *n != known.network) {
            ok = false;
            p.at(
                c.span.clone(),
                C::TokenNetwork,
                format!(
                    "contract {} is {}, but this policy is for {network}",
                    c.value, known.name
                ),
            );
        }
        ok
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
