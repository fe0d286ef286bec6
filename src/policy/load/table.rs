//! Field tables: each section declares its fields once, as a const [`Schema`], and that one
//! table drives both the unknown-field check and every lookup, so adding a field is one line
//! in one table plus the code that reads it.
//!
//! Values come from a section parsed alone (see `sections`); every span handed out here has
//! already been moved to a file offset, so problems are reported at file:line:col.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;
use tron_proto::{Address, U256};

use crate::policy::amount::parse_amount;
use crate::policy::duration::parse_duration;
use crate::policy::problem::{ProblemCode, Problems};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// The TOML shape a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Uint,
    Bool,
    Array,
    Table,
    /// Checked by the reader (amounts, which must be quoted strings).
    Any,
}

/// One field a section may carry.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Reported as missing when absent (by the first lookup).
    pub(super) required: bool,
}

/// Declares a field (for const tables).
pub(super) const fn field(name: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        kind,
        required,
    }
}

/// A section's accepted fields, in the order messages list them.
pub(super) struct Schema {
    pub(super) fields: &'static [&'static Field],
}

impl Schema {
    fn slot(&self, field: &Field) -> Option<usize> {
        let slot = self.fields.iter().position(|f| f.name == field.name);
        debug_assert!(slot.is_some(), "{} is not in this schema", field.name);
        slot
    }

    pub(super) fn allowed(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
        names.join(", ")
    }
}

/// The most fields any schema has.
const MAX_FIELDS: usize = 14;

/// A value with the file span it came from.
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Range<usize>,
}

/// A parsed value and the file offset its section's spans start at.
#[derive(Clone, Copy)]
pub(super) struct Node<'a, 'i> {
    pub(super) value: &'a Value<'i>,
    pub(super) base: usize,
}

impl<'a, 'i> Node<'a, 'i> {
    pub(super) fn span(&self) -> Range<usize> {
        let s = self.value.span();
        self.base + s.start..self.base + s.end
    }

    pub(super) fn get_ref(&self) -> &'a DeValue<'i> {
        self.value.get_ref()
    }

    /// The elements of an array (empty for anything else).
    pub(super) fn items(&self) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
        let base = self.base;
        let items: &'a [Value<'i>] = match self.value.get_ref() {
            DeValue::Array(a) => a,
            _ => &[],
        };
        items.iter().map(move |value| Node { value, base })
    }

    pub(super) fn type_str(&self) -> &'static str {
        self.value.get_ref().type_str()
    }
}

/// A TOML table and a description of it for messages ("[global]", "key T…").
pub(super) struct Obj<'a, 'i> {
    pub(super) table: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
    pub(super) base: usize,
    pub(super) what: String,
}

impl<'a, 'i> Obj<'a, 'i> {
    /// Views `node` as a table, reporting a type problem otherwise.
    pub(super) fn from_node(
        p: &mut Problems<'_>,
        node: Node<'a, 'i>,
        what: impl Into<String>,
    ) -> Option<Self> {
        let what = what.into();
        match node.get_ref() {
            DeValue::Table(table) => Some(Obj {
                table,
                span: node.span(),
                base: node.base,
                what,
            }),
            other => {
                p.at(
                    node.span(),
                    ProblemCode::WrongType,
                    format!("{what} must be a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// The entries of the table, keys with their file spans.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&'a str, Range<usize>, Node<'a, 'i>)> {
        let (base, table): (usize, &'a DeTable<'i>) = (self.base, self.table);
        table.iter().map(move |(k, v)| {
            let name: &str = k.get_ref();
            let s = k.span();
            (name, base + s.start..base + s.end, Node { value: v, base })
        })
    }
}

/// A table read against its schema: each field's value found once, by the table's position.
pub(super) struct Fields<'a, 'i> {
    pub(super) obj: Obj<'a, 'i>,
    schema: &'static Schema,
    slots: [Option<Node<'a, 'i>>; MAX_FIELDS],
}

impl<'a, 'i> Fields<'a, 'i> {
    pub(super) fn new(obj: Obj<'a, 'i>, schema: &'static Schema) -> Self {
        debug_assert!(schema.fields.len() <= MAX_FIELDS);
        let mut slots = [None; MAX_FIELDS];
        for (name, _, node) in obj.entries() {
            if let Some(i) = schema.fields.iter().position(|f| f.name == name) {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(node);
                }
            }
        }
        Fields { obj, schema, slots }
    }

    /// Reports every field the schema does not list.
    pub(super) fn check_unknown(&self, p: &mut Problems<'_>) {
        for (name, span, _) in self.obj.entries() {
            if !self.schema.fields.iter().any(|f| f.name == name) {
                p.at(
                    span,
                    ProblemCode::UnknownField,
                    format!(
                        "unknown field {name:?} in {} (allowed: {})",
                        self.obj.what,
                        self.schema.allowed()
                    ),
                );
            }
        }
    }

    pub(super) fn what(&self) -> &str {
        &self.obj.what
    }

    pub(super) fn span(&self) -> Range<usize> {
        self.obj.span.clone()
    }

    /// The value of `field`, if present (no problem reported).
    pub(super) fn peek(&self, field: &Field) -> Option<Node<'a, 'i>> {
        self.schema
            .slot(field)
            .and_then(|i| self.slots.get(i).copied().flatten())
    }

    /// The value of `field`; reports it missing when it is required.
    pub(super) fn value(&self, p: &mut Problems<'_>, field: &Field) -> Option<Node<'a, 'i>> {
        let v = self.peek(field);
        if v.is_none() && field.required {
            p.at(
                self.obj.span.clone(),
                ProblemCode::MissingField,
                format!(
                    "{} is missing the required field {:?}",
                    self.obj.what, field.name
                ),
            );
        }
        v
    }

    fn typed(&self, p: &mut Problems<'_>, field: &Field, kind: Kind) -> Option<Node<'a, 'i>> {
        debug_assert_eq!(field.kind, kind, "{} read as {kind:?}", field.name);
        let v = self.value(p, field)?;
        let ok = matches!(
            (kind, v.get_ref()),
            (Kind::Str, DeValue::String(_))
                | (Kind::Uint, DeValue::Integer(_))
                | (Kind::Bool, DeValue::Boolean(_))
                | (Kind::Array, DeValue::Array(_))
                | (Kind::Table, _)
                | (Kind::Any, _)
        );
        if !ok {
            let expected = match kind {
                Kind::Str => "a string",
                Kind::Uint => "an integer",
                Kind::Bool => "true or false",
                _ => "an array",
            };
            p.at(
                v.span(),
                ProblemCode::WrongType,
                format!(
                    "{:?} in {} must be {expected}, found {}",
                    field.name,
                    self.obj.what,
                    v.type_str()
                ),
            );
            return None;
        }
        Some(v)
    }

    pub(super) fn str(&self, p: &mut Problems<'_>, field: &Field) -> Option<At<&'a str>> {
        let v = self.typed(p, field, Kind::Str)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.as_ref(),
                span: v.span(),
            }),
            _ => None,
        }
    }

    pub(super) fn bool(&self, p: &mut Problems<'_>, field: &Field) -> Option<bool> {
        match self.typed(p, field, Kind::Bool)?.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative integer that fits in u64.
    pub(super) fn uint(&self, p: &mut Problems<'_>, field: &Field) -> Option<At<u64>> {
        let v = self.typed(p, field, Kind::Uint)?;
        let DeValue::Integer(i) = v.get_ref() else {
            return None;
        };
        match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(value) => Some(At {
                value,
                span: v.span(),
            }),
            Err(_) => {
                p.at(
                    v.span(),
                    ProblemCode::OutOfRange,
                    format!(
                        "{:?} in {} must be a non-negative whole number",
                        field.name, self.obj.what
                    ),
                );
                None
            }
        }
    }

    /// An array field's elements.
    pub(super) fn array(
        &self,
        p: &mut Problems<'_>,
        field: &Field,
    ) -> Option<impl Iterator<Item = Node<'a, 'i>> + 'a> {
        self.typed(p, field, Kind::Array).map(|v| v.items())
    }

    /// A table field.
    pub(super) fn table(
        &self,
        p: &mut Problems<'_>,
        field: &Field,
        what: impl Into<String>,
    ) -> Option<Obj<'a, 'i>> {
        let v = self.typed(p, field, Kind::Table)?;
        Obj::from_node(p, v, what)
    }

    /// A Base58Check address field.
    pub(super) fn address(&self, p: &mut Problems<'_>, field: &Field) -> Option<At<Address>> {
        let s = self.str(p, field)?;
        address(p, &s)
    }

    /// A duration field ("24h").
    pub(super) fn duration(&self, p: &mut Problems<'_>, field: &Field) -> Option<At<u64>> {
        let s = self.str(p, field)?;
        duration(p, &s, || format!("{:?} in {}", field.name, self.obj.what))
    }

    /// Whether the array `field` has an element table whose string `key` equals `value`
    /// (valid or not: a bad element is reported where it is, not again as a missing one).
    pub(super) fn mentions(&self, field: &Field, key: &str, value: &str) -> bool {
        self.peek(field).is_some_and(|v| {
            v.items().any(|item| match item.get_ref() {
                DeValue::Table(t) => t.iter().any(|(k, v)| {
                    let name: &str = k.get_ref();
                    name == key && v.get_ref().as_str() == Some(value)
                }),
                _ => false,
            })
        })
    }

    /// Whether `field` is present and an array.
    pub(super) fn is_array(&self, field: &Field) -> bool {
        self.peek(field)
            .is_some_and(|v| matches!(v.get_ref(), DeValue::Array(_)))
    }
}

/// Parses a Base58Check address; hex is refused so that every address in a policy has one
/// spelling an auditor can compare by eye.
pub(super) fn address(p: &mut Problems<'_>, s: &At<&str>) -> Option<At<Address>> {
    match Address::from_base58(s.value) {
        Ok(a) => Some(At {
            value: a,
            span: s.span.clone(),
        }),
        Err(e) => {
            p.at(
                s.span.clone(),
                ProblemCode::BadAddress,
                format!(
                    "bad address {:?}: {e} (addresses are Base58Check, T…)",
                    s.value
                ),
            );
            None
        }
    }
}

/// Parses a duration ("24h"); `what` names it in a message (built only when there is one).
pub(super) fn duration(
    p: &mut Problems<'_>,
    s: &At<&str>,
    what: impl FnOnce() -> String,
) -> Option<At<u64>> {
    match parse_duration(s.value) {
        Ok(ms) => Some(At {
            value: ms,
            span: s.span.clone(),
        }),
        Err(e) => {
            p.at(
                s.span.clone(),
                ProblemCode::BadDuration,
                format!("bad duration {:?} for {}: {e}", s.value, what()),
            );
            None
        }
    }
}

/// Parses an amount string (`"50000.5"`) exactly and refuses zero: every limit here must
/// allow something; a limit of zero is written by removing the permission instead. `what`
/// names it in a message (built only when there is one).
pub(super) fn positive_amount(
    p: &mut Problems<'_>,
    v: Node<'_, '_>,
    decimals: u8,
    what: impl FnOnce() -> String,
) -> Option<U256> {
    let DeValue::String(s) = v.get_ref() else {
        p.at(
            v.span(),
            ProblemCode::WrongType,
            format!(
                "{} must be a quoted decimal string such as \"50000.5\" (so it is exact), found {}",
                what(),
                v.type_str()
            ),
        );
        return None;
    };
    match parse_amount(s, decimals) {
        Ok(a) if a == U256::ZERO => {
            p.at(
                v.span(),
                ProblemCode::ZeroAmount,
                format!("{} must be greater than zero", what()),
            );
            None
        }
        Ok(a) => Some(a),
        Err(e) => {
            p.at(
                v.span(),
                ProblemCode::BadAmount,
                format!("bad amount {s:?} for {}: {e}", what()),
            );
            None
        }
    }
}

/// The strings of an array of strings, reporting non-strings (`what` names the array).
pub(super) fn strings<'a, 'i: 'a>(
    p: &mut Problems<'_>,
    items: impl Iterator<Item = Node<'a, 'i>>,
    what: impl Fn() -> String,
) -> Vec<At<&'a str>> {
    let mut out = Vec::new();
    for v in items {
        match v.get_ref() {
            DeValue::String(s) => out.push(At {
                value: s.as_ref(),
                span: v.span(),
            }),
            other => p.at(
                v.span(),
                ProblemCode::WrongType,
                format!("{} must list strings, found {}", what(), other.type_str()),
            ),
        }
    }
    out
}
